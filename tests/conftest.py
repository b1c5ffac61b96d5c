"""Fixtures: a released scratch course and its autograded reference and blank students."""
import pytest

from coursedir import ASSIGNMENTS, REPO, Course  # noqa: F401 (re-exported to tests)


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    """The course with both assignments released (not yet graded)."""
    course = Course(str(tmp_path_factory.mktemp("course")))
    course.release()
    return course


@pytest.fixture(scope="session")
def graded(course):
    """Reference answers (student `reference`) and the untouched release (`blank`), autograded."""
    for assignment in ASSIGNMENTS:
        course.submit("reference", assignment, course.reference(assignment))
        course.submit("blank", assignment, {})
        course.autograde(assignment, "--student=[rb][el][fa]*")
    return course
