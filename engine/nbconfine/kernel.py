"""Notebook mode's sandboxes: an IPython shell that runs a notebook's cells in order, as
ipykernel runs them for nbgrader's Execute, and answers with each cell's outputs.

The zygote's "notebook" role (nbconfine.forkserver):

- ``prepare(spec)``, once in the zygote: an InteractiveShell (history in memory, as
  nbgrader's kernels keep it; no profile directory, nothing written to disk), warmed up,
  and the directories Python imports from (what a sandbox may read);
- ``confinement(setup, fds)``: the sandbox's files (confine.Files): a copy of the
  submission folder as its working directory, the Python directories read-only;
- ``serve(sock, prepared, setup, fds)``: runs each cell the grader sends.

What a kernel sends nbclient becomes nbformat outputs here: stdout and stderr as stream
outputs (also what is written to file descriptors 1 and 2, as ipykernel captures it), the
last expression's value as an ``execute_result``, ``display()`` and matplotlib's inline
figures as ``display_data``, an exception as an ``error`` output with IPython's traceback.
Grader to sandbox: JSON ``{"source": cell source}``; sandbox to grader: JSON
``{"outputs": [...], "status": "ok" or "error"}``, an error's with its ``ename``,
``evalue`` and ``traceback`` too, as ipykernel's execute_reply (nbgrader adds that error
to the outputs when none of them is it: a cell that kept IPython from showing it). Or
``{"written": bytes}``: the files the notebook wrote in its working directory, as wire
parts (their paths' JSON, then each one's content). A SIGINT interrupts the running cell
(KeyboardInterrupt, as a kernel interrupt does) and is ignored between cells.
"""
import asyncio
import base64
import builtins
import contextlib
import contextvars
import fcntl
import getpass
import importlib.util
import io
import json
import os
import pickle
import signal
import stat
import sys
import sysconfig
import tempfile
import uuid
import warnings

from nbconfine import confine, wire

MAX_STREAM = 4 * 2**20  # characters of one stream output kept (nbgrader's LimitOutput cuts
TRUNCATED = "\n... Output truncated ...\n"  # its lines, not their length)
NOT_SUPPORTED = "{} was called, but this frontend does not support input requests."


# What ipykernel's shell puts in its environment (ZMQInteractiveShell.init_environment):
# colours in the programs a cell runs, pagers that do not wait for a key
SHELL_ENVIRONMENT = {"TERM": "xterm-color", "CLICOLOR": "1", "FORCE_COLOR": "1",
                     "CLICOLOR_FORCE": "1", "PAGER": "cat", "GIT_PAGER": "cat"}
# The %gui / %matplotlib names ipykernel runs no event loop for (its eventloops.loop_map)
NO_EVENT_LOOP = (None, "inline", "nbagg", "webagg", "notebook", "ipympl", "widget")
# Where IPython keeps the last error it showed (`%tb`, `%debug` read it)
LAST_ERROR = ("last_type", "last_value", "last_traceback", "last_exc")


class Prepared:
    """What the zygote prepares once: the shell, and the process's globals it sets."""

    def __init__(self, shell, globals_):
        self.shell, self.globals = shell, globals_


READABLE = ()  # the Python directories (python_directories()), found by prepare()
LAUNCHER = ""  # ipykernel_launcher.py, a kernel's sys.argv[0], found by prepare()


def python_directories():
    """Where Python imports from: the standard library and site-packages (this
    environment's and its base's), and the folders of the shared libraries loaded so far
    (the system's C libraries a compiled module links to). Never the working directory
    the zygote started in, which is the course's."""
    paths = set()
    for scheme in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.add(sysconfig.get_paths()[scheme])
        paths.add(sysconfig.get_paths(vars={"base": sys.base_prefix,
                                            "platbase": sys.base_exec_prefix})[scheme])
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(None, 5)[-1].strip()
            if path.startswith("/") and ".so" in os.path.basename(path):
                paths.add(os.path.dirname(path))
    return tuple(sorted(p for p in paths if os.path.isdir(p)))


