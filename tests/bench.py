"""Benchmark: autograde N generated submissions; print every figure from this one run.

    python tests/bench.py [N]        (or `make bench N=40`)

Figures: seconds per submission with 1 job; the floor, a fresh Jupyter kernel that only
imports torch (what nbgrader's own autograde pays per submission, at least); their
ratio; the speedup of 2 jobs over 1 (mean times of two trials each); and the compute
of each problem's tests.
"""
import os
import statistics
import sys
import tempfile
import time

import nbformat
from jupyter_client.manager import KernelManager

from catalog import MUTANTS
from coursedir import REPO, Course

KERNEL_SAMPLES = 3
TRIALS = (1, 2, 2, 1)  # job counts, in the order they run


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
    """Seconds each problem's cells take in SandboxExecute, reference answers, warm zygote."""
    from normgrade.execute import SandboxExecute
    nb = nbformat.read(os.path.join(REPO, "source", "normalization", "normalization.ipynb"), 4)
    executor = SandboxExecute()
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


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 80))
