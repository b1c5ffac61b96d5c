"""nbgrader's exchange between an instructor and a student, each their own Unix user;
hand grades through a re-grade; demo submissions as a student hands them in."""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import ASSIGNMENTS, MANUAL_SCORE
from coursedir import COURSE_ID, exchange_course, instructor_tests
import unixuser
from course import demo
from nbconfine.exchange import REMEMBERED, SERVER_ROOT, default_root

MISTAKE = "bn_biased_moving_var"  # tests/catalog.py: loses the moving-variance points
# Run as the student: the paths of argv[1] (a JSON list) they could open to write
# (argv[2] "W") or to read ("R"; a folder: list).
ACCESSIBLE = """
import json, os, sys
mode = {"W": os.W_OK, "R": os.R_OK}[sys.argv[2]]
print(json.dumps([p for p in json.load(open(sys.argv[1])) if os.access(p, mode)]))
"""
# Run as the instructor: grade two written answers of `tampered` by hand (as the
# Formgrader's API stores a score).
HAND_GRADE = """
import sys
from nbgrader.api import Gradebook
with Gradebook(sys.argv[1]) as gb:
    for grade_id in ("q1_answer", "q2_answer"):
        gb.find_grade(grade_id, "batchnorm", "batchnorm", "tampered").manual_score = 1.5
    gb.db.commit()
"""


def test_demo_submissions_hold_no_solution_markers(tmp_path):
    demo.write_demo_submissions(str(tmp_path))
    for assignment, name in ASSIGNMENTS.items():
        nb = nbformat.read(tmp_path / "demo-complete" / assignment / name, as_version=4)
        text = "\n".join(cell.source for cell in nb.cells)
        assert "SOLUTION" not in text and not re.search(r"^\s*#> ", text, re.M), assignment


def test_exchange_root_defaults(monkeypatch, tmp_path):
    """NBGRADER_EXCHANGE, else the root `make exchange` made last, else the default."""
    (tmp_path / REMEMBERED).write_text("/srv/made\n")
    monkeypatch.setenv("NBGRADER_EXCHANGE", str(tmp_path / "x"))
    assert default_root(str(tmp_path)) == str(tmp_path / "x")
    monkeypatch.delenv("NBGRADER_EXCHANGE")
    assert default_root(str(tmp_path)) == "/srv/made"
    server = os.geteuid() == 0 or os.path.isdir(SERVER_ROOT)
    assert default_root("/any/course") == (SERVER_ROOT if server else "/any/nbgrader-exchange")


def test_hand_grade_survives_regrading_unflagged(parallel_courses, parallel_runs):
    """conftest grades q1 by hand between two autograde runs of the same submissions."""
    _, regraded = parallel_courses
    with Gradebook(regraded.db_url) as gb:
        q1 = gb.find_grade("q1_answer", "batchnorm", "batchnorm", "par-reference")
        q2 = gb.find_grade("q2_answer", "batchnorm", "batchnorm", "par-reference")
        assert (q1.manual_score, q1.needs_manual_grade) == (MANUAL_SCORE, False)
        assert (q2.manual_score, q2.needs_manual_grade) == (None, True)  # still to grade


@pytest.fixture
def users():
    with unixuser.users("instr", "stud") as made:
        yield made


def hidden_test_id(assignment):
    """A test cell of the assignment with hidden tests (from the instructor's notebook)."""
    return next(grade_id for grade_id, _, hidden in instructor_tests(assignment) if hidden)


