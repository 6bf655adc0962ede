"""What the pictures of mazes and MiniGrid levels share: matplotlib on the Agg canvas
(imported only when a picture is drawn: the `plot` extra), colors, the figure and its
legend, arrows, paths, and the policy's most likely action per state.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from verifier.errors import DependencyMissing
from verifier.output.files import write_text_atomic

DPI = 100


WALL_COLOR = "#3b3b3b"


FLOOR_COLOR = "#f7f7f5"


LAVA_COLOR = "#ff8000"


FAILURE_COLOR = "#e8175d"


PATH_COLOR = "#00b4e6"


CERTAIN = 1.0 - 1e-9


ARROW = "\u2192"


class Matplotlib:
    """The parts of matplotlib drawn with, imported when a picture is drawn."""

    def __init__(self):
        from matplotlib import colors
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection, PatchCollection, PolyCollection
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch, Rectangle
        from matplotlib.path import Path as MarkerPath
        from matplotlib.transforms import Affine2D

        self.colors, self.Figure, self.FigureCanvasAgg = colors, Figure, FigureCanvasAgg
        self.LineCollection, self.PatchCollection = LineCollection, PatchCollection
        self.PolyCollection, self.Line2D, self.Patch = PolyCollection, Line2D, Patch
        self.Rectangle, self.MarkerPath, self.Affine2D = Rectangle, MarkerPath, Affine2D


def matplotlib_api() -> Matplotlib:
    try:
        return Matplotlib()
    except ImportError:
        raise DependencyMissing("drawing", "matplotlib", "plot", "--png") from None


def most_likely(mdp, choice_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(action, certain) per state: the action index of the most likely choice (the first on
    ties; -1 where that choice is unlabelled, as an absorbing state's self-loop), and whether
    the policy takes it with probability 1."""
    probs = np.asarray(choice_probs, dtype=np.float64)
    if probs.shape != (mdp.n_choices,):
        raise ValueError(f"choice_probs must be float [n_choices={mdp.n_choices}]")
    starts = mdp.row_groups[:-1]
    best = np.maximum.reduceat(probs, starts)
    index = np.where(probs == best[mdp.choice_states()], np.arange(mdp.n_choices), mdp.n_choices)
    first = np.minimum.reduceat(index, starts)
    return mdp.choice_actions[first].astype(np.int64), best >= CERTAIN


def state_mask(mdp, failing: np.ndarray | None) -> np.ndarray:
    if failing is None:
        return np.zeros(mdp.n_states, dtype=bool)
    failing = np.asarray(failing, dtype=bool)
    if failing.shape != (mdp.n_states,):
        raise ValueError(f"failing must be bool [n_states={mdp.n_states}]")
    return failing


def states_of(mdp, witness: Sequence[int]) -> np.ndarray:
    states = np.asarray(witness, dtype=np.int64).reshape(-1)
    if ((states < 0) | (states >= mdp.n_states)).any():
        raise ValueError(f"witness states must be in 0..{mdp.n_states - 1}")
    return states


