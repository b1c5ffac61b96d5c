"""Benchmark of `nbconfine serve` (feedback on arrival); every figure from this one run.

    python tests/bench_serve.py [BURST] [--single COUNT]   (or `make bench SERVE=1 N=40`)

A scratch course with its own exchange; its students submit with `nbgrader submit`
(`--student=ID`, all as the user running this, so the course switches nbgrader's
check_owner off). Figures:

- one at a time: COUNT submissions (default 20), each made once the previous one's
  feedback is out; latency = from the end of `nbgrader submit` to the moment the
  feedback that `nbgrader fetch_feedback` would fetch is in the exchange (the file named
  by the submission's secret, as fetch_feedback looks for it): p50 and p95 (nearest rank);
- a burst: BURST submissions (default 16) made while the service is stopped, then the
  service started: how fast it drains them, from its "Serving" line to the last feedback;
- side by side, on the same BURST submissions: `nbconfine autograde --jobs 2` alone, and
  then `nbconfine feedback`, as an instructor runs them by hand (each command timed
  whole, its start included, as the service's drain includes its feedback); the ratios
  of throughputs.

The service runs with 2 jobs. The machine's other load shows in the figures: compare the
ratios, measured in one run.
"""
import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from nbgrader.utils import notebook_hash

from catalog import MUTANTS
from coursedir import NBGRADER_ENV, Course
from course import demo
from nbconfine import exchange

COURSE_ID = "normalization-layers"  # nbgrader_config.py
ASSIGNMENT, NOTEBOOK = "normalization", "normalization"
JOBS = 2


def answers(k):
    """The reference answers with up to three mutants: submission k's."""
    mutants = [m for m in MUTANTS if m.problem != "bn"]
    return {**demo.reference_answers(ASSIGNMENT),
            **{f"{m.problem}_answer": m.code for m in mutants[k % len(mutants)::37][:3]}}


class Bench:
    def __init__(self, scratch):
        self.scratch = scratch
        self.course = Course(os.path.join(scratch, "course"))
        self.course.release()
        with open(os.path.join(self.course.root, "nbgrader_config.py"), "a") as f:
            f.write("\nc.ExchangeCollect.check_owner = False  # one user submits for all\n")
        self.exchange = os.path.join(scratch, "exchange")
        exchange.create(self.exchange, self.course.root, COURSE_ID, [ASSIGNMENT])
        self.env = dict(NBGRADER_ENV, NBGRADER_EXCHANGE=self.exchange)
        self.nbgrader("release_assignment", ASSIGNMENT, cwd=self.course.root)
        self.service = None

    def nbgrader(self, *args, cwd):
        subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"],
                       cwd=cwd, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def submit(self, student, k):
        """`nbgrader submit` as ``student`` of answers(k); returns (the moment it ended,
        the feedback file fetch_feedback will look for)."""
        home = os.path.join(self.scratch, "students", student)
        work = os.path.join(home, ASSIGNMENT)
        shutil.rmtree(work, ignore_errors=True)
        demo.build_submission(ASSIGNMENT, answers(k), work, course_root=self.course.root)
        cache = os.path.join(home, "cache")
        self.nbgrader("submit", ASSIGNMENT, f"--student={student}", f"--course={COURSE_ID}",
                      f"--Exchange.root={self.exchange}", f"--Exchange.cache={cache}",
                      cwd=home)
        ended = time.monotonic()
        latest = sorted(os.listdir(os.path.join(cache, COURSE_ID)))[-1]
        with open(os.path.join(cache, COURSE_ID, latest, "submission_secret.txt")) as f:
            secret = f.read()
        name = notebook_hash(secret=secret, notebook_id=NOTEBOOK) + ".html"
        return ended, os.path.join(self.exchange, COURSE_ID, "feedback", name)

    def start(self):
        """Start the service; returns the moment it said it serves."""
        self.log = open(os.path.join(self.scratch, "serve.log"), "a")
        self.service = subprocess.Popen(
            [sys.executable, "-m", "nbconfine", "serve", "--jobs", str(JOBS)],
            cwd=self.course.root, env=self.env, stdout=subprocess.PIPE, stderr=self.log,
            text=True)
        for line in self.service.stdout:
            self.log.write(line)
            if " Serving " in line:
                return time.monotonic()
        raise SystemExit(f"the service ended: see {self.log.name}")

    def stop(self):
        """SIGTERM to the service, if it runs; its output to the log."""
        if self.service and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            self.log.write(self.service.communicate(timeout=300)[0])
            self.log.close()


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return time.monotonic()


def rank(samples, fraction):
    """The nearest-rank percentile of ``samples``."""
    return sorted(samples)[max(0, math.ceil(len(samples) * fraction) - 1)]


def timed(command, cwd, env):
    start = time.monotonic()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main(burst, single):
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        bench = Bench(scratch)
        try:
            bench.start()
            latencies = []
            for k in range(single):
                ended, feedback = bench.submit(f"single-{k:02d}", k)
                latencies.append(wait_for(feedback) - ended)
            bench.stop()
            files = [bench.submit(f"burst-{k:03d}", k)[1] for k in range(burst)]
            ready = bench.start()
            drained = max(wait_for(path) for path in files) - ready
        finally:
            bench.stop()
        served = len(re.findall(r"^\S+ \S+ burst-\d+/", open(bench.log.name).read(), re.M))
        nbconfine = [sys.executable, "-m", "nbconfine"]
        manual = bench.course.clone(os.path.join(scratch, "by-hand"))
        for student in os.listdir(os.path.join(manual.root, "autograded")):
            if student.startswith("single-"):
                shutil.rmtree(os.path.join(manual.root, "autograded", student))
        grading = timed(nbconfine + ["autograde", "--jobs", str(JOBS), "--students", "burst-*"],
                        manual.root, bench.env)
        writing = timed(nbconfine + ["feedback"], manual.root, bench.env)
    p50, p95 = rank(latencies, 0.5), rank(latencies, 0.95)
    print(f"one at a time:   {single} submissions, latency from the end of nbgrader submit "
          f"to fetchable feedback: p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies):.2f} s"
          "  (targets: p50 <= 5 s, p95 <= 10 s)")
    print(f"burst:           {burst} waiting at once, drained in {drained:.1f} s: "
          f"{burst / drained:.2f} submissions/s ({served} lines logged)")
    print(f"by hand:         autograde --jobs {JOBS} {grading:.1f} s ({burst / grading:.2f}/s), "
          f"then feedback {writing:.1f} s: {burst / (grading + writing):.2f}/s in all")
    print(f"burst throughput / autograde's: {grading / drained:.2f}; / autograde and "
          f"feedback's: {(grading + writing) / drained:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("burst", type=int, nargs="?", default=16)
    parser.add_argument("--single", type=int, default=20)
    args = parser.parse_args()
    main(args.burst, args.single)
