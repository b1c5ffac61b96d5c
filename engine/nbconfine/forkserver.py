"""The zygote: a process that confines itself, loads what sandboxes need once, and forks
a sandbox for every request.

    python -m nbconfine.forkserver OWNER_FD WITHOUT SPEC [LISTEN_PATH]

nbconfine.zygote starts it with a fixed environment. WITHOUT names confinement layers to
count as missing (tests); SPEC is the JSON of ``zygote.Spec``: the roles its sandboxes
play (``problem``: nbconfine.remote, ``notebook``: nbconfine.kernel), the modules to
load once (imported before the roles prepare) and the course's checks module. Each role module has ``prepare(spec)``, run
once here, and ``serve(sock, prepared, setup, fds)``, run in each confined sandbox.
"""
import sys

if __name__ == "__main__":  # confined while single-threaded, before a library starts threads
    import json
    import os
    import socket
    from nbconfine import confine, zygote
    zygote.name_process(zygote.ZYGOTE_NAME)  # before it forks: found by name, never mistaken
    CONFINEMENT = confine.enter([name for name in sys.argv[2].split(",") if name])
    SPEC = json.loads(sys.argv[3])
    HELLO = json.dumps({"confinement": CONFINEMENT.to_wire(), "spec": SPEC}).encode()
    OWNER = socket.socket(fileno=int(sys.argv[1]))
    try:
        OWNER.sendall(len(HELLO).to_bytes(8, "big") + HELLO)  # framed as wire.send, early
    except OSError:  # the owner is gone already (Ctrl-C while it started): nothing to serve
        os._exit(0)

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import struct

from nbconfine import confine, wire
from nbconfine.zygote import SANDBOX_NAME, name_process, socket_address

ROLES = {"problem": "nbconfine.remote", "notebook": "nbconfine.kernel"}
SETUP_LIMIT = 2**16  # bytes of a sandbox's setup message


def receive_setup(sock):
    """The grader's first message to a new sandbox: (setup dict, file descriptors)."""
    header, fds, _, _ = socket.recv_fds(sock, wire.HEADER.size, 4, socket.MSG_WAITALL)
    if len(header) != wire.HEADER.size:
        raise EOFError
    (size,) = wire.HEADER.unpack(header)
    if size > SETUP_LIMIT:
        raise EOFError
    return json.loads(wire.recv_exact(sock, size)), fds


def zygote_main(owner, confinement, hello, spec, listen_path=None):
    """Prepare each role once, then fork a confined sandbox for every request.

    Requests come on the socket ``owner`` (the process that started the zygote: when it
    hangs up, the zygote ends) and, with ``listen_path``, on connections to that Unix
    socket (workers sharing this zygote). Each connection first gets ``hello`` (the
    confinement and the spec, as JSON; its credentials carry the zygote's pid; the owner
    got it before anything was loaded). Each request is 8 bytes (the sandbox's memory
    allowance) with the sandbox's socket attached; the sandbox's first byte on that
    socket carries its pid the same way (as the grader sees it, whatever PID namespace
    it is in), then it reads its setup (nbconfine.sandbox.Sandbox) and confines itself.
    """
    roles = {role: importlib.import_module(ROLES[role]) for role in spec["roles"]}
    for module in spec["preload"]:
        importlib.import_module(module)
    prepared = {role: module.prepare(spec) for role, module in roles.items()}
    gc.freeze()  # sandboxes' garbage collections skip what is prepared: fewer pages copied
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished sandboxes
    selector = selectors.DefaultSelector()
    selector.register(owner, selectors.EVENT_READ)
    if listen_path:
        listener = socket.socket(socket.AF_UNIX)
        with socket_address(listen_path) as address:
            listener.bind(address)
        listener.listen()
        selector.register(listener, selectors.EVENT_READ)
    running = True
    while running:
        for key, _ in selector.select():
            conn = key.fileobj
            if listen_path and conn is listener:
                client, _ = listener.accept()
                wire.send(client, hello)
                selector.register(client, selectors.EVENT_READ)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(conn, 16, 1)
            except OSError:
                message, fds = b"", []
            if not fds:  # hung up
                selector.unregister(conn)
                conn.close()
                running = running and conn is not owner
                continue
            if confine.fork(confinement) == 0:  # the sandbox: no zygote socket stays open in it
                for key in list(selector.get_map().values()):
                    key.fileobj.close()
                sock = socket.socket(fileno=fds[0])
                try:
                    name_process(SANDBOX_NAME)
                    sock.sendall(b"\0")  # its credentials tell the grader its pid
                    setup, setup_fds = receive_setup(sock)
                    role = setup["role"]
                    confine.confine(confinement, struct.unpack(">Q", message)[0],
                                    keep=(sock.fileno(), *setup_fds),
                                    **roles[role].confinement(setup, setup_fds))
                    roles[role].serve(sock, prepared[role], setup, setup_fds)
                finally:
                    os._exit(0)
            os.close(fds[0])
    confine.remove_empty_root(confinement)


if __name__ == "__main__":
    zygote_main(OWNER, CONFINEMENT, HELLO, SPEC, *sys.argv[4:])
    os._exit(0)  # the interpreter's teardown with big libraries loaded takes most of a second
