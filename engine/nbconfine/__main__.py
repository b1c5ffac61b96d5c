"""``python -m nbconfine COMMAND``: see nbconfine.cli."""
import sys

from nbconfine.cli import main

sys.exit(main())
