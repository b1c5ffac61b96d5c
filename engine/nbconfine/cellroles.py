"""Cell roles come from the gradebook, never from the submission.

A learner who edits a cell's nbgrader metadata (an answer cell made a graded test cell
worth 1000 points, a test cell made a solution) would make nbgrader refuse the whole
notebook, so every problem would score zero. ``RestoreCellRoles`` runs among nbgrader's
sanitizing preprocessors, before ``OverwriteCells``: each cell the gradebook knows gets
its role flags and points back; the autograde precheck reports the change
(``changed_roles``). A graded test cell also loses the ``skip-execution`` tag: nbclient
(and so stock nbgrader) skips a cell so tagged, and a test cell never run keeps its points.
"""
from nbgrader.api import Gradebook, GradeCell, SolutionCell, SourceCell, TaskCell
from nbgrader.preprocessors import NbGraderPreprocessor

ROLE_KEYS = ("grade", "solution", "task", "points")
SKIP_TAG = "skip-execution"  # nbclient's skip_cells_with_tag


def roles_of(cells):
    """{grade_id: {flag: value}} of the cells' nbgrader role flags (points of graded
    cells only)."""
    roles = {}
    for cell in cells:
        meta = cell.metadata.get("nbgrader") or {}
        if meta.get("grade_id"):
            roles[meta["grade_id"]] = _role(meta)
    return roles


def _role(meta):
    role = {key: bool(meta.get(key)) for key in ("grade", "solution", "task")}
    if role["grade"] or role["task"]:
        role["points"] = float(meta.get("points") or 0)
    return role


def changed_roles(submitted_cells, expected):
    """grade_ids whose roles differ from ``expected`` (roles_of the release)."""
    return sorted(name for name, role in roles_of(submitted_cells).items()
                  if name in expected and role != expected[name])


class SourceRoles:
    """A notebook's cells as the gradebook holds them, read in five queries (nbgrader's
    relationships load each cell's row of its subclass table one by one): ``graded`` and
    ``tasks``, grade_id -> points; ``solutions``, grade_ids; ``source``, [(grade_id,
    cell type, locked, source)] in the notebook's order (nbgrader saves them in that order,
    and its OverwriteCells relies on it too). Raises MissingEntry for a notebook the
    gradebook lacks."""

    def __init__(self, gb, notebook, assignment):
        notebook_id = gb.find_notebook(notebook, assignment).id

        def rows(cell, *columns):
            return gb.db.query(*columns).filter(cell.notebook_id == notebook_id).all()
        self.graded = dict(rows(GradeCell, GradeCell.name, GradeCell.max_score))
        self.tasks = dict(rows(TaskCell, TaskCell.name, TaskCell.max_score))
        self.solutions = {name for name, in rows(SolutionCell, SolutionCell.name)}
        self.source = [tuple(row) for row in rows(
            SourceCell, SourceCell.name, SourceCell.cell_type, SourceCell.locked,
            SourceCell.source)]


class RestoreCellRoles(NbGraderPreprocessor):
    """Put back each known cell's grade / solution / task flags and points; graded test
    cells are run (no ``skip-execution`` tag)."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            cells = SourceRoles(gb, info["notebook"], info["assignment"])
        graded, tasks, solutions = cells.graded, cells.tasks, cells.solutions
        known = {name for name, *_ in cells.source} | set(tasks)
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader") or {}
            name = meta.get("grade_id")
            if name not in known:
                continue
            meta.update(grade=name in graded, solution=name in solutions)
            if name in tasks or "task" in meta:
                meta["task"] = name in tasks
            if name in graded or name in tasks:
                meta["points"] = graded.get(name, tasks.get(name))
            else:
                meta.pop("points", None)
            tags = cell.metadata.get("tags") or []
            if name in graded and name not in solutions and SKIP_TAG in tags:
                cell.metadata["tags"] = [tag for tag in tags if tag != SKIP_TAG]
        return nb, resources
