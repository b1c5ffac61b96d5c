"""The PostgreSQL server the tests may use, and scratch databases on it.

NORMGRADE_TEST_PG_URL names the server (and a database to connect to first). .ci/run
starts one (.ci/postgres) and sets NORMGRADE_TEST_PG_REQUIRED=1: there a test needing
the server fails instead of skipping. Tests only touch databases they create here.
"""
import contextlib
import os
import subprocess
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("NORMGRADE_TEST_PG_URL")


def require_server():
    """Skip the calling test module without a server, unless one is required (CI)."""
    if PG_URL:
        return
    if os.environ.get("NORMGRADE_TEST_PG_REQUIRED") == "1":
        raise RuntimeError("NORMGRADE_TEST_PG_REQUIRED=1 but NORMGRADE_TEST_PG_URL is not set "
                           "(.ci/run sets both, from .ci/postgres)")
    pytest.skip("no PostgreSQL: set NORMGRADE_TEST_PG_URL (see .ci/postgres)",
                allow_module_level=True)


@contextlib.contextmanager
def scratch_database(base_url=PG_URL, prefix="normgrade_test"):
    """A new, empty database owned by ``base_url``'s user, dropped at the end; yields its
    URL. Created by that user if it may, else (as root) by the postgres superuser."""
    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _admin(url, f'CREATE DATABASE "{name}" OWNER "{url.username}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:  # FORCE: the gradebooks' connection pools may linger
        _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url, statement):
    if os.geteuid() == 0:
        subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-p",
                        str(url.port or 5432), "-v", "ON_ERROR_STOP=1", "-c", statement],
                       cwd="/", check=True, capture_output=True)
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()
