"""An nbgrader preprocessor that autogrades without trusting the learner's kernel.

nbgrader's own ``Execute`` runs learners' cells and test cells in one kernel, so an
answer can patch what the tests rely on, and one ``os._exit`` loses the notebook.
``SandboxExecute`` grades each problem on its own:

- the learner's cells for that problem (its answer cells and any cells the learner
  added before its tests) run in a fresh sandbox forked from a zygote (normgrade.sandbox);
- the problem's test cells and locked instructor cells run in the grader, in a pristine
  namespace where the learner's names are proxies to the sandbox;
- a timeout, crash or forbidden normalization layer costs that problem only.

Cells are told apart by their nbgrader metadata; a grade_id's prefix before the first
``_`` names its problem (``p3_running_eval`` belongs to ``p3``); ``setup`` cells run on
both sides.
"""
import ast
import atexit
import contextlib
import io
import re
import sys
import time
import warnings

import torch
from nbformat.notebooknode import NotebookNode
from traitlets import Integer

from nbgrader.preprocessors import NbGraderPreprocessor
from normgrade import normcheck
from normgrade.sandbox import AnswerFault, LearnerError, Remote, Sandbox, Zygote

sys.modules.setdefault("normcheck", normcheck)
# Tests use small tensors; one thread each for grader and sandbox keeps two cores busy
# without the thread pools spinning against each other.
torch.set_num_threads(1)

# Names through which an answer reaches torch's own normalization.
FORBIDDEN_NAME = re.compile(
    r"^(BatchNorm[123]d|LazyBatchNorm[123]d|SyncBatchNorm|LayerNorm|GroupNorm|"
    r"InstanceNorm[123]d|LazyInstanceNorm[123]d|(batch|layer|group|instance|rms)_norm|"
    r"_?native_(batch|layer|group)_norm\w*|_batch_norm_impl_index|cudnn_batch_norm|"
    r"miopen_batch_norm|aten)$")

_zygote = None


def shared_zygote(memory_bytes):
    """One zygote per grading process, started on first use."""
    global _zygote
    if _zygote is None:
        _zygote = Zygote(memory_bytes)
        atexit.register(_zygote.close)
    return _zygote


def cell_role(cell):
    """(role, problem) of a cell: role is setup, answer, test, instructor or learner."""
    if cell.cell_type != "code":
        return None, None
    meta = cell.metadata.get("nbgrader", {})
    grade_id = meta.get("grade_id")
    if not grade_id:
        return "learner", None
    if grade_id == "setup":
        return "setup", None
    problem = grade_id.split("_")[0]
    if meta.get("solution"):
        return "answer", problem
    if meta.get("grade"):
        return "test", problem
    if meta.get("locked"):
        return "instructor", problem
    return "learner", None


def forbidden_names(source):
    """Names of torch's normalization that ``source`` uses (attributes and imports)."""
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and FORBIDDEN_NAME.match(node.attr):
            found.add(node.attr)
        elif isinstance(node, ast.alias) and FORBIDDEN_NAME.match(node.name.split(".")[-1]):
            found.add(node.name)
    return found


def error_output(ename, evalue):
    """An error output that shows the message only, never the test's source."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def stream_output(text):
    return NotebookNode(output_type="stream", name="stdout", text=text)


class ProblemSession:
    """A sandbox and a grader namespace for one problem."""

    def __init__(self, zygote, timeout):
        self.zygote = zygote
        self.timeout = timeout
        self.sandbox = Sandbox(zygote)
        self.replay = []  # (name, source) of learner-side cells run so far
        self.namespace = {"__name__": "__main__"}
        self.learner_names = []
        self.bound = {}  # name -> the Remote bound for it in the namespace
        self.forbidden = set()
        self.fault = None  # why this problem's answer cannot be graded further

    def _start_cell(self):
        self.sandbox.deadline = time.monotonic() + self.timeout

    def run_learner_side(self, name, source):
        """Run a cell in the sandbox; returns the reply. Raises AnswerFault."""
        self._start_cell()
        reply = self.sandbox.request("exec", name, source)
        self.replay.append((name, source))
        if not reply["error"]:
            self.learner_names = self.sandbox.decode(reply["value"])
        return reply

    def restart(self):
        """A fresh sandbox with every learner-side cell run so far run again."""
        self.forbidden |= self.sandbox.forbidden
        self.sandbox.close()
        self.sandbox = Sandbox(self.zygote)
        replay, self.replay = self.replay, []
        for name, source in replay:
            self.run_learner_side(name, source)

    def _bind_learner_names(self):
        for name, remote in list(self.bound.items()):
            if self.namespace.get(name) is not remote:
                del self.bound[name]  # grader code rebound it: it is the grader's now
        for name in self.learner_names:
            if name not in self.namespace or name in self.bound:
                remote = Remote(self.sandbox, ("global", name), name)
                self.namespace[name] = self.bound[name] = remote

    def run_grader_side(self, name, source):
        """Run instructor code in the grader namespace; returns the cell's outputs."""
        self._bind_learner_names()
        self._start_cell()
        printed = io.StringIO()
        outputs = []
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if self.fault:
                    raise AnswerFault(self.fault)
                exec(compile(source, f"<{name}>", "exec"), self.namespace)
            except AnswerFault as fault:
                self.fault = str(fault)
                outputs.append(error_output("AnswerFault", f"your answer {fault}"))
            except LearnerError as exc:
                outputs.append(error_output("AnswerError", f"your code raised {exc}"))
            except Exception as exc:
                outputs.append(error_output(type(exc).__name__, str(exc)))
        if printed.getvalue():
            outputs.insert(0, stream_output(printed.getvalue()))
        return outputs

    def close(self):
        self.forbidden |= self.sandbox.forbidden
        self.sandbox.close()


