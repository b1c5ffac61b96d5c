"""Confinement of untrusted code: namespaces, an empty root, Landlock, seccomp, limits.

Generic: it knows what a process may reach, nothing of what the process runs. Two halves:

- ``enter(without)`` runs first thing in the process that will fork the sandboxes (the
  zygote), while it is still single-threaded (before torch starts its threads). It
  enters a user namespace (when not root), and a mount, network (no interface up, not
  even loopback), IPC and PID namespace: the host's network, processes, IPC objects and
  mounts are out of reach of everything it forks. It mounts an empty, read-only root
  for the sandboxes, and tries every layer once in a throwaway sandbox, so a kernel
  that refuses one is known before anything is graded.
- ``fork()`` forks a sandbox into a PID namespace of its own (it is PID 1 there: when
  it is killed, everything it started ends with it, setsid or not), and ``confine()``,
  run first thing in it, closes it in: the empty root, no capabilities, as root a user
  id of its own, Landlock (no file access, no TCP bind or connect, no signals or
  abstract Unix sockets beyond itself), seccomp (no mount, namespace, ptrace, bpf,
  keyring, io_uring, System V or POSIX IPC, or non-Unix sockets; unless ``processes``,
  no new process either, threads only), rlimits (memory, processes, open files, no
  files written, no core dumps). Already-open Unix sockets keep working: that is
  how a sandbox talks to its grader. (A network and an IPC namespace per sandbox would
  add about 10 ms of kernel time each; seccomp and Landlock keep sandboxes apart in
  the zygote's.)
- ``confine(..., files=Files(...))`` (notebook mode) gives a sandbox some files instead:
  with namespaces, a mount namespace of its own whose root is a size-limited tmpfs
  holding read-only bind mounts of ``Files.readable`` (the Python directories, the
  system's programs; the symbolic links on the way to them made again), /tmp, /dev/shm,
  /dev/null, /dev/zero, /dev/urandom, a devpts of its own and the working directory, a
  copy of the folder ``Files.source_fd`` made there; Landlock allows reading and running
  beneath ``readable`` and writing beneath the working directory, /tmp and /dev/shm
  only, RLIMIT_FSIZE the tmpfs's size. Without namespaces, ``source_fd`` is a private
  copy the grader made (holding ``work`` and ``tmp``), and Landlock alone keeps the
  sandbox to it and ``readable``.

The environment a sandbox sees is the zygote's, which its starter sets to a fixed
allowlist (nbconfine.zygote). Layers the kernel refuses are reported by ``Confinement``;
``MISSING_ENV`` (a comma-separated list of layer names, or ``all``) makes layers count as
missing, to exercise the fallbacks.
"""
import ctypes
import errno
import os
import resource
import shutil
import signal
import tempfile
from dataclasses import dataclass, field

from nbconfine import runs

MISSING_ENV = "NBCONFINE_CONFINE_MISSING"
SANDBOX_UID_BASE = 1_000_000  # as root, a sandbox runs as SANDBOX_UID_BASE + its host pid
LAYERS = ("namespaces", "empty-root", "landlock", "seccomp")

# What an answer reaches without a layer, and how an administrator enables it.
EXPOSES = {
    "namespaces": "the host's network (any loopback port, e.g. the gradebook's PostgreSQL), "
                  "every process of the grader's user, and a child that calls setsid can "
                  "outlive its sandbox",
    "empty-root": "every file the grader's user can read or write (solutions, gradebook, "
                  "other students' submissions, /etc) unless Landlock blocks it (and, "
                  "without seccomp, the permissions and times of the grader's own files)",
    "landlock": "no second wall around files and TCP if another layer fails",
    "seccomp": "new network sockets, mount, ptrace and other kernel interfaces inside the "
               "sandbox's namespaces",
}
ENABLE = {
    "namespaces": "allow unprivileged user namespaces: sysctl user.max_user_namespaces=15000 "
                  "(and kernel.unprivileged_userns_clone=1 on older Debian kernels); on Ubuntu "
                  "23.10+ sysctl kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor "
                  "profile that allows userns for this Python",
    "empty-root": "needs the namespaces layer (or a grader running as root)",
    "landlock": "a kernel with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y and 'landlock' in "
                "the lsm= boot parameter; 6.7+ for TCP rules, 6.12+ for signal scoping)",
    "seccomp": "Debian's libseccomp2 (apt-get install libseccomp2) and the pinned pyseccomp, "
               "on a kernel with CONFIG_SECCOMP_FILTER",
}

