"""Autograde every submission in parallel, with a report of everything unusual.

    python -m normgrade.autograde [--jobs N] [--students GLOB]   (or `make autograde JOBS=N`)

1. Each submission in ``submitted/<student>/<assignment>/`` is checked, read-only:
   missing or renamed notebooks, notebooks that are not valid JSON, test cells deleted
   or edited (nbgrader restores them from the gradebook), stray files, symbolic links
   (such a submission is not graded). The accepted ones are copied to a staging folder,
   which is what nbgrader reads: submitted/ is never touched.
2. The students are split into ``--jobs`` groups, each graded by one real
   ``nbgrader autograde`` process (so each pays one torch import, not one per
   submission). With a SQLite gradebook each worker writes to its own copy (in memory,
   /dev/shm), and the graded students' rows are merged back at the end (nbgrader's ids
   are UUIDs, so rows never collide); SQLite slows to a crawl with two processes
   committing at once, and nbgrader commits after every graded cell.
   PostgreSQL (NBGRADER_DB_URL) is shared by the workers directly. All workers fork
   their sandboxes from one zygote, started first (one torch import for the run).
3. The end prints the per-student, per-problem table and one line per problem found.
   The report is also written to ``autograded/report.txt``.

Grades are the same for any number of jobs: every problem is graded in its own
sandbox, whatever else runs.
"""
import argparse
import fnmatch
import os
import re
import selectors
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import nbformat
from nbgrader.api import Gradebook

from normgrade import report, zygote
from normgrade.examples import ASSIGNMENTS, COURSE_ROOT

WRITTEN = re.compile(r"Writing \d+ bytes to .*/autograded/([^/]+)/([^/]+)/")
FAILED = re.compile(r"error processing assignment '([^']+)' for student '([^']+)'")
LARGE_NOTEBOOK = 20 * 2**20  # bytes
# Workers' gradebook copies are merged back and dropped: kept in memory, where nbgrader's
# commit after every graded cell costs no disk flush.
MEMORY_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def student_folders(root):
    submitted = os.path.join(root, "submitted")
    if not os.path.isdir(submitted):
        return []
    return sorted(s for s in os.listdir(submitted) if os.path.isdir(os.path.join(submitted, s)))


def submissions(root, students="*"):
    """[(student, assignment)] found in submitted/, plus report lines for unknown folders."""
    found, notes = [], []
    for student in student_folders(root):
        if not fnmatch.fnmatch(student, students):
            continue
        for assignment in sorted(os.listdir(os.path.join(root, "submitted", student))):
            folder = os.path.join(root, "submitted", student, assignment)
            if assignment in ASSIGNMENTS and os.path.isdir(folder) \
                    and not os.path.islink(folder):
                found.append((student, assignment))
            elif assignment in ASSIGNMENTS:
                notes.append(f"{student}/{assignment}: not a folder; it scores zero")
            else:
                notes.append(f"{student}/{assignment}: not an assignment of this course "
                             f"({', '.join(ASSIGNMENTS)}): ignored")
    return found, notes


def release_test_cells(root, assignment):
    """grade_id -> source of the released test cells (what a submission should hold)."""
    nb = nbformat.read(os.path.join(root, "release", assignment, ASSIGNMENTS[assignment]), 4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
            and not c.metadata["nbgrader"].get("solution")}


def symlinks(folder):
    """Paths under ``folder`` that are symbolic links (relative to it)."""
    return sorted(os.path.relpath(os.path.join(base, name), folder)
                  for base, dirs, files in os.walk(folder)
                  for name in dirs + files if os.path.islink(os.path.join(base, name)))


def precheck(root, student, assignment, expected_cells):
    """(report lines, whether to grade it) for one submission; it is never modified.

    A submission holding symbolic links is not graded: nbgrader would follow them (to the
    instructor's notebook, or any file on the grading machine).
    """
    where = f"{student}/{assignment}"
    folder = os.path.join(root, "submitted", student, assignment)
    links = symlinks(folder)
    if links:
        return [f"{where}: symbolic links are not accepted ({', '.join(links)}); not graded, "
                "it scores zero"], False
    try:
        return _precheck_files(root, where, folder, assignment, expected_cells), True
    except Exception as exc:  # whatever a submission holds, the others are graded
        return [f"{where}: could not be checked ({type(exc).__name__}: {exc})"], True


