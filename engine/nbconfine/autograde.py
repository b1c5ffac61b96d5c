"""Autograde every submission in parallel, with a report of everything unusual.

    nbconfine autograde [--jobs N] [--students GLOB] [--root COURSE]

The course is the directory ``--root`` (default: the current one), as nbgrader sees it:
``source/`` (each folder holding notebooks is an assignment), ``release/``,
``submitted/``, ``autograded/``, and its ``nbgrader_config.py``, which calls
``nbconfine.configure``.

1. Each submission in ``submitted/<student>/<assignment>/`` is checked, read-only:
   missing or renamed notebooks, notebooks that are not valid JSON, test cells deleted
   or edited (nbgrader restores them from the gradebook; deleted ones only where the
   course sets ``OverwriteCells.add_missing_cells``), files not in the release, symbolic links
   and student ids nbgrader would read as glob patterns (such submissions are not
   graded). The accepted ones are copied to a staging folder, which is what nbgrader
   reads: submitted/ is never touched. Meanwhile the sandboxes' zygote imports torch.
2. ``--jobs`` workers (nbconfine.worker), forked from this process once it has loaded
   nbgrader and the sandboxes' libraries, run nbgrader's own ``Autograde`` on one student at a time, the
   next as soon as one is done. With a SQLite gradebook each worker writes to its own
   copy (in memory, /dev/shm), and the rows of the students it graded are merged back
   at the end (nbgrader's ids are UUIDs, so rows never collide); SQLite slows to a
   crawl with two processes committing at once, and nbgrader commits after every
   graded cell. PostgreSQL (NBGRADER_DB_URL) is shared by the workers directly. All
   workers fork their sandboxes from the one zygote.
3. The end prints the per-student, per-problem table and one line per problem found.
   The report is also written to ``autograded/report.txt``.

Grades are the same for any number of jobs: every problem is graded in its own
sandbox, whatever else runs. With ``--scheduler tcp://HOST:PORT`` (``make autograde
SCHEDULER=...``) step 2 runs on a Dask cluster instead: see nbconfine/cluster.py.

Faults of the grading machine never become a learner's zero (nbconfine.faults): a
zygote that dies is restarted and the problem in flight graded again; a worker that dies
is replaced and its student graded again, once; a gradebook database that goes away is
waited for. A submission that still cannot be graded for the grader's own reasons is
left ungraded, its gradebook rows put back as they were before the run (kept by
``Kept``), named in the report, and the exit status is 3 (``INCOMPLETE``): run again.

Crash consistency: a run killed at any point leaves the gradebook as before it or with
some submissions graded (each worker's rows are merged in one transaction); running the
same command again grades every submission again, so it ends where an uninterrupted run
would. A run's scratch folders (staging copy, gradebook copies) are locked while it
lives; the next run removes those of dead runs (nbconfine.runs), never another live
run's.
"""
import argparse
import contextlib
import fnmatch
import multiprocessing.connection
import os
import shutil
import signal
import sqlite3
import sys
import time
import traceback
from dataclasses import dataclass

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from sqlalchemy import text

from nbconfine import cluster, confine, faults, regrade, report, settings, zygote
from nbconfine.cli import job_count
from nbconfine.layout import course_assignments, course_lock
from nbconfine.report import count, named, shown
# Workers' gradebook copies are merged back and dropped: kept in memory (MEMORY_DIR), where
# nbgrader's commit after every graded cell costs no disk flush.
from nbconfine.runs import MEMORY_DIR, remove_dead_runs, run_folder, scratch_parents
from nbconfine.faults import FAULT, GRADED, REFUSED

INCOMPLETE = 3  # exit status: some submissions were left ungraded by faults of the grader

LARGE_NOTEBOOK = 20 * 2**20  # bytes
GLOB_CHARACTERS = set("*?[]")
# What nbgrader itself puts in a submission (collect, submit): never stray files.
NBGRADER_FILES = {"timestamp.txt", "submission_secret.txt", ".ipynb_checkpoints"}


def student_folders(root):
    submitted = os.path.join(root, "submitted")
    if not os.path.isdir(submitted):
        return []
    return sorted(s for s in os.listdir(submitted) if os.path.isdir(os.path.join(submitted, s)))


