"""nbconfine: confined, parallel autograding for nbgrader courses.

A course's ``nbgrader_config.py`` switches it on with one call (see ``configure``):

    c = get_config()
    import nbconfine
    nbconfine.configure(c)   # notebook mode: nbgrader's semantics, each notebook confined

Then ``nbgrader autograde`` grades in sandboxes, and ``nbconfine autograde`` grades every
submission with parallel workers or on a Dask cluster (``nbconfine --help``).
"""
import os
import sys

# jsonschema imports rfc3987_syntax, when installed, to check "iri" strings; building its
# grammar costs a second of every grading process's start, and no notebook schema uses it.
sys.modules.setdefault("rfc3987_syntax", None)

MODES = {"notebook": "nbconfine.notebook.NotebookExecute",
         "problem": "nbconfine.problems.ProblemExecute"}


def configure(c, mode="notebook", problems="", shared=(), checks="", preload=(),
              timeout=None, memory_limit=None):
    """Configure nbgrader (the ``c`` of nbgrader_config.py) to grade with nbconfine.

    mode: ``"notebook"`` (the default) runs every cell of a notebook in order in one
        confined sandbox, as nbgrader's own Execute runs them in one kernel: the same
        scores cell for cell. ``"problem"`` grades each problem in its own sandbox, with
        the tests in the grader where an answer cannot patch them (nbconfine.problems).
    problems: a regular expression with one group, searched in grade_ids, naming a cell's
        problem (``r"^([^_]+)_"``: p3_running_stats_eval is in p3); the report, the
        feedback and problem mode group cells by it. Empty: each graded cell on its own.
    shared: grade_ids of locked cells every problem needs (problem mode).
    checks: path of the course's checks module (problem mode; see nbconfine.remote).
    preload: modules the sandboxes' zygote imports once (``["torch"]``, ``["numpy",
        "pandas"]``): a sandbox forked from it finds them loaded.
    timeout: seconds a cell may run (default 10 in problem mode, 30 as nbgrader in
        notebook mode); memory_limit: bytes a sandbox may add (default 4 GiB).
    """
    if mode not in MODES:
        raise ValueError(f"nbconfine.configure: mode must be one of {', '.join(MODES)}")
    from nbconfine import exchange
    root = c.CourseDirectory.get("root") or os.getcwd()
    if "db_url" not in c.CourseDirectory:
        c.CourseDirectory.db_url = os.environ.get(
            "NBGRADER_DB_URL", "sqlite:///" + os.path.join(root, "gradebook.db"))
    if "root" not in c.Exchange:
        c.Exchange.root = exchange.default_root(root)
    # Cell roles and points come from the gradebook (nbconfine.cellroles), before
    # nbgrader's own checks: one tampered cell must not fail the whole notebook.
    # OverwriteCells is quiet about untouched hidden-test cells (nbconfine.regrade).
    c.Autograde.sanitize_preprocessors = [
        "nbgrader.preprocessors.ClearOutput",
        "nbgrader.preprocessors.DeduplicateIds",
        "nbgrader.preprocessors.OverwriteKernelspec",
        "nbconfine.cellroles.RestoreCellRoles",
        "nbconfine.regrade.QuietOverwriteCells",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    # Named as strings: only autograde imports what the sandboxes need.
    c.Autograde.autograde_preprocessors = [
        MODES[mode],
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbconfine.regrade.KeepHandGrades",  # SaveAutoGrades, hand grades left unflagged
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    c.Problems.pattern = problems
    c.Problems.shared = list(shared)
    execute = c[MODES[mode].rsplit(".", 1)[1]]
    execute.preload = list(preload)
    if checks:
        c.ProblemExecute.checks = os.path.abspath(os.path.join(root, checks))
    if timeout is not None:
        execute.timeout = timeout
    if memory_limit is not None:
        execute.memory_limit = memory_limit

    # Feedback a student can read (nbconfine.feedback); the Formgrader's MathJax is served
    # locally (the template dirs also override its page's MathJax macro).
    from nbconfine import feedback
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "nbconfine.feedback.ReadableFeedback",
        "nbconfine.feedback.HideHiddenTests",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    c.GenerateFeedback.HTMLExporter.template_name = feedback.TEMPLATE
    c.GenerateFeedback.HTMLExporter.extra_template_paths = feedback.TEMPLATE_PATHS
    c.GenerateFeedback.HTMLExporter.embed_images = True  # only the .html travels to students
    c.HTMLExporter.extra_template_basedirs = feedback.TEMPLATE_BASEDIRS

    if _is_nbgrader_autograde():  # the zygote loads its libraries while nbgrader loads
        from nbconfine import settings, zygote
        zygote.shared(settings.zygote_spec(c))


def _is_nbgrader_autograde():
    """Whether this process is `nbgrader autograde` (or `python -m nbgrader autograde`)."""
    program = sys.argv[0]
    if os.path.basename(program) == "__main__.py":
        program = os.path.dirname(program)
    return os.path.basename(program) == "nbgrader" and sys.argv[1:2] == ["autograde"]
