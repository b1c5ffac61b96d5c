"""nbgrader configuration of the normalization-layers course (run nbgrader from here)."""
import os
import sys

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, COURSE_ROOT)  # the grading package, normgrade
from normgrade import exchange  # noqa: E402

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = exchange.COURSE_ID
# The exchange students fetch from and submit to: NBGRADER_EXCHANGE, else see
# normgrade/exchange.py (`make exchange` creates it).
c.Exchange.root = exchange.default_root(COURSE_ROOT)
c.CourseDirectory.db_url = os.environ.get(
    "NBGRADER_DB_URL", "sqlite:///" + os.path.join(COURSE_ROOT, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".DS_Store"]

# A solution region becomes its `#> ` placeholder lines (seed 004's style, see
# normgrade/stubs.py) or else a no-op stub, so the untouched release runs.
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "normgrade.stubs.ClearSolutionsWithStubs",
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

# Cell roles and points come from the gradebook (normgrade/cellroles.py), before
# nbgrader's own checks: one tampered cell must not fail the whole notebook. OverwriteCells
# is quiet about untouched hidden-test cells (normgrade/regrade.py).
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "normgrade.cellroles.RestoreCellRoles",
    "normgrade.regrade.QuietOverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Answers run in sandboxes and tests in the grader, problem by problem: see
# normgrade/execute.py. Classes are named as strings so only autograde imports torch.
c.Autograde.autograde_preprocessors = [
    "normgrade.execute.SandboxExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "normgrade.regrade.KeepHandGrades",  # SaveAutoGrades, hand grades left unflagged
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.SandboxExecute.timeout = int(os.environ.get("NORMGRADE_CELL_TIMEOUT", "10"))
if sys.argv[1:2] == ["autograde"]:  # the zygote imports torch while nbgrader loads
    from normgrade import zygote
    zygote.shared()
c.OverwriteCells.add_missing_cells = True

# Feedback a student can read (normgrade/feedback.py); the Formgrader's MathJax is served
# locally (the template dirs also override its page's MathJax macro).
from normgrade import feedback  # noqa: E402

c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "normgrade.feedback.ReadableFeedback",
    "normgrade.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.HTMLExporter.template_name = feedback.TEMPLATE
c.GenerateFeedback.HTMLExporter.extra_template_paths = feedback.TEMPLATE_PATHS
c.GenerateFeedback.HTMLExporter.embed_images = True  # only the .html travels to students
c.HTMLExporter.extra_template_basedirs = feedback.TEMPLATE_BASEDIRS
