"""Start or reach the sandboxes' zygote (normgrade.sandbox), without importing torch here.

``nbgrader_config.py`` calls ``shared()`` when nbgrader starts an autograde, so the
zygote imports torch while nbgrader loads. ``normgrade.autograde`` starts one zygote for
all its workers (``serve()``) and names its socket in ``NORMGRADE_ZYGOTE``; workers then
connect to it instead of starting their own.
"""
import atexit
import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

SHARED_ENV = "NORMGRADE_ZYGOTE"
_shared = None


class Zygote:
    """The process that forks sandboxes: started here (costs one torch import) or, with
    ``path``, an already running one reached through its socket."""

    def __init__(self, path=None, listen_path=None):
        self.process = None
        if path:
            self.control = _connect(path)
            (self.pid,) = struct.unpack(">q", self._receive(8))
            return
        self.control, theirs = socket.socketpair()
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "normgrade.sandbox", str(theirs.fileno())]
            + ([listen_path] if listen_path else []),
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C: ends by hang-up
        self.pid = self.process.pid
        theirs.close()

    def _receive(self, size):
        data = self.control.recv(size, socket.MSG_WAITALL)
        if len(data) != size:
            raise RuntimeError("the sandbox zygote died; see the autograde log")
        return data

    def fork(self, memory_bytes):
        """A new sandbox that may add ``memory_bytes`` to the zygote's: (socket, pid)."""
        ours, theirs = socket.socketpair()
        socket.send_fds(self.control, [struct.pack(">Q", memory_bytes)], [theirs.fileno()])
        theirs.close()
        (pid,) = struct.unpack(">q", self._receive(8))
        return ours, pid

    def close(self):
        self.control.close()
        if self.process:
            self.process.wait(timeout=30)


def _connect(path, seconds=120):
    """Connect to a zygote's socket, waiting while it starts (it binds after importing
    torch)."""
    deadline = time.monotonic() + seconds
    while True:
        client = socket.socket(socket.AF_UNIX)
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
    """A zygote for several processes: yields the environment entry that points to it."""
    with tempfile.TemporaryDirectory(prefix="normgrade-zygote-") as private:  # mode 0700
        path = os.path.join(private, "zygote.sock")
        zygote = Zygote(listen_path=path)
        # The zygote ends when its owner hangs up: processes forked from the owner (its
        # workers) must not hold the owner's end open.
        os.register_at_fork(after_in_child=zygote.control.close)
        try:
            yield {SHARED_ENV: path}
        finally:
            zygote.close()
