"""Faults of the grading machine lose nothing: a killed zygote or worker, Ctrl-C, the
wrapper itself SIGKILLed then run again, PostgreSQL restarted mid-run, a zygote that
cannot be restarted, a full disk under autograded/.

Processes are found by the names the engine gives them (tests/processes.py), so no test
depends on catching a process between fork and exec. Where a test needs "mid-run", it
waits for a sign that grading is under way (a sandbox, an autograded notebook) and then
strikes; every assertion holds wherever the blow lands."""
import contextlib
import copy
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, text

import processes
from conftest import MANUAL_SCORE, REGRADED, REGRADED_GLOB
from coursedir import NBGRADER_ENV, REPO, Course, wait_for
from nbconfine.runs import RUN_PREFIX, scratch_parents
from pgserver import PrivateServer, require_server

MARK = 0.25  # no cell scores it: grades a run must leave untouched


def start(course, students, jobs, env=None, **popen):
    """`nbconfine autograde` over the course's ``students`` (a glob), started: the Popen."""
    return subprocess.Popen(
        [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
         "--jobs", str(jobs), "--students", students], cwd=course.root,
        env=env or course.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        **popen)


def running(wrapper, name):
    """A poll for the wrapper's processes called ``name`` (it must still run)."""
    def poll():
        assert wrapper.poll() is None, wrapper.communicate()
        return processes.named(name, wrapper.pid)
    return poll


def full_points(course, students, assignment="normalization"):
    """Whether each of ``students`` has every point of ``assignment`` (reference answers:
    what a clean run gives them)."""
    scores = course.scores()
    return {s: (s, assignment) in scores and all(
        score == top for score, top in scores[s, assignment].values()) for s in students}


def report_lines(report, student):
    """The report's lines about the student's submissions."""
    return [line.strip() for line in report.splitlines()
            if line.strip().startswith(f"{student}/")]


