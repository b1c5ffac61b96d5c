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


def test_validate_runs_its_kernel_on_one_thread_and_kills_it_when_done(tmp_path):
    """The environment's settings (engine/nbconfine/jupyter) start the validating kernel
    with OMP_NUM_THREADS=1, as grading's sandboxes run (unless the caller set it), and
    kill it after the last cell rather than wait for its interpreter's teardown."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os\nassert os.environ.get('OMP_NUM_THREADS') == '1', os.environ.get("
        "'OMP_NUM_THREADS')", metadata={"nbgrader": {
            "grade": True, "grade_id": "threads", "locked": True, "points": 1,
            "schema_version": 3, "solution": False, "task": False}}))
    nbformat.write(nb, str(tmp_path / "threads.ipynb"))
    config = os.path.join(REPO, "engine", "nbconfine", "jupyter")
    env = dict(NBGRADER_ENV, JUPYTER_CONFIG_PATH=config)
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "threads.ipynb"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "Success!" in done.stdout, (done.stdout, done.stderr[-2000:])
    from traitlets.config.loader import PyFileConfigLoader
    from nbgrader.preprocessors import Execute
    from nbgrader.validator import Validator
    settings = PyFileConfigLoader("nbgrader_config.py", path=config).load_config()
    assert Execute(parent=Validator(config=settings)).shutdown_kernel == "immediate"
    assert Execute(config=settings).shutdown_kernel == "graceful"  # elsewhere as nbgrader's