def _precheck_files(root, where, folder, assignment, expected_cells):
    lines = []
    name = ASSIGNMENTS[assignment]
    path = os.path.join(folder, name)
    release = set(os.listdir(os.path.join(root, "release", assignment)))
    others = sorted(set(os.listdir(folder)) - release - {"timestamp.txt", ".ipynb_checkpoints"})
    notebooks = [f for f in others if f.endswith(".ipynb")]
    if not os.path.exists(path):
        renamed = f" (found {', '.join(notebooks)}: renamed?)" if notebooks else ""
        return [f"{where}: {name} is missing{renamed}; it scores zero"]
    if others:
        lines.append(f"{where}: files not in the release were ignored: {', '.join(others)}")
    if os.path.getsize(path) > LARGE_NOTEBOOK:
        lines.append(f"{where}: {name} is {os.path.getsize(path) / 2**20:.0f} MB; its outputs "
                     "are cleared before grading")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # any unreadable notebook: say why, grade the others
        reason = str(exc).splitlines()[0][:200]
        return lines + [f"{where}: {name} is not a valid notebook ({reason}); it scores zero"]
    submitted = {(c.metadata.get("nbgrader") or {}).get("grade_id"): c.source
                 for c in nb.cells if c.cell_type == "code"}
    missing = sorted(set(expected_cells) - set(submitted))
    edited = sorted(g for g in expected_cells if g in submitted
                    and submitted[g] != expected_cells[g])
    if missing:
        lines.append(f"{where}: test cells deleted or stripped of their metadata, restored "
                     f"from the gradebook: {', '.join(missing)}")
    if edited:
        lines.append(f"{where}: test cells edited, restored from the gradebook: "
                     f"{', '.join(edited)}")
    return lines


# Rows of a group of students ("{s}": their ids), in the order foreign keys need.
STUDENT_ROWS = [
    ("student", "id IN ({s})"),
    ("submitted_assignment", "student_id IN ({s})"),
    ("submitted_notebook", "assignment_id IN (SELECT id FROM w.submitted_assignment "
                           "WHERE student_id IN ({s}))"),
] + [(table, "notebook_id IN (SELECT n.id FROM w.submitted_notebook n JOIN "
             "w.submitted_assignment a ON n.assignment_id = a.id WHERE a.student_id IN ({s}))")
     for table in ("grade", "comment")]


def copy_gradebook(path, copy):
    """A consistent copy of a SQLite gradebook (the backup API, safe while it is in use)."""
    with sqlite3.connect(path) as source, sqlite3.connect(copy) as target:
        source.backup(target)


def merge_gradebook(path, copy, students):
    """Write the rows of ``students`` from the worker's ``copy`` into the gradebook."""
    connection = sqlite3.connect(path, timeout=60)
    try:
        connection.execute("ATTACH DATABASE ? AS w", (copy,))
        marks = ",".join("?" * len(students))
        with connection:  # one transaction: all of a worker's students or none
            for table, rows in STUDENT_ROWS:
                connection.execute(f"INSERT OR REPLACE INTO main.{table} SELECT * FROM "
                                   f"w.{table} WHERE {rows.format(s=marks)}",
                                   list(students) * rows.count("{s}"))
    finally:
        connection.close()


def split(students, jobs):
    """``jobs`` groups of students, balanced by number of submissions."""
    groups = [[] for _ in range(max(1, min(jobs, len(students))))]
    for student, count in sorted(students.items(), key=lambda item: -item[1]):
        min(groups, key=lambda g: sum(students[s] for s in g)).append(student)
    return groups


def record_zero(db_url, submissions):
    """Put submissions that are not graded in the gradebook, so they show with zero."""
    if not submissions:
        return
    with Gradebook(db_url) as gb:
        for student, assignment in submissions:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(assignment, student)


def start_worker(root, staging, group, everyone, db_url, log, extra_env):
    """One ``nbgrader autograde`` process for the students of ``group``, reading their
    submissions from ``staging``; ``extra_env`` names the shared sandbox zygote."""
    excluded = ",".join(sorted(set(everyone) - set(group)))
    command = [sys.executable, "-m", "normgrade.worker", "autograde", "*", "--force",
               "--log-level=INFO", "--CourseDirectory.student_id=*",
               f"--CourseDirectory.submitted_directory={staging}",
               f"--CourseDirectory.student_id_exclude={excluded}"]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""), PYTHONWARNINGS="ignore", NBGRADER_DB_URL=db_url,
               **extra_env)
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.PIPE,
                            text=True, bufsize=1)


