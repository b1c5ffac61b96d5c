# Linked into the environment's etc/ipython by `make install`, so every IPython kernel of
# the environment reads it; it acts only in the kernel `nbgrader validate NOTEBOOK` starts
# early (nbconfine/early_kernel.py), whose NBCONFINE_KERNEL_IMPORTS names the installed
# modules the notebook's first cell opens with and the script that imports them: once the
# kernel is set up, the script runs in a namespace of its own (the notebook's is left
# untouched) while nbgrader still loads. The variable leaves the kernel's environment
# before any cell runs.
import json
import os

c = get_config()  # noqa: F821 (traitlets gives config files get_config)

_request = os.environ.pop("NBCONFINE_KERNEL_IMPORTS", "")
if _request:
    _request = json.loads(_request)
    with open(_request["script"], encoding="utf-8") as _script:
        c.IPKernelApp.exec_lines = [
            f"exec({_script.read()!r}, {{'modules': {_request['modules']!r}}})"]
