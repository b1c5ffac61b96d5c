"""The engine is a package of its own (engine/, nbconfine) that knows no course: nothing in
it names what is this course's (read from the course itself, not listed here), and
`pip install ./engine` installs every file it needs, outside this repository."""
import os
import re
import shutil
import subprocess
import sys

from coursedir import REPO
from nbconfine import settings
from nbconfine.layout import course_assignments

ENGINE = os.path.join(REPO, "engine")
BUILT = ("__pycache__", "build", "*.egg-info")  # what building or running it leaves there


def engine_files(folder):
    """Paths (relative to ``folder``) of the files under it, but what building leaves."""
    ignored = shutil.ignore_patterns(*BUILT)
    found = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in ignored(base, dirs)]
        found += [os.path.relpath(os.path.join(base, f), folder) for f in files
                  if f not in ignored(base, files)]
    return sorted(found)


def course_names():
    """{what it is: regular expression} of what is the course's own, from the course: its
    assignments, its course id, its checks module, and its Python package (imported or
    named as ``package.module``)."""
    config = settings.load_config(REPO)
    packages = sorted(name for name in os.listdir(REPO)
                      if os.path.isfile(os.path.join(REPO, name, "__init__.py")))
    names = {f"assignment {a}": re.escape(a) for a in course_assignments(REPO)}
    names["course id"] = re.escape(config.CourseDirectory.course_id)
    checks = os.path.splitext(os.path.basename(config.ProblemExecute.checks))[0]
    names["checks module"] = re.escape(checks)
    for package in packages:
        modules = [os.path.splitext(m)[0] for m in os.listdir(os.path.join(REPO, package))
                   if m.endswith(".py") and m != "__init__.py"]
        names[f"package {package}"] = (rf"\b(import|from)\s+{package}\b|"
                                       rf"\b{package}\.({'|'.join(modules)})\b")
    return names


def test_the_engine_names_nothing_of_the_course():
    """No file of engine/ (code, templates, the JupyterLab extension, pyproject.toml)
    imports the course or names its assignments, course id or checks module."""
    names = course_names()
    assert {"assignment normalization", "assignment batchnorm", "checks module",
            "package course"} <= set(names), names  # the course is what it reads
    found = []
    for relative in engine_files(ENGINE):
        with open(os.path.join(ENGINE, relative), errors="replace") as f:
            for number, line in enumerate(f, 1):
                found += [f"engine/{relative}:{number}: {what}: {line.strip()}"
                          for what, pattern in names.items()
                          if re.search(pattern, line, re.IGNORECASE)]
    assert found == [], "\n".join(found)


def test_pip_install_engine_installs_the_whole_package_outside_the_repository(tmp_path):
    """`pip install ./engine` (no network: dependencies already here) from a copy of
    engine/: every file of the package is installed, with the `nbconfine` command and a
    description, and it runs from there."""
    source = shutil.copytree(ENGINE, tmp_path / "engine", ignore=shutil.ignore_patterns(*BUILT))
    target = tmp_path / "installed"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(target),
         "./engine"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert engine_files(target / "nbconfine") == engine_files(source / "nbconfine")
    (metadata,) = target.glob("nbconfine-*.dist-info/METADATA")
    assert "nbconfine.configure(c)" in metadata.read_text()  # the README, as description
    ran = subprocess.run(
        [str(target / "bin" / "nbconfine"), "--help"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(target)))
    assert ran.returncode == 0, ran.stderr
    assert "autograde" in ran.stdout and "grades" in ran.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import nbconfine.cluster, nbconfine.feedback as f; "
         "print(nbconfine.cluster.__file__, f.TEMPLATE_BASEDIRS[0])"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(target)))
    assert where.returncode == 0, where.stderr
    module, templates = where.stdout.split()
    assert module == str(target / "nbconfine" / "cluster.py")
    assert os.path.isfile(os.path.join(templates, "readable_feedback", "index.html.j2"))
    assert templates.startswith(str(target))
