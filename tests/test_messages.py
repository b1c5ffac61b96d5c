"""What a student reads outside the notebook: `nbgrader validate` in the student's folder,
and how quickly its kernel starts."""
import glob
import os
import re
import subprocess
import sys
import sysconfig

import nbformat
import pytest

from coursedir import NBGRADER_ENV, NBGRADER_SCRIPT, REPO
from course import demo
from processes import exited
from nbconfine import early_kernel

P1_MESSAGE = ("This looks like the unbiased (N-1) variance; normalize with the biased one "
              "(unbiased=False).")

THREADS_TEST = ("import os\nassert os.environ.get('OMP_NUM_THREADS') == '1', os.environ.get("
                "'OMP_NUM_THREADS')\nassert os.environ['NBGRADER_VALIDATING'] == '1'")


# `nbgrader validate` arguments that make the Validator's kernel not the one started early
OWN_KERNEL = "--Execute.extra_arguments=['--IPKernelApp.log_level=40']"


def python_notebook():
    """An empty notebook for Python's kernel (the one `nbgrader validate` starts early)."""
    return nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def one_test_notebook(path, cell_type="code"):
    """A notebook of one graded test cell, THREADS_TEST: the validating kernel runs on one
    OpenMP thread, with NBGRADER_VALIDATING set (its nbgrader metadata says ``cell_type``)."""
    nb = python_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(THREADS_TEST, metadata={"nbgrader": {
        "grade": True, "grade_id": "threads", "locked": True, "points": 1, "cell_type": cell_type,
        "schema_version": 3, "solution": False, "task": False}}))
    nbformat.write(nb, str(path))


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
    one_test_notebook(tmp_path / "threads.ipynb")
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


