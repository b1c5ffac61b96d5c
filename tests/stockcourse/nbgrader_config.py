"""A small course written for stock nbgrader (tests/test_notebook_mode.py), graded by nbconfine.

Its one assignment, `stats`, is in nbgrader's usual style: helper cells without metadata,
solution cells, test cells (some with hidden tests), a written answer, a data file shipped
beside the notebook. The tests grade it with this configuration (notebook mode) and with
stock nbgrader (the same course, this file without nbconfine), and compare the scores.
"""
import os

import nbconfine

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "stock-stats"
# A small cell time limit (seconds), and the error a timed-out cell gets: nbgrader's own
# settings, which the engine honours as stock nbgrader does.
c.Execute.timeout = int(os.environ.get("STOCK_CELL_TIMEOUT", "6"))
c.Execute.error_on_timeout = {"ename": "CellTimeoutError", "evalue": "ran out of its time",
                              "traceback": ["CellTimeoutError: ran out of its time"]}
nbconfine.configure(c)
