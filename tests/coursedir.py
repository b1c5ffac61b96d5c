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


# What a checkout of the repository does not hold: git's data, the environment, grading state.
NOT_CHECKED_OUT = shutil.ignore_patterns(".git", ".venv", "__pycache__", "gradebook.db",
                                         "feedback", "submitted", "grades*.csv",
                                         "grades_distribution.png", "logs", "artifacts")


# `make` with this environment (VENV=, its stamp taken as made: `make install` is not run)
MAKE = ["make", "--no-print-directory", "-o", os.path.join(sys.prefix, ".installed"),
        f"VENV={sys.prefix}"]


def checkout(root):
    """A copy of this repository at ``root``: a checkout of it, as on another machine."""
    shutil.copytree(REPO, root, symlinks=True, ignore=NOT_CHECKED_OUT)
    return root


# the environment's nbgrader script, as a student types it: its interpreter starts the
# kernel of `nbgrader validate NOTEBOOK` early (nbconfine-quick-start.pth), which that of
# `python -m nbgrader` does not (its argv[0] is not nbgrader's)
NBGRADER_SCRIPT = os.path.join(os.path.dirname(sys.executable), "nbgrader")

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
        twin = type(self).__new__(type(self))
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

    def paused_reference(self, assignment="normalization", problem="p1", seconds=3):
        """The reference answers, ``problem``'s paused for ``seconds`` as its cell runs
        (graded the same): a test that acts on a run "while sandboxes run" (kills, Ctrl-C)
        finds its grading under way however loaded the machine, never just ending."""
        reference = self.reference(assignment)
        pause = f"import time\ntime.sleep({seconds})\n"
        return {**reference, f"{problem}_answer": pause + reference[f"{problem}_answer"]}

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


# The stock-nbgrader course (tests/stockcourse): one assignment in nbgrader's usual style.
STOCK_COURSE = os.path.join(REPO, "tests", "stockcourse")
STOCK = "stats"  # its assignment (one notebook, stats.ipynb, and measurements.csv)


class StockCourse(Course):
    """A copy of tests/stockcourse in ``root``: graded by nbconfine (its configuration), or
    with ``engine=False`` by stock nbgrader: the same configuration without
    nbconfine.configure (nbgrader's own Execute, one kernel per notebook, the same
    c.Execute settings)."""

    def __init__(self, root, env=NBGRADER_ENV, engine=True):
        self.root, self.env = root, env
        shutil.copytree(STOCK_COURSE, root, ignore=shutil.ignore_patterns(
            "release", "gradebook.db", "autograded", "submitted", "feedback"))
        if not engine:
            self.stock_config()

    def stock_config(self):
        path = os.path.join(self.root, "nbgrader_config.py")
        text = open(path).read()
        stock = text.replace("import nbconfine\n", "").replace("nbconfine.configure(c)\n", "")
        assert "nbconfine" not in stock.split('"""', 2)[2], "the stock configuration changed"
        with open(path, "w") as f:
            f.write(stock)

    def release(self):
        done = self.nbgrader("generate_assignment", STOCK, "--force")
        assert done.returncode == 0, done.stderr

    def submit(self, student, answers, added=()):
        """A submission of the release with ``answers`` (grade_id -> source) and cells the
        learner added: ``added``, [(grade_id of the cell they follow, source)]."""
        folder = os.path.join(self.root, "submitted", student, STOCK)
        shutil.rmtree(folder, ignore_errors=True)
        path = demo.build_submission(STOCK, answers, folder, course_root=self.root)
        nb = nbformat.read(path, as_version=4)
        for after, source in added:
            at = next(i for i, c in enumerate(nb.cells)
                      if c.metadata.get("nbgrader", {}).get("grade_id") == after)
            nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source))
        nbformat.write(nb, path)
        return path

    def cell_scores(self):
        """{(student, grade_id): score} of every graded cell (None: awaits a hand grade);
        in notebook mode each graded cell is a problem of its own."""
        return {(student, cell): score for (student, _), cells in report.problem_scores(
            self.db_url, Problems()).items() for cell, (score, _) in cells.items()}

    def clone(self, root, engine=True):
        twin = super().clone(root)
        if not engine:
            twin.stock_config()
        return twin
