"""Messages between the grader and a sandbox: an 8-byte big-endian length, then the payload.

Problem mode's pickles travel as parts (``send_parts``, ``recv_parts``): the pickle
stream's length, the count and lengths of its out-of-band buffers (pickle protocol 5:
a large tensor's bytes), the stream, then each buffer. A buffer is sent from the
tensor's own memory and received into a bytearray of its own, which the tensor is
built on: no copy into or out of the stream (in the stream, a 4 MB tensor cost three
more copies, each into fresh memory).
"""
import select
import struct
import time

HEADER = struct.Struct(">Q")
LARGE = 2**20  # bytes: a larger payload is sent after its header, not copied behind it
MAX_BUFFERS = 2**16  # out-of-band buffers in one message


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


def send_parts(sock, stream, buffers=()):
    """A pickle ``stream`` and its out-of-band ``buffers`` (pickle.PickleBuffer), each
    sent from its own memory."""
    views = [buffer.raw() for buffer in buffers]
    lengths = [len(stream), len(views)] + [view.nbytes for view in views]
    head = struct.pack(f">{len(lengths)}Q", *lengths)
    if len(stream) < LARGE:
        sock.sendall(head + stream)
    else:
        sock.sendall(head)
        sock.sendall(stream)
    for view in views:
        sock.sendall(view)


def recv_parts(sock, deadline=None, limit=None):
    """(stream, [buffer]) of one ``send_parts`` message, each a bytearray; a message
    longer than ``limit`` bytes in all is treated as a hang-up, unread."""
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size, deadline))
    if limit is not None and size > limit:
        raise EOFError
    (count,) = HEADER.unpack(recv_exact(sock, HEADER.size, deadline))
    if count > MAX_BUFFERS:
        raise EOFError
    sizes = struct.unpack(f">{count}Q", recv_exact(sock, HEADER.size * count, deadline))
    if limit is not None and size + sum(sizes) > limit:
        raise EOFError
    stream = recv_exact(sock, size, deadline)
    return stream, [recv_exact(sock, n, deadline) for n in sizes]