def submissions(root, assignments, students="*"):
    """([(student, assignment)] to check and grade, report lines for unknown folders and
    ones that are not folders, [(student, assignment)] of the latter: they score zero).
    assignments: the course's, {assignment: notebooks}."""
    found, notes, unusable = [], [], []
    for student in student_folders(root):
        if not fnmatch.fnmatch(student, students):
            continue
        for assignment in sorted(os.listdir(os.path.join(root, "submitted", student))):
            folder = os.path.join(root, "submitted", student, assignment)
            if assignment in assignments and os.path.isdir(folder) \
                    and not os.path.islink(folder):
                found.append((student, assignment))
            elif assignment in assignments:
                notes.append(f"{named(student, assignment)}: not a folder; it scores zero")
                unusable.append((student, assignment))
            else:
                notes.append(f"{named(student, assignment)}: not an assignment of this "
                             f"course ({', '.join(assignments)}): ignored")
    return found, notes, unusable


class NoSuchStudent(Exception):
    """``--students`` matches no student folder: a mistyped id, refused before grading."""


class Release:
    """What a submission of one notebook should hold, from its release: ``tests``,
    grade_id -> source of the test cells; ``roles``, grade_id -> nbgrader role flags
    (nbconfine.cellroles)."""

    def __init__(self, path):
        from nbconfine import cellroles  # loads nbgrader's preprocessors: once the zygote starts
        cells = nbformat.read(path, 4).cells
        self.tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in cells
                      if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
                      and not c.metadata["nbgrader"].get("solution")}
        self.roles = cellroles.roles_of(cells)


def releases(release_dirs, assignments):
    """{assignment: {notebook file: Release}} of the ``assignments`` of ``release_dirs``
    ({assignment: its release folder})."""
    return {a: {name: Release(os.path.join(release_dirs[a], name))
                for name in sorted(os.listdir(release_dirs[a])) if name.endswith(".ipynb")}
            for a in assignments}


def symlinks(folder):
    """Paths under ``folder`` that are symbolic links (relative to it)."""
    return sorted(os.path.relpath(os.path.join(base, name), folder)
                  for base, dirs, files in os.walk(folder)
                  for name in dirs + files if os.path.islink(os.path.join(base, name)))


def precheck(root, student, assignment, release_dir, expected, restores):
    """(report lines, whether to grade it) for one submission; it is never modified.
    expected: {notebook file: Release} of the assignment, released in ``release_dir``;
    restores: whether nbgrader puts deleted test cells back (add_missing_cells).

    A submission holding symbolic links is not graded: nbgrader would follow them (to the
    instructor's notebook, or any file on the grading machine). Nor is one whose student
    id holds glob characters: nbgrader globs submission paths with the id.
    """
    where = named(student, assignment)
    if set(student) & GLOB_CHARACTERS:
        return [f"{where}: the student id holds one of * ? [ ], which nbgrader reads as a "
                "glob pattern (it would mix up this student's work and another's); rename the "
                "folder; not graded, it scores zero"], False
    folder = os.path.join(root, "submitted", student, assignment)
    links = symlinks(folder)
    if links:
        return [f"{where}: symbolic links are not accepted ({', '.join(map(shown, links))}); "
                "not graded, it scores zero"], False
    try:
        return _precheck_files(where, folder, release_dir, expected, restores)
    except Exception as exc:  # whatever a submission holds, the others are graded
        return [f"{where}: could not be checked ({shown(f'{type(exc).__name__}: {exc}')})"], True


def _precheck_files(where, folder, release_dir, expected, restores):
    lines = []
    others = sorted(set(os.listdir(folder)) - set(os.listdir(release_dir)) - NBGRADER_FILES)
    notebooks = [f for f in others if f.endswith(".ipynb")]
    missing = [name for name in expected if not os.path.exists(os.path.join(folder, name))]
    if missing:
        renamed = f" (found {', '.join(map(shown, notebooks))}: renamed?)" if notebooks else ""
        verb = "is" if len(missing) == 1 else "are"
        if len(missing) == len(expected):  # nothing for nbgrader to grade
            return [f"{where}: {', '.join(missing)} {verb} missing{renamed}; it scores "
                    "zero"], False
        lines.append(f"{where}: {', '.join(missing)} {verb} missing{renamed}; their cells "
                     "score zero")
    if others:  # nbgrader copies them to autograded/, beside the notebooks that may read them
        lines.append(f"{where}: files not in the release, graded with the notebooks (copied "
                     f"beside them): {', '.join(map(shown, others))}")
    for name, release in expected.items():
        if name not in missing:
            lines += _precheck_notebook(where, os.path.join(folder, name), release, restores)
    return lines, True


