"""The query layer: one model under analysis, and every question the analyses ask of it.

A `Model` holds our MDP and, made on first use and then kept, its Storm model. The state
sets a question needs become labels of that Storm model in memory, so a model goes to Storm
at most once however many questions are asked of it. Each question takes the fastest sound
route (README, "How results are obtained"):

    states     where a state formula holds: Storm's state-formula check
    until      P [ left U(<=k) target ]: a chain by graph search and a direct sparse solve
               (reach.py); an MDP's optimum by Storm's scheduler, certified and improved by
               direct solves; step bounds by Storm's sound engine
    reach      P(F g) for many targets g at once, each distinct state set asked once
    path       any other path formula (G, X, LTL, nested operators): Storm's automaton
               product, sound engine
    check      a property at the initial states, as Storm answers it (`verify check`)
    optimum    V*, Q* and the optimal actions of a reward (solve.py)

Derived models (the MDP restricted to some choices, a policy's induced chain) are models
of their own, converted when a question needs Storm, and only then.

The analyses import this module, never storm.py: Storm's objects stay behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verifier import reach, storm
from verifier.mdp import MDP, restrict
from verifier.reach import Probabilities
from verifier.solve import Solution, solve
from verifier.storm import (
    DISCOUNTED,
    GLOBALLY,
    PATH,
    REACH,
    TOTAL,
    UNTIL,
    PathQuery,
    Property,
    PropertyResult,
    StateFormula,
    parse_properties,
)

__all__ = [
    "DISCOUNTED",
    "GLOBALLY",
    "PATH",
    "REACH",
    "TOTAL",
    "UNTIL",
    "Model",
    "PathQuery",
    "Probabilities",
    "Property",
    "PropertyResult",
    "Solution",
    "StateFormula",
    "parse_properties",
]


class Model:
    """One model and the questions asked of it (module docstring).

    `mdp` is ours; `storm` is its Storm model, converted on first use (or given: a PRISM
    model Storm built, whose states are `mdp`'s in the same order).
    """

    __slots__ = ("mdp", "_storm")

    def __init__(self, mdp: MDP, storm_model: object | None = None):
        self.mdp = mdp
        self._storm = storm_model

    @property
    def storm(self):
        """The Storm model of `mdp`, converted once."""
        if self._storm is None:
            self._storm = storm.to_storm(self.mdp)
        return self._storm

    def restrict(self, keep: np.ndarray) -> Model:
        """The model with only the choices in `keep` (bool [n_choices]): a model of its own."""
        return Model(restrict(self.mdp, keep))

    def states(self, formula: StateFormula | Property) -> np.ndarray:
        """bool [n_states]: where a state formula (or a bounded property) holds."""
        return storm.satisfying_states(self.storm, formula)

    def until(
        self,
        left: np.ndarray,
        target: np.ndarray,
        maximize: bool | None,
        steps: int | None = None,
    ) -> Probabilities:
        """P [ left U(<=steps) target ] on every state, with sound bounds and a scheduler:
        of a chain (`maximize` None), or its maximum or minimum over schedulers."""
        return reach.probabilities(self.mdp, left, target, maximize, steps, lambda: self.storm)

    def reach(self, targets: Sequence[np.ndarray], maximize: bool | None) -> list[np.ndarray]:
        """P(F g) on every state for each target g (bool [n_states]) of a chain (`maximize`
        None), or its maximum or minimum: each distinct state set is asked once."""
        everywhere = np.ones(self.mdp.n_states, dtype=bool)
        found: dict[bytes, np.ndarray] = {}
        values = []
        for target in targets:
            key = np.packbits(target).tobytes()
            if key not in found:
                found[key] = self.until(everywhere, target, maximize).values
            values.append(found[key])
        return values

    def path_query(self, prop: Property) -> PathQuery:
        """`prop`'s path formula made ready for any model with these states: its nested
        operators evaluated on this model."""
        return storm.path_query(self.storm, prop)

    def path(
        self,
        query: PathQuery,
        direction: str | None,
        idle: np.ndarray | None = None,
        negate: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(direction)=? of a path formula on every state: (values, lower, upper). With
        `negate`, of its negation; with `idle` (bool [n_states]), of the runs that satisfy
        it and end up idling there (`F G idle`)."""
        return storm.path_values(self.storm, query, direction, idle, negate)

    def check(self, prop: Property, source: str | None = None) -> PropertyResult:
        """`prop` at the initial states, as Storm answers it."""
        return storm.check(self.storm, prop, source)

    def optimum(self, rewards: np.ndarray, discount: float = 1.0) -> Solution:
        """V*, Q* and the optimal actions of `rewards` (float64 [n_choices], any signs)."""
        return solve(self.mdp, rewards, discount, lambda: self.storm)
