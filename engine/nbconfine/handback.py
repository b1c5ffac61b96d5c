"""Collect submissions, write feedback and return it: nbgrader's own collect,
generate_feedback and release_feedback, for whatever is there to act on.

    nbconfine collect [--root COURSE]    the latest submission of each student, from the exchange
    nbconfine feedback [--root COURSE]   feedback/ for every autograded submission
    nbconfine return [--root COURSE]     feedback/ back to the students, through the exchange

(``make collect``, ``make feedback``, ``make return``.) Each acts on every assignment of
the course (the folders of source/) that has something to act on, says which had nothing,
and names each student it skipped and why; the others are done all the same.

nbgrader runs in this process (``Nbgrader``), configured as ``nbgrader COMMAND`` run in
the course would be, one student at a time:

- collect: nbgrader's collect (``--update``: the latest submission, if newer than the one
  in submitted/) into a scratch folder of the course, then moved in place of
  submitted/<student>/<assignment>: an interrupted collect leaves the old submission or
  the new one, never half of one. nbgrader's copy is replaced (``NoFollowCollect``):
  the student owns their folder and may change it at any moment, so each entry is
  opened without following links or blocking and copied from that descriptor into a
  folder only the instructor can write; a submission holding anything but regular files
  and folders (a symbolic link to the instructor's solutions, a named pipe) or more than
  nbgrader's ``CourseDirectory.max_dir_size`` is not collected. With nbgrader's
  ``check_owner`` (its default), a folder in inbound/ that is not owned by the student
  it names is skipped, and named: that student's latest own submission is collected.
- return: nbgrader's release_feedback files each student's feedback under the secret of
  their submission (its submission_secret.txt and timestamp.txt, which ``nbgrader
  submit`` writes); feedback of a submission that did not come through the exchange
  (copied into submitted/ by hand, the demo students) cannot be returned, and is skipped.

Feedback returned is recorded in the gradebook (table ``nbconfine_feedback``): per
student and assignment, the submission whose feedback the student can fetch, or why a
submission got none. ``nbconfine serve`` and ``nbconfine status`` read it.
"""
import argparse
import contextlib
import datetime
import errno
import glob
import os
import pwd
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, replace

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps.nbgraderapp import NbGraderApp
from nbgrader.auth import Authenticator
from nbgrader.converters import GenerateFeedback
from nbgrader.exchange import ExchangeFactory
from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.utils import capture_log, parse_utc
from sqlalchemy import text
from traitlets import Unicode

from nbconfine import exchange, report, settings
from nbconfine.layout import course_assignments, course_lock

# A submission folder that `nbgrader submit` left unfinished (its last step makes the
# folder 0777) counts as complete once it has not changed for this long: one copied
# into inbound/ by hand, or a submit that died.
SETTLE_SECONDS = 60
LEDGER, OUTCOME_LENGTH = "nbconfine_feedback", 2000
CREATE_LEDGER = (
    f"CREATE TABLE IF NOT EXISTS {LEDGER} (student_id VARCHAR(128) NOT NULL, "
    "assignment VARCHAR(128) NOT NULL, timestamp VARCHAR(64) NOT NULL, "
    f"returned VARCHAR(32) NOT NULL, outcome VARCHAR({OUTCOME_LENGTH}) NOT NULL, score FLOAT, "
    "max_score FLOAT, by_hand FLOAT, seconds FLOAT, PRIMARY KEY (student_id, assignment))")
RECORD = re.compile(r"^\[([A-Z]+)\] ?(.*)$")  # a line of nbgrader's captured log (capture_log)
RETURNED = "returned"  # the outcome of feedback the student can fetch
NOT_FROM_EXCHANGE = ("not submitted through the exchange (no {0}: copied into submitted/ "
                     "by hand?), so nbgrader cannot return its feedback")