def _precheck_notebook(where, path, release, restores):
    lines = []
    name = os.path.basename(path)
    if os.path.getsize(path) > LARGE_NOTEBOOK:
        lines.append(f"{where}: {name} is {os.path.getsize(path) / 2**20:.0f} MB; its outputs "
                     "are cleared before grading")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # any unreadable notebook: say why, grade the others
        reason = str(exc).splitlines()[0][:200]
        return lines + [f"{where}: {name} is not a valid notebook ({reason}); it scores zero"]
    submitted = {(c.metadata.get("nbgrader") or {}).get("grade_id"): c.source
                 for c in nb.cells if c.cell_type == "code"}
    missing = sorted(set(release.tests) - set(submitted))
    edited = sorted(g for g in release.tests if g in submitted
                    and submitted[g] != release.tests[g])
    if missing and restores:
        lines.append(f"{where}: test cells deleted or stripped of their metadata, restored "
                     f"from the gradebook: {', '.join(missing)}")
    elif missing:  # nbgrader's add_missing_cells is off: their grades stay unset
        lines.append(f"{where}: test cells deleted or stripped of their metadata, not graded "
                     f"(left to grade by hand): {', '.join(missing)}")
    if edited:
        lines.append(f"{where}: test cells edited, restored from the gradebook: "
                     f"{', '.join(edited)}")
    from nbconfine.cellroles import SKIP_TAG, changed_roles
    skipped = sorted({(c.metadata.get("nbgrader") or {}).get("grade_id") for c in nb.cells
                      if SKIP_TAG in (c.metadata.get("tags") or [])} & set(release.tests))
    if skipped:
        lines.append(f"{where}: test cells tagged {SKIP_TAG}, run anyway: {', '.join(skipped)}")
    retyped = changed_roles(nb.cells, release.roles)
    if retyped:
        lines.append(f"{where}: cell roles or points edited in the metadata, restored from "
                     f"the gradebook: {', '.join(retyped)}")
    return lines


# Rows of a group of students ("{s}": their ids), in the order foreign keys need.
STUDENT_ROWS = [
    ("student", "id IN ({s})"),
    ("submitted_assignment", "student_id IN ({s})"),
    ("submitted_notebook", "assignment_id IN (SELECT id FROM w.submitted_assignment "
                           "WHERE student_id IN ({s}))"),
] + [(table, "notebook_id IN (SELECT n.id FROM w.submitted_notebook n JOIN "
             "w.submitted_assignment a ON n.assignment_id = a.id WHERE a.student_id IN ({s}))")
     for table in ("grade", "comment")] + regrade.STUDENT_ROWS


def copy_gradebook(path, copy):
    """A consistent copy of a SQLite gradebook (the backup API, safe while it is in use)."""
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)


def merge_gradebook(path, copy, students):
    """Write the rows of ``students`` from the worker's ``copy`` into the gradebook."""
    connection = sqlite3.connect(path, timeout=60)
    try:
        connection.execute("ATTACH DATABASE ? AS w", (copy,))
        marks = ",".join("?" * len(students))
        with connection:  # one transaction: all of a worker's students or none
            for table, rows in STUDENT_ROWS:
                connection.execute(f"INSERT OR REPLACE INTO main.{table} SELECT * FROM "
                                   f"w.{table} WHERE {rows.format(s=marks)}",
                                   list(students) * rows.count("{s}"))
    finally:
        connection.close()


