"""Candidate goals: what a learner could pursue instead of φ (README, "Why a policy fails").

A goal is a set of states named for people: a **label** (`red`, `object_red`, `fail`), or a
**place**: one cell of the model, named by its position variables (`row=1, col=7` in a
maze, `x=6, y=1` in MiniGrid; every variable where the model has no position variables).
Labels that hold on the same states are one goal with several names (`red = object_red`),
most general first (the label holding on most states, then the shortest name).

Read by the policy taxonomy (which goal a failing policy pursues) and by the audit (which
proxies training cannot tell from φ).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from verifier.mdp import MDP

# Labels that describe the bookkeeping of a model, never something to aim for.
GENERIC_LABELS = frozenset({"floor", "floor_cell", "terminal", "start", "init", "deadlock"})
# The position variables of the model kinds, in the order they are shown.
POSITIONS = (("row", "col"), ("x", "y"), ("r", "c"))


def position_variables(mdp: MDP) -> tuple[str, ...]:
    """The model's position variables (a maze's row and col, MiniGrid's x and y), or every
    variable where it has none of these."""
    for names in POSITIONS:
        if set(names) <= set(mdp.variables):
            return names
    return tuple(mdp.variables)


def place_name(mdp: MDP, state: int, positions: tuple[str, ...] | None = None) -> str:
    """`row=1, col=7`: where `state` is."""
    valuation = mdp.valuation(state)
    return ", ".join(f"{v}={valuation[v]}" for v in positions or position_variables(mdp))


def place_states(mdp: MDP, state: int, positions: tuple[str, ...] | None = None) -> np.ndarray:
    """bool [n_states]: the states at the place of `state` (whatever else they hold)."""
    columns = [mdp.variables.index(v) for v in positions or position_variables(mdp)]
    return (mdp.valuations[:, columns] == mdp.valuations[state, columns]).all(axis=1)


def labels_in(text: str) -> set[str]:
    """The labels a property names (`"lava"`), its reward structure's name left out."""
    return set(re.findall(r'"([^"]*)"', re.sub(r"\{[^}]*\}", "", text)))


def goal_labels(mdp: MDP, states: np.ndarray, excluded: Iterable[str] = ()) -> list[str]:
    """The labels holding on every one of `states` (bool [n_states]) that could be aimed
    for: not generic, not `excluded`, not holding in an initial state; most general first."""
    excluded = set(excluded)
    names = [
        name
        for name, mask in mdp.labels.items()
        if name not in GENERIC_LABELS
        and name not in excluded
        and not name.startswith("__")
        and not (states & ~mask).any()
        and not mask[mdp.initial_states].any()
    ]
    return sorted(names, key=lambda name: _generality(mdp, name))


def synonyms(mdp: MDP, names: Iterable[str]) -> list[list[str]]:
    """`names` grouped by the states they hold on, each group most general first."""
    groups: dict[bytes, list[str]] = {}
    for name in names:
        groups.setdefault(np.packbits(mdp.labels[name]).tobytes(), []).append(name)
    return [sorted(group, key=lambda name: _generality(mdp, name)) for group in groups.values()]


def candidate_goals(mdp: MDP) -> list[str]:
    """Every label a learner could aim for (the audit's proxies): labels that hold on some
    state but in no initial state, other than the generic ones, most general first."""
    nowhere = np.zeros(mdp.n_states, dtype=bool)  # every label holds on all of no states
    return [name for name in goal_labels(mdp, nowhere) if mdp.labels[name].any()]


def _generality(mdp: MDP, name: str) -> tuple[int, int, str]:
    return -int(mdp.labels[name].sum()), len(name), name
