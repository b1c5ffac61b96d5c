"""Parallel autograde: the same grades as a sequential run, idempotent, nothing lost.

The runs are made by the `parallel_runs` fixture (conftest.py)."""

import copy
import os
import signal
import subprocess
import sys

from conftest import MANUAL_SCORE, REGRADED
from coursedir import wait_for

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


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def children(pid):
    """Child pids of ``pid`` (none if it is gone; threads may end while read)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def worker_pids(wrapper_pid):
    """Children of the autograde wrapper that are its forked workers (same command line;
    the zygote's is `python -m nbconfine.forkserver`)."""
    command = cmdline(wrapper_pid)
    return [c for c in children(wrapper_pid) if command and cmdline(c) == command]


def processes_with(marker):
    """Pids whose command line holds ``marker``: the zygote's socket path, unique to one
    run, is on the zygote's command line and so on every sandbox forked from it."""
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
            and marker in cmdline(pid)]


def test_a_worker_killed_mid_run_costs_only_its_student(course):
    """A worker killed (the OOM killer, an operator) loses the student it was grading,
    reported; another takes its place (one job: nobody else would grade the rest)."""
    reference = course.reference("normalization")
    students = [f"kill-{k}" for k in range(3)]
    for student in students:
        course.submit(student, "normalization", reference)
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root, "--jobs", "1",
         "--students", "kill-*"], cwd=course.root, env=course.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def running():
        assert wrapper.poll() is None, wrapper.communicate()
        return worker_pids(wrapper.pid)
    workers = wait_for(running, 120, "the worker")
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
        [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root, "--jobs", "2",
         "--students", "int-*"], cwd=course.root, env=course.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    def running():
        assert wrapper.poll() is None, wrapper.communicate()
        return worker_pids(wrapper.pid)
    workers = wait_for(running, 120, "the workers")
    worker_command = cmdline(workers[0])
    zygote = wait_for(lambda: [c for c in children(wrapper.pid)
                               if b"nbconfine.forkserver" in cmdline(c)], 60, "the zygote")
    socket_path = cmdline(zygote[0]).rstrip(b"\0").split(b"\0")[-1]
    assert socket_path.endswith(b"zygote.sock"), cmdline(zygote[0])
    # Interrupted while sandboxes run (so not vacuous, as root or not).
    wait_for(lambda: set(processes_with(socket_path)) - set(zygote), 120, "a sandbox")
    os.killpg(wrapper.pid, signal.SIGINT)
    _, errors = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 130, errors[-3000:]
    assert "Interrupted. Grading again is safe" in errors and "Traceback" not in errors
    wait_for(lambda: not (processes_with(socket_path)
                          or [w for w in workers if cmdline(w) == worker_command]),
             30, "every worker, the zygote and every sandbox to end")
    report = course.grade("int-*", jobs=2)
    assert "Problems found: 0" in report
    for student in students:
        assert all(s == m for s, m in course.scores()[student, "normalization"].values())
