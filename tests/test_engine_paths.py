"""The grading engine's rarer paths, each called directly (fast): no submissions, bad
command lines, a folder that vanishes before it is checked, the progress bar, a worker's
unexpected exception, the zygote dying (restarted; a sandbox lost with it; one that cannot
be restarted), a sandbox forked ahead and its rehearsal, a reply over MAX_REPLY, a
sandbox's setsid child, a notebook's thread bomb, a problem sandbox's threads without
processes, the scratch folders of dead runs (a killed zygote's and service's included),
tensors on problem mode's wire; and the figures, redrawn byte for byte."""
import filecmp
import io
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import nbformat
import pytest
import torch

import attacks
from coursedir import REPO, wait_for
from processes import SANDBOX_NAME, children, comm, exited
from nbconfine import autograde, confine, faults, remote, runs, sandbox, wire, zygote


def test_no_submissions_is_said_plainly(tmp_path):
    (tmp_path / "submitted" / "someone" / "homework3").mkdir(parents=True)
    assert autograde.autograde(str(tmp_path)) == \
        ("No submissions in submitted/: nothing to grade.", 0)
    assert autograde.autograde(str(tmp_path / "elsewhere")) == \
        ("No submissions in submitted/: nothing to grade.", 0)


def test_bad_command_lines_are_refused_with_what_is_wrong(tmp_path):
    """A mistyped command, a job count below 1, a --students glob matching nobody, a --root
    that is no folder: exit status 2 and a line naming the mistake, nothing graded."""
    (tmp_path / "submitted" / "someone" / "homework3").mkdir(parents=True)
    cases = {("frobnicate",): "unknown command 'frobnicate'",
             ("autograde", "--jobs", "0"): "'0': the number of grading workers, 1 or more",
             ("serve", "--jobs", "-1"): "'-1': the number of grading workers, 1 or more",
             ("autograde", "--students", "nobody*"):
                 "no student folder in submitted/ matches --students 'nobody*' "
                 "(1 student folder there)",
             ("autograde", "--root", str(tmp_path / "nowhere")):
                 f"--root {tmp_path / 'nowhere'}: no such folder"}
    for argv, said in cases.items():
        done = subprocess.run([sys.executable, "-m", "nbconfine", argv[0], "--root",
                               str(tmp_path), *argv[1:]]  # a later --root wins
                              if argv[0] == "autograde" else
                              [sys.executable, "-m", "nbconfine", *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and said in done.stderr, (argv, done)


def test_a_course_configuration_that_cannot_be_run_is_named_at_its_line(tmp_path):
    """nbgrader_config.py with a syntax error, or raising: every command that reads it
    stops (exit 2) with one line naming the file, the line and the error, no traceback."""
    for folder in ("source", "submitted/someone"):
        (tmp_path / folder / "homework3").mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), tmp_path / folder / "homework3" / "hw.ipynb")
    config = tmp_path / "nbgrader_config.py"
    for text, said in (("c = get_config()\nc.Foo = (\n", "line 2 could not be run "
                        "(SyntaxError: '(' was never closed)"),
                       ("c = get_config()\n\nraise RuntimeError('half edited')\n",
                        "line 3 could not be run (RuntimeError: half edited)")):
        config.write_text(text)
        for command in ("autograde", "grades", "feedback", "status"):
            done = subprocess.run([sys.executable, "-m", "nbconfine", command], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2 and f"{config}, {said}" in done.stderr \
                and "Traceback" not in done.stderr, (command, done)


def test_a_folder_that_cannot_be_read_is_reported_and_still_graded():
    """A submission removed (or unreadable) between listing and checking: one line, and
    nbgrader gets to try (it decides whether there is anything to grade)."""
    lines, grade = autograde.precheck(REPO, "ghost-student", "normalization",
                                      os.path.join(REPO, "release", "normalization"), {}, True)
    assert grade is True
    assert len(lines) == 1 and lines[0].startswith(
        "ghost-student/normalization: could not be checked (FileNotFoundError: "), lines


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_on_a_terminal_and_in_a_log():
    log = io.StringIO()
    for done in range(1, 21):
        autograde.progress_bar(done, 20, log)
    lines = log.getvalue().split("\r")[1:]
    assert len(lines) == 10 and all(line.endswith(" submissions\n") for line in lines)
    assert lines[0] == "[###" + "." * 27 + "] 2/20 submissions\n"
    assert lines[-1] == "[" + "#" * 30 + "] 20/20 submissions\n"
    terminal = Terminal()
    for done in range(1, 4):
        autograde.progress_bar(done, 3, terminal)
    assert terminal.getvalue() == ("\r[##########....................] 1/3 submissions"
                                   "\r[####################..........] 2/3 submissions"
                                   "\r[##############################] 3/3 submissions\n")


def test_a_workers_unexpected_exception_costs_that_submission_only(caplog, monkeypatch):
    """Not nbgrader's own failure: logged with its traceback, the submission reported as
    not graded (its converter returned), the worker goes on."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import LoggingConfigurable
    from nbconfine import worker

    def unexpected(self):
        raise RuntimeError("a bug")
    monkeypatch.setattr(worker.FaultAwareAutograde, "start", unexpected)
    app = LoggingConfigurable(log=logging.getLogger("w"))
    app.coursedir = CourseDirectory(parent=app)
    with caplog.at_level(logging.ERROR, logger="w"):
        assert worker.run_autograde(app, "alice", "normalization") is not None
    assert "Could not grade alice/normalization" in caplog.text
    assert "Traceback" in caplog.text and "RuntimeError: a bug" in caplog.text


def started_zygote(role):
    """A zygote of ``role`` sandboxes, started here (the fault notes of its start cleared),
    closed at the end."""
    started = zygote.Zygote(zygote.Spec(roles=(role,)))
    faults.take()
    yield started
    started.close()


@pytest.fixture
def forks():
    """A zygote of problem-mode sandboxes."""
    yield from started_zygote("problem")


def kill_zygote(forks):
    """SIGKILL the zygote (its process group: the outer process and the namespace's PID 1)."""
    os.killpg(forks.process.pid, signal.SIGKILL)
    forks.process.wait()


def sandboxes_of(forks):
    """The live sandboxes the zygote ``forks`` has forked."""
    return [pid for pid in children(forks.pid) if comm(pid) == SANDBOX_NAME]


def run_in_sandbox(forks, source="x = 6 * 7"):
    box = remote.ProblemSandbox(forks, 2**30)
    box.deadline = time.monotonic() + 60
    try:
        return box.request("exec", "cell", source)
    finally:
        box.close()


def test_a_dead_zygote_is_restarted_by_the_next_fork(forks):
    """Killed between two sandboxes: the next sandbox comes from a new zygote, and the
    event is noted for the report."""
    first = forks.pid
    assert run_in_sandbox(forks)["error"] is None
    kill_zygote(forks)
    assert run_in_sandbox(forks)["error"] is None
    assert forks.restarts == 1 and forks.pid != first
    notes, fault = faults.take()
    assert fault is None and len(notes) == 1
    assert f"the sandbox zygote (pid {first}) died and was restarted" in notes[0]


def test_a_zygote_in_a_deep_folder_serves_its_workers(tmp_path):
    """A run folder whose socket's path is longer than a Unix socket address holds (107
    bytes: a deep TMPDIR): the zygote listens there, and a worker connects and forks."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    spec = zygote.Spec(roles=("problem",))
    with zygote.serve(spec, str(deep)) as served:
        assert len(os.fsencode(served.listen_path)) > 107
        worker_side = zygote.Zygote(spec, path=served.listen_path)
        try:
            assert run_in_sandbox(worker_side)["error"] is None
        finally:
            worker_side.close()
    faults.take()


def test_the_zygotes_memory_is_on_huge_pages_where_the_kernel_offers_them(forks):
    """What torch's import leaves in the zygote is backed by transparent huge pages (one
    page-table entry per 2 MiB for each fork to copy), and sandboxes forked from it,
    writing to their own tensors, still run."""
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
        if "[never]" in setting.read():
            pytest.skip("transparent huge pages are off on this machine")
    assert run_in_sandbox(forks, "import torch\nx = torch.ones(10**6).sum()")["error"] is None
    with open(f"/proc/{forks.pid}/smaps_rollup") as rollup:
        huge_kib = next(int(line.split()[1]) for line in rollup
                        if line.startswith("AnonHugePages:"))
    assert huge_kib >= 16 * 1024, f"only {huge_kib} KiB of the zygote's memory on huge pages"
    assert run_in_sandbox(forks, "import torch\nassert torch.ones(3).sum() == 3")["error"] is None


def test_a_sandbox_that_dies_with_its_zygote_says_so(forks):
    """Not the answer's doing: the sandbox is marked lost with its zygote (the mode grades
    its problem again), which an answer's own crash is not."""
    if "namespaces" not in forks.confinement.active:
        pytest.skip("without PID namespaces a sandbox outlives its zygote")
    box = remote.ProblemSandbox(forks, 2**30)
    box.deadline = time.monotonic() + 60
    box.request("exec", "cell", "x = 1")
    kill_zygote(forks)
    wait_for(lambda: exited(box.pid), 30, "the sandbox to end with its zygote's namespace")
    with pytest.raises(sandbox.AnswerFault, match="the grader's sandbox zygote died"):
        box.request("exec", "cell", "x = 2")
    assert box.zygote_lost
    crash = remote.ProblemSandbox(forks, 2**30)  # from the restarted zygote
    crash.deadline = time.monotonic() + 60
    with pytest.raises(sandbox.AnswerFault, match="died: the Python process"):
        crash.request("exec", "cell", "import os\nos._exit(3)")
    assert not crash.zygote_lost


