"""Problem mode: an nbgrader preprocessor that grades each problem in its own sandbox.

nbgrader's own ``Execute`` runs learners' cells and test cells in one kernel, so an
answer can patch what the tests rely on, and one ``os._exit`` loses the notebook.
``ProblemExecute``, which a course switches on for some assignments
(``nbconfine.configure(c, problem_mode=[...], ...)``; nbconfine.execute picks it), grades
each problem on its own:

- the learner's cells for that problem (its answer cells and any cells the learner
  added before its tests) run in a fresh sandbox forked from a zygote (nbconfine.remote);
- the problem's test cells and locked instructor cells run in the grader, in a pristine
  namespace where the learner's names are proxies to the sandbox;
- a timeout, crash or forbidden name or operator (the checks module's) costs that
  problem only.

What a cell is, and the code of every instructor cell, come from the gradebook, never
from the submission. Which problem a cell belongs to is the course's configuration
(``c.Problems.pattern``, nbconfine.layout); the cells of ``c.Problems.shared`` run on both
sides before every problem, wherever the submission has them; locked instructor cells
missing from a submission are put back, and moved ones run in the source's order.
"""
import ast
import builtins
import contextlib
import functools
import io
import os
import re
import time
import warnings

import nbformat
import torch
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, Unicode

from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor
from nbconfine import confine, faults, reach, settings, warm, zygote
from nbconfine.cellroles import SourceRoles
from nbconfine.layout import Problems
from nbconfine.remote import AnswerFault, LearnerError, ProblemSandbox, Remote, load_checks

# Tests use small tensors; one thread each for grader and sandbox keeps two cores busy
# without the thread pools spinning against each other.
torch.set_num_threads(1)
BUILTIN_NAMES = frozenset(dir(builtins))

def grade_id(cell):
    return (cell.metadata.get("nbgrader") or {}).get("grade_id")


def _grade_id_order(path):
    """{grade_id: its place} in the notebook at ``path``; empty if it cannot be read."""
    try:
        return _grade_id_order_of(path, os.stat(path).st_mtime_ns)
    except (OSError, ValueError):
        return {}


