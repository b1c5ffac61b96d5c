"""Reference answers and the untouched release through real `nbgrader autograde`."""
import copy
import csv
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import nbformat
import pytest
from nbclient import NotebookClient

from attacks import CODE_PROBLEMS
from conftest import ASSIGNMENTS, REPO
from coursedir import instructor_tests
from course import demo

WRITTEN = {f"q{k}" for k in range(1, 7)}
CODE = CODE_PROBLEMS  # each assignment's code problems (the others are written answers)


def code_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            for output in cell.outputs:
                yield grade_id, output


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_answers_get_every_point(graded, assignment):
    scores = graded.scores()[("reference", assignment)]
    assert set(CODE[assignment]) <= set(scores), scores
    for problem, (score, max_score) in scores.items():
        if problem in WRITTEN:
            assert score is None, f"{problem} must wait for manual grading"
        else:
            assert score == max_score, (problem, score, max_score)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_gets_nothing(graded, assignment):
    scores = graded.scores()[("blank", assignment)]
    assert set(CODE[assignment]) <= set(scores), scores
    assert all(score == 0 for score, _ in scores.values()), scores


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_answers_write_no_error_and_no_stderr(graded, assignment):
    """nbgrader scores a test cell zero if it writes to stderr: a correct answer never does."""
    for grade_id, output in code_outputs(graded.autograded("reference", assignment)):
        assert output.output_type != "error", (grade_id, output.get("evalue"))
        assert output.get("name") != "stderr", (grade_id, output.get("text"))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_release_fails_with_messages_not_crashes(graded, assignment):
    """Every failed check of the untouched release says why, in one line."""
    nb = graded.autograded("blank", assignment)
    errors = [(gid, o) for gid, o in code_outputs(nb) if o.output_type == "error"]
    assert errors
    for grade_id, output in errors:
        assert output.evalue and "Traceback" not in "".join(output.traceback), grade_id
        assert output.ename != "AnswerFault", (grade_id, output.evalue)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_checks_pass_in_a_jupyter_kernel(graded, assignment):
    """A learner's kernel: the reference answers pass every visible check, silently."""
    path = os.path.join(graded.root, "submitted", "reference", assignment,
                        ASSIGNMENTS[assignment])
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    for grade_id, output in code_outputs(nb):
        assert output.output_type != "error", (grade_id, output.get("evalue"))
        assert output.get("name") != "stderr", (grade_id, output.get("text"))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_accepts_the_reference(graded, assignment):
    path = os.path.join(graded.root, "submitted", "reference", assignment,
                        ASSIGNMENTS[assignment])
    done = graded.nbgrader("validate", path)
    assert done.returncode == 0 and "Success!" in done.stdout, done.stdout[-2000:]


def html_text(path):
    """The text a reader sees in an HTML file: tags stripped, entities unescaped."""
    parts = []

    class Text(html.parser.HTMLParser):
        def handle_data(self, data):
            parts.append(data)

    parser = Text(convert_charrefs=True)
    parser.feed(open(path, encoding="utf-8").read())
    parser.close()
    return "".join(parts)


def source_lines(assignment, hidden):
    """Stripped lines of the instructor's test code: inside the hidden-test regions
    (``hidden``), or of the visible test cells outside them."""
    return {line.strip() for _, visible, hidden_code in instructor_tests(assignment)
            for line in (hidden_code if hidden else visible).splitlines()
            if len(line.strip()) > 12}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_hides_hidden_tests(graded, assignment):
    """Feedback of a student whose hidden tests passed (reference) and of one whose
    failed (blank): the visible checks' code and every result are shown, no line of a
    hidden test, no seed of one, as a reader of the page sees its text."""
    done = graded.nbgrader("generate_feedback", assignment, "--force",
                           "--student=[rb][el][fa]*")
    assert done.returncode == 0, done.stderr
    hidden, visible = source_lines(assignment, True), source_lines(assignment, False)
    release = nbformat.read(os.path.join(REPO, "release", assignment, ASSIGNMENTS[assignment]), 4)
    public = "\n".join([c.source for c in release.cells]  # shown in the feedback anyway
                       + list(graded.reference(assignment).values()))
    hidden = {line for line in hidden if line not in public}
    seeds = {seed for line in hidden for seed in re.findall(r"seed=\d+", line)
             if not re.search(rf"\b{seed}\b", public)}
    assert len(hidden) >= 3 and visible, "nothing to look for"
    for student in ("reference", "blank"):
        text = html_text(os.path.join(graded.root, "feedback", student, assignment,
                                      assignment + ".html"))
        assert "Hidden test: its code is not shown" in text
        assert visible & {line.strip() for line in text.splitlines()}, "visible checks shown"
        assert not [line for line in hidden if line in text]
        assert not [seed for seed in seeds if re.search(rf"\b{seed}\b", text)]
        assert "BEGIN HIDDEN" not in text
        if student == "blank":  # its failures are shown
            assert "AssertionError" in text or "expected a tensor" in text


