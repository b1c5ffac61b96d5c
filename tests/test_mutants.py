"""The catalog through the real autograde: every mutant is caught, on its own problem only."""
import nbformat
import pytest

from catalog import CORRECT, MUTANTS
from conftest import ASSIGNMENTS, REPO
from mutation import ASSIGNMENT_OF, kill_table, run

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
}


@pytest.mark.parametrize("name", NAMED)
def test_messages_name_the_mistake(results, name):
    outcome = next(o for o in results.outcomes if o.answer.name == name)
    assert any(NAMED[name] in m for m in outcome.messages), outcome.messages