def validate_command(folder, *args, **env_extra):
    """`nbgrader validate ARGS` as a student types it (the environment's nbgrader script,
    whose interpreter reads nbconfine-quick-start.pth), debug log on, its kernels'
    connection files in ``folder``/runtime, ``env_extra`` added to its environment;
    (the run, the runtime folder)."""
    if not os.path.exists(os.path.join(sysconfig.get_path("purelib"),
                                       "nbconfine-quick-start.pth")):
        pytest.fail("nbconfine-quick-start.pth is not in this environment's site-packages "
                    "(make install links it)")
    runtime = os.path.join(folder, "runtime")
    env = dict(NBGRADER_ENV, JUPYTER_CONFIG_PATH=os.path.join(REPO, "engine", "nbconfine",
                                                                 "jupyter"),
               JUPYTER_RUNTIME_DIR=runtime, **env_extra)
    env.pop("OMP_NUM_THREADS", None)
    done = subprocess.run([NBGRADER_SCRIPT, "validate", *args,
                           "--Application.log_level=DEBUG"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    return done, runtime


def kernels_of(runtime):
    """Live processes started with a connection file in ``runtime``."""
    found = []
    for entry in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(entry, "rb") as f:
                if runtime.encode() in f.read():
                    found.append(int(entry.split("/")[2]))
        except OSError:
            pass
    return [pid for pid in found if not exited(pid)]


def test_validate_takes_the_kernel_started_while_nbgrader_loads(tmp_path):
    """`nbgrader validate NOTEBOOK` starts the notebook's kernel as its interpreter starts
    (nbconfine.early_kernel), with the command, folder and environment the Validator
    launches its own with (one OpenMP thread, NBGRADER_VALIDATING), and the Validator
    takes it; killed after the last cell, it leaves no process and no connection file."""
    one_test_notebook(tmp_path / "threads.ipynb")
    done, runtime = validate_command(str(tmp_path), "threads.ipynb")
    assert "Success!" in done.stdout, (done.stdout, done.stderr[-3000:])
    taken = re.search(r"Took the kernel started early \(pid (\d+)\)", done.stderr)
    assert taken, done.stderr[-3000:]
    assert exited(int(taken.group(1)))
    assert not kernels_of(runtime) and not glob.glob(os.path.join(runtime, "kernel-*.json"))


def test_validate_starts_its_own_kernel_when_the_early_one_is_not_it(tmp_path):
    """Configured to give its kernel other arguments, the Validator kills the kernel
    started early and launches its own: the notebook still passes, nothing is left."""
    one_test_notebook(tmp_path / "threads.ipynb")
    done, runtime = validate_command(str(tmp_path), "threads.ipynb", OWN_KERNEL)
    assert "Success!" in done.stdout, (done.stdout, done.stderr[-3000:])
    killed = re.search(r"Killed the kernel started early \(pid (\d+)\)", done.stderr)
    assert killed and "Took the kernel" not in done.stderr, done.stderr[-3000:]
    assert exited(int(killed.group(1)))
    assert not kernels_of(runtime) and not glob.glob(os.path.join(runtime, "kernel-*.json"))


def test_validate_that_stops_before_running_leaves_no_early_kernel(tmp_path):
    """A notebook nbgrader refuses before running it (a cell whose type was changed):
    the kernel started early ends with the command."""
    one_test_notebook(tmp_path / "changed.ipynb", cell_type="markdown")
    done, runtime = validate_command(str(tmp_path), "changed.ipynb")
    assert "THE TYPES OF 1 CELL(S) HAVE CHANGED!" in done.stdout, done.stdout
    assert glob.glob(runtime), "no kernel was started early"
    assert not kernels_of(runtime) and not glob.glob(os.path.join(runtime, "kernel-*.json"))


IMPORT_PROBE = """from ipykernel.kernelbase import Kernel
with open("imports.log", "a") as log:  # the request being run as it is imported, if any
    log.write(__name__ + " " + str(Kernel.instance().get_parent().get("header", {}).get(
        "msg_type")) + "\\n")
"""
WHAT_CELLS_SEE = """import json, os
with open("seen.json", "w") as f:
    json.dump([sorted(globals()), sorted(os.environ)], f)
"""


def two_cell_notebook(path, first):
    """A notebook whose first cell, locked (as a course's set-up cell), is ``first``, and
    whose second writes the names the cells see and the environment's variables to
    seen.json."""
    nb = python_notebook()
    nb.cells += [nbformat.v4.new_code_cell(first, metadata={"nbgrader": {
        "grade": False, "grade_id": "setup", "locked": True, "schema_version": 3,
        "solution": False, "task": False}}), nbformat.v4.new_code_cell(WHAT_CELLS_SEE)]
    nbformat.write(nb, str(path))


def installed(folder, **modules):
    """``modules`` (name: source) in ``folder``/lib, which PYTHONPATH names as a place of
    installed modules: the environment ``validate_command`` is to add."""
    lib = os.path.join(folder, "lib")
    os.makedirs(lib, exist_ok=True)
    for name, source in modules.items():
        with open(os.path.join(lib, name + ".py"), "w") as f:
            f.write(source)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [lib, os.environ.get("PYTHONPATH")]))}


def test_the_early_kernel_imports_the_installed_modules_the_first_cell_opens_with(tmp_path):
    """The kernel started early imports the installed modules the first cell opens with
    while nbgrader loads (ipython_kernel_config.py): the cell finds them imported, and
    sees the names and environment it sees in a kernel nbgrader launches itself. A module
    of the notebook's folder is imported by the cell only, in either kernel."""
    env = installed(str(tmp_path), installed_probe=IMPORT_PROBE)
    (tmp_path / "local_probe.py").write_text(IMPORT_PROBE)
    two_cell_notebook(tmp_path / "imports.ipynb",
                      "import os\nimport installed_probe as p\nimport local_probe\nx = 1")
    seen = {}
    for run, args in (("early", ()), ("own", (OWN_KERNEL,))):
        (tmp_path / "imports.log").unlink(missing_ok=True)
        done, _ = validate_command(str(tmp_path), "imports.ipynb", *args, **env)
        assert "Success!" in done.stdout, (done.stdout, done.stderr[-3000:])
        assert ("Took the kernel" in done.stderr) == (run == "early"), done.stderr[-3000:]
        seen[run] = (tmp_path / "seen.json").read_text(), \
            (tmp_path / "imports.log").read_text().splitlines()
    assert seen["early"][1] == ["installed_probe None", "local_probe execute_request"]
    # the kernel not taken imported it early too; the one launched, in the cell
    assert seen["own"][1] == ["installed_probe None", "installed_probe execute_request",
                              "local_probe execute_request"]
    assert seen["early"][0] == seen["own"][0]


