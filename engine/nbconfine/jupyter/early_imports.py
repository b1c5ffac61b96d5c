"""Run by the kernel `nbgrader validate NOTEBOOK` started early, once it is set up (the line
ipython_kernel_config.py has it execute) in a namespace of its own, given ``modules``:
imports them in order up to one that fails (the cell then fails on it as it would have), and
keeps what they print (Python's streams) to print it as the first cell starts, in that
cell's output, where it would have been printed."""
import contextlib
import io
import sys

from IPython import get_ipython

printed = {"stdout": io.StringIO(), "stderr": io.StringIO()}
with contextlib.redirect_stdout(printed["stdout"]), \
        contextlib.redirect_stderr(printed["stderr"]):
    for module in modules:  # noqa: F821 (given by the executed line)
        try:
            __import__(module)
        except BaseException:  # the cell imports it again, and fails as it would have
            break


def print_in_the_first_cell(info):
    """pre_run_cell: write what the imports printed, once, as a notebook cell starts."""
    if not info.store_history:  # not a cell (this kernel's own set-up lines)
        return
    shell.events.unregister("pre_run_cell", print_in_the_first_cell)
    for name, stream in printed.items():
        getattr(sys, name).write(stream.getvalue())


shell = get_ipython()
if any(stream.getvalue() for stream in printed.values()):
    shell.events.register("pre_run_cell", print_in_the_first_cell)
