"""A real Dask cluster on loopback, for the cluster test and the bench: `dask scheduler`
and `dask worker` processes from this environment, each in its own working directory,
stopped by their ids."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from coursedir import REPO

DASK = os.path.join(os.path.dirname(sys.executable), "dask")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """A scheduler on 127.0.0.1 and the workers added to it; ``stop()`` ends them all."""

    def __init__(self, workdir, allowed_failures=1):
        self.workdir = workdir
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.workers = []  # Popen of each running `dask worker`
        self.started = 0  # workers started so far: worker-<k> names their folders
        self.scheduler = self._start(
            "scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                          "--no-dashboard"],
            DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=str(allowed_failures))
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert self.scheduler.poll() is None and time.monotonic() < deadline, \
                self.log("scheduler")
            time.sleep(0.1)

    def _start(self, name, command, **env):
        folder = os.path.join(self.workdir, name)
        os.makedirs(folder)
        with open(os.path.join(folder, "log"), "w") as log:
            return subprocess.Popen(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=dict(os.environ, **env))

    def log(self, name):
        with open(os.path.join(self.workdir, name, "log")) as f:
            return f.read()[-5000:]

    def add_workers(self, count, timeout=180):
        """``count`` more single-threaded grading workers (each a nanny and its worker
        process, prepared by ``--preload nbconfine.cluster``); waits until they are up."""
        for _ in range(count):
            self.started += 1
            self.workers.append(self._start(
                f"worker-{self.started - 1}",
                [DASK, "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                 "--preload", "nbconfine.cluster", "--no-dashboard", "--local-directory", "."],
                NBCONFINE_COURSE=REPO))  # the worker's copy of the course
        with self.client() as client:
            client.wait_for_workers(len(self.workers), timeout=timeout)

    def client(self):
        from distributed import Client
        return Client(self.address, timeout=30, set_as_default=False)

    def stop_workers(self):
        for process in self.workers:
            stop(process)
        self.workers = []

    def stop(self):
        self.stop_workers()
        stop(self.scheduler)


def stop(process):
    """SIGTERM to the process's own session (a nanny and its worker), SIGKILL if slow."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def autograde(course, *args):
    """`nbconfine autograde` over the course, started: the Popen (text pipes)."""
    return subprocess.Popen([sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
                             *args], cwd=course.root, env=course.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
