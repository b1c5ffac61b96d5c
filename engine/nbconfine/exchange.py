"""nbgrader's exchange for a course: where it is, and creating it.

    nbconfine exchange [DIR] [--root COURSE]
    nbconfine exchange --check COMMAND [--root COURSE]

The exchange root is NBGRADER_EXCHANGE, else the one ``nbconfine exchange`` last made for
the course (written to its ``exchange_root.txt``), else /srv/nbgrader/exchange when running
as root or when that directory exists (a server's exchange, made by its administrator),
else ``nbgrader-exchange`` beside the course folder. ``nbconfine.configure`` sets
``c.Exchange.root`` from here unless the course's configuration sets it.

nbgrader (0.9.6) documents the root as writable by everyone (``chmod ugo+rwx``) and
creates the rest itself on the instructor's first ``release_assignment``, owned by them:
``<course>/`` and ``outbound/`` 0755, ``inbound/`` 2733 (students drop submissions but
cannot list them), ``feedback/`` 0711 (students fetch their own by a secret name). The
root gets the sticky bit too (1777, as /tmp): then no one removes or renames what another
user put there; nbgrader checks only the 0777 bits, and release_assignment creates a
missing root without the sticky bit. So the engine's commands that use the exchange refuse
a root that is missing or not 1777 (``require``).
"""
import argparse
import contextlib
import os
import stat

SERVER_ROOT = "/srv/nbgrader/exchange"
ROOT_MODE = 0o1777
REMEMBERED = "exchange_root.txt"  # in the course: the root `nbconfine exchange` made


def default_root(course_root):
    """The exchange root the course's commands use."""
    if os.environ.get("NBGRADER_EXCHANGE"):
        return os.path.abspath(os.environ["NBGRADER_EXCHANGE"])
    with contextlib.suppress(FileNotFoundError):
        with open(os.path.join(course_root, REMEMBERED)) as f:
            return f.read().strip()
    if os.geteuid() == 0 or os.path.isdir(SERVER_ROOT):
        return SERVER_ROOT
    return os.path.join(os.path.dirname(os.path.abspath(course_root)), "nbgrader-exchange")


def require(root, command):
    """Exit, naming ``root`` and what to run, unless it is a folder of mode 1777."""
    try:
        info = os.stat(root)
    except FileNotFoundError:
        problem = "does not exist"
    else:
        if stat.S_ISDIR(info.st_mode) and info.st_mode & ROOT_MODE == ROOT_MODE:
            return
        problem = f"has mode {stat.S_IMODE(info.st_mode):04o}, not 1777"
    raise SystemExit(f"{command}: the exchange root {root} {problem}; create it with "
                     f"`make exchange EXCHANGE={root}` (writable by everyone, sticky: no one "
                     "removes another's files), or choose another EXCHANGE=DIR")


def closed_ancestors(path):
    """Folders above ``path`` that other users cannot traverse (students need to)."""
    closed, parent = [], os.path.dirname(path)
    while True:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            closed.append(parent)
        if parent == os.path.dirname(parent):
            return closed[::-1]
        parent = os.path.dirname(parent)


def create(root, course_root, course_id, assignments):
    """Create (or repair) the exchange root; returns what to tell the instructor (and the
    commands students run, for the first of ``assignments``)."""
    try:
        os.makedirs(root, exist_ok=True)
        if stat.S_IMODE(os.stat(root).st_mode) != ROOT_MODE:
            os.chmod(root, ROOT_MODE)
    except OSError as exc:
        raise SystemExit(f"make exchange: cannot create {root} with mode 1777 ({exc.strerror}); "
                         "its owner or root can (`make exchange EXCHANGE=DIR`), or choose "
                         "another EXCHANGE=DIR") from None
    with open(os.path.join(course_root, REMEMBERED), "w") as f:
        f.write(root + "\n")
    lines = [f"nbgrader exchange: {root} (mode 1777: anyone creates, no one removes "
             "another's files); the course's commands use it from now on (remembered in "
             f"{REMEMBERED}; NBGRADER_EXCHANGE, when set, comes first)"]
    closed = closed_ancestors(root)
    if closed:
        lines.append("Students cannot reach it until these folders are traversable by "
                     f"others (chmod o+x): {', '.join(closed)}")
    assignment = assignments[0] if assignments else "ASSIGNMENT"
    lines += [
        "",
        f"Students (in the folder where they keep their work; {assignment} here, any of "
        f"{', '.join(assignments) or 'the assignments'}):",
        f"  nbgrader fetch_assignment {assignment} --course {course_id} --Exchange.root={root}",
        f"  nbgrader submit {assignment} --course {course_id} --Exchange.root={root}",
        f"  nbgrader fetch_feedback {assignment} --course {course_id} --Exchange.root={root}",
        "or, for JupyterLab's Assignment List, ~/.jupyter/nbgrader_config.py holding:",
        "  c = get_config()",
        f"  c.CourseDirectory.course_id = {course_id!r}",
        f"  c.Exchange.root = {root!r}",
    ]
    return "\n".join(lines)


def main(argv=None):
    from nbconfine import settings
    from nbconfine.layout import course_assignments, make_private
    parser = argparse.ArgumentParser(description="Create nbgrader's exchange for a course.")
    parser.add_argument("dir", nargs="?", default="", help="the exchange root (default: "
                        "the course's: NBGRADER_EXCHANGE, else the one made last, else as "
                        "root /srv/nbgrader/exchange, else nbgrader-exchange beside the course)")
    parser.add_argument("--check", metavar="COMMAND", help="create nothing: exit saying "
                        "what to run unless the course's root is as this makes it")
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    args = parser.parse_args(argv)
    course = os.path.abspath(args.root)
    config = settings.load_config(course)
    root = os.path.abspath(args.dir or config.Exchange.root)
    if args.check:
        return require(root, args.check)
    course_id = config.CourseDirectory.get("course_id") or "COURSE"
    print(create(root, course, course_id, list(course_assignments(course))))
    private = make_private(course)
    if private:
        print(f"\nThe course folder is now yours (and your group's) alone: {', '.join(private)} "
              "(others may only pass through it, to the Python environment students use)")


if __name__ == "__main__":
    main()
