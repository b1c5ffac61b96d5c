"""Draw the figures of the normalization course.

Run from the repository root::

    python -m course.figures [OUTDIR]

OUTDIR defaults to ``source/normalization/figures``. Two PNGs are written:

* ``batch_matrix.png``: a batch of N vectors of length L as a matrix, with the
  column that batch norm averages over highlighted.
* ``norm_cube.png``: batch, layer, instance and group norm drawn on an
  (N, C, H·W) feature cube, after Figure 2 of Wu & He, "Group Normalization".

The output is byte-for-byte reproducible for a given matplotlib version.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

DEFAULT_OUTDIR = "source/normalization/figures"
DPI = 100
HIGHLIGHT = "#0072B2"  # Okabe-Ito blue, safe for colour-blind readers
PLAIN = "#FFFFFF"
UNSHADED = "#E8E8E8"
EDGE = "#404040"

# Cube size in cells: batch, channels (3 groups of 2), flattened spatial.
N_SAMPLES, N_CHANNELS, N_SPATIAL = 4, 6, 5
# On-page offset of one step along the channel (depth) axis.
DEPTH_STEP = (0.5, 0.42)
DEPTH_ANGLE = math.degrees(math.atan2(DEPTH_STEP[1], DEPTH_STEP[0]))


def save(fig, path):
    """Save a figure as a PNG without metadata that changes between runs."""
    fig.savefig(path, dpi=DPI, facecolor="white", metadata={"Software": None})
    plt.close(fig)


def shade(color, factor):
    """Lighten (factor > 1) or darken (factor < 1) a colour, for a 3-D look."""
    rgb = to_rgb(color)
    if factor >= 1:
        return tuple(1 - (1 - v) / factor for v in rgb)
    return tuple(v * factor for v in rgb)


def entry_label(row, col):
    """Mathtext for the matrix entry in row ``row`` and column ``col`` (dots stay dots)."""
    if "dots" in row and "dots" in col:
        return r"$\ddots$"
    if "dots" in row or "dots" in col:
        return f"${row if 'dots' in row else col}$"
    return f"$x_{{{col}}}^{{{row}}}$"


def batch_matrix_figure():
    """Return the figure of a 1-D batch as an N x L matrix of entries x_i^j."""
    col_names = ["1", "2", r"\cdots", "i", r"\cdots", "L"]
    row_names = ["1", "2", r"\vdots", "N"]
    highlighted_col = col_names.index("i")

    fig, ax = plt.subplots(figsize=(9, 5.2))
    for r, row in enumerate(row_names):
        for c, col in enumerate(col_names):
            shaded = c == highlighted_col
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=shade(HIGHLIGHT, 3) if shaded else PLAIN,
                                   edgecolor=EDGE, clip_on=False))
            ax.text(c + 0.5, r + 0.5, entry_label(row, col), ha="center", va="center", fontsize=15)
    ax.add_patch(Rectangle((highlighted_col, 0), 1, len(row_names), fill=False,
                           edgecolor=HIGHLIGHT, linewidth=3))

    ax.set_xlim(0, len(col_names))
    ax.set_ylim(len(row_names), 0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks([c + 0.5 for c in range(len(col_names))], [f"${c}$" for c in col_names])
    ax.set_yticks([r + 0.5 for r in range(len(row_names))], [f"${r}$" for r in row_names])
    ax.tick_params(length=0, labelsize=13)
    ax.set_xlabel("component i (feature)", fontsize=13, labelpad=10)
    ax.set_ylabel("sample j (batch)", fontsize=13, labelpad=10)
    for spine in ax.spines.values():
        spine.set_visible(False)

    ax.annotate(
        "batch norm: one mean and variance per column, over the batch (over j)\n"
        r"$\mu_i = \frac{1}{N}\sum_{j=1}^{N} x_i^{j}$,    "
        r"$\sigma_i^2 = \frac{1}{N}\sum_{j=1}^{N} (x_i^{j} - \mu_i)^2$",
        xy=(highlighted_col + 0.5, len(row_names)), xytext=(len(col_names) / 2, len(row_names) + 0.75),
        ha="center", va="top", fontsize=13, annotation_clip=False,
        arrowprops=dict(arrowstyle="-|>", color=HIGHLIGHT, linewidth=2),
    )
    fig.subplots_adjust(left=0.12, right=0.94, top=0.88, bottom=0.31)
    return fig


def project(n, c, s):
    """Map cube coordinates (sample, channel, spatial) to page coordinates."""
    return n + c * DEPTH_STEP[0], s + c * DEPTH_STEP[1]


def visible_face_cells():
    """Yield (corners, cube cell shown, brightness) for each cell of the visible faces.

    The visible faces are the front (c = 0), the top (s = last) and the right
    side (n = last); each face cell shows the colour of the cube cell behind it.
    """
    for n in range(N_SAMPLES):
        for s in range(N_SPATIAL):
            yield [(n, 0, s), (n + 1, 0, s), (n + 1, 0, s + 1), (n, 0, s + 1)], (n, 0, s), 1.0
    for n in range(N_SAMPLES):
        for c in range(N_CHANNELS):
            corners = [(n, c, N_SPATIAL), (n + 1, c, N_SPATIAL), (n + 1, c + 1, N_SPATIAL), (n, c + 1, N_SPATIAL)]
            yield corners, (n, c, N_SPATIAL - 1), 1.6
    for c in range(N_CHANNELS):
        for s in range(N_SPATIAL):
            corners = [(N_SAMPLES, c, s), (N_SAMPLES, c + 1, s), (N_SAMPLES, c + 1, s + 1), (N_SAMPLES, c, s + 1)]
            yield corners, (N_SAMPLES - 1, c, s), 0.75


def label_arrow(ax, start, end, text_at, text, rotation):
    """Draw an arrow along a cube axis with its name; points are cube coordinates."""
    ax.annotate("", xy=project(*end), xytext=project(*start), arrowprops=dict(arrowstyle="->", color=EDGE))
    ax.text(*project(*text_at), text, rotation=rotation, fontsize=10, ha="center", va="center")


def draw_cube(ax, is_normalized_together):
    """Draw the (N, C, H·W) cube on ``ax``, shading the cells of one statistic.

    ``is_normalized_together(n, c, s)`` says whether cell (sample n, channel c,
    spatial position s) belongs to the set that one mean/variance is taken over.
    """
    for corners, cell, brightness in visible_face_cells():
        base = HIGHLIGHT if is_normalized_together(*cell) else UNSHADED
        ax.add_patch(Polygon([project(*p) for p in corners], closed=True, edgecolor=EDGE,
                             linewidth=0.6, facecolor=shade(base, brightness)))

    label_arrow(ax, (0, 0, -0.5), (N_SAMPLES, 0, -0.5), (N_SAMPLES / 2, 0, -1.2), "N (batch)", 0)
    label_arrow(ax, (-0.5, 0, 0), (-0.5, 0, N_SPATIAL), (-1.2, 0, N_SPATIAL / 2), "H·W (spatial)", 90)
    label_arrow(ax, (N_SAMPLES + 0.4, 0, -0.3), (N_SAMPLES + 0.4, N_CHANNELS, -0.3),
                (N_SAMPLES + 1.3, N_CHANNELS / 2, -0.6), "C (channels)", DEPTH_ANGLE)

    ax.set_aspect("equal")
    ax.set_xlim(-1.8, N_SAMPLES + N_CHANNELS * DEPTH_STEP[0] + 1.6)
    ax.set_ylim(-1.8, N_SPATIAL + N_CHANNELS * DEPTH_STEP[1] + 0.3)
    ax.axis("off")


NORMS = [  # (title, subtitle, which cells share one mean/variance)
    ("Batch norm", "mean over N, H·W\nfor each C", lambda n, c, s: c == 0),
    ("Layer norm", "mean over C, H·W\nfor each N", lambda n, c, s: n == 0),
    ("Instance norm", "mean over H·W\nfor each N, C", lambda n, c, s: n == 0 and c == 0),
    ("Group norm", "mean over H·W and a group\nof C, for each N", lambda n, c, s: n == 0 and c < 2),
]


def norm_cube_figure():
    """Return the four-panel figure comparing batch, layer, instance and group norm."""
    fig, axes = plt.subplots(1, len(NORMS), figsize=(9, 3.2))
    for ax, (title, subtitle, is_normalized_together) in zip(axes, NORMS):
        draw_cube(ax, is_normalized_together)
        ax.set_title(title, fontsize=13, fontweight="bold")
        ax.text(0.5, -0.02, subtitle, transform=ax.transAxes, ha="center", va="top", fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.17, wspace=0.05)
    return fig


def main(outdir=DEFAULT_OUTDIR):
    """Write batch_matrix.png and norm_cube.png into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    save(batch_matrix_figure(), outdir / "batch_matrix.png")
    save(norm_cube_figure(), outdir / "norm_cube.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", nargs="?", default=DEFAULT_OUTDIR)
    main(parser.parse_args().outdir)
