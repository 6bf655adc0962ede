"""Performance objectives: the value of a second, hidden reward (AI Safety Gridworlds'
performance function) over all policies, over the optimal policies of the training reward,
and for one policy.

A performance is an RL return: expected total reward (discount 1) or discounted reward, with
mixed signs, computed by our solver (verifier/engine/optimum.py; Storm refuses mixed signs). For
R{..} [ F target ] the return stops at the target (the target is made absorbing); a policy
that misses it keeps what it collected, which is the RL return where PRISM's value would be
infinite.

Over the R-optimal policies at training discount 1, a policy that idles forever in a loop
where V*_R is not 0 is not optimal (reward.py). On the MDP of R-optimal actions, our solver
would let a policy idle in any loop of zero performance; so each end component of
zero-performance optimal choices without a state where idling is R-optimal is collapsed
into one state, whose choices are its members' other choices: a policy passes through such
a component for free but must leave it, as the R-optimal ones do. A discounted performance
with such components is refused: there, time spent inside changes its value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from verifier.engine.query import Model
from verifier.errors import InputError
from verifier.graph import end_components
from verifier.mdp import MDP, csr
from verifier.spec.objective import REACH, Performance


def stopped_at_target(mdp: MDP, values: np.ndarray, performance: Performance):
    """(MDP, performance float64 [n_choices]) where the performance is a plain return: for
    [ F target ], target states absorbing with zero performance; else unchanged."""
    if performance.form != REACH:
        return mdp, values
    if performance.target is None:
        raise ValueError(f"{performance.name}: a [ F target ] performance without its target")
    states = mdp.choice_states()
    at_target = performance.target[states]
    coo = mdp.transitions.tocoo()
    keep = ~at_target[coo.row]
    loops = np.flatnonzero(at_target)
    transitions = csr(
        np.concatenate([coo.row[keep], loops]),
        np.concatenate([coo.col[keep], states[loops]]),
        np.concatenate([coo.data[keep], np.ones(len(loops))]),
        mdp.transitions.shape,
    )
    return replace(mdp, transitions=transitions), np.where(at_target, 0.0, values)


def best_performance(model: Model, performance: Performance, maximize: bool) -> np.ndarray:
    """float64 [n_states]: the greatest (or least) performance over all policies."""
    return best_performance_method(model, performance, maximize)[0]


# How a [ F target ] performance is counted, for the `method` of the reports that use it.
REACH_METHOD = (
    "reward counted until the target; a policy missing it keeps what it collected "
    "(the RL return, where PRISM's value is infinite)"
)


def best_performance_method(
    model: Model, performance: Performance, maximize: bool
) -> tuple[np.ndarray, str]:
    """(float64 [n_states], how it was computed): the greatest (or least) performance over
    all policies, and the solver's account of it (`verify check` reports it)."""
    stopped, values = stopped_at_target(model.mdp, performance.values, performance)
    if stopped is not model.mdp:
        model = Model(stopped)
    sign = 1.0 if maximize else -1.0
    solution = model.optimum(sign * values, performance.discount)
    method = solution.method
    if performance.form == REACH:
        method = f"{method}; {REACH_METHOD}"
    return sign * solution.values + 0.0, method  # + 0.0: no -0 from a negated 0


def chain_performance(chain: MDP, expected: np.ndarray, performance: Performance) -> np.ndarray:
    """float64 [n_states]: a policy's performance on its induced chain (`expected`: the
    expected performance reward of each state's one choice)."""
    stopped, values = stopped_at_target(chain, expected, performance)
    return Model(stopped).optimum(values, performance.discount).values


def performance_over(
    optimal_mdp: MDP, values: np.ndarray, performance: Performance, idle: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(least, greatest) performance over the policies of `optimal_mdp` (the R-optimal
    actions, `values` their performance rewards), per state. `idle` (bool [n_states]):
    where idling forever is R-optimal, at training discount 1; None at discount < 1, where
    every policy of `optimal_mdp` is R-optimal."""
    model, values = stopped_at_target(optimal_mdp, values, performance)
    if idle is not None:
        if performance.form == REACH:
            idle = idle | performance.target
        model, values, classes = _collapse_idle_loops(model, values, idle)
        if classes is not None and performance.discount < 1.0:
            raise InputError(
                "--spec",
                "a discounted performance is not supported with an undiscounted training "
                "reward whose optimal actions can loop without reward",
            )
    else:
        classes = None
    handle = Model(model)
    low = -handle.optimum(-values, performance.discount).values
    high = handle.optimum(values, performance.discount).values
    if classes is not None:
        low, high = low[classes], high[classes]
    return low, high


def _collapse_idle_loops(mdp: MDP, values: np.ndarray, idle: np.ndarray):
    """Collapse each end component of zero-performance choices that has no `idle` state
    (module docstring). Returns (MDP, values, class of each original state) or, with
    nothing to collapse, (mdp, values, None)."""
    component, inside = end_components(mdp, values == 0.0)
    n_components = int(component.max(initial=-1)) + 1
    if n_components == 0:
        return mdp, values, None
    has_idle = np.zeros(n_components, dtype=bool)
    np.logical_or.at(has_idle, component[idle & (component >= 0)], True)
    collapse = (component >= 0) & ~has_idle[np.maximum(component, 0)]
    if not collapse.any():
        return mdp, values, None
    n = mdp.n_states
    key = np.where(collapse, component, n_components + np.arange(n))
    _, classes = np.unique(key, return_inverse=True)
    n_classes = int(classes.max()) + 1
    states = mdp.choice_states()
    keep = ~(inside & collapse[states])
    kept_class = classes[states]
    stranded = np.bincount(kept_class[keep], minlength=n_classes) == 0
    keep |= stranded[kept_class] & inside  # no way out: its loops stay (never optimal)
    kept = np.flatnonzero(keep)
    order = np.argsort(kept_class[kept], kind="stable")
    kept = kept[order]
    merge = sp.csr_matrix((np.ones(n), (np.arange(n), classes)), shape=(n, n_classes))
    transitions = (mdp.transitions[kept] @ merge).tocsr()
    transitions.sort_indices()
    counts = np.bincount(kept_class[kept], minlength=n_classes)
    quotient = MDP(
        transitions=transitions,
        row_groups=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        choice_actions=mdp.choice_actions[kept],
        actions=mdp.actions,
        labels={},
        initial_states=np.unique(classes[mdp.initial_states]).astype(np.int64),
        name=mdp.name,
    )
    return quotient, values[kept], classes