_SUBMISSIONS = "FROM submitted_assignment sa JOIN assignment a ON sa.assignment_id = a.id"
_NOTEBOOKS = _SUBMISSIONS + " JOIN submitted_notebook n ON n.assignment_id = sa.id"
_GRADES = _NOTEBOOKS + " JOIN grade g ON g.notebook_id = n.id"
# What autograding a submission may change: (table, alias, key, columns, rows reached).
CHANGED_ROWS = [
    ("submitted_assignment", "sa", "id", ("timestamp",), _SUBMISSIONS),
    ("submitted_notebook", "n", "id", ("late_submission_penalty", "flagged"), _NOTEBOOKS),
    ("grade", "g", "id", ("auto_score", "manual_score", "extra_credit", "needs_manual_grade"),
     _GRADES),
    ("comment", "c", "id", ("auto_comment", "manual_comment"),
     _NOTEBOOKS + " JOIN comment c ON c.notebook_id = n.id"),
    (regrade.HAND_GRADES, "h", "grade_id", ("graded", "last", "score"),
     _GRADES + f" JOIN {regrade.HAND_GRADES} h ON h.grade_id = g.id"),
]


class Kept:
    """The gradebook rows of some submissions as they were before grading, to put back
    for those a fault of the grader left ungraded (a submission new to the gradebook is
    removed again): no zero, no half-written grades."""

    def __init__(self, db_url, submissions):
        self.db_url = db_url
        wanted = set(submissions)
        self.rows = {}  # (student, assignment) -> {table: [(key, values)]}
        with Gradebook(db_url) as gb:
            for table, alias, key, columns, rows in CHANGED_ROWS:
                found = gb.db.execute(text(
                    f"SELECT sa.student_id, a.name, {alias}.{key}, "
                    + ", ".join(f"{alias}.{c}" for c in columns) + f" {rows}"))
                for student, assignment, ident, *values in found:
                    if (student, assignment) in wanted:
                        self.rows.setdefault((student, assignment), {}).setdefault(
                            table, []).append((ident, values))

    def restore(self, submissions):
        """Put the rows of ``submissions`` back as they were."""
        if not submissions:
            return
        with Gradebook(self.db_url) as gb:
            for student, assignment in submissions:
                where = {"s": student, "a": assignment}
                gb.db.execute(text(f"DELETE FROM {regrade.HAND_GRADES} WHERE grade_id IN "
                                   f"(SELECT g.id {_GRADES} WHERE sa.student_id = :s AND "
                                   "a.name = :a)"), where)
                kept = self.rows.get((student, assignment))
                if kept is None:
                    gb.db.commit()
                    with contextlib.suppress(MissingEntry):
                        gb.remove_submission(assignment, student)
                    continue
                for table, _, key, columns, _ in CHANGED_ROWS:
                    for ident, values in kept.get(table, []):
                        named = dict(zip(columns, values), key=ident)
                        if table == regrade.HAND_GRADES:
                            gb.db.execute(text(f"INSERT INTO {table} ({key}, "
                                               + ", ".join(columns) + ") VALUES (:key, "
                                               + ", ".join(f":{c}" for c in columns) + ")"),
                                          named)
                        else:
                            gb.db.execute(text(f"UPDATE {table} SET "
                                               + ", ".join(f"{c} = :{c}" for c in columns)
                                               + f" WHERE {key} = :key"), named)
                gb.db.commit()


def idle_processor(workers):
    """Whether ``workers`` grading workers leave a processor of this machine (of those
    this process may run on) idle: work a worker does ahead there costs no one
    (nbconfine.warm.idle_processor)."""
    return workers < len(os.sched_getaffinity(0))


def run_workers(root, staging, graded, jobs, zygote_env, modules, progress, memory):
    """Grade ``graded`` [(student, assignment)], read from ``staging``, with ``jobs``
    workers (SQLite gradebook copies in the folder ``memory``); returns ({(student,
    assignment): (outcome, why)} of those not graded, report lines)."""
    assignments = {}
    for student, assignment in graded:
        assignments.setdefault(student, []).append(assignment)
    # A student's submissions go to one worker: their rows are merged back together.
    tasks = sorted(assignments.items(), key=lambda task: (-len(task[1]), task[0]))
    url = report.db_url(root)
    sqlite_path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    urls = []
    for slot in range(jobs):
        if sqlite_path:
            copy = os.path.join(memory, f"worker{slot}.db")
            copy_gradebook(sqlite_path, copy)
            urls.append("sqlite:///" + copy)
        else:
            urls.append(url)
    pool = WorkerPool(root, staging, urls, zygote_env, modules)
    outcomes = pool.grade(tasks, len(graded), progress)
    if sqlite_path:
        for slot, students in enumerate(pool.students):
            merge_gradebook(sqlite_path, urls[slot][len("sqlite:///"):], students)
    return outcomes, pool.notes