def submission_rows(url):
    """{(student, assignment): (submissions, grade rows, grade cells)}."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT sa.student_id, a.name, count(DISTINCT sa.id), count(g.id), "
            "  (SELECT count(*) FROM grade_cells gc JOIN base_cell bc ON gc.id = bc.id "
            "   JOIN notebook n ON bc.notebook_id = n.id WHERE n.assignment_id = a.id) "
            "FROM submitted_assignment sa JOIN assignment a ON sa.assignment_id = a.id "
            "LEFT JOIN submitted_notebook sn ON sn.assignment_id = sa.id "
            "LEFT JOIN grade g ON g.notebook_id = sn.id GROUP BY sa.student_id, a.name, a.id"))
        found = {(s, a): (subs, grades, cells) for s, a, subs, grades, cells in rows}
    engine.dispose()
    return found


def mark_grades(course, student, assignment="normalization"):
    """Set every autograded score of the submission to MARK."""
    with Gradebook(course.db_url) as gb:
        for notebook in gb.find_submission(assignment, student).notebooks:
            for grade in notebook.grades:
                if grade.auto_score is not None:
                    grade.auto_score = MARK
        gb.db.commit()


def marked(course, student, assignment="normalization"):
    """Whether every autograded score of the submission is still MARK."""
    with Gradebook(course.db_url) as gb:
        scores = [grade.auto_score for notebook in
                  gb.find_submission(assignment, student).notebooks
                  for grade in notebook.grades if grade.auto_score is not None]
    return bool(scores) and all(score == MARK for score in scores)


def run_folders(owner=None):
    """The scratch folders of runs (nbconfine.runs) on this machine; those made by the
    process ``owner`` only, if given (other runs may share the machine)."""
    prefix = RUN_PREFIX + (f"{owner}-" if owner else "")
    return {os.path.join(parent, name) for parent in scratch_parents()
            for name in os.listdir(parent) if name.startswith(prefix)}


def test_a_zygote_killed_mid_run_is_restarted_and_grades_are_as_clean(course):
    """SIGKILL of the sandboxes' zygote while sandboxes run: the workers restart it, the
    problem in flight is graded again, exit 0, every grade as in a clean run (reference
    answers: full points), and the report names the restart."""
    students = [f"zyg-{k}" for k in range(2)]
    for student in students:
        course.submit(student, "normalization", course.paused_reference())
    wrapper = start(course, "zyg-*", 2)
    wait_for(running(wrapper, processes.SANDBOX_NAME), 120, "a sandbox")
    zygote = wait_for(lambda: processes.zygote_of(wrapper.pid), 10, "the zygote")
    os.kill(zygote[0], signal.SIGKILL)
    report, errors = wrapper.communicate(timeout=900)
    assert wrapper.returncode == 0, errors[-3000:]
    assert "died and was restarted" in report, report
    assert full_points(course, students) == dict.fromkeys(students, True), report


def test_a_worker_killed_mid_run_costs_nothing(course):
    """A worker killed (the OOM killer, an operator) is replaced and its student graded
    again: exit 0, every student as in a clean run, the death named in the report."""
    students = [f"kill-{k}" for k in range(2)]
    course.submit("kill-0", "normalization", course.paused_reference())  # graded first
    course.submit("kill-1", "normalization", course.reference("normalization"))
    wrapper = start(course, "kill-*", 1)
    workers = wait_for(running(wrapper, processes.WORKER_NAME), 120, "the worker")
    wait_for(running(wrapper, processes.SANDBOX_NAME), 120, "a sandbox")  # it grades
    os.kill(workers[0], signal.SIGKILL)
    report, errors = wrapper.communicate(timeout=900)
    assert wrapper.returncode == 0, errors[-3000:]
    died = [line for line in report.splitlines() if "its grading worker died" in line]
    assert len(died) == 1 and "graded again" in died[0], report
    assert full_points(course, students) == dict.fromkeys(students, True), report


def test_ctrl_c_stops_everything_quietly_and_a_rerun_grades_all(course):
    """Ctrl-C (SIGINT to the terminal's process group) while sandboxes run: the wrapper
    says what to do and nothing else (no traceback from any process), no worker, zygote or
    sandbox is left, and running it again grades every submission."""
    students = [f"int-{k}" for k in range(2)]
    for student in students:
        course.submit(student, "normalization", course.paused_reference())
    wrapper = start(course, "int-*", 2, start_new_session=True)
    wait_for(running(wrapper, processes.WORKER_NAME), 120, "the workers")
    wait_for(running(wrapper, processes.SANDBOX_NAME), 120, "a sandbox")
    engine = processes.descendants(wrapper.pid)
    os.killpg(wrapper.pid, signal.SIGINT)
    _, errors = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 130, errors[-3000:]
    assert errors.strip() == "Interrupted. Grading again is safe: run the same command.", \
        errors[-3000:]
    wait_for(lambda: all(processes.exited(pid) for pid in engine), 30,
             "every worker, the zygote and every sandbox to end")
    report = course.grade("int-*", jobs=2)
    assert "Problems found: 0" in report, report
    assert full_points(course, students) == dict.fromkeys(students, True), report


def test_autograde_killed_then_run_again_ends_as_a_clean_run(parallel_courses, parallel_runs,
                                                            tmp_path):
    """The wrapper SIGKILLed once grading has written something, after an instructor
    graded q1 by hand: its workers, zygote and sandboxes end with it; its scratch folders
    are left behind (staging copy, unmerged gradebook copies); the same command run again
    removes them and ends with the grades of a clean run, the hand grade kept, one
    submission row per student."""
    runs, _, _, _ = parallel_runs
    course = parallel_courses[0].clone(str(tmp_path / "killed"))  # graded once: 1 job
    expected = {k: copy.deepcopy(v) for k, v in runs[1][1].items() if k[0] in REGRADED}
    expected["par-reference", "batchnorm"]["q1"][0] = MANUAL_SCORE
    with Gradebook(course.db_url) as gb:
        gb.find_grade("q1_answer", "batchnorm", "batchnorm",
                      "par-reference").manual_score = MANUAL_SCORE
        gb.db.commit()
    for student in REGRADED:
        mark_grades(course, student)  # the killed run must not be what leaves them right
        shutil.rmtree(os.path.join(course.root, "autograded", student))
    wrapper = start(course, REGRADED_GLOB, 2)
    wait_for(lambda: wrapper.poll() is None and any(
        name.endswith(".ipynb") for student in REGRADED for _, _, names in
        os.walk(os.path.join(course.root, "autograded", student)) for name in names),
        600, "a first autograded notebook")
    engine = processes.descendants(wrapper.pid)
    left = run_folders(wrapper.pid)  # now: once it is dead, any run may remove them
    assert left, "the run has no scratch folder (so this test shows nothing)"
    wrapper.kill()
    wrapper.communicate()
    wait_for(lambda: all(processes.exited(pid) for pid in engine), 60,
             "its workers, zygote and sandboxes to end with it")
    course.grade(REGRADED_GLOB, jobs=2)  # (any run may remove a dead run's folders)
    assert not left & run_folders(), "a dead run's scratch folders were not removed"
    scores = {k: v for k, v in course.scores().items() if k[0] in REGRADED}
    assert scores == expected
    rows = submission_rows(course.db_url)
    for submission in expected:
        submitted, grades, cells = rows[submission]
        assert (submitted, grades) == (1, cells), submission


def test_a_zygote_that_cannot_be_restarted_leaves_submissions_ungraded(course, tmp_path):
    """The zygote killed mid-run where no new one can start (its module broken in the
    engine the run uses): the submissions graded from then on are left ungraded and
    named, previous grades untouched, none for a new student (no row at all), exit 3."""
    engine = tmp_path / "engine"
    shutil.copytree(os.path.join(REPO, "engine", "nbconfine"), engine / "nbconfine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    reference = course.reference("normalization")
    course.submit("gf-a", "normalization", course.paused_reference())  # graded first
    for student in ("gf-b", "gf-c"):
        course.submit(student, "normalization", reference)
    course.grade("gf-b", jobs=1)  # graded before: its grades must stay
    mark_grades(course, "gf-b")
    env = dict(course.env, PYTHONPATH=str(engine))
    wrapper = start(course, "gf-*", 1, env=env)  # one job: gf-a, then gf-b, then gf-c
    wait_for(running(wrapper, processes.SANDBOX_NAME), 120, "a sandbox")
    zygote = wait_for(lambda: processes.zygote_of(wrapper.pid), 10, "the zygote")
    (engine / "nbconfine" / "forkserver.py").write_text("raise SystemExit('broken')\n")
    os.kill(zygote[0], signal.SIGKILL)
    report, errors = wrapper.communicate(timeout=900)
    assert wrapper.returncode == 3, (report, errors[-3000:])
    ungraded = [s for s in ("gf-a", "gf-b", "gf-c") if any(
        "not graded: the sandbox zygote died" in line and "previous grades are kept" in line
        for line in report_lines(report, s))]
    assert ungraded[-2:] == ["gf-b", "gf-c"], report  # graded after the blow
    assert f"Not graded, for faults of the grader: {len(ungraded)} submissions" in report
    assert marked(course, "gf-b")
    scores = course.scores()
    assert ("gf-c", "normalization") not in scores  # no zero rows
    if "gf-a" not in ungraded:  # it was done before the blow
        assert full_points(course, ["gf-a"]) == {"gf-a": True}
    else:
        assert ("gf-a", "normalization") not in scores


@contextlib.contextmanager
def full_filesystem(folder):
    """A 64 KiB tmpfs mounted on ``folder`` (made if missing), all but 16 KiB of it filled:
    folders can be made there, a notebook cannot be written. Yields ``folder``."""
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], check=True)
    try:
        with open(os.path.join(folder, "filler"), "wb") as f:
            f.write(b"\0" * 48 * 1024)
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)")
def test_a_full_disk_under_autograded_leaves_the_submission_ungraded(course):
    """autograded/<student> on a full file system (a 64 KiB tmpfs): that submission is left
    ungraded with its previous grades (the new ones nbgrader saved are put back), nothing
    half-written stays, the report says why, exit 3; another student is graded."""
    reference = course.reference("normalization")
    for student in ("disk-full", "disk-fine"):
        course.submit(student, "normalization", reference)
    course.grade("disk-full", jobs=1)
    mark_grades(course, "disk-full")
    with full_filesystem(os.path.join(course.root, "autograded", "disk-full")) as mount:
        done = subprocess.run(
            [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
             "--jobs", "2", "--students", "disk-*"], cwd=course.root, env=course.env,
            capture_output=True, text=True, timeout=900)
        notebooks = [name for _, _, names in os.walk(mount) for name in names
                     if name.endswith(".ipynb")]
    assert done.returncode == 3, (done.stdout, done.stderr[-3000:])
    line, = report_lines(done.stdout, "disk-full")
    assert "not graded: No space left on device" in line and "previous grades are kept" \
        in line, line
    assert f"writing {mount}/" in line, line  # where it could not write, not the staging copy
    assert re.search(r"^  disk-full .* \(previous grades: not graded again\)$", done.stdout,
                     re.M), done.stdout
    assert not notebooks
    assert marked(course, "disk-full")
    assert full_points(course, ["disk-fine"]) == {"disk-fine": True}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)")
def test_a_full_temporary_folder_stops_the_run_saying_where(course, tmp_path):
    """TMPDIR on a full file system, where the run stages its copy of the submissions: it
    stops before grading, naming the fault and where it could not write (no traceback),
    exit 3, the previous grades kept and nothing of the run left in TMPDIR."""
    course.submit("tmp-full", "normalization", course.reference("normalization"))
    course.grade("tmp-full", jobs=1)
    mark_grades(course, "tmp-full")
    with full_filesystem(str(tmp_path / "tmp")) as folder:
        done = subprocess.run(
            [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root,
             "--jobs", "1", "--students", "tmp-full"], cwd=course.root,
            env=dict(course.env, TMPDIR=folder), capture_output=True, text=True, timeout=900)
        left = sorted(set(os.listdir(folder)) - {"filler"})
    assert done.returncode == 3, (done.stdout, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert ("autograde: stopped by a fault of the grading machine: No space left on device "
            f"writing {folder}/") in done.stderr, done.stderr[-3000:]
    assert "run the same command again once it is mended" in done.stderr
    assert marked(course, "tmp-full") and not left


def worker_logs(course):
    folder = os.path.join(course.root, "autograded", "logs")
    return "".join(open(os.path.join(folder, name)).read() for name in os.listdir(folder)
                   if name.startswith("worker-"))


def test_postgresql_restarted_mid_run_loses_nothing(tmp_path):
    """The gradebook's PostgreSQL server restarted once grading has written something: a
    fast shutdown (connections cut), and the start only once a worker found it gone (so
    a submission is in flight without it): the workers wait for it and grade what was in
    flight again; exit 0, every grade as in a clean run, one submission row each."""
    require_server()
    server = PrivateServer()
    try:
        pg = Course(str(tmp_path / "pgcourse"), env=dict(NBGRADER_ENV,
                                                         NBGRADER_DB_URL=server.url))
        done = pg.nbgrader("generate_assignment", "normalization", "--force")
        assert done.returncode == 0, done.stderr[-3000:]
        students = [f"pgr-{k}" for k in range(3)]
        for student in students:
            pg.submit(student, "normalization", pg.reference("normalization"))
        wrapper = start(pg, "pgr-*", 2)
        wait_for(lambda: wrapper.poll() is None and any(
            name.endswith(".ipynb") for _, _, names in
            os.walk(os.path.join(pg.root, "autograded")) for name in names),
            600, "a first autograded notebook")
        server.shutdown()
        wait_for(lambda: wrapper.poll() is None and "the gradebook's database failed" in
                 worker_logs(pg), 600, "a worker to find the database gone")
        server.start()
        report, errors = wrapper.communicate(timeout=900)
        assert wrapper.returncode == 0, (report, errors[-3000:])
        assert "graded again once it answered" in report, report
        assert full_points(pg, students) == dict.fromkeys(students, True), report
        rows = submission_rows(server.url)
        for student in students:
            submitted, grades, cells = rows[student, "normalization"]
            assert (submitted, grades) == (1, cells), student
    finally:
        server.stop()
