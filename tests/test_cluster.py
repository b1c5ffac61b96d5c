"""Autograde on a real Dask cluster on loopback, against a scratch PostgreSQL gradebook.

The README's commands (tests/daskcluster.py): `make scheduler`, which can import nothing
of this project, and two `make worker`s, each from its own checkout; then `make autograde
SCHEDULER=...`. The grades and autograded notebooks equal a local 2-job run's, also when a
worker is killed mid-task; a submission that keeps killing workers is left
ungraded (exit 3), as is one in flight when the scheduler dies (the run ends, saying
so, and its previous grades stay: the run waits for the worker still grading it); refusals
(no scheduler, no workers, a SQLite gradebook, workers without their course's
configuration or with another version of it) come within seconds and write nothing.
Workers of another course on the same scheduler are refused too; they are those of the
stock-nbgrader course (tests/stockcourse, notebook mode), which grade it as a local 2-job
run does. `make serve SCHEDULER=...` returns feedback, and outlives a scheduler killed
and started again. Skipped without PostgreSQL
(tests/pgserver.py), except where .ci/run requires it.
"""
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from nbconfine.cluster import grading_lock

from attacks import ATTACKS
from catalog import MUTANTS
from course import demo
from coursedir import ASSIGNMENTS, COURSE_ID, MAKE, NBGRADER_ENV, REPO, STOCK, STOCK_COURSE, \
    Course, StockCourse, wait_for
from daskcluster import NO_ENGINE_MESSAGE, PROJECT_MODULES, Cluster, autograde, free_port
from pgserver import require_server, scratch_database
from test_notebook_mode import autograded, submit_students

require_server()

MUTANT_NAMES = ("p1_unbiased_var", "p3_flipped_momentum")
ATTACK_NAMES = ("tamper_torch_allclose", "exit_in_function")
KILLED_ONCE = "clu-reference/normalization"  # its worker is killed once: graded on retry
# Every worker grading it is killed: it is left ungraded. Graded last (student ids sort), once
# KILLED_ONCE is done: a worker dying with KILLED_ONCE waiting behind would count a try.
POISON = "clu-worker-killer/normalization"
# The stock course's correct submission, but its copy of the data file edited: graded with
# the assignment's own (nbgrader copies source/'s files over a submission), it scores as
# the correct one.
EDITED_DATA = "edited-data"


def submit_batch(course):
    """Reference, blank, two mutants, two attacks, and a copy of the reference that the
    test treats as a submission killing its workers (all of one assignment: the lean
    part of the suite)."""
    mutants = {m.name: m for m in MUTANTS}
    attacks = {a.name: a for a in ATTACKS}
    reference = course.reference("normalization")
    # The two submissions whose workers are killed take 3 s more: the killer sees them
    # graded however loaded the machine.
    slow = course.paused_reference()
    course.submit("clu-reference", "normalization", slow)
    course.submit("clu-blank", "normalization", {})
    for name in MUTANT_NAMES:
        course.submit(f"clu-{name}", "normalization",
                      {**reference, f"{mutants[name].problem}_answer": mutants[name].code})
    for name in ATTACK_NAMES:
        attacks[name].build(course, f"clu-{name}")
    course.submit("clu-worker-killer", "normalization", slow)


def without_configuration(root):
    """A checkout whose nbgrader_config.py is gone: its worker cannot grade."""
    os.remove(os.path.join(root, "nbgrader_config.py"))


def stock_courses(work, db_url):
    """The stock course, released, with its students' submissions (and EDITED_DATA's),
    twice: with SQLite (the local run) and with the PostgreSQL gradebook ``db_url`` (the
    cluster run: `make autograde` puts the assignment there); and the folder a stock
    course worker copies (the course and the Makefile). Returns the three."""
    local = StockCourse(str(work / "stock-local"))
    local.release()
    submit_students(local)
    submitted = os.path.join(local.root, "submitted")
    shutil.copytree(os.path.join(submitted, "correct"), os.path.join(submitted, EDITED_DATA))
    with open(os.path.join(submitted, EDITED_DATA, STOCK, "measurements.csv"), "w") as f:
        f.write("name,height,weight\nZed,2.50,10.0\n")
    on_cluster = local.clone(str(work / "stock-pg"))
    os.remove(os.path.join(on_cluster.root, "gradebook.db"))
    on_cluster.env = dict(NBGRADER_ENV, NBGRADER_DB_URL=db_url)
    worker_course = shutil.copytree(STOCK_COURSE, work / "stock-worker",
                                    ignore=shutil.ignore_patterns("__pycache__"))
    for course in (on_cluster.root, worker_course):
        shutil.copy2(os.path.join(REPO, "Makefile"), course)
    return local, on_cluster, str(worker_course)