def cell_pixels(height: int, width: int, smallest: int, largest: int) -> int:
    """Pixels per cell: about 1200 pixels for the longer side, within the bounds."""
    return int(np.clip(1200 // max(height, width), smallest, largest))


def new_figure(mpl: Matplotlib, height, width, cell, title, subtitle, legend):
    """A figure whose axes map cell (row, col) to the square [col, col+1] x [row, row+1],
    each `cell` pixels wide, with the title above and the legend below."""
    pad, title_height = 10, 26 if title else 0
    subtitle_height = 6 + 14 * (subtitle.count("\n") + 1)
    columns = 2 if len(legend) > 2 else max(len(legend), 1)
    legend_height = 12 + 22 * -(-len(legend) // columns)
    grid_width, grid_height = width * cell, height * cell
    figure_width = max(grid_width, 560) + 2 * pad
    figure_height = pad + title_height + subtitle_height + grid_height + legend_height + pad
    figure = mpl.Figure(figsize=(figure_width / DPI, figure_height / DPI), dpi=DPI)
    figure.set_facecolor("white")
    left, bottom = (figure_width - grid_width) // 2, pad + legend_height
    axes = figure.add_axes(
        (
            left / figure_width,
            bottom / figure_height,
            grid_width / figure_width,
            grid_height / figure_height,
        )
    )
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()
    top = 1 - pad / figure_height
    if title:
        figure.text(0.5, top, title, ha="center", va="top", fontsize=12, fontweight="bold")
    figure.text(
        0.5,
        top - title_height / figure_height,
        subtitle,
        ha="center",
        va="top",
        fontsize=9,
        color="#555555",
    )
    handles = [legend_handle(mpl, mark, color) for mark, color, _ in legend]
    if handles:
        figure.legend(
            handles,
            [text for _, _, text in legend],
            loc="upper center",
            ncol=columns,
            bbox_to_anchor=(0.5, (pad + legend_height) / figure_height),
            frameon=False,
            fontsize=9,
            handlelength=2.2,
        )
    return figure, axes


def legend_handle(mpl: Matplotlib, mark: str, color):
    """A legend key: a failure fill ((color, alpha)), the path, or a glyph (mathtext)."""
    if mark == "fill":
        return mpl.Patch(facecolor=mpl.colors.to_rgba(*color), edgecolor=color[0])
    if mark == "path":
        return mpl.Line2D([], [], color=color, linewidth=4, solid_capstyle="round")
    return mpl.Line2D([], [], color=color, marker=f"${mark}$", markersize=11, linestyle="")


def save(mpl: Matplotlib, figure, path: str | Path) -> None:
    mpl.FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    write_text_atomic(path, buffer.getvalue())


def grid_lines(mpl: Matplotlib, axes, height: int, width: int) -> None:
    lines = [[(c, 0), (c, height)] for c in range(1, width)]
    lines += [[(0, r), (width, r)] for r in range(1, height)]
    axes.add_collection(
        mpl.LineCollection(lines, colors=[(0, 0, 0, 0.08)], linewidths=0.72, zorder=1)
    )


def start_mark(axes, x: float, y: float, fontsize: float, color: str) -> None:
    """A bold "S" in the top-left corner of the cell whose top-left corner is (x, y)."""
    axes.text(
        x + 0.06,
        y + 0.04,
        "S",
        ha="left",
        va="top",
        fontsize=fontsize,
        fontweight="bold",
        color=color,
        zorder=5,
    )


def draw_arrows(axes, x, y, directions, length, width, color) -> None:
    """Arrows centred on (x, y), `length` cells long along `directions` ((dx, dy) rows)."""
    if len(x) == 0:
        return
    axes.quiver(
        x,
        y,
        directions[:, 0] * length,
        directions[:, 1] * length,
        angles="xy",
        scale_units="xy",
        scale=1,
        pivot="middle",
        units="xy",
        width=width,
        headwidth=3.2,
        headlength=3,
        headaxislength=2.6,
        color=color,
        zorder=4,
    )


def draw_path(axes, x, y, points: float) -> None:
    """The witness path through the cell centres: a dot where it starts, a square where it
    ends (repeated cells, such as turns on the spot, drawn once)."""
    if len(x) == 0:
        return
    keep = np.r_[True, (np.diff(x) != 0) | (np.diff(y) != 0)]
    x, y = x[keep], y[keep]
    axes.plot(
        x,
        y,
        color=PATH_COLOR,
        linewidth=0.16 * points,
        solid_capstyle="round",
        solid_joinstyle="round",
        zorder=3,
    )
    axes.plot(x[:1], y[:1], marker="o", markersize=0.42 * points, color=PATH_COLOR, zorder=3)
    axes.plot(x[-1:], y[-1:], marker="s", markersize=0.36 * points, color=PATH_COLOR, zorder=3)


def steps_from_start(mdp) -> np.ndarray:
    """float64 [n_states]: the fewest steps from an initial state (breadth first)."""
    matrix = mdp.transitions.tocoo()
    edges = sp.csr_matrix(
        (np.ones(matrix.nnz), (mdp.choice_states()[matrix.row], matrix.col)),
        shape=(mdp.n_states, mdp.n_states),
    )
    return dijkstra(edges, unweighted=True, indices=mdp.initial_states, min_only=True)


def first_per_slot(slot, preferred, distance, first=None) -> np.ndarray:
    """Index of the state drawn in each occupied slot (a cell, or a cell and a facing): the
    `first` ones before the others, then the `preferred`, then the fewest steps, then the
    lowest index."""
    keys = [np.arange(len(slot)), distance, ~preferred]
    if first is not None:
        keys.append(~first)
    order = np.lexsort([*keys, slot])
    _, found = np.unique(slot[order], return_index=True)
    return order[found]


# Arrows and marks: an action taken with probability 1, and the most likely of several.
MAZE_MARKS = ("#161616", "#8f8f8f")


# A legend line: (a glyph, "fill" or "path"; its color, or (color, alpha) for a fill; text).
LegendEntry = tuple[str, str | tuple[str, float], str]
