"""Benchmark: autograde N generated submissions of each assignment; every figure from this run.

    python tests/bench.py [N] [ASSIGNMENT ...]   (or `make bench N=40`)
    python tests/bench.py N --cluster            (or `make bench N=40 CLUSTER=1`)

For each assignment (default: all):
- the compute floor: the instructor notebook's code cells (setup, solutions, visible
  checks, hidden tests) run in a new process, torch imported and the notebook run once
  before (warm), one torch thread as in grading; the median of FLOOR_RUNS runs. It is
  the work grading exists to do, once; each visible check cell's own seconds are printed
  too (what a learner waits for on every click; the budget is VISIBLE_BUDGET);
- seconds per submission of `nbconfine autograde --jobs 1` (whole commands timed, start-up
  included), its ratio to the floor, and the speedup of 2 jobs over 1: job counts 1, 2,
  2, 1 on fresh copies of one course, so a drift in the machine's speed cancels; and how
  busy the machine's processors were during each job count (/proc/stat): the speedup of
  2 jobs cannot exceed the ratio of the two;
- where one more 1-job run's time goes (NBCONFINE_PROFILE, nbconfine/stages.py): each
  stage's seconds per submission; start-up is the command's time before and after its
  worker grades (zygote, nbgrader's import and configuration, prechecks, merge, report).
Then, side by side: a Jupyter kernel started bare that imports torch, `nbgrader validate`
of a complete notebook of each assignment (a new process: nbgrader's import, the kernel
started meanwhile, importing the first cell's installed modules, then the Validator, the
visible checks), and the Validate button's work (the same Validator in a process that
has nbgrader loaded, as JupyterLab's server runs it), medians of KERNEL_SAMPLES.

Submissions: reference answers, each with catalog mistakes in a few problems
(tests/catalog.py), so that failing checks are graded too.

With ``--cluster``: a Dask scheduler and single-process workers on this machine, started
here (tests/daskcluster.py), against a scratch PostgreSQL database (created from
NORMGRADE_TEST_PG_URL, default .ci/postgres's server); the same submissions graded on 1
and 2 workers and by a local 1-job run on the same gradebook, in the order
CLUSTER_TRIALS (the first one, which creates the gradebook rows, is a cluster one):
the 2-worker speedup, and each mode's seconds per submission, whole commands timed.
"""
import collections
import contextlib
import glob
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import nbformat
from jupyter_client.manager import KernelManager

from catalog import MUTANTS
from coursedir import ASSIGNMENTS, NBGRADER_ENV, NBGRADER_SCRIPT, REPO, Course

KERNEL_SAMPLES = 3
FLOOR_RUNS = 5
# The parts measured in a process of their own: bench.py --floor-of ASSIGNMENT prints one
# floor as JSON; bench.py --button NOTEBOOK, the Validate button's median seconds.
FLOOR_ARGUMENT, BUTTON_ARGUMENT = "--floor-of", "--button"
VISIBLE_BUDGET = 0.3  # seconds a visible check cell may take in the learner's kernel
TRIALS = (1, 2, 2, 1)  # job counts, in the order they run
CLUSTER_TRIALS = (("cluster", 1), ("local", 1), ("cluster", 2), ("cluster", 2), ("local", 1),
                  ("cluster", 1))
DEFAULT_PG_URL = "postgresql+psycopg2://grader:grader@127.0.0.1:5432/gradebook"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def kernel_floor():
    """Median seconds to start a kernel and import torch in it."""
    samples = []
    for _ in range(KERNEL_SAMPLES):
        start = time.monotonic()
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel()
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        client.execute_interactive("import torch", timeout=120)
        samples.append(time.monotonic() - start)
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return statistics.median(samples)


def validate_seconds(course, assignment):
    """Median seconds of `nbgrader validate` of a complete notebook (reference answers),
    run as a student types it: the environment's nbgrader script (whose interpreter
    starts the notebook's kernel early, nbconfine.early_kernel)."""
    path = course.submit("bench-validate", assignment, course.reference(assignment))
    samples = []
    for _ in range(KERNEL_SAMPLES):
        start = time.monotonic()
        done = subprocess.run([NBGRADER_SCRIPT, "validate", path], cwd=course.root,
                              env=course.env, capture_output=True, text=True, timeout=600)
        samples.append(time.monotonic() - start)
        assert done.returncode == 0 and "Success!" in done.stdout, done.stdout + done.stderr
    return statistics.median(samples)