# ---------------------------------------------------------------------------
# One run of the wrapper over many unusual submissions (students `edge*`)
# ---------------------------------------------------------------------------

GLOB_IDS = ("edge[1]", "edge*2", "edge?3")
UNGRADABLE = {  # student: the report line saying why its normalization scores zero
    "edge-missing": "normalization.ipynb is missing; it scores zero",
    "edge-timestamp": "nbgrader could not grade it",
    "edge-file": "not a folder; it scores zero",
    "edge-setup-twice": "nbgrader could not grade normalization.ipynb",
    "edge-link": "symbolic links are not accepted (normalization.ipynb); not graded, "
                 "it scores zero",
}
P4_IDENTITY = "def custom_batch_norm2d(input_tensor, eps):\n    return input_tensor\n"
P2_SYNTAX = "def custom_batch_norm1d(input_tensor, weight, bias, eps)\n    return input_tensor\n"
# Switches the checks' operator recorder off (found through gc), then answers correctly.
P1_NO_RECORD = '''import gc


class _Deaf(set):
    def add(self, op):
        pass


def _deafen():
    for thing in gc.get_objects():
        if type(thing).__name__ == "OpRecorder":
            thing.ops = _Deaf()


'''


P1_FORBIDDEN = (  # torch's own batch norm, reached by a name no source check can see
    "def custom_batch_norm1d(input_tensor, eps):\n"
    "    layer = getattr(torch.nn.functional, 'batch' + '_norm')\n"
    "    return layer(input_tensor, None, None, training=True, eps=eps)\n")
# 6 GiB mapped, never touched: past a sandbox's 4 GiB of address space, costs no memory.
MEMORY_HOG = "import mmap\n_hog = mmap.mmap(-1, 6 * 2**30)\n"
SLEEPER = "import time\ntime.sleep(40)  # longer than a cell's 10 s\n"