@pytest.fixture
def notebook_forks():
    """A zygote of notebook-mode sandboxes."""
    yield from started_zygote("notebook")


def test_a_notebook_sandbox_lost_with_its_zygote_runs_its_cells_again(notebook_forks, tmp_path):
    """Notebook mode: the cell in flight when the zygote died runs again, after the cells
    before it, in a sandbox of the restarted zygote; the notebook is not blamed."""
    from nbconfine.notebook import NotebookExecute, NotebookSession
    if "namespaces" not in notebook_forks.confinement.active:
        pytest.skip("without PID namespaces a sandbox outlives its zygote")
    session = NotebookSession(notebook_forks, str(tmp_path), NotebookExecute())
    assert session.run("x = 6 * 7") == []
    kill_zygote(notebook_forks)
    wait_for(lambda: exited(session.sandbox.pid), 30, "the sandbox to end")
    outputs = session.run("print(x)")
    session.close()
    assert [(o.output_type, o.get("text")) for o in outputs] == [("stream", "42\n")]
    assert session.restarts == 0
    notes, fault = faults.take()
    assert fault is None and any("its cells were run again" in n for n in notes), notes


def test_a_notebook_cell_that_loops_on_the_processor_is_stopped_at_its_time_limit(
        notebook_forks, tmp_path):
    """Notebook mode: `while True: pass` (never a system call to interrupt) is stopped
    after the cell's timeout with nbgrader's errors, and the notebook goes on in the same
    namespace."""
    from nbconfine.notebook import NotebookExecute, NotebookSession
    session = NotebookSession(notebook_forks, str(tmp_path), NotebookExecute(timeout=1))
    assert session.run("x = 6 * 7") == []
    started = time.monotonic()
    outputs = session.run("while True:\n    pass")
    assert [o.ename for o in outputs] == ["KeyboardInterrupt", "CellTimeoutError"]
    assert time.monotonic() - started < 30
    assert [o.get("text") for o in session.run("print(x)")] == ["42\n"]
    session.close()


