"""A Gymnasium toy-text environment (FrozenLake, CliffWalking, Taxi) -> its exact MDP, from the
environment's own transition table `P[s][a] = [(p, s', r, terminated), ...]`.

Pitfalls of `P` handled here: duplicate entries (FrozenLake lists 0 -> 0 twice) are summed;
termination is a flag of the transition, not of the state (CliffWalking's goal row is an
ordinary row), so every terminated transition enters an absorbing copy of s'; Taxi's
`fickle_passenger` is hidden state that `P` does not describe, so it is refused. Initial
states are the support of `initial_state_distrib` (every one must satisfy a property).
"""

from __future__ import annotations

import copy

import numpy as np

from verifier.budget import over_budget, require_memory
from verifier.errors import InputError
from verifier.graph import reachable
from verifier.inputs.gym_spec import GymSpec
from verifier.mdp import MDP, csr

ACTION_NAMES = {
    "FrozenLakeEnv": ("left", "down", "right", "up"),
    "CliffWalkingEnv": ("up", "right", "down", "left"),
    "TaxiEnv": ("south", "north", "east", "west", "pickup", "dropoff"),
}
CELL_LABELS = {"S": "start_cell", "F": "frozen", "H": "hole", "G": "goal_cell"}
SELF_CHECK_SAMPLES = 200
FROZEN_LAKE_MAPS = ("4x4", "8x8")
# gymnasium's transition table (about 1.9 KB a cell when slippery) and the lists read from it
BYTES_PER_CELL = 4000


def check_toytext_kwargs(spec: GymSpec, max_states: int | None) -> None:
    """FrozenLake's map, checked before gymnasium builds its transition table: `map_name`
    one of gymnasium's, `desc` rows of equal length over S, F, H, G with a start cell,
    `success_rate` a probability, and the map's states (each cell and its absorbing copy)
    within the state budget and its table within the memory available."""
    if not spec.id.rpartition(":")[2].startswith("FrozenLake"):
        return
    kwargs = spec.kwargs
    where = "gymnasium.kwargs"
    rate = kwargs.get("success_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise InputError(
            spec.source, f"success_rate must be a probability in [0, 1], got {rate!r}", where
        )
    desc = kwargs.get("desc")
    if desc is None:
        name = kwargs.get("map_name", "4x4")
        if name not in FROZEN_LAKE_MAPS:
            raise InputError(
                spec.source,
                f"map_name {repr(name)[:40]} is not one of gymnasium's maps "
                f'({", ".join(FROZEN_LAKE_MAPS)}); give your own as desc = ["SFFF", ...]',
                where,
            )
        return
    rows = desc if isinstance(desc, list) else None
    if (
        not rows
        or not all(isinstance(row, str) and row for row in rows)
        or len({len(row) for row in rows}) != 1
        or not set("".join(rows)) <= set(CELL_LABELS)
    ):
        raise InputError(
            spec.source,
            "desc must be rows of equal length over S (start), F (frozen), H (hole) and "
            'G (goal), e.g. ["SFF", "FHF", "FFG"]',
            where,
        )
    if not any("S" in row for row in rows):
        raise InputError(spec.source, "desc has no start cell S", where)
    cells = len(rows) * len(rows[0])
    if max_states is not None and 2 * cells > max_states:
        raise over_budget(
            f"{spec.source}: the {len(rows)}x{len(rows[0])} map",
            max_states,
            f": up to {2 * cells}, each cell and its absorbing copy",
        )
    require_memory(cells * BYTES_PER_CELL, f"the {len(rows)}x{len(rows[0])} FrozenLake map")


