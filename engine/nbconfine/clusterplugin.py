"""The Dask worker plugin that prepares a cluster worker (nbconfine.cluster).

A module of its own so that only cluster runs import Dask (0.3 to 0.5 s a command)."""
import asyncio

from distributed.diagnostics.plugin import WorkerPlugin

from nbconfine.cluster import grader


class GraderPlugin(WorkerPlugin):
    """Prepares a worker process once: nbgrader and torch loaded, the zygote started."""

    name = "nbconfine-grader"
    idempotent = True  # registered by every client: once per worker is enough

    async def setup(self, worker):
        # Off the event loop: the worker keeps answering the scheduler meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, grader)
