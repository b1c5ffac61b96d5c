"""Build submissions from the release: reference answers, blank, or chosen answers.

``python -m course.demo`` writes the demo students into ``submitted/``:
demo-complete (the reference answers), demo-blank (the untouched release) and
demo-mistake (reference answers but two classic mistakes from tests/catalog.py).
Other students' folders are never touched.
"""
import os
import re
import shutil
import sys

import nbformat
from nbconfine.layout import course_assignments

COURSE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A marker line, wherever it is (the last line of a cell has no newline).
SOLUTION_MARKER = re.compile(r"^[ \t]*(### (BEGIN|END) SOLUTION|#> .*)(\n|\Z)", re.M)
DEMO_MISTAKES = ("p1_unbiased_var", "p3_flipped_momentum", "bn_biased_moving_var")


def notebook_file(assignment, course_root=COURSE_ROOT):
    """The file name of the assignment's notebook (each assignment here has one)."""
    (name,) = course_assignments(course_root)[assignment]
    return name + ".ipynb"


def reference_answers(assignment, course_root=COURSE_ROOT):
    """grade_id -> source of every solution cell in the instructor notebook, markers and
    release stubs removed."""
    path = os.path.join(course_root, "source", assignment, notebook_file(assignment, course_root))
    answers = {}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            answers[meta["grade_id"]] = SOLUTION_MARKER.sub("", cell.source).rstrip()
    return answers


def build_submission(assignment, answers, student_dir, course_root=COURSE_ROOT):
    """Copy the release to ``student_dir``, replacing the named answer cells' sources.

    answers: grade_id -> cell source; the other cells stay as released.
    """
    release = os.path.join(course_root, "release", assignment)
    shutil.copytree(release, student_dir, dirs_exist_ok=True)
    path = os.path.join(student_dir, notebook_file(assignment, course_root))
    fill_in(path, answers)
    return path


def fill_in(path, answers):
    """Replace the sources of the named cells of the notebook at ``path``, as a student
    typing their answers would. answers: grade_id -> cell source."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    nbformat.write(nb, path)


def catalog_answers(names):
    """grade_id -> code of the named answers of tests/catalog.py."""
    sys.path.insert(0, os.path.join(COURSE_ROOT, "tests"))
    from catalog import MUTANTS, CORRECT
    by_name = {answer.name: answer for answer in MUTANTS + CORRECT}
    return {f"{by_name[name].problem}_answer": by_name[name].code for name in names}


def write_demo_submissions(submitted):
    """The three demo students, rebuilt from the current release."""
    mistakes = catalog_answers(DEMO_MISTAKES)
    for assignment in course_assignments(COURSE_ROOT):
        complete = reference_answers(assignment)
        for student, answers in (("demo-complete", complete), ("demo-blank", {}),
                                 ("demo-mistake", {**complete, **mistakes})):
            folder = os.path.join(submitted, student, assignment)
            shutil.rmtree(folder, ignore_errors=True)
            build_submission(assignment, answers, folder)


if __name__ == "__main__":
    write_demo_submissions(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(COURSE_ROOT, "submitted"))
