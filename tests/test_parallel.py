"""Parallel autograde: the same grades as a sequential run, idempotent, nothing lost.

The runs are made by the `parallel_runs` fixture (conftest.py)."""

import copy
import os
import signal
import subprocess
import sys
import time

from conftest import MANUAL_SCORE
from normgrade import sandbox

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


def test_a_student_id_that_is_a_glob_pattern_is_not_graded(course):
    """nbgrader globs paths with the student id: `gl[1]` would be graded from `gl1`'s
    notebook. It is reported and scores zero; `gl1` is graded from its own."""
    course.submit("gl[1]", "normalization", course.reference("normalization"))
    course.submit("gl1", "normalization", {})
    report = course.grade("gl*", jobs=2)
    assert "gl[1]/normalization: the student id holds one of * ? [ ]" in report
    scores = course.scores()
    assert all(s == 0 for s, _ in scores["gl[1]", "normalization"].values())
    assert all(s == 0 for s, _ in scores["gl1", "normalization"].values())
    assert not os.path.exists(os.path.join(course.root, "autograded", "gl[1]"))
    assert "Graded 1 submissions" in report


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(child) for child in f.read().split()]
    return found


def worker_pids(wrapper_pid):
    """Children of the autograde wrapper that are its forked workers (same command line;
    the zygote's is `python -m normgrade.sandbox`)."""
    return [c for c in children(wrapper_pid) if cmdline(c) == cmdline(wrapper_pid)]


def sandbox_processes():
    """Processes running as a sandbox's user id (as root, each sandbox has its own)."""
    def uid(pid):
        try:
            with open(f"/proc/{pid}/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
        except OSError:
            return None
    return [pid for pid in os.listdir("/proc") if pid.isdigit()
            and (uid(pid) or 0) >= sandbox.SANDBOX_UID_BASE]


def test_a_worker_killed_mid_run_costs_only_its_student(course):
    """A worker killed (the OOM killer, an operator) loses the student it was grading,
    reported; another takes its place (one job: nobody else would grade the rest)."""
    reference = course.reference("normalization")
    students = [f"kill-{k}" for k in range(3)]
    for student in students:
        course.submit(student, "normalization", reference)
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "normgrade.autograde", "--root", course.root, "--jobs", "1",
         "--students", "kill-*"], cwd=course.root, env=course.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (workers := worker_pids(wrapper.pid)):
        assert wrapper.poll() is None and time.monotonic() < deadline, wrapper.communicate()
        time.sleep(0.01)
    os.kill(workers[0], signal.SIGKILL)
    report, errors = wrapper.communicate(timeout=600)
    assert wrapper.returncode == 0, errors[-3000:]
    died = [line.split("/")[0].strip() for line in report.splitlines()
            if "its grading worker died" in line]
    assert len(died) == 1 and died[0] in students, report
    scores = course.scores()
    for student in set(students) - set(died):
        assert (student, "normalization") in scores, f"{student} was never graded"
        assert all(s == m for s, m in scores[student, "normalization"].values()), student
    again = course.grade(died[0], jobs=2)
    assert "Problems found: 0" in again
    assert all(s == m for s, m in course.scores()[died[0], "normalization"].values())


def test_ctrl_c_stops_everything_and_a_rerun_grades_all(course):
    """Ctrl-C (SIGINT to the terminal's process group): the wrapper says what to do, no
    worker, zygote or sandbox is left, and running it again grades every submission."""
    students = [f"int-{k}" for k in range(3)]
    for student in students:
        course.submit(student, "normalization", course.reference("normalization"))
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "normgrade.autograde", "--root", course.root, "--jobs", "2",
         "--students", "int-*"], cwd=course.root, env=course.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not worker_pids(wrapper.pid):
        assert wrapper.poll() is None and time.monotonic() < deadline, wrapper.communicate()
        time.sleep(0.01)
    zygote = [c for c in children(wrapper.pid) if b"normgrade.sandbox" in cmdline(c)]
    os.killpg(wrapper.pid, signal.SIGINT)
    _, errors = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 130, errors[-3000:]
    assert "Interrupted. Grading again is safe" in errors and "Traceback" not in errors
    time.sleep(0.5)  # killed sandboxes may take a moment to go
    left = [pid for pid in os.listdir("/proc") if pid.isdigit()
            and (course.root.encode() in cmdline(pid) or int(pid) in zygote)]
    assert zygote and not left and not sandbox_processes(), (zygote, left)
    report = course.grade("int-*", jobs=2)
    assert "Problems found: 0" in report
    for student in students:
        assert all(s == m for s, m in course.scores()[student, "normalization"].values())