def test_round_trip_between_an_instructor_and_a_student(users):
    instructor, student = users
    with exchange_course(instructor) as (course, scratch, make):
        exchange = os.path.join(scratch, "exchange")
        said = instructor.run(*make, "exchange", "publish", cwd=course)
        assert f"--course {COURSE_ID} --Exchange.root={exchange}" in said
        assert os.stat(exchange).st_mode & 0o7777 == 0o1777

        # The student: fetch both, fill in one with the reference answers and a mistake.
        where = ["--course", COURSE_ID, f"--Exchange.root={exchange}"]
        for assignment in ASSIGNMENTS:
            student.nbgrader("fetch_assignment", assignment, *where)
        notebook = os.path.join(student.home, "batchnorm", "batchnorm.ipynb")
        demo.fill_in(notebook, {**demo.reference_answers("batchnorm"),
                                **demo.catalog_answers([MISTAKE])})  # as they would type
        validated = student.nbgrader("validate", notebook)
        assert "Success!" not in validated and "failed" in validated.lower(), validated
        student.nbgrader("submit", "batchnorm", *where)

        # The instructor: collect, autograde (with a tampered copy), feedback, return.
        instructor.run(*make, "collect", cwd=course)
        submitted = os.path.join(course, "submitted", student.name, "batchnorm")
        tampered = os.path.join(course, "submitted", "tampered", "batchnorm")
        shutil.copytree(submitted, tampered)
        edited = hidden_test_id("batchnorm")
        nb = nbformat.read(os.path.join(tampered, "batchnorm.ipynb"), 4)
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == edited:
                cell.source += "\npass  # edited"
        nbformat.write(nb, os.path.join(tampered, "batchnorm.ipynb"))
        subprocess.run(["chown", "-R", f"{instructor.name}:",
                        os.path.dirname(tampered)], check=True)
        report = instructor.run(sys.executable, "-m", "nbconfine", "autograde", "--jobs", "1",
                                cwd=course)
        assert "batchnorm: added to the gradebook" in report, report
        assert f"tampered/batchnorm: test cells edited, restored from the gradebook: " \
               f"{edited}" in report, report
        log = open(os.path.join(course, "autograded", "logs", "worker-0.log")).read()
        changed = re.findall(r"Attribute 'checksum' for cell (\S+) has changed", log)
        assert changed == [edited], changed  # the untouched cells restored quietly
        instructor.nbgrader("generate_feedback", "batchnorm", f"--student={student.name}",
                            cwd=course)
        instructor.run(*make, "return", cwd=course)

        # The student fetches the feedback: it is the instructor's, with the right scores.
        student.nbgrader("fetch_feedback", "batchnorm", *where)
        fetched = [os.path.join(base, name) for base, _, names
                   in os.walk(os.path.join(student.home, "batchnorm", "feedback"))
                   for name in names if name == "batchnorm.html"]
        assert len(fetched) == 1, fetched
        html = open(fetched[0]).read()
        assert html == open(os.path.join(course, "feedback", student.name, "batchnorm",
                                         "batchnorm.html")).read()
        with Gradebook("sqlite:///" + os.path.join(course, "gradebook.db")) as gb:
            submission = gb.find_submission_notebook("batchnorm", "batchnorm", student.name)
            auto = sum(g.auto_score or 0 for g in submission.grades)
            full = sum(g.max_score for g in submission.grades if g.auto_score is not None)
            total = sum(g.max_score for g in submission.grades)
            lost = {g.name for g in submission.grades
                    if g.auto_score is not None and g.auto_score < g.max_score}
        assert 0 < auto < full and lost and all(name.startswith("bn_") for name in lost)
        out_of = "|".join(f"{points:g}" for points in (full, total))  # written ones or not
        assert re.search(rf"\b{auto:g}(\.0)?\s*/\s*({out_of})\b", html), (auto, out_of)

        check_exchange_permissions(student, exchange)
        check_the_course_is_private(instructor, student, course)
        check_regrading_keeps_hand_grades(instructor, course, tampered)


def check_regrading_keeps_hand_grades(instructor, course, submission):
    """q1 and q2 graded by hand, then q1's answer changed (resubmitted) and graded again:
    q2 keeps its grade unflagged, q1 keeps it but is flagged for review."""
    db_url = "sqlite:///" + os.path.join(course, "gradebook.db")
    instructor.run(sys.executable, "-c", HAND_GRADE, db_url)
    path = os.path.join(submission, "batchnorm.ipynb")
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q1_answer":
            cell.source += " Resubmitted with more detail."
    nbformat.write(nb, path)
    instructor.run(sys.executable, "-m", "nbconfine", "autograde", "--jobs", "1",
                   "--students", "tampered", cwd=course)
    with Gradebook(db_url) as gb:
        flags = {grade_id: (grade.manual_score, grade.needs_manual_grade)
                 for grade_id in ("q1_answer", "q2_answer", "q3_answer")
                 for grade in [gb.find_grade(grade_id, "batchnorm", "batchnorm", "tampered")]}
    assert flags == {"q1_answer": (1.5, True), "q2_answer": (1.5, False),
                     "q3_answer": (None, True)}, flags


def accessible(student, paths, mode):
    """The ``paths`` the student can open to write (``mode`` "W") or to read ("R")."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(paths, f)
    try:
        os.chmod(f.name, 0o644)
        return set(json.loads(student.run(sys.executable, "-c", ACCESSIBLE, f.name, mode)))
    finally:
        os.remove(f.name)


def check_the_course_is_private(instructor, student, course):
    """After `make exchange`, a student reads nothing of the instructor's course folder:
    not the solutions, the gradebook, another's submission or feedback; made after it
    too (autograded/, the gradebook's rows). Even with a home open to all (a server's
    default), as the course folder a clone makes is."""
    os.chmod(instructor.home, 0o755)
    paths = [os.path.join(base, name) for base, dirs, files in os.walk(course)
             for name in dirs + files]
    assert any(p.endswith(os.path.join("source", "batchnorm", "batchnorm.ipynb")) for p in paths)
    assert accessible(student, paths + [course], "R") == set()


def check_exchange_permissions(student, exchange):
    """Nothing in the exchange is writable by the student but their own submission,
    the inbound drop box (which they cannot list) and the root (nbgrader requires it,
    sticky: no one removes another's files)."""
    course = os.path.join(exchange, COURSE_ID)
    paths = [os.path.join(base, name) for base, dirs, files in os.walk(exchange)
             for name in dirs + files] + [exchange]
    writable = accessible(student, paths, "W")
    inbound = os.path.join(course, "inbound")
    own = [p for p in paths if p.startswith(os.path.join(inbound, student.name + "+"))]
    assert own and all(pwd.getpwuid(os.stat(p).st_uid).pw_name == student.name
                       for p in own if os.path.isfile(p))
    assert writable == {exchange, inbound, *own}, sorted(writable - {exchange, inbound, *own})
    assert os.stat(inbound).st_mode & 0o7777 == 0o2733
