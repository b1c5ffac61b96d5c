"""Start or reach the sandboxes' zygote (nbconfine.forkserver), without loading its
libraries here.

A ``Spec`` says what the zygote prepares: the roles its sandboxes play, the modules it
loads once (torch, numpy, ...) and the course's checks module (problem mode). The
course's configuration (``nbconfine.configure``) names them; ``shared(spec)`` starts the
zygote of this process, or reaches the one named by ``NBCONFINE_ZYGOTE``:
``nbconfine.autograde`` starts one zygote for all its workers (``serve(spec)``), which
then connect to it instead of starting their own.

A zygote that dies (killed, out of memory) is restarted by the process that notices, on
its next fork: one it started is started again; one it reached is replaced by one of
its own. A sandbox that dies with its zygote says so (``Sandbox.zygote_lost``), so the
mode grading it can grade its problem again. A zygote that cannot be restarted is a
``faults.GraderFault``: the submission is left ungraded, never scored zero.
"""
import atexit
import contextlib
import ctypes
import getpass
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from nbconfine import confine, faults, runs

ZYGOTE_DIED = "the sandbox zygote died; see the autograde log"
NOT_RESTARTED = ("the sandbox zygote died and could not be restarted (the new one died "
                 "before it was ready; see the worker's log)")
# Names the engine's processes go by (ps, /proc/PID/comm; at most 15 characters).
ZYGOTE_NAME, SANDBOX_NAME, WORKER_NAME = "nbc-zygote", "nbc-sandbox", "nbc-worker"
PR_SET_NAME = 15
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
    grader's (no NBGRADER_DB_URL, no tokens, nothing from the instructor's shell) but its
    user name (USER, LOGNAME: getpass.getuser() as in a kernel). The
    engine is imported from where the grader imports it; the interpreter's directory
    comes first on PATH, as in the activated environment a kernel is started from
    (`!python`, `!pip`); matplotlib draws inline, as in a Jupyter kernel. glibc's
    allocator asks for transparent huge pages (where the kernel
    offers them): most of what torch's import leaves in the zygote then lies on 2 MiB
    pages, so each fork copies, and each sandbox's exit frees, one page-table entry
    where there would be 512; a sandbox writing to such a page still copies 4 KiB."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:  # the grader's user name, as a kernel started by nbgrader finds it (no passwd
        user = getpass.getuser()  # entry in a sandbox)
    except (KeyError, OSError):
        user = None
    path = dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin",
                          "/bin"])
    return {"PATH": os.pathsep.join(path), "PYTHONPATH": package_root,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
            **({"USER": user, "LOGNAME": user} if user else {})}


@dataclass
class Asked:
    """A fork request in flight (``Zygote.fork_ahead``): the socket its sandbox answers
    on (None: the zygote was gone), its memory allowance, the zygote connection asked."""
    sock: object
    memory_bytes: int
    control: object


class ZygoteGone(RuntimeError):
    """The zygote hung up: it died."""

    def __init__(self):
        super().__init__(ZYGOTE_DIED)


