"""Fixtures: a released scratch course, its autograded reference and blank students,
and parallel autograde runs."""
import fnmatch
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
REGRADED, REGRADED_GLOB = ("par-blank", "par-reference"), "par-[br][el]*"
STALE_SCORE = 0.25  # no cell scores it: a regrade that skips a student shows
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


def grade_run(course, jobs, students="par-*"):
    """Grade ``students`` (a glob) of ``course`` with ``jobs`` jobs: (report, their
    scores, their autograded outputs)."""
    report = course.grade(students, jobs=jobs)
    scores = {k: v for k, v in course.scores().items() if fnmatch.fnmatch(k[0], students)}
    return report, scores, {(s, a): outputs(course, s, a) for s, a in scores}


@pytest.fixture(scope="session")
def parallel_courses(course, tmp_path_factory):
    """Two fresh copies of the course holding the par- students: (one job, two jobs)."""
    submit_parallel_students(course)
    scratch = tmp_path_factory.mktemp("parallel")
    return course.clone(str(scratch / "one-job")), course.clone(str(scratch / "two-jobs"))


@pytest.fixture(scope="session")
def parallel_runs(course, parallel_courses):
    """The par- students graded in two fresh copies of the course, one with 1 job and
    one with 2; then par-reference and par-blank regraded there with 2 jobs, after an
    instructor graded q1 by hand and with their autograded scores in the gradebook made
    stale (the regrade must rewrite each one). runs: {1: ..., 2: ..., "regrade": ...},
    each (report, scores, outputs)."""
    sequential, parallel = parallel_courses
    submitted = os.path.join(course.root, "submitted")
    students = {s: sorted(os.listdir(os.path.join(submitted, s)))
                for s in os.listdir(submitted) if s.startswith("par-")}
    before = tree_digest(os.path.join(parallel.root, "submitted"))
    runs = {1: grade_run(sequential, 1), 2: grade_run(parallel, 2)}
    with Gradebook(parallel.db_url) as gb:
        gb.find_grade("q1_answer", "batchnorm", "batchnorm",
                      "par-reference").manual_score = MANUAL_SCORE
        for student in REGRADED:
            for assignment in students[student]:
                for notebook in gb.find_submission(assignment, student).notebooks:
                    for grade in notebook.grades:
                        if grade.auto_score is not None:
                            grade.auto_score = STALE_SCORE
        gb.db.commit()
    runs["regrade"] = grade_run(parallel, 2, REGRADED_GLOB)
    after = tree_digest(os.path.join(parallel.root, "submitted"))
    return runs, students, before, after


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: JupyterLab in headless Chromium "
                            "(tests/test_browser.py); `pytest -m browser` runs them alone")


# `make test` runs the suite on two xdist workers, each file's tests together on one
# worker (a module's fixtures are built once), and the files that share a costly session
# fixture together too (parallel_runs; graded). Files are handed out in this order, the
# longest first (seconds in one run of `make test`), so that both workers finish together.
LONGEST_FIRST = [
    "test_faults.py",  # 155 with TOGETHER's parallel, exchange and postgres
    "test_notebook_mode.py",  # 99
    "test_attacks.py",  # 84
    "test_cluster.py",  # 84
    "test_autograde.py",  # 75 with test_reports
    "test_serve.py",  # 75
    "test_browser.py",  # 56
    "test_mutants.py",  # 47
    "test_messages.py",  # 27
    "test_engine_paths.py",  # 22
]
TOGETHER = {**{name: "test_faults.py" for name in  # parallel_runs
               ("test_parallel.py", "test_exchange.py", "test_postgres.py")},
            "test_reports.py": "test_autograde.py"}  # graded


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: each file's own order is kept


def pytest_xdist_make_scheduler(config, log):
    """Work handed out a file at a time (TOGETHER's files as one), in collection order."""
    from xdist.scheduler import LoadScopeScheduling
    config.option.loadscopereorder = False  # else xdist hands the files with most tests first

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            name = os.path.basename(nodeid.split("::")[0])
            return TOGETHER.get(name, name)

    return ByFile(config, log)
