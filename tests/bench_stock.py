"""Benchmark: the stock-nbgrader course (tests/stockcourse) graded by stock nbgrader and by
the engine, side by side in one run; prints seconds per submission and their ratio.

    python tests/bench_stock.py [N]      (N submissions, default 20)

N submissions (the reference answers, every third one blank, every fifth with a wrong
mean) are graded twice from the same release: by stock nbgrader (`nbgrader autograde`
with the course's configuration less nbconfine: nbgrader's own Execute, one kernel per
notebook) and by `nbconfine autograde --jobs 1` (one sandbox per notebook, forked from a
zygote that prepared IPython once). The two runs alternate (stock, engine, engine, stock)
so that load from elsewhere on the machine weighs on both alike; both commands are timed
whole, and the per-cell scores of both must agree.
"""
import os
import subprocess
import sys
import tempfile
import time

from coursedir import STOCK, StockCourse
from course import demo

WRONG_MEAN = "def mean(values):\n    return sum(values) / max(len(values), 1)"
ORDER = ("stock", "engine", "engine", "stock")


def submissions(course, count):
    reference = demo.reference_answers(STOCK, course_root=course.root)
    for k in range(count):
        answers = {} if k % 3 == 2 else dict(reference)
        if k % 5 == 4:
            answers["mean_answer"] = WRONG_MEAN
        course.submit(f"s{k:03d}", answers)


def timed(command, course):
    start = time.monotonic()
    done = subprocess.run(command, cwd=course.root, env=course.env, capture_output=True,
                          text=True, timeout=7200)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main(count):
    with tempfile.TemporaryDirectory(prefix="bench-stock-") as scratch:
        released = StockCourse(os.path.join(scratch, "released"))
        released.release()
        submissions(released, count)
        seconds = {"stock": [], "engine": []}
        scores = {}
        for trial, grader in enumerate(ORDER):
            course = released.clone(os.path.join(scratch, f"{grader}-{trial}"),
                                    engine=grader == "engine")
            command = ([sys.executable, "-m", "nbconfine", "autograde", "--jobs", "1"]
                       if grader == "engine" else
                       [sys.executable, "-m", "nbgrader", "autograde", STOCK, "--force"])
            seconds[grader].append(timed(command, course) / count)
            scores.setdefault(grader, course.cell_scores())
        if scores["stock"] != scores["engine"]:
            sys.exit("the two graders' scores differ")
    stock, engine = (sum(seconds[g]) / len(seconds[g]) for g in ("stock", "engine"))
    print(f"{count} submissions of tests/stockcourse, whole commands timed, {len(ORDER) // 2} "
          "trials each (alternating); identical scores")
    print(f"  stock nbgrader (a kernel per notebook): {stock:.2f} s per submission "
          f"({', '.join(f'{s:.2f}' for s in seconds['stock'])})")
    print(f"  nbconfine autograde --jobs 1:           {engine:.2f} s per submission "
          f"({', '.join(f'{s:.2f}' for s in seconds['engine'])})")
    print(f"  ratio: the engine is {stock / engine:.1f}x as fast")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
