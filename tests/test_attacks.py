"""The attack catalog (tests/attacks.py) through the real autograde wrapper.

Every attack is graded in one run (`nbconfine autograde --students 'atk-*'`,
cells limited to 8 s), the few that could stop a whole run in a second one; meanwhile
the ``plain`` attacks run outside the sandbox, to show they are real. Each kind of
expectation has its own test, parametrized over the attacks it applies to. The probe
families are graded again by a normal Unix user on a course it owns, and with
confinement layers forced missing.
"""
import os
import pickle
import re
import shutil
import socket
import tempfile

import nbformat
import pytest

from nbconfine import remote, wire

from attacks import (ATTACKS, CODE_PROBLEMS, FORGED_MARKER, MARK, forge_reply, grade_attacks,
                     grade_batch, report_lines, scratch_course, submission, wrapper)
from conftest import ASSIGNMENTS
from coursedir import instructor_tests
from unixuser import User

BATCHES = sorted({a.batch for a in ATTACKS})


def label(attack):
    duplicates = [a for a in ATTACKS if a.name == attack.name]
    return attack.name if len(duplicates) == 1 else f"{attack.name}-{attack.assignment}"


def cases(select=lambda attack: True):
    """pytest params of the attacks ``select`` keeps."""
    return [pytest.param(attack, id=label(attack)) for attack in ATTACKS if select(attack)]


@pytest.fixture(scope="session")
def runs(course):
    """{batch: Run}: every batch of the catalog built and graded once."""
    return {batch: grade_batch(course, batch) for batch in BATCHES}


def scores_of(runs, attack):
    """{problem: [score, max]} of the attack's code problems; None if never graded."""
    scores = runs[attack.batch].scores.get((attack.student, attack.assignment))
    if scores is None:
        return None
    return {p: scores[p] for p in CODE_PROBLEMS[attack.assignment] if p in scores}


def autograded(course, attack):
    path = os.path.join(course.root, "autograded", attack.student, attack.assignment,
                        ASSIGNMENTS[attack.assignment])
    return nbformat.read(path, as_version=4) if os.path.isfile(path) else None


