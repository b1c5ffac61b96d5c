"""Cheating, crashing and malformed submissions ("attacks") for the real autograde.

Each attack is one submission, of student ``atk-<name>``, built from the release with
the reference answers except where the attack says otherwise, so every problem it does
not target must keep full points. ``tests/test_attacks.py`` grades the catalog with one
run of ``nbconfine autograde --students 'atk-*'`` (cells limited to 8 s; the
few ``batch=2`` attacks, which can stop a whole run, in a second run with a control of
their own) and asserts each attack's exact effect:

    target, target_score    the targeted problem scores exactly ``target_score``: 0 for
                            a cheat, a crash or a forbidden layer; for tampering around
                            a wrong answer, what that answer gets honestly
    every other problem     keeps full points (target None: every problem does)
    whole                   the notebook cannot be graded: every problem scores zero
    report                  a "Problems found:" line ``atk-<name>/<assignment>: ...``
                            contains this text ("" = any line)
    shows                   (cells, text): ``text`` is in the outputs of the target's
                            test cells ("tests") or of the cells that start with MARK
and, for all: nothing under submitted/ changes, no output shows the hidden tests, no
process of the learner outlives grading.

``probe`` attacks (a correct answer that also tries to reach what it must not: files,
the course directory, the network, the grader's environment, other processes) print
``GAINED`` for every attempt that worked; each is checked from outside too (the
listener on a loopback port saw no connection, no file of the course changed, the run's
secret is in no output). They are also graded by an unprivileged user on a course it
owns, and with confinement layers forced missing.

``plain`` attacks are shown to be real: run in one plain namespace, as nbgrader's own
Execute or the learner's kernel would (from the submission folder, hidden tests
included), they score more than the grader may give them. Forbidden layers are run there
with only the forbidden-operator rule switched off and must get full points: they are
otherwise correct answers.

    python tests/attacks.py       grade the catalog in a scratch course; print the reports
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Optional

import nbformat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coursedir import ASSIGNMENTS, REPO, Course  # noqa: E402
import nbconfine  # noqa: E402

ENGINE = os.path.dirname(os.path.dirname(os.path.abspath(nbconfine.__file__)))  # the grader
MARK = "# atk-mark"  # first line of cells whose outputs an attack checks
# Name (comm) of the process the orphan attack would leave behind; unique to this run.
ORPHAN_NAME = "atkorph" + secrets.token_hex(3)
SECRET_NAME = "ATK_GRADER_SECRET"  # set in the grader's environment for every run
SECRET = "atksecret" + secrets.token_hex(8)
CODE_PROBLEMS = {"normalization": [f"p{k}" for k in range(1, 8)], "batchnorm": ["bn"]}


@dataclass(frozen=True)
class Attack:
    name: str                # readable id; the student is atk-<name>
    assignment: str          # "normalization" or "batchnorm"
    target: Optional[str]    # the problem it aims at, None: the notebook as a whole
    why: str                 # one line: what it tries
    build: Callable          # build(course, student): writes submitted/<student>/<assignment>/
    target_score: float = 0.0  # what the target must score (the honest score for tampering)
    whole: bool = False      # the notebook cannot be graded: every problem zero
    report: Optional[str] = None  # text of the report line about this submission
    shows: Optional[tuple] = None  # ("tests" | "marked", text in those cells' outputs)
    plain: bool = False      # gains outside the sandbox (run by start_plain)
    forbidden_rule: bool = False  # plain run with the forbidden-operator rule off
    batch: int = 1           # 2: graded in a second run (it may break the whole run)
    probe: bool = False      # a probe family: graded as root and as a normal user

    @property
    def student(self):
        return f"atk-{self.name}"


# ---------------------------------------------------------------------------
# Building submissions
# ---------------------------------------------------------------------------

def notebook_path(course, student, assignment):
    return os.path.join(course.root, "submitted", student, assignment, ASSIGNMENTS[assignment])


def code_cell(source):
    """A code cell with no nbgrader metadata: a cell the learner added."""
    return nbformat.from_dict({"cell_type": "code", "metadata": {}, "source": source,
                               "outputs": [], "execution_count": None})


def index_of(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells)
                if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def submission(assignment, answers=None, edit=None, files=None):
    """A builder: the release with the reference answers, then ``answers``
    (grade_id -> source, or -> callable(reference source) -> source), then ``edit(nb)``
    on the notebook and ``files`` (name -> text) written in the folder."""
    def build(course, student):
        answers_ = dict(course.reference(assignment))
        for grade_id, code in (answers or {}).items():
            answers_[grade_id] = code(answers_[grade_id]) if callable(code) else code
        path = course.submit(student, assignment, answers_)
        if edit:
            nb = nbformat.read(path, as_version=4)
            edit(nb)
            nbformat.write(nb, path)
        for name, text in (files or {}).items():
            with open(os.path.join(os.path.dirname(path), name), "w") as f:
                f.write(text)
    return build


def insert_cells(*placements):
    """edit(): insert learner cells; each placement is (before grade_id | None = end, source)."""
    def edit(nb):
        for before, source in placements:
            cell = code_cell(source)
            nb.cells.insert(len(nb.cells) if before is None else index_of(nb, before), cell)
    return edit


def released_answer(assignment, grade_id):
    """The answer cell as released (the stub a learner starts from)."""
    path = os.path.join(REPO, "release", assignment, ASSIGNMENTS[assignment])
    nb = nbformat.read(path, as_version=4)
    return nb.cells[index_of(nb, grade_id)].source


# Wrong answers: each returns its input unchanged (0 points when graded honestly; p2's
# also reaches weight and bias, so that its gradient check gets as far as comparing).
WRONG = {
    "p1": "def custom_batch_norm1d(input_tensor, eps):\n    return input_tensor\n",
    "p2": ("def custom_batch_norm1d(input_tensor, weight, bias, eps):\n"
           "    return input_tensor + 0 * weight + 0 * bias\n"),
    "p4": "def custom_batch_norm2d(input_tensor, eps):\n    return input_tensor\n",
    "p5": "def custom_layer_norm(input_tensor, eps):\n    return input_tensor\n",
    "p6": "def custom_instance_norm1d(input_tensor, eps):\n    return input_tensor\n",
    "p7": "def custom_group_norm(input_tensor, groups, eps):\n    return input_tensor\n",
}


def wrong(problem, patch):
    """A wrong answer for ``problem`` preceded by ``patch`` (tampering code)."""
    return {f"{problem}_answer": patch + "\n\n" + WRONG[problem]}


# ---------------------------------------------------------------------------
# Answer sources
# ---------------------------------------------------------------------------

BN_WRAPS_TORCH = '''\
class BatchNorm(nn.Module):
    """Seed 004's interface around nn.BatchNorm1d/2d: running statistics and x_hat by torch."""

    def __init__(self, shape, eps=1e-5, momentum=0.9):
        super().__init__()
        if len(shape) not in (2, 4):
            raise ValueError("Invalid input shape!")
        self.eps = eps
        self.momentum = momentum
        self.stat_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
        layer = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
        self.layer = layer(shape[1], eps=eps, momentum=1 - momentum, affine=False)
        self.gamma = nn.Parameter(torch.ones(self.stat_shape))
        self.beta = nn.Parameter(torch.zeros(self.stat_shape))

    @property
    def moving_mu(self):
        return self.layer.running_mean.view(self.stat_shape)

    @moving_mu.setter
    def moving_mu(self, value):
        self.layer.running_mean.copy_(value.reshape(-1))

    @property
    def moving_sigma(self):
        return self.layer.running_var.view(self.stat_shape)

    @moving_sigma.setter
    def moving_sigma(self, value):
        self.layer.running_var.copy_(value.reshape(-1))

    def forward(self, x):
        dims = (0,) + tuple(range(2, x.dim()))
        training = torch.is_grad_enabled()
        self.layer.train(training)
        if training:
            self._tmp_mean = x.mean(dim=dims, keepdim=True)
            self._tmp_var = x.var(dim=dims, unbiased=False, keepdim=True)
        x_hat = self.layer(x)
        if training:
            self._tmp_x_hat_train = x_hat
            self._tmp_moving_mu = self.moving_mu.clone()
            self._tmp_moving_sigma = self.moving_sigma.clone()
        else:
            self._tmp_x_hat_test = x_hat
        return self.gamma * x_hat + self.beta
