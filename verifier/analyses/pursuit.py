"""Which goal a failing policy pursues, if any (README, "Why a policy fails").

Reaching a label at some moment of a run is not a goal; where the runs end is. A candidate
goal g is an end of the policy's runs that is neither φ's target nor a state φ forbids: an
absorbing outcome, named by its labels (each label holding on it is a candidate, labels on
the same states being one goal), or a loop within one cell, named by the labels of that
cell (those holding on every state there: an object, not a wall the agent happens to face)
and by its place (all the states at that cell). Labels named in φ, generic labels, and
labels and places holding in an initial state are never candidates (being where one starts
is not aiming).

"Ends in g" is ending in a closed class of the chain that lies inside g; its best
probability over all policies is Pmax(F M), M the states of the model's end components
inside g (where some policy can stay in g forever). With c the competence (default 0.9),
g is **pursued** when, at every initial state s0:

1. competently:  P_π(ends in g) >= c * best, best > 0;
2. better than a device:  P_π - null >= c * (best - null), and the null policy leaves a
   real gap: best - null >= (1 - c) * best, null being the uniformly random policy's
   probability of ending in g (a device that acts at random); labels that every policy
   ends in, or that chance ends in as reliably, explain nothing;
3. from (nearly) every state that can reach it: among the states from which g can be
   reached (best > 0), from at least c of them P_π(ends in g) >= c * best there. This is
   the verifier's exhaustive view: a goal-directed policy heads for g from wherever it
   stands; a device (always push up, always turn left) ends where it happens to stop, a
   different cell from each start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verifier.analyses.outcomes import ABSORBING, LOOP, OTHER, Outcomes
from verifier.engine.query import Absorption, Model
from verifier.graph import end_components
from verifier.mdp import MDP
from verifier.policy.decide import Decisions, induced_chain
from verifier.spec.goals import goal_labels, place_name, place_states, synonyms

SLACK = 1e-9  # float rounding allowed in the comparisons above
LABEL, PLACE = "label", "place"


@dataclass(frozen=True, slots=True)
class Goal:
    """A candidate goal and the evidence for or against its pursuit, at the worst initial
    state (the one where the policy falls shortest of the best).

    probability  P_π(ends in g)
    best         its greatest probability over all policies
    null         the uniformly random policy's
    coverage     the fraction of the states that can reach g from which the policy ends in
                 g with at least c of the best probability there
    """

    names: tuple[str, ...]
    kind: str
    probability: float
    best: float
    null: float
    coverage: float
    pursued: bool
    why_not: str | None

    @property
    def name(self) -> str:
        return " = ".join(self.names)

    def to_dict(self) -> dict:
        return {
            "goal": self.name,
            "names": list(self.names),
            "kind": self.kind,
            "probability": self.probability,
            "best": self.best,
            "null": self.null,
            "coverage": self.coverage,
            "pursued": self.pursued,
            "why_not": self.why_not,
        }


def goals(
    model: Model,
    chain: Model,
    found: Outcomes,
    competence: float,
    excluded: set[str],
    target: np.ndarray | None,
    forbidden: np.ndarray | None,
) -> list[Goal]:
    """Every candidate goal among the ends the policy reaches from every initial state,
    judged by the rules above; pursued ones first (the most reliably pursued first)."""
    mdp = model.mdp
    candidates = _candidates(mdp, found, excluded, target, forbidden)
    if not candidates:
        return []
    null_ends = Model(induced_chain(mdp, _uniform(mdp))).ends
    null_from = null_ends.from_states(mdp.initial_states)[0]
    judged = [
        _judge(model, chain.ends, null_ends, null_from, names, kind, states, competence)
        for names, kind, states in candidates
    ]
    return sorted(
        judged,
        key=lambda g: (not g.pursued, g.kind == PLACE, -g.probability / max(g.best, SLACK)),
    )


def _candidates(mdp: MDP, found: Outcomes, excluded, target, forbidden):
    """(names, kind, states) of each candidate goal: for an absorbing end, the labels
    holding on it; for a loop in one cell, the labels holding on every state of that cell
    (what is there, such as an object, not what the agent faces) and the cell itself, its
    place; for an absorbing end without such labels, its place. Labels holding on the same
    states are one goal."""
    everywhere_reached = np.asarray((found.probability > 0).all(axis=0)).tolist()
    labels: list[str] = []
    places: dict[bytes, tuple[str, np.ndarray]] = {}
    for end, reached in zip(found.ends, everywhere_reached, strict=True):
        if end.role != OTHER or not reached:
            continue
        first = int(np.flatnonzero(end.states)[0])
        cell = place_states(mdp, first)
        in_one_cell = not (end.states & ~cell).any()
        if end.kind != ABSORBING and not in_one_cell:
            continue  # a loop over several cells: wandering, no goal
        names = [
            name
            for name in goal_labels(mdp, end.states if end.kind == ABSORBING else cell, excluded)
            if not (_inside(mdp.labels[name], target) or _inside(mdp.labels[name], forbidden))
        ]
        labels += [name for name in names if name not in labels]
        at_start = cell[mdp.initial_states].any()  # where one starts is not aimed for
        if not at_start and (end.kind == LOOP or not names):
            places.setdefault(np.packbits(cell).tobytes(), (place_name(mdp, first), cell))
    found_goals = [(tuple(group), LABEL, mdp.labels[group[0]]) for group in synonyms(mdp, labels)]
    return found_goals + [((name,), PLACE, cell) for name, cell in places.values()]


def _inside(mask: np.ndarray, region: np.ndarray | None) -> bool:
    return region is not None and not (mask & ~region).any()


def _judge(
    model: Model,
    ends: Absorption,
    null_ends: Absorption,
    null_from: np.ndarray,
    names: tuple[str, ...],
    kind: str,
    states: np.ndarray,
    c: float,
) -> Goal:
    mdp = model.mdp
    initial = mdp.initial_states
    achieved = ends.into(_classes_inside(ends, states))
    best = model.reach([_staying(mdp, states)], True)[0]
    null = null_from[:, _classes_inside(null_ends, states)].sum(axis=1)
    p, b = achieved[initial], best[initial]
    can_reach = best > SLACK
    heads_for = achieved >= c * best - SLACK
    coverage = float(heads_for[can_reach].mean()) if can_reach.any() else 0.0
    why_not = None
    if not (b > SLACK).all() or not (p >= c * b - SLACK).all():
        why_not = f"it ends there with probability below {c:g} of the best possible"
    elif not ((b - null >= (1 - c) * b - SLACK) & (p - null >= c * (b - null) - SLACK)).all():
        why_not = "a uniformly random policy ends there about as often"
    elif coverage < c - SLACK:
        why_not = f"it heads there from only {coverage:.0%} of the states that can reach it"
    worst = int(np.argmin(np.divide(p, b, out=np.zeros_like(p), where=b > 0)))
    return Goal(
        names=names,
        kind=kind,
        probability=float(p[worst]),
        best=float(b[worst]),
        null=float(null[worst]),
        coverage=coverage,
        pursued=why_not is None,
        why_not=why_not,
    )


def _classes_inside(ends: Absorption, states: np.ndarray) -> np.ndarray:
    """bool [n_classes]: the closed classes all of whose states are in `states`."""
    outside = np.zeros(ends.n_classes, dtype=bool)
    members = ends.component >= 0
    outside[ends.component[members & ~states]] = True
    return ~outside


def _staying(mdp: MDP, states: np.ndarray) -> np.ndarray:
    """bool [n_states]: the states of the end components inside `states`: where some policy
    can stay inside them forever."""
    coo = mdp.transitions.tocoo()
    leaves = np.zeros(mdp.n_choices, dtype=bool)
    leaves[coo.row[~states[coo.col]]] = True
    allowed = states[mdp.choice_states()] & ~leaves
    component, _ = end_components(mdp, allowed)
    return component >= 0


def _uniform(mdp: MDP) -> Decisions:
    """The uniformly random policy over each state's choices."""
    counts = np.diff(mdp.row_groups)
    return Decisions(
        choice_probs=np.repeat(1.0 / counts, counts), masked=np.zeros(mdp.n_states, dtype=bool)
    )