def _shell_class():
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class CellDisplayHook(DisplayHook):
        """The last expression's value: an execute_result, as ipykernel's displayhook."""

        formatting = False  # ipykernel's ``msg``: set while the value is formatted

        def start_displayhook(self):
            self.formatting = True

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            self.shell.outputs.add({"output_type": "execute_result", "data": format_dict,
                                    "metadata": md_dict or {},
                                    "execution_count": self.shell.execution_count})

        def finish_displayhook(self):
            self.formatting = False

    class CellDisplayPublisher(DisplayPublisher):
        """display(): display_data outputs; clear_output as nbclient applies it."""

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            self.shell.outputs.display(data, metadata or {}, (transient or {}).get(
                "display_id"), update)

        def clear_output(self, wait=False):
            self.shell.outputs.clear(wait)

    class SandboxShell(InteractiveShell):
        """IPython as ipykernel runs it, its outputs collected in ``outputs``."""
        displayhook_class = CellDisplayHook
        display_pub_class = CellDisplayPublisher

        def init_profile_dir(self, profile_dir):
            self.profile_dir = None  # nothing on disk (the history lives in memory)

        def _ipython_dir_changed(self, change):
            pass  # IPython would create it

        # ipykernel's: the cell's last traceback shown, and whether it was shown while
        # the displayhook formatted a value (the cell's reply is then an error)
        last_traceback = None
        traceback_while_formatting = False

        def run_cell(self, *args, **kwargs):
            self.last_traceback = None  # as ipykernel's, here only (not run_cell_async)
            self.traceback_while_formatting = False
            return super().run_cell(*args, **kwargs)

        def _showtraceback(self, etype, evalue, stb):
            self.outputs.add({"output_type": "error", "ename": str(etype.__name__),
                              "evalue": str(evalue), "traceback": stb})
            self.traceback_while_formatting |= self.displayhook.formatting
            self.last_traceback = stb

        def init_virtualenv(self):
            pass

        def init_hooks(self):
            super().init_hooks()
            # ipykernel's pager (`obj?`, %pinfo, %page) sends its text as a payload of the
            # reply, which nbclient does not keep: nothing in the cell's outputs
            self.set_hook("show_in_pager", lambda shell, *args, **kwargs: None, 99)

        @property
        def db(self):  # %store's, in the profile directory: the sandbox's home here
            if self._db is None:
                from IPython.external.pickleshare import PickleShareDB
                self._db = PickleShareDB(os.path.expanduser("~/.ipython/profile_default/db"))
            return self._db

        def enable_gui(self, gui=None):
            # ipykernel's: the backends that draw in the notebook (inline, nbagg, ipympl)
            # need no event loop; a GUI's has no display to run on here
            if gui not in NO_EVENT_LOOP:
                from IPython.core.error import UsageError
                raise UsageError(f"GUI event loop {gui!r}: there is no display when grading")
            self.active_eventloop = gui

        def ask_exit(self):
            pass  # exit(), quit(): ipykernel's kernel would stop; the notebook goes on here

    return SandboxShell


def _config():
    from traitlets.config import Config
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # nbgrader's kernels' --HistoryManager.hist_file
    return config


def _snapshot():
    """What an InteractiveShell changes in the process: __main__, builtins, warnings."""
    return (sys.modules.get("__main__"), dict(vars(builtins)), list(warnings.filters),
            sys.displayhook, sys.excepthook)


def _restore(snapshot):
    main, names, filters, displayhook, excepthook = snapshot
    sys.modules["__main__"] = main
    for name in set(vars(builtins)) - set(names):
        delattr(builtins, name)
    vars(builtins).update(names)
    warnings.filters[:] = filters
    sys.displayhook, sys.excepthook = displayhook, excepthook