CLONE_THREAD, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x10000, 0x20000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_NOATIME, MS_NODIRATIME = 32, 4096, 1024, 2048
MS_REC, MS_PRIVATE, MS_RELATIME, MNT_DETACH = 0x4000, 1 << 18, 1 << 21, 2
# statvfs flags a read-only bind mount must keep (a user namespace may not clear them)
KEPT_MOUNT_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
                    os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
                    os.ST_RELATIME: MS_RELATIME}
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
SYS_CAPSET, SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_RESTRICT_SELF = 126, 444, 446
SYS_LANDLOCK_ADD_RULE, LANDLOCK_RULE_PATH_BENEATH = 445, 1
LANDLOCK_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}  # access rights known to each ABI
# Landlock's file-system rights: execute 0, write_file 1, read_file 2, read_dir 3,
# remove_dir 4, remove_file 5, make_char 6, make_dir 7, make_reg 8, make_sock 9,
# make_fifo 10, make_block 11, make_sym 12, refer 13, truncate 14, ioctl_dev 15
LANDLOCK_READ = 1 << 2 | 1 << 3
LANDLOCK_RUN = LANDLOCK_READ | 1 << 0  # what a notebook may read, it may run (`!ls`)
LANDLOCK_WRITE = LANDLOCK_RUN | sum(1 << bit for bit in (1, 4, 5, 7, 8, 9, 10, 12, 13, 14))
LANDLOCK_TERMINAL = LANDLOCK_READ | 1 << 1 | 1 << 15  # ptys: read, write, ioctl
LANDLOCK_FILE_ONLY = 1 << 0 | 1 << 1 | 1 << 2 | 1 << 14 | 1 << 15  # what a rule on a file may hold
# A sandbox's hard limit on open files: also what bounds the memory it can queue in kernel
# buffers (sockets, pipes), which RLIMIT_AS does not count. A problem's sandbox needs a
# dozen; a notebook gets the soft limit a Jupyter kernel usually starts with.
OPEN_FILES, NOTEBOOK_OPEN_FILES = 256, 1024
# Threads and processes a sandbox may have at once (RLIMIT_NPROC counts both; as root per
# sandbox, a user id each; for a normal user, all its sandboxes together): a problem's
# dozen threads; a notebook's thread and process pools, far from a fork bomb's thousands.
TASKS, NOTEBOOK_TASKS = 64, 512
# Device files a notebook sandbox finds in its own root: (path, writable)
DEVICES = (("/dev/null", True), ("/dev/zero", False), ("/dev/urandom", False))
# Folders of a notebook sandbox's own root it may write in, counted in its size: /dev/shm
# holds multiprocessing's locks and queues (POSIX semaphores)
SCRATCH = ("/tmp", "/dev/shm")
# Its terminals (`!cmd` runs in one, as in a kernel): a devpts of its own, a few ptys
PTYS = "/dev/pts"
SECCOMP_DENIED = [
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr", "ptrace", "process_vm_readv",
    "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
    "kexec_load", "init_module", "finit_module", "delete_module", "syslog", "acct",
    "swapon", "swapoff", "reboot", "quotactl",
    # System V and POSIX IPC: sandboxes share the zygote's IPC namespace
    "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
    "semctl", "semtimedop", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    # file metadata, which Landlock does not cover
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr"]

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


@dataclass
class Confinement:
    """What the zygote set up, inherited by every sandbox it forks."""
    active: list = field(default_factory=list)  # layer names, in LAYERS order
    missing: list = field(default_factory=list)
    error: str = ""  # a layer the kernel accepted failed in the trial sandbox
    landlock_abi: int = 0
    root: bool = False
    jail: str = ""  # the empty, read-only root directory, in a run folder (nbconfine.runs)
    jail_lock: int = -1  # that run folder's lock, held while the zygote lives
    pid_ns: int = -1  # the zygote's own PID namespace (a file descriptor)
    # the filters, built once, loaded in each sandbox: {(in a root of its own, may start
    # processes): filter}, empty without seccomp
    seccomp: dict = field(default_factory=dict)

    def describe(self):
        """One line naming the active layers (and the missing ones)."""
        names = {"namespaces": "user/mount/PID/network/IPC namespaces" if not self.root
                 else "mount/PID/network/IPC namespaces and a user id per sandbox",
                 "empty-root": "an empty read-only root",
                 "landlock": f"Landlock (ABI {self.landlock_abi})", "seccomp": "seccomp"}
        text = ", ".join([names[layer] for layer in self.active]
                         + ["a fixed environment", "memory/process/file limits"])
        if self.missing:
            text += "; MISSING: " + ", ".join(self.missing)
        return text

    def to_wire(self):
        return {"active": self.active, "missing": self.missing, "error": self.error,
                "landlock_abi": self.landlock_abi, "root": self.root}

    @classmethod
    def from_wire(cls, data):
        return cls(**data)


@dataclass
class Files:
    """What a notebook-mode sandbox may reach on disk (see the module docstring)."""
    readable: tuple  # absolute paths it may read and run (the Python directories...)
    workdir: str  # where it works: its own copy of the submission folder
    source_fd: int  # the folder copied there (with namespaces), else the grader's copy
    scratch_bytes: int  # what it may write (files copied in come on top)
    tmpdir: str = "/tmp"  # its temporary directory (without namespaces: in the copy)


def missing_message(confinement):
    """What an instructor reads when layers are missing: what each exposes, how to fix it."""
    lines = []
    for layer in confinement.missing:
        lines += [f"  {layer}: missing. An answer could reach {EXPOSES[layer]}.",
                  f"    To enable it: {ENABLE[layer]}."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The zygote
# ---------------------------------------------------------------------------

def enter(without=()):
    """Confine the calling process (single-threaded) as a zygote; returns its Confinement.

    With namespaces, the caller forks: the parent waits and exits with the child, which
    returns as PID 1 of a new PID namespace (it dies with its parent)."""
    without = set(LAYERS if "all" in without else without)
    state = Confinement(root=os.geteuid() == 0)
    if "namespaces" not in without and _in_a_child(_enter_namespaces, state.root):
        _enter_namespaces(state.root)  # as it just worked in a child (no way back if not)
        state.active.append("namespaces")
        _become_child()
        state.pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    if "empty-root" not in without and (state.active or state.root):
        try:
            state.jail, state.jail_lock = _empty_root("namespaces" in state.active)
            state.active.append("empty-root")
        except OSError:
            pass  # reported as missing
    if "landlock" not in without:
        state.landlock_abi = max(0, _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, 1))
        if state.landlock_abi:
            state.active.append("landlock")
    if "seccomp" not in without:
        filters = {(own, processes): _seccomp_filter(metadata=not own, processes=processes)
                   for own, processes in ((False, False), (False, True), (True, True))}
        if None not in filters.values():
            state.seccomp = filters
            state.active.append("seccomp")
    state.missing = [layer for layer in LAYERS if layer not in state.active]
    state.error = _trial(state)
    return state


def _in_a_child(function, *args):
    """Whether ``function(*args)`` runs without an exception in a forked child."""
    pid = os.fork()
    if pid == 0:
        try:
            function(*args)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _enter_namespaces(root):
    """Unshare the zygote's namespaces (a user namespace too when not root); raises
    OSError when the kernel refuses (sysctl, AppArmor)."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID
    _check(_libc.unshare(flags | (0 if root else CLONE_NEWUSER)), "unshare")
    if not root:  # the same ids inside: files keep their owners, nothing is gained
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def _become_child():
    """Fork; the parent (outside the new PID namespace) waits and exits with the child."""
    pid = os.fork()
    if pid:
        os.closerange(3, 1 << 16)  # so the zygote's sockets hang up when it ends
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            except InterruptedError:
                continue
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def end_with_parent(parent):
    """Have the kernel SIGKILL this process when its parent, pid ``parent``, ends (a
    forked worker of a grader that was killed); end now if it has ended already."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _empty_root(mount):
    """An empty directory for the sandboxes' root: a read-only tmpfs in the zygote's own
    mount namespace (the host sees an empty directory), else root's private directory;
    in a run folder named with the zygote's pid on the host, so that a later run removes
    it if the zygote is killed. Returns (its path, the run folder's lock)."""
    folder, lock = runs.make(None, pid=_host_pid())
    jail = os.path.join(folder, "root")
    try:
        os.mkdir(jail, 0o700)
        if mount:
            _check(_libc.mount(b"tmpfs", jail.encode(), b"tmpfs",
                               MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                               b"size=4k,mode=555"), "mount tmpfs")
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(lock)
        raise
    return jail, lock


def remove_empty_root(state):
    if state.jail:
        _libc.umount2(state.jail.encode(), MNT_DETACH)
        shutil.rmtree(os.path.dirname(state.jail), ignore_errors=True)
        os.close(state.jail_lock)


def _host_pid():
    """This process's pid as the host sees it (the zygote is 1 of its PID namespace):
    /proc is the host's."""
    return int(os.readlink("/proc/self"))


def _seccomp_filter(metadata=True, processes=False):
    """The sandbox's system call filter (EPERM for what it must not do), or None; without
    ``metadata``, file modes and times may change (in a root of its own, only its files');
    without ``processes``, threads are all it may start (each process would get a memory
    allowance of its own: RLIMIT_AS is per process)."""
    try:
        import pyseccomp
        deny = pyseccomp.ERRNO(errno.EPERM)
        rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        for name in SECCOMP_DENIED if metadata else SECCOMP_DENIED[:SECCOMP_DENIED.index(
                "chmod")] + [name for name in SECCOMP_DENIED if "chown" in name]:
            try:
                rules.add_rule(deny, name)
            except OSError:  # a system call this libseccomp does not know
                pass
        for flag in (CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET):
            rules.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
        rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")  # flags unreadable: use clone
        if not processes:
            rules.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_THREAD, 0))
            for name in ("fork", "vfork"):
                try:
                    rules.add_rule(deny, name)
                except OSError:  # an architecture without them (clone only)
                    pass
        rules.add_rule(deny, "socket", pyseccomp.Arg(0, pyseccomp.NE, 1))  # AF_UNIX only
        return rules
    except Exception:  # no libseccomp, or a kernel without seccomp filters
        return None


