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
- ``record_zero``: zero for what nbgrader could not grade (``saved``: what it did grade).
"""
import os
import subprocess
import sys

import nbformat
from nbgrader import utils
from nbgrader.api import Comment, Grade, Gradebook, GradeCell, MissingEntry, SolutionCell
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells, SaveAutoGrades
from sqlalchemy import Column, Float, MetaData, String, Table, delete, insert, select, text

from nbconfine.layout import course_assignments

# Per grade: the content its hand grade applies to, the content and manual score seen
# by the last autograde.
HAND_GRADES = "nbconfine_hand_grade"
CREATE_HAND_GRADES = (f"CREATE TABLE IF NOT EXISTS {HAND_GRADES} (grade_id VARCHAR(32) "
                      "PRIMARY KEY, graded VARCHAR(32), last VARCHAR(32), score FLOAT)")
HAND_GRADE_TABLE = Table(HAND_GRADES, MetaData(), Column("grade_id", String(32), primary_key=True),
                         Column("graded", String(32)), Column("last", String(32)),
                         Column("score", Float))
# For nbconfine.autograde's merge of a worker's gradebook copy (see STUDENT_ROWS there).
STUDENT_ROWS = [(HAND_GRADES, "grade_id IN (SELECT g.id FROM w.grade g JOIN "
                              "w.submitted_notebook n ON g.notebook_id = n.id JOIN "
                              "w.submitted_assignment a ON n.assignment_id = a.id "
                              "WHERE a.student_id IN ({s}))")]
# Ids of the grades KeepHandGrades saved since nbconfine.worker cleared it: of a notebook
# nbgrader refuses halfway, those keep their scores (as stock nbgrader), the others zero.
saved = set()


def record_zero(db_url, submissions, notebooks=None):
    """Record zero for every graded cell of ``submissions`` [(student, assignment)] (of
    their ``notebooks``, names, if given) that could not be graded for what they hold, but
    those in ``saved``, so they show (and export) with zero; a score given by hand is
    kept."""
    with Gradebook(db_url) as gb:
        for student, assignment in submissions:
            gb.update_or_create_student(student)
            for notebook in gb.update_or_create_submission(assignment, student).notebooks:
                for grade in notebook.grades if notebooks is None or \
                        notebook.name in notebooks else ():
                    if grade.id not in saved:  # as nbgrader does for a missing notebook
                        grade.auto_score, grade.needs_manual_grade = 0, False
        gb.db.commit()


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
        self.cells_read = False
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        if not self.cells_read:  # the gradebook is open now: read the notebook's cells once
            self.gradebook = _NotebookCells(self.gradebook, self.notebook_id, self.assignment_id)
            self.cells_read = True
        return super().preprocess_cell(cell, resources, cell_index)

    def report_change(self, name, attr, old, new):
        if attr == "checksum" and self.released.get(name) == new:
            self.log.debug("Cell %s as released: its hidden tests restored", name)
        else:
            super().report_change(name, attr, old, new)


class _NotebookCells:
    """A Gradebook whose source and graded cells of one notebook are read in three queries,
    not two per cell (nbgrader's OverwriteCells looks each cell up); anything else, and
    a cell it does not hold, is asked of the gradebook."""

    def __init__(self, gradebook, notebook, assignment):
        self.gradebook, self.notebook, self.assignment = gradebook, notebook, assignment
        source = gradebook.find_notebook(notebook, assignment)
        self.source_cells = {c.name: c for c in source.source_cells}
        self.graded_cells = {c.name: c for c in source.task_cells}
        self.graded_cells.update({c.name: c for c in source.grade_cells})  # as nbgrader looks

    def find_source_cell(self, name, notebook, assignment):
        if (notebook, assignment) == (self.notebook, self.assignment) and \
                name in self.source_cells:
            return self.source_cells[name]
        return self.gradebook.find_source_cell(name, notebook, assignment)

    def find_graded_cell(self, name, notebook, assignment):
        if (notebook, assignment) == (self.notebook, self.assignment) and \
                name in self.graded_cells:
            return self.graded_cells[name]
        return self.gradebook.find_graded_cell(name, notebook, assignment)

    def __getattr__(self, name):
        return getattr(self.gradebook, name)


class KeepHandGrades(SaveAutoGrades):
    """SaveAutoGrades that keeps a hand grade unflagged while what it graded is unchanged.

    A hand grade applies to what the last autograde showed if it was given (or reviewed,
    which clears the flag in the Formgrader) since then; a resubmitted, changed answer is
    flagged until the grader looks at it again.

    nbgrader looks each grade and comment up and commits after each cell; here a
    notebook's grades, comments and hand-grade records are read in three queries and
    written in one transaction: the same rows. A cell nbgrader refuses (a result above its
    points) stops it, as nbgrader, keeping the cells graded before it (``saved``).
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info["student"], info["db_url"]
        self.gradebook = Gradebook(self.db_url)
        with self.gradebook:
            db = self.gradebook.db
            db.execute(text(CREATE_HAND_GRADES))
            submitted = self.gradebook.find_submission_notebook(
                self.notebook_id, self.assignment_id, self.student_id)
            self.grades = dict(db.query(GradeCell.name, Grade).join(
                Grade, Grade.cell_id == GradeCell.id).filter(Grade.notebook_id == submitted.id))
            self.comments = dict(db.query(SolutionCell.name, Comment).join(
                Comment, Comment.cell_id == SolutionCell.id).filter(
                Comment.notebook_id == submitted.id))
            ids = [grade.id for grade in self.grades.values()]
            self.hand_grades = {row.grade_id: row for row in db.execute(
                select(HAND_GRADE_TABLE).where(HAND_GRADE_TABLE.c.grade_id.in_(ids)))}
            self.hand_rows = []
            try:
                nb, resources = NbGraderPreprocessor.preprocess(self, nb, resources)  # each cell
            finally:
                if self.hand_rows:
                    db.execute(delete(HAND_GRADE_TABLE).where(HAND_GRADE_TABLE.c.grade_id.in_(
                        [row["grade_id"] for row in self.hand_rows])))
                    db.execute(insert(HAND_GRADE_TABLE), self.hand_rows)
                db.commit()
                saved.update(row["grade_id"] for row in self.hand_rows)
        return nb, resources

    def _add_score(self, cell, resources):
        name = cell.metadata["nbgrader"]["grade_id"]
        grade = self.grades.get(name) or self.gradebook.find_grade(
            name, self.notebook_id, self.assignment_id, self.student_id)
        manual, flagged = grade.manual_score, grade.needs_manual_grade
        grade.auto_score, _ = utils.determine_grade(cell, self.log)
        # as SaveAutoGrades: a score given by hand, or no automatic score, needs review
        grade.needs_manual_grade = manual is not None or grade.auto_score is None
        content = (utils.compute_checksum(cell) if utils.is_solution(cell)
                   else f"auto {grade.auto_score}")
        row = self.hand_grades.get(grade.id)
        graded = row.graded if row else None
        if manual is None:
            graded = None
        elif row and (manual != row.score or not flagged):
            graded = row.last  # graded or reviewed by hand since the last autograde
        if manual is not None and graded == content:
            grade.needs_manual_grade = False
        self.hand_rows.append({"grade_id": grade.id, "graded": graded, "last": content,
                               "score": manual})

    def _add_comment(self, cell, resources):
        name = cell.metadata["nbgrader"]["grade_id"]
        comment = self.comments.get(name) or self.gradebook.find_comment(
            name, self.notebook_id, self.assignment_id, self.student_id)
        unchanged = cell.metadata.nbgrader.get("checksum", None) == utils.compute_checksum(cell)
        comment.auto_comment = "No response." if unchanged and not utils.is_task(cell) else None
