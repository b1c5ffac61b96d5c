"""Feedback on arrival (`make serve`) and the exchange's hand-run commands (`make collect
autograde feedback return`), between an instructor and two students, each their own Unix
user, with nbgrader's own student commands. The module's tests run in order on one
course: by hand first, then the service, then `make demo` beside the students."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from nbgrader.api import Gradebook
from nbgrader.utils import notebook_hash

from coursedir import COURSE_ID, exchange_course, wait_for
from course import demo
import unixuser
from nbconfine import handback, serve

ASSIGNMENT = NOTEBOOK = "normalization"
MAX = 35  # its points
# The reference answers with none, one or two of tests/catalog.py's mistakes (each costs
# its problem's 5 points): the score of each.
MISTAKES = {35: [], 30: ["p1_unbiased_var"], 25: ["p1_unbiased_var", "p3_flipped_momentum"]}
TOTAL = re.compile(r'id="total">[^(]*\(Score: ([\d.]+) / ([\d.]+)')
SECONDS = 120  # to wait for what takes seconds: CI shares the machine
# Run as a student: a submission in another's name (argv[1], a folder of inbound/) holding
# the release (argv[2]), dated in the future, complete as `nbgrader submit` leaves one.
FORGE = """
import os, shutil, sys
shutil.copytree(sys.argv[2], sys.argv[1])
with open(os.path.join(sys.argv[1], "timestamp.txt"), "w") as f:
    f.write(sys.argv[1].rsplit("+", 3)[2])
os.chmod(sys.argv[1], 0o777)
"""
FORGED_STAMP = "2099-01-01 00:00:00.000000 UTC"
# Appended to the course's nbgrader_config.py: as nbgrader starts copying a submission
# of `student` (after every check of the engine), its notebook becomes a symbolic link to
# the solutions, beside a named pipe: the state a student's rename wins the race with.
# (The course's configuration is read more than once in a process: swapped once.)
SWAP_AT_COPY = """
import os as _os
from nbgrader.exchange.default.collect import ExchangeCollect as _Collect
_copy_files = _Collect.copy_files
def _swap_then_copy(self):
    for record in self.src_records:
        folder = _os.path.join(self.inbound_path, record["filename"])
        if record["username"] == {student!r} and not _os.path.islink(folder + "/{notebook}"):
            _os.remove(_os.path.join(folder, "{notebook}"))
            _os.symlink({solutions!r}, _os.path.join(folder, "{notebook}"))
            _os.mkfifo(_os.path.join(folder, "pipe"))
    _copy_files(self)
