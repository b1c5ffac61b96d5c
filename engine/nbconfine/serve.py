"""Feedback on arrival: grade each submission as it reaches the exchange and return its
feedback to its student.

    nbconfine serve [--jobs N] [--scheduler tcp://HOST:PORT] [--poll SECONDS] [--root COURSE]
    nbconfine status [--root COURSE]

(``make serve``, ``make status``.) A long-running process for the instructor's course. It
watches the exchange's inbound folder (inotify, through watchdog; with ``--poll``, or
where inotify is not available, by listing it every second) and, for each student's
latest submission to an assignment whose feedback is not returned yet:

1. collects it (nbgrader's collect --update for that student, nbconfine.handback);
2. grades it as ``nbconfine autograde`` does (its prechecks, and workers forked from this
   process, which loaded nbgrader and the grading code once, with sandboxes forked from
   one zygote that imported torch once; or the Dask cluster of ``--scheduler``);
3. writes its feedback (nbgrader generate_feedback) and returns it to that student only
   (nbgrader release_feedback), recorded in the gradebook's ledger (nbconfine.handback).

The student fetches it with nbgrader's own ``fetch_feedback`` or the Assignment List.
The submissions waiting when a round starts are graded together (up to ``PER_JOB`` per
job); one arriving meanwhile waits for the next round, where only the latest of a
student counts.

State lives in the exchange, the course's folders and the gradebook, not here: what is to
do is each student's latest complete submission that the ledger does not show done. Killed
(SIGKILL) anywhere, then started again, the service grades what is left; grading is
idempotent, so each submission ends graded once. SIGTERM or Ctrl-C finishes the round in
hand, then stops. Each round holds the course's lock (nbconfine.layout.course_lock):
``make collect``, ``autograde``, ``feedback`` and ``return`` run by hand take turns with it.

It prints one line per submission: who, which assignment, the score, the seconds from its
submission to its feedback, and what the prechecks noticed. ``nbconfine status`` lists
what is waiting, grading and done, from the same state, and whether the service runs
(``autograded/serve.json``, which it holds locked: its pid and the round in hand).
"""
import argparse
import contextlib
import datetime
import fcntl
import json
import os
import signal
import sys
import threading
import time
import traceback

from nbconfine import autograde, cluster, confine, handback, runs, settings, zygote
from nbconfine.faults import FAULT
from nbconfine.cli import job_count
from nbconfine.layout import course_assignments, course_lock
from nbconfine.report import count

PER_JOB = 4  # submissions per job in one round: SIGTERM waits for at most this many each
POLL_SECONDS = 1.0  # without inotify
RESCAN_SECONDS = 30.0  # with inotify, the inbound folder is listed this often all the same
RETRIES = 3  # rounds in which a submission may go ungraded (its worker died) before giving up
STATE = os.path.join("autograded", "serve.json")


class Stopped(Exception):
    """SIGTERM or SIGINT while no round is in hand."""


class Watcher:
    """Wakes the service when the exchange's inbound folder may have changed: an inotify
    watch (watchdog), with a listing every RESCAN_SECONDS all the same, or a listing every
    ``poll`` seconds (``poll`` given, or inotify not available)."""

    def __init__(self, inbound, poll=None):
        self.changed = threading.Event()
        self.observer = None
        self.interval = poll or POLL_SECONDS
        self.how = f"listed every {self.interval:g} s"
        if poll:
            return
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers.inotify import InotifyObserver
            handler = FileSystemEventHandler()
            handler.on_any_event = lambda event: self.changed.set()
            observer = InotifyObserver()
            observer.schedule(handler, inbound)
            observer.start()
        except Exception as exc:  # no inotify here (its limits, another OS): listings
            self.how += f" (inotify is not available: {exc})"
            return
        self.observer, self.interval = observer, RESCAN_SECONDS
        self.how = "watched with inotify"

    def wait(self):
        self.changed.wait(self.interval)
        self.changed.clear()

    def close(self):
        if self.observer:
            self.observer.stop()
            self.observer.join()


