"""The engine's processes as the tests find them: by the names the engine gives them
(nbconfine.zygote: nbc-zygote, nbc-worker, nbc-sandbox; /proc/PID/comm), which a process
takes only once it is that process, never in the window between fork and exec."""
import os

from nbconfine.zygote import SANDBOX_NAME, WORKER_NAME, ZYGOTE_NAME  # noqa: F401


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def children(pid):
    """Child pids of ``pid`` (none if it is gone; threads may end while read)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def descendants(pid):
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def named(name, under):
    """Pids of the live processes called ``name`` below the process ``under``."""
    return [pid for pid in descendants(under) if comm(pid) == name and not exited(pid)]


def zygote_of(wrapper):
    """The zygote a run serves its workers from: the wrapper's child called nbc-zygote
    (its children, the zygote's PID 1 and its short-lived trial sandboxes, are called so
    too; killing it kills them)."""
    return [pid for pid in children(wrapper) if comm(pid) == ZYGOTE_NAME and not exited(pid)]


def exited(pid):
    """Whether the process ``pid`` is gone (or a zombie nobody reaps)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
