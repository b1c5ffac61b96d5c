"""The Validator's kernel: the one nbconfine.early_kernel started, when it fits; and its
end waited for without a 100 ms poll.

``EarlyKernelExecute`` is nbgrader's Execute with ``AdoptingKernelManager``, which starts
a kernel as jupyter_client's does, except that when the kernel started early (by
``nbgrader validate``'s interpreter) was launched with the very command, folder and
environment it is about to use, it takes that process instead of launching another. Its
connection (ports, key) is the early kernel's, loaded before nbgrader's own launch steps,
which then write nothing new. Anything else, or a kernel manager that would encrypt the
connection (CurveZMQ keys the early kernel was not given), launches as usual.
"""
import os

from jupyter_client.manager import AsyncKernelManager
from nbgrader.preprocessors import Execute

from nbconfine import early_kernel


class AdoptingKernelManager(AsyncKernelManager):
    """jupyter_client's kernel manager, taking the kernel started early when it fits."""

    _early_connection = False  # whether its connection is the early kernel's

    async def _async_pre_start_kernel(self, **kw):
        early = early_kernel.waiting()
        if early is None or self.kernel_name != early_kernel.KERNEL_NAME:
            return await super()._async_pre_start_kernel(**kw)
        self.load_connection_info(early.info)
        self.connection_file = early.connection_file
        self.cache_ports = False  # the early kernel's ports, not new ones
        self._connection_file_written = True
        self._early_connection = True
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        if getattr(self, "curve_publickey", None) is not None:  # keys the early one lacks
            self._let_early_kernel_go()
        return kernel_cmd, kw

    def _let_early_kernel_go(self):
        """Kill the early kernel; its connection file, written again (with whatever this
        manager added), serves the kernel launched instead."""
        early = early_kernel.waiting()
        if early is not None:
            self.log.debug("Killed the kernel started early (pid %d): it is not the one "
                           "to launch", early.process.pid)
        early_kernel.discard()
        self._early_connection = False
        self._connection_file_written = False
        self.write_connection_file()

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        early = early_kernel.take(kernel_cmd, kw.get("cwd") or os.getcwd(),
                                  kw.get("env", os.environ)) if self._early_connection else None
        if early is None:
            if self._early_connection:
                self._let_early_kernel_go()
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        self.log.debug("Took the kernel started early (pid %d)", early.process.pid)
        self._early_connection = False
        provisioner = self.provisioner
        provisioner.process, provisioner.pid = early.process, early.process.pid
        provisioner.pgid = os.getpgid(early.process.pid)
        provisioner.cwd = early.cwd
        self._reconcile_connection_info(provisioner.connection_info)

    async def _async_wait(self, pollinterval=0.1):
        """Wait for the killed kernel to end, looking every 5 ms, not every 100 ms (the
        Validator kills its kernel after the last cell, which takes a few ms)."""
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))


class EarlyKernelExecute(Execute):
    """nbgrader's Execute, its kernels started by ``AdoptingKernelManager``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", AdoptingKernelManager)
        super().__init__(*args, **kwargs)
