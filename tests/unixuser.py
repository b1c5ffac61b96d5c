"""Unix users the tests create (as root): the one way to make, use and remove them."""
import contextlib
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

    def _clean(self, command, env):
        """``env -i`` with this user's clean environment (the venv's bin on PATH; the
        tests' PYTHONPATH, so that they run the same engine: make guard's copy), then
        ``command``."""
        tests = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
        return ["env", "-i", f"HOME={self.home}", f"USER={self.name}",
                f"PATH={VENV}/bin:/usr/bin:/bin", "LANG=C.UTF-8",
                *[f"{k}={v}" for k, v in {**tests, **(env or {})}.items()], *command]

    def run(self, *command, cwd=None, env=None, check=True):
        """``command`` as this user in a clean environment; returns its output, asserting
        it succeeded (unless not ``check``: then the completed process)."""
        done = subprocess.run(["runuser", "-u", self.name, "--", *self._clean(command, env)],
                              cwd=cwd or self.home, capture_output=True, text=True,
                              timeout=900)
        if not check:
            return done
        assert done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        return done.stdout + done.stderr

    def start(self, *command, cwd=None, env=None, **popen):
        """``command`` started as this user in a clean environment: a Popen whose pid is
        the command's own (setpriv and env exec it), so that it can be signalled."""
        return subprocess.Popen(["setpriv", f"--reuid={self.name}", f"--regid={self.name}",
                                 "--init-groups", *self._clean(command, env)],
                                cwd=cwd or self.home, **popen)

    def nbgrader(self, *args, **kwargs):
        return self.run(sys.executable, "-m", "nbgrader", *args, **kwargs)

    def remove(self):
        if self.made:
            subprocess.run(["userdel", "-r", self.name], capture_output=True)


@contextlib.contextmanager
def users(*roles):
    """A User per role (``nb<role><pid>``), removed at the end if made here."""
    made = []
    try:
        for role in roles:
            made.append(User(f"nb{role}{os.getpid() % 100000}"))
        yield made
    finally:
        for user in made:
            user.remove()
