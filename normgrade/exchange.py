"""nbgrader's exchange for the course: where it is, and creating it.

    python -m normgrade.exchange [DIR]     (or `make exchange EXCHANGE=DIR`)

The exchange root is NBGRADER_EXCHANGE, else /srv/nbgrader/exchange when running as root
or when that directory exists (a server's exchange, made by its administrator), else
``nbgrader-exchange`` beside the course folder. nbgrader_config.py reads it from here.

nbgrader (0.9.6) documents the root as writable by everyone (``chmod ugo+rwx``) and
creates the rest itself on the instructor's first ``release_assignment``, owned by them:
``<course>/`` and ``outbound/`` 0755, ``inbound/`` 2733 (students drop submissions but
cannot list them), ``feedback/`` 0711 (students fetch their own by a secret name). The
root gets the sticky bit too (1777, as /tmp): then no one removes or renames what another
user put there; nbgrader checks only the 0777 bits.
"""
import os
import stat
import sys

SERVER_ROOT = "/srv/nbgrader/exchange"
ROOT_MODE = 0o1777
COURSE_ID = "normalization-layers"


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


def create(root, course_root):
    """Create (or repair) the exchange root; returns what to tell the instructor."""
    os.makedirs(root, exist_ok=True)
    if stat.S_IMODE(os.stat(root).st_mode) != ROOT_MODE:
        os.chmod(root, ROOT_MODE)
    lines = [f"nbgrader exchange: {root} (mode 1777: anyone creates, no one removes "
             "another's files)"]
    closed = closed_ancestors(root)
    if closed:
        lines.append("Students cannot reach it until these folders are traversable by "
                     f"others (chmod o+x): {', '.join(closed)}")
    lines += [
        "",
        "Instructor: make publish (release_assignment), make collect, make return "
        "(release_feedback)" + ("" if root == default_root(course_root) else
                                f", each with EXCHANGE={root} (or NBGRADER_EXCHANGE)"),
        "Students (in the folder where they keep their work):",
        f"  nbgrader fetch_assignment normalization --course {COURSE_ID} "
        f"--Exchange.root={root}",
        f"  nbgrader submit normalization --course {COURSE_ID} --Exchange.root={root}",
        f"  nbgrader fetch_feedback normalization --course {COURSE_ID} "
        f"--Exchange.root={root}",
        "or, for JupyterLab's Assignment List, ~/.jupyter/nbgrader_config.py holding:",
        "  c = get_config()",
        f"  c.CourseDirectory.course_id = {COURSE_ID!r}",
        f"  c.Exchange.root = {root!r}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    course = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(create(os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1]
                 else default_root(course), course))