class WorkerPool:
    """Worker processes (nbconfine.worker) forked from this one, one per gradebook URL.

    Each is handed one student at a time (all their submissions); a worker that dies is
    replaced, and its student graded again first; a second death while grading the same
    student leaves it ungraded. Slot k's log is autograded/logs/worker-<k>.log.
    """

    def __init__(self, root, staging, urls, zygote_env, modules):
        # Imported once the zygote is starting, so both load their libraries at once.
        from nbconfine import worker
        worker.load(modules)
        self.worker = worker
        self.root, self.staging, self.urls = root, staging, urls
        self.env = dict(zygote_env, PATH=os.path.dirname(sys.executable) + os.pathsep
                        + os.environ.get("PATH", ""))
        self.students = [[] for _ in urls]  # graded by each slot
        self.notes = []  # report lines: events while grading
        self.running = {}  # connection -> (pid, slot, student, assignments)
        logs = os.path.join(root, "autograded", "logs")
        os.makedirs(logs, exist_ok=True)
        self.logs = [open(os.path.join(logs, f"worker-{slot}.log"), "w")
                     for slot in range(len(urls))]

    def grade(self, tasks, total, progress):
        """Grade every (student, [assignments]) of ``tasks``; returns {(student,
        assignment): (outcome, why)} of those not graded (faults.REFUSED or FAULT)."""
        queue, outcomes, deaths, done = list(tasks), {}, {}, 0
        try:
            for slot in range(len(self.urls)):
                self._start(slot, queue)
            while self.running:
                for connection in multiprocessing.connection.wait(list(self.running)):
                    pid, slot, student, assignments = self.running.pop(connection)
                    log = f"autograded/logs/worker-{slot}.log"
                    self.students[slot].append(student)
                    try:
                        graded = connection.recv()
                    except (EOFError, OSError):
                        graded = None
                    if graded is None:  # the worker died: a fault of the grader
                        self._stop(connection, pid)
                        deaths[student] = deaths.get(student, 0) + 1
                        if deaths[student] == 1:
                            queue.insert(0, (student, assignments))
                            self.notes += [f"{named(student, a)}: its grading worker died "
                                           f"(see {log}); graded again" for a in assignments]
                        else:
                            for assignment in assignments:
                                outcomes[student, assignment] = (
                                    FAULT, f"its grading workers died twice while grading "
                                    f"it (see {log})")
                            done += len(assignments)
                        self._start(slot, queue)
                    else:
                        for assignment in assignments:
                            outcome, why, notes = graded[assignment]
                            self.notes += [f"{named(student, assignment)}: {n}" for n in notes]
                            if outcome == REFUSED:
                                why = f"{why} (see {log})"
                            if outcome != GRADED:
                                outcomes[student, assignment] = (outcome, why)
                        done += len(assignments)
                        self._hand(connection, pid, slot, queue)
                    progress(done, total)
        finally:
            for connection, (pid, *_) in list(self.running.items()):
                self._stop(connection, pid)
            for log in self.logs:
                log.close()
        return outcomes

    def _start(self, slot, queue):
        """Fork a worker for ``slot`` if there is work left."""
        if not queue:
            return
        ours, theirs = multiprocessing.Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        wrapper = os.getpid()
        # Ctrl-C waits until the worker is known, so that it is stopped with the others.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                self.worker.become_worker(wrapper)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                ours.close()
                for inherited in self.running:  # so each worker sees its own hang-up
                    inherited.close()
                env = dict(self.env, NBGRADER_DB_URL=self.urls[slot])
                self.worker.serve(theirs, self.root, self.staging, self.logs[slot].fileno(), env,
                                  idle_processor(len(self.urls)))
                code = 0
            except KeyboardInterrupt:
                pass  # Ctrl-C: the wrapper says what to do
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(OSError):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)  # no teardown: the interpreter holds torch
        theirs.close()
        try:
            self._hand(ours, pid, slot, queue)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def _hand(self, connection, pid, slot, queue):
        """The next student to the worker on ``connection``, or its hang-up."""
        if not queue:
            self._stop(connection, pid)
            return
        student, assignments = queue.pop(0)
        try:
            connection.send((student, assignments))
        except OSError:
            pass  # it died already: its hang-up is read as a death while grading this one
        self.running[connection] = (pid, slot, student, assignments)

    @staticmethod
    def _stop(connection, pid):
        connection.close()
        os.waitpid(pid, 0)


