"""nbgrader's exchange for a course: where it is, and creating it.

    nbconfine exchange [DIR] [--root COURSE]

The exchange root is NBGRADER_EXCHANGE, else /srv/nbgrader/exchange when running as root
or when that directory exists (a server's exchange, made by its administrator), else
``nbgrader-exchange`` beside the course folder. ``nbconfine.configure`` sets
``c.Exchange.root`` from here unless the course's configuration sets it.

nbgrader (0.9.6) documents the root as writable by everyone (``chmod ugo+rwx``) and
creates the rest itself on the instructor's first ``release_assignment``, owned by them:
``<course>/`` and ``outbound/`` 0755, ``inbound/`` 2733 (students drop submissions but
cannot list them), ``feedback/`` 0711 (students fetch their own by a secret name). The
root gets the sticky bit too (1777, as /tmp): then no one removes or renames what another
user put there; nbgrader checks only the 0777 bits.
"""
import argparse
import os
import stat

SERVER_ROOT = "/srv/nbgrader/exchange"
ROOT_MODE = 0o1777


def default_root(course_root):
    """The exchange root the course's commands use."""
    if os.environ.get("NBGRADER_EXCHANGE"):
        return os.path.abspath(os.environ["NBGRADER_EXCHANGE"])
    if os.geteuid() == 0 or os.path.isdir(SERVER_ROOT):
        return SERVER_ROOT
    return os.path.join(os.path.dirname(os.path.abspath(course_root)), "nbgrader-exchange")


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
    lines = [f"nbgrader exchange: {root} (mode 1777: anyone creates, no one removes "
             "another's files)"]
    closed = closed_ancestors(root)
    if closed:
        lines.append("Students cannot reach it until these folders are traversable by "
                     f"others (chmod o+x): {', '.join(closed)}")
    assignment = assignments[0] if assignments else "ASSIGNMENT"
    lines += [
        "",
        "Instructor: nbgrader release_assignment, collect, release_feedback"
        + ("" if root == default_root(course_root) else
           f", each with NBGRADER_EXCHANGE={root} (or EXCHANGE={root} on make)"),
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
                        "NBGRADER_EXCHANGE, else as root /srv/nbgrader/exchange, else "
                        "nbgrader-exchange beside the course)")
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    args = parser.parse_args(argv)
    course = os.path.abspath(args.root)
    course_id = settings.load_config(course).CourseDirectory.get("course_id") or "COURSE"
    print(create(os.path.abspath(args.dir) if args.dir else default_root(course), course,
                 course_id, list(course_assignments(course))))
    private = make_private(course)
    if private:
        print(f"\nThe course folder is now yours (and your group's) alone: {', '.join(private)} "
              "(others may only pass through it, to the Python environment students use)")


if __name__ == "__main__":
    main()