def test_a_sandbox_forked_ahead_is_taken_let_go_or_forked_anew(forks):
    """Problem mode asks for the next problem's sandbox while one is graded
    (nbconfine.sandbox.Ahead): taken, it serves; let go unused, it ends; forked by a
    zygote that dies before it is taken (it dies too), it comes from the restarted one."""
    ahead = remote.ProblemSandbox.ahead(forks, 2**30)
    wait_for(lambda: sandboxes_of(forks), 30, "the sandbox asked ahead to be forked")
    box = remote.ProblemSandbox(forks, 2**30, ahead)
    assert box.pid in sandboxes_of(forks)
    box.deadline = time.monotonic() + 60
    assert box.request("exec", "cell", "x = 6 * 7")["error"] is None
    box.close()
    wait_for(lambda: not sandboxes_of(forks), 30, "the sandbox to end once closed")
    unused = remote.ProblemSandbox.ahead(forks, 2**30)
    wait_for(lambda: sandboxes_of(forks), 30, "the sandbox asked ahead to be forked")
    unused.close()
    wait_for(lambda: not sandboxes_of(forks), 30, "the sandbox let go unused to end")
    lost = remote.ProblemSandbox.ahead(forks, 2**30)
    wait_for(lambda: sandboxes_of(forks), 30, "the sandbox asked ahead to be forked")
    kill_zygote(forks)
    wait_for(lambda: not forks.alive(), 30, "the zygote's hang-up")
    box = remote.ProblemSandbox(forks, 2**30, lost)
    box.deadline = time.monotonic() + 60
    assert box.request("exec", "cell", "x = 6 * 7")["error"] is None
    assert forks.restarts == 1
    box.close()


