"""Observations of states, as a policy sees them (README, "Files"), built with numpy.

valuation  float32 [n, n_vars]: the state's model variables in declaration order; for a maze
           8 values: row, col, then one 0/1 per palette color for the keys held.
grid       float32 [n, 19, H, W] (mazes only): one-hot planes wall, agent, exit, lava, object,
           key, door, the six colors, then six constant planes for the keys held. A key
           whose color is held has been picked up and is no longer drawn.
"""

from __future__ import annotations

import numpy as np

from verifier.inputs.maze import KINDS, PALETTE, Maze
from verifier.inputs.maze_compile import Grid
from verifier.mdp import MDP

GRID_CHANNELS = (
    "wall",
    "agent",
    "exit",
    "lava",
    "object",
    "key",
    "door",
    *PALETTE,
    *(f"has_key_{color}" for color in PALETTE),
)
_AGENT = GRID_CHANNELS.index("agent")
_KEY = GRID_CHANNELS.index("key")
_FIRST_COLOR = GRID_CHANNELS.index(PALETTE[0])
_FIRST_HELD = GRID_CHANNELS.index(f"has_key_{PALETTE[0]}")


def valuation_observations(mdp: MDP, states: np.ndarray | None = None) -> np.ndarray:
    """float32 [len(states), n_vars]: the valuations of `states` (default: all)."""
    states = np.arange(mdp.n_states) if states is None else states
    return mdp.valuations[states].astype(np.float32)


def state_listing(mdp: MDP) -> dict:
    """Every state as a policy table keys it: index, valuation (in `variables` order) and
    labels, in the verifier's state order; JSON-ready.

    Examples
    --------
    >>> listing = state_listing(mdp)  # doctest: +SKIP
    >>> listing["states"][0]  # doctest: +SKIP
    {'index': 0, 'valuation': [1, 1, 0, 0, 0, 0, 0, 0], 'labels': ['floor', 'start']}
    """
    names = sorted(mdp.labels)
    held = np.stack([mdp.labels[name] for name in names], axis=1) if names else None
    states = []
    for index, valuation in enumerate(mdp.valuations.tolist()):
        labels = [names[k] for k in np.flatnonzero(held[index])] if held is not None else []
        states.append({"index": index, "valuation": valuation, "labels": labels})
    return {"variables": list(mdp.variables), "states": states}


def static_planes(maze: Maze) -> np.ndarray:
    """float32 [19, H, W]: the planes that do not depend on the state."""
    grid = Grid.of(maze)
    planes = np.zeros((len(GRID_CHANNELS), grid.height, grid.width), dtype=np.float32)
    flat = planes.reshape(len(GRID_CHANNELS), -1)
    flat[GRID_CHANNELS.index("wall")] = grid.wall
    for kind in ("exit", "lava", "object", "key", "door"):
        flat[GRID_CHANNELS.index(kind)] = grid.kind == KINDS.index(kind)
    for i in range(len(PALETTE)):
        flat[_FIRST_COLOR + i] = grid.color == i
    return planes


def grid_observations(maze: Maze, mdp: MDP, states: np.ndarray, planes: np.ndarray | None = None):
    """float32 [len(states), 19, H, W] for a batch of states of the maze's compiled MDP.

    `planes` (from `static_planes`) may be passed to avoid recomputing them per batch.
    """
    planes = static_planes(maze) if planes is None else planes
    _, height, width = planes.shape
    rows = mdp.valuations[states, 0]
    cols = mdp.valuations[states, 1]
    held = mdp.valuations[states, 2 : 2 + len(PALETTE)].astype(bool)
    batch = np.repeat(planes[None], len(states), axis=0)
    index = np.arange(len(states))
    batch[index, _AGENT, rows, cols] = 1.0
    batch[:, _FIRST_HELD : _FIRST_HELD + len(PALETTE)] = held[:, :, None, None]
    picked = planes[_KEY][None] * np.einsum(
        "bc,chw->bhw", held, planes[_FIRST_COLOR : _FIRST_COLOR + len(PALETTE)]
    )
    if picked.any():
        batch[:, _KEY] -= picked
        for i in range(len(PALETTE)):
            batch[:, _FIRST_COLOR + i] -= picked * held[:, i, None, None]
    return batch
