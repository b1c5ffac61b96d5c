"""Notebook mode: every cell of a notebook in order in one confined sandbox, as nbgrader's
own Execute runs them in one kernel, with the same outputs, hence the same scores.

``NotebookExecute`` (picked by nbconfine.execute for every assignment not in
``c.Problems.assignments``) forks one sandbox from the zygote (nbconfine.kernel: an
IPython shell prepared once, so no kernel starts) and sends it the notebook's code cells
one by one, skipping the blank ones and those tagged ``skip-execution`` as nbclient does
(but graded test cells, whose tag nbconfine.cellroles removes);
each cell's outputs and execution count are what a kernel would have given.

- The sandbox works in a copy of the notebook's folder (the autograded folder nbgrader
  prepared: the student's files and the assignment's other files from source/), in a
  size-limited root of its own where only the Python directories and the system's
  programs are readable (nbconfine.confine.Files). After the last cell the regular files
  it wrote there are copied into the notebook's folder (``keep_written``), as a kernel
  working there leaves them; the rest vanishes with it.
- A cell still running after ``timeout`` seconds is interrupted (SIGINT: a
  KeyboardInterrupt in the cell, as nbclient interrupts a kernel), gets nbgrader's
  ``error_on_timeout`` error, and the next cell runs in the same namespace.
- A sandbox that dies (os._exit, a crash, running out of memory) or does not stop within
  ``interrupt_grace`` seconds of the interrupt is where stock nbgrader gives up on the
  whole notebook (its kernel is dead: the submission is not graded). Here that cell gets
  an error saying so, and the cells after it run in a new sandbox, after the cells run
  so far (but those that failed this way or timed out) are run again there, their
  outputs unchanged; after ``max_restarts`` new sandboxes the remaining cells are not
  run (an error says why).
"""
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import tempfile
import time

import nbformat
from traitlets import Dict, Float, Integer, default

from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbconfine import confine, faults, settings, wire, zygote
from nbconfine.cellroles import SKIP_TAG
from nbconfine.sandbox import MAX_REPLY, TIMED_OUT, AnswerFault, Sandbox, _parent_of

# What stock nbgrader sets for the kernel it starts (Autograde: NBGRADER_EXECUTION=autograde)
KERNEL_ENV = ("NBGRADER_EXECUTION",)
REPLY_SECONDS = 120  # for a reply that has begun to arrive
# What nbclient puts in the notebook's metadata from an ipykernel's kernel_info
LANGUAGE_INFO = {"name": "python", "version": platform.python_version(),
                 "mimetype": "text/x-python",
                 "codemirror_mode": {"name": "ipython", "version": 3},
                 "pygments_lexer": "ipython3", "nbconvert_exporter": "python",
                 "file_extension": ".py"}
NOT_PYTHON = ("its notebook's kernel is {name!r} (language {language}): the engine runs "
              "Python notebooks only; grade this assignment with stock nbgrader")
DEAD = ("Kernel died in this cell: {why}. The cells after it ran in a new process, after "
        "the cells before it were run again.")
DIED = ("the process running the notebook exited or crashed (os._exit, a segfault, running "
        "out of memory)")
GAVE_UP = ("Not run: the process running this notebook died {count} times (see the cells "
           "that say so).")
NOT_STOPPED = ("it did not stop when interrupted at its time limit, so the process running "
               "the notebook was ended")


