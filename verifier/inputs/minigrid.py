"""A MiniGrid level -> its exact reachable MDP, by running the level's own `step` from every
state (breadth first).

A state is the agent's position and direction, the carried object, the contents of every grid
cell and every door's open/locked flags. States are snapshots that share the level's objects
by identity, so `step` overrides that compare objects by identity (UnlockPickup's
`carrying == obj`) stay right. Two snapshots are the same state when their keys are equal: an
object's key is its type, color and box contents, or its own identity when an attribute of the
env refers to it. The step counter is abstracted away: it is 0 before every step, so the MDP
is exact for every objective and policy that does not observe time (the env's own reward is
the first step's, 1 - 0.9 / max_steps on the goal). A terminated step leads to an absorbing
state, `goal` (positive reward), `lava` (standing on lava) or `fail`.

Guards: `step` may not draw random numbers (a trip wire replaces `np_random`), may not rebind
attributes outside the snapshot, and a self-check re-steps a sample of (state, action) pairs on
a `copy.deepcopy` of the env with its real observation code and compares the complete result.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass

import numpy as np

from verifier.budget import available_memory, over_budget, size
from verifier.errors import EnumerationError, InputError, ResourceLimit
from verifier.mdp import MDP, csr

OUTCOMES = ("running", "goal", "lava", "fail")
SELF_CHECK_SAMPLES = 100
_DYNAMIC = {"agent_pos", "agent_dir", "carrying", "step_count"}


class StochasticStep(BaseException):
    """Raised by the trip wire when `step` touches the random number generator (a
    BaseException, so that a step's own `except Exception` cannot swallow it)."""


class _TripWire:
    """Stands in for `env.np_random` during enumeration; remembers being touched."""

    def __init__(self):
        self.touched = False

    def __getattr__(self, name):
        self.touched = True
        raise StochasticStep(name)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything `step` reads or writes: agent, carried object, grid cells, door flags."""

    pos: tuple[int, int]
    dir: int
    carrying: object
    cells: list
    doors: tuple


@dataclass(frozen=True, slots=True, eq=False)
class MiniGridModel:
    """The enumerated MDP and, per state, the snapshot that restores it."""

    mdp: MDP
    snapshots: tuple[Snapshot, ...]
    doors: tuple
    steps_per_second: float


def restore(env, snapshot: Snapshot, doors) -> None:
    """Put the base env into the snapshot's state (the step counter at 0)."""
    env.agent_pos = snapshot.pos
    env.agent_dir = snapshot.dir
    env.carrying = snapshot.carrying
    env.grid.grid[:] = snapshot.cells
    for door, (is_open, is_locked) in zip(doors, snapshot.doors, strict=True):
        door.is_open = is_open
        door.is_locked = is_locked
    env.step_count = 0


def enumerate_minigrid(
    env,
    source: str,
    actions: tuple[str, ...] | None = None,
    max_states: int | None = None,
    name: str = "minigrid",
) -> MiniGridModel:
    """Breadth-first enumeration of the reset env's reachable states through `env.step`."""
    import time

    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
    from minigrid.core.world_object import Box, Door, WorldObj

    names = [a.name for a in env.actions]
    chosen = tuple(actions) if actions else tuple(names)
    unknown = [a for a in chosen if a not in names]
    if unknown:
        raise InputError(
            source, f"unknown action {unknown[0]!r}; known: {', '.join(names)}", "gymnasium.actions"
        )
    action_ids = [names.index(a) for a in chosen]

    objects = _objects(env, WorldObj, Box)
    referenced = {id(v) for v in _attribute_objects(env, WorldObj)}
    codes = {id(None): 0}
    classes: dict = {}
    for obj in objects:
        signature = (id(obj),) if id(obj) in referenced else _signature(obj, Box)
        codes[id(obj)] = classes.setdefault(signature, len(classes) + 1)
    doors = tuple(obj for obj in objects if isinstance(obj, Door))
    movable = [obj for obj in objects if obj.can_pickup()]
    width = env.grid.width
    memory = _memory_plan(env, chosen, max_states, name)

    def cells_key() -> tuple:
        return tuple(map(codes.__getitem__, map(id, env.grid.grid)))

    def key_of(cells: tuple) -> tuple:
        x, y = env.agent_pos
        return (
            int(x),
            int(y),
            int(env.agent_dir),
            codes[id(env.carrying)],
            tuple([(d.is_open, d.is_locked) for d in doors]),
            cells,
        )

    def snapshot() -> Snapshot:
        x, y = env.agent_pos
        return Snapshot(
            (int(x), int(y)),
            int(env.agent_dir),
            env.carrying,
            list(env.grid.grid),
            tuple([(d.is_open, d.is_locked) for d in doors]),
        )

    def describe(outcome: int) -> list[int]:
        """x, y, dir, carrying type/color, outcome, door states, object places; then the
        type/color of the cell stood on and of the cell ahead (for labels)."""
        x, y = (int(v) for v in env.agent_pos)
        fx, fy = (int(v) for v in env.front_pos)
        cells = env.grid.grid
        row = [
            x,
            y,
            int(env.agent_dir),
            *_type_color(env.carrying, OBJECT_TO_IDX, COLOR_TO_IDX),
            outcome,
        ]
        row += [d.encode()[2] for d in doors]
        row += [-1 if o is env.carrying else _cell_of(cells, o) for o in movable]
        row += _type_color(cells[y * width + x], OBJECT_TO_IDX, COLOR_TO_IDX)
        row += _type_color(cells[fy * width + fx], OBJECT_TO_IDX, COLOR_TO_IDX)
        return row

    real_gen_obs, real_rng = env.gen_obs, env.np_random
    env.gen_obs = _no_observation
    wire = env._np_random = _TripWire()
    attributes = vars(env)
    fixed = [k for k in attributes if k not in _DYNAMIC]
    baseline = [attributes[k] for k in fixed]
    lava = OBJECT_TO_IDX["lava"]
    started = time.perf_counter()
    try:
        snapshots = [snapshot()]
        state_cells = [cells_key()]
        index = {key_of(state_cells[0]): 0}
        rows = [describe(0)]
        successors: list[int] = []
        rewards: list[float] = []
        frontier = 0
        while frontier < len(snapshots):
            state = snapshots[frontier]
            frontier += 1
            if rows[frontier - 1][5] != 0:
                continue
            for action in action_ids:
                restore(env, state, doors)
                try:
                    _, reward, terminated, _, _ = env.step(action)
                    if wire.touched:
                        raise StochasticStep("np_random")
                except StochasticStep:
                    raise InputError(
                        name,
                        "step draws random numbers, so it is not a deterministic MDP the "
                        "enumeration can read; refused",
                    ) from None
                now = [attributes.get(k) for k in fixed]
                if not all(map(operator.is_, now, baseline)):
                    changed = next(
                        k for k, a, b in zip(fixed, now, baseline, strict=True) if a is not b
                    )
                    raise InputError(
                        name,
                        f"step changes env.{changed}, state the enumeration cannot see; refused",
                    )
                cells = state_cells[frontier - 1] if env.grid.grid == state.cells else cells_key()
                key = key_of(cells)
                outcome = 0
                if terminated:
                    cell = env.grid.grid[key[1] * width + key[0]]
                    outcome = (
                        1
                        if reward > 0
                        else 2
                        if cell is not None and OBJECT_TO_IDX[cell.type] == lava
                        else 3
                    )
                    key = (outcome, key)
                target = index.get(key)
                if target is None:
                    target = index[key] = len(snapshots)
                    snapshots.append(snapshot())
                    state_cells.append(cells)
                    rows.append(describe(outcome))
                    if max_states is not None and len(snapshots) > max_states:
                        raise over_budget(name, max_states)
                    if memory is not None and len(snapshots) * memory[0] > memory[1]:
                        raise _too_big(name, len(snapshots), memory[0], memory[1])
                successors.append(target)
                rewards.append(float(reward))
        seconds = time.perf_counter() - started
        mdp = _build(
            rows, successors, rewards, chosen, doors, movable, name, OBJECT_TO_IDX, COLOR_TO_IDX
        )
        _self_check(
            env, mdp, snapshots, doors, action_ids, real_gen_obs, real_rng, source, name, Box
        )
    finally:
        del env.gen_obs
        env._np_random = real_rng
    steps = len(successors)
    return MiniGridModel(mdp, tuple(snapshots), doors, steps / max(seconds, 1e-9))


# What one enumerated state costs in memory, beyond the grid: its snapshot, key, valuation
# row and successors; and per grid cell: one slot in the snapshot's copy of the grid and one
# in its key (measured: BlockedUnlockPickup, 66 cells, 2.5 KB a state).
BYTES_PER_STATE = 1500
BYTES_PER_CELL = 16


def _memory_plan(env, actions: tuple[str, ...], max_states: int | None, name: str):
    """(bytes per state, bytes the enumeration may take: half the memory available now),
    after refusing, before any state is stored, a level that surely has more states than
    the budget or memory allows. A lower bound of its states: every open cell joined to
    the agent's through open cells, in each of the 4 directions, when the agent can move
    and turn. None when the memory available is unknown."""
    from scipy import ndimage

    cells = env.grid.grid
    per_state = BYTES_PER_STATE + BYTES_PER_CELL * len(cells)
    open_cells = np.fromiter((c is None for c in cells), dtype=bool, count=len(cells))
    open_cells = open_cells.reshape(env.grid.height, env.grid.width)
    x, y = (int(v) for v in env.agent_pos)
    open_cells[y, x] = True
    components, _ = ndimage.label(open_cells)
    moves = "forward" in actions and ("left" in actions or "right" in actions)
    at_least = 4 * int((components == components[y, x]).sum()) if moves else 1
    if max_states is not None and at_least > max_states:
        raise over_budget(
            name, max_states, f": at least {at_least}, 4 directions in each open cell"
        )
    available = available_memory()
    if available is None:
        return None
    limit = available // 2
    if min(at_least, max_states or at_least) * per_state > limit:
        raise _too_big(name, min(at_least, max_states or at_least), per_state, limit)
    return per_state, limit


def _too_big(name: str, states: int, per_state: int, limit: int) -> ResourceLimit:
    return ResourceLimit(
        f"{name}: {states} states of {size(per_state)} each (a copy of the grid per state) "
        f"need about {size(states * per_state)}, more than half the memory available "
        f"({size(limit)})"
    )


def _cell_of(cells: list, obj) -> int:
    """The grid index holding `obj` (by identity), -2 when it is gone."""
    for i, other in enumerate(cells):
        if other is obj:
            return i
    return -2


def _no_observation():
    return None


def _objects(env, world_obj, box) -> list:
    """Every WorldObj of the reset level: in the grid, carried, inside boxes (recursively)."""
    found, seen = [], set()
    stack = [o for o in env.grid.grid if o is not None] + ([env.carrying] if env.carrying else [])
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not isinstance(obj, world_obj):
            continue
        seen.add(id(obj))
        found.append(obj)
        if isinstance(obj, box) and obj.contains is not None:
            stack.append(obj.contains)
    return found


def _attribute_objects(env, world_obj) -> list:
    """WorldObjs an env attribute refers to, directly or in a list, tuple or dict."""
    found = []
    for name, value in vars(env).items():
        if name in _DYNAMIC:
            continue
        items = (
            value.values()
            if isinstance(value, dict)
            else value
            if isinstance(value, list | tuple)
            else [value]
        )
        found += [v for v in items if isinstance(v, world_obj)]
    return found


def _signature(obj, box) -> tuple:
    contents = obj.contains if isinstance(obj, box) else None
    return (obj.type, obj.color, _signature(contents, box) if contents is not None else None)


def _type_color(obj, object_to_idx, color_to_idx) -> list[int]:
    if obj is None:
        return [0, 0]
    return [object_to_idx[obj.type], color_to_idx[obj.color] + 1]


def _build(
    rows, successors, rewards, actions, doors, movable, name, object_to_idx, color_to_idx
) -> MDP:
    """Arrays from the BFS: one choice per action in running states, one self-loop in
    absorbing ones; labels vectorised over the state table."""
    table = np.asarray(rows, dtype=np.int64)
    n = len(table)
    outcome = table[:, 5]
    running = outcome == 0
    per_state = np.where(running, len(actions), 1)
    row_groups = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_state, out=row_groups[1:])
    n_choices = int(row_groups[-1])
    targets = np.empty(n_choices, dtype=np.int64)
    values = np.zeros(n_choices)
    choice_actions = np.full(n_choices, -1, dtype=np.int32)
    moving = np.flatnonzero(running)
    slots = (row_groups[moving][:, None] + np.arange(len(actions))).ravel()
    targets[slots] = successors
    values[slots] = rewards
    choice_actions[slots] = np.tile(np.arange(len(actions), dtype=np.int32), len(moving))
    still = np.flatnonzero(~running)
    targets[row_groups[still]] = still
    transitions = csr(np.arange(n_choices), targets, np.ones(n_choices), (n_choices, n))

    variables = ["x", "y", "dir", "carrying_type", "carrying_color", "outcome"]
    variables += [f"door{i}_{d.color}" for i, d in enumerate(doors)]
    variables += [f"{o.type}{i}_{o.color}_cell" for i, o in enumerate(movable)]
    n_vars = len(variables)
    stand_type, stand_color, front_type, front_color = (table[:, n_vars + i] for i in range(4))
    types = {i: t for t, i in object_to_idx.items()}
    colors = {i + 1: c for c, i in color_to_idx.items()}
    labels: dict[str, np.ndarray] = {}
    for i, outcome_name in enumerate(OUTCOMES[1:], start=1):
        labels[outcome_name] = outcome == i
    labels["terminal"] = ~running
    labels["start"] = np.zeros(n, dtype=bool)
    labels["start"][0] = True
    labels["carrying"] = table[:, 3] != 0
    for type_name in ("key", "ball", "box"):
        labels[f"carrying_{type_name}"] = table[:, 3] == object_to_idx[type_name]
    for code, color in colors.items():
        labels[f"carrying_{color}"] = table[:, 4] == code
    outcome_types = {object_to_idx["goal"], object_to_idx["lava"]}
    front_type = np.where(np.isin(front_type, list(outcome_types)), 0, front_type)
    wall = object_to_idx["wall"]
    stand_color = np.where(stand_type == wall, 0, stand_color)
    front_color = np.where((front_type == 0) | (front_type == wall), 0, front_color)
    for code, type_name in types.items():
        if type_name in ("unseen", "empty", "agent") or code in outcome_types:
            continue
        labels[type_name] = (stand_type == code) | (front_type == code)
    for code, color in colors.items():
        labels[color] = (stand_color == code) | (front_color == code)
    for t_code, type_name in types.items():
        if type_name in ("unseen", "empty", "agent", "goal", "lava"):
            continue
        for c_code, color in colors.items():
            labels[f"{type_name}_{color}"] = ((stand_type == t_code) & (stand_color == c_code)) | (
                (front_type == t_code) & (front_color == c_code)
            )
    return MDP(
        transitions=transitions,
        row_groups=row_groups,
        choice_actions=choice_actions,
        actions=tuple(actions),
        labels=labels,
        initial_states=np.array([0], dtype=np.int64),
        variables=tuple(variables),
        valuations=np.ascontiguousarray(table[:, :n_vars]),
        rewards={"env": values},
        name=name,
    )