class Service:
    """``nbconfine serve`` for the course at ``root``."""

    def __init__(self, root, jobs, scheduler=None, poll=None, out=sys.stdout):
        self.root, self.jobs, self.scheduler, self.poll, self.out = root, jobs, scheduler, \
            poll, out
        self.busy = False  # a round in hand: a signal lets it finish
        self.stopping = None  # the signal's name, once one came
        self.tries = {}  # (student, assignment, timestamp): rounds it went ungraded in
        self.skipped = set()  # inbound folders said to be skipped (not their student's)
        self.served = 0
        self.since = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")

    def say(self, line):
        print(f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S} {line}", file=self.out, flush=True)

    # -- signals ----------------------------------------------------------------------

    def _signal(self, number, frame):
        self.stopping = signal.Signals(number).name
        if not self.busy:
            raise Stopped
        # Forked workers inherit this handler with busy set: they finish their student too.

    # -- grading ----------------------------------------------------------------------

    def _start_grading(self, stack):
        """Connect to the cluster, or start the zygote and load it (before the first
        submission, not with it); returns the confinement line."""
        self.accept_weaker = os.environ.get("UNCONFINED") == "1"
        self.zygote_stack = stack.enter_context(contextlib.ExitStack())
        self.cluster_stack = stack.enter_context(contextlib.ExitStack())
        if self.scheduler:
            return self._connect()
        self.client = None
        self.per_round = PER_JOB * self.jobs
        return self._start_zygote()

    def _connect(self):
        """A client of the cluster, its workers checked (again once the scheduler was
        lost: Dask closes a client that loses it); returns the confinement line. Raises
        cluster.ClusterUnavailable."""
        self.cluster_stack.close()
        self.client = self.cluster_stack.enter_context(cluster.connect(self.scheduler,
                                                                       self.db_url))
        self.per_round = PER_JOB * max(1, sum(self.client.nthreads().values()))
        return cluster.check_workers(self.client, self.accept_weaker,
                                     settings.course_files(self.root, self.config))

    def _start_zygote(self):
        self.zygote_stack.close()
        self.shared = self.zygote_stack.enter_context(zygote.serve(self.spec))
        line = confine.check(self.shared.confinement, self.accept_weaker)
        sandbox, _ = self.shared.fork(0)  # answered once the zygote has loaded its modules
        sandbox.close()
        return line

    def _zygote_ended(self):
        return self.client is None and self.shared.process.poll() is not None

    def _grade(self, found):
        """autograde.grade of [(student, assignment)] here or on the cluster: a Round."""
        quiet = lambda done, total: None  # noqa: E731 (one line per submission instead)
        if self.client:
            if self.client.status == "connecting":  # Dask tries for a while, then closes it
                raise cluster.ClusterUnavailable(f"the Dask scheduler at {self.scheduler} "
                                                 "stopped answering")
            if self.client.status != "running":  # its scheduler was lost
                self.say(f"Connecting to the Dask scheduler at {self.scheduler} again.")
                self._connect()
            return autograde.grade(self.root, found, [], quiet, client=self.client,
                                   scheduler=self.scheduler)
        return autograde.grade(self.root, found, [], quiet, self.jobs, self.shared,
                               self.modules)

    # -- what to do -------------------------------------------------------------------

    def todo(self, ledger):
        """The latest submissions whose feedback the ledger does not show, oldest first."""
        if not os.path.isdir(self.nbg.inbound):
            return []
        found, skipped = handback.arrivals(self.nbg.inbound, self.assignments,
                                           self.nbg.check_owner)
        for arrival in skipped:
            if arrival.folder not in self.skipped:
                self.skipped.add(arrival.folder)
                self.say(arrival.skipped)
        return sorted((arrival for key, arrival in found.items()
                       if key not in ledger or ledger[key].time < arrival.time),
                      key=lambda arrival: arrival.time)

    def round(self):
        """Grade the submissions waiting (at most ``per_round``); whether any was done."""
        if not self.todo(self.ledger):
            return False
        with course_lock(self.root, f"nbconfine serve (pid {os.getpid()})"):
            self.busy = True
            try:
                batch = self.todo(handback.ledger(self.db_url))[:self.per_round]
                served = self.served
                if batch:
                    self._write_state(batch)
                    self._serve(batch)
                self.ledger = handback.ledger(self.db_url)
            finally:
                self.busy = False
                self._write_state([])
        return self.served > served

    def _serve(self, batch):
        """Collect, grade, write and return the feedback of ``batch`` [Arrival]."""
        if self._zygote_ended():
            self.say("The sandboxes' zygote had ended; starting another.")
            self._start_zygote()
        collected = []
        for arrival in batch:
            what, said = handback.collect(self.nbg, arrival)
            if what == "refused":
                refused = "; ".join(line.split(": ", 1)[1] for line in said)
                self._done(arrival, f"not graded: {refused}")
            else:
                collected.append((arrival, said))
        if not collected:
            return
        run = self._grade([arrival.key for arrival, _ in collected])
        if self._zygote_ended():  # its sandboxes failed: nothing of this round counts
            self.say("The sandboxes' zygote ended during this round: its submissions are "
                     "graded again.")
            return
        keys = {"/".join(arrival.key) for arrival, _ in collected}
        for note in run.notes:
            if note.split(":")[0] not in keys:
                self.say(note)
        graded = []
        for arrival, said in collected:
            where = "/".join(arrival.key)
            notes = said + [note for note in run.notes if note.startswith(where + ":")]
            if arrival.key in run.left(FAULT):
                self._retry(arrival, run.outcomes[arrival.key][1], notes)
            else:
                graded.append((arrival, notes))
        written = self._write_feedback([arrival.key for arrival, _ in graded])
        for arrival, notes in graded:
            why = written[arrival.key]
            if why is None:
                entry, why = handback.return_feedback(self.nbg, *arrival.key,
                                                      seconds=self._seconds(arrival))
            if why is None:
                self._log(arrival, entry, notes)
            else:
                self._done(arrival, f"no feedback returned: {why}", notes)

    def _write_feedback(self, keys):
        """nbgrader generate_feedback of the submissions ``keys`` [(student, assignment)],
        in up to ``jobs`` processes forked from this one, which loaded nbgrader once:
        {key: None, or why it wrote none}. Raises RuntimeError if one of them died."""
        children = []
        for chunk in [keys[k::self.jobs] for k in range(min(self.jobs, len(keys)))]:
            reader, writer = os.pipe()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # never returns
                code = 1
                try:
                    confine.end_with_parent(parent)
                    os.close(reader)
                    with os.fdopen(writer, "w") as out:
                        json.dump([[*key, handback.write_feedback(self.nbg, *key)]
                                   for key in chunk], out)
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            os.close(writer)
            children.append((pid, reader))
        written, died = {}, False
        for pid, reader in children:
            with os.fdopen(reader) as answer:
                said = answer.read()
            died |= os.waitpid(pid, 0)[1] != 0
            written.update({(student, assignment): why for student, assignment, why
                            in (json.loads(said) if said else [])})
        if died:
            raise RuntimeError("a process writing feedback died (see above)")
        return written

    def _retry(self, arrival, why, notes):
        key = (*arrival.key, arrival.stamp)
        self.tries[key] = self.tries.get(key, 0) + 1
        if self.tries[key] < RETRIES:
            self.say(f"{'/'.join(arrival.key)}: {why}; grading it again")
        else:
            self._done(arrival, f"not graded in {RETRIES} tries: {why}", notes)

    def _seconds(self, arrival):
        return (handback.time_now() - arrival.time).total_seconds()

    def _done(self, arrival, outcome, notes=()):
        """Record a submission that gets no feedback, and why."""
        entry = handback.record(self.db_url, *arrival.key, arrival.stamp, outcome,
                                self._seconds(arrival))
        self._log(arrival, entry, notes)

    def _log(self, arrival, entry, notes):
        self.served += 1
        what = (f"feedback returned {entry.seconds:.1f} s after its submission"
                if entry.outcome == handback.RETURNED else entry.outcome)
        noticed = "; ".join(note.split(": ", 1)[1] for note in notes)
        self.say(f"{'/'.join(arrival.key)}: {handback.score_text(entry)}, {what}"
                 + (f" (noticed: {noticed})" if noticed else ""))

    # -- state ------------------------------------------------------------------------

    def _write_state(self, grading):
        state = {"pid": os.getpid(), "since": self.since, "watching": self.watcher.how,
                 "grading_with": self.where, "served": self.served,
                 "grading": [[*arrival.key, arrival.stamp] for arrival in grading]}
        self.state_file.seek(0)
        self.state_file.truncate()
        self.state_file.write(json.dumps(state))
        self.state_file.flush()

    @contextlib.contextmanager
    def _only_one(self):
        """Hold autograded/serve.json locked: one service per course."""
        path = os.path.join(self.root, STATE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a+") as state_file:
            try:
                fcntl.flock(state_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = read_state(path).get("pid", "?")
                raise SystemExit(f"serve: the service already runs for this course (pid "
                                 f"{pid}); stop it first (kill -TERM {pid})") from None
            self.state_file = state_file
            try:
                yield
            finally:
                fcntl.flock(state_file, fcntl.LOCK_UN)

    # -- the service ------------------------------------------------------------------

    def run(self):
        """Serve until SIGTERM or SIGINT; returns the exit status."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._signal)
        try:
            with contextlib.ExitStack() as stack:
                self._prepare(stack)
                self._loop()
        except Stopped:
            pass
        self.say(f"Stopped ({self.stopping}); {count(self.served, 'submission')} "
                 f"served since {self.since}.")
        return 0

    def _prepare(self, stack):
        self.config = config = settings.load_config(self.root)
        self.spec = settings.zygote_spec(config)
        self.modules = settings.executor_modules(config)
        self.assignments = list(course_assignments(self.root))
        self.nbg = handback.Nbgrader(self.root)
        self.db_url = self.nbg.db_url
        if not self.nbg.course_id:
            raise SystemExit("serve: the course's configuration names no course id "
                             "(c.CourseDirectory.course_id), which the exchange needs")
        self.nbg.require_exchange("serve")
        stack.enter_context(self._only_one())
        removed = runs.remove_dead_runs(runs.scratch_parents())
        if removed:
            self.say(f"Removed what interrupted runs left: {', '.join(removed)}")
        confinement = self._start_grading(stack)
        self.where = (f"{count(len(self.client.nthreads()), 'Dask worker')} at {self.scheduler}"
                      if self.client else count(self.jobs, "job"))
        self.ledger = handback.ledger(self.db_url)
        if not os.path.isdir(self.nbg.inbound):
            self.say(f"Waiting for {self.nbg.inbound}, which the first `make publish` "
                     "creates ...")
            while not os.path.isdir(self.nbg.inbound):
                time.sleep(POLL_SECONDS)
        self.watcher = Watcher(self.nbg.inbound, self.poll)
        stack.callback(self.watcher.close)
        self._write_state([])
        self.say(f"Serving {self.nbg.course_id} ({', '.join(self.assignments)}): submissions "
                 f"in {self.nbg.inbound}, {self.watcher.how}, graded with {self.where}; "
                 f"{confinement}. Ctrl-C or SIGTERM stops it after the round in hand.")

    def _loop(self):
        failures = 0
        while not self.stopping:
            try:
                if not self.round():
                    self.watcher.wait()
                failures = 0
            except (Stopped, SystemExit):
                raise
            except Exception as exc:  # the exchange, the disk, the database: all state
                failures += 1        # is on disk, so the same round is tried again
                delay = min(60, 5 * 2 ** (failures - 1))
                if not isinstance(exc, cluster.ClusterUnavailable):  # that one says it all
                    traceback.print_exc()
                self.say(f"A round failed ({type(exc).__name__}: {exc}); trying again in "
                         f"{delay} s.")
                time.sleep(delay)


def read_state(path):
    """The service's state file (``{}`` if it cannot be read whole)."""
    for _ in range(20):  # it is rewritten in place: a read may catch it half written
        try:
            with open(path) as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            time.sleep(0.05)
    return {}


def running(root):
    """The running service's state, or None."""
    path = os.path.join(root, STATE)
    try:
        state_file = open(path)
    except FileNotFoundError:
        return None
    with state_file:
        try:
            fcntl.flock(state_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_state(path)
        fcntl.flock(state_file, fcntl.LOCK_UN)
    return None


def status(root):
    """What ``nbconfine status`` prints: the service, then the submissions waiting,
    grading and done."""
    nbg = handback.Nbgrader(root)
    assignments = list(course_assignments(root))
    ledger = handback.ledger(nbg.db_url)
    found, skipped = handback.arrivals(nbg.inbound, assignments, nbg.check_owner) \
        if os.path.isdir(nbg.inbound) else ({}, [])
    state = running(root)
    if state:
        lines = [f"The service: running since {state.get('since')} (pid {state.get('pid')}; "
                 f"{state.get('watching')}; {state.get('grading_with')}; "
                 f"{count(state.get('served', 0), 'submission')} served)"]
    else:
        lines = ["The service: not running (make serve starts it)"]
    grading = {(s, a): stamp for s, a, stamp in (state or {}).get("grading", [])}
    todo = [arrival for key, arrival in sorted(found.items())
            if key not in ledger or ledger[key].time < arrival.time]
    for title, group in (("Grading", [a for a in todo if grading.get(a.key) == a.stamp]),
                         ("Waiting", [a for a in todo if grading.get(a.key) != a.stamp])):
        lines.append(f"{title} ({len(group)})" + (":" if group else ""))
        lines += [f"  {'/'.join(a.key):<40} submitted {a.stamp}" for a in group]
    done = {key: entry for key, entry in sorted(ledger.items())
            if key not in found or found[key].time <= entry.time}
    lines.append(f"Done ({len(done)})" + (":" if done else ""))
    for key, entry in done.items():
        outcome = (f"feedback returned {entry.returned}"
                   + (f", {entry.seconds:.1f} s after" if entry.seconds is not None else "")
                   if entry.outcome == handback.RETURNED else entry.outcome)
        lines.append(f"  {'/'.join(key):<40} {handback.score_text(entry):<12} submitted "
                     f"{entry.stamp}: {outcome}")
    if skipped:
        lines.append(f"Skipped ({len(skipped)}):")
        lines += [f"  {arrival.skipped}" for arrival in skipped]
    return "\n".join(lines)


def status_main(argv=None):
    print(status(handback.course_root("status", argv, description=(
        "The submissions waiting, being graded and done by nbconfine serve."))))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nbconfine serve",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=job_count, default=os.cpu_count(),
                        help="grading workers (default: the number of cores)")
    parser.add_argument("--scheduler", help="grade on the Dask cluster of this scheduler "
                        "(tcp://HOST:PORT; see nbconfine/cluster.py)")
    parser.add_argument("--poll", type=float, help="list the inbound folder every POLL "
                        "seconds instead of watching it with inotify (network file systems)")
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    os.chdir(root)  # as nbgrader runs: its configuration and paths are the course's
    try:
        code = Service(root, max(1, args.jobs), args.scheduler, args.poll).run()
    except confine.Refused as refusal:
        print(refusal, file=sys.stderr)
        code = 2
    except (cluster.ClusterUnavailable, settings.NotConfigured) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        code = 2
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the interpreter's teardown with big libraries loaded takes a second
