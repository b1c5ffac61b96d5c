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

Each worker process is prepared once by ``GraderPlugin`` (nbconfine.clusterplugin: nbgrader
loaded, the sandboxes' zygote started through ``nbconfine.zygote``, as for a local run):
``dask worker --preload nbconfine.cluster`` does it as the worker starts, and the client
registers it too, for workers started without it. Faults are handled as locally
(nbconfine.faults): the worker's zygote is restarted when it dies, a lost gradebook
database is waited for. Dask retries a task whose worker died on another worker; the
scheduler's ``allowed-failures`` bounds the tries, after which the submission is left
ungraded (its previous grades kept), as is one the instructor's side cannot write to
``autograded/``. A lost scheduler ends the run: the submissions it held are left
ungraded, their previous grades put back once the worker grading one has let go of it
(a worker grades a submission holding its advisory lock in the gradebook,
``grading_lock``, and may go on writing after the scheduler is gone).

The scheduler needs nothing of nbconfine: it unpickles every task it schedules, so each
task is a ``Call`` pickled into bytes, run as ``pickle.loads(those bytes)`` (see
``Call``); ``client.run`` and the plugin's registration reach the workers as bytes the
scheduler only forwards.
"""
import contextlib
import fnmatch
import hashlib
import io
import logging
import os
import pickle
import shutil
import tempfile
import threading
import time
import uuid
import warnings

from nbgrader.api import Gradebook
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from nbconfine.faults import FAULT, GRADED, REFUSED
from nbconfine.report import count, named

CONNECT_SECONDS = 5
WAIT_WORKERS_SECONDS = 10
COURSE_ENV = "NBCONFINE_COURSE"  # a worker's copy of the course (its nbgrader_config.py)
WORKER_NEEDS = (f"each worker needs nbconfine, the course's requirements and its own copy of "
                f"the course (the instructor's version), named by {COURSE_ENV} or its working "
                f"directory")
CLUSTER_LOG = "autograded/logs/cluster.log"
# how long the instructor's side waits for a worker still grading a submission the
# scheduler held when it was lost (a submission's grading is bounded by its cells' timeouts)
LET_GO_SECONDS = 600


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
        self.course_files = settings.course_files(course, config)
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
        """{"outcome": faults.GRADED, REFUSED or FAULT, "why": what nbgrader refused, or a
        fault's reason, "notes": events the report names, "files": autograded folder,
        "log": nbgrader's log}."""
        with self.lock, grading_lock(db_url, student, assignment, best_effort=True):
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
                    outcome, why, notes = self.worker.grade(self.app, student, assignment)
            finally:
                self.app.log.removeHandler(handler)
            out = os.path.join(self.root, "autograded", student, assignment)
            return {"outcome": outcome, "why": why, "notes": notes, "log": log.getvalue(),
                    "files": read_tree(out) if outcome == GRADED else {}}


@contextlib.contextmanager
def grading_lock(db_url, student, assignment, seconds=None, best_effort=False):
    """Hold the submission's advisory lock in a PostgreSQL gradebook, on a connection of
    its own (a process that dies lets go of it); yields True, or False when ``seconds``
    passed first (or, ``best_effort``, the database did not answer: the grading that
    follows meets that fault and says it). A worker grades holding it; the instructor's
    side takes it to know a worker has stopped writing. Other gradebooks: nothing to
    hold (yields True)."""
    if not db_url.startswith("postgresql"):
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"nbconfine {student}/{assignment}".encode())
                         .digest()[:8], "big", signed=True)
    with contextlib.ExitStack() as stack:
        engine = create_engine(db_url, poolclass=NullPool)
        stack.callback(engine.dispose)
        try:
            connection = stack.enter_context(engine.connect())  # closed: the lock goes
            if seconds is not None:
                connection.execute(text(f"SET lock_timeout = {int(seconds * 1000)}"))
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()  # the lock is the session's: it outlives the transaction
            held = True
        except OperationalError as exc:  # the lock timed out (55P03), or no database
            if getattr(exc.orig, "pgcode", None) != "55P03" and not best_effort:
                raise
            held = False
        yield held


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
    """Grade one submission on this worker (every try is logged to ``topic``)."""
    from distributed import get_worker
    address = get_worker().address
    get_worker().log_event(topic, {"student": student, "assignment": assignment,
                                   "worker": address})
    return dict(grader().grade(student, assignment, files, instructor_files, db_url),
                worker=address)


