"""``ConfinedExecute``: what replaces nbgrader's ``Execute`` in a course that uses nbconfine.

Each notebook is graded in notebook mode (nbconfine.notebook: every cell in order in one
confined sandbox, as nbgrader's Execute runs them in one kernel), or, for the assignments
the course names in ``c.Problems.assignments``, in problem mode (nbconfine.problems). Both
fork their sandboxes from one zygote (nbconfine.zygote), whose libraries
(``c.ConfinedExecute.preload``) are loaded once.
"""
from traitlets import List, Unicode, default

from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbconfine.layout import Problems


class ConfinedExecute(NbGraderPreprocessor):
    """Grade a notebook in notebook mode or, where the course says so, problem mode."""

    preload = List(Unicode(), help="Modules the sandboxes' zygote imports once (torch, "
                   "numpy, pandas, ...): a sandbox forked from it finds them loaded."
                   ).tag(config=True)

    # `nbgrader autograde --no-execute` turns nbgrader's Execute off: this one too
    @default("enabled")
    def _stock_enabled(self):
        return Execute(parent=self).enabled

    def preprocess(self, nb, resources):
        assignment = (resources.get("nbgrader") or {}).get("assignment")
        if assignment in Problems(parent=self).assignments:
            from nbconfine.problems import ProblemExecute as Executor
        else:
            from nbconfine.notebook import NotebookExecute as Executor
        return Executor(parent=self).preprocess(nb, resources)