REHEARSING_CHECKS = """
import builtins
import torch

SCENARIOS = {"doubled": lambda fn, x: {"out": fn(x)}}


def rehearsal():
    def stand_in(x):  # leaves a mark, for the test to see it ran; draws a random number
        builtins.rehearsed = getattr(builtins, "rehearsed", 0) + 1
        return x * torch.rand(1)
    return [("doubled", stand_in, (torch.ones(2),))]
"""
SEEN = ("import builtins, torch\nseen = getattr(builtins, 'rehearsed', 0)\n"
        "drawn = torch.rand(3).tolist()\ndef report():\n    return seen, drawn\n")


def test_a_sandbox_forked_ahead_rehearses_when_asked_and_keeps_nothing_of_it(tmp_path):
    """With ``rehearse`` (a grader with an idle processor), a sandbox forked ahead runs the
    checks module's rehearsal scenarios before its first request; without it, or forked
    when needed, it does not. A rehearsed sandbox starts as any other: the same names,
    the same random numbers (torch's random state is put back)."""
    checks = tmp_path / "rehearsing_checks.py"
    checks.write_text(REHEARSING_CHECKS)
    forks = zygote.Zygote(zygote.Spec(roles=("problem",), checks=str(checks)))
    try:
        boxes = {"rehearsed": remote.ProblemSandbox(forks, 2**30, remote.ProblemSandbox.ahead(
                     forks, 2**30, rehearse=True)),
                 "ahead": remote.ProblemSandbox(forks, 2**30, remote.ProblemSandbox.ahead(
                     forks, 2**30)),
                 "forked when needed": remote.ProblemSandbox(forks, 2**30)}
        seen = {}
        for name, box in boxes.items():
            box.deadline = time.monotonic() + 60
            reply = box.request("exec", "cell", SEEN)
            assert reply["error"] is None and reply["names"] == [
                "builtins", "drawn", "report", "seen", "torch"], (name, reply)
            seen[name] = remote.Remote(box, ("global", "report"), "function")()
            box.close()
    finally:
        forks.close()
    assert [marks for marks, _ in seen.values()] == [1, 0, 0], seen
    assert seen["rehearsed"][1] == seen["ahead"][1] == seen["forked when needed"][1], seen


