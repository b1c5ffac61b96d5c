"""Where a grading worker's time goes, stage by stage (``NBCONFINE_PROFILE=DIR``).

With ``NBCONFINE_PROFILE`` set to a folder, each grading worker (nbconfine.worker) times
the stages below while it grades and writes ``stages-<pid>.json`` there when it ends:
{"submissions": n, "seconds": wall time spent grading them, "stages": {stage: seconds},
"cpu": {stage: CPU seconds}} (CPU time does not grow when other work shares the machine).
A stage's time is exclusive: a gradebook query made while sanitizing counts as gradebook
time, not sanitizing time, so the stages add up to the grading time (what no stage claims
is "nbgrader's own work": its converter, exporter and the preprocessors not named here).
``tests/bench.py`` (``make bench``) adds the workers' files up into its breakdown. With
``NBCONFINE_CPROFILE`` set to a folder too, each worker also dumps a cProfile of its
grading there (``worker-<pid>.prof``, for ``python -m pstats``).

Each stage is a list of (module, attribute path) to wrap; the sandbox's own compute is
what the sandbox reports with each reply (nbconfine.remote), taken out of the round trip.
"""
import functools
import importlib
import json
import os
import time

PROFILE_ENV, CPROFILE_ENV = "NBCONFINE_PROFILE", "NBCONFINE_CPROFILE"
UNCLAIMED = "nbgrader's own work (converter, exporter, other preprocessors)"
SANDBOX_COMPUTE = "checks' compute in the sandbox (answers run, scenarios)"
ROUND_TRIPS = "sandbox round trips (pickling, sockets, waiting)"
STAGES = {
    "nbgrader sanitize and cell overwrite": [
        ("nbgrader.preprocessors", "ClearOutput.preprocess"),
        ("nbgrader.preprocessors", "DeduplicateIds.preprocess"),
        ("nbgrader.preprocessors", "OverwriteKernelspec.preprocess"),
        ("nbgrader.preprocessors", "OverwriteCells.preprocess"),
        ("nbgrader.preprocessors", "CheckCellMetadata.preprocess"),
        ("nbconfine.cellroles", "RestoreCellRoles.preprocess"),
        ("nbconfine.regrade", "QuietOverwriteCells.preprocess"),
    ],
    "gradebook reads and writes": [
        ("nbgrader.api", "Gradebook.__init__"),
        ("nbgrader.api", "Gradebook.close"),
        ("sqlalchemy.orm", "Session.execute"),
        ("sqlalchemy.orm", "Session.flush"),
        ("sqlalchemy.orm", "Session.commit"),
        ("sqlalchemy.orm", "Session.get"),
        ("nbconfine.regrade", "KeepHandGrades.preprocess"),
    ],
    "notebook reading, copying and writing": [
        ("nbformat", "read"), ("nbformat", "reads"),
        ("nbformat", "write"), ("nbformat", "writes"),
        ("nbformat.notebooknode", "NotebookNode.__deepcopy__"),
        ("nbconvert.writers", "FilesWriter.write"),
    ],
    "sandbox forks and kills": [
        ("nbconfine.sandbox", "Sandbox.__init__"),
        ("nbconfine.sandbox", "Sandbox.close"),
        ("nbconfine.sandbox", "Sandbox.kill"),
        ("nbconfine.sandbox", "Ahead.__init__"),
        ("nbconfine.sandbox", "Ahead.close"),
    ],
    ROUND_TRIPS: [
        ("nbconfine.remote", "ProblemSandbox.request"),
    ],
    "checks' compute in the grader (test cells)": [
        ("nbconfine.problems", "ProblemSession.run_grader_side"),
    ],
    "problem mode's own work (roles, own-work rule)": [
        ("nbconfine.problems", "ProblemExecute.preprocess"),
    ],
}


class StageClock:
    """Exclusive time per stage, wall and CPU (this thread's): entering a stage pauses
    the one it was entered from."""

    def __init__(self):
        self.wall, self.cpu = {}, {}  # stage -> seconds
        self.stack = []  # [stage, wall started, CPU started], innermost last

    def _add(self, stage, wall, cpu):
        self.wall[stage] = self.wall.get(stage, 0.0) + wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu

    def enter(self, stage):
        wall, cpu = time.perf_counter(), time.thread_time()
        if self.stack:
            outer = self.stack[-1]
            self._add(outer[0], wall - outer[1], cpu - outer[2])
        self.stack.append([stage, wall, cpu])

    def leave(self):
        wall, cpu = time.perf_counter(), time.thread_time()
        stage, wall_started, cpu_started = self.stack.pop()
        self._add(stage, wall - wall_started, cpu - cpu_started)
        if self.stack:
            self.stack[-1][1:] = [wall, cpu]

    def move(self, wall, cpu, source, target):
        """Count ``wall`` seconds already counted in ``source`` in ``target`` instead, and
        ``cpu`` seconds spent elsewhere (another process) in ``target``."""
        self._add(source, -wall, 0.0)
        self._add(target, wall, cpu)


CLOCK = None  # the worker's StageClock while profiling, else None


def _wrap(clock, owner, name, stage):
    if isinstance(owner, type):  # the method as defined, maybe by a base class
        original = next(k.__dict__[name] for k in owner.__mro__ if name in k.__dict__)
    else:
        original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        clock.enter(stage)
        try:
            return original(*args, **kwargs)
        finally:
            clock.leave()
    setattr(owner, name, timed)


def start():
    """Time the stages in this process if NBCONFINE_PROFILE is set; returns the Profile
    (or None)."""
    global CLOCK
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        return None
    CLOCK = StageClock()
    for stage, targets in STAGES.items():
        for module, path in targets:
            *owners, name = path.split(".")
            owner = importlib.import_module(module)
            for part in owners:
                owner = getattr(owner, part)
            _wrap(CLOCK, owner, name, stage)
    return Profile(folder, CLOCK)


def sandbox_seconds(seconds):
    """The sandbox reported computing for ``seconds`` ([wall, CPU]) of the round trip
    being timed."""
    if CLOCK is not None and type(seconds) is list and len(seconds) == 2 and \
            all(type(s) is float for s in seconds):
        CLOCK.move(*seconds, ROUND_TRIPS, SANDBOX_COMPUTE)


class Profile:
    """A worker's grading, timed submission by submission."""

    def __init__(self, folder, clock):
        self.folder, self.clock = folder, clock
        self.submissions, self.seconds = 0, 0.0
        self.cprofile = None
        if os.environ.get(CPROFILE_ENV):
            import cProfile
            self.cprofile = cProfile.Profile()

    def grade(self, function, *args):
        """``function(*args)``, timed as the grading of one submission."""
        if self.cprofile:
            self.cprofile.enable()
        self.clock.enter(UNCLAIMED)
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.submissions += 1
            self.clock.leave()
            if self.cprofile:
                self.cprofile.disable()

    def save(self):
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, f"stages-{os.getpid()}.json"), "w") as f:
            json.dump({"submissions": self.submissions, "seconds": self.seconds,
                       "stages": self.clock.wall, "cpu": self.clock.cpu}, f)
        if self.cprofile:
            self.cprofile.dump_stats(os.path.join(os.environ[CPROFILE_ENV],
                                                  f"worker-{os.getpid()}.prof"))