@functools.lru_cache(maxsize=16)  # every submission of an assignment reads the same notebook
def _grade_id_order_of(path, mtime):
    names = [(cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
             for cell in nbformat.read(path, as_version=4).cells]
    return {name: place for place, name in enumerate(names) if name}


class CellKinds:
    """What each grade_id is, and the instructor's code for the cells learners may not edit.

    ``kinds``: grade_id -> "setup", "answer", "test" or "instructor";
    ``sources``: grade_id -> source, for every kind but "answer", in the source's order.
    """

    def __init__(self, kinds, sources, problems):
        self.kinds, self.sources, self.problems = kinds, sources, problems

    @classmethod
    def from_gradebook(cls, db_url, notebook, assignment, problems, source_path=""):
        """From the gradebook; the cells in the order of the instructor's notebook at
        ``source_path`` when it can be read (a database returns rows in no set order:
        PostgreSQL's change after an update), else in the gradebook's."""
        with Gradebook(db_url) as gb:
            cells = SourceRoles(gb, notebook, assignment)
        order = _grade_id_order(source_path)
        rows = sorted(cells.source, key=lambda row: order.get(row[0], len(order)))
        return cls.of([(name, name in cells.solutions, name in cells.graded, locked, source)
                       for name, cell_type, locked, source in rows
                       if cell_type == "code"], problems)

    @classmethod
    def from_notebook(cls, nb, problems):
        """The instructor's own notebook describes itself (used outside nbgrader)."""
        cells = []
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader") or {}
            if cell.cell_type == "code" and meta.get("grade_id"):
                cells.append((meta["grade_id"], meta.get("solution"), meta.get("grade"),
                              meta.get("locked"), cell.source))
        return cls.of(cells, problems)

    @classmethod
    def of(cls, cells, problems):
        """From (grade_id, is solution, is graded, is locked, source) of code cells and the
        course's ``Problems``."""
        kinds, sources = {}, {}
        for name, solution, graded, locked, source in cells:
            kind = ("answer" if solution else "setup" if name in problems.shared else
                    "test" if graded else "instructor" if locked else None)
            if kind:
                kinds[name] = kind
            if kind and kind != "answer":
                sources[name] = source
        return cls(kinds, sources, problems)

    def role(self, cell):
        """(role, problem) of a submitted cell: unknown code cells are the learner's."""
        if cell.cell_type != "code":
            return None, None
        name = grade_id(cell)
        kind = self.kinds.get(name)
        if kind is None:
            return "learner", None
        return kind, None if kind == "setup" else self.problems.of(name)

    def restore(self, nb):
        """Put the instructor's code back in its cells, missing ones back in place, and the
        instructor's cells in the source's order."""
        present = {grade_id(c) for c in nb.cells}
        for cell in nb.cells:
            if grade_id(cell) in self.sources:
                cell.source = self.sources[grade_id(cell)]
        for name, kind in self.kinds.items():
            if kind in ("setup", "instructor") and name not in present:
                problem = self.problems.of(name)
                at = 0 if kind == "setup" else next(
                    (i for i, c in enumerate(nb.cells) if grade_id(c)
                     and self.problems.of(grade_id(c)) == problem
                     and self.kinds.get(grade_id(c)) == "test"), len(nb.cells))
                restored = NotebookNode(cell_type="code", source=self.sources[name], outputs=[],
                                        execution_count=None, metadata={"nbgrader": {
                                            "grade_id": name, "locked": True, "grade": False,
                                            "solution": False, "schema_version": 3}})
                nb.cells.insert(at, restored)
        # A problem's tests see what its instructor cells bound before them in the source
        # (seed tests moved last would leave them to the learner's functions of those
        # names): the shared cells, and each problem's, take the places they hold in the
        # submission in the source's order (the shared cells run first: ProblemExecute).
        rank = {name: i for i, name in enumerate(self.sources)}
        groups = {}
        for place, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and grade_id(cell) in rank:
                groups.setdefault(self.role(cell)[1], []).append(place)  # None: shared
        for places in groups.values():
            ordered = sorted((nb.cells[i] for i in places), key=lambda c: rank[grade_id(c)])
            for place, cell in zip(places, ordered):
                nb.cells[place] = cell


def forbidden_names(sources, roots, forbidden):
    """Names matching ``forbidden`` (a compiled regular expression) that the code ``roots``
    lead to uses (see nbconfine.reach): imports; bare names that neither the learner's
    top-level code nor the function, class or comprehension they are read in binds (so
    torch's function, not a local variable, parameter or loop variable of that name); and
    attributes of anything but the learner's own objects (an imported module, an alias of
    one, a name the learner's code does not bind such as ``torch``: not ``self`` nor
    another parameter, local variable or result)."""
    reached, defined = reach.reachable(sources, roots)
    found = set()
    for statement in reached:
        for node, scopes in reach.scoped_nodes(statement):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and \
                    forbidden.match(node.attr) and not _learners_own(node.value, scopes, defined):
                found.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                    forbidden.match(node.id) and reach.binding(node.id, scopes, defined) is None:
                found.add(node.id)
            elif isinstance(node, ast.alias) and forbidden.match(node.name.split(".")[-1]):
                found.add(node.name)
    return found


def _learners_own(base, scopes, defined):
    """Whether the object an attribute is read from is one the learner's code made: the
    name it starts from is bound there, other than by an import or an alias."""
    while isinstance(base, (ast.Attribute, ast.Call, ast.Subscript)):
        base = base.func if isinstance(base, ast.Call) else base.value
    how = reach.binding(base.id, scopes, defined) if isinstance(base, ast.Name) else None
    return bool(how) and not how & {reach.IMPORTED, reach.ALIAS}


@functools.lru_cache(maxsize=256)  # every submission runs the same instructor cells
def _compiled(source, filename):
    return compile(source, filename, "exec")


def error_output(ename, evalue):
    """An error output that shows the message only, never the test's source."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


def stream_output(text):
    return NotebookNode(output_type="stream", name="stdout", text=text)


class ProblemSession:
    """A sandbox and a grader namespace for one problem."""

    def __init__(self, zygote, timeout, memory_bytes, ahead=None):
        self.zygote = zygote
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.sandbox = ProblemSandbox(zygote, memory_bytes, ahead)
        self.replay = []  # (name, source) of learner-side cells run so far
        self.namespace = {"__name__": "__main__"}
        self.learner_names = []
        self.bound = {}  # name -> the Remote bound for it in the namespace
        self.ops = set()  # aten operators the learner's code ran for the tests
        self.fault = None  # why this problem's answer cannot be graded further
        self.lost = False  # an earlier sandbox of this session died with its zygote

    def _start_cell(self):
        self.sandbox.deadline = time.monotonic() + self.timeout

    def run_learner_side(self, name, source):
        """Run a cell in the sandbox; returns the reply. Raises AnswerFault."""
        self._start_cell()
        reply = self.sandbox.request("exec", name, source)
        self.replay.append((name, source))
        self.learner_names = reply["names"]  # also when the cell raised after a def
        return reply

    @property
    def zygote_lost(self):
        """Whether a sandbox of this problem died with its zygote (the grader's fault)."""
        return self.lost or self.sandbox.zygote_lost

    def restart(self):
        """A fresh sandbox with every learner-side cell run so far run again."""
        self.ops |= self.sandbox.ops
        self.lost = self.zygote_lost
        self.sandbox.close()
        self.sandbox = ProblemSandbox(self.zygote, self.memory_bytes)
        replay, self.replay = self.replay, []
        for name, source in replay:
            self.run_learner_side(name, source)

    def _bind_learner_names(self):
        for name, remote in list(self.bound.items()):
            if self.namespace.get(name) is not remote:
                del self.bound[name]  # grader code rebound it: it is the grader's now
        for name in self.learner_names:
            if name in BUILTIN_NAMES or name.startswith("_"):
                continue  # `range = ...` in an answer must not reach the tests
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
                exec(_compiled(source, f"<{name}>"), self.namespace)
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
        self.ops |= self.sandbox.ops
        self.sandbox.close()


def _shared_first(roles, last):
    """Indices of the cells a problem's grading runs, in the order it runs them: the shared
    cells first, wherever the submission has them (the problem's names come from them),
    then the others up to ``last`` in the notebook's order."""
    shared = [i for i, (role, _) in enumerate(roles) if role == "setup"]
    return shared + [i for i in range(last + 1) if roles[i][0] != "setup"]


# In a grading worker (nbconfine.warm.grading_worker), which grades notebook after notebook,
# the first problem's sandbox of the next notebook is asked for while the last problem of
# one is graded, as each problem's is during the one before; it waits here, unused and
# confined (one at a time), and ends with the worker.
_next_notebook = None  # ((zygote, memory bytes), Ahead)


def _kept_for(shared, memory_bytes):
    """The sandbox asked for this notebook's first problem, if one was, for the same
    zygote and memory allowance; None otherwise."""
    global _next_notebook
    kept, _next_notebook = _next_notebook, None
    if kept and kept[0] == (shared, memory_bytes):
        return kept[1]
    if kept:
        kept[1].close()
    return None


def _keep_for_next(shared, memory_bytes, ahead):
    """Keep ``ahead`` (forked by ``shared``) for the next notebook's first problem."""
    global _next_notebook
    _next_notebook = ((shared, memory_bytes), ahead)


class ProblemExecute(NbGraderPreprocessor):
    """Autograde problem by problem in sandboxes (replaces nbgrader's Execute)."""

    timeout = Integer(10, help="Seconds one cell (an answer or a test) may run.").tag(config=True)
    memory_limit = Integer(4 * 2**30, help="Bytes of memory a sandbox may add to the zygote's."
                           ).tag(config=True)
    checks = Unicode("", help="Path of the course's checks module: what test cells import, "
                     "and the hooks of nbconfine.remote (scenarios run where the answer "
                     "lives, operators recorded, names an answer must not reach)."
                     ).tag(config=True)

    def preprocess(self, nb, resources):
        shared = zygote.shared(settings.zygote_spec(self.config))
        # `nbgrader autograde` run directly refuses weak sandboxes as nbconfine.autograde does
        confine.check(shared.confinement, os.environ.get("UNCONFINED") == "1")
        self.checks_module = load_checks(self.checks) if self.checks else None
        grouping = Problems(parent=self)
        info = resources.get("nbgrader")
        kinds = (CellKinds.from_gradebook(info["db_url"], info["notebook"], info["assignment"],
                                          grouping, self._source_path(info))
                 if info else CellKinds.from_notebook(nb, grouping))
        kinds.restore(nb)
        roles = [kinds.role(cell) for cell in nb.cells]
        problems = list(dict.fromkeys(p for role, p in roles if role == "test"))
        recorded = set()  # cells whose outputs are already in the notebook
        broken = set()  # learner-added cells that killed their sandbox: skipped after
        self.problem_seconds = {}
        # the next problem's sandbox, forked while one is graded
        self.ahead = _kept_for(shared, self.memory_limit)
        more_notebooks = warm.grading_worker()
        try:
            for number, problem in enumerate(problems, 1):
                start = time.monotonic()
                last = max(i for i, (_, p) in enumerate(roles) if p == problem)
                session = self._grade_problem_once_more_if_lost(
                    nb, roles, problem, last, shared, recorded, broken,
                    number < len(problems) or more_notebooks)
                self._enforce_own_work(nb, roles, problem, session)
                self.problem_seconds[problem] = time.monotonic() - start
                self.log.info("Graded %s in %.2f s", problem, self.problem_seconds[problem])
        finally:
            if self.ahead and more_notebooks:
                _keep_for_next(shared, self.memory_limit, self.ahead)
            elif self.ahead:
                self.ahead.close()
        return nb, resources

    def _source_path(self, info):
        """The instructor's notebook of the one graded (nbgrader's source folder)."""
        course = self.config.CourseDirectory
        return os.path.join(course.get("root") or os.getcwd(),
                            course.get("source_directory") or "source", info["assignment"],
                            info["notebook"] + ".ipynb")

    def _session(self, shared, more):
        """A problem's session, in the sandbox forked ahead if there is one; if ``more``
        problems follow (in this notebook, or in the next one a grading worker grades),
        the next one's sandbox is asked for now: the zygote forks it, and it confines
        itself (and rehearses, where a processor is idle: nbconfine.remote), while this
        problem is graded (each problem still gets a fresh sandbox of its own; outside
        grading workers, none waits beyond the notebook)."""
        ahead, self.ahead = self.ahead, None
        session = ProblemSession(shared, self.timeout, self.memory_limit, ahead)
        if more:
            self.ahead = ProblemSandbox.ahead(shared, self.memory_limit,
                                              rehearse=warm.idle_processor())
        return session

    def _grade_problem_once_more_if_lost(self, nb, roles, problem, last, shared, recorded,
                                         broken, more):
        """Grade ``problem`` (``more``: other problems follow); graded again, from
        scratch, if its zygote died meanwhile (a fault of the grader); a second loss
        stands, as a crash does. Returns the session."""
        before = set(recorded), set(broken)
        for attempt in (1, 2):
            session = self._session(shared, more)
            try:
                self._grade_problem(nb, roles, problem, last, session, recorded, broken)
            finally:
                session.close()
            if not session.zygote_lost:
                return session
            if attempt == 1:
                faults.note(f"{problem}: its sandbox died with the sandbox zygote; graded again")
                recorded.intersection_update(before[0])
                broken.intersection_update(before[1])
        faults.note(f"{problem}: its sandbox died with the sandbox zygote twice; it is "
                    "graded as a crash (its tests fail from there on)")
        return session

    def _grade_problem(self, nb, roles, problem, last, session, recorded, broken):
        for index in _shared_first(roles, last):
            (role, owner), cell = roles[index], nb.cells[index]
            name = grade_id(cell) or f"cell {index + 1}"
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
        """Zero a problem whose answer reaches a name or runs an operator the checks module
        forbids."""
        checks = self.checks_module
        if not hasattr(checks, "FORBIDDEN_MESSAGE"):
            return
        last = max(i for i, (_, owner) in enumerate(roles) if owner == problem)
        learner_side, grader_side = [], []  # the code run in the sandbox; in the grader
        for index in _shared_first(roles, last):
            (role, owner), cell = roles[index], nb.cells[index]
            if role == "learner" or (role == "answer" and owner == problem):
                learner_side.append(cell.source)
            elif role == "setup" or (role in ("test", "instructor") and owner == problem):
                grader_side.append(cell.source)
        # what the tests take from the learner: the names they read and do not bind first
        tests = reach.names_read_unbound(tuple(grader_side))
        forbidden = getattr(checks, "FORBIDDEN_NAME", None)
        named = forbidden_names(learner_side, tests, re.compile(forbidden)) if forbidden else set()
        ran = set(checks.forbidden_ops(session.ops)) if hasattr(checks, "forbidden_ops") else set()
        if not (named or ran):
            return
        message = checks.FORBIDDEN_MESSAGE.format(", ".join(sorted(named | ran)))
        ename = getattr(checks, "FORBIDDEN_ERROR", "ForbiddenOperation")
        for (role, owner), cell in zip(roles, nb.cells):
            if role == "test" and owner == problem:
                cell.outputs = [error_output(ename, f"{problem}: {message}")]