def test_grading_workers_rehearse_only_where_they_leave_a_processor_idle():
    """One worker fewer than processors: its sandboxes rehearse; one per processor: none."""
    processors = len(os.sched_getaffinity(0))
    assert autograde.idle_processor(processors - 1)
    assert not autograde.idle_processor(processors)


def test_a_grading_workers_next_notebook_finds_its_first_sandbox_forked(forks):
    """A grading worker asks for the next notebook's first sandbox while it grades the
    last problem of one: the next notebook takes it, once, if it runs on the same zygote
    with the same memory allowance; otherwise it is let go (it ends)."""
    from nbconfine import problems

    asked = remote.ProblemSandbox.ahead(forks, 2**30)
    problems._keep_for_next(forks, 2**30, asked)
    assert problems._kept_for(forks, 2**30) is asked
    assert problems._kept_for(forks, 2**30) is None
    box = remote.ProblemSandbox(forks, 2**30, asked)
    box.deadline = time.monotonic() + 60
    assert box.request("exec", "cell", "x = 6 * 7")["error"] is None
    box.close()
    unfit = remote.ProblemSandbox.ahead(forks, 2**30)
    problems._keep_for_next(forks, 2**30, unfit)
    wait_for(lambda: sandboxes_of(forks), 30, "the sandbox asked ahead to be forked")
    assert problems._kept_for(forks, 2**31) is None
    wait_for(lambda: not sandboxes_of(forks), 30, "the sandbox of another allowance to end")


def test_a_zygote_that_cannot_be_restarted_is_a_grader_fault(forks, monkeypatch):
    """Its successor dies before it is ready: a GraderFault (the submission is left
    ungraded, never zeroed), said in words."""
    kill_zygote(forks)
    monkeypatch.setattr(zygote.sys, "executable", "/bin/false")  # the successor exits at once
    with pytest.raises(faults.GraderFault, match="died and could not be restarted"):
        remote.ProblemSandbox(forks, 2**30)
    assert faults.kind_of(faults.GraderFault("x")) == (faults.MACHINE, "x")


def test_a_database_fault_is_known_through_what_nbgrader_raises_instead():
    """nbgrader's add_submission turns a lost connection into its own InvalidEntry, raised
    while handling it: still the gradebook's fault (graded again, never a zero); an
    InvalidEntry of nbgrader's own making is not."""
    from nbgrader.api import InvalidEntry
    from sqlalchemy.exc import OperationalError
    lost = OperationalError("INSERT INTO submitted_assignment", {}, Exception(
        "server closed the connection unexpectedly"))
    try:
        try:
            raise lost
        except OperationalError as exc:
            raise InvalidEntry(*exc.args)
    except InvalidEntry as raised:
        kind, reason = faults.kind_of(raised)
    assert kind == faults.DATABASE and "server closed the connection" in reason
    assert faults.kind_of(InvalidEntry("No such student")) is None


def test_the_scratch_folders_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    """A run's folder is removed once its maker is gone and nothing holds its lock; a live
    run's (its maker alive, or a worker of a dead maker holding the lock) is kept, and so
    is another user's."""
    with runs.run_folder(str(tmp_path)) as live:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()  # a dead pid
        dead = tmp_path / f"{runs.RUN_PREFIX}{gone}-abc"
        dead.mkdir()
        (dead / runs.RUN_LOCK).touch()
        (dead / "worker0.db").write_text("unmerged")
        held = tmp_path / f"{runs.RUN_PREFIX}{gone}-def"  # its worker lives on
        held.mkdir()
        holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                                   f"f = open({str(held / runs.RUN_LOCK)!r}, 'w')\n"
                                   "fcntl.flock(f, fcntl.LOCK_EX); print(flush=True); "
                                   "sys.stdin.read()"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()  # it holds the lock
            other = tmp_path / "someone-else"
            other.mkdir()
            foreign = tmp_path / f"{runs.RUN_PREFIX}{gone}-ghi"  # a dead run of another user
            foreign.mkdir()
            if os.geteuid() == 0:  # (a normal user cannot give it away: it is theirs)
                os.chown(foreign, 4242, 4242)
            assert runs.remove_dead_runs([str(tmp_path)]) == [str(dead)] + (
                [] if os.geteuid() == 0 else [str(foreign)])
            assert os.path.isdir(live) and held.is_dir() and other.is_dir()
        finally:
            holder.communicate("")
    assert runs.remove_dead_runs([str(tmp_path)]) == [str(held)]


