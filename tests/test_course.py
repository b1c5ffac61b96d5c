"""The course as stored: clean notebooks, readable grade_ids, points, an honest release."""
import ast
import filecmp
import os
import re
import subprocess
import sys

import nbformat
import pytest

from conftest import ASSIGNMENTS, REPO

NOTEBOOKS = {a: os.path.join(REPO, "source", a, nb) for a, nb in ASSIGNMENTS.items()}
RELEASED = {a: os.path.join(REPO, "release", a, nb) for a, nb in ASSIGNMENTS.items()}
READABLE_ID = re.compile(r"^(setup|[a-z][a-z0-9]*(_[a-z0-9]+)+)$")
CELL_KEYS = {"cell_type", "metadata", "source", "outputs", "execution_count", "id"}
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
EXPECTED_POINTS = {"normalization": 35, "batchnorm": 30}


def cells(path):
    return nbformat.read(path, as_version=4).cells


def nbgrader_meta(cell):
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("path", list(NOTEBOOKS.values()) + list(RELEASED.values()))
def test_notebooks_are_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert set(nb.metadata) <= NOTEBOOK_METADATA, set(nb.metadata) - NOTEBOOK_METADATA
    for cell in nb.cells:
        assert set(cell) <= CELL_KEYS
        assert set(cell.metadata) <= {"nbgrader", "deletable", "editable"}, cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grade_ids_are_unique_and_readable(assignment):
    ids = [nbgrader_meta(c)["grade_id"] for c in cells(NOTEBOOKS[assignment]) if nbgrader_meta(c)]
    assert len(ids) == len(set(ids))
    assert all(READABLE_ID.match(i) for i in ids), [i for i in ids if not READABLE_ID.match(i)]


def test_points_add_up():
    points = {a: sum(nbgrader_meta(c).get("points", 0) for c in cells(path))
              for a, path in NOTEBOOKS.items()}
    assert points == EXPECTED_POINTS
    for assignment, path in NOTEBOOKS.items():  # 5 points per problem of assignment 1
        per_problem = {}
        for cell in cells(path):
            meta = nbgrader_meta(cell)
            if meta.get("points"):
                problem = meta["grade_id"].split("_")[0]
                per_problem[problem] = per_problem.get(problem, 0) + meta["points"]
        if assignment == "normalization":
            assert per_problem == {f"p{k}": 5 for k in range(1, 8)}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_opens_with_a_docstring(assignment):
    for cell in cells(NOTEBOOKS[assignment]):
        if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
            first = cell.source.splitlines()[0]
            assert first.startswith('"""') and first.endswith('"""') and len(first) > 10, first


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_solution_and_no_hidden_test(assignment):
    released = nbformat.read(RELEASED[assignment], as_version=4)
    text = "\n".join(cell.source for cell in released.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "#> "):
        assert marker not in text
    for cell in cells(NOTEBOOKS[assignment]):
        meta = nbgrader_meta(cell)
        if meta.get("solution"):  # every solution line longer than a stub is gone
            for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION",
                                     cell.source, re.S) or [cell.source]:
                for line in region.splitlines():
                    line = line.strip()
                    if len(line) > 25 and not line.startswith("#"):
                        assert line not in text, line
        if "BEGIN HIDDEN TESTS" in cell.source:
            hidden = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN")[0]
            for line in hidden.strip().splitlines():
                assert line.strip() not in text, line


def test_release_equals_a_fresh_generation(course):
    """release/ in the repo is exactly what `make release` generates from source/ now."""
    for assignment in ASSIGNMENTS:
        fresh = os.path.join(course.root, "release", assignment)
        stored = os.path.join(REPO, "release", assignment)
        compare = filecmp.dircmp(fresh, stored)
        differ = []

        def walk(cmp):
            differ.extend(cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files)
            for sub in cmp.subdirs.values():
                walk(sub)
        walk(compare)
        _, mismatch, errors = filecmp.cmpfiles(fresh, stored, compare.common_files, shallow=False)
        assert not differ and not mismatch and not errors, (assignment, differ, mismatch)


def check_cells(assignment):
    """{problem: ([visible check sources], [hidden test sources])} of the instructor notebook."""
    found = {}
    for cell in cells(NOTEBOOKS[assignment]):
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("locked") and meta["grade_id"] != "setup":
            visible, hidden = found.setdefault(meta["grade_id"].split("_")[0], ([], []))
            (hidden if "BEGIN HIDDEN TESTS" in cell.source else visible).append(cell.source)
    return found


SHAPE = re.compile(r"\((\d+(?:, \d+)+)\)|size=(\d+), batch=(\d+)")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_visible_checks_run_inputs_of_their_own_and_gradients(assignment):
    """Beyond the example, each visible check runs other inputs, none of the hidden ones,
    and compares gradients, as the hidden tests do."""
    assert check_cells(assignment), "no visible check found"
    for problem, (visible, hidden) in check_cells(assignment).items():
        seen = "\n".join(visible)
        assert re.search(r"gradients_match\(", seen), problem
        shapes = lambda sources: {m.group(0) for s in sources for m in SHAPE.finditer(s)}
        assert len(shapes(visible)) >= 3, (problem, shapes(visible))
        assert not shapes(visible) & shapes(hidden), (problem, shapes(visible) & shapes(hidden))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_released_hidden_test_cells_show_nothing(assignment):
    """What ClearHiddenTests leaves of a hidden test cell ends in a statement, not an
    expression, so running it shows no Out[] (which `nbgrader validate` would try to read
    as a score)."""
    released = {nbgrader_meta(c).get("grade_id"): c.source for c in cells(RELEASED[assignment])}
    for cell in cells(NOTEBOOKS[assignment]):
        if "BEGIN HIDDEN TESTS" in cell.source:
            tree = ast.parse(released[nbgrader_meta(cell)["grade_id"]])
            assert not isinstance(tree.body[-1], ast.Expr), nbgrader_meta(cell)["grade_id"]


def test_validate_shows_the_checks_message_only(course, tmp_path):
    """`nbgrader validate` on reference answers with two real learners' patterns: the float32
    buffer passes, the flipped momentum fails with the check's message and no traceback of
    normcheck, and no cell output is mistaken for a score."""
    from catalog import CORRECT, MUTANTS
    chosen = {a.name: a for a in MUTANTS + CORRECT}
    answers = {**course.reference("normalization"), **{
        f"{chosen[n].problem}_answer": chosen[n].code
        for n in ("p1_float32_buffer_loop", "p3_flipped_momentum")}}
    path = course.submit("validate-learner", "normalization", answers)
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", path], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    shown = done.stdout + done.stderr
    assert "VALIDATION FAILED ON 1 CELL(S)" in shown, shown
    assert "running_mean moved by 1 - momentum instead of momentum" in shown, shown
    assert "cannot be converted to a float" not in shown
    assert "Traceback" not in shown and "normcheck.py" not in shown, shown
