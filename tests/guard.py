"""`make guard`: break the grader on purpose and check that the tests notice.

Each breakage below is one or more small textual substitutions in the repository (each
must match exactly once, or the breakage "no longer applies": update it). Every breakage
is applied to a fresh copy of the repository, where the tests named for it run
(`pytest -x -q`, this interpreter). A breakage is killed when they fail. The table says,
per breakage, which tests ran, killed or SURVIVED, and the seconds it took; the exit code
is non-zero if any breakage survives, no longer applies, or its tests cannot run.

    python tests/guard.py [--jobs N] [NAME ...]   (or `make guard`; names pick breakages)

``--jobs``: breakages tried at once (each in its own copy; `make guard` uses JOBS). The
PostgreSQL and Dask tests some breakages name need NORMGRADE_TEST_PG_URL, as in `make test`.

After a change to the grader, keep each snippet short and on code that changes rarely.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from coursedir import checkout

TIMEOUT = 900  # seconds for one breakage's tests


@dataclass
class Breakage:
    name: str
    why: str                # the guarantee it breaks
    edits: list             # [(path in the repo, old text, new text)]
    tests: list             # pytest arguments: files, node ids, -k expressions


ENGINE = "engine/nbconfine/"
AUTOGRADE, EXECUTE, SANDBOX = ENGINE + "autograde.py", ENGINE + "problems.py", \
    ENGINE + "sandbox.py"
ZYGOTE, WORKER = ENGINE + "zygote.py", ENGINE + "worker.py"
FAULTS = "tests/test_faults.py"
REMOTE, REGRADE = ENGINE + "remote.py", ENGINE + "regrade.py"
CONFINE, FEEDBACK, SETTINGS = ENGINE + "confine.py", ENGINE + "feedback.py", \
    ENGINE + "__init__.py"
CLUSTER, SETTINGS_FILE = ENGINE + "cluster.py", ENGINE + "settings.py"
NORMCHECK, CONFIG = "course/normcheck.py", "nbgrader_config.py"
KERNEL, NOTEBOOK = ENGINE + "kernel.py", ENGINE + "notebook.py"
NOTEBOOK_MODE = "tests/test_notebook_mode.py"  # the stock course, graded both ways
EDGE = "tests/test_autograde.py"  # its `edge` run grades many unusual submissions
SERVE, HANDBACK = ENGINE + "serve.py", ENGINE + "handback.py"
# its tests run in order on one course: by hand, then the service, then make demo
EXCHANGE_ROUND = "tests/test_serve.py"

BREAKAGES = [
    Breakage("hidden_code_kept", "HideHiddenTests keeps the hidden test code",
             [(FEEDBACK, "cell.source = summary + ", "cell.source += ")],
             [EDGE, "-k", "feedback_hides_hidden_tests"]),
    Breakage("feedback_hiding_off", "generate_feedback without HideHiddenTests",
             [(SETTINGS, '        "nbconfine.feedback.HideHiddenTests",\n', "")],
             [EDGE, "-k", "feedback_hides_hidden_tests"]),
    Breakage("whole_notebook_zero_not_recorded", "an ungradable notebook left out of the "
             "gradebook", [(WORKER, "        regrade.record_zero(app.coursedir.db_url, "
                                  "[(student, assignment)])\n", "")],
             [EDGE, "-k", "ungradable_notebook"]),
    Breakage("only_worker_0_merged", "the rows of workers other than the first are lost",
             [(AUTOGRADE, "for slot, students in enumerate(pool.students):",
               "for slot, students in list(enumerate(pool.students))[:1]:")],
             ["tests/test_parallel.py", "-k", "two_jobs_give or regrade"]),
    Breakage("worker_grades_not_merged", "a worker's grade rows are not merged back",
             [(AUTOGRADE, 'for table in ("grade", "comment")]', 'for table in ("comment",)]')],
             ["tests/test_parallel.py", "-k", "two_jobs_give or regrade"]),
    Breakage("glob_ids_star_question", "student ids with * or ? reach nbgrader",
             [(AUTOGRADE, 'GLOB_CHARACTERS = set("*?[]")', 'GLOB_CHARACTERS = set("[]")')],
             [EDGE, "-k", "glob_pattern"]),
    Breakage("value_tolerance_1e-2", "outputs and statistics within 1e-2 instead of 1e-4",
             [(NORMCHECK, "RTOL, ATOL = 1e-4, 1e-4", "RTOL, ATOL = 1e-2, 1e-2")],
             ["tests/test_tolerances.py"]),
    Breakage("gradient_tolerance_1e-4", "gradients within rtol 1e-4 instead of 1e-6",
             [(NORMCHECK, "GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-8",
               "GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-8")],
             ["tests/test_tolerances.py"]),
    Breakage("float32_grad_tolerance_constant", "float32 gradients within the former fixed "
             "1e-4 of their size, not torch's own float32 error",
             [(NORMCHECK, "allowed = _float32_allowed(want, want32.reshape(want.shape), count)",
               "allowed = 1e-4 * (want.abs() + want.abs().max())")],
             ["tests/test_tolerances.py", "-k", "float32_answers_pass"]),
    Breakage("float32_grad_tolerance_100x", "float32 gradients within 100 times the "
             "allowance", [(NORMCHECK, "FLOAT32_GRAD_FACTOR = 16", "FLOAT32_GRAD_FACTOR = 1600")],
             ["tests/test_tolerances.py", "-k", "float32_gradient_mistakes"]),
    Breakage("edited_cells_kept", "edited test cells are graded as the student left them "
             "(both restorations off: nbgrader's and the grader's)",
             [(EXECUTE, "cell.source = self.sources[grade_id(cell)]", "pass"),
              (CONFIG, "c.OverwriteCells.add_missing_cells = True",
               "c.OverwriteCells.enabled = False")],
             [EDGE, "-k", "edited_test_cells"]),
    Breakage("instructor_cells_from_submission", "what a cell is, and its code, taken from "
             "the submission instead of the gradebook",
             [(EXECUTE, "if info else CellKinds.from_notebook(nb, grouping))",
               "if False else CellKinds.from_notebook(nb, grouping))")],
             [EDGE, "-k", "instructor_cells_come_from_the_gradebook"]),
    Breakage("locked_cells_in_submission_order", "a problem's instructor cells run in the "
             "order the submission moved them to (seed tests moved last come too late)",
             [(EXECUTE, "                nb.cells[place] = cell\n", "                pass\n")],
             ["tests/test_attacks.py", "-k", "seed_tests_moved_last"]),
    Breakage("shared_cells_in_submission_order", "the setup cell runs where the submission "
             "put it (moved last, never: the tests take the learner's `check`)",
             [(EXECUTE, 'return shared + [i for i in range(last + 1) if roles[i][0] != "setup"]',
               "return list(range(last + 1))")],
             ["tests/test_attacks.py", "-k", "setup_moved_last"]),
    Breakage("memory_limit_off", "a sandbox may use any amount of memory",
             [(CONFINE, "resource.setrlimit(resource.RLIMIT_AS,", "(resource.RLIMIT_AS,")],
             [EDGE, "-k", "memory_limit"]),
    Breakage("timeout_off", "a cell may run forever",
             [(EXECUTE, "self.sandbox.deadline = time.monotonic() + self.timeout",
               "self.sandbox.deadline = None")],
             [EDGE, "-k", "time_limit"]),
    Breakage("stderr_counted_as_success", "a failing check's message goes to stderr, which "
             "the grader folds into stdout: the cell passes",
             [(EXECUTE, "                outputs.append(error_output(type(exc).__name__, "
                        "str(exc)))\n",
               "                print(f\"{type(exc).__name__}: {exc}\", file=sys.stderr)\n")],
             [EDGE, "-k", "untouched_release_gets_nothing"]),
    Breakage("forbidden_ops_ignored", "torch's own normalization is never judged by the "
             "operators an answer ran",
             [(NORMCHECK, "return sorted(op for op in ops if FORBIDDEN_OP.search(op))",
               "return []")],
             [EDGE, "-k", "computed_name"]),
    Breakage("sandbox_kill_weakened", "no PID namespace per sandbox, and only the sandbox "
             "process is killed, not its process group nor its user's processes",
             [(CONFINE, '_check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")', "pass"),
              (SANDBOX, "            _kill(-self.pid)", "            pass"),
              (SANDBOX, "if os.geteuid() == 0 and not self.own_pid_namespace:", "if False:")],
             ["tests/test_engine_paths.py", "tests/test_attacks.py", "-k",
              "setsid or orphan"]),
    Breakage("zygote_not_restarted", "a dead zygote is not restarted: the rest of the run "
             "cannot be graded",
             [(ZYGOTE, "        except ZygoteGone:\n            self.restart()\n        try:",
               "        except ZygoteGone:\n            pass\n        try:")],
             [FAULTS, "-k", "zygote_killed"]),
    Breakage("lost_problem_not_graded_again", "a problem whose sandbox died with the zygote "
             "keeps the failures of its lost sandbox",
             [(EXECUTE, "            if not session.zygote_lost:", "            if True:")],
             [FAULTS, "-k", "zygote_killed"]),
    Breakage("dead_worker_student_not_graded_again", "a dead worker's student is left "
             "ungraded instead of graded again",
             [(AUTOGRADE, "if deaths[student] == 1:", "if deaths[student] == 0:")],
             [FAULTS, "-k", "worker_killed"]),
    Breakage("grader_fault_zeroed", "a submission the grader failed scores zero (a fault "
             "taken for nbgrader's refusal)",
             [(WORKER, "            return FAULT, why, notes\n",
               "            return REFUSED, why, notes\n")],
             [FAULTS, "-k", "cannot_be_restarted"]),
    Breakage("ungraded_rows_not_put_back", "a submission left ungraded keeps what the failed "
             "grading wrote",
             [(AUTOGRADE, "        kept.restore(run.left(FAULT))\n", "")],
             [FAULTS, "-k", "cannot_be_restarted or full_disk"]),
    Breakage("dead_runs_scratch_kept", "what a killed run left is never removed",
             [(ENGINE + "runs.py", "            shutil.rmtree(path, ignore_errors=True)\n"
                          "            removed.append(path)\n", "")],
             ["tests/test_engine_paths.py", "-k", "dead_runs"]),
    Breakage("other_users_runs_removed", "a run removes another user's dead runs' folders",
             [(ENGINE + "runs.py", "        if os.lstat(path).st_uid != os.getuid():\n"
               "            return False  # another user's\n", "")],
             ["tests/test_engine_paths.py", "-k", "dead_runs"]),
    Breakage("zygote_root_named_in_its_namespace", "a killed zygote's empty root is named "
             "with its pid in its own PID namespace (1): no later run removes it",
             [(CONFINE, "runs.make(None, pid=_host_pid())", "runs.make(None)")],
             ["tests/test_engine_paths.py", "-k", "killed_zygote"]),
    Breakage("zygote_socket_in_a_temporary_folder", "the socket folder of a zygote serving "
             "several processes is a plain temporary folder: a killed service leaves it",
             [(ZYGOTE, "with runs.run_folder(folder) as private:",
               'with __import__("tempfile").TemporaryDirectory(prefix="nbconfine-zygote-", '
               'dir=folder) as private:')],
             ["tests/test_engine_paths.py", "-k", "killed_zygote"]),
    Breakage("database_not_waited_for", "a lost gradebook database leaves the submissions "
             "in flight ungraded",
             [(WORKER, "if kind != faults.DATABASE or attempt == DATABASE_TRIES:", "if True:")],
             [FAULTS, "-k", "postgresql"]),
    Breakage("sandbox_pid_namespace_off", "sandboxes share the zygote's PID namespace: a "
             "child that calls os.setsid() escapes its sandbox's kill",
             [(CONFINE, '_check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")', "pass")],
             ["tests/test_engine_paths.py", "-k", "setsid"]),
    Breakage("problem_sandbox_forks", "a problem's sandbox may fork: each child gets a "
             "memory allowance of its own", [(CONFINE, "        if not processes:\n",
                                              "        if False:\n")],
             ["tests/test_engine_paths.py", "-k", "threads_but"]),
    Breakage("open_files_unbounded", "a sandbox keeps the grader's open-file limit and may "
             "raise it: kernel buffers beyond its memory allowance",
             [(CONFINE, "    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, "
               "open_files))\n", "")],
             ["tests/test_engine_paths.py", "-k", "threads_but"]),
    Breakage("skip_tag_kept_on_tests", "a test cell tagged skip-execution is never run: "
             "a blank notebook gets its points", [(ENGINE + "cellroles.py",
                                                   "and SKIP_TAG in tags:", "and False:")],
             [NOTEBOOK_MODE, "-k", "skip_execution"]),
    Breakage("notebook_stderr_as_stdout", "notebook mode records stderr as stdout (a test "
             "cell that warns keeps its points)",
             [(KERNEL, 'Stream("stderr", 2, capture)', 'Stream("stdout", 2, capture)')],
             [NOTEBOOK_MODE, "-k", "as_stock_nbgrader"]),
    Breakage("notebook_folder_not_copied", "a notebook sandbox works in an empty folder (the "
             "assignment's data file is missing)",
             [(CONFINE, "    _copy_tree(files.source_fd, workdir)\n", "")],
             [NOTEBOOK_MODE, "-k", "as_stock_nbgrader"]),
    Breakage("notebook_timeout_error_dropped", "a timed-out cell lacks nbgrader's "
             "CellTimeoutError", [(NOTEBOOK, "add_reply_error(outputs, nbformat.from_dict(",
                                   "(nbformat.from_dict(")],
             [NOTEBOOK_MODE, "-k", "outputs_are"]),
    Breakage("notebook_no_execute_ignored", "`nbgrader autograde --no-execute` runs the "
             "cells anyway (the outputs the student saved are not what is graded)",
             [(ENGINE + "execute.py", "return Execute(parent=self).enabled", "return True")],
             [NOTEBOOK_MODE, "-k", "no_execute"]),
    Breakage("notebook_hidden_error_dropped", "a cell that keeps IPython from showing its "
             "error (a replaced showtraceback) keeps its points",
             [(NOTEBOOK, 'add_reply_error(outputs, reply["error"])', "pass")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_pager_printed", "the pager's text (`obj?`) is a stdout output, not "
             "the reply's payload nbclient drops",
             [(KERNEL, '        self.set_hook("show_in_pager"', "        (")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_getpass_reads_stdin", "getpass.getpass() in a notebook sandbox reads "
             "stdin (EOFError after a warning on stderr), not ipykernel's error",
             [(KERNEL, "    getpass.getpass = _no_getpass\n", "")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_nbagg_refused", "%matplotlib notebook is refused (a UsageError)",
             [(KERNEL, "if gui not in NO_EVENT_LOOP:", 'if gui not in (None, "inline"):')],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_shell_environment_missing", "ipykernel's TERM, FORCE_COLOR, PAGER... "
             "missing from a notebook sandbox's environment",
             [(KERNEL, "                      **SHELL_ENVIRONMENT)", "                      )")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_path_without_interpreter", "`!python` in a notebook is not the "
             "environment's interpreter",
             [(ZYGOTE, "[os.path.dirname(sys.executable), ", "[")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_context_per_cell", "each notebook cell runs in a context of its own: "
             "decimal's precision or numpy's seterr set in one cell is gone in the next",
             [(KERNEL, ', context=context)', ')')],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_reads_no_fonts", "fontconfig's files unreadable: the cell where "
             "matplotlib first lists fonts gets fc-list's error on stderr",
             [(KERNEL, '"/etc/fonts", ', "")],
             [NOTEBOOK_MODE, "-k", "behaves_as_ipykernel"]),
    Breakage("notebook_landlock_reads_everything", "without namespaces, Landlock lets a "
             "notebook sandbox read every file",
             [(CONFINE, "    return readable + [(os.path.dirname(files.workdir), LANDLOCK_WRITE)]",
               '    return [("/", LANDLOCK_RUN)] + [(os.path.dirname(files.workdir), '
               'LANDLOCK_WRITE)]')],
             [NOTEBOOK_MODE, "-k", "without_namespaces"]),
    Breakage("notebook_reads_etc", "a notebook sandbox reads /etc (the machine's users in "
             "/etc/passwd), not only the loader's cache, the alternatives and the time zone",
             [(KERNEL, '"/etc/ld.so.cache",', '"/etc",')],
             [NOTEBOOK_MODE, "-k", "probes_reach_nothing_as_root"]),
    Breakage("notebook_tasks_unbounded", "a notebook sandbox may start any number of threads "
             "and processes: a fork bomb",
             [(CONFINE, "TASKS, NOTEBOOK_TASKS = 64, 512", "TASKS, NOTEBOOK_TASKS = 64, 2**20")],
             ["tests/test_engine_paths.py", "-k", "hundreds_of_threads"]),
    Breakage("tasks_need_the_engine", "the cluster's tasks name the engine's function: the "
             "Dask scheduler, which unpickles them, must have nbconfine installed",
             [(CLUSTER, "client.submit(*call.submit_args(), pure=False,",
               "client.submit(grade_submission, *call.args, pure=False,")],
             ["tests/test_cluster.py", "-k", "needs_nothing"]),
    Breakage("local_run_imports_dask", "every local run imports Dask with the cluster's "
             "worker plugin (0.3 to 0.5 s a command)",
             [(CLUSTER, "async def dask_setup(worker):",
               "from nbconfine.clusterplugin import GraderPlugin  # noqa: E402\n\n\n"
               "async def dask_setup(worker):")],
             [NOTEBOOK_MODE, "-k", "nothing_imports"]),
    Breakage("cluster_without_source_files", "a cluster task leaves out the assignment's files "
             "of source/: a student's edited copy of a data file is graded",
             [(CLUSTER, 'instructor = {a: read_tree(os.path.join(root, "source", a), '
                        'skip=("*.ipynb",))', "instructor = {a: {}")],
             ["tests/test_cluster.py", "-k", "notebook_mode"]),
    Breakage("oldest_submission_taken", "a student's oldest submission is graded, not the "
             "latest", [(HANDBACK, "moment > latest[arrival.key][0]",
                         "moment < latest[arrival.key][0]")],
             [EXCHANGE_ROUND, "-k", "latest_complete"]),
    Breakage("incomplete_submission_taken", "a submission still being copied into the "
             "exchange is collected", [(HANDBACK, "return stat.S_IMODE(info.st_mode) == 0o777 or",
                                        "return True or")],
             [EXCHANGE_ROUND, "-k", "latest_complete"]),
    Breakage("symbolic_links_collected", "collect copies with nbgrader's copy, which follows "
             "a link the student made after the engine's checks",
             [(HANDBACK, "copy_regular(src, copied, 1000 * self.coursedir.max_dir_size)",
               "copied = src")], [EXCHANGE_ROUND, "-k", "link"]),
    Breakage("forged_submission_taken", "a folder in a student's name made by another, dated "
             "later, is taken for theirs", [(HANDBACK, "        if check_owner:\n",
                                              "        if False:\n")],
             [EXCHANGE_ROUND, "-k", "by_hand"]),
    Breakage("exchange_root_unchecked", "publish, collect, return and serve use an exchange "
             "root not as `make exchange` makes it (nbgrader creates one, not sticky)",
             [(ENGINE + "exchange.py", "if stat.S_ISDIR(info.st_mode) and info.st_mode & "
               "ROOT_MODE == ROOT_MODE:", "if True:")],
             [EXCHANGE_ROUND, "-k", "exchange_root"]),
    Breakage("exchange_root_forgotten", "a root made with `make exchange EXCHANGE=DIR` is not "
             "the course's later commands' root",
             [(ENGINE + "exchange.py", "            return f.read().strip()", "            pass")],
             [EXCHANGE_ROUND, "-k", "exchange_root"]),
    Breakage("secret_is_a_stray_file", "every exchange submission is reported: "
             "submission_secret.txt counted as a file not in the release",
             [(AUTOGRADE, '"submission_secret.txt", ', "")], [EXCHANGE_ROUND, "-k", "by_hand"]),
    Breakage("feedback_for_every_assignment", "make feedback asks nbgrader for an assignment "
             "nobody submitted: exit 1, nothing returned after it",
             [("Makefile", "\t$(NBCONFINE) feedback\n", "\t$(foreach a,$(ASSIGNMENTS),"
               "$(NBGRADER) generate_feedback $(a) --force && ) true\n")],
             [EXCHANGE_ROUND, "-k", "by_hand"]),
    Breakage("return_without_a_secret", "make return hands nbgrader the feedback of a "
             "submission not from the exchange (its FileNotFoundError)",
             [(HANDBACK, "        if not os.path.exists(os.path.join(folder, name)):",
               "        if False:")], [EXCHANGE_ROUND, "-k", "by_hand or demo"]),
    Breakage("ledger_ignored", "the service grades again submissions whose feedback is out",
             [(SERVE, "if key not in ledger or ledger[key].time < arrival.time),", "if True),")],
             [EXCHANGE_ROUND, "-k", "by_hand or returns_feedback"]),
    Breakage("sigterm_drops_the_round", "SIGTERM stops the service at once, its round "
             "unfinished", [(SERVE, "        if not self.busy:\n            raise Stopped\n",
                             "        raise Stopped\n")],
             [EXCHANGE_ROUND, "-k", "by_hand or returns_feedback"]),
    Breakage("reply_read_as_any_pickle", "a sandbox's reply unpickled as plain pickle "
             "would: a forged reply runs code in the grader",
             [(REMOTE, "reply = _PlainUnpickler(io.BytesIO(raw), buffers=buffers).load()",
               "reply = pickle.loads(raw, buffers=buffers)")],
             ["tests/test_attacks.py", "-k", "forged_reply_is_real"]),
    Breakage("tensor_conj_neg_kept", "a conjugated or negated view crosses the wire as "
             "its raw memory", [(REMOTE, "tensor = tensor.resolve_conj().resolve_neg().cpu()",
                                 "tensor = tensor.cpu()")],
             ["tests/test_engine_paths.py", "-k", "crosses_the_wire"]),
    Breakage("kept_tensor_shared", "a large input kept in the sandbox is handed to the "
             "answer itself: what the answer changes in place, the next call sees",
             [(REMOTE, "    return _KEPT[number].clone()", "    return _KEPT[number]")],
             ["tests/test_engine_paths.py", "-k", "sent_again"]),
    Breakage("unused_sandbox_left_waiting", "a sandbox forked ahead and never taken is "
             "not let go: it waits, confined, for requests that never come",
             [(SANDBOX, "            self.asked.sock.close()\n            self.asked.sock = None\n",
               "            pass\n")],
             ["tests/test_engine_paths.py", "-k", "forked_ahead"]),
    Breakage("hand_grade_records_lost", "the hand-grade records are not written: a hand "
             "grade is flagged for review again on every autograde",
             [(REGRADE, "                db.execute(insert(HAND_GRADE_TABLE), self.hand_rows)\n",
               "")],
             ["tests/test_exchange.py", "-k", "hand_grade"]),
    Breakage("database_fault_hidden_by_nbgrader", "a lost database that nbgrader re-raises "
             "as its InvalidEntry scores zero instead of being graded again",
             [(ENGINE + "faults.py", "        exc = exc.__cause__ or exc.__context__\n",
               "        exc = None\n")],
             ["tests/test_engine_paths.py", "-k", "database_fault"]),
    Breakage("worker_holds_two_submissions", "Dask's default worker-saturation: a worker "
             "killed by one submission counts a try against the one queued behind it",
             [("Makefile", "\t  DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 \\\n", "")],
             ["tests/test_cluster.py", "-k", "keeps_killing"]),
    Breakage("scheduler_loss_a_traceback", "a scheduler lost mid-run ends the run in a "
             "traceback that names no submission and says nothing of what to do",
             [(CLUSTER, '            if client.status == "running":\n', "            if True:\n")],
             ["tests/test_cluster.py", "-k", "scheduler_lost"]),
    Breakage("scheduler_loss_grades_overwritten", "a scheduler lost mid-run: the previous "
             "grades said kept are put back before the worker still grading the submission "
             "has written its own, which then stay",
             [(CLUSTER, "    let_go(db_url, [s for s in sent if outcomes.get(s) == (FAULT, lost)], "
                        "outcomes)\n", "")],
             ["tests/test_cluster.py", "-k", "scheduler_lost"]),
    Breakage("serve_never_reconnects", "make serve on a cluster keeps a client Dask closed "
             "when the scheduler was lost: no round grades again once it is back",
             [(SERVE, '            if self.client.status != "running":  # its scheduler was lost',
               "            if False:")],
             ["tests/test_cluster.py", "-k", "make_serve"]),
    Breakage("full_temporary_folder_a_traceback", "a full TMPDIR (copytree's aggregated "
             "errors) ends the run in a traceback instead of naming the fault",
             [(ENGINE + "faults.py", "    if isinstance(exc, shutil.Error):", "    if False:")],
             [FAULTS, "-k", "temporary"]),
    Breakage("deep_tmpdir_socket_too_long", "the zygote's socket in a deep TMPDIR exceeds a "
             "Unix socket address: no run starts there",
             [(ZYGOTE, "    if len(os.fsencode(path)) < 100:", "    if True:")],
             ["tests/test_engine_paths.py", "-k", "deep_folder"]),
    Breakage("broken_configuration_a_traceback", "a course's nbgrader_config.py that cannot "
             "be run ends every command in a traceback",
             [(SETTINGS_FILE, "            raise NotConfigured(_unreadable(path, exc)) from None",
               "            raise")],
             ["tests/test_engine_paths.py", "-k", "configuration_that"]),
    Breakage("zygote_on_small_pages", "the zygote's memory is left on 4 KiB pages: every "
             "fork copies and every sandbox's exit frees 512 times the page-table entries",
             [(ZYGOTE, ',\n            "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}', "}")],
             ["tests/test_engine_paths.py", "-k", "huge_pages"]),
    Breakage("rehearsal_draws_random_numbers", "a sandbox's rehearsal leaves torch's random "
             "state moved: a learner's random numbers differ with the grader's processors",
             [(REMOTE, "            torch.set_rng_state(random_state)\n", "")],
             ["tests/test_engine_paths.py", "-k", "rehearses"]),
    Breakage("rehearsal_never_runs", "sandboxes forked ahead never rehearse: a problem's "
             "first checks wait for the memory they touch",
             [(REMOTE, 'if setup.get("rehearse"):', 'if setup.get("never"):')],
             ["tests/test_engine_paths.py", "-k", "rehearses"]),
    Breakage("early_kernel_never_taken", "`nbgrader validate` launches a second kernel "
             "while the one started early waits: the command loses the head start",
             [(ENGINE + "validation.py", "if self._early_connection else None",
               "if False else None")],
             ["tests/test_messages.py", "-k", "takes_the_kernel"]),
    Breakage("early_kernel_taken_unchecked", "the Validator takes the kernel started early "
             "though it was launched with another command than the one it asked for",
             [(ENGINE + "early_kernel.py", "list(cmd) != early.cmd \\\n            or ", "")],
             ["tests/test_messages.py", "-k", "not_it"]),
    Breakage("early_kernel_outlives_the_command", "a kernel started early and never taken "
             "keeps running after `nbgrader validate` exits",
             [(ENGINE + "early_kernel.py", "        atexit.register(discard)\n", "")],
             ["tests/test_messages.py", "-k", "stops_before_running"]),
    Breakage("early_kernel_imports_nothing", "the kernel started early waits for the first "
             "cell to import torch: `nbgrader validate` loses the overlap",
             [(ENGINE + "early_kernel.py", "if imports and _kernel_config_installed():",
               "if False:")],
             ["tests/test_messages.py", "-k", "installed_modules"]),
    Breakage("early_kernel_imports_local_modules", "the kernel started early runs the "
             "notebook folder's own modules, even in a kernel nbgrader does not take",
             [(ENGINE + "early_kernel.py",
               "\n            if PathFinder.find_spec(m.partition(\".\")[0], [folder]) is None]",
               "]")],
             ["tests/test_messages.py", "-k", "installed_modules or leading_imports"]),
    Breakage("early_imports_output_lost", "what a module prints as the kernel started early "
             "imports it never reaches the first cell: a warning no longer fails it",
             [(ENGINE + "jupyter/early_imports.py",
               "if any(stream.getvalue() for stream in printed.values()):", "if not printed:")],
             ["tests/test_messages.py", "-k", "reported_as"]),
]


def apply(breakage, root):
    """Apply ``breakage`` to the copy at ``root``; returns why it no longer applies, or None."""
    for path, old, new in breakage.edits:
        full = os.path.join(root, path)
        text = open(full).read() if os.path.exists(full) else ""
        if text.count(old) != 1:
            return f"{path}: {old!r} found {text.count(old)} times"
        with open(full, "w") as f:
            f.write(text.replace(old, new))
    return None


def run(breakage):
    """(outcome, seconds, detail) of one breakage, in a fresh copy of the repository."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"guard-{breakage.name}-") as scratch:
        os.chmod(scratch, 0o755)  # tests that run as other users import the copy's engine
        root = checkout(os.path.join(scratch, "repo"))
        stale = apply(breakage, root)
        if stale:
            return "NO LONGER APPLIES", time.monotonic() - start, stale
        try:
            # the copy's engine, not the one installed (editable) from this checkout
            env = dict(os.environ, PYTHONPATH=os.path.join(root, "engine"))
            done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q",
                                   "-p", "no:cacheprovider", *breakage.tests], env=env,
                                  cwd=root, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return "killed (timed out)", time.monotonic() - start, ""
        lines = done.stdout.strip().splitlines() or [""]
        failed = [line.split(" - ")[0] for line in lines if line.startswith("FAILED ")]
        outcome = {0: "SURVIVED", 1: "killed"}.get(done.returncode, "TESTS DID NOT RUN")
        return outcome, time.monotonic() - start, (failed or lines)[-1]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="breakages tried at once")
    parser.add_argument("names", nargs="*", help="breakages to try (default: all)")
    args = parser.parse_args(argv)
    chosen = [b for b in BREAKAGES if not args.names or b.name in args.names]
    unknown = set(args.names) - {b.name for b in BREAKAGES}
    if unknown:
        sys.exit(f"unknown breakage(s): {', '.join(sorted(unknown))}")
    rows, start = [], time.monotonic()
    print(f"{'breakage':<34} {'tests':<58} {'outcome':<18} {'s':>5}", flush=True)
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        tries = {pool.submit(run, breakage): breakage for breakage in chosen}
        for done in concurrent.futures.as_completed(tries):
            breakage = tries[done]
            outcome, seconds, detail = done.result()
            rows.append(outcome)
            tests = " ".join(breakage.tests).replace("tests/", "")
            print(f"{breakage.name:<34} {tests:<58} {outcome:<18} {seconds:5.0f}", flush=True)
            if outcome == "killed":
                print(f"    by {detail}", flush=True)
            elif detail:
                print(f"    {breakage.why}: {detail}", flush=True)
    bad = [o for o in rows if not o.startswith("killed")]
    print(f"{len(rows) - len(bad)} of {len(rows)} breakages killed in "
          f"{time.monotonic() - start:.0f} s", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
