"""Run the answer catalog through the real autograde; print the kill table.

    python tests/mutation.py        (or `make mutants`)

Answers are batched: each submission carries at most one catalog answer per problem,
spread so that every submission also keeps reference answers in other problems. A
mutant must lose points on its own problem, and the reference problems beside it must
keep every point (so a mutant costs nowhere else); a correct alternative keeps every
point. The column "visible" says whether the problem's visible check (its cells without
hidden tests) flagged the answer, as it does in the learner's own notebook.
"""
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field

import nbformat

from catalog import CORRECT, MUTANTS, VISIBLE_BLIND
from coursedir import ASSIGNMENTS, REPO, Course
from course.normcheck import FORBIDDEN_ERROR

ASSIGNMENT_OF = {**{f"p{k}": "normalization" for k in range(1, 8)}, "bn": "batchnorm"}
HIDDEN = {c.metadata["nbgrader"]["grade_id"] for a, notebook in ASSIGNMENTS.items()
          for c in nbformat.read(os.path.join(REPO, "source", a, notebook), as_version=4).cells
          if "BEGIN HIDDEN TESTS" in c.source}
GRADER_RULE = FORBIDDEN_ERROR  # the grader's own verdict, not a check's


@dataclass
class Outcome:
    answer: object
    student: str
    lost: float = 0.0
    max_score: float = 0.0
    caught_by: list = field(default_factory=list)
    messages: list = field(default_factory=list)  # of the failed checks, in notebook order
    printed: str = ""  # what the problem's checks printed (notes included)
    visible: bool = False  # a visible check failed, by its own judgement
    message_lines: list = field(default_factory=list)  # of the failed checks, as shown

    @property
    def hidden_failed(self):
        return any(g in HIDDEN for g in self.caught_by)


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


def checks(nb, problem):
    """[(grade_id, error output or None, printed text)] of the problem's check cells: its
    test cells and its locked instructor cells."""
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade_id", "").split("_")[0] == problem and \
                (meta.get("grade") or meta.get("locked")):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            printed = "".join(o.text for o in cell.outputs if o.output_type == "stream")
            found.append((meta["grade_id"], errors[0] if errors else None, printed))
    return found


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
                        found = checks(nb, problem)
                        failed = [(g, e) for g, e, _ in found if e is not None]
                        outcomes.append(Outcome(
                            chosen[problem], student, max_score - score, max_score,
                            [g for g, _ in failed], [" ".join(e.evalue.split()) for _, e in failed],
                            "".join(p for _, _, p in found),
                            any(g not in HIDDEN and e.ename != GRADER_RULE for g, e in failed),
                            [line for _, e in failed for line in e.evalue.splitlines()]))
                    elif score != max_score:
                        collateral.append((student, problem, score, max_score))
    return Results(outcomes, collateral, time.monotonic() - start)


def visible_misses(results):
    """Answers that lose hidden points while their visible check passes, VISIBLE_BLIND aside."""
    return [o.answer.name for o in results.outcomes
            if o.hidden_failed and not o.visible and o.answer.name not in VISIBLE_BLIND]


def kill_table(results):
    lines = [f"{'answer':<32} {'problem':<7} {'lost':>7} {'visible':<8} caught by / first message"]
    for o in sorted(results.outcomes, key=lambda o: (o.answer.family == "correct",
                                                     o.answer.problem, o.answer.name)):
        lost = f"{o.lost:g}/{o.max_score:g}"
        verdict = ", ".join(o.caught_by) or ("SURVIVED" if o.answer.family != "correct"
                                              else "kept every point")
        visible = "yes" if o.visible else "-" if o.answer.family == "correct" else "NO"
        lines.append(f"{o.answer.name:<32} {o.answer.problem:<7} {lost:>7} {visible:<8} {verdict}")
        if o.messages:
            lines.append(f"{'':<58}{o.messages[0][:150]}")
    mutants = [o for o in results.outcomes if o.answer.family != "correct"]
    killed = sum(1 for o in mutants if o.lost > 0)
    alive = sum(1 for o in results.outcomes if o.answer.family == "correct" and o.lost == 0)
    correct = sum(1 for o in results.outcomes if o.answer.family == "correct")
    hidden = [o for o in results.outcomes if o.hidden_failed]
    flagged = sum(1 for o in hidden if o.visible)
    lines.append(f"\n{killed}/{len(mutants)} mutants lose points; {alive}/{correct} correct "
                 f"alternatives keep every point; {len(results.collateral)} reference problems "
                 f"lost points beside a mutant; {results.seconds:.0f} s")
    lines.append(f"{flagged}/{len(hidden)} answers that lose hidden points are flagged by their "
                 f"visible check; not flagged, by design: {', '.join(sorted(VISIBLE_BLIND))}; "
                 f"missed: {', '.join(visible_misses(results)) or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as root:
        course = Course(root)
        course.release()
        results = run(course)
    print(kill_table(results))
    sys.exit(0 if all((o.lost > 0) == (o.answer.family != "correct")
                      for o in results.outcomes) and not results.collateral
             and not visible_misses(results) else 1)