class Call:
    """``function(*args)`` as a Dask task that a scheduler without nbconfine schedules.

    A Dask scheduler unpickles the tasks it receives, functions included: a task calling
    ``grade_submission`` itself would import nbconfine there. The task is
    ``pickle.loads(pickle.dumps(Call(...)))`` instead (``submit_args``): to the scheduler,
    the standard library's ``loads`` and bytes; on a worker, where nbconfine is installed,
    unpickling the bytes imports ``function`` and makes the call (``__reduce__``).
    """

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args  # what unpickling it calls

    def submit_args(self):
        """The function and argument of ``client.submit`` for this call."""
        return pickle.loads, pickle.dumps(self)


async def dask_setup(worker):
    """``dask worker --preload nbconfine.cluster``: prepared before any task arrives."""
    from nbconfine.clusterplugin import GraderPlugin
    await worker.plugin_add(GraderPlugin())


# ---------------------------------------------------------------------------
# Instructor side
# ---------------------------------------------------------------------------

def connect(address, db_url, wait_workers=WAIT_WORKERS_SECONDS):
    """A Client of the scheduler at ``address``, which has workers, each asked to prepare
    (GraderPlugin; check_workers says which could not).

    Raises ClusterUnavailable, with what to do, within seconds."""
    if db_url.startswith("sqlite"):
        raise ClusterUnavailable(
            "a Dask cluster needs a gradebook every worker can reach, and workers on other "
            "machines cannot share a SQLite file: set NBGRADER_DB_URL to a PostgreSQL "
            "gradebook (e.g. postgresql+psycopg2://grader:grader@HOST:5432/gradebook) and "
            "release the assignments into it. Nothing was graded.")
    from distributed import Client
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
    # A worker it fails on (no nbconfine, no course configuration) is named, with the
    # reason, by check_workers, which asks each worker for its state next.
    with contextlib.suppress(Exception):
        from nbconfine.clusterplugin import GraderPlugin
        client.register_plugin(GraderPlugin())
    return client


def worker_state():
    """This worker's course files (settings.course_files) and its sandboxes'
    confinement (its zygote's), as plain data."""
    return grader().course_files, grader().zygote.confinement.to_wire()


def check_workers(client, accept_weaker, course_files):
    """The report's confinement line for the workers' sandboxes. Raises, before anything
    is graded, ClusterUnavailable naming the workers that cannot grade (no nbconfine, no
    course configuration) or grade with files of the course other than ``course_files``
    (the instructor's, settings.course_files), and confine.Refused naming a worker whose
    sandboxes lack a layer (unless ``accept_weaker``)."""
    from nbconfine import confine
    states, unfit = {}, []
    for address, state in sorted(client.run(worker_state, on_error="return").items()):
        if isinstance(state, Exception):
            unfit.append(f"{address} cannot grade ({type(state).__name__}: {state})")
            continue
        differ = sorted(name for name in set(state[0]) | set(course_files)
                        if state[0].get(name) != course_files.get(name))
        if differ:
            unfit.append(f"{address} has another version of the course (not the "
                         f"instructor's: {', '.join(differ)})")
        states[address] = state[1]
    if unfit:
        raise ClusterUnavailable(f"Dask workers unfit to grade this course: {'; '.join(unfit)}. "
                                 f"{WORKER_NEEDS}. Nothing was graded.")
    lines = set()
    for address, wire in states.items():
        try:
            lines.add(confine.check(confine.Confinement.from_wire(wire), accept_weaker))
        except confine.Refused as refusal:
            raise confine.Refused(f"On the Dask worker {address}: {refusal}") from None
    return "; ".join(sorted(lines)).replace("Confinement: ", "Confinement (workers): ", 1)


