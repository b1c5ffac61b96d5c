"""Feedback that shows every check's result but never a hidden test's source."""
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"


class HideHiddenTests(Preprocessor):
    """Replace the source of test cells with hidden tests by their docstring line."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and HIDDEN_BEGIN in cell.source:
            summary = cell.source.split(HIDDEN_BEGIN)[0].rstrip()
            cell.source = summary + "\n# Hidden test: its code is not shown."
        return cell, resources