def without_interruptions(nb):
    """The cells of ``nb``, but a timed-out cell's error tracebacks: where the interrupt
    lands in a loop varies from run to run."""
    cells = []
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        if any(o.get("ename") == "CellTimeoutError" for o in outputs):
            outputs = [{k: v for k, v in o.items() if k != "traceback"} for o in outputs]
        cells.append((cell.cell_type, cell.source, cell.metadata, outputs))
    return cells


def stock_results(stock, ran):
    """(cell scores, {student: autograded notebook, without_interruptions}, ``ran``) of
    the stock course ``stock``."""
    students = [s for s in os.listdir(os.path.join(stock.root, "submitted"))
                if os.path.isdir(os.path.join(stock.root, "autograded", s))]
    return (stock.cell_scores(),
            {s: without_interruptions(autograded(stock, s)) for s in students}, ran)


def finished(process, timeout=120):
    """(seconds since started, exit code, stdout, stderr)."""
    out, err = process.communicate(timeout=timeout)
    return time.monotonic() - process.started, process.returncode, out, err


def started(process):
    process.started = time.monotonic()
    return process


def held_tasks(client):
    """[(pid, [(task key, state)])] of each worker: the tasks it holds (asked in each
    worker by a lambda: sent by value)."""
    return list(client.run(lambda dask_worker: (os.getpid(), [
        (str(ts.key), ts.state) for ts in dask_worker.state.tasks.values()
        if ts.state in ("executing", "ready", "constrained", "waiting")]),
        on_error="ignore").values())


def kill_while_grading(cluster, process):
    """Until ``process`` ends: SIGKILL the worker grading KILLED_ONCE (once) and every
    worker grading POISON, half a second into the task. A worker is killed only while it
    holds nothing else: Dask counts a try against every task a dying worker held.
    Returns the kills made."""
    kills, seen = [], {}  # seen: (pid, key) -> when first seen running alone
    with cluster.client() as client:
        while process.poll() is None:
            for pid, tasks in held_tasks(client):
                if len(tasks) != 1 or tasks[0][1] != "executing":
                    continue
                key = tasks[0][0]
                target = next((t for t in (KILLED_ONCE, POISON) if f" {t} " in key), None)
                if target is None or (target == KILLED_ONCE and target in kills):
                    continue
                if time.monotonic() - seen.setdefault((pid, key), time.monotonic()) > 0.5:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(target)
            time.sleep(0.05)
    return kills


def lose_scheduler(cluster, course):
    """`nbconfine autograde --scheduler` of KILLED_ONCE's student, whose submission is now
    the release with its p1 cell paused 9 s (graded, it would score nothing), the
    scheduler SIGKILLed while a worker grades it: ``finished``'s figures, then the
    submission's scores once its worker, which goes on grading, has let go of it."""
    student, assignment = KILLED_ONCE.split("/")
    course.submit(student, assignment, {"p1_answer": "import time\ntime.sleep(9)\n"})
    process = started(autograde(course, "--scheduler", cluster.address, "--students", student))
    with cluster.client() as client:
        wait_for(lambda: any(state == "executing" for _, tasks in held_tasks(client)
                             for _, state in tasks), 120, "a worker grading it")
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    result = finished(process)
    with grading_lock(course.db_url, student, assignment, seconds=120) as let_go:
        assert let_go, "the worker grading it never let go of it"
    return result + (course.scores()[student, assignment],)


