"""`make chaos`: inject faults of the grading machine into real autograde runs and check
that nothing is lost.

Each fault strikes a real `nbconfine autograde` over a fresh copy of one scratch course
(reference answers and known mistakes, both assignments); then, where the fault stops
the run, the same command runs again. The table says, per fault, what happened (exit
codes, what the report named) and whether the gradebook ends with the grades of a clean
run of the same copy, one submission row per submission.

    python tests/chaos.py [NAME ...]      (or `make chaos`; names pick faults)

Faults: the zygote SIGKILLed mid-run; a worker SIGKILLed mid-run; the wrapper SIGKILLed
while staging, while grading and while merging the gradebook copies (then run again);
PostgreSQL restarted mid-run (a private server; needs Debian's PostgreSQL, as
.ci/postgres installs it); a full disk under autograded/ (a tmpfs; root only), then run
again once there is room. Not part of `make test`: it takes minutes.
"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import processes  # noqa: E402
from catalog import MUTANTS  # noqa: E402
from coursedir import ASSIGNMENTS, NBGRADER_ENV, Course, wait_for  # noqa: E402
from pgserver import PrivateServer  # noqa: E402
from test_faults import submission_rows  # noqa: E402

STUDENTS = "cha-*"
PICKS = ("p1_unbiased_var", "bn_torch_momentum")


def build(root, env=NBGRADER_ENV):
    """A released scratch course with the chaos students submitted (not graded)."""
    course = Course(root, env=env)
    course.release()
    mutants = {m.name: m for m in MUTANTS}
    for assignment in ASSIGNMENTS:
        reference = course.reference(assignment)
        course.submit("cha-reference", assignment, reference)
        course.submit("cha-blank", assignment, {})
        for name in PICKS:
            mutant = mutants[name]
            if mutant.problem.startswith("p") == (assignment == "normalization"):
                course.submit(f"cha-{name}", assignment,
                              {**reference, f"{mutant.problem}_answer": mutant.code})
    for k in range(2):
        course.submit(f"cha-extra{k}", "normalization", course.reference("normalization"))
    return course


def start(course, jobs=2):
    return subprocess.Popen(
        [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root, "--jobs",
         str(jobs), "--students", STUDENTS], cwd=course.root, env=course.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rerun(course):
    """The same command again: (exit code, report)."""
    done = subprocess.run(
        [sys.executable, "-m", "nbconfine", "autograde", "--root", course.root, "--jobs", "2",
         "--students", STUDENTS], cwd=course.root, env=course.env, capture_output=True,
        text=True, timeout=1800)
    return done.returncode, done.stdout + done.stderr


def finished(wrapper):
    out, err = wrapper.communicate(timeout=1800)
    return wrapper.returncode, out + err


def named_events(report):
    """What a report names of the faults: restarts, graded again, not graded, removed."""
    # each worker that finds the shared zygote dead restarts one of its own: one death
    deaths = len(set(re.findall(r"zygote (\(pid \d+\) )?died and was restarted", report)))
    found = [f"zygote restarted x{deaths}"] if deaths else []
    for marker, said in (("graded again", "graded again"),
                         ("not graded:", "left ungraded"),
                         ("Removed what interrupted runs left", "stale scratch removed")):
        count = report.count(marker)
        if count:
            found.append(f"{said} x{count}")
    return ", ".join(found) or "nothing named"


def grading_under_way(course):
    return any(name.endswith(".ipynb") for _, _, names in
               os.walk(os.path.join(course.root, "autograded")) for name in names)


# Each fault: (course) -> what happened. The course is a fresh copy; it ends graded.

def zygote_killed(course):
    wrapper = start(course)
    wait_for(lambda: processes.named(processes.SANDBOX_NAME, wrapper.pid), 120, "a sandbox")
    zygote = wait_for(lambda: processes.zygote_of(wrapper.pid), 10, "the zygote")
    os.kill(zygote[0], signal.SIGKILL)
    code, report = finished(wrapper)
    return f"exit {code}; {named_events(report)}"


def worker_killed(course):
    wrapper = start(course)
    workers = wait_for(lambda: processes.named(processes.WORKER_NAME, wrapper.pid), 120,
                       "a worker")
    wait_for(lambda: processes.named(processes.SANDBOX_NAME, wrapper.pid), 120, "a sandbox")
    os.kill(workers[0], signal.SIGKILL)
    code, report = finished(wrapper)
    return f"exit {code}; {named_events(report)}"


def wrapper_killed(when):
    def fault(course):
        lock = None
        wrapper = start(course)
        if when == "staging":  # its scratch folder made, no worker yet
            wait_for(lambda: any(name.startswith(f"nbconfine-run-{wrapper.pid}-")
                                 for name in os.listdir(tempfile.gettempdir())), 120,
                     "the run's scratch folder")
        elif when == "grading":
            wait_for(lambda: grading_under_way(course), 600, "an autograded notebook")
        else:  # merging: the gradebook held by another writer until the workers are done
            wait_for(lambda: processes.named(processes.WORKER_NAME, wrapper.pid), 120,
                     "the workers")
            lock = sqlite3.connect(os.path.join(course.root, "gradebook.db"), timeout=60)
            lock.execute("BEGIN EXCLUSIVE")
            wait_for(lambda: wrapper.poll() is None and not processes.named(
                processes.WORKER_NAME, wrapper.pid), 1200, "the workers to finish")
        wrapper.kill()
        code, _ = finished(wrapper)
        if lock:
            lock.rollback()
            lock.close()
        again, report = rerun(course)
        return f"SIGKILL (exit {code}), then exit {again}; {named_events(report)}"
    return fault


def postgres_restarted(server):
    def fault(course):
        wrapper = start(course)
        wait_for(lambda: grading_under_way(course), 600, "an autograded notebook")
        server.shutdown()  # until a worker finds it gone: a submission in flight without it
        logs = os.path.join(course.root, "autograded", "logs")
        wait_for(lambda: wrapper.poll() is not None or any(
            "the gradebook's database failed" in open(os.path.join(logs, name)).read()
            for name in os.listdir(logs)), 600, "a worker to find the database gone")
        server.start()
        code, report = finished(wrapper)
        return f"exit {code}; {named_events(report)}"
    return fault


def disk_full(course):
    mount = os.path.join(course.root, "autograded")
    os.makedirs(mount, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], check=True)
    try:
        code, report = finished(start(course))
    finally:
        moved = tempfile.mkdtemp()
        subprocess.run(["cp", "-a", mount + "/.", moved], check=True)
        subprocess.run(["umount", mount], check=True)
        subprocess.run(["cp", "-a", moved + "/.", mount], check=True)
        shutil.rmtree(moved)
    again, second = rerun(course)
    return (f"exit {code} ({named_events(report)}), with room again exit {again} "
            f"({named_events(second)})")


def outcome(course, clean):
    """Whether the course's grades of the chaos students equal ``clean``'s, with one
    submission row (and one grade row per grade cell) each."""
    scores = {k: v for k, v in course.scores().items() if k[0].startswith("cha-")}
    rows = submission_rows(course.db_url)
    single = all(rows[k][0] == 1 and rows[k][1] == rows[k][2] for k in scores)
    return "yes" if scores == clean and single else "NO"


def main(names):
    work = tempfile.mkdtemp(prefix="chaos-")
    try:
        base = build(os.path.join(work, "base"))
        clean = base.clone(os.path.join(work, "clean"))
        code, report = rerun(clean)
        assert code == 0, report[-3000:]
        expected = {k: v for k, v in clean.scores().items() if k[0].startswith("cha-")}
        faults = [("zygote SIGKILL mid-run", zygote_killed),
                  ("worker SIGKILL mid-run", worker_killed),
                  ("autograde SIGKILL while staging", wrapper_killed("staging")),
                  ("autograde SIGKILL while grading", wrapper_killed("grading")),
                  ("autograde SIGKILL while merging", wrapper_killed("merging"))]
        server = None
        if os.path.isdir("/usr/lib/postgresql"):
            server = PrivateServer()
            faults.append(("PostgreSQL restarted mid-run", postgres_restarted(server)))
        if os.geteuid() == 0:
            faults.append(("full disk under autograded/", disk_full))
        chosen = [f for f in faults if not names or any(n in f[0] for n in names)]
        print(f"{'fault':<34} {'what happened':<78} {'= clean run':>11}", flush=True)
        for k, (name, inject) in enumerate(chosen):
            if "PostgreSQL" in name:  # grades do not depend on the database
                course = build(os.path.join(work, f"fault{k}"),
                               env=dict(NBGRADER_ENV, NBGRADER_DB_URL=server.url))
            else:
                course = base.clone(os.path.join(work, f"fault{k}"))
            start_time = time.monotonic()
            try:
                happened = inject(course)
            except Exception as exc:  # a fault the harness could not inject: said as it is
                happened = f"not injected ({type(exc).__name__}: {exc})"
            equal = outcome(course, expected)
            print(f"{name:<34} {happened[:78]:<78} {equal:>11}  "
                  f"({time.monotonic() - start_time:.0f} s)", flush=True)
        if server:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
