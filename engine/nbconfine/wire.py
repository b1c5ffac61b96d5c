"""Messages between the grader and a sandbox: an 8-byte big-endian length, then the payload."""
import select
import struct
import time

HEADER = struct.Struct(">Q")


def send(sock, payload):
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_exact(sock, size, deadline=None):
    """``size`` bytes; TimeoutError past ``deadline`` (time.monotonic), EOFError on hang-up."""
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([sock], [], [], wait)[0]:
                raise TimeoutError
        chunk = sock.recv(min(remaining, 2**20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv(sock, deadline=None, limit=None):
    """One message; a message longer than ``limit`` bytes is treated as a hang-up."""
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size, deadline))
    if limit is not None and size > limit:
        raise EOFError
    return recv_exact(sock, size, deadline)
