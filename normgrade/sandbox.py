"""Learners' code runs in forked sandbox processes; the tests run in the grader.

A zygote process imports torch once and forks one sandbox per problem of a notebook.
The grader executes test cells in its own, pristine namespace, where each name the
learner defined is a ``Remote`` proxy: calling it, reading or setting its attributes and
running a normcheck scenario on it are requests served in the sandbox. Whatever the
learner's code patches (torch.allclose, Tensor methods, normcheck, builtins) is patched
only in the sandbox, and what comes back is plain data, decoded with torch's
``weights_only`` unpickler, so a sandbox cannot run code in the grader.

Wire format: 8-byte big-endian length, then the payload. Grader to sandbox: pickle.
Sandbox to grader: ``torch.save`` of plain data.
"""
import sys

if __name__ == "__main__":  # the zygote: confined while single-threaded, before torch's threads
    import json
    import socket
    from normgrade import confine
    CONFINEMENT = confine.enter([name for name in sys.argv[2].split(",") if name])
    HELLO = json.dumps(CONFINEMENT.to_wire()).encode()
    OWNER = socket.socket(fileno=int(sys.argv[1]))
    OWNER.sendall(len(HELLO).to_bytes(8, "big") + HELLO)  # framed as _send does, before torch

import contextlib
import io
import linecache
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import time
import traceback
import warnings

import torch

from normgrade import confine
from normgrade.confine import SANDBOX_UID_BASE

HEADER = struct.Struct(">Q")
MAX_REPLY = 256 * 2**20  # bytes; a larger reply is treated as a crash


class AnswerFault(Exception):
    """The learner's process timed out or died; its problem cannot be graded further."""


# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------

def _send(sock, payload):
    sock.sendall(HEADER.pack(len(payload)) + payload)


def _recv_exact(sock, size, deadline=None):
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([sock], [], [], wait)[0]:
                raise TimeoutError
        chunk = sock.recv(min(remaining, 2**20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _recv(sock, deadline=None, limit=None):
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline))
    if limit is not None and size > limit:
        raise EOFError
    return _recv_exact(sock, size, deadline)


# ---------------------------------------------------------------------------
# Sandbox side
# ---------------------------------------------------------------------------

PLAIN = (bool, int, float, str, bytes, type(None), torch.dtype)


class _Server:
    """Serves the grader's requests inside a sandbox process."""

    def __init__(self, sock, scenarios, run_scenario, recorder_cls):
        self.sock = sock
        self.scenarios = scenarios
        self.run_scenario = run_scenario
        self.recorder_cls = recorder_cls
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        self.handles = {}

    # values crossing to the grader ---------------------------------------
    def encode(self, value):
        if isinstance(value, torch.Tensor):
            return {"__tensor__": value.detach().as_subclass(torch.Tensor).clone(),
                    "requires_grad": bool(value.requires_grad),
                    "parameter": isinstance(value, torch.nn.Parameter)}
        if type(value) in PLAIN:
            return value
        if type(value) in (list, tuple) or isinstance(value, torch.Size):
            return {"__seq__": [self.encode(v) for v in value],
                    "kind": "tuple" if isinstance(value, tuple) else "list"}
        if type(value) is dict and all(type(k) is str for k in value):
            return {"__dict__": {k: self.encode(v) for k, v in value.items()}}
        handle = len(self.handles)
        self.handles[handle] = value
        return {"__remote__": handle, "kind": type(value).__name__}

    def resolve(self, ref):
        kind, key = ref
        if kind == "global":
            if key not in self.namespace:
                raise NameError(f"name '{key}' is not defined")
            return self.namespace[key]
        return self.handles[key]

    # requests -------------------------------------------------------------
    def exec_cell(self, name, source):
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)
        filename = f"<{name}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.namespace)

    def names(self):
        """The learner's global names (sent with every exec reply, even after an error)."""
        return sorted(k for k in self.namespace if not k.startswith("__"))

    def handle(self, request):
        op = request[0]
        if op == "exec":
            return self.exec_cell(*request[1:])
        if op == "scenario":
            _, name, ref, args = request
            return self.run_scenario(self.scenarios[name], self.resolve(ref), *args)
        if op == "call":
            _, ref, args, kwargs, grad_enabled = request
            with torch.set_grad_enabled(grad_enabled):
                return self.resolve(ref)(*args, **kwargs)
        if op == "getattr":
            return getattr(self.resolve(request[1]), request[2])
        if op == "setattr":
            setattr(self.resolve(request[1]), request[2], request[3])
            return None
        raise ValueError(f"unknown request {op!r}")

    def serve(self):
        server = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, ref):
                return server.resolve(ref)

        while True:
            try:
                request = Unpickler(io.BytesIO(_recv(self.sock))).load()
            except EOFError:
                return
            out, err = io.StringIO(), io.StringIO()
            recorder = self.recorder_cls()
            reply = {"stdout": "", "stderr": "", "error": None}
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                        warnings.catch_warnings():
                    warnings.simplefilter("default")
                    if request[0] == "exec":
                        value = self.handle(request)
                    else:
                        with recorder:
                            value = self.handle(request)
                reply["value"] = None if request[0] == "exec" else self.encode(value)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt included
                tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
                reply["error"] = {"ename": type(exc).__name__, "evalue": str(exc),
                                  "traceback": [line for line in tb
                                                if "normgrade/sandbox.py" not in line]}
            reply.update(stdout=out.getvalue()[-100_000:], stderr=err.getvalue()[-100_000:],
                         ops=sorted(recorder.ops))
            if request[0] == "exec":
                reply["names"] = self.names()
            buffer = io.BytesIO()
            torch.save(reply, buffer)
            _send(self.sock, buffer.getvalue())


