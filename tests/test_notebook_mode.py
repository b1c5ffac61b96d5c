"""Notebook mode: a course written for stock nbgrader (tests/stockcourse) graded by the
engine exactly as stock nbgrader grades it (every autograded cell's score equal), only
confined: by root and by a normal user, with 1 and 2 jobs, through `make`, with
`nbgrader validate`, feedback, hand grades and a missing notebook."""
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursedir import MAKE, REPO, STOCK, Course, StockCourse
from unixuser import User
from course import demo

ADDED_HELPER = ('def squared_deviations(values):\n    """Each value\'s squared distance to '
                'the mean."""\n    m = mean(values)\n    return [(v - m) ** 2 for v in values]')
VARIANCE_WITH_HELPER = ('def variance(values):\n    return sum(squared_deviations(values)) / '
                        'len(values)')
WRONG = {  # student: (answers over the reference ones, the cells that lose points)
    "wrong-a": ({"mean_answer": "def mean(values):\n    return sum(values) / max(len(values), 1)",
                 "variance_answer": "def variance(values):\n    m = mean(values)\n    return "
                                    "sum((v - m) ** 2 for v in values) / (len(values) - 1)",
                 "quartiles_answer": "def quartiles(values):\n    ordered = sorted(values)\n"
                                     "    return ordered[0], ordered[-2]",
                 "histogram_answer": "def histogram(values):\n    plt.hist(values)\n\n\n"
                                     "figure = histogram([1, 2])"},
                {"mean_test", "variance_test", "quartiles_test", "histogram_test"}),
    # A loop that never ends (waiting between steps: it runs out the time limit in every
    # grading of this course without keeping a processor busy; tests/test_engine_paths.py
    # stops a loop that does).
    "wrong-b": ({"fixed_point_answer": "def fixed_point(f, x):\n    import time\n"
                                       "    while True:\n        x = f(x)\n"
                                       "        time.sleep(0.01)",
                 "column_answer": 'def column(path, name):\n    warnings.warn("reading " + path)\n'
                                  '    with open(path, encoding="utf-8") as f:\n'
                                  '        return [float(r[name]) for r in csv.DictReader(f)]'},
                {"fixed_point_test", "column_test"}),
}
SECRET_NAME, SECRET = "NBCONFINE_PROBE_SECRET", "s3cr3t-" + os.urandom(4).hex()
# A learner's cell reaching for what it must not: each success prints GAINED.
PROBE = '''import os, socket
def attempt(what, action):
    try:
        action()
    except Exception:
        return
    print("GAINED", what)
COURSE = {root!r}
attempt("/etc", lambda: open("/etc/passwd").read())
attempt("/home", lambda: os.listdir("/home"))
attempt("/proc", lambda: open("/proc/1/environ").read())
attempt("the solutions", lambda: open(COURSE + "/source/stats/stats.ipynb").read())
attempt("the release", lambda: os.listdir(COURSE + "/release/stats"))
attempt("another student", lambda: open(COURSE + "/submitted/correct/stats/stats.ipynb").read())
attempt("the gradebook", lambda: open(COURSE + "/gradebook.db", "rb").read(1))
attempt("writing the gradebook", lambda: open(COURSE + "/gradebook.db", "r+b").close())
attempt("writing the course", lambda: open(COURSE + "/nbgrader_config.py", "r+").close())
attempt("the network", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3))
attempt("UDP", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {port})))
attempt("the grader's environment", lambda: [v for v in os.environ.values() if {secret!r} in v][0])
open("scratch.txt", "w").write("écrit")
os.symlink("/etc/passwd", "passwd-link")  # kept in autograded/: scratch.txt, never a link
print("data", open("measurements.csv", encoding="utf-8").read().count("\\n"),
      "scratch", open("scratch.txt").read())'''
DIES = "import os\nos._exit(1)"
# Quartiles that compare equal to anything with 5: the partial-credit cell's value, 10, is
# above its 2 points, and nbgrader refuses the notebook there.
ABOVE_POINTS = ('class _Five:\n    def __eq__(self, other):\n        return 5\n\n'
                '    def __ne__(self, other):\n        return False\n\n\n'
                'def quartiles(values):\n    return _Five(), _Five()')
# A file name that would forge a report line and erase the lines above it on a terminal.
FORGING_NAME = "notes.txt\n  correct\u2215stats: forged\n\x1b[1A\x1b[2K"  # \u2215: ∕
# the cells of the stock course before quartiles_test, graded before nbgrader refuses it
BEFORE_QUARTILES = ["mean_test", "mean_restored", "mean_tools", "variance_test",
                    "column_test", "histogram_test"]