_Collect.copy_files = _swap_then_copy
"""


class Student:
    """A student with their own Unix user and home, who fetched the assignment."""

    def __init__(self, user, exchange):
        self.user, self.exchange = user, exchange
        self.where = ["--course", COURSE_ID, f"--Exchange.root={exchange}"]
        self.submitted = []  # timestamps of the submissions, in order
        self.scores = []  # and what each should score

    @property
    def name(self):
        return self.user.name

    def submit(self, score):
        """Fill the fetched notebook in with answers that score ``score`` (MISTAKES) and
        `nbgrader submit` it; returns the feedback file of the exchange that `nbgrader
        fetch_feedback` will look for."""
        answers = {**demo.reference_answers(ASSIGNMENT), **demo.catalog_answers(MISTAKES[score])}
        demo.fill_in(os.path.join(self.user.home, ASSIGNMENT, NOTEBOOK + ".ipynb"), answers)
        self.user.nbgrader("submit", ASSIGNMENT, *self.where)
        cache = os.path.join(self.user.home, ".local", "share", "jupyter", "nbgrader_cache",
                             COURSE_ID)
        latest = max(os.listdir(cache))  # student+assignment+timestamp: in time order
        self.submitted.append(latest.split("+")[2])
        self.scores.append(score)
        with open(os.path.join(cache, latest, "submission_secret.txt")) as f:
            name = notebook_hash(secret=f.read(), notebook_id=NOTEBOOK)
        return os.path.join(self.exchange, COURSE_ID, "feedback", name + ".html")

    def fetched_score(self):
        """`nbgrader fetch_feedback`, then the score its feedback of the latest submission
        shows: (score, out of)."""
        self.user.nbgrader("fetch_feedback", ASSIGNMENT, *self.where)
        path = os.path.join(self.user.home, ASSIGNMENT, "feedback", self.submitted[-1],
                            NOTEBOOK + ".html")
        with open(path) as f:
            return tuple(float(x) for x in TOTAL.search(f.read()).groups())


@pytest.fixture(scope="module")
def course():
    """An instructor's fresh clone of the course with its exchange published, and two
    students who fetched the assignment: (instructor, course folder, make command,
    [students])."""
    with unixuser.users("instr", "alice", "bob") as (instructor, *users), \
            exchange_course(instructor) as (root, scratch, make):
        instructor.run(*make, "exchange", "publish", cwd=root)
        students = [Student(user, os.path.join(scratch, "exchange")) for user in users]
        for student in students:
            student.user.nbgrader("fetch_assignment", ASSIGNMENT, *student.where)
        yield instructor, root, make, students


def submission(inbound, name, mode=0o777, age=0):
    """A submission folder ``name`` in ``inbound`` as `nbgrader submit` leaves it (mode
    0777; 0755 while it is still copying), last changed ``age`` seconds ago."""
    folder = os.path.join(inbound, name)
    os.makedirs(folder)
    with open(os.path.join(folder, "timestamp.txt"), "w") as f:
        f.write(name.split("+")[2])
    os.chmod(folder, mode)
    os.utime(folder, (time.time() - age,) * 2)
    return folder


def test_the_latest_complete_submission_of_each_student_is_taken(tmp_path):
    stamp = "2026-01-05 10:00:0{} UTC"
    for k in (1, 3, 2):  # alice's latest is the third
        submission(tmp_path, f"alice+{ASSIGNMENT}+{stamp.format(k)}+r{k}")
    submission(tmp_path, f"bob+{ASSIGNMENT}+{stamp.format(1)}+r1")
    submission(tmp_path, f"bob+{ASSIGNMENT}+{stamp.format(2)}+r2", mode=0o755)  # copying
    submission(tmp_path, f"carol+{ASSIGNMENT}+{stamp.format(1)}+r1", mode=0o755,
               age=handback.SETTLE_SECONDS + 1)  # by hand: complete once it has settled
    submission(tmp_path, f"dave+other+{stamp.format(1)}+r1")  # not an assignment of ours
    os.makedirs(tmp_path / "notes")
    found, _ = handback.arrivals(str(tmp_path), [ASSIGNMENT], check_owner=False)
    assert {key: arrival.stamp for key, arrival in found.items()} == {
        ("alice", ASSIGNMENT): stamp.format(3), ("carol", ASSIGNMENT): stamp.format(1)}


def gradebook_rows(root, student):
    """[(timestamp, score)] of the student's submissions of the assignment."""
    with Gradebook("sqlite:///" + os.path.join(root, "gradebook.db")) as gb:
        return [(s.timestamp, s.score) for s in gb.find_student(student).submissions
                if s.assignment.name == ASSIGNMENT]


def test_the_exchange_root_is_remembered_and_refused_unless_as_made(course):
    """`make exchange EXCHANGE=DIR` is remembered: later commands without EXCHANGE use
    DIR (nbgrader made ~/nbgrader-exchange, world-writable, not sticky). A root not 1777,
    or missing, is refused by each command using it, naming the root and `make exchange`."""
    instructor, root, make, (alice, _) = course
    plain = [arg for arg in make if not arg.startswith("EXCHANGE=")]
    exchange, targets = alice.exchange, ("publish", "collect", "return", "serve")
    try:
        os.chmod(exchange, 0o777)
        # timeout: a service that does not refuse would serve on (it stops on SIGTERM)
        done = instructor.run("timeout", str(SECONDS), *plain, "-k", *targets, cwd=root,
                              check=False)
        for target in targets:
            assert f"{target}: the exchange root {exchange} has mode 0777, not 1777; create " \
                f"it with `make exchange EXCHANGE={exchange}`" in done.stderr, \
                (target, done.stdout[-3000:], done.stderr[-3000:])
        os.rename(exchange, exchange + ".moved")
        done = instructor.run(*plain, "publish", cwd=root, check=False)
        assert done.returncode != 0 and f"root {exchange} does not exist" in done.stderr
        assert not os.path.exists(exchange)
        assert not os.path.exists(os.path.join(instructor.home, "nbgrader-exchange"))
    finally:
        if os.path.exists(exchange + ".moved"):
            os.rename(exchange + ".moved", exchange)
        os.chmod(exchange, 0o1777)


