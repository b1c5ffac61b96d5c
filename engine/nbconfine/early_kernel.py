"""`nbgrader validate NOTEBOOK`: the notebook's kernel started while nbgrader loads.

The command spends most of a second importing nbgrader before its Validator starts the
notebook's kernel, which then takes about as long to start. ``start()``, run from
``nbconfine-quick-start.pth`` as the command's interpreter starts, launches at once the
kernel nbgrader will ask for, as jupyter_client launches Python's: the same command
(ipykernel, its history in memory), in the notebook's folder, with the environment the
Validator gives its kernel (this process's, NBGRADER_VALIDATING and NBGRADER_EXECUTION
set, OMP_NUM_THREADS=1 unless set: see nbgrader_config.py beside the .pth), and a new
connection file. ``take()``, called by the Validator's kernel manager
(nbconfine.validation), hands it over only if nbgrader's own launch is that same command,
folder and environment; otherwise it is killed and nbgrader launches its own. Either way
the notebook runs once, in a new kernel of its own, as nbgrader runs it. A kernel never
taken is killed when the command exits (and ends by itself if the command is killed:
ipykernel watches JPY_PARENT_PID).

Once set up, and while nbgrader still loads, the early kernel also imports the installed
modules the notebook's first code cell opens with (``modules_to_import``; torch takes a
second), by ``early_imports.py``, which ``ipython_kernel_config.py`` beside the .pth
(`make install` links it into the environment's etc/ipython) has it run: the cell then
finds them imported. Modules of the notebook's folder (the course's, the learner's) are
left to the cell, so that their code runs only in the kernel that runs the notebook, and
so is a first cell that is a graded test. The kernel names nothing in the notebook's
namespace, takes its variable out of its environment, and prints what the imports printed
as the first cell starts: the cells see and print what they do in a kernel nbgrader
launches. (A kernel nbgrader does not take has imported them in vain.)

Imports here are the standard library's only: this runs before anything is loaded.
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import uuid

KERNEL_NAME = "python3"  # Python's own kernel: the only one launched early
HISTORY = "--HistoryManager.hist_file=:memory:"  # nbclient's argument for IPython kernels
VALIDATING = {"NBGRADER_VALIDATING": "1", "NBGRADER_EXECUTION": "validate"}  # nbgrader's
# what the kernel is to import, read by ipython_kernel_config.py: {"script", "modules"}
IMPORTS = "NBCONFINE_KERNEL_IMPORTS"
IMPORTING_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jupyter",
                                "early_imports.py")

_waiting = None  # the kernel started early, until taken or killed


class Early:
    """A kernel launched early: its process, command, folder, environment, connection."""

    def __init__(self, process, cmd, cwd, env, connection_file, info):
        self.process, self.cmd, self.cwd, self.env = process, cmd, cwd, env
        self.connection_file, self.info = connection_file, info

    def kill(self):
        """Kill it and its process group (it leads one, as jupyter_client's kernels do),
        wait for it, and remove its connection file."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait()
        try:
            os.unlink(self.connection_file)
        except OSError:
            pass


def notebook_argument(argv):
    """The notebook of ``nbgrader validate [OPTIONS] NOTEBOOK`` in ``argv`` (one existing
    .ipynb file; no help asked for), else None."""
    if len(argv) < 3 or os.path.basename(argv[0]) != "nbgrader" or argv[1] != "validate":
        return None
    paths = [a for a in argv[2:] if not a.startswith("-")]
    if len(paths) != 1 or not paths[0].endswith(".ipynb") or not os.path.isfile(paths[0]) \
            or any(a.startswith(("-h", "--help", "--version")) for a in argv[2:]):
        return None
    return os.path.abspath(paths[0])


def start(argv=None):
    """Launch the kernel of the notebook ``nbgrader validate`` was given (``argv``:
    sys.argv), if it is Python's; any failure leaves it to nbgrader."""
    global _waiting
    path = notebook_argument(sys.argv if argv is None else argv)
    if path is None or _waiting is not None:
        return
    try:
        with open(path, encoding="utf-8") as f:
            notebook = json.load(f)
        if notebook.get("metadata", {}).get("kernelspec", {}).get("name") != KERNEL_NAME:
            return
        folder = os.path.dirname(path)
        _waiting = _launch(folder, modules_to_import(notebook, folder))
        atexit.register(discard)
    except Exception:  # noqa: BLE001 (whatever fails, nbgrader starts its kernel itself)
        _waiting = None


def leading_imports(notebook):
    """The modules the first code cell of ``notebook`` (its JSON) imports before any other
    statement (``import a.b``: a.b; ``from a.b import c``: a.b), in order; none if that cell
    is not plain Python or is a graded test (its imports are part of what it grades)."""
    import ast
    cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    if not cells or (cells[0].get("metadata", {}).get("nbgrader") or {}).get("grade"):
        return []
    source = cells[0].get("source", "")
    try:
        statements = ast.parse(source if isinstance(source, str) else "".join(source)).body
    except (SyntaxError, ValueError):  # IPython's syntax (magics) or not code at all
        return []
    modules = []
    for statement in statements:
        if isinstance(statement, ast.Import):
            modules += [alias.name for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            if statement.level == 0 and statement.module != "__future__":
                modules.append(statement.module)
        else:
            break
    return list(dict.fromkeys(modules))


def modules_to_import(notebook, folder):
    """The ``leading_imports`` of ``notebook`` that are not the notebook folder's own."""
    from importlib.machinery import PathFinder
    return [m for m in leading_imports(notebook)
            if PathFinder.find_spec(m.partition(".")[0], [folder]) is None]


def _kernel_config_installed():
    """Whether the environment's IPython kernels read an ipython_kernel_config.py that
    imports what IMPORTS names (`make install` links this package's)."""
    try:
        with open(os.path.join(sys.prefix, "etc", "ipython", "ipython_kernel_config.py"),
                  encoding="utf-8") as f:
            return IMPORTS in f.read()
    except OSError:
        return False


def _launch(cwd, imports):
    from jupyter_core.paths import jupyter_runtime_dir
    info = {"ip": "127.0.0.1", "transport": "tcp", "signature_scheme": "hmac-sha256",
            "key": uuid.uuid4().hex, "kernel_name": KERNEL_NAME}
    held = []
    for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        info[name] = sock.getsockname()[1]
    for sock in held:  # kept until all are chosen, so that no two are the same
        sock.close()
    runtime = jupyter_runtime_dir()
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    connection_file = os.path.join(runtime, f"kernel-{uuid.uuid4()}.json")
    descriptor = os.open(connection_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        json.dump(info, f, indent=2)
    cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, HISTORY]
    env = dict(os.environ, **VALIDATING)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["JPY_PARENT_PID"] = str(os.getpid())
    if imports and _kernel_config_installed():
        env[IMPORTS] = json.dumps({"script": IMPORTING_SCRIPT, "modules": imports})
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, cwd=cwd, env=env,
                               start_new_session=True)
    process.stdin.close()
    return Early(process, cmd, cwd, env, connection_file, info)


def take(cmd, cwd, env):
    """The kernel started early, if it was launched with ``cmd`` in ``cwd`` with ``env``
    (as jupyter_client would launch it: JPY_PARENT_PID added, and still running; the
    modules to import early aside): from then on it is the caller's. None otherwise
    (``discard`` it then)."""
    global _waiting
    early = _waiting
    wanted = dict(env, JPY_PARENT_PID=str(os.getpid()))
    if early is None or list(cmd) != early.cmd \
            or wanted != {k: v for k, v in early.env.items() if k != IMPORTS} \
            or os.path.realpath(cwd) != os.path.realpath(early.cwd) \
            or early.process.poll() is not None:
        return None
    _waiting = None
    return early


def waiting():
    """The kernel started early and not yet taken, or None."""
    return _waiting


def discard():
    """Kill the kernel started early, if one waits."""
    global _waiting
    early, _waiting = _waiting, None
    if early is not None:
        early.kill()
