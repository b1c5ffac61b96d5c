"""A grading worker: nbgrader's own ``Autograde``, one student at a time.

``nbconfine.autograde`` imports this module (nbgrader, and with ``load`` the course's
executor and what it imports: torch for problem mode) once, then
forks its workers: none pays the imports again, and two workers do not spend their
first seconds importing side by side. Each worker is handed one student (their
submissions) at a time, so all stay busy until the last one. A worker is configured as
``nbgrader autograde --force`` run in the course directory (nbgrader_config.py
included), reads the submissions from a staging copy, and writes its log to its own file.
"""
import importlib
import os
import sys
import traceback
import warnings

from nbgrader.apps.nbgraderapp import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.converters.base import NbGraderException

from nbconfine import stages, warm


def load(modules):
    """Import what grading imports (settings.executor_modules) before the fork."""
    for module in modules:
        importlib.import_module(module)


def serve(connection, root, staging, log_fd, env):
    """Grade each (student, [assignments]) received on ``connection``; answer each with
    {assignment: whether nbgrader graded it}. Returns when the connection closes."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.chdir(root)
    os.environ.update(env)
    warnings.simplefilter("ignore")  # SQLAlchemy's warnings about nbgrader's models: noise
    warm.install()
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


def grade(app, student, assignment):
    """Autograde one submission in the staging copy; True if nbgrader graded it."""
    app.coursedir.student_id = student
    app.coursedir.assignment_id = assignment
    try:
        Autograde(coursedir=app.coursedir, parent=app).start()
        return True
    except NbGraderException:
        return False  # nbgrader logged why
    except Exception:
        app.log.error("Could not grade %s/%s:\n%s", student, assignment,
                      traceback.format_exc())
        return False
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