def notebooks(course, students):
    """{(student, assignment): autograded notebook} of the students' graded submissions."""
    return {(student, assignment): course.autograded(student, assignment)
            for student in students for assignment in ASSIGNMENTS
            if os.path.isdir(os.path.join(course.root, "autograded", student, assignment))}


def grade_rows(url):
    """{(student, assignment): (number of grade rows, of grade cells, of submissions)}."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT sa.student_id, a.name, count(g.id), "
            "  (SELECT count(*) FROM grade_cells gc JOIN base_cell bc ON gc.id = bc.id "
            "   JOIN notebook n ON bc.notebook_id = n.id WHERE n.assignment_id = a.id), "
            "  count(DISTINCT sa.id) "
            "FROM submitted_assignment sa JOIN assignment a ON sa.assignment_id = a.id "
            "JOIN submitted_notebook sn ON sn.assignment_id = sa.id "
            "JOIN grade g ON g.notebook_id = sn.id GROUP BY sa.student_id, a.name, a.id"))
        found = {(s, a): (n, cells, subs) for s, a, n, cells, subs in rows}
    engine.dispose()
    return found


@pytest.fixture(scope="module")
def cluster_runs(course, tmp_path_factory):
    """Everything the tests look at, from one scheduler (allowed-failures 1: two tries)."""
    work = tmp_path_factory.mktemp("cluster")
    submit_batch(course)  # the session's SQLite course: the local run
    with contextlib.ExitStack() as databases:
        url = databases.enter_context(scratch_database(prefix="test_cluster"))
        stock_local, stock_pg, stock_worker = stock_courses(
            work, databases.enter_context(scratch_database(prefix="test_cluster_stock")))
        pg_course = Course(str(work / "pgcourse"), env=dict(NBGRADER_ENV, NBGRADER_DB_URL=url))
        done = pg_course.nbgrader("generate_assignment", "normalization", "--force")
        assert done.returncode == 0, done.stderr[-3000:]
        shutil.copytree(os.path.join(course.root, "release", "batchnorm"),  # prechecks read it
                        os.path.join(pg_course.root, "release", "batchnorm"))
        submit_batch(pg_course)
        sqlite_course = Course(str(work / "sqlitecourse"))
        os.makedirs(os.path.join(sqlite_course.root, "submitted", "clu-x", "normalization"))
        cluster = Cluster(str(work / "dask"), allowed_failures=1)
        try:
            # Refusals (mostly waiting) while the local 2-job runs use the cores.
            with concurrent.futures.ThreadPoolExecutor(2) as local_runs:
                local = local_runs.submit(course.grade, "clu-*", jobs=2)
                stock_local_report = local_runs.submit(stock_local.grade, jobs=2)
                refused = {
                    "no workers": started(autograde(pg_course, "--scheduler", cluster.address)),
                    "down": started(autograde(pg_course, "--scheduler",
                                              f"tcp://127.0.0.1:{free_port()}")),
                    "sqlite": started(autograde(sqlite_course, "--scheduler", cluster.address)),
                }
                refused = {name: finished(p) for name, p in refused.items()}
                unconfigured = cluster.add_workers(1, edit=without_configuration, wait=False)
                stock_workers = cluster.add_workers(2, course=stock_worker)
                refused["unfit workers"] = finished(started(
                    autograde(pg_course, "--scheduler", cluster.address)))
                cluster.stop_workers(unconfigured)
                # The notebook-mode course, by its own workers.
                stock_made = finished(started(subprocess.Popen(
                    [*MAKE, "autograde", f"SCHEDULER={cluster.address}"], cwd=stock_pg.root,
                    env=stock_pg.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)))
                cluster.stop_workers(stock_workers)
                local_report = local.result()
                stock_local_report = stock_local_report.result()
            refused["written"] = (sorted(os.listdir(pg_course.root)), pg_course.scores(),
                                  sorted(os.listdir(sqlite_course.root)))
            workers = cluster.add_workers(2)
            for name in ("Makefile", "requirements.txt"):
                shutil.copy2(os.path.join(REPO, name), pg_course.root)
            make = started(subprocess.Popen(
                [*MAKE, "autograde", f"SCHEDULER={cluster.address}"], cwd=pg_course.root,
                env=pg_course.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            kills = kill_while_grading(cluster, make)
            made = finished(make)
            scheduler_imports = cluster.scheduler_imports()
            saturation = cluster.scheduler_setting("distributed.scheduler.worker-saturation")
            students = {s for s in os.listdir(os.path.join(course.root, "submitted"))
                        if s.startswith("clu-")}
            graded = (pg_course.scores(), notebooks(pg_course, students), made)
            rows = grade_rows(url)
            scheduler_lost = lose_scheduler(cluster, pg_course)  # last: it ends it
        finally:
            cluster.stop()
        yield {
            "local": ({k: v for k, v in course.scores().items() if k[0] in students},
                      notebooks(course, students), local_report),
            "cluster": graded, "scheduler lost": scheduler_lost,
            "rows": rows, "kills": kills, "saturation": saturation,
            "refused": refused,
            "workers log": "".join(cluster.log(worker.name) for worker in workers),
            "unconfigured checkout": os.path.join(cluster.workdir, unconfigured[0].name,
                                                  "checkout"),
            "scheduler": (scheduler_imports, cluster.log("scheduler")),
            "notebook mode": {
                "local": stock_results(stock_local, stock_local_report),
                "cluster": stock_results(stock_pg, stock_made),
                "students": os.listdir(os.path.join(stock_local.root, "submitted"))},
        }


def test_cluster_grades_and_notebooks_equal_a_local_two_job_run(cluster_runs):
    """Through `make autograde SCHEDULER=...`, a killed worker's submission included."""
    local_scores, local_nbs, local_report = cluster_runs["local"]
    scores, nbs, (_, code, report, errors) = cluster_runs["cluster"]
    assert code == 2 and "autograde] Error 3" in errors, errors[-3000:]  # POISON: ungraded
    assert "Graded 6 submissions with 2 Dask workers at tcp://127.0.0.1:" in report, report
    assert "Problems found: 0" in local_report, local_report
    poison = tuple(POISON.split("/"))
    assert set(scores) == set(local_scores) - {poison}
    assert scores == {k: v for k, v in local_scores.items() if k != poison}
    assert set(nbs) == set(local_nbs) - {poison}
    for submission, nb in nbs.items():
        assert nb == local_nbs[submission], submission
    assert scores["clu-reference", "normalization"]["p1"] == [5.0, 5.0]
    assert scores["clu-p3_flipped_momentum", "normalization"]["p3"][0] < 5
    assert scores["clu-tamper_torch_allclose", "normalization"]["p1"][0] == 0


