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
    ends       where a chain's runs end (its closed classes): probabilities and expected
               steps, one factorization (reach.py, `Absorption`)
    path       any other path formula (G, X, LTL, nested operators): Storm's automaton
               product, sound engine
    check      a property at the initial states (`verify check`): an unbounded until by the
               until route, every other property by Storm's sound engine
    optimum    V*, Q* and the optimal actions of a reward (solve.py)

Derived models (the MDP restricted to some choices, a policy's induced chain) are models
of their own, converted when a question needs Storm, and only then.

The analyses import this module, never storm.py: Storm's objects stay behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from verifier import storm
from verifier.engine import reach
from verifier.engine.optimum import Solution, solve
from verifier.engine.reach import Absorption, Probabilities
from verifier.mdp import MDP, restrict
from verifier.storm import (
    DISCOUNTED,
    GLOBALLY,
    PATH,
    REACH,
    SUPPORTED,
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
    "Absorption",
    "GLOBALLY",
    "PATH",
    "REACH",
    "SUPPORTED",
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

    `mdp` is ours; `storm` is its Storm model, converted on first use. A model Storm built
    (from PRISM) is given as `storm_model`, with `mdp` (its states in Storm's order) or
    without, then read from Storm on first use.
    """

    __slots__ = ("_mdp", "_storm", "_ends")

    def __init__(self, mdp: MDP | None = None, storm_model: object | None = None):
        if mdp is None and storm_model is None:
            raise ValueError("Model: give an MDP or a Storm model")
        self._mdp = mdp
        self._storm = storm_model
        self._ends: Absorption | None = None

    @property
    def mdp(self) -> MDP:
        """Our MDP of the model, read from Storm once where Storm built it."""
        if self._mdp is None:
            self._mdp = storm.from_storm(self._storm)
        return self._mdp

    @property
    def storm(self):
        """The Storm model of `mdp`, converted once."""
        if self._storm is None:
            self._storm = storm.to_storm(self._mdp)
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

    @property
    def ends(self) -> Absorption:
        """Where the runs of this chain end (its closed classes), with the probability of
        ending in each and the expected steps to get there: one factorization, kept."""
        if self.mdp.n_choices != self.mdp.n_states:
            raise ValueError("Model.ends: a chain has one choice per state")
        if self._ends is None:
            self._ends = Absorption(self.mdp.transitions)
        return self._ends

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

    def check(
        self, prop: Property, source: str | None = None, best: bool = False
    ) -> PropertyResult:
        """`prop` at the initial states. An unbounded until `P [ left U target ]` goes the
        until route (sound bounds from direct solves, also on slowly mixing chains, where
        Storm's sound engine needs as many sweeps as the chain needs steps); every other
        property goes to Storm's sound engine. A bound on an MDP is decided by the optimum
        against it; with `best`, the optimum in its favour is computed instead (`holds`
        None). A property Storm refuses is an InputError naming `source` (default: where it
        was written)."""
        if prop.operator != "P" or prop.form != UNTIL or prop.steps is not None:
            return storm.check(self.storm, prop, source, best)
        mdp = self.mdp
        everywhere = np.ones(mdp.n_states, dtype=bool)
        left = everywhere if prop.left is None else self.states(prop.left)
        if prop.right is None:
            raise ValueError(f"{prop.text}: an until property without its target")
        target = self.states(prop.right)
        direction = prop.direction
        if mdp.kind == "dtmc":
            direction = None
        elif direction is None:  # a bound holds when it holds for every scheduler
            direction = "min" if (prop.comparison in (">=", ">")) != best else "max"
        found = self.until(left, target, None if direction is None else direction == "max")
        initial = mdp.initial_states
        values = found.values[initial]
        holds = None
        if prop.comparison is not None and not best:
            if prop.threshold is None:
                raise ValueError(f"{prop.text}: a bound without its value")
            compare = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal}
            holds = bool(compare.get(prop.comparison, np.less)(values, prop.threshold).all())
        return PropertyResult(
            prop.text,
            values,
            found.lower[initial],
            found.upper[initial],
            holds,
            found.method,
            direction,
        )

    def optimum(self, rewards: np.ndarray, discount: float = 1.0) -> Solution:
        """V*, Q* and the optimal actions of `rewards` (float64 [n_choices], any signs)."""
        return solve(self.mdp, rewards, discount, lambda: self.storm)