def _trial(state):
    """Confine throwaway children with every active layer, one without files and one with
    a notebook's (a folder holding a file to read, one to write); '' or what failed."""
    failed = _try_sandbox(state, None)
    if failed:
        return f"the trial sandbox failed: {failed}"
    with tempfile.TemporaryDirectory(prefix="nbconfine-trial-") as folder:
        for name in ("work", "tmp"):
            os.mkdir(os.path.join(folder, name))
        with open(os.path.join(folder, "work", "data.txt"), "w") as f:
            f.write("ok")
        files = Files(readable=(os.path.dirname(os.__file__),),
                      workdir=os.path.join(folder, "work"), tmpdir=os.path.join(folder, "tmp"),
                      source_fd=-1, scratch_bytes=2**20)
        failed = _try_sandbox(state, files)
    return f"the trial notebook sandbox failed: {failed}" if failed else ""


def _try_sandbox(state, files):
    """'' if a child confines itself (with ``files``: and reads and writes its files)."""
    read, write = os.pipe()
    pid = fork(state)
    if pid == 0:
        try:
            if files:
                source = files.workdir if own_root(state) else os.path.dirname(files.workdir)
                files.source_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
            confine(state, 2**30, keep=(write, files.source_fd) if files else (write,),
                    files=files, processes=bool(files))
            if files:
                with open("data.txt") as f, open("written.txt", "w") as out:
                    out.write(f.read())
                with tempfile.TemporaryFile(dir="/tmp" if own_root(state) else files.tmpdir):
                    pass
            os.write(write, b"ok")
        except BaseException as exc:
            os.write(write, f"{type(exc).__name__}: {exc}".encode()[:1000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return "" if result == "ok" else result or "it died"


# ---------------------------------------------------------------------------
# Each sandbox
# ---------------------------------------------------------------------------

def fork(state):
    """os.fork(), the child in a PID namespace of its own when namespaces are active."""
    if "namespaces" not in state.active:
        return os.fork()
    _check(_libc.setns(state.pid_ns, CLONE_NEWPID), "setns")  # after a previous fork
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    pid = os.fork()
    if pid:  # the zygote: its next fork must not join this namespace
        _libc.setns(state.pid_ns, CLONE_NEWPID)
    return pid


def confine(state, memory_bytes, keep=(), files=None, processes=False):
    """Close the calling sandbox in (see the module docstring); ``keep``: file descriptors
    it keeps (its socket); ``files``: what it may reach on disk (``Files``), else nothing;
    ``processes``: whether it may start processes (else threads only). Standard streams
    become /dev/null."""
    os.setsid()  # without a PID namespace, its process group is what the grader kills
    host_pid = _host_pid()
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory_bytes, vm + memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for fd in sorted(set(range(3, _highest_fd() + 1)) - set(keep)):
        try:
            os.close(fd)  # nothing inherited, above all no directory to escape through
        except OSError:
            pass
    uid = SANDBOX_UID_BASE + host_pid
    written = 0
    if files and own_root(state):
        written = _own_root(state, files, uid if state.root else None)
    elif files:  # the grader's private copy; Landlock keeps the sandbox to it
        if state.root:
            _chown_tree(files.source_fd, uid)
        os.chdir(files.workdir)
        written = files.scratch_bytes
    elif "empty-root" in state.active:
        os.chroot(state.jail)
        os.chdir("/")
    if files:
        os.close(files.source_fd)
    _drop_privileges(state.root, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    tasks = NOTEBOOK_TASKS if processes else TASKS
    resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    open_files = NOTEBOOK_OPEN_FILES if processes else OPEN_FILES
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (written, written))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if "landlock" in state.active:
        _landlock(state.landlock_abi, _landlock_rules(state, files) if files else ())
    if "seccomp" in state.active:
        state.seccomp[(bool(files) and own_root(state), processes)].load()


def own_root(confinement):
    """Whether notebook sandboxes get a root of their own (a mount namespace each)."""
    return "namespaces" in confinement.active and "empty-root" in confinement.active


def _own_root(state, files, uid):
    """In a mount namespace of its own: a tmpfs root (over the empty root) with the
    readable paths bound read-only (and the symbolic links on the way to them), /tmp,
    /dev/shm, a few devices, ptys of its own and a copy of the submission folder at
    ``files.workdir``, owned by ``uid`` (None: the caller's own); then chroot there.
    Returns the tmpfs's size in bytes."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    size = files.scratch_bytes + _tree_bytes(files.source_fd)
    jail = state.jail.encode()
    _check(_libc.mount(b"tmpfs", jail, b"tmpfs", MS_NOSUID | MS_NODEV,
                       f"size={size},mode=755".encode()), "mount tmpfs root")
    for path in _outermost(files.readable):
        _bind_read_only(path, state.jail + path)
    for path, _ in DEVICES:
        if os.path.exists(path):
            _bind_read_only(path, state.jail + path, read_only=False)
    for path in SCRATCH:
        os.makedirs(state.jail + path, exist_ok=True)
        os.chmod(state.jail + path, 0o1777)
    os.makedirs(state.jail + PTYS)
    _check(_libc.mount(b"devpts", (state.jail + PTYS).encode(), b"devpts",
                       MS_NOSUID | MS_NOEXEC, b"newinstance,ptmxmode=0666,mode=0620,max=64"),
           "mount devpts")
    os.symlink("pts/ptmx", state.jail + "/dev/ptmx")
    workdir = state.jail + files.workdir
    os.makedirs(workdir, exist_ok=True)
    _copy_tree(files.source_fd, workdir)
    if uid is not None:
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _chown_tree(fd, uid)
        finally:
            os.close(fd)
    links = _links(files.readable)  # the host's, made again inside its root
    os.chroot(state.jail)
    for link, target in links:
        if not os.path.lexists(link):  # (or already there, in a folder bound)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
    os.chdir(files.workdir)
    return size


def _outermost(paths):
    """The existing ``paths`` (real paths) that are beneath no other one."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)})
    return [p for p in real if not any(p.startswith(q.rstrip("/") + "/") for q in real)]


def _links(paths):
    """[(link, its target)]: the symbolic links met on the way to ``paths``."""
    links = []
    for path in paths:
        done, parts, hops = "/", os.path.abspath(path).split("/")[1:], 0
        while parts and hops <= 40:  # as the kernel, give up on a loop of links
            here = os.path.join(done, parts.pop(0))
            if not os.path.islink(here):
                done = here
                continue
            target = os.readlink(here)
            links.append((here, target))
            parts = os.path.normpath(os.path.join(done, target)).split("/")[1:] + parts
            done, hops = "/", hops + 1
    return links


def _bind_read_only(source, target, read_only=True):
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _check(_libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None),
           f"bind {source}")
    if not read_only:
        return
    kept = sum(flag for st, flag in KEPT_MOUNT_FLAGS.items() if os.statvfs(source).f_flag & st)
    _check(_libc.mount(None, target.encode(), None,
                       MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None),
           f"remount {source} read-only")


def _entries(dir_fd):
    """(name, is a directory) of a folder's regular files and folders (never a link)."""
    for entry in os.scandir(dir_fd):
        if entry.is_dir(follow_symlinks=False):
            yield entry.name, True
        elif entry.is_file(follow_symlinks=False):
            yield entry.name, False


def _open_below(dir_fd, name, directory):
    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if directory else 0)
    return os.open(name, flags, dir_fd=dir_fd)


