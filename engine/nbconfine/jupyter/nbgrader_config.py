"""nbgrader settings for everyone who uses the course's environment, students included
(``make install`` links this file as <env>/etc/jupyter/nbgrader_config.py; elsewhere put
this folder on JUPYTER_CONFIG_PATH).

`nbgrader validate` prints each failed cell's source and error cut at 90 characters with
"...", so a check's diagnosis loses its end ("This looks like the unbiased (N-1) variance"
is cut off). Here long lines wrap instead: nothing is lost, every line still fits the
Validator's width.
"""
import textwrap

from nbconvert.filters import strip_ansi
from nbgrader.validator import Validator


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
