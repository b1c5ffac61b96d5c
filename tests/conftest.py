"""Fixtures: a released scratch course, its autograded reference and blank students,
and parallel autograde runs."""
import hashlib
import os

import pytest
from nbgrader.api import Gradebook

from catalog import MUTANTS
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


MANUAL_SCORE = 1.5
PICKS = ["p1_unbiased_var", "p3_flipped_momentum", "p7_interleaved_groups", "bn_torch_momentum"]


def tree_digest(folder):
    """{relative path: sha256} of every file under ``folder``."""
    digest = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            digest[os.path.relpath(path, folder)] = hashlib.sha256(
                open(path, "rb").read()).hexdigest()
    return digest


def outputs(course, student, assignment):
    return [(c.metadata.get("nbgrader", {}).get("grade_id"), c.get("outputs"))
            for c in course.autograded(student, assignment).cells if c.cell_type == "code"]


def submit_parallel_students(course):
    """Reference, blank and one mutant per pick, for both assignments."""
    mutants = {m.name: m for m in MUTANTS}
    for assignment in ASSIGNMENTS:
        reference = course.reference(assignment)
        course.submit("par-reference", assignment, reference)
        course.submit("par-blank", assignment, {})
        for name in PICKS:
            mutant = mutants[name]
            if mutant.problem.startswith("p") == (assignment == "normalization"):
                course.submit(f"par-{name}", assignment,
                              {**reference, f"{mutant.problem}_answer": mutant.code})


@pytest.fixture(scope="session")
def parallel_runs(course):
    submit_parallel_students(course)
    submitted = os.path.join(course.root, "submitted")
    students = {s: sorted(os.listdir(os.path.join(submitted, s)))
                for s in os.listdir(submitted) if s.startswith("par-")}
    before = tree_digest(os.path.join(course.root, "submitted"))
    runs = {}  # the second run grades the same submissions again: a re-run
    for jobs in (1, 2):
        report = course.grade("par-*", jobs=jobs)
        scores = {k: v for k, v in course.scores().items() if k[0].startswith("par-")}
        runs[jobs] = (report, scores, {(s, a): outputs(course, s, a) for s, a in scores})
        if jobs == 1:  # an instructor grades a written answer by hand between the runs
            with Gradebook(course.db_url) as gb:
                gb.find_grade("q1_answer", "batchnorm", "batchnorm",
                              "par-reference").manual_score = MANUAL_SCORE
                gb.db.commit()
    after = tree_digest(os.path.join(course.root, "submitted"))
    return runs, students, before, after


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: JupyterLab in headless Chromium "
                            "(tests/test_browser.py); `pytest -m browser` runs them alone")
