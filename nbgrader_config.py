"""nbgrader configuration of the normalization-layers course (run nbgrader from here).

The course is a plugin of the grading engine, nbconfine (engine/): its notebooks are in
source/, its Python (the checks, the release stubs, the demo answers, the figures) in
course/, and its settings here.
"""
import os
import sys

import nbconfine

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, COURSE_ROOT)  # the course's package, course/

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = "normalization-layers"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".DS_Store"]

# A solution region becomes its `#> ` placeholder lines (seed 004's style, see
# course/stubs.py) or else a no-op stub, so the untouched release runs.
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "course.stubs.ClearSolutionsWithStubs",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.ClearSolutionsWithStubs.code_stub = {"python": "pass  # YOUR CODE HERE"}
c.ClearSolutionsWithStubs.text_stub = "YOUR ANSWER HERE"
# A test cell deleted from a submission is put back and graded.
c.OverwriteCells.add_missing_cells = True

# Both assignments are graded in problem mode: each problem (the grade_id's prefix before
# the first "_": p3 for p3_running_stats_eval) in its own sandbox, its tests in the grader,
# where an answer cannot patch them. The `setup` cell (imports) runs before every problem.
# The checks module is what test cells import as `normcheck`; it also names what an answer
# must not use (torch's own normalization). An assignment not listed here is graded as
# nbgrader grades it (notebook mode), confined.
nbconfine.configure(
    c, preload=["torch"], problem_mode=["normalization", "batchnorm"],
    problems=r"^([^_]+)_", shared=["setup"],
    checks=os.path.join(COURSE_ROOT, "course", "normcheck.py"),
    problem_timeout=int(os.environ.get("NORMGRADE_CELL_TIMEOUT", "10")))