def _tree_bytes(dir_fd):
    total = 0
    for name, directory in _entries(dir_fd):
        fd = _open_below(dir_fd, name, directory)
        try:
            total += _tree_bytes(fd) if directory else os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def _copy_tree(dir_fd, target):
    """Copy a folder's regular files and folders (links are skipped) into ``target``."""
    for name, directory in _entries(dir_fd):
        fd = _open_below(dir_fd, name, directory)
        try:
            path = os.path.join(target, name)
            if directory:
                os.mkdir(path)
                _copy_tree(fd, path)
            else:
                with open(fd, "rb", closefd=False) as source, open(path, "wb") as copy:
                    while chunk := source.read(2**20):
                        copy.write(chunk)
            os.chmod(path, os.fstat(fd).st_mode & 0o755 | 0o600 | (0o100 if directory else 0))
        finally:
            os.close(fd)


def _chown_tree(dir_fd, uid):
    """Give a folder (an open descriptor) and all it holds to ``uid``."""
    os.chown(dir_fd, uid, uid)
    for name, directory in _entries(dir_fd):
        if directory:
            fd = _open_below(dir_fd, name, True)
            try:
                _chown_tree(fd, uid)
            finally:
                os.close(fd)
        else:
            os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)


def _landlock_rules(state, files):
    """[(path, rights)] of a notebook sandbox: read and run beneath the readable paths,
    write beneath its working directory, /tmp and /dev/shm, its ptys (without
    namespaces: write beneath the grader's copy; no /dev/shm nor ptys, the host's)."""
    readable = [(path, LANDLOCK_RUN) for path in _outermost(files.readable)]
    if own_root(state):
        rules = [(path, LANDLOCK_WRITE) for path in (files.workdir, *SCRATCH)]
        rules += [(path, LANDLOCK_READ | (2 if writable else 0) | 1 << 14)
                  for path, writable in DEVICES if os.path.exists(path)]
        return readable + rules + [(PTYS, LANDLOCK_TERMINAL)]
    return readable + [(os.path.dirname(files.workdir), LANDLOCK_WRITE)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _highest_fd():
    try:
        return max(int(fd) for fd in os.listdir("/proc/self/fd"))
    except (OSError, ValueError):
        return 1023


def _drop_privileges(root, uid):
    """As root: a user id of its own. Everyone: no capabilities (in its user namespace)."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if root:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    _libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty
    _check(_libc.syscall(SYS_CAPSET, header, data), "capset")


def _landlock(abi, rules=()):
    """No file access but ``rules`` ([(path, Landlock rights beneath it)]), no TCP bind or
    connect (ABI 4+), no signals or abstract Unix sockets outside the sandbox (ABI 6+)."""
    fs_rights = (1 << LANDLOCK_FS_BITS.get(abi, 16)) - 1
    attr = (ctypes.c_uint64 * 3)(fs_rights, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, size, 0),
                     "landlock_create_ruleset")
    try:
        for path, rights in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                if not os.path.isdir(path):
                    rights &= LANDLOCK_FILE_ONLY
                rule = _PathBeneath(rights & fs_rights, fd)
                _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                                     ctypes.byref(rule), 0), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


# ---------------------------------------------------------------------------
# The grader's decision
# ---------------------------------------------------------------------------

class Refused(Exception):
    """Sandboxes would be weaker than required, and nobody accepted it."""


def check(confinement, accept_weaker):
    """The report's confinement line; raises Refused when a layer is missing (unless
    ``accept_weaker``) or failed."""
    if confinement.error:
        raise Refused(f"The sandboxes' confinement failed ({confinement.error}); nothing "
                      "was graded.")
    if confinement.missing and not accept_weaker:
        raise Refused("Refusing to grade: this machine refuses some of the sandboxes' "
                      "confinement layers.\n" + missing_message(confinement) + "\nTo grade "
                      "anyway with weaker confinement: `make autograde UNCONFINED=1` (or "
                      "UNCONFINED=1 in the environment). Nothing was graded.")
    line = "Confinement: " + confinement.describe()
    return line + (" (weaker confinement accepted: UNCONFINED=1)" if confinement.missing
                   else "")
