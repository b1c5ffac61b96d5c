"""What a course directory holds: its assignments and notebooks, and how its graded cells
group into problems.

- An assignment is a folder of ``source/`` holding notebooks (``*.ipynb``, as nbgrader
  finds them); one the gradebook knows whose release is all that is left counts too.
- ``Problems`` (configuration: ``c.Problems.assignments``, ``.pattern``, ``.shared``)
  says which assignments are graded problem by problem (problem mode) and which cells form
  a problem there: the report's columns, the feedback's summary and what is graded in one
  sandbox. In the other assignments each graded cell is a problem of its own.
- ``course_lock``: commands that change the course's grading state take turns.
- ``make_private``: on a shared machine, other users get nothing of the course folder.
"""
import contextlib
import fcntl
import glob
import os
import re
import stat
import sys

import nbformat

from traitlets import List, Unicode, validate
from traitlets.config import Configurable


def course_assignments(root):
    """{assignment: [its notebooks' names, without .ipynb]}, sorted: the folders of source/
    holding notebooks, and of release/ for an assignment whose source folder is gone."""
    found = {}
    for folder in ("source", "release"):
        for path in sorted(glob.glob(os.path.join(root, folder, "*", "*.ipynb"))):
            assignment = os.path.basename(os.path.dirname(path))
            if found.setdefault(assignment, (folder, []))[0] == folder:
                found[assignment][1].append(os.path.splitext(os.path.basename(path))[0])
    return {assignment: names for assignment, (_, names) in sorted(found.items())}


LOCK_FILE = os.path.join("autograded", ".nbconfine.lock")  # among the grading outputs


@contextlib.contextmanager
def course_lock(root, holder):
    """Hold the course's lock (flock on ``<root>/autograded/.nbconfine.lock``) while
    changing its submitted/, autograded/, feedback/, gradebook or returned feedback:
    `nbconfine autograde`, `collect`, `feedback`, `return` and each round of `nbconfine
    serve` take turns. ``holder`` names the command to those that wait."""
    os.makedirs(os.path.join(root, os.path.dirname(LOCK_FILE)), exist_ok=True)
    with open(os.path.join(root, LOCK_FILE), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            print(f"Waiting for {lock.read().strip() or 'another command'} to finish with "
                  "this course ...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(f"{holder} (pid {os.getpid()})\n")
        lock.flush()
        try:
            yield
        finally:  # explicitly: forked workers share the open file
            fcntl.flock(lock, fcntl.LOCK_UN)


def notebook_path(root, folder, assignment, notebook):
    return os.path.join(root, folder, assignment, notebook + ".ipynb")


class Problems(Configurable):
    """Which assignments are graded problem by problem, and how their cells group."""

    assignments = List(Unicode(), help=(
        "Assignments graded problem by problem (problem mode, nbconfine.problems); the "
        "others are graded as nbgrader grades them, each notebook in one sandbox.")
    ).tag(config=True)
    pattern = Unicode("", help=(
        "A regular expression with one group, searched in each cell's grade_id: the group "
        "names the cell's problem (r'^([^_]+)_' puts q3_hidden_edge_cases in problem q3). "
        "A cell it does not match, or every cell when empty, is a problem of its own, named "
        "by its grade_id.")).tag(config=True)
    shared = List(Unicode(), help=(
        "grade_ids of locked cells that every problem needs (imports, the checks module): "
        "problem mode runs them before each problem, in the sandbox and in the grader.")
    ).tag(config=True)

    @validate("pattern")
    def _one_group(self, proposal):
        if proposal.value and re.compile(proposal.value).groups != 1:
            raise ValueError(f"Problems.pattern {proposal.value!r} must have exactly one group")
        return proposal.value

    def of(self, grade_id):
        """The problem a grade_id of a problem-mode assignment belongs to."""
        match = re.search(self.pattern, grade_id) if self.pattern else None
        return match.group(1) if match else grade_id

    def grouping(self, assignment):
        """grade_id -> problem for the cells of ``assignment``."""
        return self.of if assignment in self.assignments else str


# "## Part 1: squares (2 points)", "## Problem 5: quartiles (2 points, one per quartile)"
POINTS_HEADING = re.compile(r"^#+\s*(.+?)\s*\(\s*[\d.]+\s+points?\b[^)]*\)\s*$", re.M)
TITLE = re.compile(r"^#\s+(.+?)\s*$", re.M)


def problem_spans(cells, grouping):
    """{problem: [first, last] cell index} of the graded, answer and task cells, in order;
    grouping: grade_id -> problem (Problems.grouping)."""
    spans = {}
    for index, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") or meta.get("solution") or meta.get("task"):
            spans.setdefault(grouping(meta["grade_id"]), [index, index])[1] = index
    return spans


def title(cells, key, first):
    """A problem's name: the nearest heading stating points ("## Problem 1: ... (5 points)")
    above its first cell, without the points, whatever cells lie between (an answer cell
    above a test cell, the problem's other tests); else the notebook's title, else key."""
    for cell in reversed(cells[:first + 1]):
        headings = POINTS_HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        if headings:
            return headings[-1]
    for cell in cells:
        match = TITLE.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            return match.group(1)
    return key


def problem_titles(root, assignment, problems):
    """{problem: its name in the notebook} of an assignment's notebooks (source/, else
    release/), in their cells' order; notebooks later in name order do not rename a
    problem."""
    titles = {}
    for notebook in course_assignments(root).get(assignment, ()):
        for folder in ("source", "release"):
            path = notebook_path(root, folder, assignment, notebook)
            if os.path.exists(path):
                cells = nbformat.read(path, as_version=4).cells
                for key, (first, _) in problem_spans(cells, problems.grouping(assignment)).items():
                    titles.setdefault(key, title(cells, key, first))
                break
    return titles


# nbgrader's folders of a course, made before nbgrader would make them readable by all
PRIVATE_FOLDERS = ("source", "submitted", "autograded", "feedback")


def make_private(root):
    """Keep the course at ``root`` from other users of the machine (students): the
    solutions and hidden tests in source/, the submissions, the gradebook, git's history.
    Others may still traverse the folder, to reach the Python environment and the engine
    package if they live in it (students' validation uses them); the group keeps its
    access (teaching assistants). Returns the names of the entries made private."""
    import nbconfine
    from nbconfine import report
    keep = {os.path.relpath(path, root).split(os.sep)[0]
            for path in (sys.prefix, os.path.dirname(os.path.dirname(nbconfine.__file__)))
            if os.path.abspath(path).startswith(os.path.abspath(root) + os.sep)}
    for folder in PRIVATE_FOLDERS:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    url = report.db_url(root)
    if url == "sqlite:///" + os.path.join(os.path.abspath(root), "gradebook.db"):
        from nbgrader.api import Gradebook
        Gradebook(url).close()  # created now, so that it is never readable by others
    os.chmod(root, stat.S_IMODE(os.stat(root).st_mode) & ~0o006 | 0o001)
    private = []
    for entry in os.scandir(root):
        if entry.name not in keep and not entry.is_symlink():
            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            if mode & 0o007:
                os.chmod(entry.path, mode & ~0o007)
                private.append(entry.name)
    return sorted(private)


def private_like(path, root):
    """Give ``path``, a file the engine writes in the course at ``root``, no access for
    others when the course folder gives them none (``make_private``)."""
    if not stat.S_IMODE(os.stat(root).st_mode) & 0o004:
        os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~0o007)
