"""Autograde on a Dask cluster, against a shared gradebook (PostgreSQL).

    dask scheduler                                            # any stock Dask scheduler
    NBCONFINE_COURSE=/path/to/course dask worker tcp://HOST:PORT --nthreads 1 \
        --preload nbconfine.cluster                           # on any machine
    nbconfine autograde --scheduler tcp://HOST:PORT

The instructor's side (``nbconfine.autograde --scheduler``) checks the submissions as a
local run does, then sends each accepted one as a task: its files' bytes, the student id,
the assignment, the gradebook's URL and the assignment's instructor files that nbgrader
copies over a submission (its non-notebook files in ``source/``: never a notebook). A
worker process grades it with nbgrader's own ``Autograde`` (``--force``: a retry regrades
it) in a private course directory of its own, configured by the ``nbgrader_config.py``
of its own copy of the course (``NBCONFINE_COURSE``, else its working directory); cell
roles and instructor code come from the gradebook. It sends back
the autograded folder, which the instructor's side writes to ``autograded/``. No file
system is shared.

Each worker process is prepared once by ``GraderPlugin`` (nbgrader loaded, the sandboxes'
zygote started through ``nbconfine.zygote``, as for a local run): ``dask worker --preload
nbconfine.cluster`` does it as the worker starts, and the client registers it too, for
workers started without it. Dask retries a task whose worker died on another worker; the
scheduler's ``allowed-failures`` bounds the tries, after which the submission scores zero.

The scheduler needs nothing of nbconfine: the functions sent to workers are those of
``nbconfine.tasks``, pickled by value, which import the engine only where they run.
"""
import asyncio
import contextlib
import fnmatch
import io
import logging
import os
import shutil
import tempfile
import threading
import uuid
import warnings

from nbgrader.api import Gradebook

CONNECT_SECONDS = 5
WAIT_WORKERS_SECONDS = 10
COURSE_ENV = "NBCONFINE_COURSE"  # a worker's copy of the course (its nbgrader_config.py)
CLUSTER_LOG = "autograded/logs/cluster.log"


class ClusterUnavailable(Exception):
    """Grading on the cluster cannot start; nothing was written."""


# ---------------------------------------------------------------------------
# Files as bytes
# ---------------------------------------------------------------------------

def read_tree(folder, skip=()):
    """{relative path: bytes} of the files under ``folder`` (links followed), but names
    matching a pattern of ``skip``."""
    files = {}
    for base, _, names in os.walk(folder):
        for name in names:
            if not any(fnmatch.fnmatch(name, pattern) for pattern in skip):
                path = os.path.join(base, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, folder)] = f.read()
    return files


