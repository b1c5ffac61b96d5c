"""A parallel autograde against a real PostgreSQL gradebook: every grade arrives.

.ci/run starts PostgreSQL (.ci/postgres) and sets NORMGRADE_TEST_PG_URL; elsewhere the
test is skipped, except under CI, where a missing server is a failure.
"""
import os

import pytest
from sqlalchemy import create_engine, text

from coursedir import NBGRADER_ENV, Course
from conftest import submit_parallel_students

PG_URL = os.environ.get("NORMGRADE_TEST_PG_URL")

if not PG_URL:
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must run the PostgreSQL test: .ci/run sets NORMGRADE_TEST_PG_URL")
    pytest.skip("no PostgreSQL: set NORMGRADE_TEST_PG_URL (see .ci/postgres)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def pg_course(tmp_path_factory):
    """The course released into an emptied PostgreSQL gradebook, graded with 2 jobs."""
    with create_engine(PG_URL).begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    course = Course(str(tmp_path_factory.mktemp("pgcourse")),
                    env=dict(NBGRADER_ENV, NBGRADER_DB_URL=PG_URL))
    course.release()
    submit_parallel_students(course)
    report = course.grade("par-*", jobs=2)
    return course, report


def test_the_gradebook_is_postgresql(pg_course):
    course, _ = pg_course
    assert course.db_url.startswith("postgresql")
    assert not os.path.exists(os.path.join(course.root, "gradebook.db"))


def test_every_grade_arrives_as_with_sqlite(pg_course, parallel_runs):
    course, report = pg_course
    on_postgres = course.scores()
    runs, students, _, _ = parallel_runs
    on_sqlite = runs[1][1]  # the sequential SQLite run, before any grading by hand
    submitted = {(s, a) for s, assignments in students.items() for a in assignments}
    assert set(on_postgres) == submitted
    assert on_postgres == on_sqlite
    assert f"Graded {len(submitted)} submissions with 2 jobs" in report
