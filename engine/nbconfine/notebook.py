"""Notebook mode: every cell of a notebook in order in one confined sandbox, as nbgrader's
own Execute runs them in one kernel (being built: see the project's issue 16).

The zygote's "notebook" role (nbconfine.forkserver): ``prepare(spec)`` once in the zygote,
``confinement(setup, fds)`` the extra arguments of confine.confine for one sandbox,
``serve(sock, prepared, setup, fds)`` in the sandbox.
"""
from nbgrader.preprocessors import NbGraderPreprocessor


def prepare(spec):
    return None


def confinement(setup, fds):
    return {}


def serve(sock, prepared, setup, fds):
    raise NotImplementedError("notebook mode")


class NotebookExecute(NbGraderPreprocessor):
    """Run a notebook's cells in order in one confined sandbox."""

    def preprocess(self, nb, resources):
        raise NotImplementedError("nbconfine's notebook mode is not built yet; list this "
                                  "assignment in problem_mode")
