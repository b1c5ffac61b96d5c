"""A scratch copy of the course, driven through real nbgrader commands; a fresh clone of
it for an instructor, with an exchange."""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from course import demo  # noqa: E402
from nbconfine import report  # noqa: E402
from nbconfine.layout import Problems, course_assignments  # noqa: E402

# {assignment: its notebook's file name}: each assignment of this course has one.
ASSIGNMENTS = {a: names[0] + ".ipynb" for a, names in course_assignments(REPO).items()}
# The course's problems: the grade_id's prefix (nbgrader_config.py).
PROBLEMS = Problems(assignments=list(ASSIGNMENTS), pattern=r"^([^_]+)_")
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def instructor_tests(assignment):
    """[(grade_id, visible code, hidden code)] of the test cells of the instructor's
    notebook; hidden code is what its hidden-test region holds ("" without one)."""
    nb = nbformat.read(os.path.join(REPO, "source", assignment, ASSIGNMENTS[assignment]), 4)
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            visible, _, rest = cell.source.partition(HIDDEN_BEGIN)
            cells.append((meta["grade_id"], visible, rest.partition(HIDDEN_END)[0]))
    return cells


NBGRADER_ENV = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                    + os.environ.get("PATH", ""))
NBGRADER_ENV.pop("NBGRADER_DB_URL", None)


class Course:
    """A course directory in tmp: generate, submit, autograde, read grades."""

    def __init__(self, root, env=NBGRADER_ENV):
        self.root = root
        self.env = env
        shutil.copytree(os.path.join(REPO, "source"), os.path.join(root, "source"),
                        symlinks=True)
        shutil.copytree(os.path.join(REPO, "course"), os.path.join(root, "course"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(os.path.join(REPO, "nbgrader_config.py"), root)

    def clone(self, root):
        """A copy of this course, submissions and gradebook included, in ``root``."""
        shutil.copytree(self.root, root, symlinks=True)
        twin = Course.__new__(Course)
        twin.root, twin.env = root, self.env
        return twin

    def nbgrader(self, *args):
        """Run an nbgrader command in the course; returns the completed process."""
        return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=1800)

    def release(self):
        for assignment in ASSIGNMENTS:
            done = self.nbgrader("generate_assignment", assignment, "--force")
            assert done.returncode == 0, done.stderr

    def submit(self, student, assignment, answers):
        """A submission from the release with ``answers`` (grade_id -> source)."""
        folder = os.path.join(self.root, "submitted", student, assignment)
        shutil.rmtree(folder, ignore_errors=True)
        return demo.build_submission(assignment, answers, folder, course_root=self.root)

    def autograde(self, assignment, *extra):
        done = self.nbgrader("autograde", assignment, "--force", *extra)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def scores(self):
        """{(student, assignment): {problem: [score, max_score]}}."""
        return report.problem_scores(self.db_url, PROBLEMS)

    @property
    def db_url(self):
        """NBGRADER_DB_URL of the course's environment, else its SQLite gradebook."""
        return self.env.get("NBGRADER_DB_URL",
                            "sqlite:///" + os.path.join(self.root, "gradebook.db"))

    def autograded(self, student, assignment):
        path = os.path.join(self.root, "autograded", student, assignment,
                            ASSIGNMENTS[assignment])
        return nbformat.read(path, as_version=4)

    def reference(self, assignment):
        return demo.reference_answers(assignment, course_root=self.root)

    def grade(self, students="*", jobs=2, extra_env=None):
        """`nbconfine autograde` over the course; returns its report text."""
        done = subprocess.run(
            [sys.executable, "-m", "nbconfine", "autograde", "--root", self.root,
             "--jobs", str(jobs), "--students", students],
            cwd=self.root, env={**self.env, **(extra_env or {})}, capture_output=True,
            text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout


COURSE_ID = "normalization-layers"  # nbgrader_config.py


@contextlib.contextmanager
def exchange_course(instructor):
    """A fresh clone of the course (no make release) in ``instructor``'s home, and a
    scratch folder in /tmp that students reach too, holding the exchange root (created by
    `make exchange`). Yields (course folder, scratch folder, the make command to run
    there as the instructor)."""
    from unixuser import VENV
    scratch = tempfile.mkdtemp(prefix="normgrade-exchange-")
    try:
        shutil.chown(scratch, instructor.name)
        os.chmod(scratch, 0o755)
        course = os.path.join(instructor.home, "course")
        for name in ("source", "release", "course", "tests"):
            shutil.copytree(os.path.join(REPO, name), os.path.join(course, name),
                            ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("Makefile", "nbgrader_config.py", "requirements.txt"):
            shutil.copy2(os.path.join(REPO, name), course)
        subprocess.run(["chown", "-R", f"{instructor.name}:", course], check=True)
        yield course, scratch, ["make", "-o", f"{VENV}/.installed", f"VENV={VENV}",
                                f"EXCHANGE={os.path.join(scratch, 'exchange')}"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def wait_for(condition, seconds, what):
    """Poll ``condition`` until it is true (returned) or ``seconds`` pass (a failure)."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)
    return found
