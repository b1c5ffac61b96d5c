"""Reference answers and the untouched release through real `nbgrader autograde`."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ASSIGNMENTS

WRITTEN = {f"q{k}" for k in range(1, 7)}


def code_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            for output in cell.outputs:
                yield grade_id, output


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_answers_get_every_point(graded, assignment):
    scores = graded.scores()[("reference", assignment)]
    for problem, (score, max_score) in scores.items():
        if problem in WRITTEN:
            assert score is None, f"{problem} must wait for manual grading"
        else:
            assert score == max_score, (problem, score, max_score)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_gets_nothing(graded, assignment):
    scores = graded.scores()[("blank", assignment)]
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


def test_feedback_hides_hidden_tests(graded):
    done = graded.nbgrader("generate_feedback", "normalization", "--force")
    assert done.returncode == 0, done.stderr
    html = open(os.path.join(graded.root, "feedback", "blank", "normalization",
                             "normalization.html")).read()
    assert "Hidden test: its code is not shown" in html
    assert "check.function_matches(&quot;p1&quot;, custom_batch_norm1d, [(2, 1)" not in html
    assert "seed=101" not in html and "BEGIN HIDDEN" not in html
    assert "your function" in html or "expected a tensor" in html
