"""The grading engine's rarer paths, each called directly (fast): no submissions, a folder
that vanishes before it is checked, the progress bar, a worker's unexpected exception, the
zygote dying, a reply over MAX_REPLY, a sandbox's setsid child, tensors on problem mode's
wire; and the figures, redrawn byte for byte."""
import filecmp
import io
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import types

import pytest
import torch

import attacks
from coursedir import REPO, wait_for
from nbconfine import autograde, remote, sandbox, wire, zygote


def test_no_submissions_is_said_plainly(tmp_path):
    (tmp_path / "submitted" / "someone" / "homework3").mkdir(parents=True)
    assert autograde.autograde(str(tmp_path), students="nobody*") == \
        "No submissions in submitted/: nothing to grade."
    assert autograde.autograde(str(tmp_path / "elsewhere")) == \
        "No submissions in submitted/: nothing to grade."


def test_a_folder_that_cannot_be_read_is_reported_and_still_graded():
    """A submission removed (or unreadable) between listing and checking: one line, and
    nbgrader gets to try (it decides whether there is anything to grade)."""
    lines, grade = autograde.precheck(REPO, "ghost-student", "normalization",
                                      os.path.join(REPO, "release", "normalization"), {})
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


def test_a_workers_unexpected_exception_costs_that_submission_only(caplog):
    """Not nbgrader's own failure: logged with its traceback, the submission reported as
    not graded (False), the worker goes on."""
    from nbconfine import worker
    app = types.SimpleNamespace(coursedir=types.SimpleNamespace(), log=logging.getLogger("w"))
    with caplog.at_level(logging.ERROR, logger="w"):
        assert worker.grade(app, "alice", "normalization") is False
    assert "Could not grade alice/normalization" in caplog.text
    assert "Traceback" in caplog.text


def test_a_zygote_that_dies_while_forking_says_so():
    ours, theirs = socket.socketpair()

    def die_on_first_request():
        _, fds, _, _ = socket.recv_fds(theirs, 16, 1)
        for fd in fds:
            os.close(fd)
        theirs.close()

    dying = threading.Thread(target=die_on_first_request)
    dying.start()
    reached = zygote.Zygote.__new__(zygote.Zygote)
    reached.control, reached.process = ours, None
    reached._hello = (-1, types.SimpleNamespace(active=()), None)  # as if it had said hello
    with pytest.raises(RuntimeError, match="the sandbox zygote died; see the autograde log"):
        reached.fork(2**20)
    dying.join(10)
    ours.close()


def test_a_reply_over_max_reply_is_a_crash_not_read():
    """The sandbox announces MAX_REPLY + 1 bytes and sends none: the grader stops at the
    header (were it to read on, it would wait for the cell's deadline instead)."""
    ours, theirs = socket.socketpair()

    def oversized_reply():
        wire.recv(theirs)  # the sandbox's setup (see nbconfine.forkserver)
        wire.recv(theirs)  # the request
        theirs.sendall(wire.HEADER.pack(sandbox.MAX_REPLY + 1))

    fake = types.SimpleNamespace(pid=-1, fork=lambda memory: (ours, 2**22 + 7),
                                 confinement=types.SimpleNamespace(active=()))
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


def test_closing_a_sandbox_ends_what_it_started_setsid_or_not():
    """An answer forks a child that calls os.setsid(); when its problem is over (the
    sandbox is closed) the child ends too, while the zygote, and so the run, goes on."""
    name = "ngsetsid" + secrets.token_hex(3)
    forks = zygote.Zygote(zygote.Spec(roles=("problem",)))
    try:
        if "namespaces" not in forks.confinement.active:
            pytest.skip("no PID namespaces here: autograde refuses such sandboxes")
        box = remote.ProblemSandbox(forks, 2**30)
        box.deadline = time.monotonic() + 60
        reply = box.request("exec", "answer", attacks.SETSID_ORPHAN.replace("@SETSID@", name))
        assert reply["error"] is None, reply["error"]
        wait_for(lambda: attacks.orphans(name), 10, "the setsid child to run")
        box.close()
        wait_for(lambda: not attacks.orphans(name), 10, "the setsid child to end with its sandbox")
        assert forks.process.poll() is None  # the zygote was not what ended it
    finally:
        forks.close()


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