def toytext_mdp(
    env,
    source: str,
    actions: tuple[str, ...] | None = None,
    name: str = "toytext",
    max_states: int | None = None,
) -> MDP:
    """The reachable MDP of `env.P` (env is the unwrapped, reset environment).

    States 0..n-1 are the env's states, n..2n-1 their absorbing copies entered by a
    terminated transition (labelled `goal` when the reward is positive or the cell is the
    map's goal, else `fail`); unreachable states are dropped. Reward `env` is
    R(s, a) = sum of p * r over the entries of P[s][a].
    """
    if getattr(env, "fickle_passenger", False):
        raise InputError(
            name,
            "fickle_passenger re-draws the destination from hidden state that P does "
            "not describe; refused",
            "gymnasium.kwargs",
        )
    n = int(env.observation_space.n)
    if max_states is not None and n > max_states:
        raise over_budget(name, max_states, f": {n} (the observation space)")
    _check_initial(env, source)
    names = ACTION_NAMES.get(type(env).__name__, tuple(f"a{i}" for i in range(env.action_space.n)))
    chosen = tuple(actions) if actions else names
    unknown = [a for a in chosen if a not in names]
    if unknown:
        raise InputError(
            source, f"unknown action {unknown[0]!r}; known: {', '.join(names)}", "gymnasium.actions"
        )
    action_ids = [names.index(a) for a in chosen]
    goal_cells = _goal_cells(env, n)

    rows, cols, probs, rewards = [], [], [], []
    positive = np.zeros(2 * n, dtype=bool)
    for s in range(n):
        for k, a in enumerate(action_ids):
            choice = s * len(action_ids) + k
            for p, target, r, terminated in env.P[s][a]:
                target = int(target) + (n if terminated else 0)
                rows.append(choice)
                cols.append(target)
                probs.append(float(p))
                rewards.append(float(p) * float(r))
                if terminated and r > 0 and p > 0:
                    positive[target] = True
    n_running = n * len(action_ids)
    _check_table(rows, probs, n_running, source)
    absorbing = np.arange(n, 2 * n)
    rows += list(range(n_running, n_running + n))
    cols += absorbing.tolist()
    probs += [1.0] * n
    matrix = csr(np.array(rows), np.array(cols), np.array(probs), (n_running + n, 2 * n))
    reward = np.zeros(n_running + n)
    np.add.at(reward, np.array(rows[: len(rewards)]), np.array(rewards))

    initial = np.flatnonzero(np.asarray(env.initial_state_distrib) > 0)
    choice_state = np.concatenate([np.repeat(np.arange(n), len(action_ids)), absorbing])
    coo = matrix.tocoo()
    sources = np.zeros(2 * n, dtype=bool)
    sources[initial] = True
    keep = reachable(choice_state[coo.row], coo.col, sources)
    renumber = np.cumsum(keep) - 1
    keep_choice = keep[choice_state]
    sub = matrix[np.flatnonzero(keep_choice)][:, np.flatnonzero(keep)]
    per_state = np.where(np.arange(2 * n) < n, len(action_ids), 1)[keep]
    row_groups = np.zeros(len(per_state) + 1, dtype=np.int64)
    np.cumsum(per_state, out=row_groups[1:])
    choice_actions = np.concatenate(
        [np.tile(np.arange(len(action_ids), dtype=np.int32), n), np.full(n, -1, dtype=np.int32)]
    )[keep_choice]

    state_id = np.concatenate([np.arange(n), np.arange(n)])[keep]
    absorbed = (np.arange(2 * n) >= n)[keep]
    labels = {
        "goal": (absorbed & (positive[keep] | goal_cells[state_id])),
        "lava": np.zeros(len(state_id), dtype=bool),
        "terminal": absorbed.copy(),
        "start": ~absorbed & np.isin(state_id, initial),
    }
    labels["fail"] = absorbed & ~labels["goal"]
    for label, mask in _cell_labels(env, n).items():
        labels[label] = mask[state_id]
    _self_check(env, matrix, reward, action_ids, n, source, name)
    return MDP(
        transitions=sub.tocsr(),
        row_groups=row_groups,
        choice_actions=choice_actions,
        actions=chosen,
        labels=labels,
        initial_states=np.sort(renumber[initial]).astype(np.int64),
        variables=("state", "absorbed"),
        valuations=np.stack([state_id, absorbed.astype(np.int64)], axis=1).astype(np.int64),
        rewards={"env": reward[keep_choice]},
        name=name,
    )


def _check_initial(env, source: str) -> None:
    """InputError unless the initial state distribution is one (FrozenLake without a start
    cell divides by 0)."""
    initial = np.asarray(env.initial_state_distrib, dtype=np.float64)
    if not np.isfinite(initial).all() or (initial < 0).any() or not np.isclose(initial.sum(), 1):
        raise InputError(
            source,
            "the initial state distribution is not a distribution (no start cell?)",
            "gymnasium.kwargs",
        )


def _check_table(rows: list[int], probs: list[float], n_choices: int, source: str) -> None:
    """InputError unless every entry of P is a probability and every P[s][a] sums to 1
    (FrozenLake's success_rate outside [0, 1] gives negative ones)."""
    values = np.asarray(probs, dtype=np.float64)
    sums = np.bincount(np.asarray(rows, dtype=np.int64), values, minlength=n_choices)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any() or (np.abs(sums - 1.0) > 1e-9).any():
        shown = values[bad][0] if bad.any() else sums[np.abs(sums - 1.0) > 1e-9][0]
        raise InputError(
            source,
            f"the transition table P is not a set of distributions ({shown:g} found); check "
            "the kwargs, such as success_rate",
            "gymnasium.kwargs",
        )


def observation_states(mdp: MDP) -> np.ndarray:
    """int64 [n_states]: the env's own state index of every state (what the env returns)."""
    return mdp.valuations[:, 0]


def _goal_cells(env, n: int) -> np.ndarray:
    goal = np.zeros(n, dtype=bool)
    desc = getattr(env, "desc", None)
    if desc is not None and type(env).__name__ == "FrozenLakeEnv":
        goal[:] = np.asarray(desc).ravel() == b"G"
    elif type(env).__name__ == "CliffWalkingEnv":
        goal[n - 1] = True
    return goal


def _cell_labels(env, n: int) -> dict:
    """FrozenLake map letters as labels (start_cell, frozen, hole, goal_cell), CliffWalking's
    cliff cells as `cliff`."""
    name = type(env).__name__
    if name == "FrozenLakeEnv":
        letters = np.asarray(env.desc).ravel().astype(str)
        return {label: letters == letter for letter, label in CELL_LABELS.items()}
    if name == "CliffWalkingEnv":
        return {"cliff": np.asarray(env._cliff).ravel()}
    return {}


def _self_check(env, matrix, reward, action_ids, n, source, name) -> None:
    """Step a copy of the env (shallow: `step` rebinds `s` and reads `P`) from a seeded
    sample of (state, action) pairs and check that what `step` does is an entry of P with
    positive probability."""
    rng = np.random.default_rng(0)
    for pick in rng.integers(0, n * len(action_ids), size=SELF_CHECK_SAMPLES):
        s, k = divmod(int(pick), len(action_ids))
        twin = copy.copy(env)
        twin.s = s
        twin.np_random = np.random.default_rng(int(pick))
        target, r, terminated, _, _ = twin.step(action_ids[k])
        listed = {(int(t), bool(d), float(rr)) for p, t, rr, d in env.P[s][action_ids[k]] if p > 0}
        if (int(target), bool(terminated), float(r)) not in listed:
            raise InputError(
                name,
                f"step from state {s} with action {k} does what P does not list "
                "(hidden state); refused",
            )
