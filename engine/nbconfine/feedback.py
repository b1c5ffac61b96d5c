"""Feedback a student can read, for nbgrader's generate_feedback (see nbgrader_config.py).

- ``HideHiddenTests``: a hidden test cell shows its docstring line, never its code.
- ``ReadableFeedback``: the summary names each problem and its parts ("Problem 1: ...
  visible check 1 / 1, hidden values 0 / 2, ..."); written answers not graded by hand
  yet say "not graded yet" and are left out of the total; MathJax is inlined, so math
  renders without internet (the file travels alone through nbgrader's exchange).

The template, ``templates/readable_feedback``, extends nbgrader's own feedback template:
it adds the summary, wraps long lines and renders written answers awaiting a grade.
``templates/formgrade`` makes the Formgrader load the MathJax that the Jupyter server
serves (jupyter-server-mathjax) instead of a CDN's.
"""
import functools
import importlib.util
import os
import re

import nbgrader
from nbconvert.preprocessors import Preprocessor
from nbgrader.api import Gradebook
from traitlets import Bool

from nbconfine.layout import Problems, problem_spans, title
from nbconfine.report import awaits_hand_grade

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
TEMPLATE = "readable_feedback"
NBGRADER_TEMPLATES = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions",
                                  "formgrader", "templates")
TEMPLATE_BASEDIRS = [  # ours first: they override nbgrader's mathjax macro
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates"), NBGRADER_TEMPLATES]
# where {% extends 'feedback/index.html.j2' %} and nbgrader's bootstrap.min.css are found
TEMPLATE_PATHS = [NBGRADER_TEMPLATES, os.path.join(
    NBGRADER_TEMPLATES, "..", "static", "node_modules", "bootstrap", "dist", "css")]


class HideHiddenTests(Preprocessor):
    """Replace the source of test cells with hidden tests by their docstring line."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and HIDDEN_BEGIN in cell.source:
            summary = cell.source.split(HIDDEN_BEGIN)[0].rstrip()
            cell.source = summary + "\n# Hidden test: its code is not shown."
        return cell, resources


class ReadableFeedback(Preprocessor):
    """Per-problem summary and hand-grading state for the readable_feedback template.

    Runs after nbgrader's GetGrades (which puts each grade cell's score in its metadata)
    and before HideHiddenTests (it tells hidden tests by their source). Sets
    ``resources["nbconfine"]``: problems, score, graded_max, pending, mathjax_js; marks
    written answers awaiting a hand grade with ``metadata.nbgrader.pending``.
    """

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if meta.get("grade") or meta.get("task"):
                    meta["pending"] = awaits_hand_grade(gb.find_grade(
                        meta["grade_id"], info["notebook"], info["assignment"],
                        info["student"]))
        problems = summarize(nb.cells, Problems(parent=self).grouping(info["assignment"]))
        parts = [part for problem in problems for part in problem["parts"]]
        resources["nbconfine"] = {
            "problems": problems,
            "score": sum(p["score"] for p in parts if not p["pending"])
            - (info.get("late_penalty") or 0),
            "graded_max": sum(p["max_score"] for p in parts if not p["pending"]),
            "pending": sum(p["max_score"] for p in parts if p["pending"]),
            "mathjax_js": mathjax_js(),
        }
        return nb, resources


def summarize(cells, grouping):
    """One entry per problem (``grouping``: grade_id -> problem) with a grade cell, in
    notebook order:
    {title, anchor, score, max_score, pending (points awaiting a hand grade), comment
    (grade_id of an answer with a grader's comment, or None), parts}; a part is
    {label, anchor, score, max_score, pending}. Visible tests of a problem make one part
    ("visible check", or "visible tests" when there are several); each hidden test,
    written answer, task and graded code answer is its own part, named from its grade_id."""
    problems = []
    for key, (first, last) in problem_spans(cells, grouping).items():
        problem = {"title": title(cells, key, first), "parts": [],
                   "comment": None}
        visible = None
        for cell in cells[first:last + 1]:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade_id") or grouping(meta["grade_id"]) != key:
                continue
            if meta.get("solution") and meta.get("comment"):
                problem["comment"] = problem["comment"] or meta["grade_id"]
            if not (meta.get("grade") or meta.get("task")):
                continue
            part = {"label": part_label(cell, key), "anchor": meta["grade_id"],
                    "score": float(meta.get("score") or 0), "pending": meta["pending"],
                    "max_score": float(meta.get("points") or 0)}
            if part["label"] != "visible check":
                problem["parts"].append(part)
            elif visible is None:
                visible = part
                problem["parts"].append(part)
            else:
                visible["label"] = "visible tests"
                visible["score"] += part["score"]
                visible["max_score"] += part["max_score"]
        if problem["parts"]:
            problem["anchor"] = problem["parts"][0]["anchor"]
            problem["score"] = sum(p["score"] for p in problem["parts"] if not p["pending"])
            problem["max_score"] = sum(p["max_score"] for p in problem["parts"])
            problem["pending"] = sum(p["max_score"] for p in problem["parts"] if p["pending"])
            problems.append(problem)
    return problems


def part_label(cell, key):
    """"task", "written answer", "answer", "visible check", or "hidden <what>" from the
    grade_id (q1_hidden_values -> "hidden values", q3_hidden_edge_cases -> "hidden
    edge cases")."""
    meta = cell.metadata.nbgrader
    if meta.get("task"):
        return "task"
    if meta.get("solution"):
        return "written answer" if cell.cell_type == "markdown" else "answer"
    if HIDDEN_BEGIN not in cell.source:
        return "visible check"
    words = [w for w in meta["grade_id"][len(key):].split("_") if w and w != "hidden"]
    return " ".join(["hidden"] + words)


@functools.lru_cache(maxsize=1)
def mathjax_js():
    """MathJax 3's single-file TeX-to-SVG component (fonts included), from the pinned
    django-static-mathjax package, to inline in a <script> element."""
    package = importlib.util.find_spec("mathjax").submodule_search_locations[0]
    path = os.path.join(package, "static", "mathjax", "es5", "tex-svg.js")
    with open(path, encoding="utf-8") as f:
        js = f.read()
    if re.search(r"</script", js, re.I):  # it would end the inline <script> early
        raise ValueError(f"{path} cannot be inlined: it contains '</script'")
    return js
