"""A grading worker: nbgrader's own ``Autograde``, one student at a time.

``nbconfine.autograde`` imports this module (nbgrader, and with ``load`` the course's
executor and what it imports: torch for problem mode) once, then
forks its workers: none pays the imports again, and two workers do not spend their
first seconds importing side by side. Each worker is handed one student (their
submissions) at a time, so all stay busy until the last one. A worker is configured as
``nbgrader autograde --force`` run in the course directory (nbgrader_config.py
included), reads the submissions from a staging copy, and writes its log to its own file.

Each submission ends in one of three ways (``grade``): graded; refused by nbgrader
(something in the submission: what nbgrader did not grade of it scores zero, what it
graded is kept, as stock nbgrader keeps it); or not graded for the grader's own
reasons (nbconfine.faults: it is left ungraded, never zeroed). A submission whose
gradebook database went away is graded again once the database answers.
"""
import contextlib
import importlib
import os
import sys
import time
import traceback
import warnings

from nbgrader.apps.nbgraderapp import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from nbconfine import confine, faults, regrade, stages, warm, zygote
from nbconfine.faults import FAULT, GRADED, REFUSED

DATABASE_WAIT = 120  # seconds a worker waits for the gradebook's database to answer again
DATABASE_TRIES = 3  # gradings of one submission whose database connection failed


def load(modules):
    """Import what grading imports (settings.executor_modules) before the fork."""
    for module in modules:
        importlib.import_module(module)


def become_worker(wrapper):
    """First thing in a worker forked from ``wrapper``: named (ps shows nbc-worker) and
    killed when the wrapper dies, so that a killed run leaves no grading behind."""
    zygote.name_process(zygote.WORKER_NAME)
    confine.end_with_parent(wrapper)


def serve(connection, root, staging, log_fd, env, idle_processor=False):
    """Grade each (student, [assignments]) received on ``connection``; answer each with
    {assignment: (outcome, why, notes)} (see ``grade``). Returns when the connection
    closes. ``idle_processor``: fewer workers than processors (nbconfine.warm)."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.chdir(root)
    os.environ.update(env)
    warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's models: noise
    warm.install(idle_processor)
    cli = NbGraderApp.instance()
    cli.initialize(["autograde", "--force", "--log-level=INFO",
                    f"--CourseDirectory.submitted_directory={staging}"])
    app = cli.subapp
    profile = stages.start()  # NBCONFINE_PROFILE: where the time goes
    while True:
        try:
            student, assignments = connection.recv()
        except EOFError:
            if profile:
                profile.save()
            return
        connection.send({assignment: profile.grade(grade, app, student, assignment)
                         if profile else grade(app, student, assignment)
                         for assignment in assignments})


class FaultAwareAutograde(Autograde):
    """nbgrader's Autograde, which remembers a fault of the grading machine (a lost
    database, a full disk, a zygote that cannot be restarted) where nbgrader turns every
    exception into "could not grade", and the notebooks it graded (``graded``: None until
    the submission is set up)."""

    graded = None

    def init_assignment(self, assignment_id, student_id):
        with faults.classified():
            super().init_assignment(assignment_id, student_id)
        self.graded = []

    def convert_single_notebook(self, notebook_filename):
        with faults.classified():
            super().convert_single_notebook(notebook_filename)
        self.graded.append(notebook_name(notebook_filename))


def notebook_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def grade(app, student, assignment):
    """Autograde one submission in the staging copy: (outcome, why, notes), outcome
    GRADED, REFUSED (nbgrader refused it, it logged why; ``why`` names what, and what it
    did not grade is given zero) or FAULT (the grader's own reasons, said by ``why``);
    ``notes``: events the report names."""
    notes, attempt = [], 1
    while True:
        faults.take()
        regrade.saved.clear()
        converter = run_autograde(app, student, assignment)
        events, fault = faults.take()
        notes += events
        if fault is None and converter is None:
            return GRADED, "", notes
        if fault is None:
            return REFUSED, zero_ungraded(app, converter, student, assignment), notes
        kind, why = fault
        app.log.error("Not graded, a fault of the grader: %s", why)
        if kind != faults.DATABASE or attempt == DATABASE_TRIES:
            return FAULT, why, notes
        waited = wait_for_database(app.coursedir.db_url)
        if waited is None:
            return FAULT, f"{why}; it did not answer again within {DATABASE_WAIT} s", notes
        notes.append(f"{why}; graded again once it answered ({waited:.0f} s later)")
        attempt += 1


def run_autograde(app, student, assignment):
    """nbgrader's autograde of one submission; None if nbgrader graded it, else its
    FaultAwareAutograde."""
    app.coursedir.student_id = student
    app.coursedir.assignment_id = assignment
    converter = FaultAwareAutograde(coursedir=app.coursedir, parent=app)
    try:
        converter.start()
        return None
    except NbGraderException:
        return converter  # nbgrader logged why
    except Exception as exc:
        app.log.error("Could not grade %s/%s:\n%s", student, assignment,
                      traceback.format_exc())
        faults.record(exc)
        return converter
    finally:
        with contextlib.suppress(OSError):  # a full disk under the log: said elsewhere
            sys.stdout.flush()
            sys.stderr.flush()


def zero_ungraded(app, converter, student, assignment):
    """Zero for what nbgrader did not grade of a submission it refused: all of it if it
    could not set it up; else the notebook it stopped at (but the cells it graded before
    stopping) and those after it, never reached. Returns the report's words."""
    left = [name for name in map(notebook_name, converter.notebooks or ())
            if name not in (converter.graded or ())]
    if converter.graded is None or not left:
        regrade.record_zero(app.coursedir.db_url, [(student, assignment)])
        return "nbgrader could not grade it; it scores zero"
    regrade.record_zero(app.coursedir.db_url, [(student, assignment)], left)
    after = f" (nor, after it, {', '.join(n + '.ipynb' for n in left[1:])})" \
        if left[1:] else ""
    return (f"nbgrader could not grade {left[0]}.ipynb{after}; what it did not grade "
            "there scores zero")


def wait_for_database(url, seconds=DATABASE_WAIT):
    """Seconds until the gradebook's database answers a query, or None after ``seconds``."""
    from sqlalchemy import create_engine, text
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return time.monotonic() - start
        except Exception:
            time.sleep(1)
        finally:
            engine.dispose()
    return None