COMPARED = ["correct", "blank", *WRONG]
TESTS = sorted(c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(os.path.join(
    REPO, "tests", "stockcourse", "source", STOCK, STOCK + ".ipynb"), as_version=4).cells
    if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))


def submit_students(course, probe=None):
    """The compared students, a learner whose cell kills its process (`dies`) and, with
    ``probe`` (the PROBE's fields), `probe`."""
    reference = demo.reference_answers(STOCK, course_root=course.root)
    course.submit("correct", {**reference, "variance_answer": VARIANCE_WITH_HELPER},
                  added=[("mean_restored", ADDED_HELPER)])
    course.submit("blank", {})
    for student, (answers, _) in WRONG.items():
        course.submit(student, {**reference, **answers})
    course.submit("dies", reference, added=[("column_test", DIES)])
    if probe:
        course.submit("probe", reference, added=[("mean_answer", PROBE.format(**probe))])
    return reference


def submit_above(course):
    """`above`: a test cell's value exceeds its points, a test cell deleted (this course
    does not set add_missing_cells) and a stray file whose name would forge report lines."""
    reference = demo.reference_answers(STOCK, course_root=course.root)
    path = course.submit("above", {**reference, "quartiles_answer": ABOVE_POINTS})
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                != "fixed_point_test"]
    nbformat.write(nb, path)
    with open(os.path.join(os.path.dirname(path), FORGING_NAME), "w") as f:
        f.write("my notes\n")


def autograded(course, student):
    return nbformat.read(os.path.join(course.root, "autograded", student, STOCK,
                                      STOCK + ".ipynb"), as_version=4)


def text_of(course, student):
    return "\n".join(str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", ""))
                     for c in autograded(course, student).cells if c.cell_type == "code"
                     for o in c.outputs)


class Listener:
    """A TCP and a UDP socket on one loopback port: did anything reach them?"""

    def __init__(self):
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp.setblocking(False)
        self.udp.setblocking(False)

    def reached(self):
        found = []
        for sock, receive in ((self.tcp, self.tcp.accept), (self.udp, lambda: self.udp.recv(9))):
            try:
                found.append(receive())
            except BlockingIOError:
                pass
        return found


@pytest.fixture(scope="session")
def listener():
    found = Listener()
    yield found
    found.tcp.close()
    found.udp.close()


@pytest.fixture(scope="session")
def stock_release(tmp_path_factory, listener):
    """The stock course released (engine configuration) with every student submitted."""
    course = StockCourse(str(tmp_path_factory.mktemp("stock") / "course"))
    course.release()
    submit_students(course, dict(root=course.root, port=listener.port, secret=SECRET))
    path = course.submit("skiptag", {})  # blank, every test cell tagged for nbclient to skip
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in TESTS:
            cell.metadata["tags"] = ["skip-execution"]
    nbformat.write(nb, path)
    submit_above(course)
    return course


@pytest.fixture(scope="session")
def stock_nbgrader(stock_release, tmp_path_factory):
    """Stock nbgrader's grading of a copy, started (it runs while the engine grades, its
    kernels' starts and time-outs mostly waiting): (course, the process)."""
    course = stock_release.clone(str(tmp_path_factory.mktemp("stock-nbgrader") / "course"),
                                 engine=False)
    shutil.rmtree(os.path.join(course.root, "submitted", "probe"))  # graded by the engine only
    process = subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", STOCK, "--force"],
                               cwd=course.root, env=course.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    yield course, process
    if process.poll() is None:  # no test waited for it
        process.kill()
        process.communicate()


@pytest.fixture(scope="session")
def stock_scores(stock_nbgrader):
    """Stock nbgrader's grading of a copy: (course, cell scores, its output)."""
    course, process = stock_nbgrader
    out, err = process.communicate(timeout=1800)
    return course, course.cell_scores(), out + err


def engine_run(stock_release, tmp_path_factory, name, jobs):
    course = stock_release.clone(str(tmp_path_factory.mktemp(name) / "course"))
    report = course.grade(jobs=jobs, extra_env={SECRET_NAME: SECRET})
    return course, course.cell_scores(), report


@pytest.fixture(scope="session")
def engine_scores(stock_release, stock_nbgrader, tmp_path_factory):
    """`nbconfine autograde --jobs 1` on a copy, while stock nbgrader grades its own:
    (course, cell scores, report)."""
    return engine_run(stock_release, tmp_path_factory, "engine-one", 1)


