"""Grades from the gradebook: grades.csv, grades_by_problem.csv, a printed table and
grades_distribution.png (each problem's score distribution).

    nbconfine grades [--root COURSE]

Problems are the course's (``c.Problems``, nbconfine.layout), named in the table's legend
as the notebooks name them.
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

from nbgrader.api import Gradebook

from nbconfine.layout import Problems, private_like, problem_titles
from nbconfine.settings import load_config, read_config


def db_url(root):
    """The gradebook of the course at ``root``, as nbgrader finds it: its nbgrader_config.py's
    c.CourseDirectory.db_url (which nbconfine.configure sets from NBGRADER_DB_URL unless
    the course does), else SQLite in the course."""
    url = read_config(root).CourseDirectory.get("db_url")
    return url or os.environ.get("NBGRADER_DB_URL",
                                 "sqlite:///" + os.path.join(root, "gradebook.db"))


def shown(name):
    """A name a learner chose (a file, a student or assignment folder) as the report prints
    it: as it is if printable, else quoted with its control characters escaped, so that
    it cannot forge report lines or move the instructor's terminal."""
    return name if name.isprintable() else repr(name)


def count(number, noun):
    """"1 submission", "2 submissions": a report's words for a number of things."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def named(student, assignment):
    """A submission as report lines name it (``shown``: as the learner named its folders)."""
    return f"{shown(student)}/{shown(assignment)}"


def problem_scores(url, problems):
    """{(student, assignment): {problem: [score, max_score]}} for every submission;
    problems: the course's Problems.

    An answer (written or code) not graded by hand yet scores None; anything else never
    graded, 0. (A regrade flags hand-given scores for review again, but keeps and counts
    them.) Problems come in the gradebook's order (``in_order`` puts them in the notebook's).
    """
    table = {}
    with Gradebook(url) as gb:
        for assignment in gb.assignments:
            grouping = problems.grouping(assignment.name)
            for submission in assignment.submissions:
                scores = defaultdict(lambda: [0.0, 0.0])
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        problem = scores[grouping(grade.name)]
                        if awaits_hand_grade(grade) or problem[0] is None:
                            problem[0] = None
                        else:
                            problem[0] += grade.score
                        problem[1] += grade.max_score
                table[submission.student.id, assignment.name] = dict(scores)
    return table


def awaits_hand_grade(grade):
    """True for an answer not graded by hand yet (written or code: no score at all)."""
    return (grade.needs_manual_grade and grade.manual_score is None
            and grade.auto_score is None)


def late_penalties(url):
    """{(student, assignment): points} of the late submissions' penalties (nbgrader's
    AssignLatePenalties), which nbgrader export subtracts."""
    with Gradebook(url) as gb:
        return {(s.student.id, a.name): s.late_submission_penalty for a in gb.assignments
                for s in a.submissions if s.late_submission_penalty}


def in_order(scores, order):
    """``scores`` ({problem: ...}) with the problems in ``order`` (the notebook's), any
    other after them: a PostgreSQL gradebook returns a notebook's grades in any order."""
    rank = {problem: k for k, problem in enumerate(order)}
    return dict(sorted(scores.items(), key=lambda item: rank.get(item[0], len(rank))))


def write_reports(table, out_dir, penalties=None):
    """Write grades.csv (one row per submission: its score, late penalty subtracted as
    nbgrader export does, and the points of its problems still to grade by hand, counted
    as 0 in the score), grades_by_problem.csv (long format) and grades_distribution.png.
    penalties: late_penalties."""
    with open(os.path.join(out_dir, "grades.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "score", "max_score", "late_penalty",
                         "to_grade_by_hand"])
        for key, scores in sorted(table.items()):
            penalty = (penalties or {}).get(key, 0.0)
            writer.writerow([*key, final(scores, penalty), total(scores, 1), penalty,
                             sum(m for s, m in scores.values() if s is None)])
    with open(os.path.join(out_dir, "grades_by_problem.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "problem", "score", "max_score"])
        for (student, assignment), scores in sorted(table.items()):
            for problem, (score, max_score) in scores.items():
                writer.writerow([student, assignment, problem, score, max_score])
    plot_distribution(table, os.path.join(out_dir, "grades_distribution.png"))
    for name in ("grades.csv", "grades_by_problem.csv", "grades_distribution.png"):
        private_like(os.path.join(out_dir, name), out_dir)


def total(scores, column):
    """Sum of a column of {problem: [score, max_score]}; ungraded answers count as 0."""
    return sum(row[column] or 0.0 for row in scores.values())


def final(scores, penalty):
    """A submission's score: its total less its late penalty, never below 0 (as nbgrader
    export)."""
    return max(0.0, total(scores, 0) - penalty)


def by_assignment(table):
    """{assignment: (problems in gradebook order, {student: scores})}, sorted by name."""
    grouped = {}
    for (student, assignment), scores in sorted(table.items(), key=lambda k: k[0][::-1]):
        problems, rows = grouped.setdefault(assignment, ({}, {}))
        problems.update(dict.fromkeys(scores))
        rows[student] = scores
    return {a: (list(problems), rows) for a, (problems, rows) in grouped.items()}


def format_table(table, titles=None, penalties=None, kept=()):
    """One line per submission: each problem's score (? = to grade by hand), then total
    (less a late penalty, ``penalties``: late_penalties; marked for the submissions
    ``kept``, [(student, assignment)] a run left with their previous grades); under each
    assignment's header,
    what the notebook calls its problems (``titles``: {assignment: {problem: name}}) where
    that is more than the problem's key."""
    lines = []
    for assignment, (problems, rows) in by_assignment(table).items():
        widths = [max(5, len(p)) for p in problems]
        name_width = max([20, len(assignment) - 2] + [len(shown(s)) for s in rows])
        lines.append(f"{assignment:<{name_width + 2}} " + " ".join(f"{p:>{w}}" for p, w in
                                                            zip(problems, widths)) + "  total")
        for student, scores in sorted(rows.items()):
            cells = " ".join(f"{cell(scores, p):>{w}}" for p, w in zip(problems, widths))
            penalty = (penalties or {}).get((student, assignment), 0.0)
            late = f" (late: -{penalty:g})" if penalty else ""
            old = " (previous grades: not graded again)" if (student, assignment) in kept \
                else ""
            lines.append(f"  {shown(student):<{name_width}} {cells}  "
                         f"{final(scores, penalty):g}/{total(scores, 1):g}{late}{old}")
        named = (titles or {}).get(assignment, {})
        lines += [f"    {p} = {named[p]}" for p in problems if named.get(p, p) != p]
    return "\n".join(lines)


def cell(scores, problem):
    """A problem's entry in the table: its score, ? to grade by hand, - not in the notebook."""
    if problem not in scores:
        return "-"
    return "?" if scores[problem][0] is None else f"{scores[problem][0]:g}"


def plot_distribution(table, path):
    """A PNG with one histogram per problem, a row per assignment: how many students got
    each score, from 0 to the problem's max. Written answers not graded by hand yet are
    left out and counted in the panel's title. Drawn by Agg without a timestamp, so the
    same grades give the same bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = by_assignment(table)
    ncols = max(len(problems) for problems, _ in groups.values())
    fig = Figure(figsize=(1.8 * ncols + 0.6, 2.1 * len(groups) + 0.8), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), ncols, squeeze=False)
    for row, (assignment, (problems, rows)) in zip(axes, groups.items()):
        row[0].set_ylabel(f"{assignment}\nstudents")
        for ax, problem in zip(row, problems):
            histogram(ax, problem, [sc[problem] for sc in rows.values() if problem in sc],
                      len(rows))
        for ax in row[len(problems):]:
            ax.set_axis_off()
    fig.suptitle(f"Score distribution per problem ({len({s for s, _ in table})} students)",
                 fontsize=10)
    if any(sc[0] is None for scores in table.values() for sc in scores.values()):
        fig.supxlabel("(n to grade): written answers not graded by hand yet, left out",
                      fontsize=8, color="0.4")
    fig.savefig(path, facecolor="white", metadata={"Software": None})


def histogram(ax, problem, cells, n_students):
    """One problem's panel; cells: [score or None, max_score] per submission."""
    from matplotlib.ticker import MaxNLocator

    max_score = max(m for _, m in cells)
    graded = [s for s, _ in cells if s is not None]
    width = 1.0 if all(s % 1 == 0 for s in graded) else 0.5  # a bar per (half) point
    if max_score / width > 40:
        width = max_score / 20
    edges = [width * (k - 0.5) for k in range(round(max_score / width) + 2)]
    ax.hist(graded, bins=edges, rwidth=0.8, color="#0072B2")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, n_students)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.set_xlabel(f"score / {max_score:g}", fontsize=8)
    ax.tick_params(labelsize=8)
    ungraded = len(cells) - len(graded)
    ax.set_title(f"{problem} ({ungraded} to grade)" if ungraded else problem, fontsize=9,
                 color="black" if graded else "0.45")


def course_table(root, config, kept=()):
    """(scores, late penalties, the printed table) of the course at ``root`` with its
    ``config``; problems in the notebooks' order; ``kept``: see format_table."""
    problems, url = Problems(config=config), db_url(root)
    scores = problem_scores(url, problems)
    titles = {a: problem_titles(root, a, problems) for a in {a for _, a in scores}}
    scores = {key: in_order(row, titles[key[1]]) for key, row in scores.items()}
    penalties = late_penalties(url)
    return scores, penalties, format_table(scores, titles, penalties, kept)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export the grades of a course's gradebook.")
    parser.add_argument("--root", default=".", help="the course directory (default: here)")
    root = os.path.abspath(parser.parse_args(argv).root)
    scores, penalties, table = course_table(root, load_config(root))
    if not scores:
        sys.exit("No graded submissions in the gradebook: autograde first.")
    write_reports(scores, root, penalties)
    print(table)


if __name__ == "__main__":
    main()