def run_workers(root, staging, groups, total, progress):
    """Run the workers on the submissions copied to ``staging``; returns
    {(student, assignment): error line} of nbgrader failures."""
    url = report.db_url(root)
    sqlite_path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    private = sqlite_path is not None
    scratch = tempfile.mkdtemp(prefix="normgrade-", dir=MEMORY_DIR) if private else None
    urls = []
    for k in range(len(groups)):
        if private:
            copy = os.path.join(scratch, f"worker{k}.db")
            copy_gradebook(sqlite_path, copy)
            urls.append("sqlite:///" + copy)
        else:
            urls.append(url)
    try:
        with zygote.serve() as shared_zygote:
            failures = _watch(root, staging, groups, urls, total, progress, shared_zygote)
        if private:
            for group, worker_url in zip(groups, urls):
                merge_gradebook(sqlite_path, worker_url[len("sqlite:///"):], group)
    finally:
        if scratch:
            shutil.rmtree(scratch)
    return failures


def _watch(root, staging, groups, urls, total, progress, extra_env):
    """Start one worker per group; follow their logs for progress and failures.

    Each worker's log is kept in autograded/logs/worker-<k>.log.
    """
    failures, done = {}, set()
    logs = os.path.join(root, "autograded", "logs")
    os.makedirs(logs, exist_ok=True)
    files = [open(os.path.join(logs, f"worker-{k}.log"), "w") for k in range(len(groups))]
    everyone = [student for group in groups for student in group]
    workers = [start_worker(root, staging, g, everyone, u, f, extra_env)
               for g, u, f in zip(groups, urls, files)]
    log_of = {w.stderr.fileno(): (w, f, f"autograded/logs/worker-{k}.log")
              for k, (w, f) in enumerate(zip(workers, files))}
    selector = selectors.DefaultSelector()
    for worker in workers:
        selector.register(worker.stderr, selectors.EVENT_READ)
    while log_of:
        for key, _ in selector.select():
            line = key.fileobj.readline()
            worker, file, log_name = log_of[key.fileobj.fileno()]
            if not line:
                selector.unregister(key.fileobj)
                del log_of[key.fileobj.fileno()]
                worker.wait()
                file.close()
                continue
            file.write(line)
            if (match := WRITTEN.search(line)):
                finished = match.groups()
            elif (match := FAILED.search(line)):
                assignment, student = match.groups()
                failures[student, assignment] = f"nbgrader could not grade it (see {log_name})"
                finished = (student, assignment)
            else:
                continue
            if finished not in done:
                done.add(finished)
                progress(len(done), total)
    return failures


def progress_bar(done, total, stream=sys.stderr):
    """A bar redrawn in place on a terminal; in a log, a line every tenth of the way."""
    width = 30
    filled = width * done // max(total, 1)
    if stream.isatty() or done == total or done % max(1, total // 10) == 0:
        end = "\n" if done == total or not stream.isatty() else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} submissions{end}")
        stream.flush()


def autograde(root=COURSE_ROOT, jobs=os.cpu_count(), students="*", progress=progress_bar):
    """Grade every submission; returns the report text."""
    start = time.monotonic()
    found, notes = submissions(root, students)
    if not found:
        return "No submissions in submitted/: nothing to grade."
    expected = {a: release_test_cells(root, a) for a in ASSIGNMENTS}
    graded, rejected = [], []
    for student, assignment in found:
        lines, grade = precheck(root, student, assignment, expected[assignment])
        notes += lines
        (graded if grade else rejected).append((student, assignment))
    record_zero(report.db_url(root), rejected)
    per_student = {}
    for student, _ in graded:
        per_student[student] = per_student.get(student, 0) + 1
    groups = split(per_student, jobs)
    with tempfile.TemporaryDirectory(prefix="normgrade-submitted-") as staging:
        for student, assignment in graded:
            shutil.copytree(os.path.join(root, "submitted", student, assignment),
                            os.path.join(staging, student, assignment))
        failures = run_workers(root, staging, groups, len(graded), progress) if graded else {}
    noted = {line.split(":")[0] for line in notes}
    notes += [f"{s}/{a}: {why}" for (s, a), why in sorted(failures.items())
              if f"{s}/{a}" not in noted]
    table = report.format_table(report.problem_scores(report.db_url(root)))
    text_report = "\n".join(
        [table, "", f"Graded {len(graded)} submissions with {len(groups)} jobs in "
                    f"{time.monotonic() - start:.1f} s.", f"Problems found: {len(notes)}"]
        + [f"  {line}" for line in notes])
    with open(os.path.join(root, "autograded", "report.txt"), "w") as f:
        f.write(text_report + "\n")
    return text_report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--students", default="*", help="glob of student ids to grade")
    parser.add_argument("--root", default=COURSE_ROOT)
    args = parser.parse_args()
    print(autograde(args.root, args.jobs, args.students))


if __name__ == "__main__":
    main()