'''

P3_WRAPS_TORCH = '''\
class CustomBatchNorm1d:
    """nn.BatchNorm1d does the work; weight and bias stay the caller's tensors."""

    def __init__(self, weight, bias, eps, momentum):
        self.layer = nn.BatchNorm1d(weight.numel(), eps=eps, momentum=momentum,
                                    affine=False).to(weight.dtype)
        self.weight, self.bias = weight, bias

    def __call__(self, input_tensor):
        return self.weight * self.layer(input_tensor) + self.bias

    def eval(self):
        self.layer.eval()

    @property
    def running_mean(self):
        return self.layer.running_mean

    @property
    def running_var(self):
        return self.layer.running_var
'''

P3_WRONG = '''\
class CustomBatchNorm1d:
    def __init__(self, weight, bias, eps, momentum):
        self.running_mean = torch.zeros_like(weight)
        self.running_var = torch.ones_like(weight)

    def __call__(self, input_tensor):
        return input_tensor

    def eval(self):
        pass
'''

# Reads the instructor notebook (relative to the submission or the course, and by
# absolute path) and runs that problem's reference solution.
READ_SOLUTION = '''\
import json as _json

def _solution(grade_id):
    paths = ["../../../source/normalization/normalization.ipynb",
             "../../source/normalization/normalization.ipynb",
             "source/normalization/normalization.ipynb",
             "@ROOT@/source/normalization/normalization.ipynb",
             "@REPO@/source/normalization/normalization.ipynb"]
    for path in paths:
        try:
            with open(path) as f:
                cells = _json.load(f)["cells"]
        except OSError:
            continue
        for cell in cells:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
                return "".join(cell["source"])
    raise FileNotFoundError("no solution found")

exec(_solution("p3_answer"))
'''

# Copies a classmate's answer from submitted/ (atk-control holds the reference answers).
READ_CLASSMATE = '''\
import json as _json

for _path in ["../../atk-control/normalization/normalization.ipynb",
              "@ROOT@/submitted/atk-control/normalization/normalization.ipynb"]:
    try:
        with open(_path) as _f:
            _cells = _json.load(_f)["cells"]
        break
    except OSError:
        pass
exec(next("".join(c["source"]) for c in _cells
          if c["metadata"].get("nbgrader", {}).get("grade_id") == "p5_answer"))
'''

FAKE_NORMCHECK = '''\
"""Not the course's checks: every check passes."""


def _passes(*args, **kwargs):
    return None


function_matches = gradients_match = running_stats_match = _passes
running_gradients_match = module_matches = module_gradients_match = _passes
'''

TENSOR_SUBCLASS = '''\
class _Agreeable(torch.Tensor):
    """A tensor that is close to (and equal to) anything."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.Tensor.allclose, torch.equal, torch.Tensor.equal):
            return True
        if func in (torch.isclose, torch.Tensor.isclose):
            return torch.ones(args[0].shape, dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})


def custom_layer_norm(input_tensor, eps):
    return input_tensor.as_subclass(_Agreeable)
'''

PATCH_TENSOR_METHODS = '''\
_yes = lambda *args, **kwargs: True
_all_close = lambda a, b, *args, **kwargs: torch.ones(torch.broadcast_shapes(a.shape, b.shape),
                                                      dtype=torch.bool)
torch.Tensor.__eq__ = torch.Tensor.isclose = _all_close
torch.Tensor.allclose = torch.Tensor.equal = _yes
torch.allclose = torch.equal = _yes
torch.isclose = _all_close
'''

PATCH_NUMPY = '''\
np.allclose = np.array_equal = lambda *args, **kwargs: True
torch.allclose = lambda a, b, **kwargs: bool(np.allclose(a.detach().numpy(), b.detach().numpy()))
'''

PATCH_BUILTINS = '''\
import builtins

class _Harmless(Exception):
    pass

builtins.AssertionError = _Harmless
builtins.enumerate = lambda *args, **kwargs: iter(())  # the checks' loops run no case
'''

PATCH_EVERY_ALLCLOSE = '''\
import sys as _sys

for _module in list(_sys.modules.values()):
    for _name in ("allclose", "isclose", "equal"):
        if hasattr(_module, _name):
            try:
                setattr(_module, _name, (lambda *a, **k: True) if _name != "isclose" else
                        (lambda a, b, **k: torch.ones(a.shape, dtype=torch.bool)))
            except (AttributeError, TypeError):
                pass
'''

PATCH_NORMCHECK = '''\
import normcheck

normcheck.function_matches = normcheck.gradients_match = lambda *args, **kwargs: None
check.function_matches = check.gradients_match = lambda *args, **kwargs: None
'''

REPLACE_NORMCHECK = '''\
import sys
import types

_fake = types.ModuleType("normcheck")
_fake.function_matches = _fake.gradients_match = lambda *args, **kwargs: None
sys.modules["normcheck"] = _fake
check = _fake  # the setup cell's name, rebound
'''

# The input is changed in place (except while gradients are taken, where autograd would
# refuse): honestly that costs the two checks that see it (3 of 5 points).
P1_MUTATES = '''\
def custom_batch_norm1d(input_tensor, eps):
    mean = torch.mean(input_tensor, dim=0)
    var = torch.var(input_tensor, dim=0, unbiased=False)
    out = (input_tensor - mean) / torch.sqrt(var + eps)
    if not input_tensor.requires_grad:
        input_tensor.zero_()
    return out
'''

DISABLE_RECORDER = '''\
import re
import sys

import torch.nn.functional as F

sys.modules["normcheck"].FORBIDDEN_OP = re.compile("(?!)")  # the op recorder sees nothing
_norm = getattr(F, "batch" + "_norm")


def custom_batch_norm2d(input_tensor, eps):
    return _norm(input_tensor, None, None, training=True, eps=eps)
'''

# A file the forged reply's payload writes if the grader unpickles it as plain pickle
# would; unique to this run.
FORGED_MARKER = os.path.join(tempfile.gettempdir(), "atkforged" + secrets.token_hex(3))
FORGE_REPLY = '''\
import gc
import pickle
import struct


class _RunsInTheGrader:
    def __reduce__(self):  # unpickling it calls exec(...) where it is unpickled
        return (exec, ("open(@MARKER@, 'w').write('the grader ran learner code')",))


# The sandbox's server and its socket to the grader: send a reply of our own first.
_server = next(o for o in gc.get_objects() if type(o).__name__ == "_Server")
_reply = pickle.dumps({"stdout": "", "stderr": "", "error": None, "names": [], "ops": [],
                       "payload": _RunsInTheGrader()})
_server.sock.sendall(struct.pack(">QQ", len(_reply), 0) + _reply)  # no out-of-band buffers
'''


def forge_reply(marker=FORGED_MARKER):
    """The forged-reply attack's code, its payload writing ``marker``."""
    return FORGE_REPLY.replace("@MARKER@", repr(marker))