def write_tree(folder, files):
    """Write {relative path: bytes} under ``folder``; a path leading outside is refused."""
    folder = os.path.abspath(folder)
    for relative, data in files.items():
        path = os.path.normpath(os.path.join(folder, relative))
        if os.path.isabs(relative) or not path.startswith(folder + os.sep):
            raise ValueError(f"refused to write {relative!r} outside {folder}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


# ---------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------

class Grader:
    """One worker process's nbgrader ``autograde`` app, its zygote and private course."""

    def __init__(self):
        from nbgrader.apps.nbgraderapp import NbGraderApp

        from nbconfine import settings, warm, worker, zygote
        self.worker = worker
        warm.install()  # nbgrader's per-notebook set-up paid once per worker process
        course = os.path.abspath(os.environ.get(COURSE_ENV, "."))
        config = settings.load_config(course)
        self.zygote = zygote.shared(settings.zygote_spec(config))  # as a local run
        worker.load(settings.executor_modules(config))
        self.root = tempfile.mkdtemp(prefix="nbconfine-worker-")  # mode 0700
        cli = NbGraderApp.instance()
        with contextlib.chdir(course):  # the course's nbgrader_config.py
            cli.initialize(["autograde", "--force", "--log-level=INFO"])
        self.app = cli.subapp
        self.app.coursedir.root = self.root
        self.app.log.handlers = []  # each task's log goes back with its result
        self.app.log.propagate = False
        self.lock = threading.Lock()  # one app: one submission at a time

    def grade(self, student, assignment, files, instructor_files, db_url):
        """{"graded": bool, "files": autograded folder, "log": nbgrader's log}."""
        with self.lock:
            for folder in ("submitted", "source", "autograded"):
                shutil.rmtree(os.path.join(self.root, folder), ignore_errors=True)
            write_tree(os.path.join(self.root, "submitted", student, assignment), files)
            write_tree(os.path.join(self.root, "source", assignment), instructor_files)
            log = io.StringIO()
            handler = logging.StreamHandler(log)
            handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
            self.app.log.addHandler(handler)
            self.app.coursedir.db_url = db_url
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # SQLAlchemy's about nbgrader's models
                    graded = self.worker.grade(self.app, student, assignment)
            finally:
                self.app.log.removeHandler(handler)
            out = os.path.join(self.root, "autograded", student, assignment)
            return {"graded": graded, "files": read_tree(out) if graded else {},
                    "log": log.getvalue()}


_grader = None
_grader_lock = threading.Lock()


def grader():
    """This process's Grader, made on first use."""
    global _grader
    with _grader_lock:
        if _grader is None:
            _grader = Grader()
    return _grader


def grade_submission(student, assignment, files, instructor_files, db_url, topic):
    """Grade one submission on this worker (every try is logged to ``topic``); the task
    nbconfine.tasks.grade_submission calls it."""
    from distributed import get_worker
    address = get_worker().address
    get_worker().log_event(topic, {"student": student, "assignment": assignment,
                                   "worker": address})
    return dict(grader().grade(student, assignment, files, instructor_files, db_url),
                worker=address)


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # no Dask here: local grading only
    WorkerPlugin = object


class GraderPlugin(WorkerPlugin):
    """Prepares a worker process once: nbgrader and torch loaded, the zygote started."""

    name = "nbconfine-grader"
    idempotent = True  # registered by every client: once per worker is enough

    async def setup(self, worker):
        # Off the event loop: the worker keeps answering the scheduler meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, grader)


async def dask_setup(worker):
    """``dask worker --preload nbconfine.cluster``: prepared before any task arrives."""
    await worker.plugin_add(GraderPlugin())


# ---------------------------------------------------------------------------
# Instructor side
# ---------------------------------------------------------------------------

def connect(address, db_url, wait_workers=WAIT_WORKERS_SECONDS):
    """A Client of the scheduler at ``address`` with at least one prepared worker.

    Raises ClusterUnavailable, with what to do, within seconds."""
    if db_url.startswith("sqlite"):
        raise ClusterUnavailable(
            "a Dask cluster needs a gradebook every worker can reach, and workers on other "
            "machines cannot share a SQLite file: set NBGRADER_DB_URL to a PostgreSQL "
            "gradebook (e.g. postgresql+psycopg2://grader:grader@HOST:5432/gradebook) and "
            "release the assignments into it. Nothing was graded.")
    import cloudpickle
    from distributed import Client

    from nbconfine import tasks
    cloudpickle.register_pickle_by_value(tasks)  # the scheduler unpickles tasks: no engine
    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailable(
            f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            "start one (`dask scheduler`), or check the address. Nothing was graded.") from None
    try:
        client.wait_for_workers(1, timeout=wait_workers)
    except TimeoutError:
        client.close()
        raise ClusterUnavailable(
            f"the Dask scheduler at {address} has no workers (waited {wait_workers} s): "
            f"start some (`dask worker {address} --nthreads 1 --preload nbconfine.cluster`). "
            "Nothing was graded.") from None
    try:
        client.register_plugin(GraderPlugin())
    except Exception as exc:  # e.g. a worker without this repository on its path
        client.close()
        raise ClusterUnavailable(
            f"the workers of {address} could not be prepared ({type(exc).__name__}: {exc}): "
            "each needs nbconfine, the course's requirements and its own copy of the course "
            f"({COURSE_ENV}). Nothing was graded.") from None
    return client


def worker_confinement():
    """This worker's sandbox confinement (its zygote's), as plain data."""
    return grader().zygote.confinement.to_wire()


def confinement_line(client, accept_weaker):
    """The report's confinement line for the workers' sandboxes; raises confine.Refused,
    naming the worker, when one lacks a layer (unless ``accept_weaker``)."""
    from nbconfine import confine, tasks
    lines = set()
    for address, wire in sorted(client.run(tasks.worker_confinement).items()):
        try:
            lines.add(confine.check(confine.Confinement.from_wire(wire), accept_weaker))
        except confine.Refused as refusal:
            raise confine.Refused(f"On the Dask worker {address}: {refusal}") from None
    return "; ".join(sorted(lines)).replace("Confinement: ", "Confinement (workers): ", 1)


def grade_on_cluster(client, address, root, staging, graded, db_url, progress):
    """Grade ``graded`` [(student, assignment)], read from ``staging``, on the cluster.

    Returns ({(student, assignment): why it was not graded}, [(student, assignment)] that
    could not be graded, to record as zero, report lines about retries, a description of
    the cluster). Tasks are submitted as workers free up (as many in
    flight as the cluster has threads), so the scheduler holds few submissions at once
    and each worker one: Dask counts a try against every task a dying worker held (a
    task re-queued behind another after a death can be counted for it).
    """
    from distributed import KilledWorker, as_completed
    workers = len(client.nthreads())
    from nbconfine import tasks
    topic = f"nbconfine-{uuid.uuid4().hex}"
    instructor = {a: read_tree(os.path.join(root, "source", a), skip=("*.ipynb",))
                  for a in {a for _, a in graded}}
    with Gradebook(db_url) as gb:  # once, before workers would create them side by side
        for student in sorted({s for s, _ in graded}):
            gb.update_or_create_student(student)
    pending, running, failures, ungradable, done = list(graded), {}, {}, [], 0
    completed = as_completed(loop=client.loop)

    def submit_more():
        capacity = max(1, sum(client.nthreads().values()))  # one round trip per call
        while pending and len(running) < capacity:
            student, assignment = pending.pop(0)
            future = client.submit(
                tasks.grade_submission, student, assignment,
                read_tree(os.path.join(staging, student, assignment)),
                instructor[assignment], db_url, topic,
                key=f"autograde {student}/{assignment} {topic}", pure=False)
            running[future] = student, assignment
            completed.add(future)

    os.makedirs(os.path.join(root, "autograded", "logs"), exist_ok=True)
    with open(os.path.join(root, CLUSTER_LOG), "w") as log:
        submit_more()
        for future in completed:
            student, assignment = running.pop(future)
            where = f"{student}/{assignment}"
            try:
                result = future.result()
            except KilledWorker as exc:
                failures[student, assignment] = (
                    f"the workers grading it died {exc.allowed_failures + 1} times (the "
                    "scheduler's allowed-failures; see the workers' logs): not graded, it "
                    "scores zero")
                ungradable.append((student, assignment))
            except Exception as exc:  # the scheduler's or Dask's reason, said as it is
                failures[student, assignment] = (f"not graded on the cluster "
                                                 f"({type(exc).__name__}: {exc})")
            else:
                log.write(f"==> {where}, on {result['worker']}\n{result['log']}\n")
                if result["graded"]:
                    folder = os.path.join(root, "autograded", student, assignment)
                    shutil.rmtree(folder, ignore_errors=True)
                    write_tree(folder, result["files"])
                else:
                    failures[student, assignment] = \
                        f"nbgrader could not grade it (see {CLUSTER_LOG})"
                    ungradable.append((student, assignment))
            future.release()
            done += 1
            progress(done, len(graded))
            submit_more()
    return (failures, ungradable, retries(client, topic, failures),
            f"{workers} Dask workers at {address}")


def retries(client, topic, failures):
    """Report lines for the submissions some worker died grading, from the tasks' events."""
    tries = {}
    for _, event in client.get_events(topic):
        tries.setdefault((event["student"], event["assignment"]), []).append(event["worker"])
    return [f"{s}/{a}: a worker died while grading it ({', '.join(workers[:-1])}); "
            f"graded again on {workers[-1]}" for (s, a), workers in sorted(tries.items())
            if len(workers) > 1 and (s, a) not in failures]
