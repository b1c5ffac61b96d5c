"""The catalog through the real autograde: every mutant is caught, on its own problem only."""
import nbformat
import pytest

from catalog import CORRECT, MUTANTS, VISIBLE_BLIND
from conftest import ASSIGNMENTS, REPO
from mutation import ASSIGNMENT_OF, kill_table, run, visible_misses

FAMILIES = {"estimator", "reduction", "running", "affine", "contract"}


@pytest.fixture(scope="session")
def results(course):
    results = run(course)
    print(kill_table(results))
    return results


def test_catalog_is_large_and_covers_every_problem():
    assert len(MUTANTS) >= 40 and len(CORRECT) >= 10
    assert {a.problem for a in MUTANTS} == set(ASSIGNMENT_OF)
    assert {a.family for a in MUTANTS} == FAMILIES
    assert all(a.family == "correct" for a in CORRECT)
    names = [a.name for a in MUTANTS + CORRECT]
    assert len(names) == len(set(names))


def test_every_mutant_loses_points_on_its_problem(results):
    survivors = [o.answer.name for o in results.outcomes
                 if o.answer.family != "correct" and o.lost <= 0]
    assert not survivors, survivors


def test_mutants_cost_nowhere_else(results):
    assert not results.collateral


def test_correct_alternatives_keep_every_point(results):
    lost = [(o.answer.name, o.lost, o.messages) for o in results.outcomes
            if o.answer.family == "correct" and o.lost != 0]
    assert not lost, lost


def test_every_hidden_test_fails_on_some_mutant(results):
    caught = {grade_id for o in results.outcomes for grade_id in o.caught_by}
    hidden = set()
    for assignment, notebook in ASSIGNMENTS.items():
        nb = nbformat.read(f"{REPO}/source/{assignment}/{notebook}", as_version=4)
        hidden |= {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                   if "BEGIN HIDDEN TESTS" in c.source}
    assert hidden - caught == set(), sorted(hidden - caught)


def test_visible_checks_flag_every_answer_that_loses_hidden_points(results):
    """A learner alone, with the visible checks only, finds every kind of mistake."""
    assert not visible_misses(results), visible_misses(results)
    blind = {o.answer.name: o for o in results.outcomes if o.answer.name in VISIBLE_BLIND}
    assert set(blind) == set(VISIBLE_BLIND)
    assert all(o.hidden_failed and not o.visible for o in blind.values())  # the list is exact


def test_visible_checks_pass_on_correct_alternatives(results):
    flagged = [o.answer.name for o in results.outcomes if o.answer.family == "correct"
               and o.caught_by]
    assert not flagged, flagged


# Correct answers that compute in float32 for a float64 input: every point, and a note.
FLOAT32_ANSWERS = ["p1_float32_buffer_loop", "p2_float_then_affine", "p6_ones_buffer_loop",
                   "p6_float_zeros_loop", "p5_float_sample_loop", "p7_float_group_loop"]


@pytest.mark.parametrize("name", FLOAT32_ANSWERS)
def test_float32_computation_is_noted_without_cost(results, name):
    outcome = next(o for o in results.outcomes if o.answer.name == name)
    assert outcome.lost == 0
    assert "compared at float32 precision" in " ".join(outcome.printed.split())


def test_float64_answers_get_no_note(results):
    noted = [o.answer.name for o in results.outcomes if o.answer.family == "correct"
             and o.answer.name not in FLOAT32_ANSWERS and "float32 precision" in o.printed]
    assert not noted, noted


# One mistake, one diagnosis: every failed check of these names the same cause, values
# and gradients alike.
ONE_CAUSE = {
    "p1_unbiased_var": "unbiased (N-1) variance",
    "p2_weight_bias_swapped": "weight and bias swapped",
    "p2_np_sqrt": "NumPy functions",
    "p1_detached_stats": "hidden from autograd",
    "p6_float_loop_item_mean": "hidden from autograd",
    "p7_global_channels": "take every size from input_tensor.shape",
    "bn_moving_parameter": "it is an nn.Parameter",
}


@pytest.mark.parametrize("name", ONE_CAUSE)
def test_every_failed_check_names_the_same_cause(results, name):
    outcome = next(o for o in results.outcomes if o.answer.name == name)
    assert outcome.messages and all(ONE_CAUSE[name] in m for m in outcome.messages), \
        outcome.messages


