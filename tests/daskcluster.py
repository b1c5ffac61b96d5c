"""A real Dask cluster on loopback, for the cluster test and the bench, started with the
README's commands: `make scheduler` and `make worker SCHEDULER=... NWORKERS=1`, each in a
checkout of its own (a copy of this repository using this environment: `VENV=`, `-o` its
stamp), stopped by their ids.

The scheduler can import nothing of this project: its PYTHONPATH holds packages named
nbconfine, course and normcheck whose import fails, saying so (NO_ENGINE_MESSAGE). So
whatever the client sends through the scheduler must not need the engine there, as on a
stock scheduler (the Dask Helm chart's, dask-gateway's).
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from coursedir import MAKE, checkout

PROJECT_MODULES = ("nbconfine", "course", "normcheck")
NO_ENGINE_MESSAGE = "imported on the Dask scheduler, which must need nothing of this project"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """`make scheduler` on 127.0.0.1 and the `make worker`s added to it; ``stop()`` ends
    them all. Each runs in ``workdir/<name>/checkout``, its output in ``workdir/<name>/log``."""

    def __init__(self, workdir, allowed_failures=1):
        self.workdir = workdir
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workers = []  # Popen of each running `make worker`
        self.started = 0  # workers started so far: worker-<k> names their folders
        self.allowed_failures = allowed_failures
        self.no_engine = os.path.join(workdir, "no-engine")
        for name in PROJECT_MODULES:
            os.makedirs(os.path.join(self.no_engine, name))
            with open(os.path.join(self.no_engine, name, "__init__.py"), "w") as f:
                f.write(f"raise ImportError({name + ' ' + NO_ENGINE_MESSAGE!r})\n")
        self.start_scheduler()

    def start_scheduler(self, name="scheduler"):
        """`make scheduler` on this cluster's port (``name``: its folder; another one to
        start it again once killed), until it accepts connections."""
        self.scheduler = self._make(
            name, "scheduler", "HOST=127.0.0.1", f"PORT={self.port}",
            f"ALLOWED_FAILURES={self.allowed_failures}", PYTHONPATH=self.no_engine)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert self.scheduler.poll() is None and time.monotonic() < deadline, \
                self.log(name)
            time.sleep(0.1)

    def _make(self, name, *arguments, course=None, edit=None, **env):
        """Start `make ARGUMENTS`, in a session of its own, in ``workdir/name/checkout``:
        a new checkout of this repository, or a copy of the folder ``course`` (a course
        with this Makefile); ``edit``, a function given its path, is called before."""
        folder = os.path.join(self.workdir, name)
        root = os.path.join(folder, "checkout")
        if course:
            shutil.copytree(course, root, symlinks=True)
        else:
            checkout(root)
        if edit:
            edit(root)
        with open(os.path.join(folder, "log"), "w") as log:
            process = subprocess.Popen([*MAKE, *arguments], cwd=root, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=dict(os.environ, **env))
        process.name = name  # its folder: see log()
        return process

    def log(self, name):
        with open(os.path.join(self.workdir, name, "log")) as f:
            return f.read()[-5000:]

    def add_workers(self, count, course=None, edit=None, wait=True, timeout=180):
        """``count`` more single-threaded grading workers (`make worker NWORKERS=1`: a
        nanny and its worker process, prepared by ``--preload nbconfine.cluster``), each
        from its own checkout (``course``, ``edit``: see ``_make``); with ``wait``, until
        every worker started is up. Returns their Popens."""
        started = []
        for _ in range(count):
            name = f"worker-{self.started}"
            self.started += 1
            started.append(self._make(  # `make worker` runs in TMPDIR: scratch files there
                name, "worker", f"SCHEDULER={self.address}", "NWORKERS=1", course=course,
                edit=edit, TMPDIR=os.path.join(self.workdir, name)))
        self.workers += started
        if wait:
            with self.client() as client:
                client.wait_for_workers(len(self.workers), timeout=timeout)
        return started

    def client(self):
        from distributed import Client
        return Client(self.address, timeout=30, set_as_default=False)

    def scheduler_imports(self):
        """{module of this project: what importing it on the scheduler raised, or None}."""
        def attempt(names):  # local: sent by value (cloudpickle), imports only the stdlib
            import importlib
            raised = {}
            for name in names:
                try:
                    importlib.import_module(name)
                    raised[name] = None
                except ImportError as exc:
                    raised[name] = str(exc)
            return raised
        with self.client() as client:
            return client.run_on_scheduler(attempt, PROJECT_MODULES)

    def scheduler_setting(self, key):
        """The scheduler's Dask configuration value of ``key``."""
        def read(key):  # local: sent by value, imports only what the scheduler has
            import dask
            return dask.config.get(key)
        with self.client() as client:
            return client.run_on_scheduler(read, key)

    def stop_workers(self, workers=None):
        """Stop ``workers`` (Popens of add_workers's, default all of them)."""
        workers = list(workers or self.workers)
        stop(*workers)
        self.workers = [process for process in self.workers if process not in workers]

    def stop(self):
        stop(self.scheduler, *self.workers)
        self.workers = []


def session_processes(sid):
    """Pids of the processes of session ``sid``."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):  # ended meanwhile
            with open(f"/proc/{entry}/stat") as f:
                session = int(f.read().rsplit(")", 1)[1].split()[3])  # proc(5): field 6
            if session == sid:
                pids.append(int(entry))
    return pids


def stop(*processes, timeout=30):
    """SIGTERM to the sessions ``processes`` lead (make, its shell, the scheduler or a
    nanny and its worker); SIGKILL to what is left of one after ``timeout`` seconds."""
    def running(process):
        return process.poll() is None or session_processes(process.pid)
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(map(running, processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in filter(running, processes):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def autograde(course, *args):
    """`nbconfine autograde` over the course, started: the Popen (text pipes)."""
    return subprocess.Popen([sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
                             *args], cwd=course.root, env=course.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