def progress_bar(done, total, stream=sys.stderr):
    """A bar redrawn in place on a terminal; in a log, a line every tenth of the way."""
    width = 30
    filled = width * done // max(total, 1)
    if stream.isatty() or done == total or done % max(1, total // 10) == 0:
        end = "\n" if done == total or not stream.isatty() else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} submissions{end}")
        stream.flush()


@dataclass
class Round:
    """What grading a list of submissions did (``grade``)."""
    graded: list  # [(student, assignment)] handed to nbgrader
    rejected: list  # not graded (the prechecks): zero recorded
    outcomes: dict  # {(student, assignment): (faults.REFUSED or FAULT, why)} not graded
    notes: list  # report lines
    where: str  # "2 jobs", or the cluster

    def left(self, outcome):
        """The submissions not graded with ``outcome``: of REFUSED ones what nbgrader did
        not grade scores zero (nbconfine.worker), FAULT ones (the grader's own faults)
        keep their previous rows."""
        return sorted(key for key, (kind, _) in self.outcomes.items() if kind == outcome)


def grade(root, found, unusable, progress, jobs=1, shared=None, modules=(), client=None,
          scheduler=None, scratch=None):
    """Check, stage and grade the submissions ``found`` [(student, assignment)] with
    ``jobs`` workers and the zygote ``shared`` (loading ``modules`` before forking them),
    or on the Dask cluster of ``client``; ``unusable`` ones score zero. Staging copies go
    to a new run folder in ``scratch``. Returns a Round."""
    url = report.db_url(root)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(run_folder(scratch))  # the staging copy, the release
        staging, release = os.path.join(folder, "submitted"), os.path.join(folder, "release")
        os.mkdir(release)
        submitted = sorted({a for _, a in found})
        notes, release_dirs = regrade.prepare_gradebook(root, url, submitted, release)
        expected = releases(release_dirs, submitted)
        restores = settings.load_config(root).OverwriteCells.get("add_missing_cells", False)
        graded, rejected = [], list(unusable)
        for student, assignment in found:
            lines, accepted = precheck(root, student, assignment, release_dirs[assignment],
                                       expected[assignment], restores)
            notes += lines
            (graded if accepted else rejected).append((student, assignment))
        regrade.record_zero(url, rejected)
        kept = Kept(url, graded)
        jobs = max(1, min(jobs, len({student for student, _ in graded})))
        for student, assignment in graded:
            shutil.copytree(os.path.join(root, "submitted", student, assignment),
                            os.path.join(staging, student, assignment))
        where = count(jobs, "job")
        if client:
            outcomes, lines, where = cluster.grade_on_cluster(
                client, scheduler, root, staging, graded, url, progress)
        elif graded:
            memory = (stack.enter_context(run_folder(MEMORY_DIR))
                      if url.startswith("sqlite:") else None)
            outcomes, lines = run_workers(root, staging, graded, jobs, shared.env, modules,
                                          progress, memory)
        else:
            outcomes, lines = {}, []
        notes += lines
        run = Round(graded, rejected, outcomes, notes, where)
        kept.restore(run.left(FAULT))
        for student, _ in run.left(FAULT) + run.left(REFUSED):
            with contextlib.suppress(OSError):  # a student folder nbgrader left empty
                os.rmdir(os.path.join(root, "autograded", student))
    return run


