"""Unix users the tests create (as root): the one way to make, use and remove them."""
import os
import pwd
import subprocess
import sys

import pytest

VENV = os.path.dirname(os.path.dirname(sys.executable))


class User:
    """A Unix user made for a test: with a home of its own and a shell, or (``home=False``)
    neither. ``remove()`` deletes it only if this test made it."""

    def __init__(self, name, home=True):
        if os.geteuid() != 0:
            pytest.skip("creating another Unix user needs root (CI runs the suite as root)")
        options = ["-m", "-s", "/bin/sh"] if home else ["--no-create-home", "--shell",
                                                        "/usr/sbin/nologin"]
        made = subprocess.run(["useradd", *options, name], capture_output=True, text=True)
        assert made.returncode in (0, 9), made.stderr  # 9: it exists already
        self.made, self.name, self.home = made.returncode == 0, name, pwd.getpwnam(name).pw_dir

    def run(self, *command, cwd=None, env=None):
        """``command`` as this user in a clean environment (the venv's bin on PATH);
        returns its output, asserting it succeeded."""
        done = subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", f"HOME={self.home}",
             f"USER={self.name}", f"PATH={VENV}/bin:/usr/bin:/bin", "LANG=C.UTF-8",
             *[f"{k}={v}" for k, v in (env or {}).items()], *command],
            cwd=cwd or self.home, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        return done.stdout + done.stderr

    def nbgrader(self, *args, **kwargs):
        return self.run(sys.executable, "-m", "nbgrader", *args, **kwargs)

    def remove(self):
        if self.made:
            subprocess.run(["userdel", "-r", self.name], capture_output=True)