def prepare(spec):
    """Once in the zygote: the shell, warmed up on a throwaway one (tracebacks, display,
    magics load lazily). The process's globals the shell changed are put back (the
    problem role's sandboxes fork from here too) and reapplied in each notebook sandbox."""
    before = _snapshot()
    shell_class = _shell_class()
    from ipykernel.compiler import XCachingCompiler  # ipykernel's cell file names
    kernel_like = dict(config=_config(), ipython_dir="/nonexistent",
                       compiler_class=XCachingCompiler)
    warm = shell_class(**kernel_like)
    warm.outputs = Outputs()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for source in ("1 + 1", "1 / 0", "print('x')\nfrom IPython.display import display\n"
                       "display('x')", "%time x = 1", "def f(:\n    pass"):
            warm.run_cell(source, store_history=True)
    for name in LAST_ERROR:  # the warm-up's is no cell's error: `%tb` finds none, as in a kernel
        with contextlib.suppress(AttributeError):
            delattr(sys, name)
    shell = shell_class.instance(**kernel_like)
    shell.outputs = Outputs()
    shell.extension_manager.load_extension("storemagic")  # ipykernel's default extension
    global LAUNCHER
    LAUNCHER = importlib.util.find_spec("ipykernel_launcher").origin
    if "matplotlib_inline.backend_inline" in sys.modules:  # preloaded before the shell was
        from matplotlib_inline.backend_inline import configure_inline_support
        configure_inline_support(shell, "module://matplotlib_inline.backend_inline")
    after = _snapshot()
    _restore(before)
    global READABLE
    READABLE = python_directories()
    return Prepared(shell, after)


# What a kernel's programs read besides the Python directories (`!ls`, %%bash, subprocess):
# the system's programs and libraries, the loader's cache, Debian's alternatives (awk,
# which), the time zone, fontconfig's configuration and cache (matplotlib runs fc-list
# when it first lists fonts: without them fc-list writes an error to stderr, which costs
# the cell its points); the interpreter, its directory (first on PATH: `!python`, `!pip`,
# the environment's scripts) and its environment's pyvenv.cfg. Not the rest of /etc:
# /etc/passwd and /etc/group name the machine's users and groups (so `ls -l` shows
# numbers, `whoami` fails).
PROGRAMS = ("/bin", "/lib", "/lib64", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec",
            "/usr/share", "/usr/local/bin", "/usr/local/lib", "/etc/ld.so.cache",
            "/etc/alternatives", "/etc/localtime", "/etc/fonts", "/var/cache/fontconfig",
            sys.executable, os.path.dirname(sys.executable),
            os.path.join(sys.prefix, "pyvenv.cfg"))


def confinement(setup, fds):
    """The sandbox's files: its working directory (a copy of the submission folder, the
    descriptor ``fds[0]``), its temporary directory, the Python directories and the
    system's programs read-only; and processes, as a kernel may start them (`!ls`,
    subprocess, multiprocessing)."""
    return {"files": confine.Files(readable=READABLE + PROGRAMS, workdir=setup["workdir"],
                                   source_fd=fds[0], scratch_bytes=int(setup["scratch_bytes"]),
                                   tmpdir=setup["tmpdir"]),
            "processes": True}


class Outputs:
    """The running cell's outputs, as nbclient records a kernel's messages."""

    def __init__(self):
        self.items = []
        self.clear_pending = False
        self.displays = {}  # display_id -> its outputs in this cell
        self.capture = None  # file descriptors 1 and 2 (Capture), in a sandbox

    def _before_output(self):
        if self.clear_pending:  # clear_output(wait=True): at the next output
            self.items.clear()
            self.displays.clear()
            self.clear_pending = False

    def add(self, output):
        if self.capture and output["output_type"] != "stream":
            self.capture.drain()  # what the cell wrote before comes before
        self._before_output()
        self.items.append(output)

    def stream(self, name, text):
        if not text:
            return
        last = self.items[-1] if self.items and not self.clear_pending else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += _bounded(len(last["text"]), text)
        else:
            self.add({"output_type": "stream", "name": name, "text": _bounded(0, text)})

    def display(self, data, metadata, display_id, update):
        if update:
            for output in self.displays.get(display_id, []):
                output.update(data=data, metadata=metadata)
            return
        output = {"output_type": "display_data", "data": data, "metadata": metadata}
        self.add(output)
        if display_id:
            self.displays.setdefault(display_id, []).append(output)

    def clear(self, wait):
        if wait:
            self.clear_pending = True
        else:
            self.items.clear()
            self.displays.clear()

    def take(self):
        items, self.items = self.items, []
        self.displays.clear()
        self.clear_pending = False
        return items


