"""What grading again needs from the gradebook: the assignments, quiet restores, hand grades kept.

- ``prepare_gradebook``: a gradebook without the course's assignments (a fresh clone:
  release/ is committed, so ``nbgrader generate_assignment`` never ran there) gets them
  from ``nbgrader generate_assignment`` into a scratch release folder, so release/ is
  never rewritten; it says if the committed release differs from what source/ generates.
- ``QuietOverwriteCells``: nbgrader restores every locked cell from the gradebook, which
  holds the instructor's version (SaveCells runs before ClearHiddenTests), and warns
  "checksum has changed" whenever the two differ, so for every hidden-test cell of every
  submission. An untouched cell, whose checksum is the release's, is restored quietly;
  an edited one is still reported.
- ``KeepHandGrades``: nbgrader's SaveAutoGrades flags every grade given by hand for review
  again on each autograde. A hand grade stays unflagged while what it graded is unchanged:
  the answer cell for a written answer, the autograder's score for a test cell.
"""
import os
import subprocess
import sys

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import OverwriteCells, SaveAutoGrades
from sqlalchemy import text

from nbconfine.layout import course_assignments

# Per grade: the content its hand grade applies to, the content and manual score seen
# by the last autograde.
HAND_GRADES = "nbconfine_hand_grade"
CREATE_HAND_GRADES = (f"CREATE TABLE IF NOT EXISTS {HAND_GRADES} (grade_id VARCHAR(32) "
                      "PRIMARY KEY, graded VARCHAR(32), last VARCHAR(32), score FLOAT)")
# For nbconfine.autograde's merge of a worker's gradebook copy (see STUDENT_ROWS there).
STUDENT_ROWS = [(HAND_GRADES, "grade_id IN (SELECT g.id FROM w.grade g JOIN "
                              "w.submitted_notebook n ON g.notebook_id = n.id JOIN "
                              "w.submitted_assignment a ON n.assignment_id = a.id "
                              "WHERE a.student_id IN ({s}))")]


def missing_assignments(db_url, notebooks):
    """Those of the assignments of ``notebooks`` ({assignment: its notebooks}) of which the
    gradebook lacks a notebook."""
    missing = []
    with Gradebook(db_url) as gb:
        for assignment, names in sorted(notebooks.items()):
            try:
                for name in names:
                    gb.find_notebook(name, assignment)
            except MissingEntry:
                missing.append(assignment)
    return missing


def cells(path):
    """(cell type, source, nbgrader metadata) of each cell of a notebook."""
    return [(c.cell_type, c.source, c.metadata.get("nbgrader"))
            for c in nbformat.read(path, as_version=4).cells]


def prepare_gradebook(root, db_url, assignments, scratch):
    """Put those of ``assignments`` the gradebook lacks in it, generated from source/ into
    the folder ``scratch`` (release/ is never rewritten); likewise generate those without a
    release/ folder. Returns (report lines, {assignment: its release folder}: release/'s,
    else the generated one)."""
    with Gradebook(db_url) as gb:
        gb.db.execute(text(CREATE_HAND_GRADES))
        gb.db.commit()
    notebooks = {a: names for a, names in course_assignments(root).items() if a in assignments}
    missing = missing_assignments(db_url, notebooks)
    notes, release_dirs = [], {}
    for assignment in sorted(assignments):
        committed = os.path.join(root, "release", assignment)
        release_dirs[assignment] = committed
        if assignment not in missing and os.path.isdir(committed):
            continue
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", "generate_assignment", assignment,
             "--force", "--log-level=ERROR", f"--CourseDirectory.release_directory={scratch}"],
            cwd=root, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(
                f"The gradebook lacks assignment {assignment} and `nbgrader "
                f"generate_assignment {assignment}` failed; fix source/{assignment} and "
                f"grade again.\n{done.stderr[-2000:]}")
        generated = os.path.join(scratch, assignment)
        for name in notebooks[assignment] if os.path.isdir(committed) else ():
            ours = os.path.join(committed, name + ".ipynb")
            if not os.path.exists(ours) or \
                    cells(ours) != cells(os.path.join(generated, name + ".ipynb")):
                notes.append(f"release/{assignment}/{name}.ipynb is not what source/ generates "
                             "(graded with the tests of source/); regenerate it: nbgrader "
                             f"generate_assignment {assignment}")
        if not os.path.isdir(committed):
            release_dirs[assignment] = generated
        if assignment in missing:
            notes.append(f"{assignment}: added to the gradebook from source/ "
                         "(nbgrader generate_assignment; release/ unchanged)")
    return notes, release_dirs


class QuietOverwriteCells(OverwriteCells):
    """OverwriteCells that restores untouched hidden-test cells without a warning."""

    def preprocess(self, nb, resources):
        course = self.config.CourseDirectory
        path = os.path.join(course.get("root", os.getcwd()),
                            course.get("release_directory", "release"),
                            resources["nbgrader"]["assignment"],
                            resources["nbgrader"]["notebook"] + ".ipynb")
        self.released = {}  # grade_id -> checksum of the cell as released
        if os.path.exists(path):
            for cell in nbformat.read(path, as_version=4).cells:
                meta = cell.metadata.get("nbgrader", {})
                if "grade_id" in meta and "checksum" in meta:
                    self.released[meta["grade_id"]] = meta["checksum"]
        return super().preprocess(nb, resources)

    def report_change(self, name, attr, old, new):
        if attr == "checksum" and self.released.get(name) == new:
            self.log.debug("Cell %s as released: its hidden tests restored", name)
        else:
            super().report_change(name, attr, old, new)


class KeepHandGrades(SaveAutoGrades):
    """SaveAutoGrades that keeps a hand grade unflagged while what it graded is unchanged.

    A hand grade applies to what the last autograde showed if it was given (or reviewed,
    which clears the flag in the Formgrader) since then; a resubmitted, changed answer is
    flagged until the grader looks at it again.
    """

    def preprocess(self, nb, resources):
        self.table_ready = False  # created on the first grade (plain `nbgrader autograde`)
        return super().preprocess(nb, resources)

    def _add_score(self, cell, resources):
        db = self.gradebook.db
        if not self.table_ready:
            db.execute(text(CREATE_HAND_GRADES))
            self.table_ready = True
        grade = self.gradebook.find_grade(cell.metadata["nbgrader"]["grade_id"],
                                          self.notebook_id, self.assignment_id,
                                          self.student_id)
        manual, flagged = grade.manual_score, grade.needs_manual_grade
        super()._add_score(cell, resources)
        content = (utils.compute_checksum(cell) if utils.is_solution(cell)
                   else f"auto {grade.auto_score}")
        row = db.execute(text(f"SELECT graded, last, score FROM {HAND_GRADES} "
                              "WHERE grade_id = :id"), {"id": grade.id}).first()
        graded = row.graded if row else None
        if manual is None:
            graded = None
        elif row and (manual != row.score or not flagged):
            graded = row.last  # graded or reviewed by hand since the last autograde
        if manual is not None and graded == content:
            grade.needs_manual_grade = False
        db.execute(text(f"DELETE FROM {HAND_GRADES} WHERE grade_id = :id"), {"id": grade.id})
        db.execute(text(f"INSERT INTO {HAND_GRADES} VALUES (:id, :graded, :last, :score)"),
                   {"id": grade.id, "graded": graded, "last": content, "score": manual})
        db.commit()