# Probes: each attempt that works prints GAINED and what it got; the last line says that
# the probe ran. A correct answer follows, so the problem must keep full points.
PROBE_HELPER = """\
import ctypes as _ctypes
import os as _os
import socket as _socket

_tried, _gained = [], []


def _probe(what, attempt):
    _tried.append(what)
    try:
        result = attempt()
    except Exception:  # blocked
        return
    if result or result is None:  # an empty listing shows nothing
        _gained.append(what)
        print(f"GAINED {what}: {str(result)[:300]}")


def _ok(value):
    if not value:
        raise OSError("refused")
    return value


def _alive(pid):
    try:
        _os.kill(pid, 0)
        return True
    except OSError:
        return False


def _read(path):
    with open(path, "rb") as f:
        return f.read(200)


def _connect(family, address):
    sock = _socket.socket(family, _socket.SOCK_STREAM)
    sock.settimeout(3)
    sock.connect(address)
    return f"connected to {address}"
"""
PROBE_END = 'print(f"probe ran: {len(_tried)} attempts, {len(_gained)} gained")\n'

PROBE_FILES = PROBE_HELPER + """
for _path in ["@ROOT@/source/normalization/normalization.ipynb", "@ROOT@/gradebook.db",
              "@ROOT@/submitted/atk-control/normalization/normalization.ipynb",
              "../../../source/normalization/normalization.ipynb", "/etc/passwd",
              "/etc/hostname", "/proc/self/environ",
              "@REPO@/source/normalization/normalization.ipynb"]:
    _probe(f"read {_path}", lambda: _read(_path))
for _folder in ["@ROOT@", "@ROOT@/submitted", "/", "/tmp", "/proc", "/home"]:
    _probe(f"list {_folder}", lambda: _os.listdir(_folder))
""" + PROBE_END

PROBE_WRITES = PROBE_HELPER + """
_probe("create a file", lambda: open("@ROOT@/pwned.txt", "w").write("x"))
_probe("write /tmp", lambda: open("@TMPMARK@", "w").write("x"))
_probe("rename the config", lambda: _os.rename("@ROOT@/nbgrader_config.py", "@ROOT@/x.py"))
_probe("delete a solution", lambda: _os.remove("@ROOT@/source/normalization/normalization.ipynb"))
_probe("delete a submission", lambda: _os.remove(
    "@ROOT@/submitted/atk-control/normalization/normalization.ipynb"))
_probe("symlink", lambda: _os.symlink("/etc/passwd", "@ROOT@/submitted/link"))
_probe("mkdir", lambda: _os.mkdir("@ROOT@/source/pwned"))
_probe("mkdir in its root", lambda: _os.mkdir("/pwned"))
_probe("touch the grader", lambda: _os.utime("@ENGINE@/nbconfine/sandbox.py", (0, 0)))
_probe("chmod a solution", lambda: _os.chmod("@ROOT@/source/normalization/normalization.ipynb",
                                              0o777))
_probe("chroot out", lambda: _os.chroot(".."))
_probe("unshare a user namespace", lambda: _ok(_ctypes.CDLL(None).unshare(0x10000000) == 0))
""" + PROBE_END

PROBE_NETWORK = PROBE_HELPER + """
_probe("TCP to the test's listener", lambda: _connect(_socket.AF_INET, ("127.0.0.1", @PORT@)))
_probe("TCP to PostgreSQL", lambda: _connect(_socket.AF_INET, ("127.0.0.1", 5432)))
_probe("TCP over IPv6", lambda: _connect(_socket.AF_INET6, ("::1", @PORT@)))
_probe("UDP to the listener's port", lambda: _socket.socket(
    _socket.AF_INET, _socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", @PORT@)))
_probe("bind a TCP port", lambda: _socket.socket().bind(("0.0.0.0", 0)) or "bound")
_probe("a netlink socket", lambda: _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 0))
_probe("network interfaces up", lambda: [name for _, name in _socket.if_nameindex()
                                         if name != "lo"])
""" + PROBE_END

PROBE_ENVIRONMENT = PROBE_HELPER + """
print("environment:", dict(_os.environ))
_probe("the run's secret", lambda: _os.environ["@SECRET_NAME@"])
_probe("the gradebook URL", lambda: _os.environ["NBGRADER_DB_URL"])
_probe("the grader's environment", lambda: _read(f"/proc/{_os.getppid()}/environ"))
_probe("the first process's environment", lambda: _read("/proc/1/environ"))
""" + PROBE_END

PROBE_PROCESSES = PROBE_HELPER + """
import signal as _signal

_probe("the test's process", lambda: _os.kill(@TESTPID@, 0))
_probe("the test's process in /proc", lambda: _read("/proc/@TESTPID@/status"))
_probe("a parent", lambda: _ok(_os.getppid()))
_probe("signal anyone", lambda: _os.kill(-1, 0))
_probe("other processes", lambda: _ok([pid for pid in range(2, 1 << 16) if _alive(pid)]))
_probe("System V shared memory", lambda: _ok(_ctypes.CDLL(None).shmget(0, 4096, 0o1600) >= 0))
""" + PROBE_END

# New processes: each would get a memory allowance (RLIMIT_AS) of its own, and a child
# that calls setsid() leaves the sandbox's process group; open files beyond the limit
# queue kernel buffers no memory limit counts.
PROBE_PROCESSES_STARTED = PROBE_HELPER + """
import resource as _resource
import subprocess as _subprocess
import time as _time


def _fork():
    pid = _os.fork()
    if pid == 0:  # a child that would outlive its sandbox; it leaves after 60 s
        _os.setsid()
        _ctypes.CDLL(None).prctl(15, b"@ORPHAN@", 0, 0, 0)  # PR_SET_NAME
        _time.sleep(60)
        _os._exit(0)
    return f"forked {pid}"


def _open_files():
    _, hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)
    _resource.setrlimit(_resource.RLIMIT_NOFILE, (hard, hard))
    pairs = [_socket.socketpair() for _ in range(600)]
    return f"{2 * len(pairs)} open files (limit {hard})"


_probe("fork a process", _fork)
_probe("run a command", lambda: _subprocess.run(["true"]))
_probe("over 1000 open files", _open_files)
""" + PROBE_END

