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

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verifier.errors import InputError
from verifier.inputs.maze import PALETTE, WALL
from verifier.output.drawing import (
    ARROW,
    DPI,
    FAILURE_COLOR,
    FLOOR_COLOR,
    LAVA_COLOR,
    MAZE_MARKS,
    PATH_COLOR,
    WALL_COLOR,
    LegendEntry,
    Matplotlib,
    cell_pixels,
    draw_arrows,
    draw_path,
    first_per_slot,
    grid_lines,
    matplotlib_api,
    most_likely,
    new_figure,
    save,
    start_mark,
    state_mask,
    states_of,
    steps_from_start,
)
from verifier.output.minigrid_picture import draw_minigrid

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
# Screen offsets (dx, dy), y pointing down: maze actions, and MiniGrid's facing directions
# 0 east, 1 south, 2 west, 3 north.
_MAZE_STEPS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


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
    mpl = matplotlib_api()
    height, width = maze.shape
    action, certain = most_likely(mdp, choice_probs)
    failing = state_mask(mdp, failing)
    witness_states = states_of(mdp, witness)
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
        first_per_slot(position[states], preferred[states], steps_from_start(mdp)[states])
    ]

    cell = cell_pixels(height, width, smallest=4, largest=48)
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
    legend: list[LegendEntry] = [(ARROW, MAZE_MARKS[0], "action taken")]
    if not certain[drawn][arrows].all():
        legend.append((ARROW, MAZE_MARKS[1], "most likely of a random choice"))
    if failing[drawn].any():
        legend.append(("fill", (FAILURE_COLOR, MAZE_FAILURE_ALPHA), "objective fails"))
    if len(witness_states):
        legend.append(("path", PATH_COLOR, "witness path (start \u25cf, end \u25a0)"))
    figure, axes = new_figure(mpl, height, width, cell, title, subtitle, legend)

    axes.imshow(
        _maze_background(mpl, maze), extent=(0, width, height, 0), interpolation="nearest", zorder=0
    )
    if cell >= 12:
        grid_lines(mpl, axes, height, width)
    _maze_items(mpl, axes, maze, points)
    if cell >= 12:
        for r, c in maze.starts():
            start_mark(axes, c, r, 0.3 * points, MAZE_MARKS[0])
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
    draw_path(axes, col[witness_states] + 0.5, row[witness_states] + 0.5, points)
    if cell >= 8:
        for is_certain, color in ((True, MAZE_MARKS[0]), (False, MAZE_MARKS[1])):
            shown = arrows & (certain[drawn] == is_certain)
            draw_arrows(
                axes,
                col[drawn][shown] + 0.5,
                row[drawn][shown] + 0.5,
                moves[shown],
                0.64,
                0.09,
                color,
            )
    save(mpl, figure, path)


def _kind(env) -> str:
    if getattr(env, "maze", None) is not None:
        return "maze"
    gym = getattr(env, "gym", None)
    if gym is not None and getattr(gym, "kind", None) == "minigrid":
        return "minigrid"
    name = getattr(env, "path", None) or "this model"
    raise InputError("--png", f"pictures exist for mazes and MiniGrid levels only, not {name}")


def _maze_background(mpl: Matplotlib, maze) -> np.ndarray:
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


def _maze_items(mpl: Matplotlib, axes, maze, points: float) -> None:
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


def _key_marker(mpl: Matplotlib):
    """A key lying left to right: a round bow, a shaft and two teeth (a marker path)."""

    def box(width, height, left, bottom):
        return mpl.MarkerPath.unit_rectangle().transformed(
            mpl.Affine2D().scale(width, height).translate(left, bottom)
        )

    bow = mpl.MarkerPath.circle((-0.55, 0.0), 0.42)
    teeth = [box(0.16, 0.32, left, -0.42) for left in (0.55, 0.8)]
    return mpl.MarkerPath.make_compound_path(bow, box(1.25, 0.24, -0.25, -0.12), *teeth)
