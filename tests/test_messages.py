"""What a student reads outside the notebook: `nbgrader validate` in the student's folder."""
import os
import subprocess
import sys

import nbformat

from coursedir import NBGRADER_ENV, REPO
from course import demo

P1_MESSAGE = ("This looks like the unbiased (N-1) variance; normalize with the biased one "
              "(unbiased=False).")


def test_validate_prints_the_whole_diagnosis_wrapped(course, tmp_path):
    """`nbgrader validate` with the course's environment settings (engine/nbconfine/jupyter on
    JUPYTER_CONFIG_PATH, as `make install` links them) prints a failed check's whole
    message, wrapped at the Validator's 90 columns instead of cut with "..."."""
    folder = str(tmp_path / "normalization")
    path = demo.build_submission(
        "normalization", demo.catalog_answers(["p1_unbiased_var"]), folder,
        course_root=course.root)
    nb = nbformat.read(path, as_version=4)  # Problem 1 only, so validation is quick
    keep = {"setup", "p1_answer", "p1_example"}
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in keep]
    nbformat.write(nb, path)
    env = dict(NBGRADER_ENV, JUPYTER_CONFIG_PATH=os.path.join(REPO, "engine", "nbconfine",
                                                                 "jupyter"))
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "normalization.ipynb"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    report = done.stdout
    assert "The following cell failed" in report, (report, done.stderr[-2000:])
    assert P1_MESSAGE in " ".join(report.split()), report
    assert not [line for line in report.splitlines() if line.endswith("...")], report
    assert max(len(line) for line in report.splitlines()) <= 90, report