class Zygote:
    """The process that forks sandboxes: started here or, with ``path``, an already
    running one reached through its socket.

    ``pid``, ``confinement`` and ``spec`` come with the zygote's hello, read on first use;
    pids are read from the kernel's credentials of a message, which name the sender as
    this process sees it, whatever PID namespace the sender is in. A dead zygote is
    restarted by ``fork`` (and by reading the hello); ``restarts`` counts how often."""

    def __init__(self, spec=Spec(), path=None, listen_path=None):
        self.wanted, self.path, self.listen_path = spec, path, listen_path
        self.env = {SHARED_ENV: listen_path} if listen_path else None  # for its clients
        self.restarts = 0
        self.control = None
        try:
            self._start()
        except ZygoteGone:  # the zygote to reach died already
            self.restart()

    def _start(self):
        self.process = None
        self._hello = None
        if self.path:
            self.control = _connect(self.path)
            return
        if self.listen_path and os.path.exists(self.listen_path):
            os.unlink(self.listen_path)  # a dead zygote's: its successor binds the name
        self.control, theirs = socket.socketpair()
        self.control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        without = os.environ.get(confine.MISSING_ENV, "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nbconfine.forkserver", str(theirs.fileno()), without,
             json.dumps(self.wanted.to_wire())]
            + ([self.listen_path] if self.listen_path else []),
            pass_fds=[theirs.fileno()], env=sandbox_environment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C: ends by hang-up
        theirs.close()

    def _greeting(self):
        if self._hello is None:
            try:
                self._hello = self._read_hello()
            except ZygoteGone:
                self.restart()
        return self._hello

    def _read_hello(self):
        header, pid = _receive_with_pid(self.control, 8)
        size = struct.unpack(">Q", header)[0]
        try:
            data = self.control.recv(size, socket.MSG_WAITALL)
        except OSError:
            raise ZygoteGone() from None
        if len(data) != size:
            raise ZygoteGone()
        hello = json.loads(data)
        return (pid, confine.Confinement.from_wire(hello["confinement"]),
                Spec.from_wire(hello["spec"]))

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

    def alive(self):
        """Whether the zygote is still there: after its hello it never writes to this
        socket, so anything to read is its hang-up."""
        try:
            if not select.select([self.control], [], [], 0)[0]:
                return True
            return self.control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except BlockingIOError:
            return True
        except (OSError, ValueError):
            return False

    def restart(self):
        """Start a zygote in place of this dead one (a zygote reached through a socket is
        replaced by one of this process's own). Raises faults.GraderFault when the new one
        dies before its hello."""
        dead = self._hello[0] if self._hello else None
        self._end()
        self.restarts += 1
        self.path = None
        self._start()
        try:
            self._hello = self._read_hello()
        except ZygoteGone:
            self._end()
            raise faults.GraderFault(NOT_RESTARTED) from None
        faults.note(f"the sandbox zygote{f' (pid {dead})' if dead else ''} died and was "
                    f"restarted (pid {self._hello[0]})")

    def fork(self, memory_bytes):
        """A new sandbox that may add ``memory_bytes`` to the zygote's: (socket, pid). A
        dead zygote is restarted first; raises faults.GraderFault if that one dies too."""
        self._greeting()
        try:
            return self._fork(memory_bytes)
        except ZygoteGone:
            self.restart()
        try:
            return self._fork(memory_bytes)
        except ZygoteGone:
            raise faults.GraderFault("the sandbox zygote died again right after it was "
                                     "restarted (see the worker's log)") from None

    def fork_ahead(self, memory_bytes):
        """Ask for a sandbox now and take it later (``take``): the zygote forks it while
        this process goes on. Returns the request (``Asked``)."""
        self._greeting()
        try:
            return Asked(self._ask(memory_bytes), memory_bytes, self.control)
        except ZygoteGone:
            return Asked(None, memory_bytes, None)  # taken, it is forked anew

    def take(self, asked):
        """The sandbox ``fork_ahead`` asked for: (socket, pid). If its zygote died
        meanwhile (the sandbox, forked already, dies with it), a sandbox of the restarted
        one (as ``fork``)."""
        if asked.sock is not None and asked.control is self.control and self.alive():
            try:
                return self._receive(asked.sock)
            except ZygoteGone:
                pass
        elif asked.sock is not None:
            asked.sock.close()
        return self.fork(asked.memory_bytes)

    def _fork(self, memory_bytes):
        return self._receive(self._ask(memory_bytes))

    def _ask(self, memory_bytes):
        """Send a fork request; returns the socket the sandbox will answer on."""
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            socket.send_fds(self.control, [struct.pack(">Q", memory_bytes)], [theirs.fileno()])
        except OSError:
            ours.close()
            raise ZygoteGone() from None
        finally:
            theirs.close()
        return ours

    def _receive(self, ours):
        """(``ours``, the pid of the sandbox that answers on it)."""
        try:
            # A zygote killed with the request queued may never close the sandbox's end
            # (the kernel collects sockets in flight lazily): its own hang-up says it.
            if ours not in select.select([ours, self.control], [], [])[0]:
                raise ZygoteGone()
            _, pid = _receive_with_pid(ours, 1)
        except OSError:
            ours.close()
            raise ZygoteGone() from None
        except ZygoteGone:
            ours.close()
            raise
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
        return ours, pid

    def _end(self):
        """Hang up; a zygote this process started is killed (if alive) and reaped."""
        if self.control:
            self.control.close()
        if self.process:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self):
        self.control.close()
        if self.process:
            self.process.wait(timeout=30)


def _receive_with_pid(sock, size):
    """(``size`` bytes, the sender's pid as this process sees it)."""
    try:
        data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_SPACE(_CREDENTIALS.size),
                                             socket.MSG_WAITALL)
    except OSError:  # reset, or closed here after an earlier death
        raise ZygoteGone() from None
    pids = [_CREDENTIALS.unpack(payload[:_CREDENTIALS.size])[0]
            for level, kind, payload in ancillary
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    if len(data) != size or not pids or pids[0] <= 0:
        raise ZygoteGone()
    return data, pids[0]


@contextlib.contextmanager
def socket_address(path):
    """``path`` as a Unix socket's address, which holds at most 107 bytes: beyond that (a
    deep TMPDIR), through the folder opened meanwhile (/proc/self/fd/N/NAME)."""
    if len(os.fsencode(path)) < 100:
        yield path
        return
    folder = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


def _connect(path, seconds=120):
    """Connect to a zygote's socket, waiting while it starts (it binds once prepared);
    ZygoteGone if it died (its socket refuses) or never bound it."""
    deadline = time.monotonic() + seconds
    while True:
        client = socket.socket(socket.AF_UNIX)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            with socket_address(path) as address:
                client.connect(address)
            return client
        except FileNotFoundError:
            client.close()
            if time.monotonic() > deadline:
                raise ZygoteGone() from None
            time.sleep(0.05)
        except ConnectionRefusedError:
            client.close()
            raise ZygoteGone() from None


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


def name_process(name):
    """Name the calling process (``ps``, /proc/PID/comm): tests and operators find the
    engine's processes by these names, which no other process takes by forking."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


@contextlib.contextmanager
def serve(spec, folder=None):
    """A zygote for several processes: yields it; its ``env`` is the environment entry
    that points to it. Its socket is in a new private run folder in ``folder``
    (nbconfine.runs: a later run removes it if this process is killed)."""
    with runs.run_folder(folder) as private:
        path = os.path.join(private, "zygote.sock")  # the folder's mode is 0700
        zygote = Zygote(spec, listen_path=path)
        # The zygote ends when its owner hangs up: processes forked from the owner (its
        # workers) must not hold the owner's end open (whichever zygote it is by then).
        os.register_at_fork(after_in_child=lambda: zygote.control.close())
        try:
            yield zygote
        finally:
            zygote.close()