class Nbgrader:
    """nbgrader in this process for the course at ``root``: its configuration as `nbgrader
    COMMAND` run there reads it, its course directory, exchange and gradebook. Not
    nbgrader's singleton application: workers forked from this process start their own."""

    def __init__(self, root):
        with contextlib.chdir(root):
            self.app = NbGraderApp()
            self.app.initialize(["--log-level=WARN"])
        self.app.log.handlers = []  # each step's log is captured (capture_log)
        self.app.log.propagate = False
        self.coursedir = self.app.coursedir
        self.authenticator = Authenticator(parent=self.app)
        self.exchange = ExchangeFactory(parent=self.app)
        self.root = os.path.abspath(self.coursedir.root)
        self.course_id = self.coursedir.course_id
        self.db_url = self.coursedir.db_url
        collect = self.exchange.Collect(coursedir=self.coursedir, parent=self.app)
        self.exchange_root, self.check_owner = collect.root, collect.check_owner
        self.inbound = os.path.join(self.exchange_root, self.course_id, "inbound")

    def require_exchange(self, command):
        """Exit saying what to run unless the exchange root is as `make exchange` makes it
        (nbgrader would create a missing one world-writable but not sticky)."""
        exchange.require(self.exchange_root, command)

    def run(self, step, student, assignment, submitted=None, **traits):
        """Run nbgrader's ``step`` (a converter or exchange class) for one student's
        assignment, reading submissions from the folder ``submitted`` (default:
        submitted/), with ``traits`` set on it. Returns a Step."""
        course = self.coursedir
        saved = course.student_id, course.assignment_id, course.submitted_directory
        course.student_id, course.assignment_id = student, assignment
        course.submitted_directory = submitted or saved[2]
        try:
            extra = {} if step is GenerateFeedback else {"authenticator": self.authenticator}
            app = step(coursedir=course, parent=self.app, **extra)
            for name, value in traits.items():
                setattr(app, name, value)
            result = capture_log(app)
        finally:
            course.student_id, course.assignment_id, course.submitted_directory = saved
        said, message = {}, None  # level -> its messages, each joined into one line
        for line in result.get("log", "").splitlines():
            record = RECORD.match(line)
            if record:
                message = said.setdefault(record.group(1), [])
                message.append(record.group(2).strip())
            elif message is not None and line.strip():
                message[-1] = f"{message[-1]} {line.strip()}".strip()
        errors = said.get("ERROR", []) + said.get("CRITICAL", [])
        if not errors and result.get("error"):
            errors = result["error"].strip().splitlines()[-1:]
        return Step(result["success"], errors, said.get("WARNING", []))

    def path(self, step, student, assignment):
        """The course's folder of ``step`` ("submitted", "autograded", "feedback") for a
        submission (``student`` "*": a glob of every student's)."""
        course = self.coursedir
        return course.format_path(getattr(course, f"{step}_directory"), student, assignment)


@dataclass
class Step:
    """What running an nbgrader step said."""
    ok: bool
    errors: list
    warnings: list

    @property
    def why(self):
        return self.errors[0] if self.errors else ""


# ---------------------------------------------------------------------------
# Copying a submission its student can still change
# ---------------------------------------------------------------------------

# Never follow a symbolic link; a named pipe opens at once instead of waiting for a writer.
NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Unsafe(Exception):
    """A submission that is not copied: what it holds, and why."""