class SandboxExecute(NbGraderPreprocessor):
    """Autograde problem by problem in sandboxes (replaces nbgrader's Execute)."""

    timeout = Integer(10, help="Seconds one cell (an answer or a test) may run.").tag(config=True)
    memory_limit = Integer(4 * 2**30, help="Bytes of memory a sandbox may add to the zygote's."
                           ).tag(config=True)

    def preprocess(self, nb, resources):
        zygote = shared_zygote(self.memory_limit)
        roles = [cell_role(cell) for cell in nb.cells]
        problems = list(dict.fromkeys(p for role, p in roles if role == "test"))
        recorded = set()  # cells whose outputs are already in the notebook
        broken = set()  # learner-added cells that killed their sandbox: skipped after
        self.problem_seconds = {}
        for problem in problems:
            start = time.monotonic()
            last = max(i for i, (_, p) in enumerate(roles) if p == problem)
            session = ProblemSession(zygote, self.timeout)
            try:
                self._grade_problem(nb, roles, problem, last, session, recorded, broken)
            finally:
                session.close()
            self._enforce_own_work(nb, roles, problem, session)
            self.problem_seconds[problem] = time.monotonic() - start
            self.log.info("Graded %s in %.2f s", problem, self.problem_seconds[problem])
        return nb, resources

    def _grade_problem(self, nb, roles, problem, last, session, recorded, broken):
        for index, ((role, owner), cell) in enumerate(zip(roles[:last + 1], nb.cells)):
            name = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index + 1}")
            if role == "setup":
                session.run_grader_side(name, cell.source)
            if role in ("setup", "learner") or (role == "answer" and owner == problem):
                if index in broken or session.fault:
                    continue
                outputs = self._run_learner_cell(session, name, cell.source, role, index, broken)
            elif role in ("test", "instructor") and owner == problem:
                outputs = session.run_grader_side(name, cell.source)
            else:
                continue
            if index not in recorded:
                cell.outputs = outputs
                recorded.add(index)

    def _run_learner_cell(self, session, name, source, role, index, broken):
        try:
            reply = session.run_learner_side(name, source)
        except AnswerFault as fault:
            if role != "learner":
                session.fault = f"cell {name} {fault}"
                return [error_output("AnswerFault", f"this cell {fault}")]
            broken.add(index)
            session.restart()
            return [error_output("AnswerFault", f"this cell {fault}; it was skipped when "
                                                 "grading the problems after it")]
        outputs = []
        text = reply["stdout"] + reply["stderr"]
        if text:
            outputs.append(stream_output(text))
        if reply["error"]:
            error = reply["error"]
            outputs.append(NotebookNode(output_type="error", ename=error["ename"],
                                        evalue=error["evalue"], traceback=error["traceback"]))
        return outputs

    def _enforce_own_work(self, nb, roles, problem, session):
        """Zero a problem whose answer uses torch's own normalization."""
        named = set()
        for (role, owner), cell in zip(roles, nb.cells):
            if role == "answer" and owner == problem:
                named |= forbidden_names(cell.source)
        if not (named or session.forbidden):
            return
        how = ", ".join(sorted(named | session.forbidden))
        message = (f"{problem} uses torch's own normalization ({how}); this problem asks "
                   "you to write it yourself, so it scores zero.")
        for (role, owner), cell in zip(roles, nb.cells):
            if role == "test" and owner == problem:
                cell.outputs = [error_output("ForbiddenNormalization", message)]