def test_a_killed_worker_s_submission_is_graded_again_elsewhere(cluster_runs):
    """SIGKILL of the worker grading it: Dask retries it, the report says so."""
    _, _, (_, _, report, _) = cluster_runs["cluster"]
    assert KILLED_ONCE in cluster_runs["kills"], cluster_runs["workers log"]
    assert f"{KILLED_ONCE}: a worker died while grading it (tcp://127.0.0.1:" in report, report
    assert "graded again on tcp://127.0.0.1:" in report


def test_a_submission_that_keeps_killing_workers_is_left_ungraded(cluster_runs):
    """Workers dying is the grading machine's fault: no zero, no row of a new submission,
    named in the report. `make scheduler` hands a worker only the submission it grades
    (worker-saturation 1.0), so the deaths count against that one alone, never against a
    submission queued behind it (which Dask's default of 1.1 would charge too)."""
    assert cluster_runs["saturation"] == 1.0
    scores, nbs, (_, _, report, _) = cluster_runs["cluster"]
    assert cluster_runs["kills"].count(POISON) == 2, (report, cluster_runs["kills"])  # 2 tries
    assert f"{POISON}: not graded: the workers grading it died 2 times" in report, report
    assert "Not graded, for faults of the grader: 1 submission (" in report
    assert tuple(POISON.split("/")) not in scores and tuple(POISON.split("/")) not in nbs


def test_every_submission_has_exactly_one_set_of_grade_rows(cluster_runs):
    scores, _, _ = cluster_runs["cluster"]
    rows = cluster_runs["rows"]
    assert set(rows) == set(scores)
    for submission, (grades, cells, submitted) in rows.items():
        assert (grades, submitted) == (cells, 1), submission