def copy_regular(src, dest, limit):
    """Copy the folder ``src`` into ``dest`` (made here): regular files and folders only,
    each opened without following links and copied from its descriptor, so what is
    checked is what is copied whatever the student changes meanwhile. Raises Unsafe
    (nothing copied is then to be used) for anything else, or past ``limit`` bytes."""
    others, left = [], [limit]

    def copy_file(fd, path):
        with open(path, "xb") as out:
            while chunk := os.read(fd, 1 << 20):
                left[0] -= len(chunk)
                if left[0] < 0:
                    raise Unsafe(f"holds more than {limit // 1000} kB "
                                 "(nbgrader's CourseDirectory.max_dir_size)")
                out.write(chunk)

    def copy_folder(fd, path, shown):
        os.mkdir(path)
        with os.scandir(fd) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            try:
                child = os.open(name, NO_FOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO):  # a link, a socket
                    raise
                others.append(shown + name)
                continue
            try:
                mode = os.fstat(child).st_mode
                if stat.S_ISDIR(mode):
                    copy_folder(child, os.path.join(path, name), f"{shown}{name}/")
                elif stat.S_ISREG(mode):
                    copy_file(child, os.path.join(path, name))
                else:
                    others.append(shown + name)
            finally:
                os.close(child)

    try:
        top = os.open(src, NO_FOLLOW | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise Unsafe("is not a folder but a symbolic link or a file") from None
    try:
        copy_folder(top, dest, "")
    finally:
        os.close(top)
    if others:
        raise Unsafe(f"holds symbolic links or special files ({', '.join(others[:3])}), "
                     "which nbgrader's copy would follow or wait on")


class NoFollowCollect(ExchangeCollect):
    """nbgrader's collect (the default exchange's) copying each submission with
    copy_regular into a folder only the instructor can write, then from there with
    nbgrader's copy (its ignore, include and size options). ``submission`` (a folder of
    inbound/): collect that one, as chosen by ``arrivals``, not the latest by name."""

    submission = Unicode("")

    def init_src(self):
        if not self.submission:
            return super().init_src()
        self.inbound_path = os.path.dirname(self.submission)
        self.src_records = [self._path_to_record(self.submission)]

    def do_copy(self, src, dest, log=None):
        with tempfile.TemporaryDirectory(prefix="nbconfine-collect-") as private:
            copied = os.path.join(private, "submission")
            try:
                copy_regular(src, copied, 1000 * self.coursedir.max_dir_size)
            except Unsafe as exc:
                self.fail(f"{src} {exc}")
            super().do_copy(copied, dest, log)


# ---------------------------------------------------------------------------
# The exchange's inbound folder
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Arrival:
    """A student's submission in the exchange's inbound folder."""
    student: str
    assignment: str
    stamp: str  # its timestamp as nbgrader wrote it (timestamp.txt)
    folder: str  # its folder in inbound/
    owner: str = ""  # of a folder skipped: not the student it names

    @property
    def time(self):
        """Its timestamp, naive UTC (nbgrader's parse_utc)."""
        return parse_utc(self.stamp)

    @property
    def key(self):
        return self.student, self.assignment

    @property
    def skipped(self):
        """Why a folder not owned by its student is not collected (``owner`` set)."""
        return (f"{'/'.join(self.key)}: skipped {os.path.basename(self.folder)}: made by "
                f"{self.owner}, not by {self.student} (nbgrader's check_owner); "
                f"{self.student}'s own latest submission is taken instead")


def arrivals(inbound, assignments, check_owner, now=None):
    """({(student, assignment): Arrival} of the latest submission of each student to each
    of ``assignments`` in the exchange's ``inbound`` folder, [Arrival skipped]). One still
    being written (``nbgrader submit`` makes the folder 0777 last) is left out until it
    is complete, and the student's earlier ones with it. With ``check_owner``, a folder
    not owned by the student it names is skipped before the latest is chosen: another
    student's, dated in the future, hides no one's submissions."""
    now = time_now() if now is None else now
    latest, skipped, users = {}, [], {}
    for name in os.listdir(inbound):
        parts = name.rsplit("+", 3)  # student+assignment+timestamp[+random], as nbgrader
        if len(parts) < 3 or parts[1] not in assignments:
            continue
        try:
            arrival = Arrival(parts[0], parts[1], parts[2], os.path.join(inbound, name))
            moment = arrival.time
        except (ValueError, OverflowError):
            continue  # not a submission's name
        if check_owner:
            try:
                owner = user_name(os.lstat(arrival.folder).st_uid, users)
            except FileNotFoundError:
                continue
            if owner != arrival.student:
                skipped.append(replace(arrival, owner=owner))
                continue
        if arrival.key not in latest or moment > latest[arrival.key][0]:
            latest[arrival.key] = moment, arrival
    return ({key: arrival for key, (_, arrival) in latest.items() if complete(arrival, now)},
            sorted(skipped, key=lambda arrival: arrival.folder))


def user_name(uid, known):
    """The name of user ``uid`` (``known``: those looked up already)."""
    if uid not in known:
        try:
            known[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            known[uid] = f"user id {uid}"
    return known[uid]


def complete(arrival, now):
    try:
        info = os.lstat(arrival.folder)
    except FileNotFoundError:
        return False
    changed = datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc)
    settled = now - changed.replace(tzinfo=None)
    return stat.S_IMODE(info.st_mode) == 0o777 or \
        settled.total_seconds() > SETTLE_SECONDS


def time_now():
    """Now, naive UTC, as nbgrader's timestamps are compared."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------------------
# Collect, feedback, return: one student's assignment
# ---------------------------------------------------------------------------

COLLECTING = ".nbconfine-collecting"  # scratch folder of collect, in the course


def collect(nbg, arrival):
    """Collect the student's submission ``arrival`` (their latest) into submitted/ if it is
    newer than the one there (nbgrader collect --update, its copy NoFollowCollect's). The
    caller holds the course's lock. Returns (what happened: "collected", "updated",
    "unchanged" or "refused", report lines: why refused, what nbgrader warned of)."""
    where = f"{arrival.student}/{arrival.assignment}"
    scratch = os.path.join(nbg.root, COLLECTING)
    shutil.rmtree(scratch, ignore_errors=True)  # left by a collect that was killed
    os.makedirs(scratch)
    try:
        step = nbg.run(NoFollowCollect, arrival.student, arrival.assignment,
                       submitted=scratch, submission=arrival.folder, update=True,
                       before_duedate=False)
        said = [f"{where}: nbgrader collect: {line}" for line in step.warnings]
        fresh = os.path.join(scratch, arrival.student, arrival.assignment)
        refused = f"{where}: its submission of {arrival.stamp} was not collected: "
        if not step.ok or not os.path.isdir(fresh):
            return "refused", said + [refused + (step.why or "nbgrader collect failed")]
        written = nbg.coursedir.get_existing_timestamp(fresh)
        if written != arrival.time:  # feedback is filed, and the ledger kept, by timestamp.txt
            return "refused", said + [refused + f"its timestamp.txt ({written or 'none'}) "
                                      "is not the time its folder's name gives"]
        dest = nbg.path("submitted", arrival.student, arrival.assignment)
        old = nbg.coursedir.get_existing_timestamp(dest) if os.path.isdir(dest) else None
        if old is not None and arrival.time <= old:
            return "unchanged", said
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.lexists(dest):
            os.rename(dest, os.path.join(scratch, "replaced"))
        os.rename(fresh, dest)
        return ("updated" if old is not None else "collected"), said
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_feedback(nbg, student, assignment):
    """nbgrader generate_feedback --force for one autograded submission; returns None, or
    why it wrote no feedback."""
    step = nbg.run(GenerateFeedback, student, assignment, force=True)
    if step.ok and glob.glob(os.path.join(nbg.path("feedback", student, assignment),
                                          "*.html")):
        return None
    return f"nbgrader generate_feedback wrote none ({step.why or 'no notebook to render'})"


def return_feedback(nbg, student, assignment, seconds=None):
    """nbgrader release_feedback of one student's feedback/ folder, recorded in the
    ledger (``seconds``: from the submission to now). Returns (its Entry, None), or (None,
    why it was not returned)."""
    folder = nbg.path("feedback", student, assignment)
    if not glob.glob(os.path.join(folder, "*.html")):
        return None, "no feedback in feedback/ (make feedback writes it)"
    for name in ("timestamp.txt", "submission_secret.txt"):
        if not os.path.exists(os.path.join(folder, name)):
            return None, NOT_FROM_EXCHANGE.format(name)
    step = nbg.run(nbg.exchange.ReleaseFeedback, student, assignment)
    if not step.ok:
        return None, f"nbgrader release_feedback failed: {step.why}"
    with open(os.path.join(folder, "timestamp.txt")) as f:
        stamp = f.read().strip()
    return record(nbg.db_url, student, assignment, stamp, RETURNED, seconds), None


# ---------------------------------------------------------------------------
# The ledger (in the gradebook)
# ---------------------------------------------------------------------------

@dataclass
class Entry:
    """A ledger row: the submission (its timestamp text) a student's feedback is of."""
    stamp: str
    returned: str  # when, local time
    outcome: str  # RETURNED, or why the submission has no feedback
    score: float
    max_score: float
    by_hand: float  # points of written answers not graded by hand yet
    seconds: float  # from the submission to its feedback (nbconfine serve), or None

    @property
    def time(self):
        return parse_utc(self.stamp)


def ledger(db_url):
    """{(student, assignment): Entry}."""
    with Gradebook(db_url) as gb:
        gb.db.execute(text(CREATE_LEDGER))
        gb.db.commit()
        rows = gb.db.execute(text(
            f"SELECT student_id, assignment, timestamp, returned, outcome, score, max_score, "
            f"by_hand, seconds FROM {LEDGER}")).all()
    return {(row[0], row[1]): Entry(*row[2:]) for row in rows}


def record(db_url, student, assignment, stamp, outcome, seconds=None):
    """Record that the submission of ``stamp`` got feedback (``outcome`` RETURNED) or why
    not, with its score now; returns the Entry."""
    with Gradebook(db_url) as gb:
        score = max_score = by_hand = None
        try:
            grades = [grade for notebook in gb.find_submission(assignment, student).notebooks
                      for grade in notebook.grades]
            by_hand = sum(g.max_score for g in grades if report.awaits_hand_grade(g))
            score = sum(g.score for g in grades if not report.awaits_hand_grade(g))
            max_score = sum(g.max_score for g in grades)
        except MissingEntry:
            pass
        entry = Entry(stamp, datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
                      outcome[:OUTCOME_LENGTH], score, max_score, by_hand, seconds)
        gb.db.execute(text(CREATE_LEDGER))
        gb.db.execute(text(f"DELETE FROM {LEDGER} WHERE student_id = :s AND assignment = :a"),
                      {"s": student, "a": assignment})
        gb.db.execute(text(
            f"INSERT INTO {LEDGER} VALUES (:s, :a, :stamp, :returned, :outcome, :score, "
            ":max_score, :by_hand, :seconds)"),
            {"s": student, "a": assignment, **vars(entry)})
        gb.db.commit()
    return entry


def score_text(entry):
    """"33/35", "18/30 (12 to grade by hand)", or "no score"."""
    if entry.max_score is None:
        return "no score"
    hand = f" ({entry.by_hand:g} to grade by hand)" if entry.by_hand else ""
    return f"{entry.score:g}/{entry.max_score:g}{hand}"


# ---------------------------------------------------------------------------
# The commands: every assignment, every student
# ---------------------------------------------------------------------------

def collect_all(nbg, assignments):
    """nbgrader collect --update of every assignment with submissions; report lines."""
    nbg.require_exchange("collect")
    if not os.path.isdir(nbg.inbound):
        raise SystemExit(f"collect: the exchange has no submissions folder {nbg.inbound}: "
                         "publish the assignments first (make publish)")
    found, skipped = arrivals(nbg.inbound, assignments, nbg.check_owner)
    lines, problems = [], [arrival.skipped for arrival in skipped]
    for assignment in assignments:
        mine = [arrival for key, arrival in sorted(found.items()) if key[1] == assignment]
        if not mine:
            lines.append(f"{assignment}: no submissions in the exchange")
            continue
        counts = {}
        for arrival in mine:
            what, said = collect(nbg, arrival)
            counts[what] = counts.get(what, 0) + 1
            problems += said
        done = ", ".join(f"{counts[what]} {what}" for what in (
            "collected", "updated", "unchanged", "refused") if what in counts)
        lines.append(f"{assignment}: {done} (the latest submission of {students(len(mine))})")
    return lines + problems


def feedback_all(nbg, assignments):
    """Feedback for every autograded submission; (report lines, whether all was written)."""
    lines, problems = [], []
    for assignment in assignments:
        names = sorted(os.path.basename(os.path.dirname(folder))
                       for folder in glob.glob(nbg.path("autograded", "*", assignment))
                       if glob.glob(os.path.join(glob.escape(folder), "*.ipynb")))
        if not names:
            lines.append(f"{assignment}: no autograded submissions (make autograde grades "
                         "them): no feedback to write")
            continue
        written = 0
        for student in names:
            why = write_feedback(nbg, student, assignment)
            written += why is None
            if why:
                problems.append(f"{student}/{assignment}: {why}")
        lines.append(f"{assignment}: feedback written for {written} of "
                     f"{students(len(names))} (feedback/<student>/{assignment}/)")
    return lines + problems, not problems


def return_all(nbg, assignments):
    """Return every student's feedback of every assignment; (report lines, whether all
    that could be returned was)."""
    nbg.require_exchange("return")
    lines, ok = [], True
    for assignment in assignments:
        names = sorted(os.path.basename(os.path.dirname(folder))
                       for folder in glob.glob(nbg.path("feedback", "*", assignment)))
        if not names:
            lines.append(f"{assignment}: no feedback in feedback/ (make feedback writes it): "
                         "nothing to return")
            continue
        returned, skipped = [], {}
        for student in names:
            _, why = return_feedback(nbg, student, assignment)
            if why is None:
                returned.append(student)
            else:
                skipped.setdefault(why, []).append(student)
                ok = ok and why.startswith("not submitted through")
        lines.append(f"{assignment}: feedback returned to {students(len(returned))}"
                     + (f" ({', '.join(returned)})" if returned else ""))
        lines += [f"{assignment}: skipped {', '.join(names)}: {why}"
                  for why, names in sorted(skipped.items())]
    return lines, ok


def students(number):
    return report.count(number, "student")


def course_root(name, argv, description=__doc__.split("\n")[0]):
    """The course directory of `nbconfine NAME [--root COURSE]`. Raises
    settings.NotConfigured if nbconfine does not grade it (`nbconfine` says why, exit
    status 2, before anything is done)."""
    parser = argparse.ArgumentParser(prog=f"nbconfine {name}", description=description)
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    root = os.path.abspath(parser.parse_args(argv).root)
    settings.load_config(root)  # a course graded with nbconfine, not any folder
    return root


def _command(name, action, argv):
    root = course_root(name, argv)
    nbg = Nbgrader(root)
    with course_lock(root, f"nbconfine {name}"):
        return action(nbg, list(course_assignments(root)))


def collect_main(argv=None):
    print("\n".join(_command("collect", collect_all, argv)))


def feedback_main(argv=None):
    lines, ok = _command("feedback", feedback_all, argv)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


def return_main(argv=None):
    lines, ok = _command("return", return_all, argv)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)
