"""Parallel autograde: the same grades as a sequential run, idempotent, nothing lost.

The runs are made by the `parallel_runs` fixture (conftest.py)."""

import copy

from conftest import MANUAL_SCORE

def test_two_jobs_rerun_gives_the_sequential_grades_and_outputs(parallel_runs):
    """The 2-job run re-grades what the 1-job run graded: same grades, same outputs."""
    runs, _, _, _ = parallel_runs
    (_, sequential, seq_nbs), (_, parallel, par_nbs) = runs[1], runs[2]
    sequential = copy.deepcopy(sequential)  # the fixture is shared with other tests
    sequential["par-reference", "batchnorm"]["q1"][0] = MANUAL_SCORE  # graded by hand between
    assert sequential == parallel
    assert seq_nbs == par_nbs


def test_grades_given_by_hand_survive_a_parallel_regrade(parallel_runs):
    runs, _, _, _ = parallel_runs
    assert runs[2][1]["par-reference", "batchnorm"]["q1"] == [MANUAL_SCORE, 2.0]


def test_every_submission_is_graded_and_reported(parallel_runs):
    runs, students, _, _ = parallel_runs
    report, scores, _ = runs[2]
    assert set(scores) == {(s, a) for s, assignments in students.items() for a in assignments}
    for student in students:
        assert student in report
    assert f"Graded {len(scores)} submissions with 2 jobs" in report


def test_submitted_is_never_modified(parallel_runs):
    _, _, before, after = parallel_runs
    assert before == after


def test_mistakes_cost_points_in_parallel_too(parallel_runs):
    runs, _, _, _ = parallel_runs
    scores = runs[2][1]
    assert scores["par-reference", "normalization"]["p3"] == [5.0, 5.0]
    assert scores["par-p3_flipped_momentum", "normalization"]["p3"][0] < 5
    assert scores["par-bn_torch_momentum", "batchnorm"]["bn"][0] < 18
