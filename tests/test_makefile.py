"""The Makefile's own targets list: `make help`. (That its targets take in any assignment
of source/ is tested with a third one added: test_notebook_mode's make test.)"""
import os
import re
import subprocess

from coursedir import REPO


def test_make_help_lists_every_target():
    """Each target the Makefile declares (.PHONY) has its line in `make help`."""
    with open(os.path.join(REPO, "Makefile")) as f:
        declared = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", f.read(), re.M).group(1)
    targets = set(declared.replace("\\\n", " ").split())
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60).stdout
    described = {line.split()[0] for line in listed.splitlines() if len(line.split()) > 1}
    assert {"install", "release", "autograde", "scheduler", "worker"} <= targets
    assert described == targets, listed