def edit_cells(path, sources=(), metadata=()):
    """Set the sources {grade_id: source} and nbgrader metadata {grade_id: {key: value},
    or None to strip it} of a submitted notebook's cells."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        if name in dict(sources):
            cell.source = dict(sources)[name]
        if name in dict(metadata) and dict(metadata)[name] is None:
            del cell.metadata["nbgrader"]  # stripped
        elif name in dict(metadata):
            cell.metadata["nbgrader"].update(dict(metadata)[name])
    nbformat.write(nb, path)


def submit_edge_students(course):
    submitted = os.path.join(course.root, "submitted")
    reference = course.reference("normalization")
    with tempfile.TemporaryDirectory() as demos:  # `make demo`'s students, renamed
        demo.write_demo_submissions(demos)
        for student in os.listdir(demos):
            shutil.move(os.path.join(demos, student), os.path.join(submitted, "edge-" + student))
    for student in GLOB_IDS:
        course.submit(student, "normalization", reference)
    course.submit("edge1", "normalization", {})  # what nbgrader would grade for edge[1]
    os.remove(course.submit("edge-missing", "normalization", reference))
    path = course.submit("edge-timestamp", "normalization", reference)
    with open(os.path.join(os.path.dirname(path), "timestamp.txt"), "w") as f:
        f.write("yesterday, I think\n")
    os.makedirs(os.path.join(submitted, "edge-file"))
    shutil.copy(os.path.join(course.root, "release", "normalization", "normalization.ipynb"),
                os.path.join(submitted, "edge-file", "normalization"))
    path = course.submit("edge-setup-twice", "normalization", reference)
    nb = nbformat.read(path, as_version=4)  # two cells with grade_id setup: nbgrader refuses
    nb.cells.append(copy.deepcopy(next(c for c in nb.cells
                                       if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")))
    nbformat.write(nb, path)
    path = course.submit("edge-link", "normalization", reference)
    os.remove(path)
    os.symlink("../../../source/normalization/normalization.ipynb", path)
    os.makedirs(os.path.join(submitted, "edge-homework", "homework3"))
    course.submit("edge-syntax", "normalization", {**reference, "p2_answer": P2_SYNTAX})
    edit_cells(course.submit("edge-edited", "normalization", {**reference,
                                                              "p4_answer": P4_IDENTITY}),
               sources={"p4_example": "pass", "p4_hidden_values": "pass"})
    course.submit("edge-forbidden", "normalization", {**reference, "p1_answer": P1_FORBIDDEN})
    course.submit("edge-memory", "normalization",
                  {**reference, "p7_answer": MEMORY_HOG + reference["p7_answer"]})
    course.submit("edge-sleeper", "normalization",
                  {**reference, "p6_answer": SLEEPER + reference["p6_answer"]})
    edit_cells(course.submit("edge-setup-stripped", "normalization", reference),
               metadata={"setup": None})
    course.submit("edge-no-record", "normalization", {**reference, "p1_answer": (
        P1_NO_RECORD + reference["p1_answer"].replace(
            '    """\n', '    """\n    _deafen()\n', 1))})


@pytest.fixture(scope="module")
def edge(course):
    """The edge students graded in one run (2 jobs), then `nbconfine grades`."""
    submit_edge_students(course)
    report = course.grade("edge*", jobs=2)
    done = subprocess.run([sys.executable, "-m", "nbconfine", "grades"], cwd=course.root,
                          env=course.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(course.root, "grades.csv"), newline="") as f:
        totals = {(r["student"], r["assignment"]): (float(r["score"]), float(r["max_score"]))
                  for r in csv.DictReader(f)}
    scores = {k: v for k, v in course.scores().items() if k[0].startswith("edge")}
    return types.SimpleNamespace(course=course, report=report, scores=scores, totals=totals,
                                 lines=report.split("Problems found:", 1)[1].splitlines()[1:])


def line_about(edge, student, assignment="normalization"):
    found = [line.strip() for line in edge.lines
             if line.strip().startswith(f"{student}/{assignment}: ")]
    assert len(found) == 1, (student, edge.lines)
    return found[0]


def code_scores(edge, student, assignment="normalization"):
    scores = edge.scores[student, assignment]
    return {p: scores[p] for p in CODE[assignment] if p in scores}


def assert_full_but(edge, student, problem, assignment="normalization"):
    """Every code problem of the submission scores full points but ``problem``; returns
    that one's [score, max]."""
    scores = code_scores(edge, student, assignment)
    assert set(scores) == set(CODE[assignment]), scores
    assert all(s == m for p, (s, m) in scores.items() if p != problem), scores
    return scores[problem]


def test_make_demo_submissions_score_as_designed(edge):
    """demo-complete gets every point, demo-blank none, demo-mistake loses points on its
    two mistaken problems (p1, p3) and on bn only."""
    for assignment in ASSIGNMENTS:
        complete = code_scores(edge, "edge-demo-complete", assignment)
        assert set(complete) == set(CODE[assignment])
        assert all(s == m > 0 for s, m in complete.values())
        blank = code_scores(edge, "edge-demo-blank", assignment)
        assert set(blank) == set(CODE[assignment]) and all(s == 0 for s, _ in blank.values())
    mistake = code_scores(edge, "edge-demo-mistake")
    assert {p for p, (s, m) in mistake.items() if s < m} == {"p1", "p3"}, mistake
    score, max_score = assert_full_but(edge, "edge-demo-mistake", "bn", "batchnorm")
    assert score < max_score


@pytest.mark.parametrize("student", sorted(UNGRADABLE))
def test_an_ungradable_notebook_is_reported_and_exported_as_zero(edge, student):
    """A missing notebook, a bad timestamp.txt, a file for the assignment folder, a notebook
    nbgrader refuses, a symbolic link: the report says why, the gradebook holds a zero for
    every problem, and grades.csv lists the student with 0 of 35."""
    assert UNGRADABLE[student] in line_about(edge, student)
    scores = code_scores(edge, student)
    assert set(scores) == set(CODE["normalization"]), scores
    assert all(s == 0 < m for s, m in scores.values()), scores
    assert edge.totals[student, "normalization"] == (0, 35)