def button_seconds(course, assignment):
    """Median seconds of the Validate button's work: the JupyterLab server, nbgrader
    loaded already, runs the same Validator in its own process (nbgrader's
    validate_assignment handler), its configuration loaded for each click."""
    path = course.submit("bench-validate", assignment, course.reference(assignment))
    done = subprocess.run([sys.executable, os.path.abspath(__file__), BUTTON_ARGUMENT, path],
                          cwd=os.path.dirname(path), env=course.env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return float(done.stdout.split()[-1])


def button_here(path):
    """``button_seconds``'s figure, measured in this process: nbgrader imported first."""
    from nbgrader.server_extensions.validate_assignment.handlers import \
        ValidateAssignmentHandler
    from nbgrader.validator import Validator
    samples = []
    for _ in range(KERNEL_SAMPLES):
        start = time.monotonic()
        result = Validator(config=ValidateAssignmentHandler.load_config(None)).validate(path)
        samples.append(time.monotonic() - start)
        assert not result.get("failed") and not result.get("changed"), result
    return statistics.median(samples)


def make_submissions(course, assignment, count):
    """``count`` submissions: reference answers with a few catalog mistakes each."""
    reference = course.reference(assignment)
    mutants = [m for m in MUTANTS if f"{m.problem}_answer" in reference]
    for k in range(count):
        if len({m.problem for m in mutants}) > 1:  # up to three problems with a mistake
            chosen = mutants[k % len(mutants)::37][:3]
        else:  # one problem: every other submission has a mistake
            chosen = [mutants[(k // 2) % len(mutants)]] if k % 2 else []
        course.submit(f"bench-{assignment}-{k:03d}", assignment,
                      {**reference, **{f"{m.problem}_answer": m.code for m in chosen}})


def instructor_cells(assignment):
    """[(name, source, what the learner's copy runs, or None for a solution)] of the code
    cells of the instructor notebook, hidden tests included in ``source``."""
    nb = nbformat.read(os.path.join(REPO, "source", assignment, ASSIGNMENTS[assignment]), 4)
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        visible = None if meta.get("solution") else cell.source.split(HIDDEN_BEGIN)[0]
        cells.append((meta.get("grade_id") or f"cell {index + 1}", cell.source, visible))
    return cells


def run_cells(cells, which):
    """Run the cells' ``which`` code ("source" or "visible", solutions in full) in a fresh
    namespace; returns {name: seconds} of the cells that are not solutions."""
    namespace, seconds = {"__name__": "__main__"}, {}
    with contextlib.redirect_stdout(io.StringIO()):
        for grade_id, source, visible in cells:
            code = visible if which == "visible" and visible is not None else source
            start = time.perf_counter()
            exec(compile(code, grade_id or "<cell>", "exec"), namespace)
            if visible is not None:
                seconds[grade_id] = time.perf_counter() - start
    return seconds


def compute_floor(assignment):
    """(median seconds of the instructor notebook's cells, their median CPU seconds, {cell
    the learner runs as released, solutions aside: median seconds}), warm, measured in a
    new process each time (torch imported, the notebook run once): a process that has run
    the notebook many times hands large tensors back from its heap instead of new pages,
    and reads lower as a run goes on (batchnorm: 0.31 to 0.22 s over four measurements),
    where every grading sandbox is a new process."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), FLOOR_ARGUMENT,
                           assignment], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(json.loads(done.stdout.splitlines()[-1]))


def floor_here(assignment):
    """``compute_floor``'s figures, measured in this process."""
    import torch
    torch.set_num_threads(1)  # as each grading process and sandbox
    sys.path.insert(0, os.path.join(REPO, "course"))  # what the notebook imports as normcheck
    import normcheck
    cells = instructor_cells(assignment)
    run_cells(cells, "source")  # warm: lazy imports and first calls

    def fresh(which):  # a run that finds no reference computed (a grader's first submission)
        normcheck._REMEMBERED.clear()
        return run_cells(cells, which)

    def timed(function, *args):
        start, cpu = time.perf_counter(), time.thread_time()
        function(*args)
        return time.perf_counter() - start, time.thread_time() - cpu
    whole = [timed(fresh, "source") for _ in range(FLOOR_RUNS)]
    visible = [fresh("visible") for _ in range(FLOOR_RUNS)]
    return (statistics.median(w for w, _ in whole), statistics.median(c for _, c in whole),
            {g: statistics.median(v[g] for v in visible) for g in visible[0]})


def cpu_ticks():
    """(busy, all) clock ticks of the machine's processors so far (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def timed_grading(course, pattern, jobs, extra_env=None, busy=None):
    """Seconds of one `nbconfine autograde --jobs JOBS` run; with ``busy`` (a list), the
    fraction of the machine's processors busy meanwhile is appended to it."""
    ticks, start = cpu_ticks(), time.monotonic()
    report = course.grade(pattern, jobs=jobs, extra_env=extra_env)
    seconds = time.monotonic() - start
    assert "Problems found" in report, report
    if busy is not None:
        after = cpu_ticks()
        busy.append((after[0] - ticks[0]) / max(1, after[1] - ticks[1]))
    return seconds


def profiled_grading(course, pattern, count, folder):
    """({stage: (wall, CPU) seconds per submission}, start-up wall seconds per submission)
    of one 1-job run whose worker times its stages (nbconfine/stages.py)."""
    seconds = timed_grading(course, pattern, 1, {"NBCONFINE_PROFILE": folder})
    wall, cpu, graded = collections.Counter(), collections.Counter(), 0.0
    for path in glob.glob(os.path.join(folder, "stages-*.json")):
        with open(path) as f:
            profile = json.load(f)
        wall.update(profile["stages"])
        cpu.update(profile["cpu"])
        graded += profile["seconds"]
    return ({stage: (s / count, cpu[stage] / count) for stage, s in wall.most_common()},
            (seconds - graded) / count)


def assignment_figures(scratch, assignment, count):
    base = Course(os.path.join(scratch, assignment, "base"))
    base.release()
    make_submissions(base, assignment, count)
    pattern = f"bench-{assignment}-*"
    trials, floors, busy = [], [], []  # (jobs, seconds), in order; the floor before each
    for k, jobs in enumerate(TRIALS):
        floors.append(compute_floor(assignment))  # measured beside the trials: same load
        copy = base.clone(os.path.join(scratch, assignment, str(k)))
        trials.append((jobs, timed_grading(copy, pattern, jobs, busy=busy)))
    stages, startup = profiled_grading(base.clone(os.path.join(scratch, assignment, "p")),
                                       pattern, count, os.path.join(scratch, assignment, "prof"))
    one, two = (statistics.mean(s for j, s in trials if j == jobs) for jobs in (1, 2))
    floor, floor_cpu = (statistics.median(f[i] for f in floors) for i in (0, 1))
    visible = floors[-1][2]
    cpu = sum(c for _, c in stages.values())
    per = one / count
    print(f"== {assignment}: {count} submissions", flush=True)
    print("trials (jobs: seconds):            " + ", ".join(f"{j}: {s:.1f}" for j, s in trials))
    print(f"seconds per submission, 1 job:     {per:.3f} s  ({one:.1f} s in all)")
    print(f"compute floor (notebook, warm):    {floor:.3f} s  (median, measured before each "
          "trial)")
    print(f"ratio to the floor:                {per / floor:.2f}  (target <= 2)")
    print(f"CPU per submission (grader and sandbox, the profiled run): {cpu:.3f} s, floor's "
          f"{floor_cpu:.3f} s: {cpu / floor_cpu:.2f}x (what load does not inflate; start-up, "
          "forks and waits aside)")
    print(f"2 jobs:                            {two:.1f} s, speedup {one / two:.2f}x  "
          "(target >= 1.8)")
    used = {jobs: statistics.mean(b for (j, _), b in zip(trials, busy) if j == jobs)
            for jobs in (1, 2)}
    print(f"processors busy:                   1 job {used[1]:.0%}, 2 jobs {used[2]:.0%} of "
          f"{os.cpu_count()}  (1 job already uses {used[1] * os.cpu_count():.2f} of them: "
          "forks ahead, sandboxes' exits, the zygote; 2 jobs can be at most "
          f"{used[2] / used[1]:.2f}x as fast on this machine)")
    ranked = sorted(visible.items(), key=lambda item: -item[1])
    print(f"cells as released, warm (s):       {', '.join(f'{g} {t:.3f}' for g, t in ranked[:6])}"
          f"{', ...' if len(ranked) > 6 else ''}  (budget {VISIBLE_BUDGET} each; "
          f"{sum(t > VISIBLE_BUDGET for _, t in ranked)} over)")
    print("where a 1-job run's time goes, s per submission (the run's own total "
          f"{startup + sum(w for w, _ in stages.values()):.3f}); CPU: the grader's, and the "
          "sandbox's for its compute")
    print("     wall      CPU")
    print(f"  {startup:7.3f}        -  start-up and finish (zygote, nbgrader, prechecks, "
          "merge, report)")
    for stage, (wall, cpu) in stages.items():
        print(f"  {wall:7.3f}  {cpu:7.3f}  {stage}")
    return base


def main(count, assignments):
    """Each assignment's figures, then the kernel and `nbgrader validate` side by side."""
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)",
          flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        courses = {a: assignment_figures(scratch, a, count) for a in assignments}
        floor = kernel_floor()
        validate = {a: validate_seconds(course, a) for a, course in courses.items()}
        button = {a: button_seconds(course, a) for a, course in courses.items()}
    print("== validate")
    print(f"kernel + import torch:             {floor:.2f} s")
    for assignment, seconds in validate.items():
        print(f"nbgrader validate {assignment + ':':<16}{seconds:.2f} s, {seconds / floor:.2f}x "
              "the kernel  (target <= 1.5; nbgrader's own import is part of it)")
        print(f"Validate button {assignment + ':':<18}{button[assignment]:.2f} s, "
              f"{button[assignment] / floor:.2f}x the kernel  (target <= 1.5)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def cluster_main(count):
    """Cluster trials (mode, workers or jobs) in CLUSTER_TRIALS order; prints the figures."""
    from daskcluster import Cluster, autograde
    from pgserver import scratch_database
    trials, split = [], []  # (mode, n, seconds); submissions per worker of each cluster trial
    with tempfile.TemporaryDirectory() as scratch, \
            scratch_database(os.environ.get("NORMGRADE_TEST_PG_URL", DEFAULT_PG_URL),
                             prefix="bench_cluster") as url:
        course = Course(os.path.join(scratch, "course"),
                        env=dict(NBGRADER_ENV, NBGRADER_DB_URL=url))
        course.release()
        make_submissions(course, "normalization", count)
        cluster = Cluster(os.path.join(scratch, "dask"))
        try:
            for mode, n in CLUSTER_TRIALS:
                if mode == "cluster":
                    cluster.add_workers(n)
                start = time.monotonic()
                if mode == "cluster":
                    report, errors = autograde(course, "--students", "bench-*", "--scheduler",
                                               cluster.address).communicate()
                    assert f"Graded {count} submissions" in report, errors[-3000:]
                    with open(os.path.join(course.root, "autograded", "logs",
                                           "cluster.log")) as log:
                        split.append(sorted(collections.Counter(
                            re.findall(r"^==> .*, on (\S+)$", log.read(), re.M)).values()))
                else:
                    course.grade("bench-*", jobs=n)
                trials.append((mode, n, time.monotonic() - start))
                cluster.stop_workers()
        finally:
            cluster.stop()
    mean = {key: statistics.mean(s for m, n, s in trials if (m, n) == key)
            for key in {(m, n) for m, n, _ in trials}}
    local, one, two = mean["local", 1], mean["cluster", 1], mean["cluster", 2]
    print(f"submissions:                      {count} (normalization, 7 problems each)")
    print("trials (seconds):                 " + ", ".join(
        f"{m} {n}: {s:.1f}" for m, n, s in trials))
    print(f"local, 1 job:                     {local / count:.2f} s per submission")
    print(f"cluster, 1 worker:                {one / count:.2f} s per submission, "
          f"{one / local:.2f}x the local run's  (target <= 1.2)")
    print(f"cluster, 2 workers:               {two:.1f} s, speedup {one / two:.2f}x over 1 "
          "worker  (target >= 1.7)")
    print(f"submissions per worker:           {split}")


if __name__ == "__main__" and sys.argv[1:2] == [FLOOR_ARGUMENT]:  # compute_floor's process
    print(json.dumps(floor_here(sys.argv[2])))
elif __name__ == "__main__" and sys.argv[1:2] == [BUTTON_ARGUMENT]:  # button_seconds's
    print(button_here(sys.argv[2]))
elif __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--cluster"]
    count = int(arguments[0]) if arguments else 80
    chosen = arguments[1:] or list(ASSIGNMENTS)
    unknown = set(chosen) - set(ASSIGNMENTS)
    if unknown:
        sys.exit(f"bench: unknown assignment(s) {', '.join(sorted(unknown))}; "
                 f"the course has {', '.join(ASSIGNMENTS)}")
    sys.exit(cluster_main(count) if "--cluster" in sys.argv else main(count, chosen))
