"""nbgrader settings for everyone who uses the course's environment, students included
(``make install`` links this file as <env>/etc/jupyter/nbgrader_config.py; elsewhere put
this folder on JUPYTER_CONFIG_PATH).

`nbgrader validate` prints each failed cell's source and error cut at 90 characters with
"...", so a check's diagnosis loses its end ("This looks like the unbiased (N-1) variance"
is cut off). Here long lines wrap instead: nothing is lost, every line still fits the
Validator's width.

Validating (the command and the Validate button, the same Validator) runs the notebook
in a kernel as nbgrader does, with two differences in how that kernel lives: it runs on
one OpenMP thread unless OMP_NUM_THREADS says otherwise, as grading's sandboxes do (a
library's thread pool, started by the first large operation, costs a second on a busy
machine); and once the last cell has run it is killed, not shut down gracefully (which
waits for its interpreter to tear down what it loaded: most of a second with torch;
nothing of the kernel is read after the last cell). And `nbgrader validate NOTEBOOK`
takes the kernel its interpreter started while nbgrader loaded, when it is the one the
Validator would start (nbconfine/early_kernel.py, from nbconfine-quick-start.pth).
"""
import os
import textwrap

from nbconvert.filters import strip_ansi
from nbgrader import utils
from nbgrader.preprocessors import Execute
from nbgrader.validator import Validator

from nbconfine.validation import EarlyKernelExecute

c = get_config()  # noqa: F821 (provided by the config loader)
c.Validator.Execute.shutdown_kernel = "immediate"


def _indent_wrapped(self, text):
    """Validator._indent without the cut: each line indented, long lines wrapped (their
    continuation indented by 4 more spaces), at most self.width characters each."""
    lines = []
    for line in text.split("\n"):
        lines.extend(textwrap.wrap(strip_ansi(line), self.width, initial_indent=self.indent,
                                   subsequent_indent=self.indent + "    ",
                                   break_long_words=True, break_on_hyphens=False)
                     or [self.indent])
    return "\n".join(lines)


Validator._indent = _indent_wrapped


_nbgrader_preprocess = Validator._preprocess


def _preprocess_on_one_thread(self, nb):
    """Validator._preprocess, its kernel started with OMP_NUM_THREADS=1 if unset, by a
    kernel manager that takes the kernel `nbgrader validate` started early if it fits."""
    self.preprocessors = [EarlyKernelExecute if p is Execute else p for p in self.preprocessors]
    if "OMP_NUM_THREADS" in os.environ:
        return _nbgrader_preprocess(self, nb)
    with utils.setenv(OMP_NUM_THREADS="1"):
        return _nbgrader_preprocess(self, nb)


Validator._preprocess = _preprocess_on_one_thread