@pytest.mark.parametrize("student", GLOB_IDS)
def test_a_student_id_that_is_a_glob_pattern_is_not_graded(edge, student):
    """nbgrader globs paths with the student id: `edge[1]` would be graded from `edge1`'s
    notebook, `edge*2` and `edge?3` from anyone's. Reported, zero, never autograded;
    `edge1` is graded from its own (blank) notebook."""
    assert "the student id holds one of * ? [ ]" in line_about(edge, student)
    scores = code_scores(edge, student)
    assert set(scores) == set(CODE["normalization"]) and all(s == 0 for s, _ in
                                                              scores.values())
    assert not os.path.exists(os.path.join(edge.course.root, "autograded", student))
    edge1 = code_scores(edge, "edge1")
    assert set(edge1) == set(CODE["normalization"]) and all(s == 0 for s, _ in edge1.values())


def test_the_run_counts_what_it_graded(edge):
    """6 demo submissions, edge1 and the 9 notebooks that reach nbgrader; not the glob
    ids, the symbolic link, the file or the submission without its notebook."""
    assert "Graded 16 submissions with 2 jobs" in edge.report


def test_a_folder_that_is_no_assignment_is_reported_and_ignored(edge):
    assert line_about(edge, "edge-homework", "homework3") == (
        "edge-homework/homework3: not an assignment of this course (batchnorm, "
        "normalization): ignored")
    assert not [k for k in edge.scores if k[0] == "edge-homework"]


def test_a_syntax_error_costs_its_problem_only(edge):
    assert assert_full_but(edge, "edge-syntax", "p2") == [0, 5]
    nb = edge.course.autograded("edge-syntax", "normalization")
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "p2_answer")
    assert [o.ename for o in answer.outputs if o.output_type == "error"] == ["SyntaxError"]


def test_edited_test_cells_are_restored_beside_a_wrong_answer(edge):
    """p4's example and hidden test cells made `pass` (3 points if kept) beside an answer
    that returns its input: restored, the answer scores what it deserves, 0."""
    assert line_about(edge, "edge-edited") == ("edge-edited/normalization: test cells "
                                               "edited, restored from the gradebook: "
                                               "p4_example, p4_hidden_values")
    assert assert_full_but(edge, "edge-edited", "p4") == [0, 5]


def test_an_answer_that_switches_the_operator_record_off_scores_zero(edge):
    assert assert_full_but(edge, "edge-no-record", "p1") == [0, 5]
    nb = edge.course.autograded("edge-no-record", "normalization")
    messages = [o.evalue for c in nb.cells for o in c.get("outputs", [])
                if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("p1_")
                and o.output_type == "error"]
    assert messages and all("no operators were recorded" in m for m in messages), messages


def test_report_txt_is_the_printed_report(edge):
    """autograded/report.txt holds what the run printed: the table (every edge student),
    the count and each problem found."""
    with open(os.path.join(edge.course.root, "autograded", "report.txt")) as f:
        saved = f.read()
    assert saved == edge.report
    assert f"Problems found: {len(edge.lines)}" in saved and len(edge.lines) >= 10
    for student in ["edge-demo-mistake", "edge-missing", *GLOB_IDS]:
        assert re.search(rf"^  {re.escape(student)} .* \d+/35$", saved, re.M), student


def test_torch_normalization_reached_by_a_computed_name_scores_zero(edge):
    """The source never names batch_norm: the operators the answer ran give it away."""
    assert assert_full_but(edge, "edge-forbidden", "p1") == [0, 5]


def test_a_sandbox_past_its_memory_limit_costs_its_problem(edge):
    """6 GiB mapped (never touched): past the 4 GiB limit, the answer cell fails."""
    assert assert_full_but(edge, "edge-memory", "p7") == [0, 5]


def test_a_cell_past_its_time_limit_costs_its_problem(edge):
    assert assert_full_but(edge, "edge-sleeper", "p6") == [0, 5]
    nb = edge.course.autograded("edge-sleeper", "normalization")
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
                  == "p6_answer")
    assert "did not finish within the time limit" in str(answer.outputs)


def test_instructor_cells_come_from_the_gradebook(edge):
    """The setup cell with its metadata stripped is still the instructor's: put back and
    run in the grader, so correct answers get every point."""
    scores = code_scores(edge, "edge-setup-stripped")
    assert set(scores) == set(CODE["normalization"])
    assert all(s == m > 0 for s, m in scores.values()), scores
