"""A course's nbconfine settings, read from its nbgrader_config.py outside nbgrader."""
import os

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from nbconfine import MODES, zygote

NOT_CONFIGURED = ("{root}/nbgrader_config.py does not call nbconfine.configure(c): add "
                  "`import nbconfine; nbconfine.configure(c)` to it (see nbconfine's README)")


class NotConfigured(Exception):
    """The course's nbgrader_config.py does not switch nbconfine on."""


def load_config(root):
    """The Config of ``root``'s nbgrader_config.py (an empty one without it)."""
    if not os.path.exists(os.path.join(root, "nbgrader_config.py")):
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=root).load_config()


def mode(config):
    """"notebook" or "problem": the executor of the course's autograde preprocessors."""
    configured = config.Autograde.get("autograde_preprocessors", [])
    for name, executor in MODES.items():
        if executor in configured:
            return name
    return None


def zygote_spec(config, root="."):
    """The zygote a course's configuration asks for (the same as its executor's)."""
    execute = mode(config)
    if execute is None:
        raise NotConfigured(NOT_CONFIGURED.format(root=os.path.abspath(root)))
    section = config[MODES[execute].rsplit(".", 1)[1]]
    return zygote.Spec(roles=(execute,), preload=tuple(section.get("preload", ())),
                       checks=section.get("checks", "") if execute == "problem" else "")