def full_encoding(env, box) -> tuple:
    """The complete observable state of a MiniGrid env: agent, carried object (with box
    contents), the full grid encoding and every box's contents by cell."""
    grid = env.grid
    contents = tuple(
        (i, _encode(o.contains, box)) for i, o in enumerate(grid.grid) if isinstance(o, box)
    )
    x, y = env.agent_pos
    return (
        (int(x), int(y)),
        int(env.agent_dir),
        _encode(env.carrying, box),
        grid.encode().tobytes(),
        contents,
    )


def _encode(obj, box):
    if obj is None:
        return None
    inner = _encode(obj.contains, box) if isinstance(obj, box) else None
    return (*obj.encode(), inner)


def _self_check(
    env, mdp, snapshots, doors, action_ids, real_gen_obs, real_rng, source, name, box
) -> None:
    """Re-step a seeded sample of (state, action) pairs on a deep copy of the env, with its
    real observation and random number generator, and compare with the enumeration."""
    running = np.flatnonzero(~mdp.labels["terminal"])
    if not len(running):
        return
    rng = np.random.default_rng(0)
    picks = rng.integers(
        0,
        len(running) * len(action_ids),
        size=min(SELF_CHECK_SAMPLES, len(running) * len(action_ids)),
    )
    indptr, indices = mdp.transitions.indptr, mdp.transitions.indices
    env_reward = mdp.rewards["env"]
    for pick in picks:
        state = int(running[pick // len(action_ids)])
        slot = int(pick % len(action_ids))
        choice = int(mdp.row_groups[state]) + slot
        target = int(indices[indptr[choice]])
        restore(env, snapshots[state], doors)
        del env.gen_obs
        env._np_random = real_rng
        twin = copy.deepcopy(env)
        env.gen_obs = _no_observation
        env._np_random = _TripWire()
        _, reward, terminated, _, _ = twin.step(action_ids[slot])
        restore(env, snapshots[target], doors)
        expected = full_encoding(env, box)
        outcome_terminal = bool(mdp.labels["terminal"][target])
        if (
            full_encoding(twin, box) != expected
            or bool(terminated) != outcome_terminal
            or not np.isclose(float(reward), env_reward[choice])
        ):
            raise EnumerationError(
                f"{name}: self-check failed: re-stepping state "
                f"{mdp.state_description(state)} with {mdp.actions[slot]} on a deep copy "
                "differs from the enumeration"
            )
