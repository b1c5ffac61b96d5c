"""A sandbox as the grader sees it: one confined process forked by the zygote.

The grader sends the sandbox its setup (its role and the role's parameters, with file
descriptors such as a working directory), then requests; every request has a deadline,
and a sandbox that misses it, dies or answers with more than ``MAX_REPLY`` bytes is
killed with everything it started. What requests and replies hold is the role's
business (nbconfine.remote for problem mode, nbconfine.notebook for notebook mode).

A sandbox that died because its zygote died (the zygote's PID namespace ends with it) is
not the answer's doing: ``zygote_lost`` says so, and the mode grades its work again in a
sandbox of the restarted zygote (nbconfine.zygote).
"""
import json
import os
import signal
import socket

from nbconfine import wire
from nbconfine.confine import SANDBOX_UID_BASE

MAX_REPLY = 256 * 2**20  # bytes; a larger reply is treated as a crash
TIMED_OUT = "did not finish within the time limit (an infinite loop?)"
DIED = ("died: the Python process running it exited or crashed (os._exit, sys.exit in a "
        "thread, a segfault or running out of memory)")
ZYGOTE_LOST = "was lost: the grader's sandbox zygote died while it ran"


class AnswerFault(Exception):
    """The learner's process timed out or died; what it ran cannot be graded further."""


def _send_setup(sock, payload, fds):
    socket.send_fds(sock, [wire.HEADER.pack(len(payload))], list(fds))
    sock.sendall(payload)


class Ahead:
    """A sandbox asked of the zygote before it is needed, its setup sent with the
    request: the zygote forks it, and it confines itself, while the grader goes on.
    ``Sandbox(..., ahead=it)`` takes it; ``close`` lets it go unused (it exits)."""

    def __init__(self, zygote, memory_bytes, role, fds=(), **setup):
        self.payload = json.dumps(dict(setup, role=role)).encode()
        self.fds = list(fds)
        self.asked = zygote.fork_ahead(memory_bytes)
        if self.asked.sock is not None:
            try:
                _send_setup(self.asked.sock, self.payload, self.fds)
            except OSError:
                self.close()  # taken, it is forked anew

    def close(self):
        if self.asked.sock is not None:
            self.asked.sock.close()
            self.asked.sock = None


class Sandbox:
    """One learner process, forked by a ``nbconfine.zygote.Zygote``, set up for ``role``
    (with ``setup``, plain JSON data, and ``fds``, file descriptors it receives); or the
    one forked ``ahead`` (an ``Ahead``)."""

    def __init__(self, zygote, memory_bytes, role, fds=(), ahead=None, **setup):
        setup_sent = False
        if ahead is None:
            self.sock, self.pid = zygote.fork(memory_bytes)
            payload, fds = json.dumps(dict(setup, role=role)).encode(), list(fds)
        else:  # forked anew if its zygote died meanwhile: then its setup is still to send
            self.sock, self.pid = zygote.take(ahead.asked)
            payload, fds = ahead.payload, ahead.fds
            setup_sent = self.sock is ahead.asked.sock
        self.zygote = zygote
        self.zygote_pid = zygote.pid
        self.own_pid_namespace = "namespaces" in zygote.confinement.active
        self.fault = None
        self.zygote_lost = False  # it died with its zygote: a fault of the grader
        self.deadline = None
        try:
            if not setup_sent:
                _send_setup(self.sock, payload, fds)
        except OSError:  # the first request raises AnswerFault
            self.zygote_lost = not zygote.alive()
            self.fault = ZYGOTE_LOST if self.zygote_lost else DIED

    def exchange(self, stream, buffers=()):
        """Send a pickle ``stream`` and its out-of-band ``buffers`` (nbconfine.wire's
        parts); return the reply's (stream, buffers). Raises AnswerFault when the sandbox
        times out or dies; every later request then raises it too."""
        if self.fault:
            raise AnswerFault(self.fault)
        try:
            wire.send_parts(self.sock, stream, buffers)
            return wire.recv_parts(self.sock, self.deadline, MAX_REPLY)
        except TimeoutError:
            self.kill(TIMED_OUT)
        except Exception:
            self.died(DIED)

    def died(self, reason):
        """Kill it as dead (raises AnswerFault with ``reason``), or as lost with its zygote
        (``zygote_lost``): the zygote hangs up before the kernel ends the sandboxes in its
        namespace."""
        self.zygote_lost = not self.zygote.alive()
        self.kill(ZYGOTE_LOST if self.zygote_lost else reason)

    def kill(self, reason):
        self.fault = reason
        self._end()
        raise AnswerFault(reason)

    def close(self):
        if not self.fault:
            self.fault = "closed"
            self._end()

    def _end(self):
        """Kill the sandbox and every process it started."""
        self.sock.close()
        if _parent_of(self.pid) == self.zygote_pid:  # still the zygote's: the pid is its
            _kill(self.pid)  # PID 1 of its own PID namespace: all it started ends with it
            _kill(-self.pid)  # without namespaces, its process group (it called setsid)
        if os.geteuid() == 0 and not self.own_pid_namespace:  # its own user id
            for pid in _pids_of(SANDBOX_UID_BASE + self.pid):
                _kill(pid)


def _status(pid, field):
    """A numeric field of /proc/<pid>/status (first value), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
    except (OSError, ValueError, StopIteration):
        return None


def _parent_of(pid):
    return _status(pid, "PPid")


def _pids_of(uid):
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _status(e, "Uid") == uid]


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
