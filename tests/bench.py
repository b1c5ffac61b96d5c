"""Benchmark: autograde N generated submissions; print every figure from this one run.

    python tests/bench.py [N]            (or `make bench N=40`)
    python tests/bench.py N --cluster    (or `make bench N=40 CLUSTER=1`)

Figures: seconds per submission with 1 job; the floor, a fresh Jupyter kernel that only
imports torch (what nbgrader's own autograde pays per submission, at least); their
ratio; the speedup of 2 jobs over 1 (mean times of two trials each); and the compute
of each problem's tests.

With ``--cluster``: a Dask scheduler and single-process workers on this machine, started
here (tests/daskcluster.py), against a scratch PostgreSQL database (created from
NORMGRADE_TEST_PG_URL, default .ci/postgres's server); the same submissions graded on 1
and 2 workers and by a local 1-job run on the same gradebook, in the order
CLUSTER_TRIALS (the first one, which creates the gradebook rows, is a cluster one):
the 2-worker speedup, and each mode's seconds per submission, whole commands timed.
"""
import collections
import os
import re
import statistics
import sys
import tempfile
import time

import nbformat
from jupyter_client.manager import KernelManager

from catalog import MUTANTS
from coursedir import NBGRADER_ENV, REPO, Course

KERNEL_SAMPLES = 3
TRIALS = (1, 2, 2, 1)  # job counts, in the order they run
CLUSTER_TRIALS = (("cluster", 1), ("local", 1), ("cluster", 2), ("cluster", 2), ("local", 1),
                  ("cluster", 1))
DEFAULT_PG_URL = "postgresql+psycopg2://grader:grader@127.0.0.1:5432/gradebook"


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


def make_submissions(course, count):
    """``count`` normalization submissions: reference answers with a few mutants each."""
    reference = course.reference("normalization")
    mutants = [m for m in MUTANTS if m.problem != "bn"]
    for k in range(count):
        chosen = {f"{m.problem}_answer": m.code for m in mutants[k % len(mutants)::37][:3]}
        course.submit(f"bench-{k:03d}", "normalization", {**reference, **chosen})


def timed_grading(course, jobs):
    start = time.monotonic()
    course.grade("bench-*", jobs=jobs)
    return time.monotonic() - start


def problem_seconds():
    """Seconds each problem's cells take in ProblemExecute, reference answers, warm zygote."""
    from nbconfine import settings
    from nbconfine.problems import ProblemExecute
    nb = nbformat.read(os.path.join(REPO, "source", "normalization", "normalization.ipynb"), 4)
    executor = ProblemExecute(config=settings.load_config(REPO))
    executor.preprocess(nbformat.from_dict(nb), {})  # warms the zygote
    executor.preprocess(nb, {})
    return executor.problem_seconds


def main(count):
    """Each trial grades the same submissions from scratch, in a fresh copy of one course;
    job counts alternate 1, 2, 2, 1 so that a drift in the machine's speed cancels."""
    trials = []  # (jobs, seconds), in order
    with tempfile.TemporaryDirectory() as scratch:
        base = Course(os.path.join(scratch, "base"))
        base.release()
        make_submissions(base, count)
        for k, jobs in enumerate(TRIALS):
            trials.append((jobs, timed_grading(base.clone(os.path.join(scratch, str(k))), jobs)))
    one, two = (statistics.mean(s for j, s in trials if j == jobs) for jobs in (1, 2))
    floor = kernel_floor()
    per_submission = one / count
    print(f"submissions:                     {count} (normalization, 7 problems each)")
    print("trials (jobs: seconds):          " + ", ".join(f"{j}: {s:.1f}" for j, s in trials))
    print(f"seconds per submission, 1 job:   {per_submission:.2f} s  ({one:.1f} s in all)")
    print(f"floor (kernel + import torch):   {floor:.2f} s")
    print(f"ratio to the floor:              {per_submission / floor:.2f}  (target <= 1.3)")
    print(f"2 jobs:                          {two:.1f} s, speedup {one / two:.2f}x  (target >= 1.7)")
    print("test compute per problem (s):    " + ", ".join(
        f"{p} {s:.2f}" for p, s in problem_seconds().items()))


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
        make_submissions(course, count)
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


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--cluster"]
    count = int(arguments[0]) if arguments else 80
    sys.exit(cluster_main(count) if "--cluster" in sys.argv else main(count))