@pytest.fixture(scope="session")
def engine_two_jobs(stock_release, tmp_path_factory):
    return engine_run(stock_release, tmp_path_factory, "engine-two", 2)


# engine_scores first: it starts stock nbgrader's run, which grades while the engine does
def test_every_autograded_cell_scores_as_stock_nbgrader(engine_scores, stock_scores):
    """Correct (with a cell the learner added), blank and wrong submissions: each graded
    cell's score is stock nbgrader's; the wrong ones lose exactly their cells' points."""
    _, stock, _ = stock_scores
    _, engine, _ = engine_scores
    for student in COMPARED:
        theirs = {k: v for k, v in stock.items() if k[0] == student}
        ours = {k: v for k, v in engine.items() if k[0] == student}
        assert len(theirs) == 9 and ours == theirs, student
    reference = {cell: score for (student, cell), score in engine.items() if student == "correct"}
    assert reference["interpretation"] is None and all(
        score > 0 for cell, score in reference.items() if cell != "interpretation")
    for student, (_, losing) in WRONG.items():
        lost = {cell for cell, score in reference.items() if score is not None
                and engine[student, cell] != score}
        assert lost == losing, student
    assert engine["wrong-a", "quartiles_test"] == 0.5  # from the cell's execute_result
    assert all(engine["blank", cell] == 0 for cell in reference)


def test_outputs_are_a_kernels(engine_scores):
    """A plot becomes image/png display_data, non-ASCII text passes, the learner's own
    exception and IPython's traceback, stderr as its own stream, the time limit's error."""
    course, _, _ = engine_scores
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c
             for c in autograded(course, "correct").cells}
    assert any(o.output_type == "display_data" and "image/png" in o.data
               for o in cells["histogram_answer"].outputs)
    assert "Taille moyenne : 1.732 m ✓" in cells["column_test"].outputs[0].text
    assert [o.data["text/plain"] for o in cells["quartiles_test"].outputs] == ["2.0"]
    assert cells["quartiles_test"].outputs[0].execution_count == cells["quartiles_test"].execution_count
    wrong = {c.metadata.get("nbgrader", {}).get("grade_id"): c
             for c in autograded(course, "wrong-a").cells}
    (error,) = wrong["mean_test"].outputs
    assert error.ename == "AssertionError" and "mean([]) should raise ValueError" in error.evalue
    assert "Traceback (most recent call last)" in "".join(error.traceback)
    stderr = {c.metadata.get("nbgrader", {}).get("grade_id"): c
              for c in autograded(course, "wrong-b").cells}["column_test"]
    assert [o.name for o in stderr.outputs] == ["stderr", "stdout"]
    loop = {c.metadata.get("nbgrader", {}).get("grade_id"): c
            for c in autograded(course, "wrong-b").cells}["fixed_point_test"]
    assert [o.ename for o in loop.outputs] == ["KeyboardInterrupt", "CellTimeoutError"]
    assert loop.outputs[1].evalue == "ran out of its time"  # the course's c.Execute's


def test_the_kernel_and_the_files_written_are_stock_nbgrader_s(stock_scores, engine_scores):
    """What a notebook finds in its kernel (NBGRADER_EXECUTION, the user, sys.argv, a
    writable home, a running event loop) is what stock nbgrader's kernel shows; the files
    a notebook writes (histogram.png) stay in autograded/ beside it, as with stock."""
    def kernel_cell(course):
        cell = next(c for c in autograded(course, "correct").cells
                    if c.source.startswith("# What a notebook finds in its kernel"))
        return [(o.output_type, o.get("name"), o.get("text")) for o in cell.outputs]

    assert kernel_cell(engine_scores[0]) == kernel_cell(stock_scores[0])
    assert "autograde" in kernel_cell(engine_scores[0])[0][2]

    def files(course, student):
        return sorted(os.listdir(os.path.join(course.root, "autograded", student, STOCK)))

    for student in COMPARED:
        assert files(engine_scores[0], student) == files(stock_scores[0], student), student
    assert "histogram.png" in files(engine_scores[0], "correct")


def test_a_dead_sandbox_costs_its_cell_only(stock_scores, engine_scores):
    """Stock nbgrader cannot grade a notebook whose kernel died; the engine runs the cells
    after it in a new sandbox, after the cells before it: every graded cell scores."""
    _, stock, stock_output = stock_scores
    course, engine, report = engine_scores
    assert not [k for k in stock if k[0] == "dies"] or all(
        stock[k] in (0, None) for k in stock if k[0] == "dies")
    assert "dies" in stock_output
    dead = [c for c in autograded(course, "dies").cells if c.source == DIES][0]
    assert [o.ename for o in dead.outputs] == ["DeadKernelError"]
    assert "run in a new process" in dead.outputs[0].evalue or "ran in a new process" in \
        dead.outputs[0].evalue
    assert {cell: s for (student, cell), s in engine.items() if student == "dies"} == \
        {cell: s for (student, cell), s in engine.items() if student == "correct"}


