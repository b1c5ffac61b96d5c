"""The course as stored: clean notebooks, readable grade_ids, points, an honest release."""
import filecmp
import os
import re

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
