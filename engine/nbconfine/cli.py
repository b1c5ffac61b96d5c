"""``nbconfine COMMAND [options]``: the engine's commands, run in a course directory.

    nbconfine autograde [--jobs N] [--students GLOB] [--scheduler tcp://HOST:PORT]
    nbconfine grades                 grades.csv, grades_by_problem.csv, the table
    nbconfine exchange [DIR]         create nbgrader's exchange root
    nbconfine collect|feedback|return    nbgrader's, for what is there (nbconfine.handback)
    nbconfine serve [--jobs N] [--scheduler tcp://HOST:PORT]    feedback on arrival
    nbconfine status                 what the service has waiting, grading and done
"""
import argparse
import importlib
import os
import sys

# command: ("module" or "module:function", taking the arguments; what it does)
COMMANDS = {
    "autograde": ("nbconfine.autograde", "grade every submission, confined, in parallel"),
    "grades": ("nbconfine.report", "export the grades and print the table"),
    "exchange": ("nbconfine.exchange", "create nbgrader's exchange root"),
    "collect": ("nbconfine.handback:collect_main",
                "collect the latest submission of each student from the exchange"),
    "feedback": ("nbconfine.handback:feedback_main",
                 "write feedback for every autograded submission"),
    "return": ("nbconfine.handback:return_main",
               "return the feedback to the students through the exchange"),
    "serve": ("nbconfine.serve",
              "grade each submission as it arrives in the exchange, return its feedback"),
    "status": ("nbconfine.serve:status_main",
               "list the submissions waiting, being graded and done"),
}


def job_count(text):
    """argparse type of ``--jobs``: a whole number of workers, at least 1."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the number of grading workers, 1 or more")
    return jobs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        asked_for_help = argv[:1] in (["-h"], ["--help"])
        width = max(map(len, COMMANDS))
        listing = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
        unknown = f"nbconfine: unknown command {argv[0]!r}\n" if argv and not asked_for_help \
            else ""
        print(f"{unknown}usage: nbconfine COMMAND [--help]\n\ncommands:\n{listing}",
              file=sys.stdout if asked_for_help else sys.stderr)
        return 0 if asked_for_help else 2
    # nbgrader runs commands of its environment (alembic, for a new gradebook): found even
    # when started without the environment's bin/ on PATH (systemd, JupyterHub)
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                          os.environ.get("PATH", os.defpath)])
    module, _, function = COMMANDS[argv[0]][0].partition(":")
    try:
        return getattr(importlib.import_module(module), function or "main")(argv[1:])
    except Exception as exc:
        from nbconfine.settings import NotConfigured
        if not isinstance(exc, NotConfigured):
            raise
        print(f"nbconfine {argv[0]}: {exc}", file=sys.stderr)  # the course's, said plainly
        return 2


if __name__ == "__main__":
    sys.exit(main())