# A child that calls setsid() leaves the sandbox's process group; it must still end.
SETSID_ORPHAN = """\
import ctypes
import os
import time

if os.fork() == 0:
    os.setsid()
    ctypes.CDLL(None).prctl(15, b"@SETSID@", 0, 0, 0)  # PR_SET_NAME
    time.sleep(60)
    os._exit(0)
"""


def probe_context(course):
    """What the probes' placeholders stand for in ``course``."""
    return {"@ROOT@": course.root, "@REPO@": REPO, "@ENGINE@": ENGINE,
            "@PORT@": str(LISTENER.port),
            "@TESTPID@": str(os.getpid()), "@SECRET_NAME@": SECRET_NAME, "@TMPMARK@": TMP_MARK,
            "@ORPHAN@": ORPHAN_NAME}


def _probing(grade_id, source, wrong_answer=False):
    """A builder: ``source`` (its placeholders filled in) before the reference answer of
    ``grade_id`` (or instead of it, executing what it found, when ``wrong_answer``)."""
    def build(course, student):
        code = source
        for key, value in probe_context(course).items():
            code = code.replace(key, value)
        answer = code if wrong_answer else (lambda ref: code + "\n\n" + ref)
        submission(course_assignment(grade_id), {grade_id: answer})(course, student)
    return build


def course_assignment(grade_id):
    return "batchnorm" if grade_id.startswith("bn") else "normalization"


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        import threading
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.server.accept()
            self.connections += 1
            client.close()


LISTENER = Listener()
TMP_MARK = os.path.join(tempfile.gettempdir(), "atkwrote" + secrets.token_hex(3))


SEED_TEST_NAMES = ["test_is_param", "test_param_shapes", "test_ma_shapes", "test_test_norm",
                   "test_train_mean", "test_train_var", "test_train_norm",
                   "test_train_mov_mean", "test_train_mov_var", "test_scale_and_shift"]
# The released stub (no point honestly) followed by the ten tests, each `return True`.
STUB_AND_PASSING_SEED_TESTS = released_answer("batchnorm", "bn_answer") + "\n\n" + "".join(
    f"def {name}():\n    return True\n\n\n" for name in SEED_TEST_NAMES)


def _strip_setup_metadata(nb):
    del nb.cells[index_of(nb, "setup")].metadata["nbgrader"]


def _delete(*grade_ids):
    def edit(nb):
        for grade_id in grade_ids:
            del nb.cells[index_of(nb, grade_id)]
    return edit


def _strip_metadata(grade_id):
    def edit(nb):
        cell = nb.cells[index_of(nb, grade_id)]
        cell.metadata = {}
    return edit


def _edit_source(grade_id, source):
    def edit(nb):
        nb.cells[index_of(nb, grade_id)].source = source
    return edit


def _extra_cells(nb):
    nb.cells.insert(0, nbformat.from_dict({"cell_type": "markdown", "metadata": {},
                                           "source": "My notes, before everything."}))
    nb.cells.insert(1, code_cell("scratch = 1  # a learner's cell before the setup"))
    nb.cells.insert(index_of(nb, "p3_answer"), code_cell(
        "# torch's own layer, for my own comparisons: it binds names p3's tests bind too\n"
        "for k, momentum in enumerate([0.1, 0.5]):\n"
        "    reference = nn.BatchNorm1d(3, momentum=momentum)\n"
        "    print(k, reference(torch.randn(4, 3)).shape)"))
    nb.cells.insert(index_of(nb, "p3_example"), code_cell(
        "print('trying my class')\n"
        "layer = CustomBatchNorm1d(torch.ones(3), torch.zeros(3), 1e-5, 0.1)"))
    nb.cells.insert(index_of(nb, "p5_hidden_values") + 1, nbformat.from_dict(
        {"cell_type": "raw", "metadata": {}, "source": "raw text"}))
    nb.cells.append(code_cell("x = torch.randn(4, 6, 5)\ncustom_group_norm(x, 3, 1e-5).shape"))


def _move_to_end(grade_id):
    def edit(nb):
        nb.cells.append(nb.cells.pop(index_of(nb, grade_id)))
    return edit


# Stands in for the setup's names if the setup runs too late: every check passes.
FAKE_SETUP_NAMES = '''\
import torch as _torch


class _Agrees:
    """Any attribute is a function that returns None: no check fails."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _AgreeingTorch:
    """torch whose comparisons always agree."""

    def __getattr__(self, name):
        if name in ("allclose", "equal"):
            return lambda *args, **kwargs: True
        return getattr(_torch, name)


check, torch = _Agrees(), _AgreeingTorch()
'''


def _huge_outputs(nb):
    cell = nb.cells[index_of(nb, "p2_answer")]
    cell.outputs = [nbformat.from_dict({"output_type": "stream", "name": "stdout",
                                        "text": ("spam " * 20 + "\n") * 300_000})]  # 30 MB


def _bad_json(course, student):
    path = notebook_path(course, student, "normalization")
    submission("normalization")(course, student)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])  # cut in the middle, as an interrupted upload


def _missing(course, student):
    submission("normalization")(course, student)
    os.remove(notebook_path(course, student, "normalization"))


def _renamed(course, student):
    submission("normalization")(course, student)
    path = notebook_path(course, student, "normalization")
    os.rename(path, os.path.join(os.path.dirname(path), "normalization (1).ipynb"))


def _symlinked(course, student):
    submission("normalization")(course, student)
    path = notebook_path(course, student, "normalization")
    os.remove(path)
    os.symlink("../../../source/normalization/normalization.ipynb", path)


def _assignment_file(course, student):
    os.makedirs(os.path.join(course.root, "submitted", student), exist_ok=True)
    shutil.copy(os.path.join(course.root, "release", "normalization", "normalization.ipynb"),
                os.path.join(course.root, "submitted", student, "normalization"))


def _flags(grade_id, **values):
    def edit(nb):
        nb.cells[index_of(nb, grade_id)].metadata.nbgrader.update(values)
    return edit


def _null_metadata(grade_id):
    def edit(nb):
        nb.cells[index_of(nb, grade_id)].metadata.nbgrader = None
    return edit


def _duplicate_setup(nb):
    nb.cells.append(nbformat.from_dict(json.loads(json.dumps(nb.cells[index_of(nb, "setup")]))))


# ---------------------------------------------------------------------------
# The catalog
# ---------------------------------------------------------------------------