def _warm_up(normcheck):
    """Run once in the zygote what sandboxes use, so forks find it all loaded.

    Sandboxes run in an empty root directory, where a lazy import would fail.
    """
    import numpy as np
    import torch.nn.functional as F
    from IPython.core.inputtransformer2 import TransformerManager
    TransformerManager().transform_cell("%time x = 1\n")

    def normalize(x, eps):
        mean = x.mean(dim=0, keepdim=True)
        var = torch.var(x, dim=0, unbiased=False) + torch.einsum("ij->j", x) * 0
        return F.relu((x - mean) * torch.rsqrt(var + eps)) + np.float64(0.0)

    x = pickle.loads(pickle.dumps(torch.randn(4, 3)))
    normcheck.run_scenario_here(normcheck.scenario_calls, normalize, [[x, 1e-5]])
    normcheck.run_scenario_here(normcheck.scenario_grads, normalize, [x.double(), 1e-5],
                                torch.ones(4, 3, dtype=torch.float64))
    normcheck.run_scenario_here(normcheck.scenario_module, normcheck.TorchSkeletonBatchNorm,
                                (4, 2, 3, 3), 1e-5, 0.9, [torch.randn(4, 2, 3, 3)],
                                [torch.randn(4, 2, 3, 3)])
    repr(torch.nn.Parameter(torch.ones(2)) * 2)
    x.detach().numpy().std(), torch.std_mean(x, 0)
    torch.save({"t": torch.ones(1), "s": "", "l": [1.0]}, io.BytesIO())
    traceback.format_exception(ValueError, ValueError("x"), None)


