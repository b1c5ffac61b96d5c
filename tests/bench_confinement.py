"""Benchmark: what confinement costs per submission, against a grader without it.

    python tests/bench_confinement.py [N] [BASELINE]   (BASELINE: a git revision, default
                                                        the commit before normgrade/confine.py)

Grades the same N submissions (tests/bench.py's) with this grader and with BASELINE's
(its normgrade/ and nbgrader_config.py in a copy of the same course), 2 jobs, trials
alternating baseline, confined, confined, baseline so that a drift in the machine's
speed cancels; prints seconds per submission and their ratio (the budget: <= 1.10).
"""
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

from bench import make_submissions
from coursedir import REPO, Course

TRIALS = ("baseline", "confined", "confined", "baseline")


def baseline_revision():
    """The last commit before normgrade/confine.py existed."""
    first = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--",
                            "normgrade/confine.py"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()[-1]
    return first + "~1"


def install_grader(course, revision):
    """Replace ``course``'s grading code by ``revision``'s."""
    archive = subprocess.run(["git", "archive", revision, "normgrade", "nbgrader_config.py"],
                             cwd=REPO, capture_output=True, check=True).stdout
    shutil.rmtree(os.path.join(course.root, "normgrade"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(course.root, filter="data")


def main(count, revision):
    seconds = {name: [] for name in set(TRIALS)}
    with tempfile.TemporaryDirectory() as scratch:
        course = Course(os.path.join(scratch, "course"))
        course.release()
        make_submissions(course, count)
        for k, name in enumerate(TRIALS):
            trial = course.clone(os.path.join(scratch, str(k)))
            if name == "baseline":
                install_grader(trial, revision)
            start = time.monotonic()
            trial.grade("bench-*", jobs=2)
            seconds[name].append(time.monotonic() - start)
    base, confined = (statistics.mean(seconds[name]) / count for name in ("baseline", "confined"))
    print(f"submissions:                 {count} (normalization, 7 problems each), 2 jobs")
    print(f"baseline:                    {revision}")
    print("trials (seconds):            " + ", ".join(
        f"{name} {seconds[name][TRIALS[:k].count(name)]:.1f}" for k, name in enumerate(TRIALS)))
    print(f"per submission, baseline:    {base:.3f} s")
    print(f"per submission, confined:    {confined:.3f} s")
    print(f"ratio:                       {confined / base:.3f}  (budget <= 1.10)")


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40,
                  sys.argv[2] if len(sys.argv) > 2 else baseline_revision()))
