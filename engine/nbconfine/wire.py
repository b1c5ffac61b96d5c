"""Messages between the grader and a sandbox: an 8-byte big-endian length, then the payload."""
import select
import struct
import time

HEADER = struct.Struct(">Q")


LARGE = 2**20  # bytes: a larger payload is sent after its header, not copied behind it


def send(sock, payload):
    if len(payload) < LARGE:
        sock.sendall(HEADER.pack(len(payload)) + payload)
    else:
        sock.sendall(HEADER.pack(len(payload)))
        sock.sendall(payload)


def recv_exact(sock, size, deadline=None):
    """``size`` bytes (a bytearray); TimeoutError past ``deadline`` (time.monotonic),
    EOFError on hang-up."""
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([sock], [], [], wait)[0]:
                raise TimeoutError
        count = sock.recv_into(view[received:])
        if not count:
            raise EOFError
        received += count
    return buffer


def recv(sock, deadline=None, limit=None):
    """One message; a message longer than ``limit`` bytes is treated as a hang-up."""
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size, deadline))
    if limit is not None and size > limit:
        raise EOFError
    return recv_exact(sock, size, deadline)
