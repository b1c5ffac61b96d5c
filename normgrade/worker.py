"""``python -m normgrade.worker autograde ...``: nbgrader's own command line (the entry
point of the ``nbgrader`` script), then an exit without interpreter teardown, which
takes about a second once torch is loaded; normgrade.autograde runs its workers so."""
import os
import sys

from nbgrader.apps.nbgraderapp import main

if __name__ == "__main__":
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