class NotebookSandbox(Sandbox):
    """A notebook-mode sandbox working in a copy of ``folder``."""

    def __init__(self, zygote, memory_bytes, folder, scratch_bytes):
        self.scratch = None
        if confine.own_root(zygote.confinement):  # it copies the folder into its own root
            source, workdir, tmpdir = folder, os.path.realpath(folder), "/tmp"
        else:  # a private copy the sandbox is kept to by Landlock
            self.scratch = source = tempfile.mkdtemp(prefix="nbconfine-notebook-")
            workdir, tmpdir = os.path.join(source, "work"), os.path.join(source, "tmp")
            shutil.copytree(folder, workdir, ignore=lambda base, names: [
                name for name in names if os.path.islink(os.path.join(base, name))])
            os.mkdir(tmpdir)
        fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
        environ = {name: os.environ[name] for name in KERNEL_ENV if name in os.environ}
        try:
            super().__init__(zygote, memory_bytes, "notebook", fds=[fd], workdir=workdir,
                             tmpdir=tmpdir, scratch_bytes=scratch_bytes, environ=environ)
        finally:
            os.close(fd)

    def run(self, source, timeout, grace):
        """Run a cell: (reply, whether it was interrupted at its time limit). Raises
        AnswerFault when the sandbox dies or does not stop within ``grace`` seconds."""
        if self.fault:
            raise AnswerFault(self.fault)
        try:
            wire.send(self.sock, json.dumps({"source": source}).encode())
        except OSError:
            self.died(DIED)
        interrupted = False
        if not self._reply_starts(time.monotonic() + timeout if timeout else None):
            interrupted = True
            self._interrupt()
            if not self._reply_starts(time.monotonic() + grace):
                self.kill(NOT_STOPPED)
        try:
            reply = json.loads(wire.recv(self.sock, time.monotonic() + REPLY_SECONDS,
                                         MAX_REPLY))
            return {"outputs": [clean_output(o) for o in reply["outputs"]],
                    "error": clean_output(dict(reply, output_type="error"))
                    if reply.get("status") == "error" else None}, interrupted
        except Exception:
            self.died(DIED)

    def written(self, limit):
        """The files the notebook wrote in its working directory: [(relative path,
        content)], at most ``limit`` bytes in all. Raises AnswerFault if the sandbox dies
        or takes REPLY_SECONDS."""
        if self.fault:
            raise AnswerFault(self.fault)
        try:
            wire.send(self.sock, json.dumps({"written": limit}).encode())
            names, contents = wire.recv_parts(self.sock, time.monotonic() + REPLY_SECONDS,
                                              limit + 2**20)  # the names' JSON
            names = json.loads(names)
            if not (isinstance(names, list) and len(names) == len(contents)):
                raise ValueError("not a reply")
        except TimeoutError:
            self.kill(TIMED_OUT)
        except Exception:
            self.died(DIED)
        return list(zip(names, contents))

    def _reply_starts(self, deadline):
        """Whether the reply (or a hang-up) arrives before ``deadline`` (None: ever)."""
        while True:
            wait = None if deadline is None else max(0, deadline - time.monotonic())
            try:
                return bool(select.select([self.sock], [], [], wait)[0])
            except InterruptedError:
                continue

    def _interrupt(self):
        if _parent_of(self.pid) == self.zygote_pid:
            try:
                os.kill(self.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self):
        super().close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


def clean_output(output):
    """An nbformat output from what a sandbox sent: only the fields of its type, of the
    right types (a sandbox runs the learner's code: its replies are not trusted)."""
    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stderr" if output.get("name") == "stderr"
                                      else "stdout", text=str(output.get("text", "")))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=str(output.get("ename", "")),
                                      evalue=str(output.get("evalue", "")),
                                      traceback=[str(line) for line in output.get("traceback")
                                                 or []])
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    data = {str(k): v if isinstance(v, (str, dict, list)) else str(v) for k, v in data.items()}
    metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, metadata=metadata,
                                      execution_count=None)
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata)


def add_reply_error(outputs, reply_error):
    """nbgrader's Execute.on_cell_executed: a failed cell's reply error (``reply_error``,
    an error output) is added to its outputs unless one of them has its name (an error
    the cell kept IPython from showing, or the time limit's)."""
    if reply_error and not any(o.output_type == "error" and o.ename == reply_error.ename
                               for o in outputs):
        if not reply_error.traceback:
            reply_error.traceback = ["ERROR: An error occurred while showtraceback was "
                                     "disabled"]
        outputs.append(reply_error)


def error(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                  traceback=[f"{ename}: {evalue}"])


class NotebookSession:
    """A notebook's sandbox and the cells run in it so far, to run again in a new one."""

    def __init__(self, shared, folder, executor):
        self.shared, self.folder, self.executor = shared, folder, executor
        self.ran = []  # sources of the cells run so far, to replay after a death
        self.restarts = 0
        self.sandbox = self._new_sandbox()

    def _new_sandbox(self):
        return NotebookSandbox(self.shared, self.executor.memory_limit, self.folder,
                               self.executor.scratch_limit)

    def run(self, source, again=False):
        """The outputs of one cell, as a kernel would give them to nbgrader."""
        if self.sandbox is None:
            return [error("DeadKernelError", GAVE_UP.format(count=self.restarts))]
        executor = self.executor
        try:
            reply, interrupted = self.sandbox.run(source, executor.timeout,
                                                  executor.interrupt_grace)
        except AnswerFault as fault:
            if self.sandbox.zygote_lost and not again:  # the grader's fault: run it again
                faults.note("the notebook's sandbox died with the sandbox zygote; its cells "
                            "were run again")
                self.restarts -= 1  # not the notebook's doing
                self._restart()
                return self.run(source, again=True)
            outputs = [nbformat.from_dict(dict(executor.error_on_timeout, output_type="error"))
                       ] if str(fault) == NOT_STOPPED else []
            self._restart()
            return outputs + [error("DeadKernelError", DEAD.format(why=fault))]
        outputs = reply["outputs"]
        if interrupted:  # nbclient's reply to a cell past its time limit
            add_reply_error(outputs, nbformat.from_dict(dict(executor.error_on_timeout,
                                                             output_type="error")))
        else:
            add_reply_error(outputs, reply["error"])
            self.ran.append(source)
        return outputs

    def _restart(self):
        """A new sandbox with the cells run so far run again (one that kills it again is
        dropped); none after ``max_restarts``."""
        self.sandbox.close()
        self.sandbox = None
        while self.restarts < self.executor.max_restarts:
            self.restarts += 1
            sandbox = self._new_sandbox()
            kept = []
            for index, source in enumerate(self.ran):
                try:
                    _, interrupted = sandbox.run(source, self.executor.timeout,
                                                 self.executor.interrupt_grace)
                except AnswerFault:
                    sandbox.close()
                    self.ran = kept + self.ran[index + 1:]
                    break
                if not interrupted:
                    kept.append(source)
            else:
                self.sandbox, self.ran = sandbox, kept
                return

    def keep_written(self, log):
        """Put the files the notebook wrote into its folder, as a kernel working there
        writes them: the assignment's later notebooks read them, and they stay in
        autograded/ (figures and tables for the feedback). Regular files only, never
        through a link, at most ``scratch_limit`` bytes."""
        if self.sandbox is None:
            return
        try:
            files = self.sandbox.written(self.executor.scratch_limit)
        except AnswerFault as fault:
            log.warning("The files %s wrote were not kept: its sandbox %s", self.folder, fault)
            return
        folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for path, content in files:
                if not put_beneath(folder, path, content):
                    log.warning("Not kept: %r, written by the notebook in %s", path,
                                self.folder)
        finally:
            os.close(folder)

    def close(self):
        if self.sandbox:
            self.sandbox.close()