def test_message_lines_fit_a_dialog(results):
    """No line of a check's message is longer than 100 characters, but a quoted error."""
    long = [(o.answer.name, line) for o in results.outcomes for line in o.message_lines
            if len(line) > 100 and "your code raised" not in line]
    assert not long, long


def test_partial_credit_is_possible(results):
    """Some mutants keep part of their problem's points: checks are graded separately."""
    partial = [o for o in results.outcomes if 0 < o.lost < o.max_score]
    assert len(partial) >= 5


# A phrase each of these mistakes must be named by, in some failed check's message.
NAMED = {
    "p1_unbiased_var": "unbiased (N-1) variance",
    "p1_eps_outside_sqrt": "outside the square root",
    "p1_numpy_float64": "keep the input's dtype",
    "p1_inplace_centering": "changed its input tensor in place",
    "p2_weight_bias_swapped": "weight and bias swapped",
    "p3_flipped_momentum": "moved by 1 - momentum instead of momentum",
    "p3_biased_running_var": "tracks the biased variance",
    "p3_eval_batch_stats": "uses the batch's own mean and variance",
    "p3_running_keeps_graph": "keeps autograd history",
    "p3_detached_input": "no gradient reached the input",
    "p4_per_instance": "that is instance norm",
    "p7_interleaved_groups": "(interleaved)",
    "bn_torch_momentum": "momentum weights the history",
    "bn_moving_keeps_graph": "keeps autograd history",
    "bn_beta_ones": "beta (shape (1, 7))",
    "p1_forbidden_untaken_branch": "uses torch's own normalization (batch_norm)",
    "p6_float_loop_item_mean": "allowed at float32 precision",
    "bn_test_input_in_place": "changed its input tensor in place",
    "p3_keepdim_running_stats": "running_mean holds one value per feature",
}


def test_numbers_shown_differ(results):
    """A value said to differ is printed with enough digits to show how."""
    import re
    same = [(o.answer.name, m) for o in results.outcomes for m in o.messages
            for got, want in re.findall(r"got (\S+), expected (\S+)\.", m) if got == want]
    assert not same, same


# Batchnorm answers whose seed tests are run again in the learner's kernel (in-process,
# the learner's objects shared with the tests, none copied): each of the ten tests must
# judge them as grading did. In-place updates of the moving averages or of the input
# are where the two used to part.
KERNEL_CHECKED = ["bn_seed_style", "bn_in_place_buffer_updates", "bn_copy_lerp_in_place",
                  "bn_moving_overwritten_in_place", "bn_test_input_in_place",
                  "bn_moving_parameter"]


def kernel_failures(code):
    """The grade ids of the batchnorm test cells bn_test0..9 that fail in a kernel where
    ``code`` is the answer cell: every cell before them run as the notebook runs it."""
    import contextlib
    import io
    nb = nbformat.read(f"{REPO}/source/batchnorm/{ASSIGNMENTS['batchnorm']}", as_version=4)
    namespace, failed = {}, set()
    with contextlib.chdir(f"{REPO}/source/batchnorm"), \
            contextlib.redirect_stdout(io.StringIO()):
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if cell.cell_type != "code" or grade_id in ("bn_run_tests", "bn_torch_check") \
                    or "BEGIN HIDDEN TESTS" in cell.source:
                continue
            try:
                exec(code if grade_id == "bn_answer" else cell.source, namespace)
            except Exception:
                failed.add(grade_id)
    return failed


@pytest.mark.parametrize("name", KERNEL_CHECKED)
def test_seed_tests_judge_in_a_kernel_as_in_grading(results, name):
    import sys
    sys.path.insert(0, f"{REPO}/source/batchnorm")  # normcheck, as beside the notebook
    outcome = next(o for o in results.outcomes if o.answer.name == name)
    graded = {g for g in outcome.caught_by if g.startswith("bn_test")}
    assert kernel_failures(outcome.answer.code) == graded


@pytest.mark.parametrize("name", NAMED)
def test_messages_name_the_mistake(results, name):
    outcome = next(o for o in results.outcomes if o.answer.name == name)
    assert any(NAMED[name] in m for m in outcome.messages), outcome.messages