def autograde(root=".", jobs=os.cpu_count(), students="*", progress=progress_bar,
              scheduler=None):
    """Grade every submission (on the Dask cluster at ``scheduler``, if given); returns
    (the report text, how many submissions faults of the grader left ungraded). Raises
    cluster.ClusterUnavailable and settings.NotConfigured before writing anything."""
    start = time.monotonic()
    root = os.path.abspath(root)
    assignments = course_assignments(root)
    found, notes, unusable = submissions(root, assignments, students)
    if not found and not unusable and students != "*":
        there = len(student_folders(root))
        raise NoSuchStudent(f"no student folder in submitted/ matches --students {students!r} "
                            f"({there} student folder{'s' * (there != 1)} there)")
    if not found and not unusable:
        return "No submissions in submitted/: nothing to grade.", 0
    config = settings.load_config(root)
    spec = settings.zygote_spec(config)
    accept_weaker = os.environ.get("UNCONFINED") == "1"
    client = cluster.connect(scheduler, report.db_url(root)) if scheduler else None
    with contextlib.ExitStack() as stack:
        if client:  # refused before anything is written
            stack.enter_context(client)
            confinement = cluster.check_workers(client, accept_weaker,
                                                settings.course_files(root, config))
        stack.enter_context(course_lock(root, "nbconfine autograde"))
        removed = remove_dead_runs(scratch_parents())
        scratch = stack.enter_context(run_folder(None))  # the zygote's socket, the staging
        # The zygote loads its libraries while the submissions are checked and copied; on
        # a cluster the workers have theirs. Leaving closes the client: its tasks are dropped.
        if client:
            run = grade(root, found, unusable, progress, client=client, scheduler=scheduler,
                        scratch=scratch)
        else:
            shared = stack.enter_context(zygote.serve(spec, scratch))
            confinement = confine.check(shared.confinement, accept_weaker)
            notes += faults.take()[0]  # the zygote restarted before it was ready, say
            run = grade(root, found, unusable, progress, jobs, shared,
                        settings.executor_modules(config), scratch=scratch)
    notes += run.notes
    faulted = run.left(FAULT)
    for (s, a), (outcome, why) in sorted(run.outcomes.items()):
        if outcome == FAULT:
            notes.append(f"{named(s, a)}: not graded: {why}; its previous grades are kept")
        else:
            notes.append(f"{named(s, a)}: {why}")
    table = report.course_table(root, config, faulted)[-1]
    text_report = "\n".join(
        [table, "", f"Graded {count(len(run.graded) - len(faulted), 'submission')} with "
                    f"{run.where} in {time.monotonic() - start:.1f} s.", confinement]
        + ([f"Removed what interrupted runs left (staging copies, unmerged gradebook "
            f"copies, zygotes' folders): {', '.join(removed)}"] if removed else [])  # housekeeping, no problem
        + [f"Problems found: {len(notes)}"]
        + [f"  {line}" for line in notes]
        + ([f"Not graded, for faults of the grader: {count(len(faulted), 'submission')} (their "
            "previous grades are kept). Run the same command again to grade them."]
           if faulted else []))
    try:
        with open(os.path.join(root, "autograded", "report.txt"), "w") as f:
            f.write(text_report + "\n")
    except OSError as exc:
        text_report += f"\nCould not write autograded/report.txt ({exc.strerror})."
    return text_report, len(faulted)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nbconfine autograde",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=job_count, default=os.cpu_count())
    parser.add_argument("--students", default="*", help="glob of student ids to grade")
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    parser.add_argument("--scheduler", help="grade on the Dask cluster of this scheduler "
                        "(tcp://HOST:PORT; see nbconfine/cluster.py)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"--root {args.root}: no such folder (the course directory)")
    try:
        text_report, ungraded = autograde(args.root, args.jobs, args.students,
                                          scheduler=args.scheduler)
        print(text_report, flush=True)
        code = INCOMPLETE if ungraded else 0
    except confine.Refused as refusal:
        print(refusal, file=sys.stderr)
        code = 2
    except (cluster.ClusterUnavailable, settings.NotConfigured, NoSuchStudent) as exc:
        print(f"autograde: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("\nInterrupted. Grading again is safe: run the same command.", file=sys.stderr)
        code = 130
    except Exception as exc:
        fault = faults.kind_of(exc)
        if fault is None:
            raise
        print(f"autograde: stopped by a fault of the grading machine: {fault[1]}. Grades "
              "written so far are kept; run the same command again once it is mended.",
              file=sys.stderr)
        code = INCOMPLETE
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the interpreter's teardown with big libraries loaded takes a second


if __name__ == "__main__":
    main()
