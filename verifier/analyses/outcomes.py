"""Where a policy's runs end, from every initial state: the first thing the taxonomy reads
(README, "Why a policy fails").

A run of the policy's induced Markov chain ends, with probability 1, in one of the chain's
closed classes (bottom strongly connected components): an **absorbing** state of the model
(an exit, lava, a terminal object, a goal, a fail state), or a **loop** the policy never
leaves (it pushes into a wall, spins in place, walks in circles). Each end gets a name:

    absorbing   by its labels: the most specific label that holds only on absorbing states
                (fewest states; among equals, a label φ names, then one that is not a
                generic outcome label `goal`/`lava`/`fail`, then the longest name:
                `exit` in `!"lava" U "exit"`, `hole` before `fail`, `object_red` before
                `red`), else its labels, else where it is
    loop        by where it is: `loop at row=1, col=2` (one cell), `loop over 3 cells
                around row=1, col=2`, with the model's position variables (row/col, x/y)

and a role with respect to φ's reach-avoid form: `target` (every state of it is φ's
target), `hazard` (every state is one φ forbids) or `other`. Ends with one name are one
outcome: their probabilities add up, and the expected steps are averaged by probability.
The probabilities and expected steps are exact up to float rounding (one LU factorization
of the chain's transient part, refined in extended precision: verifier/engine/reach.py,
`Absorption`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verifier.engine.query import Absorption, Model
from verifier.mdp import MDP
from verifier.spec.goals import GENERIC_LABELS, place_name, position_variables

TARGET, HAZARD, OTHER = "target", "hazard", "other"
# The outcome labels every Gymnasium model has; an environment's own label says more.
OUTCOME_LABELS = frozenset({"goal", "lava", "fail"})
ABSORBING, LOOP = "absorbing", "loop"


@dataclass(frozen=True, slots=True, eq=False)
class End:
    """One outcome: closed classes of the chain with one name.

    classes   int64 [k]: the closed classes (Absorption.component ids) it gathers
    states    bool [n_states]: their states
    labels    the labels holding on every one of its states
    """

    where: str
    kind: str
    role: str
    classes: np.ndarray
    states: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Outcomes:
    """Where the runs end from each initial state.

    probability  float64 [n_initial, n_ends]: the probability of ending in each end
    steps        float64 [n_initial, n_ends]: the expected number of steps until the run
                 enters it, on the runs that do (nan where the probability is 0)
    """

    initial: np.ndarray
    ends: tuple[End, ...]
    probability: np.ndarray
    steps: np.ndarray
    absorption: Absorption

    def to_list(self, mdp: MDP) -> list[dict]:
        """The report's `outcomes`: one entry per initial state, its ends most likely first."""
        found = []
        for row, state in enumerate(self.initial.tolist()):
            order = np.argsort(-self.probability[row], kind="stable")
            ends = [
                {
                    "where": self.ends[i].where,
                    "kind": self.ends[i].kind,
                    "role": self.ends[i].role,
                    "probability": min(1.0, float(self.probability[row, i])),
                    "expected_steps": _number(self.steps[row, i]),
                }
                for i in order.tolist()
                if self.probability[row, i] > 0
            ]
            found.append({"initial": mdp.valuation(state), "ends": ends})
        return found


