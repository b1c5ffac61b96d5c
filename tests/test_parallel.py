"""Parallel autograde: the same grades as a sequential run, idempotent, nothing lost.

The runs are made by the `parallel_runs` fixture (conftest.py)."""

import copy

from conftest import MANUAL_SCORE, REGRADED

def test_two_jobs_give_the_grades_and_outputs_of_one(parallel_runs):
    """Two fresh copies of the course, one graded with 1 job and one with 2: same grades,
    same outputs, for every student (so every worker's rows arrived)."""
    runs, students, _, _ = parallel_runs
    (_, sequential, seq_nbs), (_, parallel, par_nbs) = runs[1], runs[2]
    submitted = {(s, a) for s, assignments in students.items() for a in assignments}
    assert set(sequential) == submitted
    assert sequential == parallel
    assert seq_nbs == par_nbs


def test_a_regrade_rewrites_every_score_and_keeps_those_given_by_hand(parallel_runs):
    """Two students (so both workers) regraded with 2 jobs after q1 was graded by hand and
    their autograded scores were made stale: each autograded score is back, the hand-given
    one is kept."""
    runs, _, _, _ = parallel_runs
    expected = {k: copy.deepcopy(v) for k, v in runs[1][1].items() if k[0] in REGRADED}
    expected["par-reference", "batchnorm"]["q1"][0] = MANUAL_SCORE
    assert len(expected) == 4 and runs["regrade"][1] == expected
    assert runs["regrade"][2] == {k: v for k, v in runs[1][2].items() if k in expected}
    assert "Graded 4 submissions with 2 jobs" in runs["regrade"][0]
    assert runs["regrade"][1]["par-reference", "batchnorm"]["q1"] == [MANUAL_SCORE, 2.0]


def test_every_submission_is_graded_and_reported(parallel_runs):
    runs, students, _, _ = parallel_runs
    report, scores, _ = runs[2]
    assert set(scores) == {(s, a) for s, assignments in students.items() for a in assignments}
    assert len(scores) >= 8
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