def test_a_scheduler_lost_mid_run_leaves_its_submissions_ungraded_and_says_so(cluster_runs):
    """The scheduler killed while a worker grades: the run ends (exit 3, no traceback),
    naming the submission not graded, the scheduler and what to do; the grades the
    worker writes when it is done are not left in place of the previous ones."""
    _, code, report, errors, scores = cluster_runs["scheduler lost"]
    assert code == 3 and "Traceback" not in errors, (report, errors[-3000:])
    # what the worker wrote when done is replaced: the run waited for it to let go
    assert scores == cluster_runs["cluster"][0][tuple(KILLED_ONCE.split("/"))] != \
        {problem: [0.0, 5.0] for problem in scores}, scores
    assert (f"{KILLED_ONCE}: not graded: the Dask scheduler at tcp://127.0.0.1:"
            in report and "stopped answering: start it again (`make scheduler`)" in report)
    assert "Not graded, for faults of the grader: 1 submission " in report, report
    assert "Run the same command again" in report


def test_refusals_come_within_seconds_and_write_nothing(cluster_runs):
    """Each refusal says how long it waited (the engine's own bounds: 5 s to reach the
    scheduler, 10 s for a worker); the wall clock is not asserted, the machine may be
    loaded."""
    refused = cluster_runs["refused"]
    _, code, out, err = refused["no workers"]
    assert code == 2, (out, err)
    assert "has no workers (waited 10 s)" in err and "--preload nbconfine.cluster" in err
    _, code, out, err = refused["down"]
    assert code == 2, (out, err)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in err and "within 5 s" in err
    assert "dask scheduler" in err and "Traceback" not in err
    _, code, out, err = refused["sqlite"]
    assert code == 2, (out, err)
    assert "PostgreSQL" in err and "NBGRADER_DB_URL" in err and "SQLite" in err
    pg_files, pg_scores, sqlite_files = refused["written"]
    assert "autograded" not in pg_files and pg_scores == {}
    assert "autograded" not in sqlite_files and "gradebook.db" not in sqlite_files


def test_the_scheduler_needs_nothing_of_this_project(cluster_runs):
    """Tasks, client.run, the worker plugin's registration: all through a scheduler where
    importing the engine or the course fails."""
    imports, log = cluster_runs["scheduler"]
    assert imports == {name: f"{name} {NO_ENGINE_MESSAGE}" for name in PROJECT_MODULES}
    assert NO_ENGINE_MESSAGE not in log, log
    _, _, (_, _, report, errors) = cluster_runs["cluster"]
    assert "Graded 6 submissions with 2 Dask workers" in report, errors[-3000:]  # POISON
    assert "not graded on the cluster" not in report, report


def test_workers_without_the_course_s_configuration_or_of_another_course_are_named(
        cluster_runs):
    """A worker whose checkout lacks nbgrader_config.py; two of the stock course."""
    seconds, code, out, err = cluster_runs["refused"]["unfit workers"]
    assert code == 2 and seconds < 30, (out, err)
    assert err.startswith("autograde: Dask workers unfit to grade this course: tcp://"), err
    checkout = cluster_runs["unconfigured checkout"]
    assert f"cannot grade (NotConfigured: {checkout}/nbgrader_config.py does not call " \
        "nbconfine.configure" in err, err
    assert err.count("has another version of the course (not the instructor's: "
                     "course/normcheck.py, nbgrader_config.py)") == 2, err
    assert "its own copy of the course (the instructor's version), named by " \
        "NBCONFINE_COURSE" in err, err
    assert "Nothing was graded." in err and "Traceback" not in err, err


