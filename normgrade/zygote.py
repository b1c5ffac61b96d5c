"""Start or reach the sandboxes' zygote (normgrade.sandbox), without importing torch here.

``nbgrader_config.py`` calls ``shared()`` when nbgrader starts an autograde, so the
zygote imports torch while nbgrader loads. ``normgrade.autograde`` starts one zygote for
all its workers (``serve()``) and names its socket in ``NORMGRADE_ZYGOTE``; workers then
connect to it instead of starting their own.
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

from normgrade import confine

ZYGOTE_DIED = "the sandbox zygote died; see the autograde log"
SHARED_ENV = "NORMGRADE_ZYGOTE"
_shared = None
_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


def sandbox_environment(package_root):
    """The zygote's environment, hence every sandbox's: a fixed allowlist, nothing of the
    grader's (no NBGRADER_DB_URL, no tokens, nothing from the instructor's shell)."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": package_root,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/nonexistent",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}


class Zygote:
    """The process that forks sandboxes: started here (costs one torch import) or, with
    ``path``, an already running one reached through its socket.

    ``pid`` and ``confinement`` come with the zygote's hello, read on first use (the
    zygote sends it once torch is loaded); pids are read from the kernel's credentials
    of a message, which name the sender as this process sees it, whatever PID
    namespace the sender is in."""

    def __init__(self, path=None, listen_path=None):
        self.process = None
        self._hello = None
        self.env = {SHARED_ENV: listen_path} if listen_path else None  # for its clients
        if path:
            self.control = _connect(path)
            return
        self.control, theirs = socket.socketpair()
        self.control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        without = os.environ.get(confine.MISSING_ENV, "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "normgrade.sandbox", str(theirs.fileno()), without]
            + ([listen_path] if listen_path else []),
            pass_fds=[theirs.fileno()], env=sandbox_environment(package_root),
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
            self._hello = pid, confine.Confinement.from_wire(json.loads(data))
        return self._hello

    @property
    def pid(self):
        return self._greeting()[0]

    @property
    def confinement(self):
        """The confinement layers of its sandboxes (confine.Confinement)."""
        return self._greeting()[1]

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
    """Connect to a zygote's socket, waiting while it starts (it binds after importing
    torch)."""
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


def shared():
    """The zygote of this process: the one named by NORMGRADE_ZYGOTE, else a new one."""
    global _shared
    if _shared is None:
        _shared = Zygote(path=os.environ.get(SHARED_ENV))
        atexit.register(_shared.close)
    return _shared


@contextlib.contextmanager
def serve():
    """A zygote for several processes: yields it; its ``env`` is the environment entry
    that points to it."""
    with tempfile.TemporaryDirectory(prefix="normgrade-zygote-") as private:  # mode 0700
        path = os.path.join(private, "zygote.sock")
        zygote = Zygote(listen_path=path)
        # The zygote ends when its owner hangs up: processes forked from the owner (its
        # workers) must not hold the owner's end open.
        os.register_at_fork(after_in_child=zygote.control.close)
        try:
            yield zygote
        finally:
            zygote.close()