def test_test_cells_tagged_skip_execution_are_run_anyway(stock_scores, engine_scores):
    """nbclient skips cells tagged skip-execution, so stock nbgrader gives a blank
    notebook whose test cells carry the tag their points; the engine runs them (the tag
    goes as cell roles are restored from the gradebook), scores them as blank, and says so."""
    _, stock, _ = stock_scores
    _, engine, report = engine_scores
    assert len(TESTS) >= 5 and all(stock["skiptag", cell] > 0 for cell in TESTS)
    assert {cell: engine["skiptag", cell] for cell in TESTS} == \
        {cell: engine["blank", cell] for cell in TESTS}
    assert (f"skiptag/{STOCK}: test cells tagged skip-execution, run anyway: "
            f"{', '.join(TESTS)}") in report, report
def test_a_refused_notebook_keeps_what_nbgrader_graded(stock_scores, engine_scores):
    """A test cell whose value exceeds its points: nbgrader stops at it. The cells graded
    before it keep their scores, as with stock nbgrader; those it did not grade score
    zero (stock leaves them blank: zero in its export); the report names the notebook."""
    _, stock, _ = stock_scores
    course, engine, report = engine_scores
    assert {c: engine["above", c] for c in BEFORE_QUARTILES} == \
        {c: stock["above", c] for c in BEFORE_QUARTILES} == \
        {c: engine["correct", c] for c in BEFORE_QUARTILES}
    assert {c: s for (st, c), s in engine.items() if st == "above"
            and c not in BEFORE_QUARTILES} == dict.fromkeys(
        ["quartiles_test", "fixed_point_test", "interpretation"], 0)
    assert "  above/stats: nbgrader could not grade stats.ipynb; what it did not grade " \
        "there scores zero (see autograded/logs/worker-0.log)\n" in report


def test_report_lines_say_what_happened(engine_scores):
    """Beside the refusal (named however many other lines the submission has): a test cell
    deleted where nbgrader does not put cells back, and a file not in the release, its
    name as the learner chose it, escaped."""
    report = engine_scores[2]
    lines = report.split("Problems found:", 1)[1].splitlines()[1:]
    assert [line for line in lines if line.startswith("  above/stats: ")] == [
        "  above/stats: files not in the release, graded with the notebooks (copied beside "
        f"them): {FORGING_NAME!r}",
        "  above/stats: test cells deleted or stripped of their metadata, not graded (left to "
        "grade by hand): fixed_point_test",
        "  above/stats: nbgrader could not grade stats.ipynb; what it did not grade there "
        "scores zero (see autograded/logs/worker-0.log)"]
    assert "\x1b" not in report and "forged" not in report.replace(repr(FORGING_NAME), "")


def test_the_table_names_and_aligns_its_columns(engine_scores):
    """Each column (a graded cell, named by its grade_id, wider than 5 characters) is
    explained by the nearest heading above it stating points, past the answer cell and
    the problem's other tests; cells sit under their column; one job, not "1 jobs"."""
    report = engine_scores[2]
    assert "    mean_test = Problem 1: the mean\n" in report
    assert "    mean_restored = Problem 1: the mean\n" in report
    assert "    mean_tools = Problem 1: the mean\n" in report
    assert "    quartiles_test = Problem 5: quartiles\n" in report
    header, *rows = re.search(r"^stats .*\n(?:  \S.*\n)+", report, re.M).group().splitlines()
    assert header.split()[1:5] == ["mean_test", "mean_restored", "mean_tools", "variance_test"], \
        header
    for row in rows:
        assert len(row.rsplit("  ", 1)[0]) == len(header.rsplit("  ", 1)[0]), (header, row)
    assert " with 1 job in " in report


