"""A parallel autograde against a real PostgreSQL gradebook: every grade arrives.

NORMGRADE_TEST_PG_URL names a server (and a database to connect to first) whose role may
create databases; the test creates a scratch database of its own there, with a unique
name, and drops it at the end. Nothing else on the server is touched.

.ci/run starts PostgreSQL (.ci/postgres) and sets NORMGRADE_TEST_PG_URL and
NORMGRADE_TEST_PG_REQUIRED=1: there the test cannot be skipped. Elsewhere, without a URL,
it is skipped.
"""
import os

import pytest
from sqlalchemy import create_engine, text

from coursedir import NBGRADER_ENV, Course
from conftest import submit_parallel_students
from pgserver import require_server, scratch_database

require_server()


@pytest.fixture(scope="module")
def scratch_db_url():
    """The URL of a new, empty database on the server; dropped afterwards."""
    with scratch_database() as url:
        yield url


@pytest.fixture(scope="module")
def pg_course(tmp_path_factory, scratch_db_url):
    """The course released into the scratch PostgreSQL gradebook, graded with 2 jobs."""
    course = Course(str(tmp_path_factory.mktemp("pgcourse")),
                    env=dict(NBGRADER_ENV, NBGRADER_DB_URL=scratch_db_url))
    course.release()
    submit_parallel_students(course)
    report = course.grade("par-*", jobs=2)
    return course, report


def test_the_gradebook_is_the_scratch_postgresql_database(pg_course, scratch_db_url):
    course, _ = pg_course
    assert course.db_url == scratch_db_url and course.db_url.startswith("postgresql")
    assert not os.path.exists(os.path.join(course.root, "gradebook.db"))
    engine = create_engine(scratch_db_url)
    with engine.connect() as connection:
        students = {row[0] for row in connection.execute(text("SELECT id FROM student"))}
    engine.dispose()
    assert students == {s for s, _ in course.scores()} and "par-reference" in students


def test_every_grade_arrives_as_with_sqlite(pg_course, parallel_runs):
    course, report = pg_course
    on_postgres = course.scores()
    runs, students, _, _ = parallel_runs
    on_sqlite = runs[1][1]  # the sequential SQLite run, before any grading by hand
    submitted = {(s, a) for s, assignments in students.items() for a in assignments}
    assert set(on_postgres) == submitted
    assert on_postgres == on_sqlite
    assert f"Graded {len(submitted)} submissions with 2 jobs" in report
