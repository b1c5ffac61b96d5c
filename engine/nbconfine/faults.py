"""Faults of the grading machine, told apart from what a learner's work did.

A learner's work may crash its sandbox, run out of time or fail a test: that costs its
points. The machine may fail too: the sandboxes' zygote dies, the gradebook's database
goes away, the disk fills up. Such a fault never becomes a learner's zero: the engine
grades the work again, or leaves it ungraded (its previous grades kept) and says so.

The process grading a submission collects, per submission:

- ``note(text)``: an event the run's report names (a zygote restarted, a problem graded
  again);
- the first grader fault seen: a ``GraderFault`` raised, or an exception ``classified()``
  recognises as one (a lost database connection, a full disk);

and ``take()`` returns both and starts afresh.
"""
import contextlib
import errno
import os
import shutil

DATABASE, DISK, MACHINE = "database", "disk", "machine"  # kinds of fault
# How grading a submission ended: graded; refused by nbgrader (something in the
# submission: it scores zero); not graded for the grader's own reasons (left ungraded).
GRADED, REFUSED, FAULT = "graded", "refused", "fault"
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}

_notes = []
_fault = None  # (kind, reason) of the first fault since take()


class GraderFault(Exception):
    """Grading cannot go on for the grader's own reasons (not the learner's)."""

    kind = MACHINE


def note(text):
    _notes.append(text)


def take():
    """([notes], (kind, reason) of the first fault or None) since the last call."""
    global _fault
    notes, fault = list(_notes), _fault
    _notes.clear()
    _fault = None
    return notes, fault


def kind_of(exc):
    """(kind, reason) if ``exc``, or an exception it was raised from or while handling, is
    a fault of the grading machine, else None (nbgrader raises its own InvalidEntry while
    handling a lost database connection, say)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = _kind_of_one(exc)
        if found:
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def _kind_of_one(exc):
    if isinstance(exc, GraderFault):
        return exc.kind, str(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        target = exc.filename2 or exc.filename  # a copy's destination, not its source
        where = f" writing {target}" if target else ""
        return DISK, f"{exc.strerror or exc}{where}"
    if isinstance(exc, shutil.Error):  # copytree's: [(source, destination, why)], as text
        for _, target, why in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
            said = next((os.strerror(e) for e in DISK_ERRORS if os.strerror(e) in str(why)),
                        None)
            if said:
                return DISK, f"{said} writing {target}"
    try:
        from sqlalchemy import exc as sql
    except ImportError:
        return None
    if isinstance(exc, (sql.OperationalError, sql.InterfaceError)) or \
            (isinstance(exc, sql.DBAPIError) and exc.connection_invalidated):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return DATABASE, "the gradebook's database failed (" + \
            (first[0][:200] if first else type(exc).__name__) + ")"
    return None


def record(exc):
    """Remember ``exc`` if it is a grader fault (the first one counts)."""
    global _fault
    found = kind_of(exc)
    if found and _fault is None:
        _fault = found


@contextlib.contextmanager
def classified():
    """Remember an exception raised inside that is a grader fault (it still propagates)."""
    try:
        yield
    except BaseException as exc:
        record(exc)
        raise
