"""The explicit finite MDP: Storm's sparse layout, held in numpy and scipy.

Choices are the rows of a CSR matrix over states; the choices of state s are the rows
row_groups[s] .. row_groups[s+1]-1 (Storm's `nondeterministic_choice_indices`). Converting to
Storm, to scipy.sparse and to a policy's induced chain is then a view, not a rebuild. A DTMC is
an MDP with one choice per state and `kind == "dtmc"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, slots=True, eq=False)
class MDP:
    """A finite MDP (or DTMC) with labels, valuations and state-action rewards.

    transitions     csr_matrix float64 [n_choices, n_states]: P(s' | choice)
    row_groups      int64 [n_states + 1]: first choice of each state, then n_choices
    choice_actions  int32 [n_choices]: index into `actions`, -1 for an unlabelled choice
    actions         action names
    labels          name -> bool [n_states]
    initial_states  int64 [k], sorted
    variables       names of the state variables, in declaration order
    valuations      int64 [n_states, len(variables)]
    rewards         name -> float64 [n_choices]: expected reward of taking the choice
                    (state rewards folded in: Storm's total/reachability semantics)
    """

    transitions: sp.csr_matrix
    row_groups: np.ndarray
    choice_actions: np.ndarray
    actions: tuple[str, ...]
    labels: Mapping[str, np.ndarray]
    initial_states: np.ndarray
    variables: tuple[str, ...] = ()
    valuations: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    rewards: Mapping[str, np.ndarray] = field(default_factory=dict)
    kind: str = "mdp"
    name: str = "model"

    def __post_init__(self) -> None:
        arrays = [self.row_groups, self.choice_actions, self.initial_states, self.valuations]
        arrays += [*self.labels.values(), *self.rewards.values()]
        for array in arrays:
            array.flags.writeable = False

    @property
    def n_states(self) -> int:
        return len(self.row_groups) - 1

    @property
    def n_choices(self) -> int:
        return int(self.row_groups[-1])

    @property
    def n_transitions(self) -> int:
        return int(self.transitions.nnz)

    def choice_states(self) -> np.ndarray:
        """int64 [n_choices]: the state each choice belongs to."""
        return np.repeat(np.arange(self.n_states, dtype=np.int64), np.diff(self.row_groups))

    def label(self, name: str) -> np.ndarray:
        """bool [n_states] for `name`; all False when the model has no such label."""
        found = self.labels.get(name)
        return np.zeros(self.n_states, dtype=bool) if found is None else found

    def valuation(self, state: int) -> dict[str, int]:
        """The state's variables and their values."""
        values = self.valuations[state] if self.variables else ()
        return dict(zip(self.variables, map(int, values), strict=True))

    def state_description(self, state: int) -> str:
        """The state's valuation as `var=value` pairs, for people."""
        return ", ".join(f"{v}={x}" for v, x in self.valuation(state).items())


def csr(rows: np.ndarray, cols: np.ndarray, probs: np.ndarray, shape: tuple[int, int]):
    """CSR matrix from (row, col, value) triples: duplicates summed, zeros dropped, sorted."""
    matrix = sp.csr_matrix((probs, (rows, cols)), shape=shape, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def restrict(mdp: MDP, keep: np.ndarray) -> MDP:
    """The sub-MDP with only the choices in `keep` (bool [n_choices]); every state keeps at
    least one choice. States and their numbering are unchanged."""
    counts = np.add.reduceat(keep.astype(np.int64), mdp.row_groups[:-1])
    if (counts == 0).any():
        raise ValueError("restrict: every state must keep at least one choice")
    row_groups = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return replace(
        mdp,
        transitions=mdp.transitions[np.flatnonzero(keep)],
        row_groups=row_groups,
        choice_actions=mdp.choice_actions[keep],
        rewards={name: values[keep] for name, values in mdp.rewards.items()},
        kind="mdp",
    )


def with_labels(mdp: MDP, labels: Mapping[str, np.ndarray]) -> MDP:
    """The same MDP with extra (or replaced) state labels."""
    return replace(mdp, labels={**mdp.labels, **labels})