def _bounded(kept, text):
    """What of ``text`` joins a stream output holding ``kept`` characters: at most
    MAX_STREAM in all, then nbgrader LimitOutput's marker, once."""
    room = MAX_STREAM - kept
    if len(text) <= room:
        return text
    return text[:room] + TRUNCATED if room >= 0 else ""


class Stream(io.TextIOBase):
    """sys.stdout or sys.stderr of the sandbox: writes become the cell's stream outputs."""

    def __init__(self, name, fd, capture):
        self.name, self.fd, self.capture = name, fd, capture

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.capture.drain()  # what was written to the file descriptors first comes first
        self.capture.outputs.stream(self.name, text)
        return len(text)

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "UTF-8"  # ipykernel's


class Capture:
    """File descriptors 1 and 2 as files in the sandbox's temporary directory (unlinked),
    read into the cell's stream outputs. A write to them never waits, as ipykernel reads
    its pipes in a thread: with pipes read only here, a forked child writing more than a
    pipe holds would wait for the cell's end, and the cell for the child."""

    def __init__(self, outputs):
        import codecs
        self.outputs = outputs
        outputs.capture = self
        self.files = []
        for fd, name in ((1, "stdout"), (2, "stderr")):
            own, path = tempfile.mkstemp(prefix=name)
            os.unlink(path)
            fcntl.fcntl(own, fcntl.F_SETFL, os.O_APPEND)  # every writer appends
            os.dup2(own, fd)
            self.files.append([own, name, codecs.getincrementaldecoder("utf-8")("replace"), 0])

    def drain(self):
        for entry in self.files:
            own, name, decoder, offset = entry
            while chunk := os.pread(own, 2**16, offset):
                offset += len(chunk)
                self.outputs.stream(name, decoder.decode(chunk))
            entry[3] = offset

    def end_cell(self):
        """Drained, emptied for the next cell (what a process left running writes in
        between is lost)."""
        self.drain()
        for entry in self.files:
            os.ftruncate(entry[0], 0)
            entry[3] = 0


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return repr(value)


class _Interrupt:
    """SIGINT raises KeyboardInterrupt while a cell runs, and is ignored between cells (an
    interrupt that comes as the cell ends must not end the sandbox)."""

    def __init__(self):
        self.running = False
        signal.signal(signal.SIGINT, self)

    def __call__(self, signum, frame):
        if self.running:
            raise KeyboardInterrupt