def outcomes(
    chain: Model,
    mdp: MDP,
    target: np.ndarray | None = None,
    forbidden: np.ndarray | None = None,
    named: set[str] | frozenset[str] = frozenset(),
) -> Outcomes:
    """The ends of `chain` (a policy's induced chain of `mdp`) reached from the initial
    states, named (`named`: the labels φ names), with their roles for φ's `target` and
    `forbidden` states (bool [n_states], None where φ has no such sets)."""
    absorption = chain.ends
    initial = mdp.initial_states
    probability, steps = absorption.from_states(initial)
    reached = np.flatnonzero((probability > 0).any(axis=0))
    absorbing = _absorbing(mdp)
    positions = position_variables(mdp)
    names: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    for c in reached.tolist():
        members = np.flatnonzero(absorption.component == c)
        if len(members) == 1 and absorbing[members[0]]:
            name, kind = _absorbing_name(mdp, members[0], absorbing, set(named)), ABSORBING
        else:
            name, kind = _loop_name(mdp, members, positions), LOOP
        names.setdefault(name, []).append(c)
        kinds[name] = kind
    ends, columns = [], []
    for name, classes in names.items():
        ids = np.array(classes, dtype=np.int64)
        states = np.isin(absorption.component, ids)
        ends.append(
            End(
                name,
                kinds[name],
                _role(states, target, forbidden),
                ids,
                states,
                _labels(mdp, states),
            )
        )
        columns.append(ids)
    grouped_p = np.stack([probability[:, ids].sum(axis=1) for ids in columns], axis=1)
    weighted = np.stack(
        [np.nansum(probability[:, ids] * steps[:, ids], axis=1) for ids in columns], axis=1
    )
    grouped_steps = np.divide(
        weighted, grouped_p, out=np.full_like(grouped_p, np.nan), where=grouped_p > 0
    )
    return Outcomes(initial, tuple(ends), grouped_p, grouped_steps, absorption)


def _absorbing(mdp: MDP) -> np.ndarray:
    """bool [n_states]: states whose every choice stays in place with probability 1."""
    matrix = mdp.transitions
    states = mdp.choice_states()
    staying = np.zeros(mdp.n_choices, dtype=bool)
    single = np.diff(matrix.indptr) == 1
    rows = np.flatnonzero(single)
    staying[rows] = matrix.indices[matrix.indptr[rows]] == states[rows]
    return np.logical_and.reduceat(staying, mdp.row_groups[:-1])


def _absorbing_name(mdp: MDP, state: int, absorbing: np.ndarray, named: set[str]) -> str:
    """The most specific label holding only on absorbing states (module docstring), else
    the state's labels, else where it is."""
    held = [
        (int(mask.sum()), name not in named, name in OUTCOME_LABELS, -len(name), name)
        for name, mask in mdp.labels.items()
        if mask[state] and name not in GENERIC_LABELS and not name.startswith("__")
    ]
    outcome_labels = [h for h in held if not (mdp.labels[h[-1]] & ~absorbing).any()]
    if outcome_labels:
        return min(outcome_labels)[-1]
    if held:
        return ", ".join(sorted(h[-1] for h in held))
    return f"absorbing at {mdp.state_description(state)}"


def _loop_name(mdp: MDP, members: np.ndarray, positions: tuple[str, ...]) -> str:
    """`loop at <cell>` for a loop in one cell, `loop over N cells around <cell>` else."""
    cells = _cell_count(mdp, members, positions)
    first = place_name(mdp, int(members[0]), positions)
    if cells == 1:
        return f"loop at {first}"
    return f"loop over {cells} cells around {first}"


def _cell_count(mdp: MDP, members: np.ndarray, positions: tuple[str, ...]) -> int:
    """How many distinct cells (valuations of `positions`) the states `members` are in: each
    cell encoded as one integer, mixed radix over the columns' ranges (a loop can span a
    million states)."""
    columns = np.array([mdp.variables.index(v) for v in positions], dtype=np.intp)
    values = mdp.valuations[np.ix_(members, columns)].astype(np.int64)
    key = np.zeros(len(members), dtype=np.int64)
    for column in values.T:
        column = column - column.min()
        key = key * (int(column.max()) + 1) + column
    top = int(key.max(initial=0)) + 1
    if top > 4 * len(key) + 1024:  # sparse cells: sort
        return int(np.unique(key).size)
    seen = np.zeros(top, dtype=bool)
    seen[key] = True
    return int(seen.sum())


def _role(states: np.ndarray, target, forbidden) -> str:
    if target is not None and not (states & ~target).any():
        return TARGET
    if forbidden is not None and not (states & ~forbidden).any():
        return HAZARD
    return OTHER


def _labels(mdp: MDP, states: np.ndarray) -> tuple[str, ...]:
    return tuple(
        sorted(
            name
            for name, mask in mdp.labels.items()
            if not name.startswith("__") and not (states & ~mask).any()
        )
    )


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