def grade_on_cluster(client, address, root, staging, graded, db_url, progress):
    """Grade ``graded`` [(student, assignment)], read from ``staging``, on the cluster.

    Returns ({(student, assignment): (faults.REFUSED or FAULT, why)} of those not graded,
    report lines (retries, restarts), a description of the cluster). Tasks are submitted
    as workers free up (as many in
    flight as the cluster has threads), so the scheduler holds few submissions at once
    and each worker one: Dask counts a try against every task a dying worker held (a
    task re-queued behind another after a death can be counted for it).
    """
    from concurrent.futures import CancelledError

    from distributed import KilledWorker, as_completed
    description = f"{count(len(client.nthreads()), 'Dask worker')} at {address}"
    topic = f"nbconfine-{uuid.uuid4().hex}"
    instructor = {a: read_tree(os.path.join(root, "source", a), skip=("*.ipynb",))
                  for a in {a for _, a in graded}}
    with Gradebook(db_url) as gb:  # once, before workers would create them side by side
        for student in sorted({s for s, _ in graded}):
            gb.update_or_create_student(student)
    pending, running, outcomes, notes, done = list(graded), {}, {}, [], 0
    sent = set()  # submissions handed to the scheduler
    completed = as_completed(loop=client.loop)

    def submit_more():
        capacity = max(1, sum(client.nthreads().values()))  # one round trip per call
        while pending and len(running) < capacity:
            student, assignment = pending.pop(0)
            call = Call(grade_submission, student, assignment,
                        read_tree(os.path.join(staging, student, assignment)),
                        instructor[assignment], db_url, topic)
            future = client.submit(*call.submit_args(), pure=False,
                                   key=f"autograde {student}/{assignment} {topic}")
            running[future] = student, assignment
            sent.add((student, assignment))
            completed.add(future)

    lost = (f"the Dask scheduler at {address} stopped answering: start it again (`make "
            "scheduler`) with its workers (`make worker`) and run the same command")
    os.makedirs(os.path.join(root, "autograded", "logs"), exist_ok=True)
    with open(os.path.join(root, CLUSTER_LOG), "w") as log:
        try:
            submit_more()
            for future in completed:
                student, assignment = running.pop(future)
                where = named(student, assignment)
                try:
                    result = future.result()
                except KilledWorker as exc:
                    outcomes[student, assignment] = (FAULT, (
                        f"the workers grading it died {exc.allowed_failures + 1} times (the "
                        "scheduler's allowed-failures; see the workers' logs)"))
                except CancelledError:  # what the client does to its tasks when the
                    outcomes[student, assignment] = (FAULT, lost)  # scheduler is lost
                except Exception as exc:  # the scheduler's or Dask's reason, said as it is
                    outcomes[student, assignment] = (
                        FAULT, f"not graded on the cluster ({type(exc).__name__}: {exc})")
                else:
                    log.write(f"==> {where}, on {result['worker']}\n{result['log']}\n")
                    notes += [f"{where}: {note} (on {result['worker']})"
                              for note in result["notes"]]
                    if result["outcome"] == GRADED:
                        written = write_autograded(root, student, assignment, result["files"])
                        if written:
                            outcomes[student, assignment] = (FAULT, written)
                    elif result["outcome"] == REFUSED:
                        outcomes[student, assignment] = (
                            REFUSED, f"{result['why']} (see {CLUSTER_LOG})")
                    else:
                        outcomes[student, assignment] = (FAULT, result["why"])
                future.release()
                done += 1
                progress(done, len(graded))
                submit_more()
        except OSError:  # CommClosedError, a connection timed out...
            if client.status == "running":
                raise  # not the scheduler's doing (a full disk under the log, say)
            for student, assignment in list(running.values()) + pending:
                outcomes[student, assignment] = (FAULT, lost)
    let_go(db_url, [s for s in sent if outcomes.get(s) == (FAULT, lost)], outcomes)
    if client.status == "running":  # else no events to read: the scheduler is gone
        notes += retries(client, topic, outcomes)
    return outcomes, notes, description


def let_go(db_url, submissions, outcomes):
    """Wait until no worker grades ``submissions`` (held by a lost scheduler: a worker
    may still be grading one), so that their previous grades, put back next, stay; one
    still graded after LET_GO_SECONDS is named in ``outcomes``."""
    deadline = time.monotonic() + LET_GO_SECONDS
    for student, assignment in submissions:
        seconds = max(1, deadline - time.monotonic())
        with grading_lock(db_url, student, assignment, seconds) as held:
            if not held:
                outcome, why = outcomes[student, assignment]
                outcomes[student, assignment] = (outcome, (
                    f"{why} (a worker was still grading it {LET_GO_SECONDS} s later: what "
                    "it writes then replaces the grades kept, until the command runs again)"))


def write_autograded(root, student, assignment, files):
    """Write a graded submission's autograded folder whole: '' or, when the disk refuses
    (full), why; nothing half-written is left."""
    folder = os.path.join(root, "autograded", student, assignment)
    partial = folder + ".partial"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        write_tree(partial, files)
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(partial, folder)
        return ""
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return f"could not write autograded/{student}/{assignment} ({exc.strerror})"


def retries(client, topic, outcomes):
    """Report lines for the submissions some worker died grading, from the tasks' events."""
    tries = {}
    for _, event in client.get_events(topic):
        tries.setdefault((event["student"], event["assignment"]), []).append(event["worker"])
    return [f"{named(s, a)}: a worker died while grading it ({', '.join(workers[:-1])}); "
            f"graded again on {workers[-1]}" for (s, a), workers in sorted(tries.items())
            if len(workers) > 1 and (s, a) not in outcomes]
