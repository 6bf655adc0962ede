"""Pictures of a policy on its environment: a maze or a MiniGrid level as a PNG, with the
action taken in each cell, the states where the objective fails and a witness path.

Drawing only: the caller passes plain arrays (the policy's choice probabilities, a failure
mask over states, a path of state indices) with the model, and nothing is computed here but
the picture. matplotlib is imported only when a picture is drawn (the `plot` extra) and used
through its object-oriented API on the Agg canvas: no pyplot, no backend switch, no rcParams
change. MiniGrid levels are drawn by MiniGrid's own tile renderer. The PNG is written whole
or not at all (a temporary file beside it, then a rename).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from verifier.errors import DependencyMissing, InputError
from verifier.inputs.maze import PALETTE, WALL
from verifier.output.files import write_text_atomic

DPI = 100
WALL_COLOR = "#3b3b3b"
FLOOR_COLOR = "#f7f7f5"
LAVA_COLOR = "#ff8000"
FAILURE_COLOR = "#e8175d"
PATH_COLOR = "#00b4e6"
# Arrows and marks: an action taken with probability 1, and the most likely of several.
MAZE_MARKS = ("#161616", "#8f8f8f")
MINIGRID_MARKS = ("#ffffff", "#9a9a9a")
MAZE_PALETTE = {
    "red": "#e03131",
    "green": "#2f9e44",
    "blue": "#1c7ed6",
    "yellow": "#f0b400",
    "purple": "#7048e8",
    "grey": "#868e96",
}
_EXIT_COLOR = MAZE_PALETTE["green"]
# Opacity of the failure fill: on the maze's light floor, on MiniGrid's black one.
MAZE_FAILURE_ALPHA = 0.45
MINIGRID_FAILURE_ALPHA = 0.7
_CERTAIN = 1.0 - 1e-9
# Screen offsets (dx, dy), y pointing down: maze actions, and MiniGrid's facing directions
# 0 east, 1 south, 2 west, 3 north.
_MAZE_STEPS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_FACING = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])
_ARROW = "\u2192"
# A legend line: (a glyph, "fill" or "path"; its color, or (color, alpha) for a fill; text).
_LegendEntry = tuple[str, str | tuple[str, float], str]
# MiniGrid actions other than `forward` (an arrow), as a glyph (mathtext) and a legend text.
_MINIGRID_GLYPHS = {
    "left": ("\u21ba", "turn left"),
    "right": ("\u21bb", "turn right"),
    "pickup": ("\\mathrm{p}", "pick up"),
    "drop": ("\\mathrm{d}", "drop"),
    "toggle": ("\\mathrm{t}", "toggle"),
    "done": ("\u2713", "done"),
}


def write_picture(
    path: str | Path,
    env,
    choice_probs: np.ndarray,
    failing: np.ndarray | None = None,
    witness: Sequence[int] = (),
    title: str = "",
) -> None:
    """Draw `env` (a verifier.inputs.environment.Environment of a maze or a MiniGrid level) with the
    policy `choice_probs` (float64 [n_choices]), the `failing` states (bool [n_states]) and
    the `witness` path (state indices), as a PNG at `path`: `draw_maze` or `draw_minigrid`.

    InputError for a model that is neither a maze nor a MiniGrid level, and for a path that
    cannot be written.
    """
    if _kind(env) == "maze":
        draw_maze(path, env.maze, env.mdp, choice_probs, failing, witness, title)
    else:
        draw_minigrid(path, env.gym, env.mdp, choice_probs, failing, witness, title)


def require_drawable(env) -> None:
    """InputError unless `env` is a maze or a MiniGrid level: refuse `--png` before any work."""
    _kind(env)


def deterministic_probs(mdp, choices: np.ndarray) -> np.ndarray:
    """float64 [n_choices]: the choice probabilities of the deterministic policy that takes
    the global choice `choices[s]` (int64 [n_states]) in each state s, such as the optimal
    policy of a reward witness.

    Examples
    --------
    >>> from verifier.inputs.maze_compile import compile_maze
    >>> from verifier.inputs.maze import parse_maze
    >>> mdp = compile_maze(parse_maze('map = "S.A"\\n[cells.A]\\nkind = "exit"'))
    >>> deterministic_probs(mdp, mdp.row_groups[:-1] + [3, 3, 0]).tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    """
    choices = np.asarray(choices, dtype=np.int64)
    if (
        choices.shape != (mdp.n_states,)
        or ((choices < mdp.row_groups[:-1]) | (choices >= mdp.row_groups[1:])).any()
    ):
        raise ValueError("choices must name one choice of each state: int [n_states]")
    probs = np.zeros(mdp.n_choices)
    probs[choices] = 1.0
    return probs


def draw_maze(
    path: str | Path,
    maze,
    mdp,
    choice_probs: np.ndarray,
    failing: np.ndarray | None = None,
    witness: Sequence[int] = (),
    title: str = "",
    keys: Sequence[str] | None = None,
) -> None:
    """Draw a maze (verifier.inputs.maze.Maze) and a policy on its MDP as a PNG at `path`.

    Several states share a cell (one per key inventory), so each cell shows one of them:
    with `keys` None, the state holding no key where the agent can stand there without keys,
    else the state fewest steps from the start (the inventory it first gets there with);
    with `keys` (colors), exactly the states holding those keys, and no arrow where the
    agent cannot be with them. In that state the picture shows:

    - an arrow for the policy's most likely action (the first on ties): dark where it is
      taken with probability 1, grey where the policy is random there;
    - a translucent fill and a frame in FAILURE_COLOR where the state is `failing`;
    - the witness path (state indices, in order) as a line through the cell centres, a dot
      where it starts and a square where it ends.

    Walls are dark, lava orange, exits filled in their color (green when they have none),
    objects discs and keys key shapes in their color, doors framed in theirs; `S` marks the
    start cells; terminal objects have a dark rim. Cells are square, 4 to 48 pixels; arrows
    are left out below 8 pixels (mazes above 150 cells a side), frames, grid lines and
    letters below 12 (above 100).

    Examples
    --------
    >>> from verifier.inputs.maze_compile import compile_maze
    >>> from verifier.inputs.maze import parse_maze
    >>> maze = parse_maze('map = "#S.A#"\\n[cells.A]\\nkind = "exit"')
    >>> mdp = compile_maze(maze)
    >>> right = deterministic_probs(mdp, mdp.row_groups[:-1] + [3, 3, 0])
    >>> draw_maze("policy.png", maze, mdp, right, witness=[0, 1, 2])  # doctest: +SKIP
    """
    mpl = _matplotlib()
    height, width = maze.shape
    action, certain = _most_likely(mdp, choice_probs)
    failing = _state_mask(mdp, failing)
    witness_states = _states(mdp, witness)
    row, col = (mdp.valuations[:, mdp.variables.index(v)] for v in ("row", "col"))
    held = mdp.valuations[:, [mdp.variables.index(f"key_{c}") for c in PALETTE]] != 0
    if keys is None:
        eligible = np.ones(mdp.n_states, dtype=bool)
        preferred = ~held.any(axis=1)
    else:
        unknown = [k for k in keys if k not in PALETTE]
        if unknown:
            raise InputError(
                "--png", f"unknown key color {unknown[0]!r}; known: {', '.join(PALETTE)}"
            )
        eligible = preferred = (held == np.isin(PALETTE, list(keys))).all(axis=1)
        if not eligible.any():
            raise InputError(
                "--png", f"no state of {maze.name} holds exactly the keys {', '.join(keys)}"
            )
    states = np.flatnonzero(eligible)
    position = row * width + col
    drawn = states[
        _first_per_slot(position[states], preferred[states], _steps_from_start(mdp)[states])
    ]

    cell = _cell_pixels(height, width, smallest=4, largest=48)
    points = cell * 72 / DPI
    marks = [(_MAZE_STEPS.get(name) or (0, 0)) for name in mdp.actions]
    moves = np.array(marks + [(0, 0)])[action[drawn]]  # action -1 (no label): no arrow
    arrows = (moves != 0).any(axis=1)
    if keys is not None:
        held_text = ", ".join(keys) or "no key"
        subtitle = f"holding {held_text}: the policy's action in each cell"
    elif preferred[drawn].all():
        subtitle = "the policy's action in each cell, holding no key"
    else:
        subtitle = "the policy's action in each cell: with no key, else as first reached"
    legend: list[_LegendEntry] = [(_ARROW, MAZE_MARKS[0], "action taken")]
    if not certain[drawn][arrows].all():
        legend.append((_ARROW, MAZE_MARKS[1], "most likely of a random choice"))
    if failing[drawn].any():
        legend.append(("fill", (FAILURE_COLOR, MAZE_FAILURE_ALPHA), "objective fails"))
    if len(witness_states):
        legend.append(("path", PATH_COLOR, "witness path (start \u25cf, end \u25a0)"))
    figure, axes = _figure(mpl, height, width, cell, title, subtitle, legend)

    axes.imshow(
        _maze_background(mpl, maze), extent=(0, width, height, 0), interpolation="nearest", zorder=0
    )
    if cell >= 12:
        _grid_lines(mpl, axes, height, width)
    _maze_items(mpl, axes, maze, points)
    if cell >= 12:
        for r, c in maze.starts():
            axes.text(
                c + 0.06,
                r + 0.04,
                "S",
                ha="left",
                va="top",
                fontsize=0.3 * points,
                fontweight="bold",
                color=MAZE_MARKS[0],
                zorder=5,
            )
    bad = drawn[failing[drawn]]
    if len(bad):
        overlay = np.zeros((height, width, 4))
        overlay.reshape(-1, 4)[position[bad]] = (
            *mpl.colors.to_rgb(FAILURE_COLOR),
            MAZE_FAILURE_ALPHA,
        )
        axes.imshow(overlay, extent=(0, width, height, 0), interpolation="nearest", zorder=2)
        if cell >= 12:
            frames = [
                mpl.Rectangle((c + 0.05, r + 0.05), 0.9, 0.9)
                for r, c in zip(row[bad], col[bad], strict=True)
            ]
            axes.add_collection(
                mpl.PatchCollection(
                    frames,
                    facecolor="none",
                    edgecolor=FAILURE_COLOR,
                    linewidth=0.1 * points,
                    zorder=2,
                )
            )
    _path(axes, col[witness_states] + 0.5, row[witness_states] + 0.5, points)
    if cell >= 8:
        for is_certain, color in ((True, MAZE_MARKS[0]), (False, MAZE_MARKS[1])):
            shown = arrows & (certain[drawn] == is_certain)
            _arrows(
                axes,
                col[drawn][shown] + 0.5,
                row[drawn][shown] + 0.5,
                moves[shown],
                0.64,
                0.09,
                color,
            )
    _save(mpl, figure, path)


def draw_minigrid(
    path: str | Path,
    gym,
    mdp,
    choice_probs: np.ndarray,
    failing: np.ndarray | None = None,
    witness: Sequence[int] = (),
    title: str = "",
) -> None:
    """Draw a MiniGrid level (a verifier.inputs.gym.GymModel of kind "minigrid") and a policy
    on its MDP as a PNG at `path`.

    The level is drawn as it is at the start (MiniGrid's own tiles, without the agent).
    The agent's state is its cell, its facing direction and the objects (carried, doors,
    keys, balls, boxes), so each cell shows four states, one per facing direction, each in
    the quarter of the cell on the side it faces (the triangle between the cell's centre and
    that edge): the state with the objects as at the start where the agent can be there so,
    else the state fewest steps from the start; running states before terminated ones. In
    each quarter:

    - the policy's most likely action (the first on ties): `forward` an arrow pointing the
      way the agent faces, turns circular arrows (left anticlockwise, right clockwise),
      `pickup`, `drop`, `toggle` the letters p, d, t and `done` a tick; white where it is
      taken with probability 1, grey where the policy is random there; nothing in
      terminated states;
    - a translucent FAILURE_COLOR fill where the state is `failing`.

    The witness path (state indices, in order) is a line through the centres of the cells
    it visits, a dot where it starts and a square where it ends; `S` marks the start cell.
    Cells are 24 to 64 pixels.
    """
    mpl = _matplotlib()
    from minigrid.core.grid import Grid

    env = gym.instance.unwrapped
    width, height = env.grid.width, env.grid.height
    action, certain = _most_likely(mdp, choice_probs)
    failing = _state_mask(mdp, failing)
    witness_states = _states(mdp, witness)
    x, y, facing, outcome = (
        mdp.valuations[:, mdp.variables.index(v)] for v in ("x", "y", "dir", "outcome")
    )
    objects = [i for i, v in enumerate(mdp.variables) if v not in ("x", "y", "dir", "outcome")]
    start = int(mdp.initial_states[0])
    as_at_start = (mdp.valuations[:, objects] == mdp.valuations[start, objects]).all(axis=1)
    slot = (y * width + x) * 4 + facing
    drawn = _first_per_slot(slot, as_at_start, _steps_from_start(mdp), outcome == 0)

    snapshot = gym.snapshots[start]
    shown = {}
    for door, (is_open, is_locked) in zip(gym.doors, snapshot.doors, strict=True):
        shown[id(door)] = copy.copy(door)  # the door as at the start, the env's own untouched
        shown[id(door)].is_open, shown[id(door)].is_locked = is_open, is_locked
    grid = Grid(width, height)
    grid.grid = [shown.get(id(obj), obj) for obj in snapshot.cells]
    cell = _cell_pixels(height, width, smallest=24, largest=64)
    points = cell * 72 / DPI
    background = grid.render(cell, agent_pos=(-1, -1), agent_dir=None)

    names = np.array([*mdp.actions, ""])[action[drawn]]  # action -1 (terminated): no mark
    marked = names != ""
    subtitle = "the policy's action at each facing, on that side of the cell;\n" + (
        "objects as at the start"
        if as_at_start[drawn].all()
        else "objects as at the start, or as first changed where the agent needs that"
    )
    legend: list[_LegendEntry] = []
    if (names == "forward").any():
        legend.append((_ARROW, MAZE_MARKS[0], "forward"))
    legend += [
        (glyph, MAZE_MARKS[0], text)
        for name, (glyph, text) in _MINIGRID_GLYPHS.items()
        if (names == name).any()
    ]
    if not certain[drawn][marked].all():
        legend.append((_ARROW, MINIGRID_MARKS[1], "grey: most likely of a random choice"))
    if failing[drawn].any():
        legend.append(
            ("fill", (FAILURE_COLOR, MINIGRID_FAILURE_ALPHA), "objective fails, facing that side")
        )
    if len(witness_states):
        legend.append(("path", PATH_COLOR, "witness path (start \u25cf, end \u25a0)"))
    figure, axes = _figure(mpl, height, width, cell, title, subtitle, legend)

    axes.imshow(background, extent=(0, width, height, 0), interpolation="nearest", zorder=0)
    axes.text(
        x[start] + 0.06,
        y[start] + 0.04,
        "S",
        ha="left",
        va="top",
        fontsize=0.22 * points,
        fontweight="bold",
        color=MINIGRID_MARKS[0],
        zorder=5,
    )
    bad = drawn[failing[drawn]]
    if len(bad):
        centre = np.column_stack([x[bad] + 0.5, y[bad] + 0.5])
        ahead, side = _FACING[facing[bad]], _FACING[(facing[bad] + 1) % 4]
        triangles = np.stack(
            [centre, centre + 0.5 * (ahead + side), centre + 0.5 * (ahead - side)], axis=1
        )
        axes.add_collection(
            mpl.PolyCollection(
                list(triangles),
                facecolor=FAILURE_COLOR,
                alpha=MINIGRID_FAILURE_ALPHA,
                linewidth=0,
                zorder=2,
            )
        )
    _path(axes, x[witness_states] + 0.5, y[witness_states] + 0.5, points)
    mark_x = x[drawn] + 0.5 + 0.3 * _FACING[facing[drawn], 0]
    mark_y = y[drawn] + 0.5 + 0.3 * _FACING[facing[drawn], 1]
    for is_certain, color in ((True, MINIGRID_MARKS[0]), (False, MINIGRID_MARKS[1])):
        chosen = certain[drawn] == is_certain
        ahead = chosen & (names == "forward")
        _arrows(
            axes,
            mark_x[ahead],
            mark_y[ahead],
            _FACING[facing[drawn][ahead]],
            0.26,
            0.045,
            color,
        )
        for name, (glyph, _) in _MINIGRID_GLYPHS.items():
            here = chosen & (names == name)
            if here.any():
                axes.scatter(
                    mark_x[here],
                    mark_y[here],
                    s=(0.24 * points) ** 2,
                    marker=f"${glyph}$",
                    color=color,
                    linewidths=0,
                    zorder=4,
                )
    _save(mpl, figure, path)


def _kind(env) -> str:
    if getattr(env, "maze", None) is not None:
        return "maze"
    gym = getattr(env, "gym", None)
    if gym is not None and getattr(gym, "kind", None) == "minigrid":
        return "minigrid"
    name = getattr(env, "path", None) or "this model"
    raise InputError("--png", f"pictures exist for mazes and MiniGrid levels only, not {name}")


class _Matplotlib:
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


def _matplotlib() -> _Matplotlib:
    try:
        return _Matplotlib()
    except ImportError:
        raise DependencyMissing("drawing", "matplotlib", "plot", "--png") from None


def _most_likely(mdp, choice_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return mdp.choice_actions[first].astype(np.int64), best >= _CERTAIN


def _state_mask(mdp, failing: np.ndarray | None) -> np.ndarray:
    if failing is None:
        return np.zeros(mdp.n_states, dtype=bool)
    failing = np.asarray(failing, dtype=bool)
    if failing.shape != (mdp.n_states,):
        raise ValueError(f"failing must be bool [n_states={mdp.n_states}]")
    return failing


def _states(mdp, witness: Sequence[int]) -> np.ndarray:
    states = np.asarray(witness, dtype=np.int64).reshape(-1)
    if ((states < 0) | (states >= mdp.n_states)).any():
        raise ValueError(f"witness states must be in 0..{mdp.n_states - 1}")
    return states


def _steps_from_start(mdp) -> np.ndarray:
    """float64 [n_states]: the fewest steps from an initial state (breadth first)."""
    matrix = mdp.transitions.tocoo()
    edges = sp.csr_matrix(
        (np.ones(matrix.nnz), (mdp.choice_states()[matrix.row], matrix.col)),
        shape=(mdp.n_states, mdp.n_states),
    )
    return dijkstra(edges, unweighted=True, indices=mdp.initial_states, min_only=True)


def _first_per_slot(slot, preferred, distance, first=None) -> np.ndarray:
    """Index of the state drawn in each occupied slot (a cell, or a cell and a facing): the
    `first` ones before the others, then the `preferred`, then the fewest steps, then the
    lowest index."""
    keys = [np.arange(len(slot)), distance, ~preferred]
    if first is not None:
        keys.append(~first)
    order = np.lexsort([*keys, slot])
    _, found = np.unique(slot[order], return_index=True)
    return order[found]


def _cell_pixels(height: int, width: int, smallest: int, largest: int) -> int:
    """Pixels per cell: about 1200 pixels for the longer side, within the bounds."""
    return int(np.clip(1200 // max(height, width), smallest, largest))


def _figure(mpl: _Matplotlib, height, width, cell, title, subtitle, legend):
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
    handles = [_legend_handle(mpl, mark, color) for mark, color, _ in legend]
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


def _legend_handle(mpl: _Matplotlib, mark: str, color):
    """A legend key: a failure fill ((color, alpha)), the path, or a glyph (mathtext)."""
    if mark == "fill":
        return mpl.Patch(facecolor=mpl.colors.to_rgba(*color), edgecolor=color[0])
    if mark == "path":
        return mpl.Line2D([], [], color=color, linewidth=4, solid_capstyle="round")
    return mpl.Line2D([], [], color=color, marker=f"${mark}$", markersize=11, linestyle="")


def _save(mpl: _Matplotlib, figure, path: str | Path) -> None:
    mpl.FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    write_text_atomic(path, buffer.getvalue())


def _maze_background(mpl: _Matplotlib, maze) -> np.ndarray:
    """float [H, W, 3]: walls, floor, lava, exits in their color, doors and colored floor
    tinted with theirs."""
    to_rgb = mpl.colors.to_rgb
    image = np.empty((*maze.shape, 3))
    image[...] = to_rgb(FLOOR_COLOR)
    image[maze.layout == WALL] = to_rgb(WALL_COLOR)
    for char, cell in maze.cells.items():
        here = maze.layout == char
        color = to_rgb(MAZE_PALETTE.get(cell.color, _EXIT_COLOR))
        if cell.kind == "lava":
            image[here] = to_rgb(LAVA_COLOR)
        elif cell.kind == "exit":
            image[here] = color
        elif cell.kind in ("door", "floor") and cell.color is not None:
            image[here] = 0.3 * np.array(color) + 0.7 * np.array(to_rgb(FLOOR_COLOR))
    return image


def _grid_lines(mpl: _Matplotlib, axes, height: int, width: int) -> None:
    lines = [[(c, 0), (c, height)] for c in range(1, width)]
    lines += [[(0, r), (width, r)] for r in range(1, height)]
    axes.add_collection(
        mpl.LineCollection(lines, colors=[(0, 0, 0, 0.08)], linewidths=0.72, zorder=1)
    )


def _maze_items(mpl: _Matplotlib, axes, maze, points: float) -> None:
    """Objects as discs, keys as keys, doors as frames with a keyhole, in their colors."""
    for char, cell in maze.cells.items():
        if cell.kind not in ("object", "key", "door"):
            continue
        rows, cols = np.nonzero(maze.layout == char)
        color = MAZE_PALETTE.get(cell.color, MAZE_PALETTE["grey"])
        if cell.kind == "object":
            axes.scatter(
                cols + 0.5,
                rows + 0.5,
                s=(0.62 * points) ** 2,
                color=color,
                edgecolors=WALL_COLOR if cell.terminal else "none",
                linewidths=0.04 * points,
                zorder=1.5,
            )
        elif cell.kind == "key":
            axes.scatter(
                cols + 0.5,
                rows + 0.5,
                s=(0.9 * points) ** 2,
                marker=_key_marker(mpl),
                color=color,
                linewidths=0,
                zorder=1.5,
            )
        else:
            frames = [
                mpl.Rectangle((c + 0.1, r + 0.1), 0.8, 0.8) for r, c in zip(rows, cols, strict=True)
            ]
            axes.add_collection(
                mpl.PatchCollection(
                    frames,
                    facecolor="none",
                    edgecolor=color,
                    linewidth=0.12 * points,
                    zorder=1.5,
                )
            )
            axes.scatter(
                cols + 0.5,
                rows + 0.5,
                s=(0.14 * points) ** 2,
                color=color,
                linewidths=0,
                zorder=1.5,
            )


def _key_marker(mpl: _Matplotlib):
    """A key lying left to right: a round bow, a shaft and two teeth (a marker path)."""

    def box(width, height, left, bottom):
        return mpl.MarkerPath.unit_rectangle().transformed(
            mpl.Affine2D().scale(width, height).translate(left, bottom)
        )

    bow = mpl.MarkerPath.circle((-0.55, 0.0), 0.42)
    teeth = [box(0.16, 0.32, left, -0.42) for left in (0.55, 0.8)]
    return mpl.MarkerPath.make_compound_path(bow, box(1.25, 0.24, -0.25, -0.12), *teeth)


def _arrows(axes, x, y, directions, length, width, color) -> None:
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


def _path(axes, x, y, points: float) -> None:
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
