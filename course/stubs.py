"""Solution regions that carry their own release stub.

In a source notebook, lines of a ``### BEGIN SOLUTION`` region that start with ``#> ``
are that region's stub: the release shows them uncommented instead of the region
(seed 004's placeholder style, e.g. ``#> x_hat = torch.zeros(1)``). Regions without
such lines get nbgrader's ``code_stub`` as usual. In the source they are comments, so
the reference solution runs as written.
"""
import re

from nbgrader.preprocessors import ClearSolutions

STUB_PREFIX = "#> "


def region_stub(region_lines):
    """The ``#> `` lines of a region, uncommented, with their relative indentation."""
    return [line.strip()[len(STUB_PREFIX):] for line in region_lines
            if line.strip().startswith(STUB_PREFIX)]


class ClearSolutionsWithStubs(ClearSolutions):
    """nbgrader's ClearSolutions, with per-region ``#> `` stubs."""

    def _replace_solution_region(self, cell, language):
        default = (self.code_stub[language] if cell.cell_type == "code"
                   else self.text_stub).split("\n")
        new_lines, region, indent, replaced = [], None, "", False
        for line in cell.source.split("\n"):
            if self.begin_solution_delimeter in line:
                if region is not None:
                    raise RuntimeError("encountered nested begin solution statements")
                region, indent = [], re.match(r"\s*", line).group(0)
            elif self.end_solution_delimeter in line:
                if region is None:
                    raise RuntimeError("end solution statement without a begin")
                new_lines += [indent + stub for stub in region_stub(region) or default]
                region, replaced = None, True
            elif region is not None:
                region.append(line)
            else:
                new_lines.append(line)
        if region is not None:
            raise RuntimeError("no end solution statement found")
        cell.source = "\n".join(new_lines)
        return replaced