SERVE_ZYGOTE = """\
from nbconfine import zygote
with zygote.serve(zygote.Spec(roles=("problem",))) as shared:
    print(shared.listen_path, shared.pid, flush=True)
    input()
"""


def test_a_killed_zygote_and_a_killed_service_leave_nothing_a_later_run_keeps():
    """The zygote's empty root and the socket of a zygote serving several processes are
    in run folders (nbconfine.runs): kept while they live, removed by a later run once
    killed (kill -9: nothing of theirs cleans up)."""
    def folders(pid):
        return {os.path.join(parent, name) for parent in runs.scratch_parents()
                for name in os.listdir(parent) if name.startswith(f"{runs.RUN_PREFIX}{pid}-")}

    service = subprocess.Popen([sys.executable, "-c", SERVE_ZYGOTE], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        socket_path, zygote_pid = service.stdout.readline().split()
        zygote_pid = int(zygote_pid)
        (socket_folder,) = folders(service.pid)
        assert socket_path == os.path.join(socket_folder, "zygote.sock")
        (jail_folder,) = folders(zygote_pid)  # named with its pid on the host
        assert sorted(os.listdir(jail_folder)) == [runs.RUN_LOCK, "root"]
        runs.remove_dead_runs(runs.scratch_parents())
        assert os.path.isdir(socket_folder) and os.path.isdir(jail_folder)
        os.kill(zygote_pid, signal.SIGKILL)  # its outer process reaps it and exits
        wait_for(lambda: not os.path.exists(f"/proc/{zygote_pid}"), 30,
                 "the zygote to end and be reaped (a zombie's pid is still taken)")
    finally:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait()
    runs.remove_dead_runs(runs.scratch_parents())  # (or another run on this machine did)
    assert not os.path.exists(socket_folder) and not os.path.exists(jail_folder)


def test_a_reply_over_max_reply_is_a_crash_not_read():
    """The sandbox announces MAX_REPLY + 1 bytes and sends none: the grader stops at the
    header (were it to read on, it would wait for the cell's deadline instead)."""
    ours, theirs = socket.socketpair()

    def oversized_reply():
        wire.recv(theirs)  # the sandbox's setup (see nbconfine.forkserver)
        wire.recv(theirs)  # the request
        theirs.sendall(wire.HEADER.pack(sandbox.MAX_REPLY + 1))

    fake = types.SimpleNamespace(pid=-1, fork=lambda memory: (ours, 2**22 + 7),
                                 confinement=types.SimpleNamespace(active=()),
                                 alive=lambda: True)
    box = remote.ProblemSandbox(fake, 2**20)
    replying = threading.Thread(target=oversized_reply)
    replying.start()
    box.deadline = time.monotonic() + 5
    with pytest.raises(sandbox.AnswerFault, match="died"):
        box.request("exec", "cell", "x = 1")
    replying.join(10)
    theirs.close()
    with pytest.raises(sandbox.AnswerFault):  # the sandbox is done for
        box.request("exec", "cell", "x = 1")


def test_the_figures_are_redrawn_byte_for_byte(tmp_path):
    """`make figures` reproduces the committed figures, which the release ships."""
    done = subprocess.run([sys.executable, "-m", "course.figures", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = ["batch_matrix.png", "norm_cube.png"]
    for committed in ("source", "release"):
        folder = os.path.join(REPO, committed, "normalization", "figures")
        match, mismatch, errors = filecmp.cmpfiles(tmp_path, folder, names, shallow=False)
        assert match == names, (committed, mismatch, errors)


def test_closing_a_notebook_sandbox_ends_what_it_started_setsid_or_not(notebook_forks,
                                                                       tmp_path):
    """A notebook cell forks a child that calls os.setsid() (notebook sandboxes may start
    processes, as a kernel does); when the notebook is over (its sandbox is closed) the
    child ends too, while the zygote, and so the run, goes on."""
    from nbconfine.notebook import NotebookExecute, NotebookSession
    if "namespaces" not in notebook_forks.confinement.active:
        pytest.skip("no PID namespaces here: autograde refuses such sandboxes")
    name = "ngsetsid" + secrets.token_hex(3)
    session = NotebookSession(notebook_forks, str(tmp_path), NotebookExecute())
    assert session.run(attacks.SETSID_ORPHAN.replace("@SETSID@", name)) == []
    wait_for(lambda: attacks.orphans(name), 10, "the setsid child to run")
    session.close()
    wait_for(lambda: not attacks.orphans(name), 10, "the setsid child to end with its sandbox")
    assert notebook_forks.process.poll() is None  # the zygote was not what ended it


THREAD_BOMB = """\
import threading
threading.stack_size(2**16)  # so that the task limit, not memory, is what stops it
hold, count = threading.Event(), 0
try:
    while count < 4096:
        threading.Thread(target=hold.wait).start()
        count += 1
except RuntimeError:
    pass
hold.set()
print(count)
"""


def test_a_notebook_sandbox_starts_hundreds_of_threads_but_no_thousands(notebook_forks,
                                                                        tmp_path):
    """A notebook's thread and process pools run as in a kernel (a hundred threads at
    once: tests/stockcourse), but a bomb of threads, or processes (the kernel counts them
    alike: RLIMIT_NPROC), stops at a few hundred."""
    from nbconfine.notebook import NotebookExecute, NotebookSession
    session = NotebookSession(notebook_forks, str(tmp_path), NotebookExecute())
    try:
        (output,) = session.run(THREAD_BOMB)
    finally:
        session.close()
    assert 100 < int(output.text) < 600, output


NO_PROCESS = """\
import os, resource, socket, subprocess, torch
torch.set_num_threads(4)  # torch's OpenMP pool: threads of this process
total = (torch.randn(2000, 2000) @ torch.randn(2000, 2000)).sum().item()
refused = []
for name, start in [("fork", os.fork), ("subprocess", lambda: subprocess.run(["true"])),
                    ("limit", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (2**16, 2**16)))]:
    try:
        if start() == 0:
            os._exit(0)
    except (OSError, ValueError):
        refused.append(name)
pairs = []
try:
    while True:
        pairs.append(socket.socketpair())
except OSError:
    print(refused, 2 * len(pairs))
"""


def test_a_problem_sandbox_starts_threads_but_no_process_and_few_files(forks):
    """Problem mode: an answer's memory allowance is one process's (RLIMIT_AS), so it
    forks nothing (os.fork, subprocess) but runs torch on its thread pool; and it cannot
    raise its open-file limit (what it can queue in socket buffers grows with it)."""
    if "seccomp" not in forks.confinement.active:
        pytest.skip("no seccomp here: autograde refuses such sandboxes")
    box = remote.ProblemSandbox(forks, 2**30)
    box.deadline = time.monotonic() + 60
    try:
        reply = box.request("exec", "cell", NO_PROCESS)
        assert reply["error"] is None, reply["error"]
        assert reply["stdout"].rsplit(" ", 1)[0] == "['fork', 'subprocess', 'limit']", reply
        assert int(reply["stdout"].rsplit(" ", 1)[1]) < confine.OPEN_FILES, reply
        assert len(os.listdir(f"/proc/{box.pid}/task")) >= 4  # the pool's threads live on
    finally:
        box.close()


@pytest.mark.parametrize("tensor", [
    torch.randn(3, 4), torch.randn(2, 3, dtype=torch.float64).t(), torch.tensor(2.5),
    torch.zeros(0, 3), torch.tensor([True, False]), torch.arange(6).reshape(2, 3),
    torch.randn(4, dtype=torch.bfloat16), torch.randn(2, dtype=torch.complex64).conj(),
    -torch.randn(5).neg(),
], ids=["float32", "transposed", "0-dim", "empty", "bool", "int64", "bfloat16", "conj",
        "neg"])
def test_a_tensor_crosses_the_wire_as_plain_data(tensor):
    """What a sandbox replies (a pickle, read with every class refused) rebuilds the
    tensor exactly: values, dtype, shape."""
    data, dtype, shape = remote.tensor_data(tensor)
    raw = remote.pickle.dumps({"value": [data, dtype, shape]}, protocol=5)
    rebuilt = remote.tensor_from(*remote.read_reply(raw)["value"])
    assert rebuilt.dtype == tensor.dtype and rebuilt.shape == tensor.shape
    assert torch.equal(rebuilt, tensor.resolve_conj().resolve_neg())


def test_a_large_input_sent_again_reaches_the_answer_as_sent():
    """A large tensor sent once is named, not sent, in the next requests to its sandbox:
    an answer that changes its input in place still gets the grader's values each call,
    and values the grader changed in place arrive changed."""
    forks = zygote.Zygote(zygote.Spec(roles=("problem",)))
    try:
        box = remote.ProblemSandbox(forks, 2**30)
        box.deadline = time.monotonic() + 60
        reply = box.request("exec", "answer", "def answer(x):\n    x += 1\n    return x.sum()\n")
        assert reply["error"] is None, reply["error"]
        answer = remote.Remote(box, ("global", "answer"), "answer")
        x = torch.zeros(256, 256)  # over remote.KEPT_BYTES
        assert [answer(x).item() for _ in range(3)] == [x.numel()] * 3
        x += 2
        assert answer(x).item() == 3 * x.numel()
        assert len(box.kept) == 2  # sent twice: once, and once changed
        assert torch.equal(x, torch.full((256, 256), 2.0))  # the grader's own is untouched
        box.close()
    finally:
        forks.close()


def test_instructor_cells_take_the_order_of_the_instructor_s_notebook(tmp_path, monkeypatch):
    """A database returns the gradebook's cells in no set order (PostgreSQL's changes
    after an update): problem mode orders them as the instructor's notebook does."""
    from nbgrader.api import Gradebook
    # a new gradebook runs the environment's alembic
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    from nbconfine.layout import Problems
    from nbconfine.problems import CellKinds
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url) as gb:
        gb.add_assignment("hw")
        gb.add_notebook("hw", "hw")
        for name in ("q1_tests", "setup", "q1_helpers", "q1_answer"):  # not the notebook's order
            gb.add_source_cell(name, "hw", "hw", cell_type="code", locked=name != "q1_answer",
                               source=f"# {name}", checksum=name)
        gb.add_grade_cell("q1_tests", "hw", "hw", max_score=1, cell_type="code")
        gb.add_solution_cell("q1_answer", "hw", "hw")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"# {name}", metadata={"nbgrader": {"grade_id": name}})
        for name in ("setup", "q1_answer", "q1_helpers", "q1_tests")])
    nbformat.write(notebook, tmp_path / "hw.ipynb")
    problems = Problems(pattern=r"^([^_]+)_", shared=["setup"])
    ordered = CellKinds.from_gradebook(url, "hw", "hw", problems, str(tmp_path / "hw.ipynb"))
    assert list(ordered.sources) == ["setup", "q1_helpers", "q1_tests"]
    as_stored = CellKinds.from_gradebook(url, "hw", "hw", problems, str(tmp_path / "none.ipynb"))
    assert list(as_stored.sources) == ["q1_tests", "setup", "q1_helpers"]
