"""Run the answer catalog through the real autograde; print the kill table.

    python tests/mutation.py        (or `make mutants`)

Answers are batched: each submission carries at most one catalog answer per problem,
spread so that every submission also keeps reference answers in other problems. A
mutant must lose points on its own problem, and the reference problems beside it must
keep every point (so a mutant costs nowhere else); a correct alternative keeps every
point.
"""
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field

from catalog import CORRECT, MUTANTS
from coursedir import ASSIGNMENTS, Course

ASSIGNMENT_OF = {**{f"p{k}": "normalization" for k in range(1, 8)}, "bn": "batchnorm"}


@dataclass
class Outcome:
    answer: object
    student: str
    lost: float = 0.0
    max_score: float = 0.0
    caught_by: list = field(default_factory=list)
    messages: list = field(default_factory=list)  # of the failed checks, in notebook order


@dataclass
class Results:
    outcomes: list  # one Outcome per catalog answer
    collateral: list  # (student, problem, score, max) of reference problems that lost points
    seconds: float


def schedule(answers, prefix):
    """{assignment: {student: {problem: answer}}}, at most one answer per problem each.

    A submission holds at most half its assignment's problems (rounded up), so the
    others keep their reference answers.
    """
    by_problem = defaultdict(list)
    for answer in answers:
        by_problem[answer.problem].append(answer)
    plan = {}
    for assignment in ASSIGNMENTS:
        problems = [p for p, a in ASSIGNMENT_OF.items() if a == assignment]
        slots = max(1, (len(problems) + 1) // 2) if len(problems) > 1 else 1
        total = sum(len(by_problem[p]) for p in problems)
        count = max([len(by_problem[p]) for p in problems] + [-(-total // slots)])
        submissions = [dict() for _ in range(count)]
        for problem in sorted(problems, key=lambda p: -len(by_problem[p])):
            for answer in by_problem[problem]:
                free = [s for s in submissions if problem not in s and len(s) < slots]
                min(free, key=len)[problem] = answer
        plan[assignment] = {f"{prefix}-{assignment[:4]}-{k:02d}": s
                            for k, s in enumerate(submissions) if s}
    return plan


def failing_checks(nb, problem):
    """[(grade_id, message)] of the problem's test cells that failed."""
    failed = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and \
                meta["grade_id"].split("_")[0] == problem:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if errors:
                failed.append((meta["grade_id"], errors[0].evalue))
    return failed


def run(course, answers=MUTANTS + CORRECT):
    """Submit, autograde and score every catalog answer in ``course``."""
    start = time.monotonic()
    mutants = [a for a in answers if a.family != "correct"]
    correct = [a for a in answers if a.family == "correct"]
    plans = [schedule(mutants, "mut"), schedule(correct, "alt")]
    for plan in plans:
        for assignment, students in plan.items():
            reference = course.reference(assignment)
            for student, chosen in students.items():
                course.submit(student, assignment, {**reference, **{
                    f"{p}_answer": a.code for p, a in chosen.items()}})
    course.grade("[ma][ul][tt]-*", jobs=2)
    scores = course.scores()
    outcomes, collateral = [], []
    for plan in plans:
        for assignment, students in plan.items():
            for student, chosen in students.items():
                nb = course.autograded(student, assignment)
                for problem, (score, max_score) in scores[student, assignment].items():
                    if problem not in ASSIGNMENT_OF:
                        continue  # written answers: graded by hand
                    if problem in chosen:
                        failed = failing_checks(nb, problem)
                        outcomes.append(Outcome(chosen[problem], student, max_score - score,
                                                max_score, [g for g, _ in failed],
                                                [m for _, m in failed]))
                    elif score != max_score:
                        collateral.append((student, problem, score, max_score))
    return Results(outcomes, collateral, time.monotonic() - start)


def kill_table(results):
    lines = [f"{'answer':<32} {'problem':<7} {'lost':>7}  caught by / first message"]
    for o in sorted(results.outcomes, key=lambda o: (o.answer.family == "correct",
                                                     o.answer.problem, o.answer.name)):
        lost = f"{o.lost:g}/{o.max_score:g}"
        verdict = ", ".join(o.caught_by) or ("SURVIVED" if o.answer.family != "correct"
                                              else "kept every point")
        lines.append(f"{o.answer.name:<32} {o.answer.problem:<7} {lost:>7}  {verdict}")
        if o.messages:
            lines.append(f"{'':<49}{o.messages[0][:150]}")
    killed = sum(1 for o in results.outcomes if o.answer.family != "correct" and o.lost > 0)
    mutants = sum(1 for o in results.outcomes if o.answer.family != "correct")
    alive = sum(1 for o in results.outcomes if o.answer.family == "correct" and o.lost == 0)
    correct = sum(1 for o in results.outcomes if o.answer.family == "correct")
    lines.append(f"\n{killed}/{mutants} mutants lose points; {alive}/{correct} correct "
                 f"alternatives keep every point; {len(results.collateral)} reference problems "
                 f"lost points beside a mutant; {results.seconds:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as root:
        course = Course(root)
        course.release()
        results = run(course)
    print(kill_table(results))
    sys.exit(0 if all((o.lost > 0) == (o.answer.family != "correct")
                      for o in results.outcomes) and not results.collateral else 1)
