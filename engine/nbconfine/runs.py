"""A run's scratch folders, and what killed runs left of them.

Each is a folder ``nbconfine-run-<pid>-XXXX`` (the pid of the process that made it, as
the host sees it) holding a lock file, locked while that process, or one forked from it,
lives: the kernel releases a flock when the last holder ends, ``kill -9`` included. So a
later run can tell a dead run's folders from a live one's: ``remove_dead_runs`` removes
those of its own user whose maker is gone and whose lock nobody holds. Runs keep there
the staging copy and gradebook copies of `nbconfine autograde`, the socket of a zygote
serving several processes (nbconfine.zygote.serve) and a zygote's empty root
(nbconfine.confine).
"""
import contextlib
import fcntl
import os
import shutil
import tempfile

RUN_PREFIX = "nbconfine-run-"  # + the maker's pid
RUN_LOCK = "lock"
MEMORY_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def make(parent, pid=None):
    """A new scratch folder in ``parent`` (None: the temporary folder) named with ``pid``
    (default: this process's), its lock held: (path, the lock's file descriptor, which
    the folder's users keep open)."""
    path = tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{pid or os.getpid()}-", dir=parent)
    lock = os.open(os.path.join(path, RUN_LOCK), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel when the last holder dies
    return path, lock


@contextlib.contextmanager
def run_folder(parent):
    """A new scratch folder for this run in ``parent``, locked while this run, or a worker
    forked from it, lives; removed on leaving."""
    path, lock = make(parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def scratch_parents():
    """Where runs keep their scratch folders: the temporary folder (the grader's, and
    /tmp, the zygote's: its environment names none), /dev/shm."""
    return sorted({tempfile.gettempdir(), "/tmp"} | ({MEMORY_DIR} if MEMORY_DIR else set()))


def remove_dead_runs(parents):
    """Remove the scratch folders of runs that were killed: this user's, no process holds
    their lock and the process that made them is gone (another run, of this course or
    another, keeps its own). Returns the paths removed."""
    removed = []
    for parent in parents:
        for name in sorted(os.listdir(parent)) if os.path.isdir(parent) else ():
            path = os.path.join(parent, name)
            if not name.startswith(RUN_PREFIX) or not _dead(name, path):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _dead(name, path):
    try:
        if os.lstat(path).st_uid != os.getuid():
            return False  # another user's
        owner = int(name[len(RUN_PREFIX):].split("-")[0])
        os.kill(owner, 0)
        return False  # its maker lives (or its pid was taken again: left for later)
    except ProcessLookupError:
        pass
    except (ValueError, OSError):
        return False
    try:
        lock = os.open(os.path.join(path, RUN_LOCK), os.O_RDWR)
    except FileNotFoundError:
        return True  # killed before it made its lock
    except OSError:
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False  # one of its workers still holds it
    finally:
        os.close(lock)
