"""A course's nbconfine settings, read from its nbgrader_config.py outside nbgrader."""
import contextlib
import hashlib
import os
import traceback

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from nbconfine import zygote
from nbconfine.layout import Problems

EXECUTOR = "nbconfine.execute.ConfinedExecute"
NOT_CONFIGURED = ("{root}/nbgrader_config.py does not call nbconfine.configure(c): add "
                  "`import nbconfine; nbconfine.configure(c)` to it (see nbconfine's README)")


class NotConfigured(Exception):
    """The course's nbgrader_config.py does not switch nbconfine on, or cannot be read."""


def read_config(root):
    """The Config of ``root``'s nbgrader_config.py (an empty one without it), read as
    nbgrader reads it: from the course directory. Raises NotConfigured, naming the line,
    if running it fails."""
    path = os.path.abspath(os.path.join(root, "nbgrader_config.py"))
    if not os.path.exists(path):
        return Config()
    with contextlib.chdir(root):
        try:
            return PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
        except Exception as exc:
            raise NotConfigured(_unreadable(path, exc)) from None


def _unreadable(path, exc):
    """Why running the configuration file ``path`` failed: the error, at its line."""
    if isinstance(exc, SyntaxError):
        what, line = f"SyntaxError: {exc.msg}", exc.lineno
    else:
        what = f"{type(exc).__name__}: {exc}"
        line = next((frame.lineno for frame in reversed(traceback.extract_tb(exc.__traceback__))
                     if frame.filename == path), None)
    at = f", line {line}" if line else ""
    return f"{path}{at} could not be run ({what}): mend it; nothing was done"


def load_config(root):
    """``read_config``, raising NotConfigured when the course does not grade with
    nbconfine."""
    config = read_config(root)
    if EXECUTOR not in config.Autograde.get("autograde_preprocessors", []):
        raise NotConfigured(NOT_CONFIGURED.format(root=os.path.abspath(root)))
    return config


def course_files(root, config):
    """{file: sha256} of what grading reads of the course at ``root`` besides its
    notebooks and the files sent with each submission: its nbgrader_config.py and its
    checks module, named relative to ``root``. Copies of a course with equal ones grade
    alike."""
    paths = [os.path.join(root, "nbgrader_config.py")]
    if config.ProblemExecute.get("checks"):
        paths.append(config.ProblemExecute.checks)
    digests = {}
    for path in paths:
        with open(path, "rb") as f:
            name = os.path.relpath(path, root)
            digests[os.path.basename(path) if name.startswith("..") else name] = \
                hashlib.sha256(f.read()).hexdigest()
    return digests


def zygote_spec(config):
    """The zygote a course's configuration asks for: a notebook-mode role, and a
    problem-mode one with the checks module if some assignment is graded in that mode."""
    problem_mode = bool(Problems(config=config).assignments)
    return zygote.Spec(roles=("notebook", "problem") if problem_mode else ("notebook",),
                       preload=tuple(config.ConfinedExecute.get("preload", ())),
                       checks=config.ProblemExecute.get("checks", "") if problem_mode else "")


def executor_modules(config):
    """The modules grading imports (to load before forking workers)."""
    problem_mode = bool(Problems(config=config).assignments)
    return ["nbconfine.notebook"] + (["nbconfine.problems"] if problem_mode else [])