def test_a_notebook_mode_course_on_the_cluster_grades_as_a_local_run(cluster_runs):
    """The stock course's correct, blank, wrong, timed-out and dying submissions, and one
    with its data file edited: every cell's score, and the autograded notebooks (their
    data file read, plots, errors)."""
    local_scores, local_nbs, local_report = cluster_runs["notebook mode"]["local"]
    scores, nbs, (_, code, report, errors) = cluster_runs["notebook mode"]["cluster"]
    assert code == 0, errors[-3000:]
    assert set(local_nbs) == set(cluster_runs["notebook mode"]["students"])  # all graded
    assert f"Graded {len(local_nbs)} submissions with 2 Dask workers" in report, report
    noted = [{line for line in text.split("Problems found:")[1].splitlines()
              if line.split(":")[0].count("/") == 1} for text in (report, local_report)]
    assert noted[0] == noted[1], report  # of submissions (not the gradebook's new assignment)
    assert scores == local_scores
    scored = {student for (student, _), score in scores.items() if score}
    assert "correct" in scored and "blank" not in scored, scores
    assert {cell: score for (s, cell), score in scores.items() if s == EDITED_DATA} == \
        {cell: score for (s, cell), score in scores.items() if s == "correct"}
    assert nbs == local_nbs


def test_make_serve_on_the_cluster_returns_feedback_and_outlives_its_scheduler(tmp_path):
    """`make serve SCHEDULER=...` (root submits as the student root): a submission's
    feedback comes back; the scheduler killed, the next one waits, each round saying the
    scheduler cannot be reached (no traceback); the scheduler started again with a worker,
    the service connects again and returns that submission's feedback."""
    exchange = str(tmp_path / "exchange")
    feedback = os.path.join(exchange, COURSE_ID, "feedback")
    home = tmp_path / "home"
    with scratch_database(prefix="test_cluster_serve") as url:
        course = Course(str(tmp_path / "course"), env=dict(NBGRADER_ENV, NBGRADER_DB_URL=url))
        for name in ("Makefile", "requirements.txt"):
            shutil.copy2(os.path.join(REPO, name), course.root)
        done = subprocess.run([*MAKE, "release", "exchange", "publish", f"EXCHANGE={exchange}"],
                              cwd=course.root, env=course.env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        student = dict(course.env, HOME=str(home))
        where = ["normalization", "--course", COURSE_ID, f"--Exchange.root={exchange}"]
        home.mkdir()

        def nbgrader(step):  # as the student (root) runs it
            done = subprocess.run([sys.executable, "-m", "nbgrader", step, *where], cwd=home,
                                  env=student, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]

        nbgrader("fetch_assignment")
        demo.fill_in(str(home / "normalization" / "normalization.ipynb"),
                     demo.reference_answers("normalization"))

        def returned():
            return len(os.listdir(feedback)) if os.path.isdir(feedback) else 0

        cluster = Cluster(str(tmp_path / "dask"))
        log_path = tmp_path / "serve.log"
        try:
            cluster.add_workers(1)
            with open(log_path, "w") as log:
                service = subprocess.Popen(
                    [*MAKE, "serve", f"SCHEDULER={cluster.address}", f"EXCHANGE={exchange}"],
                    cwd=course.root, env=course.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)
            said = log_path.read_text
            wait_for(lambda: " Serving " in said() or service.poll() is not None, 120,
                     "the service to start")
            nbgrader("submit")
            wait_for(lambda: returned() == 1, 120, "the first submission's feedback")
            os.killpg(cluster.scheduler.pid, signal.SIGKILL)
            nbgrader("submit")
            wait_for(lambda: "cannot reach the Dask scheduler" in said(), 120,
                     "a round to find the scheduler gone")
            cluster.start_scheduler("scheduler-again")
            cluster.add_workers(1, wait=False)  # whether the first one comes back or not
            wait_for(lambda: returned() == 2 and said().count("feedback returned") == 2, 180,
                     "the second submission's feedback")
            log = said()  # before it is stopped (Dask may log its client's closing)
        finally:
            if "service" in locals() and service.poll() is None:
                os.killpg(service.pid, signal.SIGTERM)
                service.wait(timeout=120)
            cluster.stop()
    assert log.count("root/normalization: 35/35, feedback returned") == 2, log
    assert "Traceback" not in log, log
    assert f"A round failed (ClusterUnavailable: the Dask scheduler at {cluster.address} " \
        "stopped answering)" in log and "Connecting to the Dask scheduler at " in log, log