def outputs_text(cell):
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            parts += [output.ename, output.evalue] + list(output.traceback)
        elif output.output_type == "stream":
            parts.append(output.text)
        else:
            parts += [str(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# The catalog itself
# ---------------------------------------------------------------------------

def test_catalog_is_large_and_readable():
    assert len([a for a in ATTACKS if not a.name.endswith("control")]) >= 20
    students = [(a.student, a.assignment) for a in ATTACKS]
    assert len(students) == len(set(students))
    assert all(re.fullmatch(r"[a-z0-9_]+", a.name) for a in ATTACKS)
    assert all(a.target is None or a.target in CODE_PROBLEMS[a.assignment] for a in ATTACKS)
    assert all(a.batch == 1 or a.name.startswith("crash_") for a in ATTACKS)


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("attack", cases(lambda a: a.target or a.whole))
def test_target_scores_exactly_what_it_should(runs, attack):
    """A cheat, a crash or a forbidden layer scores 0 on its target; tampering around a
    wrong answer scores what the answer would honestly; an ungradable notebook, 0 all over."""
    scores = scores_of(runs, attack)
    if attack.whole:  # recorded as zero, problem by problem, not left out
        assert scores is not None, runs[attack.batch].report[-2000:]
        assert set(scores) == set(CODE_PROBLEMS[attack.assignment]), scores
        assert all(s == 0 < m for s, m in scores.values()), scores
    else:
        assert scores is not None, runs[attack.batch].report[-2000:]
        assert scores[attack.target][0] == attack.target_score, scores


@pytest.mark.parametrize("attack", cases(lambda a: not a.whole))
def test_every_other_problem_keeps_full_points(runs, attack):
    scores = scores_of(runs, attack)
    assert scores is not None, runs[attack.batch].report[-2000:]
    assert set(scores) == set(CODE_PROBLEMS[attack.assignment])
    lost = {p: s for p, s in scores.items() if p != attack.target and s[0] != s[1]}
    assert not lost, lost


def test_the_control_is_graded_as_usual_in_the_same_run(runs):
    for assignment in ASSIGNMENTS:
        scores = runs[1].scores[("atk-control", assignment)]
        assert all(scores[p][0] == scores[p][1] > 0 for p in CODE_PROBLEMS[assignment]), scores


# ---------------------------------------------------------------------------
# Report, outputs, submitted files, processes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("attack", cases(lambda a: a.report is not None))
def test_report_names_the_malformed_submission(runs, attack):
    lines = report_lines(runs[attack.batch].report, attack)
    assert any(attack.report in line for line in lines), (lines, runs[attack.batch].report[-1500:])


@pytest.mark.parametrize("attack", cases(lambda a: a.shows is not None))
def test_outputs_say_what_happened(course, runs, attack):
    nb = autograded(course, attack)
    cells, text = attack.shows
    chosen = [c for c in nb.cells if c.cell_type == "code" and (
        c.source.startswith(MARK) if cells == "marked" else
        c.metadata.get("nbgrader", {}).get("grade_id") == f"{attack.target}_answer"
        if cells == "answer" else
        c.metadata.get("nbgrader", {}).get("grade") and
        c.metadata["nbgrader"]["grade_id"].split("_")[0] == attack.target)]
    assert chosen
    for cell in chosen:
        assert text in outputs_text(cell), (cell.metadata.get("nbgrader"), outputs_text(cell))


def _hidden_tests():
    """Lines of the hidden tests and their seeds, per assignment."""
    hidden = {}
    for assignment in ASSIGNMENTS:
        lines = {line.strip() for _, _, code in instructor_tests(assignment)
                 for line in code.splitlines() if line.strip()}
        seeds = {m for line in lines for m in re.findall(r"seed=\d+", line)}
        hidden[assignment] = (lines, seeds)
    return hidden


HIDDEN = _hidden_tests()


def test_hidden_tests_are_known():
    """The leak check below has something to look for."""
    for assignment, (lines, seeds) in HIDDEN.items():
        assert len(lines) >= 3 and len(seeds) >= 3, assignment


@pytest.mark.parametrize("attack", cases(lambda a: a.batch == 1 and not a.whole))
def test_outputs_never_show_the_hidden_tests(course, runs, attack):
    """(Whole-notebook failures are never autograded: no outputs to look at.)"""
    nb = autograded(course, attack)
    assert nb is not None
    lines, seeds = HIDDEN[attack.assignment]
    for cell in nb.cells:
        text = outputs_text(cell) if cell.cell_type == "code" else ""
        assert "BEGIN HIDDEN TESTS" not in text
        assert not [line for line in lines if line in text]
        assert not [seed for seed in seeds if re.search(rf"\b{seed}\b", text)]


@pytest.mark.parametrize("batch", BATCHES)
def test_nothing_in_the_course_changes(runs, batch):
    """Files of the course (submitted/, source/, the grading code...), checked from outside."""
    assert runs[batch].changed == [] and not runs[batch].wrote_tmp


@pytest.mark.parametrize("attack", cases(lambda a: a.probe))
def test_probes_gain_nothing(course, runs, attack):
    nb = autograded(course, attack)
    gained = [line for cell in nb.cells if cell.cell_type == "code"
              for line in outputs_text(cell).splitlines() if line.startswith("GAINED")]
    assert not gained, gained


@pytest.mark.parametrize("batch", BATCHES)
def test_from_outside_no_connection_and_no_secret(runs, batch):
    """The loopback listener the probes aim at saw nothing; the secret in the grader's
    environment is in no file of the course (feedback-to-be included) and no output."""
    assert runs[batch].connections == 0
    assert runs[batch].leaks == []


def test_a_forged_reply_runs_no_code_in_the_grader(runs):
    assert not os.path.exists(FORGED_MARKER)


def test_the_forged_reply_is_real_and_the_grader_refuses_it(tmp_path):
    """Unpickled as plain pickle would, the forged reply runs its code; the grader's
    decoding (plain data only: nbconfine.remote.read_reply) refuses it."""
    marker = str(tmp_path / "ran")
    ours, theirs = socket.socketpair()

    class _Server:  # what the attack looks for in the sandbox
        sock = theirs

    server = _Server()  # noqa: F841 (found through gc)
    exec(forge_reply(marker), {"__name__": "forged_reply"})
    raw, buffers = wire.recv_parts(ours)
    with pytest.raises(pickle.UnpicklingError):
        remote.read_reply(raw, buffers)
    assert not os.path.exists(marker)
    pickle.loads(raw)
    assert open(marker).read() == "the grader ran learner code"


@pytest.mark.parametrize("attack", cases(lambda a: a.name.startswith("orphan_")))
def test_no_learner_process_outlives_grading(runs, attack):
    assert runs[attack.batch].orphans == []


# ---------------------------------------------------------------------------
# The attacks are real: outside the sandbox they gain
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("attack", cases(lambda a: a.plain))
def test_attack_gains_in_a_plain_kernel(runs, attack):
    """Run as nbgrader's own Execute would (one namespace, from the submission folder), the
    attack scores more than the grader must give it; a forbidden layer, with only the
    forbidden-operator rule switched off, gets every point: it is an otherwise correct answer."""
    score = runs[attack.batch].plain[attack.name]
    if attack.forbidden_rule:
        full = 18.0 if attack.assignment == "batchnorm" else 5.0
        assert score == full
    else:
        assert score > attack.target_score


# ---------------------------------------------------------------------------
# The same probes as a normal user, and with layers forced missing
# ---------------------------------------------------------------------------

USER = "normgrade-atk"
PROBES = [a for a in ATTACKS if a.probe or (a.name, a.assignment) == ("control", "normalization")]
FILE_AND_TCP = [a for a in PROBES if a.name in ("probe_files", "probe_writes", "probe_network",
                                                   "control")]
LANDLOCK_ONLY = {"NBCONFINE_CONFINE_MISSING": "namespaces,empty-root,seccomp", "UNCONFINED": "1"}


def violations(course, run, attacks, gained_ok=lambda line: False):
    """What went wrong in a run of ``attacks``, checked from inside (scores, GAINED lines)
    and from outside (listener, files, secret, processes)."""
    found = [f"crashed: {run.report}"] if run.crashed else []
    for attack in attacks:
        scores = (run.scores.get((attack.student, attack.assignment)) or {})
        for problem in CODE_PROBLEMS[attack.assignment]:
            expected = attack.target_score if problem == attack.target else scores.get(
                problem, [None, "?"])[1]
            if scores.get(problem, [None])[0] != expected:
                found.append(f"{attack.name} {problem}: {scores.get(problem)}, not {expected}")
        nb = autograded(course, attack)
        lines = [line for cell in (nb.cells if nb else []) if cell.cell_type == "code"
                 for line in outputs_text(cell).splitlines()]
        found += [f"{attack.name}: {line}" for line in lines
                  if line.startswith("GAINED") and not gained_ok(line)]
        if attack.shows and not any(attack.shows[1] in line for line in lines):
            found.append(f"{attack.name}: no '{attack.shows[1]}' in its outputs")
    found += [f"{run.connections} connections to the listener"] if run.connections else []
    found += [f"changed: {run.changed}"] if run.changed else []
    found += ["wrote /tmp"] if run.wrote_tmp else []
    found += [f"the secret is in {run.leaks}"] if run.leaks else []
    found += [f"processes left: {run.orphans}"] if run.orphans else []
    return found


@pytest.fixture(scope="session")
def scratch(course):
    """Fresh copies of the released course, in a folder another user can be given
    (pytest's own temporary folders are private to root)."""
    parent = tempfile.mkdtemp(prefix="normgrade-atk-")
    os.chmod(parent, 0o755)
    yield lambda name: scratch_course(course, os.path.join(parent, name))
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def user_run(scratch):
    """The probe families graded by a normal user (created here) on a course it owns."""
    user = User(USER, home=False)
    course = scratch("as-user")
    try:
        yield course, grade_attacks(course, PROBES, "atk-*", run_as=USER)
    finally:
        user.remove()


def test_a_normal_user_grades_the_probes_confined(user_run):
    course, run = user_run
    assert "Confinement: user/mount/PID/network/IPC namespaces" in run.report, run.report
    assert violations(course, run, PROBES) == []


def test_without_namespaces_landlock_still_blocks_files_and_tcp(scratch):
    """Namespaces, the empty root and seccomp forced missing (and accepted): Landlock
    alone keeps the probes from files and TCP; the report says what was missing."""
    course = scratch("landlock-only")
    run = grade_attacks(course, FILE_AND_TCP, "atk-*", env=LANDLOCK_ONLY)
    assert "MISSING: namespaces, empty-root, seccomp" in run.report, run.report
    assert "UNCONFINED=1" in run.report
    # Left open without the other layers: UDP, netlink, the host's interfaces, a user
    # namespace (Landlock holds in it); as the files' owner, their permissions and times.
    beyond_landlock = ("UDP", "netlink", "interfaces", "unshare", "touch", "chmod")
    assert violations(course, run, FILE_AND_TCP,
                      lambda line: any(word in line for word in beyond_landlock)) == []


def test_with_nothing_available_autograde_refuses_unless_told(scratch):
    course = scratch("nothing")
    submission("batchnorm")(course, "weak-control")
    refused = wrapper_run(course, {"NBCONFINE_CONFINE_MISSING": "all"})
    assert refused.returncode == 2, refused.stdout + refused.stderr
    for layer in ("namespaces", "empty-root", "landlock", "seccomp"):
        assert f"  {layer}: missing. An answer could reach" in refused.stderr
    assert "To enable it:" in refused.stderr and "UNCONFINED=1" in refused.stderr
    assert ("weak-control", "batchnorm") not in course.scores()
    assert not os.path.exists(os.path.join(course.root, "autograded", "weak-control"))
    graded = wrapper_run(course, {"NBCONFINE_CONFINE_MISSING": "all", "UNCONFINED": "1"})
    assert graded.returncode == 0, graded.stderr[-3000:]
    assert "MISSING: namespaces, empty-root, landlock, seccomp" in graded.stdout
    with open(os.path.join(course.root, "autograded", "report.txt")) as f:
        assert "weaker confinement accepted: UNCONFINED=1" in f.read()
    assert course.scores()["weak-control", "batchnorm"]["bn"] == [18.0, 18.0]


def wrapper_run(course, env):
    return wrapper(course, "weak-*", env)
