"""Grades from the gradebook: grades.csv, grades_by_problem.csv and a printed table.

A problem is the grade_id prefix before the first ``_`` (p1..p7, bn, q1..q6).
"""
import csv
import os
import sys
from collections import defaultdict

from nbgrader.api import Gradebook

COURSE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def db_url(root=COURSE_ROOT):
    """The gradebook nbgrader_config.py uses: NBGRADER_DB_URL, else SQLite in the course."""
    return os.environ.get("NBGRADER_DB_URL", "sqlite:///" + os.path.join(root, "gradebook.db"))


def problem_scores(url=None):
    """{(student, assignment): {problem: [score, max_score]}} for every submission.

    A written answer not graded by hand yet scores None; anything else never graded, 0.
    """
    table = {}
    with Gradebook(url or db_url()) as gb:
        for assignment in gb.assignments:
            for submission in assignment.submissions:
                scores = defaultdict(lambda: [0.0, 0.0])
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        problem = scores[grade.name.split("_")[0]]
                        by_hand = grade.needs_manual_grade and grade.cell.cell_type == "markdown"
                        if by_hand or problem[0] is None:
                            problem[0] = None
                        else:
                            problem[0] += grade.score
                        problem[1] += grade.max_score
                table[submission.student.id, assignment.name] = dict(scores)
    return table


def write_reports(table, out_dir):
    """Write grades.csv (one row per submission) and grades_by_problem.csv (long format)."""
    with open(os.path.join(out_dir, "grades.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "score", "max_score"])
        for (student, assignment), scores in sorted(table.items()):
            writer.writerow([student, assignment, total(scores, 0), total(scores, 1)])
    with open(os.path.join(out_dir, "grades_by_problem.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "problem", "score", "max_score"])
        for (student, assignment), scores in sorted(table.items()):
            for problem, (score, max_score) in scores.items():
                writer.writerow([student, assignment, problem, score, max_score])


def total(scores, column):
    """Sum of a column of {problem: [score, max_score]}; ungraded answers count as 0."""
    return sum(row[column] or 0.0 for row in scores.values())


def format_table(table):
    """One line per submission: each problem's score (? = to grade by hand), then total."""
    lines = []
    for assignment in sorted({a for _, a in table}):
        rows = {s: sc for (s, a), sc in table.items() if a == assignment}
        problems = list(next(iter(rows.values())))
        lines.append(f"{assignment:<22} " + " ".join(f"{p:>5}" for p in problems) + "  total")
        for student, scores in sorted(rows.items()):
            cells = " ".join("    ?" if scores[p][0] is None else f"{scores[p][0]:5g}"
                             for p in problems)
            lines.append(f"  {student:<20} {cells}  {total(scores, 0):g}/{total(scores, 1):g}")
    return "\n".join(lines)


if __name__ == "__main__":
    scores = problem_scores()
    if not scores:
        sys.exit("No graded submissions in the gradebook: run `make autograde` first.")
    write_reports(scores, COURSE_ROOT)
    print(format_table(scores))