def serve(sock, prepared, setup, fds):
    shell = prepared.shell
    _restore(prepared.globals)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote's: a kernel waits for its children
    home = os.path.join(setup["tmpdir"], "home")  # writable, as a kernel's home
    os.makedirs(home, exist_ok=True)
    os.environ.update(setup["environ"], TMPDIR=setup["tmpdir"], HOME=home,
                      # MPLBACKEND is the zygote's (nbconfine.zygote)
                      MPLCONFIGDIR=os.path.join(setup["tmpdir"], "matplotlib"),
                      **SHELL_ENVIRONMENT)
    tempfile.tempdir = None  # found again from TMPDIR
    sys.argv = [LAUNCHER, "-f", os.path.join(home, ".local", "share", "jupyter", "runtime",
                                             f"kernel-{uuid.uuid4()}.json")]  # ipykernel's
    sys.path[0] = os.getcwd()  # a kernel's: modules beside the notebook import
    shell.user_ns["_dh"][:] = [os.getcwd()]
    outputs = shell.outputs
    capture = Capture(outputs)
    sys.stdout = sys.__stdout__ = Stream("stdout", 1, capture)
    sys.stderr = sys.__stderr__ = Stream("stderr", 2, capture)
    builtins.input = _no_input
    getpass.getpass = _no_getpass
    interrupt = _Interrupt()
    workdir = os.getcwd()
    before = _regular_files(workdir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # ipykernel runs every cell in one task, so what a cell sets in a context variable
    # (decimal's precision, numpy's seterr and print options) holds in the next cells
    context = contextvars.copy_context()
    while True:
        try:
            request = json.loads(loop.run_until_complete(_receive(loop, sock)))
        except EOFError:
            return
        if "written" in request:
            names, contents = _written(workdir, before, int(request["written"]))
            wire.send_parts(sock, json.dumps(names).encode(),
                            [pickle.PickleBuffer(content) for content in contents])
            continue
        interrupt.running = True
        cell = loop.create_task(_run_cell(shell, request["source"]), context=context)
        try:
            reply = _reply(shell, loop.run_until_complete(cell))
        except KeyboardInterrupt:  # while IPython prepared the cell, or the loop waited
            interrupt.running = False
            cell.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(cell)
            interrupted = {"ename": "KeyboardInterrupt", "evalue": "",
                           "traceback": ["KeyboardInterrupt"]}
            outputs.add(dict(interrupted, output_type="error"))
            reply = dict(interrupted, status="error")
        finally:
            interrupt.running = False
        try:
            sys.stdout.flush()
        except Exception:
            pass
        capture.end_cell()
        reply["outputs"] = outputs.take()
        wire.send(sock, json.dumps(reply, default=_jsonable).encode())


def _reply(shell, result):
    """The cell's reply as ipykernel's do_execute makes it: an error with its exception
    and the last traceback shown (none if the cell kept IPython from showing it)."""
    if result.success and not shell.traceback_while_formatting:
        return {"status": "ok"}
    error = result.error_before_exec if result.error_before_exec is not None \
        else result.error_in_exec
    try:
        evalue = str(error)
    except Exception:  # the learner's __str__
        evalue = "<unprintable>"
    return {"status": "error", "ename": type(error).__name__, "evalue": evalue,
            "traceback": shell.last_traceback or []}


async def _receive(loop, sock):
    """The next request; meanwhile the event loop runs what the cells left to it, as a
    kernel's runs between cells."""
    readable = loop.create_future()
    loop.add_reader(sock, lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(sock)
    return wire.recv(sock)


async def _run_cell(shell, source):
    """A cell as ipykernel runs it: inside its running event loop (``asyncio.run`` in a
    cell fails as in a kernel), top-level ``await`` awaited on that loop."""
    try:
        transformed, failure = shell.transform_cell(source), None
    except Exception:
        transformed, failure = source, sys.exc_info()
    if not shell.should_run_async(source, transformed_cell=transformed,
                                  preprocessing_exc_tuple=failure):
        return shell.run_cell(source, store_history=True)
    result = None
    try:
        result = await shell.run_cell_async(source, store_history=True,
                                            transformed_cell=transformed,
                                            preprocessing_exc_tuple=failure)
    finally:  # as run_cell does
        shell.events.trigger("post_execute")
        shell.events.trigger("post_run_cell", result)
    return result


def _regular_files(top):
    """{path relative to ``top``: (inode, size, mtime)} of the regular files beneath it
    (links not followed)."""
    found = {}
    for base, _, names in os.walk(top):
        for name in names:
            path = os.path.join(base, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode):
                    found[os.path.relpath(path, top)] = (info.st_ino, info.st_size,
                                                         info.st_mtime_ns)
    return found


def _written(top, before, limit):
    """The regular files beneath ``top`` written since ``before`` (_regular_files), but
    notebooks (nbgrader writes those): ([relative path], [content]), at most ``limit``
    bytes in all, paths included."""
    names, contents, total = [], [], 0
    for path, signature in sorted(_regular_files(top).items()):
        if before.get(path) == signature or path.endswith(".ipynb"):
            continue
        try:
            with open(os.open(os.path.join(top, path), os.O_RDONLY | os.O_NOFOLLOW),
                      "rb") as f:
                data = f.read(limit - total - len(path) + 1)
        except OSError:
            continue
        if total + len(path) + len(data) <= limit:
            total += len(path) + len(data)
            names.append(path)
            contents.append(data)
    return names, contents


def _no_input(prompt=""):
    """ipykernel's input() for a frontend without stdin (nbgrader's)."""
    from IPython.core.error import StdinNotImplementedError
    raise StdinNotImplementedError(NOT_SUPPORTED.format("raw_input"))


def _no_getpass(prompt="", stream=None, *, echo_char=None):
    """ipykernel's getpass.getpass for a frontend without stdin (nbgrader's)."""
    from IPython.core.error import StdinNotImplementedError
    raise StdinNotImplementedError(NOT_SUPPORTED.format("getpass"))
