"""Start or reach the sandboxes' zygote (nbconfine.forkserver), without loading its
libraries here.

A ``Spec`` says what the zygote prepares: the roles its sandboxes play, the modules it
loads once (torch, numpy, ...) and the course's checks module (problem mode). The
course's configuration (``nbconfine.configure``) names them; ``shared(spec)`` starts the
zygote of this process, or reaches the one named by ``NBCONFINE_ZYGOTE``:
``nbconfine.autograde`` starts one zygote for all its workers (``serve(spec)``), which
then connect to it instead of starting their own.
"""
import atexit
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from nbconfine import confine

ZYGOTE_DIED = "the sandbox zygote died; see the autograde log"
SHARED_ENV = "NBCONFINE_ZYGOTE"
_shared = None
_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Spec:
    """What a zygote prepares once for its sandboxes (see nbconfine.forkserver)."""
    roles: tuple = ("notebook",)  # "problem" and/or "notebook"
    preload: tuple = ()  # modules imported once, before any sandbox is forked
    checks: str = ""  # path of the course's checks module (problem mode), or ""

    def to_wire(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_wire(cls, data):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def sandbox_environment():
    """The zygote's environment, hence every sandbox's: a fixed allowlist, nothing of the
    grader's (no NBGRADER_DB_URL, no tokens, nothing from the instructor's shell). The
    engine is imported from where the grader imports it; matplotlib draws inline, as in a
    Jupyter kernel."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": package_root,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


class Zygote:
    """The process that forks sandboxes: started here or, with ``path``, an already
    running one reached through its socket.

    ``pid``, ``confinement`` and ``spec`` come with the zygote's hello, read on first use;
    pids are read from the kernel's credentials of a message, which name the sender as
    this process sees it, whatever PID namespace the sender is in."""

    def __init__(self, spec=Spec(), path=None, listen_path=None):
        self.process = None
        self._hello = None
        self.env = {SHARED_ENV: listen_path} if listen_path else None  # for its clients
        if path:
            self.control = _connect(path)
            return
        self.control, theirs = socket.socketpair()
        self.control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        without = os.environ.get(confine.MISSING_ENV, "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nbconfine.forkserver", str(theirs.fileno()), without,
             json.dumps(spec.to_wire())] + ([listen_path] if listen_path else []),
            pass_fds=[theirs.fileno()], env=sandbox_environment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C: ends by hang-up
        theirs.close()

    def _greeting(self):
        if self._hello is None:
            header, pid = _receive_with_pid(self.control, 8)
            size = struct.unpack(">Q", header)[0]
            data = self.control.recv(size, socket.MSG_WAITALL)
            if len(data) != size:
                raise RuntimeError(ZYGOTE_DIED)
            hello = json.loads(data)
            self._hello = (pid, confine.Confinement.from_wire(hello["confinement"]),
                           Spec.from_wire(hello["spec"]))
        return self._hello

    @property
    def pid(self):
        return self._greeting()[0]

    @property
    def confinement(self):
        """The confinement layers of its sandboxes (confine.Confinement)."""
        return self._greeting()[1]

    @property
    def spec(self):
        return self._greeting()[2]

    def fork(self, memory_bytes):
        """A new sandbox that may add ``memory_bytes`` to the zygote's: (socket, pid)."""
        self._greeting()
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            socket.send_fds(self.control, [struct.pack(">Q", memory_bytes)], [theirs.fileno()])
        except OSError:
            raise RuntimeError(ZYGOTE_DIED) from None
        finally:
            theirs.close()
        _, pid = _receive_with_pid(ours, 1)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
        return ours, pid

    def close(self):
        self.control.close()
        if self.process:
            self.process.wait(timeout=30)


def _receive_with_pid(sock, size):
    """(``size`` bytes, the sender's pid as this process sees it)."""
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(_CREDENTIALS.size),
                                         socket.MSG_WAITALL)
    pids = [_CREDENTIALS.unpack(payload[:_CREDENTIALS.size])[0]
            for level, kind, payload in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    if len(data) != size or not pids or pids[0] <= 0:
        raise RuntimeError(ZYGOTE_DIED)
    return data, pids[0]


def _connect(path, seconds=120):
    """Connect to a zygote's socket, waiting while it starts (it binds once prepared)."""
    deadline = time.monotonic() + seconds
    while True:
        client = socket.socket(socket.AF_UNIX)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            client.connect(path)
            return client
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def shared(spec=None):
    """The zygote of this process: the one named by NBCONFINE_ZYGOTE, else one started
    for ``spec``. A zygote started for another spec is replaced (a course's configuration
    changed after nbconfine.configure started it)."""
    global _shared
    if _shared is not None and spec is not None and _shared.process \
            and _shared.spec != spec:
        _shared.close()
        _shared = None
    if _shared is None:
        path = os.environ.get(SHARED_ENV)
        _shared = Zygote(spec or Spec(), path=path)
        atexit.register(_shared.close)
    return _shared


@contextlib.contextmanager
def serve(spec):
    """A zygote for several processes: yields it; its ``env`` is the environment entry
    that points to it."""
    with tempfile.TemporaryDirectory(prefix="nbconfine-zygote-") as private:  # mode 0700
        path = os.path.join(private, "zygote.sock")
        zygote = Zygote(spec, listen_path=path)
        # The zygote ends when its owner hangs up: processes forked from the owner (its
        # workers) must not hold the owner's end open.
        os.register_at_fork(after_in_child=zygote.control.close)
        try:
            yield zygote
        finally:
            zygote.close()
