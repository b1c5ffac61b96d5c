"""Instructor reports from a real gradebook (CSVs, distribution PNG); the roster import."""
import csv
import os
import re
import shutil
import sqlite3
import subprocess
import sys

from matplotlib.figure import Figure
from nbgrader.api import Gradebook
from PIL import Image

from conftest import REPO
from nbconfine import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WRITTEN = ("grades.csv", "grades_by_problem.csv", "grades_distribution.png")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_reports_from_the_gradebook(graded, tmp_path):
    os.chmod(tmp_path, 0o755)  # a course folder others may read
    report.write_reports(graded.scores(), str(tmp_path))

    totals = {(r["student"], r["assignment"]): (float(r["score"]), float(r["max_score"]))
              for r in read_csv(tmp_path / "grades.csv")}
    assert totals[("reference", "normalization")] == (35, 35)
    assert totals[("blank", "normalization")] == (0, 35)
    assert totals[("blank", "batchnorm")] == (0, 30)
    assert totals[("reference", "batchnorm")][1] == 30

    by_problem = read_csv(tmp_path / "grades_by_problem.csv")
    reference = {r["problem"]: r for r in by_problem
                 if r["student"] == "reference" and r["assignment"] == "normalization"}
    assert sorted(reference) == [f"p{k}" for k in range(1, 8)]
    assert all(float(r["score"]) == float(r["max_score"]) == 5 for r in reference.values())
    for (student, assignment), (score, max_score) in totals.items():
        rows = [r for r in by_problem if r["student"] == student
                and r["assignment"] == assignment]
        assert sum(float(r["max_score"]) for r in rows) == max_score
        assert sum(float(r["score"] or 0) for r in rows) == score  # "" = to grade by hand

    png = tmp_path / "grades_distribution.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) >= 300
    first = png.read_bytes()
    assert all(os.stat(tmp_path / name).st_mode & 0o004 for name in WRITTEN)
    os.chmod(tmp_path, 0o711)  # a course folder `make exchange` made private
    report.write_reports(graded.scores(), str(tmp_path))
    assert png.read_bytes() == first  # reproducible: no timestamp, same layout
    assert not any(os.stat(tmp_path / name).st_mode & 0o007 for name in WRITTEN)


def test_table_and_csv_from_any_gradebook_order_with_penalties_and_pending_code(graded,
                                                                                 tmp_path):
    """The graded course's gradebook with its grade rows stored backwards (as PostgreSQL
    may return them), a late penalty and a test cell waiting for a hand grade: columns
    in the notebooks' order, the penalty subtracted (as nbgrader export), the cell shown
    ? and its points counted as to grade by hand."""
    root = str(tmp_path / "course")
    shutil.copytree(graded.root, root, ignore=shutil.ignore_patterns(
        "submitted", "autograded", "feedback", "logs"))
    with sqlite3.connect(os.path.join(root, "gradebook.db")) as db:
        db.executescript("CREATE TEMP TABLE g AS SELECT * FROM grade ORDER BY rowid DESC; "
                         "DELETE FROM grade; INSERT INTO grade SELECT * FROM g;")
        db.execute("UPDATE submitted_notebook SET late_submission_penalty = 5 WHERE id IN "
                   "(SELECT n.id FROM submitted_notebook n JOIN submitted_assignment a ON "
                   "n.assignment_id = a.id JOIN assignment s ON a.assignment_id = s.id "
                   "WHERE a.student_id = 'reference' AND s.name = 'normalization')")
        db.execute("UPDATE grade SET auto_score = NULL, needs_manual_grade = 1 WHERE id IN "
                   "(SELECT g.id FROM grade g JOIN base_cell c ON g.cell_id = c.id JOIN "
                   "submitted_notebook n ON g.notebook_id = n.id JOIN submitted_assignment a "
                   "ON n.assignment_id = a.id WHERE a.student_id = 'reference' AND c.name "
                   "= 'bn_hidden_fc')")
    done = subprocess.run([sys.executable, "-m", "nbconfine", "grades"], cwd=root,
                          env=graded.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    header = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()
              if line.startswith(("normalization ", "batchnorm "))}
    assert header == {"normalization": [f"p{k}" for k in range(1, 8)] + ["total"],
                      "batchnorm": ["bn"] + [f"q{k}" for k in range(1, 7)] + ["total"]}
    assert re.search(r"^  reference +5 +5 +5 +5 +5 +5 +5  30/35 \(late: -5\)$", done.stdout,
                     re.M), done.stdout
    assert re.search(r"^  reference +\? +(\? +){6} 0/30$", done.stdout, re.M), done.stdout
    rows = {(r["student"], r["assignment"]): r
            for r in read_csv(tmp_path / "course" / "grades.csv")}
    assert [rows["reference", "normalization"][k] for k in ("score", "late_penalty")] == \
        ["30.0", "5.0"]
    assert float(rows["reference", "batchnorm"]["to_grade_by_hand"]) == 30
    assert float(rows["reference", "normalization"]["to_grade_by_hand"]) == 0
    problems = [r["problem"] for r in read_csv(tmp_path / "course" / "grades_by_problem.csv")
                if r["student"] == "blank" and r["assignment"] == "normalization"]
    assert problems == [f"p{k}" for k in range(1, 8)]


def test_histogram_panel_leaves_out_and_counts_ungraded_answers():
    ax = Figure().subplots()
    report.histogram(ax, "q1", [[None, 2.0], [2.0, 2.0], [0.0, 2.0], [2.0, 2.0]], 4)
    assert ax.get_title() == "q1 (1 to grade)"
    heights = [bar.get_height() for bar in ax.patches]
    assert sum(heights) == 3 and max(heights) == 2
    low, high = ax.get_xlim()
    assert low < 0 and 2 < high < 3


def test_roster_import_adds_the_students(graded):
    roster = os.path.join(REPO, "roster.example.csv")
    expected = {r["id"]: r for r in read_csv(roster)}
    assert {"demo-complete", "demo-blank", "demo-mistake"} < set(expected)
    done = graded.nbgrader("db", "student", "import", roster)
    try:
        assert done.returncode == 0, done.stderr
        with Gradebook(graded.db_url) as gb:
            students = {s.id: s for s in gb.students}
            assert set(expected) | {"reference", "blank"} <= set(students)
            for student_id, row in expected.items():
                student = students[student_id]
                assert (student.first_name, student.last_name, student.email) == \
                    (row["first_name"], row["last_name"], row["email"])
    finally:  # the gradebook is shared with the other tests: leave only its students
        with Gradebook(graded.db_url) as gb:
            for student in gb.students:
                if student.id in expected:
                    gb.remove_student(student.id)


def test_make_roster_explains_a_missing_file(tmp_path):
    missing = str(tmp_path / "missing.csv")
    done = subprocess.run(["make", "-o", ".venv/.installed", "roster", f"ROSTER={missing}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"no roster file '{missing}'" in done.stderr and "ROSTER=path.csv" in done.stderr


def test_the_table_widens_its_names_column_for_long_student_ids():
    """A student id longer than the names column's 20 characters (an email address, say):
    the column widens, so every score still sits under its problem."""
    table = {("firstname.lastname@university.example", "hw"): {"p1": [5.0, 5.0],
                                                               "p2": [0.0, 5.0]},
             ("bo", "hw"): {"p1": [1.0, 5.0], "p2": [2.0, 5.0]}}
    header, *rows = report.format_table(table).splitlines()
    assert len(rows) == 2
    for row in rows:
        assert len(row.rsplit("  ", 1)[0]) == len(header.rsplit("  ", 1)[0]), (header, row)