def test_by_hand_with_one_assignment_submitted(course):
    """`make collect autograde feedback return` while nobody submitted batchnorm: exit 0,
    each command says which assignment had nothing; a clean exchange submission shows no
    problem in the report, and its feedback is fetched. A submission in its name by
    another student, dated 2099, is skipped, named, and hides nothing."""
    instructor, root, make, (alice, bob) = course
    forged = f"{bob.name}+{ASSIGNMENT}+{FORGED_STAMP}+forged"
    alice.user.run(sys.executable, "-c", FORGE,
                   os.path.join(bob.exchange, COURSE_ID, "inbound", forged),
                   os.path.join(alice.user.home, ASSIGNMENT))
    bob.submit(35)
    done = instructor.run(*make, "collect", "autograde", "feedback", "return", cwd=root,
                          check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    for line in ("batchnorm: no submissions in the exchange",
                 f"{ASSIGNMENT}: 1 collected (the latest submission of 1 student)",
                 f"{bob.name}/{ASSIGNMENT}: skipped {forged}: made by {alice.name}, not by "
                 f"{bob.name}",
                 "Graded 1 submission with", "batchnorm: no autograded submissions",
                 f"{ASSIGNMENT}: feedback returned to 1 student ({bob.name})"):
        assert line in said, (line, said[-3000:])
    report = said[said.index("Problems found:"):]
    assert f"{bob.name}/" not in report, report  # nbgrader's own files are no stray files
    assert bob.fetched_score() == (35, MAX)


def test_a_notebook_made_a_link_as_nbgrader_copies_is_not_collected(course):
    """The student owns their submission's folder: what the engine checked may be a link
    to the instructor's solutions (or a pipe) when nbgrader copies it. Not collected."""
    instructor, root, make, (alice, _) = course
    alice.submit(35)
    config = os.path.join(root, "nbgrader_config.py")
    original = read(config)
    solutions = os.path.join(root, "source", ASSIGNMENT, NOTEBOOK + ".ipynb")
    inbound = os.path.join(alice.exchange, COURSE_ID, "inbound")
    try:
        with open(config, "a") as f:
            f.write(SWAP_AT_COPY.format(student=alice.name, notebook=NOTEBOOK + ".ipynb",
                                        solutions=solutions))
        said = instructor.run(*make, "collect", cwd=root)
    finally:
        with open(config, "w") as f:
            f.write(original)
        for name in os.listdir(inbound):  # the later tests' alice submits afresh
            if name.startswith(alice.name + "+"):
                shutil.rmtree(os.path.join(inbound, name))
    assert f"{alice.name}/{ASSIGNMENT}: its submission of {alice.submitted[-1]} was not " \
        f"collected: " in said and f"holds symbolic links or special files ({NOTEBOOK}" \
        ".ipynb, pipe)" in said, said[-3000:]
    assert not os.path.exists(os.path.join(root, "submitted", alice.name)), said[-3000:]


def read(path):
    with open(path) as f:
        return f.read()


def nothing_runs_as(user):
    return not subprocess.run(["pgrep", "-u", user.name], capture_output=True).stdout


class Service:
    """`make serve` as the instructor; stopped by the ids of its processes."""

    def __init__(self, course, log):
        instructor, self.root, make, _ = course
        self.log = log
        self.start = len(read(log)) if os.path.exists(log) else 0  # where its lines begin
        with open(log, "a") as out:
            self.make = instructor.start(*make, "serve", "JOBS=2", cwd=self.root,
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: " Serving " in self.said() or self.make.poll() is not None,
                 SECONDS, "the service to start")
        assert self.make.poll() is None, self.said()[-3000:]
        self.pid = self.state()["pid"]

    def said(self):
        """What this run of the service printed."""
        return read(self.log)[self.start:]

    def served(self, student):
        """Its lines about the student's submissions (not about folders it skipped)."""
        return re.findall(rf"^\S+ \S+ {student.name}/{ASSIGNMENT}: (?!skipped ).*$",
                          self.said(), re.M)

    def state(self):
        return serve.read_state(os.path.join(self.root, "autograded", "serve.json"))

    def signal(self, number):
        os.kill(self.pid, number)
        return self.make.wait(timeout=600)

    def stop(self):
        """In any case, at the end: nothing of the service's left running (while its
        make runs, its pid is the service's)."""
        if self.make.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.make.wait()


def test_the_service_returns_feedback_as_submissions_arrive(course, tmp_path):
    """One student submits a correct then a wrong notebook; then a burst from two
    students during which the service is killed (SIGKILL), the second submitting twice
    more while it is down; started again and stopped with SIGTERM during its round:
    every latest submission graded once, its feedback fetched with the right score."""
    instructor, root, make, (alice, bob) = course
    log = str(tmp_path / "serve.log")
    service = Service(course, log)
    try:
        for score in (35, 30):
            feedback = alice.submit(score)
            wait_for(lambda: os.path.exists(feedback), 60, "feedback within a minute")
            assert alice.fetched_score() == (score, MAX)
        assert service.served(alice)[-1].endswith(" s after its submission")
        assert f"{bob.name}/{ASSIGNMENT}: skipped {bob.name}+{ASSIGNMENT}+{FORGED_STAMP}" \
            in service.said()
        assert not service.served(bob)  # returned by hand already: nothing to do

        latest = [alice.submit(25), bob.submit(35)]  # the burst
        assert service.signal(signal.SIGKILL) != 0
        wait_for(lambda: nothing_runs_as(instructor), SECONDS,
                 "the killed service's workers and zygote to end")
        bob.submit(30)
        latest[1] = bob.submit(25)
        status = instructor.run(*make, "status", cwd=root)
        assert "The service: not running" in status, status
        waiting = status[status.index("Waiting"):status.index("Done")]
        assert re.search(rf"^  {bob.name}/{ASSIGNMENT} +submitted {bob.submitted[-1]}$",
                         waiting, re.M), status

        service = Service(course, log)
        wait_for(lambda: service.state()["grading"] or all(map(os.path.exists, latest)),
                 SECONDS, "the restarted service to take the waiting submissions")
        assert service.signal(signal.SIGTERM) == 0  # once its round is done
        assert all(map(os.path.exists, latest)), service.said()
        assert "Stopped (SIGTERM)" in service.said()
        scores = {student: [re.search(r": (\S+), ", line).group(1)
                            for line in service.served(student)] for student in (alice, bob)}
        # bob's latest only (the one before was still waiting); alice's, if not done before
        assert scores[bob] == ["25/35"] and scores[alice] in ([], ["25/35"]), service.said()
    finally:
        service.stop()
    for student in (alice, bob):
        assert gradebook_rows(root, student.name) == \
            [(handback.parse_utc(student.submitted[-1]), 25)]  # one row: the latest's
        assert student.fetched_score() == (25, MAX)
    wait_for(lambda: nothing_runs_as(instructor), SECONDS,
             "the stopped service's processes to end")


def test_make_demo_then_return_skips_the_demo_students(course):
    """After `make demo` (the README's first command) the demo students, who never
    submitted through the exchange, are named as skipped; the others get their feedback."""
    instructor, root, make, students = course
    # -o release: release/ is committed as `make release` writes it; not written again
    done = instructor.run(*make, "-o", "release", "demo", "return", cwd=root, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in said, said[-3000:]
    submitted = [student for student in students if student.submitted]
    assert f"{ASSIGNMENT}: feedback returned to {handback.students(len(submitted))} (" \
           f"{', '.join(student.name for student in submitted)})" in said, said[-3000:]
    assert f"{ASSIGNMENT}: skipped demo-blank, demo-complete, demo-mistake: not submitted " \
           "through the exchange" in said, said[-3000:]
    assert submitted[-1].fetched_score() == (submitted[-1].scores[-1], MAX)
