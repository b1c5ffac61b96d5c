"""``nbconfine COMMAND [options]``: the engine's commands, run in a course directory.

    nbconfine autograde [--jobs N] [--students GLOB] [--scheduler tcp://HOST:PORT]
    nbconfine grades                 grades.csv, grades_by_problem.csv, the table
    nbconfine exchange [DIR]         create nbgrader's exchange root
"""
import importlib
import sys

COMMANDS = {
    "autograde": ("nbconfine.autograde", "grade every submission, confined, in parallel"),
    "grades": ("nbconfine.report", "export the grades and print the table"),
    "exchange": ("nbconfine.exchange", "create nbgrader's exchange root"),
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        listing = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
        print(f"usage: nbconfine COMMAND [--help]\n\ncommands:\n{listing}",
              file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