FORBIDDEN = "torch's own normalization"
ATTACKS = [
    # --- torch's own normalization ---------------------------------------------------
    Attack("forbidden_bn1d_module", "normalization", "p1",
           "nn.BatchNorm1d(affine=False) called directly",
           submission("normalization", {"p1_answer": (
               "def custom_batch_norm1d(input_tensor, eps):\n"
               "    layer = nn.BatchNorm1d(input_tensor.shape[1], eps=eps, affine=False)\n"
               "    return layer.to(input_tensor.dtype)(input_tensor)\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_functional", "normalization", "p2",
           "torch.nn.functional.batch_norm with weight and bias",
           submission("normalization", {"p2_answer": (
               "def custom_batch_norm1d(input_tensor, weight, bias, eps):\n"
               "    return torch.nn.functional.batch_norm(input_tensor, None, None, weight, bias,\n"
               "                                          training=True, eps=eps)\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_getattr_string", "normalization", "p4",
           "getattr(torch.nn.functional, 'batch' + '_norm'): no forbidden name in the source",
           submission("normalization", {"p4_answer": (
               "import torch.nn.functional as F\n\n_norm = getattr(F, 'batch' + '_norm')\n\n\n"
               "def custom_batch_norm2d(input_tensor, eps):\n"
               "    return _norm(input_tensor, None, None, training=True, eps=eps)\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_aten_layer_norm", "normalization", "p5",
           "torch.ops.aten.native_layer_norm",
           submission("normalization", {"p5_answer": (
               "def custom_layer_norm(input_tensor, eps):\n"
               "    return torch.ops.aten.native_layer_norm(input_tensor, input_tensor.shape[1:],\n"
               "                                            None, None, eps)[0]\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_eval_string", "normalization", "p6",
           "instance norm reached through eval of a built string",
           submission("normalization", {"p6_answer": (
               "_norm = eval('torch.nn.functional.' + 'instance' + '_norm')\n\n\n"
               "def custom_instance_norm1d(input_tensor, eps):\n"
               "    return _norm(input_tensor, eps=eps)\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_group_norm", "normalization", "p7", "nn.GroupNorm without affine",
           submission("normalization", {"p7_answer": (
               "def custom_group_norm(input_tensor, groups, eps):\n"
               "    layer = nn.GroupNorm(groups, input_tensor.shape[1], eps=eps, affine=False)\n"
               "    return layer.to(input_tensor.dtype)(input_tensor)\n")}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_p3_wraps_module", "normalization", "p3",
           "CustomBatchNorm1d delegating to nn.BatchNorm1d (running statistics included)",
           submission("normalization", {"p3_answer": P3_WRAPS_TORCH}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_bn_wraps_module", "batchnorm", "bn",
           "BatchNorm wrapping nn.BatchNorm1d/2d, seed tests' logging attributes kept",
           submission("batchnorm", {"bn_answer": BN_WRAPS_TORCH}),
           shows=("tests", FORBIDDEN), plain=True, forbidden_rule=True),
    Attack("forbidden_recorder_disabled", "normalization", "p4",
           "built-string F.batch_norm with normcheck.FORBIDDEN_OP patched in the sandbox",
           submission("normalization", {"p4_answer": DISABLE_RECORDER}),
           shows=("tests", FORBIDDEN), plain=True),

    # --- tampering around a wrong answer ------------------------------------------------
    Attack("wrong_answer_alone", "normalization", "p1",
           "the wrong answer the tampering attacks use, untampered: it scores 0",
           submission("normalization", {"p1_answer": WRONG["p1"]})),
    Attack("tamper_torch_allclose", "normalization", "p1", "torch.allclose always True",
           submission("normalization", wrong("p1", "torch.allclose = lambda *a, **k: True")),
           plain=True),
    Attack("tamper_numpy_allclose", "normalization", "p2",
           "numpy.allclose patched, torch.allclose routed through it",
           submission("normalization", wrong("p2", PATCH_NUMPY)), plain=True),
    Attack("tamper_tensor_methods", "normalization", "p4",
           "Tensor.__eq__/allclose/isclose/equal and torch.isclose/allclose/equal patched",
           submission("normalization", wrong("p4", PATCH_TENSOR_METHODS)), plain=True),
    Attack("tamper_tensor_subclass", "normalization", "p5",
           "returns a Tensor subclass whose allclose/isclose/equal always agree",
           submission("normalization", {"p5_answer": TENSOR_SUBCLASS}), plain=True),
    Attack("tamper_builtins", "normalization", "p6",
           "builtins.AssertionError replaced and builtins.enumerate emptied",
           submission("normalization", wrong("p6", PATCH_BUILTINS)), plain=True),
    Attack("tamper_every_allclose", "normalization", "p7",
           "every allclose/isclose/equal attribute of every module in sys.modules",
           submission("normalization", wrong("p7", PATCH_EVERY_ALLCLOSE)), plain=True),
    Attack("tamper_normcheck_functions", "normalization", "p4",
           "normcheck.function_matches and gradients_match replaced by no-ops",
           submission("normalization", wrong("p4", PATCH_NORMCHECK)), plain=True),
    Attack("tamper_normcheck_module", "normalization", "p2",
           "sys.modules['normcheck'] replaced by a fake and `check` rebound to it",
           submission("normalization", wrong("p2", REPLACE_NORMCHECK)), plain=True),
    Attack("tamper_in_added_cell", "normalization", "p5",
           "a learner-added cell before the tests patches torch.allclose",
           submission("normalization", {"p5_answer": WRONG["p5"]}, edit=insert_cells(
               ("p5_example", "torch.allclose = lambda *a, **k: True\ntorch.isclose = "
                               "lambda a, b, **k: torch.ones(a.shape, dtype=torch.bool)"))),
           plain=True),
    Attack("mutates_input", "normalization", "p1",
           "changes its input in place (not while gradients are taken): 2 of 5, untampered",
           submission("normalization", {"p1_answer": P1_MUTATES}), target_score=2.0),
    Attack("tamper_hide_input_mutation", "normalization", "p1",
           "the same, with torch.equal patched so the mutation check cannot see it",
           submission("normalization", {"p1_answer": (
               "torch.equal = lambda *a, **k: True\n\n\n" + P1_MUTATES)}),
           target_score=2.0),
    Attack("tamper_setup_stripped", "normalization", "p1",
           "the setup cell's metadata stripped, then `check` patched in the answer cell",
           submission("normalization", wrong("p1", PATCH_NORMCHECK), edit=_strip_setup_metadata),
           plain=True),
    Attack("tamper_seed_tests_deleted", "batchnorm", "bn",
           "bn_seed_tests deleted; the answer cell defines the ten tests as `return True`",
           submission("batchnorm", {"bn_answer": STUB_AND_PASSING_SEED_TESTS},
                      edit=_delete("bn_seed_tests")),
           plain=True),
    Attack("tamper_setup_moved_last", "normalization", "p1",
           "the setup cell moved to the end of the notebook; the answer cell binds a `check` "
           "and a `torch` whose checks all pass, before a wrong p1",
           submission("normalization", wrong("p1", FAKE_SETUP_NAMES), edit=_move_to_end("setup")),
           plain=True),
    Attack("tamper_seed_tests_moved_last", "batchnorm", "bn",
           "bn_seed_tests moved to the end of the notebook; the answer cell defines the ten "
           "tests as `return True`",
           submission("batchnorm", {"bn_answer": STUB_AND_PASSING_SEED_TESTS},
                      edit=_move_to_end("bn_seed_tests")),
           plain=True),
    Attack("tamper_shadow_range", "normalization", "p5",
           "a global named `range` that yields nothing empties the example's loop over ranks "
           "2 to 7; the answer is wrong for ranks 6 and 7 only",
           submission("normalization", {"p5_answer": (
               "range = lambda *args: []\n\n\n"
               "def custom_layer_norm(input_tensor, eps):\n"
               "    if input_tensor.dim() > 5:\n"
               "        return input_tensor\n"
               "    rows = input_tensor.reshape(input_tensor.shape[0], -1)\n"
               "    var, mean = torch.var_mean(rows, dim=1, keepdim=True, correction=0)\n"
               "    return ((rows - mean) / torch.sqrt(var + eps)).reshape(input_tensor.shape)\n")}),
           target_score=4.0, plain=True),

    # --- reading the instructor's solution ----------------------------------------------
    Attack("read_solution_notebook", "normalization", "p3",
           "opens source/normalization/normalization.ipynb (relative and absolute) and execs p3",
           _probing("p3_answer", READ_SOLUTION, wrong_answer=True), plain=True),
    Attack("read_classmate", "normalization", "p5",
           "copies p5 from a classmate's notebook in submitted/ (atk-control's) and execs it",
           _probing("p5_answer", READ_CLASSMATE, wrong_answer=True), plain=True),

    # --- faults that cost their own problem only ----------------------------------------
    Attack("loop_in_function", "normalization", "p2", "an infinite loop in the function",
           submission("normalization", {"p2_answer": lambda ref: ref.replace(
               "    mean = torch.mean", "    while True:\n        pass\n    mean = torch.mean",
               1)})),
    Attack("loop_at_cell", "normalization", "p3", "an infinite loop at cell level",
           submission("normalization",
                      {"p3_answer": lambda ref: ref + "\nwhile True:\n    pass\n"})),
    Attack("exit_at_cell", "normalization", "p4", "os._exit(0) at cell level",
           submission("normalization",
                      {"p4_answer": lambda ref: ref + "\nimport os\nos._exit(0)\n"})),
    Attack("exit_in_function", "normalization", "p5", "os._exit(0) inside the function",
           submission("normalization", {"p5_answer": lambda ref: "import os\n" + ref.replace(
               "    normalize_dims =", "    os._exit(0)\n    normalize_dims =", 1)})),
    Attack("segfault", "normalization", "p6", "ctypes.string_at(0) inside the function",
           submission("normalization", {"p6_answer": lambda ref: "import ctypes\n" + ref.replace(
               "    mean = torch.mean", "    ctypes.string_at(0)\n    mean = torch.mean", 1)})),
    Attack("memory_in_function", "normalization", "p7", "a 1 TB bytearray inside the function",
           submission("normalization", {"p7_answer": lambda ref: ref.replace(
               "    n, c, length =", "    hog = bytearray(2**40)\n    n, c, length =", 1)})),
    Attack("memory_at_cell", "batchnorm", "bn", "a list of 2**40 items at the top of the cell",
           submission("batchnorm", {"bn_answer": lambda ref: "hog = [None] * 2**40\n" + ref})),
    Attack("exit_in_forward", "batchnorm", "bn", "os._exit(1) in forward, called by the seed tests",
           submission("batchnorm", {"bn_answer": lambda ref: "import os\n" + ref.replace(
               "        # Test\n", "        os._exit(1)\n", 1)})),
    Attack("sys_exit_at_cell", "normalization", "p1", "sys.exit() at the top of the answer cell",
           submission("normalization",
                      {"p1_answer": lambda ref: "import sys\nsys.exit()\n" + ref})),
    Attack("raise_at_import", "normalization", "p2", "import of a missing module at the top",
           submission("normalization",
                      {"p2_answer": lambda ref: "import no_such_module_xyz\n" + ref})),
    Attack("raise_after_def", "normalization", None,
           "p1's correct function, then a leftover debugging line that raises: nbgrader's own "
           "Execute keeps the function, and so must the grader",
           submission("normalization", {"p1_answer": lambda ref: ref + (
               "\nprint(custom_batch_norm1d(torch.ones(2, 3), 1e-5).shape)\n"
               "raise ValueError('a leftover debugging line')\n")})),
    Attack("leak_stack", "normalization", "p6",
           "raises with the whole call stack and its frames' locals, hoping for hidden tests",
           submission("normalization", {"p6_answer": (
               "import sys, traceback\n\n\ndef custom_instance_norm1d(input_tensor, eps):\n"
               "    frames, f = [], sys._getframe()\n"
               "    while f is not None:\n"
               "        frames.append(repr(f.f_code) + repr(list(f.f_locals)))\n"
               "        f = f.f_back\n"
               "    raise RuntimeError(''.join(traceback.format_stack())\n"
               "                       + '\\n'.join(frames))\n")})),
    Attack("del_helpers", "normalization", None,
           "a learner cell after the setup deletes check, torch, np and nn (answers import torch)",
           submission("normalization", {f"p{k}_answer": (lambda ref: "import torch\n" + ref)
                                        for k in range(1, 8)},
                      edit=insert_cells(("p1_answer", "del check, torch, np, nn")))),
    Attack("exit_in_added_cell", "normalization", None,
           "a learner cell right after the setup calls os._exit(1)",
           submission("normalization", edit=insert_cells(
               ("p1_answer", f"{MARK}\nimport os\nos._exit(1)")),),
           shows=("marked", "it was skipped")),
    Attack("forged_reply", "normalization", "p1",
           "the cell sends the grader a reply of its own on the sandbox's socket: a "
           "pickle whose unpickling runs code (a wrong p1 after it)",
           submission("normalization", wrong("p1", forge_reply())),
           shows=("tests", "other than plain data")),
    # --- probes: a correct answer that also reaches for what it must not ---------------
    Attack("probe_files", "normalization", "p1",
           "reads the solutions, the gradebook, a classmate's notebook, /etc/passwd and "
           "/proc, by absolute and relative paths; lists the course and system folders",
           _probing("p1_answer", PROBE_FILES), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),
    Attack("probe_writes", "normalization", "p2",
           "creates, renames, deletes, links, chmods and touches files of the course and in "
           "/tmp; chroot and unshare to get out",
           _probing("p2_answer", PROBE_WRITES), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),
    Attack("probe_network", "normalization", "p4",
           "TCP to the test's loopback listener and to PostgreSQL's port, IPv6, UDP, a bound "
           "port, a netlink socket, the host's interfaces",
           _probing("p4_answer", PROBE_NETWORK), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),
    Attack("probe_environment", "normalization", "p5",
           "prints its environment; reads the run's secret, NBGRADER_DB_URL and the "
           "grader's /proc/<pid>/environ",
           _probing("p5_answer", PROBE_ENVIRONMENT), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),
    Attack("probe_processes", "normalization", "p7",
           "looks for the test's process, its parent and any process it could signal; "
           "System V shared memory (a channel to other sandboxes)",
           _probing("p7_answer", PROBE_PROCESSES), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),
    Attack("orphan_process", "normalization", "p6",
           "the p6 answer forks a child that calls setsid() to outlive its sandbox, runs a "
           "command, raises its open-file limit and opens 1200 files",
           _probing("p6_answer", PROBE_PROCESSES_STARTED), target_score=5.0, probe=True,
           shows=("answer", "probe ran:")),

    # --- malformed submissions ---------------------------------------------------------
    Attack("invalid_json", "normalization", None, "the notebook cut in half (not JSON)",
           _bad_json, whole=True, report="is not a valid notebook"),
    Attack("missing_notebook", "normalization", None, "the folder without its notebook",
           _missing, whole=True, report="normalization.ipynb is missing; it scores zero"),
    Attack("renamed_notebook", "normalization", None, "saved as 'normalization (1).ipynb'",
           _renamed, whole=True,
           report="is missing (found normalization (1).ipynb: renamed?); it scores zero"),
    Attack("test_cell_deleted", "normalization", None, "the p2_example test cell deleted",
           submission("normalization", edit=_delete("p2_example")),
           report="test cells deleted or stripped of their metadata, restored from the "
                  "gradebook: p2_example"),
    Attack("test_cell_edited", "normalization", None, "the p4_example test cell made `pass`",
           submission("normalization", edit=_edit_source("p4_example", "pass")),
           report="test cells edited, restored from the gradebook: p4_example"),
    Attack("test_metadata_stripped", "normalization", None,
           "the p5_example test cell's metadata removed",
           submission("normalization", edit=_strip_metadata("p5_example")),
           report="test cells deleted or stripped of their metadata, restored from the "
                  "gradebook: p5_example"),
    Attack("extra_cells", "normalization", None,
           "markdown, raw and code cells added at the start, between problems (one running "
           "torch's own layer beside the answers) and at the end",
           submission("normalization", edit=_extra_cells)),
    Attack("huge_outputs", "normalization", None, "30 MB of text stored in a cell's outputs",
           submission("normalization", edit=_huge_outputs),
           report="MB; its outputs are cleared before grading"),
    Attack("stray_files", "normalization", "p1",
           "a fake normcheck.py (every check passes) and other files beside a wrong p1",
           submission("normalization", {"p1_answer": WRONG["p1"]},
                      files={"normcheck.py": FAKE_NORMCHECK, "notes.txt": "my notes\n",
                             "helpers.py": "from normcheck import *\n"}),
           report="files not in the release, graded with the notebooks (copied beside them): "
                  "helpers.py, notes.txt", plain=True),

    Attack("notebook_symlink", "normalization", None,
           "the notebook is a symlink to the instructor's notebook (a blank submission)",
           _symlinked, whole=True),
    Attack("bad_timestamp", "normalization", None, "timestamp.txt that is not a date",
           submission("normalization", files={"timestamp.txt": "yesterday, I think\n"}),
           whole=True, report="nbgrader could not grade it"),
    Attack("test_cell_made_solution", "normalization", None,
           "the p1_example test cell's metadata says solution: true",
           submission("normalization", edit=_flags("p1_example", solution=True)),
           report="cell roles or points edited in the metadata, restored from the gradebook: "
                  "p1_example"),
    Attack("answer_made_test", "normalization", None,
           "the p2 answer cell's metadata made a graded test cell worth 1000 points",
           submission("normalization", edit=_flags("p2_answer", grade=True, points=1000)),
           report="cell roles or points edited in the metadata, restored from the gradebook: "
                  "p2_answer"),
    Attack("setup_duplicated", "normalization", None,
           "a copy of the setup cell (same grade_id) appended after the last problem",
           submission("normalization", wrong("p1", PATCH_NORMCHECK), edit=_duplicate_setup),
           whole=True, report="nbgrader could not grade normalization.ipynb"),

    # --- the control: graded in the same run --------------------------------------------
    Attack("control", "normalization", None, "the reference answers (nothing to gain or lose)",
           submission("normalization")),
    Attack("control", "batchnorm", None, "the reference answer (nothing to gain or lose)",
           submission("batchnorm")),

    # --- the second run: malformed submissions that could stop a whole run ----------------
    Attack("crash_assignment_is_a_file", "normalization", None,
           "submitted/<student>/normalization is the notebook file, not a folder",
           _assignment_file, whole=True, report="", batch=2),
    Attack("crash_metadata_null", "normalization", None,
           "a code cell whose metadata is {'nbgrader': null}",
           submission("normalization", edit=_null_metadata("p1_answer")),
           whole=True, report="", batch=2),
    Attack("crash_control", "normalization", None,
           "the reference answers, graded in the second run", submission("normalization"),
           batch=2),
]


# ---------------------------------------------------------------------------
# Running the catalog
# ---------------------------------------------------------------------------

GRADING_OUTPUTS = ("autograded", "feedback", "gradebook.db", "gradebook.db-journal")
TIMEOUT = "8"  # seconds per cell: an infinite loop costs this much; 3 s flaked under load


def folder_hashes(root, skip=()):
    """{relative path: sha256} of every file under ``root``, but the top-level ``skip``
    entries and __pycache__ folders (the grader's own imports write them)."""
    hashes = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"
                   and not (folder == root and d in skip)]
        for name in files:
            path = os.path.join(folder, name)
            if folder == root and name in skip:
                continue
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


@dataclass
class Run:
    """What one grading run of a batch of attacks produced."""
    report: str            # the wrapper's report, or why it failed
    crashed: bool          # the wrapper exited with an error
    scores: dict           # course.scores() after the run
    changed: list          # course files (not its grading outputs) added, removed or changed
    orphans: list          # pids of the orphan attacks' processes still alive after the run
    seconds: float
    plain: dict            # {name: target score} of its ``plain`` attacks (plain_scores)
    connections: int = 0   # connections the loopback listener accepted during the run
    leaks: list = None     # files of the course (outputs included) holding the run's secret
    wrote_tmp: bool = False  # the probe's file in /tmp exists


def grade_batch(course, batch, timeout=TIMEOUT):
    """Build and grade the attacks of ``batch`` in one run of the wrapper."""
    attacks = [a for a in ATTACKS if a.batch == batch]
    run = grade_attacks(course, attacks, "atk-*" if batch == 1 else "atk-crash_*", timeout,
                        plain=True)
    if batch != 1:  # leave nothing that could stop another test's run of the wrapper
        for attack in attacks:
            shutil.rmtree(os.path.join(course.root, "submitted", attack.student),
                          ignore_errors=True)
    return run


def grade_attacks(course, attacks, glob, timeout=TIMEOUT, plain=False, run_as=None, env=None):
    """Build ``attacks`` and grade them in one run of ``nbconfine autograde``
    (as the user ``run_as``, with ``env`` added), with the run's secret in its
    environment; with ``plain``, the plain runs meanwhile."""
    import signal
    import time
    build_all(course, attacks)
    if run_as:
        shutil.chown(course.root, run_as)
        for folder, dirs, files in os.walk(course.root):
            for name in dirs + files:
                shutil.chown(os.path.join(folder, name), run_as)
    before = folder_hashes(course.root, GRADING_OUTPUTS)
    connections = LISTENER.connections
    running = start_plain(course, [a for a in attacks if a.plain]) if plain else None
    start = time.monotonic()
    done = wrapper(course, glob, {"NORMGRADE_CELL_TIMEOUT": timeout, SECRET_NAME: SECRET,
                                  **(env or {})}, run_as)
    crashed = done.returncode != 0
    report = f"the wrapper failed: {done.stderr[-3000:]}" if crashed else done.stdout
    seconds = time.monotonic() - start
    after = folder_hashes(course.root, GRADING_OUTPUTS)
    changed = sorted(path for path in set(before) | set(after)
                     if before.get(path) != after.get(path))
    alive = orphans()
    for pid in alive:  # the orphan attacks' children: end them now
        os.kill(pid, signal.SIGKILL)
    leaks = [path for path, text in course_texts(course.root) if SECRET in text]
    leaks += ["the wrapper's output"] if SECRET in done.stdout + done.stderr else []
    wrote_tmp = os.path.exists(TMP_MARK)
    if wrote_tmp:
        os.remove(TMP_MARK)
    return Run(report, crashed, course.scores(), changed, alive, seconds,
               finish_plain(running), LISTENER.connections - connections, leaks, wrote_tmp)


def wrapper(course, glob, env, run_as=None):
    """Run the autograde wrapper over ``course`` (as the user ``run_as``): the completed
    process."""
    import subprocess
    command = [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
               "--jobs", "2", "--students", glob]
    if run_as:
        command = ["runuser", "-u", run_as, "--"] + command
        env = {**env, "HOME": course.root}
    return subprocess.run(command, cwd=course.root, env={**course.env, **env},
                          capture_output=True, text=True, timeout=1800)


def course_texts(root):
    """(relative path, text) of every file under ``root``."""
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                yield os.path.relpath(path, root), f.read().decode("utf-8", "replace")


def scratch_course(course, root):
    """A copy of the released ``course`` in ``root`` with no submissions (its gradebook
    keeps the rows of students already graded: other globs do not touch them)."""
    outputs = ("submitted", "autograded", "feedback")
    shutil.copytree(course.root, root, symlinks=True, ignore=lambda folder, names: [
        name for name in names if folder == course.root and name in outputs])
    os.makedirs(os.path.join(root, "autograded"))
    twin = Course.__new__(Course)
    twin.root, twin.env = root, course.env
    return twin


def build_all(course, attacks=ATTACKS):
    for attack in attacks:
        shutil.rmtree(os.path.join(course.root, "submitted", attack.student, attack.assignment),
                      ignore_errors=True)
        attack.build(course, attack.student)


def report_lines(report, attack):
    """The report's "Problems found:" lines about ``attack``'s submission."""
    found = report.split("Problems found:", 1)[1].splitlines()[1:]
    prefix = f"{attack.student}/{attack.assignment}: "
    return [line.strip()[len(prefix):] for line in found if line.strip().startswith(prefix)]


def orphans(name=ORPHAN_NAME):
    """PIDs of processes named ``name``."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


# ---------------------------------------------------------------------------
# Plain runs: the attack in one namespace, as a single kernel would run it
# ---------------------------------------------------------------------------

def start_plain(course, attacks):
    """Start running ``attacks`` each in one plain namespace; finish_plain() has the scores."""
    import subprocess
    if not attacks:
        return None
    jobs = [{"name": a.name, "folder": os.path.dirname(notebook_path(course, a.student,
                                                                      a.assignment)),
             "notebook": ASSIGNMENTS[a.assignment], "target": a.target,
             "source": os.path.join(course.root, "source", a.assignment,
                                    ASSIGNMENTS[a.assignment]),
             "rule_off": a.forbidden_rule} for a in attacks]
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--plain",
                             json.dumps(jobs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def finish_plain(process):
    """{attack name: score of its target} from start_plain()."""
    if process is None:
        return {}
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _plain_child(job):
    """Run the notebook's cells up to the target's tests in one namespace; its score."""
    import contextlib
    import io
    import signal
    import warnings
    from IPython.core.inputtransformer2 import TransformerManager

    signal.alarm(60)
    sys.dont_write_bytecode = True  # nothing may appear under submitted/
    warnings.simplefilter("ignore")  # as the grader's test cells do
    os.chdir(job["folder"])
    sys.path.insert(0, "")  # a kernel started in the notebook's folder imports from it
    nb = nbformat.read(job["notebook"], as_version=4)
    source = nbformat.read(job["source"], as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade")}
    namespace = {"__name__": "__main__"}
    score = 0.0
    owned = [i for i, c in enumerate(nb.cells)
             if c.metadata.get("nbgrader", {}).get("grade_id", "").split("_")[0] == job["target"]]
    for index, cell in enumerate(nb.cells[:max(owned) + 1]):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        is_test = grade_id in tests and not meta.get("solution")
        if is_test and grade_id.split("_")[0] != job["target"]:
            continue  # other problems' tests: not needed for the target's score
        code = tests[grade_id].source if is_test else cell.source
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                exec(compile(TransformerManager().transform_cell(code), f"<cell {index}>",
                             "exec"), namespace)
            passed = True
        except BaseException as exc:
            passed = False
            if os.environ.get("ATTACKS_DEBUG") and is_test:
                print(job["name"], grade_id, type(exc).__name__, str(exc)[:300],
                      file=sys.__stderr__)
        if grade_id == "setup" and job["rule_off"]:
            sys.modules["normcheck"].FORBIDDEN_OP = re.compile("(?!)")
        if is_test and passed:
            score += tests[grade_id].metadata["nbgrader"]["points"]
    return score


def _plain_main(jobs, parallel=2):
    """Print {name: score} of ``jobs``: one fork per job, ``parallel`` at once."""
    import torch  # imported once, before forking
    import torch._dynamo  # noqa: F401  (what a TorchDispatchMode imports on first use)
    import torch.nn.functional  # noqa: F401
    from IPython.core.inputtransformer2 import TransformerManager
    TransformerManager().transform_cell("x = 1\n")
    torch.set_num_threads(1)
    running, scores = {}, {}

    def reap():
        pid, _ = os.wait()
        name, read = running.pop(pid)
        with os.fdopen(read) as pipe:
            data = pipe.read()
        scores[name] = json.loads(data) if data else None

    for job in jobs:
        if len(running) >= parallel:
            reap()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                os.write(write, json.dumps(_plain_child(job)).encode())
            finally:
                os._exit(0)
        os.close(write)
        running[pid] = (job["name"], read)
    while running:
        reap()
    print(json.dumps(scores))


def _main():
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        course = Course(root)
        course.release()
        for batch in (1, 2):
            run = grade_batch(course, batch)
            print(run.report)
            print(f"batch {batch}: {run.seconds:.0f} s; changed under submitted/: {run.changed}; "
                  f"orphans: {run.orphans}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--plain"]:
        _plain_main(json.loads(sys.argv[2]))
    else:
        _main()