def put_beneath(folder, path, content):
    """Write ``content`` at ``path`` (relative, from a sandbox: not trusted) beneath the
    directory ``folder`` (a descriptor), creating directories, never through a link nor
    into a file another name shares (a new file replaces it). False if it cannot."""
    parts = path.split("/") if isinstance(path, str) else []
    if not parts or any(part in ("", ".", "..") or "\0" in part for part in parts):
        return False
    directory = os.dup(folder)
    temporary = None
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, dir_fd=directory)
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                            dir_fd=directory)
            os.close(directory)
            directory = inner
        temporary = f".{parts[-1][:200]}.nbconfine-{os.getpid()}"
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                          0o644, dir_fd=directory), "wb") as f:
            f.write(content)
        os.replace(temporary, parts[-1], src_dir_fd=directory, dst_dir_fd=directory)
        temporary = None
        return True
    except OSError as exc:
        if exc.errno in faults.DISK_ERRORS:
            raise  # the grader's disk: a fault of the grader
        return False
    finally:
        if temporary:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
        os.close(directory)


class NotebookExecute(NbGraderPreprocessor):
    """Run a notebook's cells in order in one confined sandbox (replaces nbgrader's Execute)."""

    timeout = Integer(allow_none=True, help="Seconds a cell may run before it is "
                      "interrupted (None or 0: no limit); by default the course's "
                      "nbgrader Execute.timeout (30 unless configured).").tag(config=True)
    interrupt_grace = Float(4.0, help="Seconds an interrupted cell has to stop before its "
                            "sandbox is ended (nbclient waits iopub_timeout, 4 s, then "
                            "gives up on the notebook).").tag(config=True)
    memory_limit = Integer(4 * 2**30, help="Bytes of memory a sandbox may add to the "
                           "zygote's.").tag(config=True)
    scratch_limit = Integer(512 * 2**20, help="Bytes a notebook may write in its working "
                            "and temporary directories (beyond the files copied there)."
                            ).tag(config=True)
    max_restarts = Integer(3, help="New sandboxes a notebook may get after its sandbox "
                           "died; the cells after the last death are not run.").tag(config=True)
    error_on_timeout = Dict(help="The error output a timed-out cell gets; by default the "
                            "course's nbgrader Execute.error_on_timeout.").tag(config=True)

    # A course written for stock nbgrader sets these on nbgrader's Execute (or the
    # nbclient classes it derives from): read as Execute resolves them, unless set here.
    @default("timeout")
    def _stock_timeout(self):
        return Execute(parent=self).timeout

    @default("error_on_timeout")
    def _stock_error_on_timeout(self):
        return Execute(parent=self).error_on_timeout

    def preprocess(self, nb, resources):
        spec = nb.metadata.get("kernelspec") or {}
        if spec.get("language", "python") != "python":
            # stock nbgrader would start that kernel; running it as Python would misgrade
            raise faults.GraderFault(NOT_PYTHON.format(name=spec.get("name"),
                                                       language=spec.get("language")))
        shared = zygote.shared(settings.zygote_spec(self.config))
        # `nbgrader autograde` run directly refuses weak sandboxes as nbconfine.autograde does
        confine.check(shared.confinement, os.environ.get("UNCONFINED") == "1")
        folder = (resources.get("metadata") or {}).get("path") or os.getcwd()
        nb.metadata["language_info"] = dict(LANGUAGE_INFO)
        session = NotebookSession(shared, folder, self)
        count = 0
        try:
            for cell in nb.cells:
                if cell.cell_type != "code" or not cell.source.strip() or \
                        SKIP_TAG in cell.metadata.get("tags", []):
                    continue
                count += 1
                cell.outputs = session.run(cell.source)
                for output in cell.outputs:
                    if output.output_type == "execute_result":
                        output.execution_count = count
                cell.execution_count = count
            session.keep_written(self.log)
        finally:
            session.close()
        return nb, resources
