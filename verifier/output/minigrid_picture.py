"""A MiniGrid level as a picture (verifier/output/picture.py draws it on request): the level
as at the start, by MiniGrid's own renderer; each cell split into four triangles, one per
facing direction, each with the action taken facing that way; failing states tinted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from verifier.output.drawing import (
    ARROW,
    DPI,
    FAILURE_COLOR,
    MAZE_MARKS,
    PATH_COLOR,
    LegendEntry,
    cell_pixels,
    draw_arrows,
    draw_path,
    first_per_slot,
    matplotlib_api,
    most_likely,
    new_figure,
    save,
    start_mark,
    state_mask,
    states_of,
    steps_from_start,
)

MINIGRID_MARKS = ("#ffffff", "#9a9a9a")


MINIGRID_FAILURE_ALPHA = 0.7


_FACING = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])


# MiniGrid actions other than `forward` (an arrow), as a glyph (mathtext) and a legend text.
_MINIGRID_GLYPHS = {
    "left": ("\u21ba", "turn left"),
    "right": ("\u21bb", "turn right"),
    "pickup": ("\\mathrm{p}", "pick up"),
    "drop": ("\\mathrm{d}", "drop"),
    "toggle": ("\\mathrm{t}", "toggle"),
    "done": ("\u2713", "done"),
}


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
    mpl = matplotlib_api()
    from minigrid.core.grid import Grid

    env = gym.instance.unwrapped
    width, height = env.grid.width, env.grid.height
    action, certain = most_likely(mdp, choice_probs)
    failing = state_mask(mdp, failing)
    witness_states = states_of(mdp, witness)
    x, y, facing, outcome = (
        mdp.valuations[:, mdp.variables.index(v)] for v in ("x", "y", "dir", "outcome")
    )
    objects = [i for i, v in enumerate(mdp.variables) if v not in ("x", "y", "dir", "outcome")]
    start = int(mdp.initial_states[0])
    as_at_start = (mdp.valuations[:, objects] == mdp.valuations[start, objects]).all(axis=1)
    slot = (y * width + x) * 4 + facing
    drawn = first_per_slot(slot, as_at_start, steps_from_start(mdp), outcome == 0)

    snapshot = gym.snapshots[start]
    shown = {}
    for door, (is_open, is_locked) in zip(gym.doors, snapshot.doors, strict=True):
        shown[id(door)] = copy.copy(door)  # the door as at the start, the env's own untouched
        shown[id(door)].is_open, shown[id(door)].is_locked = is_open, is_locked
    grid = Grid(width, height)
    grid.grid = [shown.get(id(obj), obj) for obj in snapshot.cells]
    cell = cell_pixels(height, width, smallest=24, largest=64)
    points = cell * 72 / DPI
    background = grid.render(cell, agent_pos=(-1, -1), agent_dir=None)

    names = np.array([*mdp.actions, ""])[action[drawn]]  # action -1 (terminated): no mark
    marked = names != ""
    subtitle = "the policy's action at each facing, on that side of the cell;\n" + (
        "objects as at the start"
        if as_at_start[drawn].all()
        else "objects as at the start, or as first changed where the agent needs that"
    )
    legend: list[LegendEntry] = []
    if (names == "forward").any():
        legend.append((ARROW, MAZE_MARKS[0], "forward"))
    legend += [
        (glyph, MAZE_MARKS[0], text)
        for name, (glyph, text) in _MINIGRID_GLYPHS.items()
        if (names == name).any()
    ]
    if not certain[drawn][marked].all():
        legend.append((ARROW, MINIGRID_MARKS[1], "grey: most likely of a random choice"))
    if failing[drawn].any():
        legend.append(
            ("fill", (FAILURE_COLOR, MINIGRID_FAILURE_ALPHA), "objective fails, facing that side")
        )
    if len(witness_states):
        legend.append(("path", PATH_COLOR, "witness path (start \u25cf, end \u25a0)"))
    figure, axes = new_figure(mpl, height, width, cell, title, subtitle, legend)

    axes.imshow(background, extent=(0, width, height, 0), interpolation="nearest", zorder=0)
    start_mark(axes, x[start], y[start], 0.22 * points, MINIGRID_MARKS[0])
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
    draw_path(axes, x[witness_states] + 0.5, y[witness_states] + 0.5, points)
    mark_x = x[drawn] + 0.5 + 0.3 * _FACING[facing[drawn], 0]
    mark_y = y[drawn] + 0.5 + 0.3 * _FACING[facing[drawn], 1]
    for is_certain, color in ((True, MINIGRID_MARKS[0]), (False, MINIGRID_MARKS[1])):
        chosen = certain[drawn] == is_certain
        ahead = chosen & (names == "forward")
        draw_arrows(
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
    save(mpl, figure, path)
