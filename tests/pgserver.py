"""The PostgreSQL server the tests may use, scratch databases on it, and a private server
for a test that restarts one (``PrivateServer``).

NORMGRADE_TEST_PG_URL names the server (and a database to connect to first). .ci/run
starts one (.ci/postgres) and sets NORMGRADE_TEST_PG_REQUIRED=1: there a test needing
the server fails instead of skipping. Tests only touch databases they create here.
"""
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
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


class PrivateServer:
    """A PostgreSQL server of the test's own, for tests that restart it: Debian's binaries
    (as .ci/postgres installs them), a cluster in a scratch folder, 127.0.0.1 on a free
    port, trust authentication for its superuser ``grader``, a database ``gradebook``.
    ``shutdown()`` stops it (a fast shutdown), ``start()`` starts it again (together, a
    restart); ``stop()`` ends it and removes its folder."""

    def __init__(self):
        from daskcluster import free_port
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise RuntimeError("no PostgreSQL binaries (.ci/postgres installs Debian's)")
        self.bin = os.path.dirname(found[-1])
        self.folder = tempfile.mkdtemp(prefix="nbconfine-pg-")
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        self.url = f"postgresql+psycopg2://grader@127.0.0.1:{self.port}/gradebook"
        self.owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.owner:  # PostgreSQL refuses to run as root
            shutil.chown(self.folder, "postgres")
        subprocess.run(self.owner + [os.path.join(self.bin, "initdb"), "-D", self.data,
                                     "-U", "grader", "-A", "trust", "--no-sync"],
                       cwd="/", check=True, capture_output=True)
        self.process = None
        self.start()
        _execute(self.url.replace("/gradebook", "/postgres"), "CREATE DATABASE gradebook")

    def start(self, seconds=60):
        log = open(os.path.join(self.folder, "log"), "a")
        self.process = subprocess.Popen(
            self.owner + [os.path.join(self.bin, "postgres"), "-D", self.data, "-p",
                          str(self.port), "-k", self.folder, "-c",
                          "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            cwd="/", stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + seconds
        while subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1",
                              "-p", str(self.port)], cwd="/").returncode != 0:
            assert self.process.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def log(self):
        with open(os.path.join(self.folder, "log")) as f:
            return f.read()[-3000:]

    def shutdown(self):
        """A fast shutdown, as `pg_ctlcluster ... restart` begins: clients are cut off."""
        os.killpg(self.process.pid, signal.SIGINT)  # fast shutdown
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.shutdown()
        shutil.rmtree(self.folder, ignore_errors=True)


def _execute(url, statement):
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()