def test_a_gradebook_the_course_configures(stock_release, tmp_path):
    """c.CourseDirectory.db_url in the course's nbgrader_config.py: the engine's own
    bookkeeping uses that gradebook as nbgrader does (no stray gradebook.db in the course,
    the assignment found there, the table filled, a refused submission zeroed there)."""
    course = stock_release.clone(str(tmp_path / "course"))
    elsewhere = tmp_path / "elsewhere" / "gradebook.db"
    elsewhere.parent.mkdir()
    shutil.move(os.path.join(course.root, "gradebook.db"), elsewhere)
    config = os.path.join(course.root, "nbgrader_config.py")
    text = open(config).read().replace(
        "nbconfine.configure(c", f'c.CourseDirectory.db_url = "sqlite:///{elsewhere}"\n'
                                 "nbconfine.configure(c")
    with open(config, "w") as f:
        f.write(text)
    report = course.grade("above", jobs=1)
    assert not os.path.exists(os.path.join(course.root, "gradebook.db"))
    assert "added to the gradebook" not in report
    assert re.search(r"^  above .* 9/14$", report, re.M), report
    assert "above/stats: nbgrader could not grade stats.ipynb" in report
    assert "Graded 1 submission with 1 job in " in report


def test_no_execute_grades_the_outputs_saved(stock_release, tmp_path):
    """`nbgrader autograde --no-execute` runs no cell with the engine either: the outputs
    the student saved are graded, as stock nbgrader grades them (an error saved in a test
    cell costs its points, a passing answer left unrun keeps them)."""
    course = stock_release.clone(str(tmp_path / "course"))
    path = os.path.join(course.root, "submitted", "correct", STOCK, STOCK + ".ipynb")
    nb = nbformat.read(path, as_version=4)
    saved = nbformat.v4.new_output("error", ename="SavedError", evalue="", traceback=[])
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "mean_test":
            cell.outputs = [saved]
    nbformat.write(nb, path)
    course.autograde(STOCK, "--no-execute", "--student", "correct")
    cells = [c for c in autograded(course, "correct").cells if c.cell_type == "code"]
    assert {c.execution_count for c in cells} == {None}
    assert [c.outputs for c in cells if c.metadata.get("nbgrader", {}).get("grade_id")
            == "mean_test"] == [[saved]]
    scores = {cell: s for (student, cell), s in course.cell_scores().items()
              if student == "correct"}
    assert scores["mean_test"] == 0 and scores["variance_test"] > 0


def probe_violations(course, listener):
    """What the probe (graded in ``course``) gained."""
    text = text_of(course, "probe")
    found = [line for line in text.splitlines() if "GAINED" in line]
    if "data 6 scratch écrit" not in text:
        found.append("the data file or scratch file did not work: " + text[-500:])
    if SECRET in text:
        found.append("the secret is in an output")
    return found + [f"reached the listener: {r}" for r in listener.reached()]


def test_probes_reach_nothing_as_root(stock_release, engine_scores, listener):
    course, scores, report = engine_scores
    assert "Confinement: mount/PID/network/IPC namespaces" in report, report
    assert probe_violations(course, listener) == []
    kept = os.listdir(os.path.join(course.root, "autograded", "probe", STOCK))
    assert "scratch.txt" in kept and "passwd-link" not in kept
    assert {c: s for (st, c), s in scores.items() if st == "probe"} == \
        {c: s for (st, c), s in scores.items() if st == "correct"}


def test_probes_reach_nothing_as_a_normal_user(stock_release, listener):
    """The probe graded by an unprivileged user on a copy of the course it owns."""
    user = User(f"nbmode{os.getpid() % 100000}", home=False)
    parent = tempfile.mkdtemp(prefix="nbconfine-nbmode-")
    os.chmod(parent, 0o755)
    try:
        course = stock_release.clone(os.path.join(parent, "course"))
        for student in os.listdir(os.path.join(course.root, "submitted")):
            if student not in ("probe", "correct"):
                shutil.rmtree(os.path.join(course.root, "submitted", student))
        probe = os.path.join(course.root, "submitted", "probe", STOCK, STOCK + ".ipynb")
        nb = nbformat.read(probe, as_version=4)
        for cell in nb.cells:
            cell.source = cell.source.replace(stock_release.root, course.root)
        nbformat.write(nb, probe)
        subprocess.run(["chown", "-R", f"{user.name}:", course.root], check=True)
        report = user.run(sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
                          "--jobs", "1", env={SECRET_NAME: SECRET}, cwd=course.root)
        assert "Confinement: user/mount/PID/network/IPC namespaces" in report, report
        assert probe_violations(course, listener) == []
        scores = course.cell_scores()
        assert {c: s for (st, c), s in scores.items() if st == "probe"} == \
            {c: s for (st, c), s in scores.items() if st == "correct"}
    finally:
        user.remove()
        shutil.rmtree(parent, ignore_errors=True)


