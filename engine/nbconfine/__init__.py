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

def configure(c, preload=(), timeout=None, memory_limit=None, problem_mode=(), problems="",
              shared=(), checks="", problem_timeout=None):
    """Configure nbgrader (the ``c`` of nbgrader_config.py) to grade with nbconfine.

    Every notebook runs in notebook mode: its cells in order in one confined sandbox, as
    nbgrader's own Execute runs them in one kernel, with the same scores cell for cell.

    preload: modules the sandboxes' zygote imports once (``["numpy", "pandas"]``): a
        sandbox forked from it finds them loaded.
    timeout: seconds a notebook-mode cell may run (default: the course's
        ``c.Execute.timeout``, as stock nbgrader's; its ``c.Execute.error_on_timeout``
        too);
        memory_limit: bytes a sandbox may add to the zygote's (default 4 GiB).
    problem_mode: assignments graded problem by problem instead (nbconfine.problems): each
        problem in its own sandbox, its tests in the grader where an answer cannot patch
        them. For those:
    problems: a regular expression with one group, searched in grade_ids, naming a cell's
        problem (``r"^([^_]+)_"``: q3_hidden_edge_cases is in q3); the report and the
        feedback group their cells by it.
    shared: grade_ids of locked cells every problem needs (imports).
    checks: path of the course's checks module (see nbconfine.remote).
    problem_timeout: seconds a problem-mode cell may run (default 10).
    """
    from nbconfine import exchange
    root = c.CourseDirectory.get("root") or os.getcwd()
    if "db_url" not in c.CourseDirectory:
        c.CourseDirectory.db_url = os.environ.get(
            "NBGRADER_DB_URL", "sqlite:///" + os.path.join(root, "gradebook.db"))
    if "root" not in c.Exchange:
        c.Exchange.root = exchange.default_root(root)
    # nbgrader's collect follows links out of a submission its student can still change:
    # the Formgrader's and `nbgrader collect`'s too copy without (nbconfine.handback)
    if "collect" not in c.ExchangeFactory:
        c.ExchangeFactory.collect = "nbconfine.handback.NoFollowCollect"
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
        "nbconfine.execute.ConfinedExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbconfine.regrade.KeepHandGrades",  # SaveAutoGrades, hand grades left unflagged
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]
    # nbconvert validates the notebook after each of these preprocessors (a dozen times per
    # submission); its own option validates once, after the last, and catches the same.
    c.Exporter.optimistic_validation = True
    c.ConfinedExecute.preload = list(preload)
    if timeout is not None:
        c.NotebookExecute.timeout = timeout
    if memory_limit is not None:
        c.NotebookExecute.memory_limit = c.ProblemExecute.memory_limit = memory_limit
    c.Problems.assignments = list(problem_mode)
    c.Problems.pattern = problems
    c.Problems.shared = list(shared)
    if checks:
        c.ProblemExecute.checks = os.path.abspath(os.path.join(root, checks))
    if problem_timeout is not None:
        c.ProblemExecute.timeout = problem_timeout

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