def _private_copy(module):
    """A fresh instance of ``module``, registered nowhere, so patching the importable one
    (sys.modules["normcheck"]) does not reach it."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"_private_{module.__name__}",
                                                  module.__file__)
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy


def zygote_main(owner, confinement, hello, listen_path=None):
    """Import torch once, then fork a confined sandbox for every request.

    Requests come on the socket ``owner`` (the process that started the zygote: when it
    hangs up, the zygote ends) and, with ``listen_path``, on connections to that Unix
    socket (nbgrader workers sharing this zygote). Each connection first gets ``hello``
    (the confinement, as JSON; its credentials carry the zygote's pid; the owner got it
    before torch was imported). Each request is 8 bytes (the sandbox's memory allowance)
    with the sandbox's socket attached; the sandbox's first byte on that socket carries
    its pid the same way (as the grader sees it, whatever PID namespace it is in).
    """
    torch.set_num_threads(1)
    from normgrade import normcheck
    sys.modules.setdefault("normcheck", normcheck)  # what learners' code may import
    harness = _private_copy(normcheck)  # what the server runs: in no module table
    _warm_up(harness)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished sandboxes
    selector = selectors.DefaultSelector()
    selector.register(owner, selectors.EVENT_READ)
    if listen_path:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(listen_path)
        listener.listen()
        selector.register(listener, selectors.EVENT_READ)
    running = True
    while running:
        for key, _ in selector.select():
            conn = key.fileobj
            if listen_path and conn is listener:
                client, _ = listener.accept()
                _send(client, hello)
                selector.register(client, selectors.EVENT_READ)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(conn, 16, 1)
            except OSError:
                message, fds = b"", []
            if not fds:  # hung up
                selector.unregister(conn)
                conn.close()
                running = running and conn is not owner
                continue
            if confine.fork(confinement) == 0:  # the sandbox: no zygote socket stays open in it
                for key in list(selector.get_map().values()):
                    key.fileobj.close()
                sock = socket.socket(fileno=fds[0])
                try:
                    sock.sendall(b"\0")  # its credentials tell the grader its pid
                    confine.confine(confinement, struct.unpack(">Q", message)[0],
                                    keep=(sock.fileno(),))
                    _Server(sock, dict(harness.SCENARIOS), harness.run_scenario_here,
                            harness.OpRecorder).serve()
                finally:
                    os._exit(0)
            os.close(fds[0])
    confine.remove_empty_root(confinement)


# ---------------------------------------------------------------------------
# Grader side
# ---------------------------------------------------------------------------

class Sandbox:
    """One learner process, forked by a ``normgrade.zygote.Zygote``. Every request has a
    deadline; a fault ends the sandbox."""

    def __init__(self, zygote, memory_bytes):
        self.sock, self.pid = zygote.fork(memory_bytes)
        self.zygote_pid = zygote.pid
        self.own_pid_namespace = "namespaces" in zygote.confinement.active
        self.fault = None
        self.ops = set()  # aten operators the learner's code ran while serving requests
        self.deadline = None

    def request(self, *request):
        """Send a request; return (value, stdout, stderr) or raise the learner's error.

        Raises AnswerFault when the sandbox times out or dies; every later request then
        raises it too.
        """
        if self.fault:
            raise AnswerFault(self.fault)
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer)
        pickler.persistent_id = lambda obj: obj._ref if isinstance(obj, Remote) else None
        pickler.dump(request)
        try:
            _send(self.sock, buffer.getvalue())
            raw = _recv(self.sock, self.deadline, MAX_REPLY)
        except TimeoutError:
            self.kill("did not finish within the time limit (an infinite loop?)")
        except Exception:
            self.kill("died: the Python process running it exited or crashed (os._exit, "
                      "sys.exit in a thread, a segfault or running out of memory)")
        try:
            reply = torch.load(io.BytesIO(raw), weights_only=True)
        except Exception:
            self.kill("sent the grader something other than plain data (code writing to "
                      "the grader's socket?)")
        self.ops.update(reply.get("ops", ()))
        return reply

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

    def decode(self, value):
        """Plain data from the sandbox, with handles turned into ``Remote`` proxies."""
        if isinstance(value, dict):
            if "__tensor__" in value:
                tensor = value["__tensor__"]
                if value.get("parameter"):
                    return torch.nn.Parameter(tensor, requires_grad=bool(value["requires_grad"]))
                return tensor.requires_grad_(bool(value["requires_grad"]))
            if "__remote__" in value:
                return Remote(self, ("handle", value["__remote__"]), str(value.get("kind")))
            if "__seq__" in value:
                items = [self.decode(v) for v in value["__seq__"]]
                return tuple(items) if value.get("kind") == "tuple" else items
            if "__dict__" in value:
                return {k: self.decode(v) for k, v in value["__dict__"].items()}
        return value

    def value_of(self, *request):
        """Request a value; the learner's exception is raised again here."""
        reply = self.request(*request)
        if reply["error"]:
            error = reply["error"]
            raise LearnerError(f"{error['ename']}: {error['evalue']}")
        return self.decode(reply["value"])


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


class LearnerError(Exception):
    """An exception raised by the learner's code inside the sandbox."""


class Remote:
    """A learner's object living in a sandbox, used by test code in the grader."""

    __slots__ = ("_sandbox", "_ref", "_label")

    def __init__(self, sandbox, ref, label):
        object.__setattr__(self, "_sandbox", sandbox)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_label", label)

    def __call__(self, *args, **kwargs):
        return self._sandbox.value_of("call", self._ref, args, kwargs, torch.is_grad_enabled())

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._sandbox.value_of("getattr", self._ref, name)

    def __setattr__(self, name, value):
        self._sandbox.value_of("setattr", self._ref, name, value)

    def __normcheck_scenario__(self, scenario_name, args):
        """normcheck's hook: run a scenario where the answer lives."""
        return self._sandbox.value_of("scenario", scenario_name, self._ref, args)

    def __repr__(self):
        return f"<your {self._label}>"


if __name__ == "__main__":
    zygote_main(OWNER, CONFINEMENT, HELLO, *sys.argv[3:])
    os._exit(0)  # the interpreter's teardown with torch loaded takes most of a second