def test_without_namespaces_landlock_keeps_the_probe_to_its_folder(stock_release, listener,
                                                                     tmp_path):
    """Namespaces, the empty root and seccomp forced missing (and accepted): the sandbox
    works in a private copy, and Landlock alone keeps it from every other file."""
    course = stock_release.clone(str(tmp_path / "course"))
    for student in os.listdir(os.path.join(course.root, "submitted")):
        if student != "probe":
            shutil.rmtree(os.path.join(course.root, "submitted", student))
    probe = os.path.join(course.root, "submitted", "probe", STOCK, STOCK + ".ipynb")
    nb = nbformat.read(probe, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace(stock_release.root, course.root)
    nbformat.write(nb, probe)
    report = course.grade(jobs=1, extra_env={
        SECRET_NAME: SECRET, "UNCONFINED": "1",
        "NBCONFINE_CONFINE_MISSING": "namespaces,empty-root,seccomp"})
    assert "MISSING: namespaces, empty-root, seccomp" in report
    # Without namespaces or seccomp the host's UDP is open (Landlock covers TCP only).
    assert set(probe_violations(course, listener)) <= {
        "GAINED UDP", "reached the listener: b'x'"}
    assert not [name for name in os.listdir(tempfile.gettempdir())
                if name.startswith("nbconfine-notebook-")], "a private copy was left behind"


def test_two_jobs_grade_the_same(engine_scores, engine_two_jobs):
    assert engine_two_jobs[1] == engine_scores[1]
    assert "Graded 8 submissions with 2 jobs" in engine_two_jobs[2]


def test_feedback_hand_grades_and_a_missing_notebook(engine_two_jobs):
    """Readable feedback (hidden tests hidden), a hand grade kept unflagged through a
    regrade, and a submission without its notebook scoring zero on every cell."""
    course = engine_two_jobs[0]
    done = course.nbgrader("generate_feedback", STOCK, "--force")
    assert done.returncode == 0, done.stderr[-2000:]
    page = open(os.path.join(course.root, "feedback", "wrong-a", STOCK, STOCK + ".html"),
                encoding="utf-8").read()
    assert "mean([]) should raise ValueError" in page and "mean([-1, 1, 3, 5])" not in page
    with Gradebook(course.db_url) as gb:
        gb.find_grade("interpretation", STOCK, STOCK, "correct").manual_score = 1.0
        gb.db.commit()
    os.remove(course.submit("missing", {}))
    report = course.grade("[cm]*", jobs=1)
    assert "missing/stats: stats.ipynb is missing; it scores zero" in report
    with Gradebook(course.db_url) as gb:
        hand = gb.find_grade("interpretation", STOCK, STOCK, "correct")
        assert (hand.manual_score, hand.needs_manual_grade) == (1.0, False)
    scores = course.cell_scores()
    missing = {c: s for (st, c), s in scores.items() if st == "missing"}
    assert len(missing) == 9 and all(s == 0 for s in missing.values()), missing


def failed_cells(output):
    """The docstrings (first lines) of the cells `nbgrader validate` says failed."""
    blocks = output.split("The following cell failed:")[1:]
    return {block.strip().splitlines()[0].strip() for block in blocks}


def test_nbgrader_validate_agrees(engine_scores):
    """A complete submission validates and gets every point; a failing one's failed
    cells (partial credit counts as failed) are the ones the engine gives less."""
    course, scores, _ = engine_scores
    docstrings = {c.metadata["nbgrader"]["grade_id"]: c.source.splitlines()[0]
                  for c in autograded(course, "correct").cells
                  if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    for student in ("correct", "wrong-a"):  # (wrong-b's loop: validate's 30 s time limit)
        path = os.path.join(course.root, "submitted", student, STOCK, STOCK + ".ipynb")
        done = course.nbgrader("validate", path)
        less = {docstrings[c] for (st, c), s in scores.items() if st == student
                and c in docstrings and s < scores["correct", c]}
        if student == "correct":
            assert "Success!" in done.stdout and not less, done.stdout[-2000:]
        else:
            assert failed_cells(done.stdout) == less and len(less) == 4, done.stdout[-3000:]


def test_nothing_imports_torch_nor_a_local_run_dask(stock_release):
    """A course without torch: neither the grader nor the zygote imports it; nor does a
    local run import Dask (nbconfine.clusterplugin: 0.3 to 0.5 s a command)."""
    code = ("import sys, nbconfine.notebook, nbconfine.execute, nbconfine.autograde, "
            "nbconfine.worker, nbconfine.kernel, nbconfine.settings\n"
            "from nbconfine import zygote\n"
            "from nbconfine.settings import load_config, zygote_spec\n"
            f"z = zygote.Zygote(zygote_spec(load_config({stock_release.root!r})))\n"
            "from nbconfine.notebook import NotebookSandbox\n"
            f"box = NotebookSandbox(z, 2**30, {stock_release.root!r}, 2**20)\n"
            "import json\nreply, _ = box.run('import sys; print(\"torch\" in sys.modules)', 30, 4)\n"
            "print(reply['outputs'][0]['text'].strip(), 'torch' in sys.modules, "
            "'distributed' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, UNCONFINED="1"))
    assert done.stdout.split() == ["False"] * 3, done.stdout + done.stderr[-2000:]


# Cells whose outputs in an ipykernel kernel are known: (source, the stdout expected, the
# error's ename or None).
KERNEL_CELLS = [
    ("%tb", "", None),  # before any error, on stderr: "No traceback available to show."
    # matplotlib lists the fonts (fc-list) once per home: nothing on stderr
    ("from matplotlib import font_manager\nprint(len(font_manager.fontManager.ttflist) > 0)",
     "True\n", None),
    # the backends that draw in the notebook need no event loop: no error
    ("%matplotlib notebook\n%matplotlib inline", "", None),
    # what a cell sets in a context variable holds in the next ones (one task in ipykernel)
    ("import decimal\nimport numpy as np\ndecimal.getcontext().prec = 5\n"
     "np.seterr(divide='ignore');", "", None),
    ("print(decimal.Decimal(1) / 7, np.float64(1) / 0)", "0.14286 inf\n", None),
    # a forked child writing more than a pipe holds, waited for
    ("import os\npid = os.fork()\nif pid == 0:\n    os.write(1, b'y' * 1_500_000 + b'\\n')\n"
     "    os._exit(0)\nos.waitpid(pid, 0)\nprint('child done')",
     "y" * 1_500_000 + "\nchild done\n", None),
    ("x_stored = 5\n%store x_stored", "Stored 'x_stored' (int)\n", None),
    ("exit()\nprint('the cell goes on')", "the cell goes on\n", None),
    ("print('after exit')", "after exit\n", None),
    ("import asyncio\nasync def seven():\n    return 7\nasyncio.run(seven())", "", "RuntimeError"),
    ("print(await seven())", "7\n", None),
    ("print('z' * (5 * 2**22))", "z" * 4 * 2**20 + "\n... Output truncated ...\n", None),
    ("import getpass\ngetpass.getpass()", "", "StdinNotImplementedError"),
    ("len?", "", None),  # the pager's text goes in the reply's payload, which nbclient drops
    ("import os\nprint(os.environ['TERM'], os.environ['FORCE_COLOR'], os.environ['PAGER'])",
     "xterm-color 1 cat\n", None),  # ipykernel's shell sets them
    # the environment's interpreter by its name on PATH, as in an activated environment
    ("import os, subprocess, sys\nprint(subprocess.run([os.path.basename(sys.executable), "
     "'-c', 'import nbformat']).returncode)", "0\n", None),
    # an error the cell keeps IPython from showing: nbgrader adds it from the kernel's reply
    ("get_ipython().showtraceback = lambda *args, **kwargs: None\n1 / 0", "",
     "ZeroDivisionError"),
]


def test_a_sandbox_behaves_as_ipykernel(stock_release):
    """What stock nbgrader's kernel (ipykernel) does with a forked child's large output,
    %store, exit(), asyncio.run inside its running loop, top-level await, a huge output
    (kept whole there, then cut by LimitOutput: marked where it is cut here), getpass,
    the pager (`obj?`), the shell's environment and PATH, `%matplotlib notebook`, context
    variables (decimal's precision, numpy's seterr), %tb before any error, matplotlib's
    first font listing, and an error whose traceback the learner's code hid: each cell's
    stdout, stderr and errors as there."""
    code = ("import json, sys\nfrom nbconfine import zygote\n"
            "from nbconfine.settings import load_config, zygote_spec\n"
            "from nbconfine.notebook import NotebookExecute, NotebookSession\n"
            f"config = load_config({stock_release.root!r})\n"
            "session = NotebookSession(zygote.Zygote(zygote_spec(config)), "
            f"{stock_release.root!r}, NotebookExecute(config=config, timeout=60))\n"
            "for source in json.loads(sys.stdin.read()):\n"
            "    print(json.dumps(session.run(source)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, UNCONFINED="1"),
                          input=json.dumps([source for source, _, _ in KERNEL_CELLS]))
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(replies) == len(KERNEL_CELLS), done.stdout[-2000:] + done.stderr[-2000:]
    for (source, stdout, ename), outputs in zip(KERNEL_CELLS, replies):
        def text(name):
            return "".join(o.get("text", "") for o in outputs if o.get("name") == name)
        assert text("stdout") == stdout, source
        assert [o["ename"] for o in outputs if o["output_type"] == "error"] == \
            ([ename] if ename else []), source
        assert text("stderr") == ("No traceback available to show.\n" if source == "%tb"
                                  else ""), source


def test_a_notebook_of_another_language_is_left_ungraded():
    """A notebook whose kernel is not Python's is not run as Python: a fault of the grader
    (reported, left ungraded), never a learner's zero."""
    code = ("import nbformat\nfrom nbconfine import faults\n"
            "from nbconfine.notebook import NotebookExecute\n"
            "nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'bash', "
            "'language': 'bash', 'display_name': 'Bash'}})\n"
            "try:\n    NotebookExecute().preprocess(nb, {})\n"
            "except faults.GraderFault as fault:\n    print(fault)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "kernel is 'bash' (language bash): the engine runs Python notebooks only" in \
        done.stdout, done.stdout + done.stderr[-2000:]


def test_make_grades_a_stock_assignment_dropped_into_this_course(stock_release, stock_scores,
                                                                  tmp_path):
    """The stock assignment copied into source/ of a scratch copy of this course, a third
    assignment, nothing else changed: `make release` releases it (its data file too),
    `make publish`, `collect` and `return` take it in (printed by make -n, not run:
    tests/test_exchange.py runs the exchange), `make autograde feedback grades` grades it
    as stock nbgrader does, and the report, the table of `make grades` and grades.csv
    list it."""
    course = Course(str(tmp_path / "course"))
    shutil.copy(os.path.join(REPO, "Makefile"), course.root)
    shutil.copytree(os.path.join(stock_release.root, "source", STOCK),
                    os.path.join(course.root, "source", STOCK))
    done = subprocess.run(MAKE + ["release"], cwd=course.root, env=course.env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(os.path.join(course.root, "release"))) == \
        sorted(["normalization", "batchnorm", STOCK])
    assert sorted(os.listdir(os.path.join(course.root, "release", STOCK))) == \
        sorted(os.listdir(os.path.join(stock_release.root, "release", STOCK)))
    # publish releases every assignment; collect and return name each (nothing to act on)
    exchanged = subprocess.run(MAKE + ["exchange", "publish", "collect", "return",
                                       f"EXCHANGE={tmp_path / 'exchange'}"], cwd=course.root,
                               env=course.env, capture_output=True, text=True, timeout=300)
    assert exchanged.returncode == 0, exchanged.stderr[-3000:]
    for assignment in ("batchnorm", "normalization", STOCK):
        assert f"nbgrader release_assignment {assignment} " in exchanged.stdout
        assert os.path.isdir(tmp_path / "exchange" / "normalization-layers" / "outbound"
                             / assignment), assignment
        assert f"{assignment}: no submissions in the exchange" in exchanged.stdout
        assert f"{assignment}: no feedback in feedback/" in exchanged.stdout
    stock = StockCourse.__new__(StockCourse)
    stock.root, stock.env = course.root, course.env
    reference = demo.reference_answers(STOCK, course_root=course.root)
    students = ["correct", "wrong-a"]
    stock.submit("correct", {**reference, "variance_answer": VARIANCE_WITH_HELPER},
                 added=[("mean_restored", ADDED_HELPER)])
    for student in students[1:]:
        stock.submit(student, {**reference, **WRONG[student][0]})
    done = subprocess.run(MAKE + ["autograde", "feedback", "grades", "JOBS=2"], cwd=course.root,
                          env=course.env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert os.path.exists(os.path.join(course.root, "feedback", "correct", STOCK, STOCK + ".html"))
    ours = stock.cell_scores()
    theirs = stock_scores[1]
    for student in students:
        assert {k: v for k, v in ours.items() if k[0] == student} == \
            {k: v for k, v in theirs.items() if k[0] == student}, student
    with open(os.path.join(course.root, "grades.csv"), newline="") as f:
        totals = {(r["student"], r["assignment"]): float(r["score"]) for r in csv.DictReader(f)}
    assert totals == {(student, STOCK): sum(score or 0 for (s, _), score in ours.items()
                                            if s == student) for student in students}
    tables = re.findall(rf"^{STOCK} .*\n((?:  \S.*\n)+)", done.stdout, re.M)
    assert len(tables) == 2, done.stdout  # the report's, then the one `make grades` prints
    for rows in tables:
        assert [row.split()[0] for row in rows.splitlines()] == students, done.stdout