@pytest.mark.parametrize("module, source, shown", [
    ("broken", "raise RuntimeError('broken as it is imported')\n",
     "RuntimeError: broken as it is imported"),
    ("noisy", "import sys, warnings\nprint('loaded')\nwarnings.warn('careful')\n",
     "UserWarning: careful"),
])
def test_a_first_cell_import_that_fails_or_prints_is_reported_as_in_nbgrader_s_kernel(
        tmp_path, module, source, shown):
    """An installed module that fails or writes to stderr as it is imported, imported
    early: validating every cell (whose stderr fails them), the first cell fails on it as
    it does in a kernel nbgrader launches itself, with the same report."""
    env = installed(str(tmp_path), **{module: source})
    two_cell_notebook(tmp_path / "first.ipynb", f"import {module}")
    reports = []
    for args in ((), (OWN_KERNEL,)):
        done, _ = validate_command(str(tmp_path), "first.ipynb",
                                   "--Validator.validate_all=True", *args, **env)
        assert shown in done.stdout and ("Took the kernel" in done.stderr) == (not args), \
            (done.stdout, done.stderr[-3000:])
        reports.append(done.stdout)
    assert reports[0] == reports[1]


@pytest.mark.parametrize("cells, modules", [
    (["import numpy as np\nimport torch.nn\nfrom a.b import c\n\nimport d, e"],
     ["numpy", "torch.nn", "a.b", "d", "e"]),
    (["import a\nx = 1\nimport b", "import c"], ["a"]),  # up to the first other statement
    (["from __future__ import annotations\nfrom . import local\nimport a"], ["a"]),
    (["import a\nimport a"], ["a"]),
    (["%matplotlib inline\nimport a"], []),  # IPython's syntax: left to the cell
    (["x = 1\nimport a"], []),
    ([{"source": "import a", "metadata": {"nbgrader": {"grade": True}}}], []),  # a test's
    ([{"source": ["import a\n", "import b"], "metadata": {}}], ["a", "b"]),
    ([], []),
])
def test_the_modules_imported_early_are_the_first_cells_leading_imports(tmp_path, cells,
                                                                        modules):
    notebook = {"cells": [{"cell_type": "markdown", "source": "import z", "metadata": {}}] + [
        dict({"source": c, "metadata": {}} if isinstance(c, str) else c, cell_type="code")
        for c in cells]}
    assert early_kernel.leading_imports(notebook) == modules
    (tmp_path / "d.py").touch()  # the notebook folder's own modules are the cell's to import
    (tmp_path / "a").mkdir()
    assert early_kernel.modules_to_import(notebook, str(tmp_path)) == [
        m for m in modules if m.partition(".")[0] not in ("a", "d")]


@pytest.mark.parametrize("argv, started", [
    (["nbgrader", "validate", "threads.ipynb"], True),
    (["/env/bin/nbgrader", "validate", "--invert", "threads.ipynb"], True),
    (["nbgrader", "validate", "threads.ipynb", "other.ipynb"], False),
    (["nbgrader", "validate", "--help", "threads.ipynb"], False),
    (["nbgrader", "validate", "missing.ipynb"], False),
    (["nbgrader", "autograde", "threads.ipynb"], False),
    (["python", "validate", "threads.ipynb"], False),
])
def test_only_a_validate_command_of_one_notebook_starts_a_kernel_early(tmp_path, monkeypatch,
                                                                      argv, started):
    one_test_notebook(tmp_path / "threads.ipynb")
    (tmp_path / "other.ipynb").write_text((tmp_path / "threads.ipynb").read_text())
    monkeypatch.chdir(tmp_path)
    found = early_kernel.notebook_argument(argv)
    assert found == (str(tmp_path / "threads.ipynb") if started else None)
