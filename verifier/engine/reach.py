"""Unbounded until probabilities P[ left U target ], sound and fast on slowly mixing chains.

Storm's sound engine (interval iteration) needs about as many sweeps as the chain needs steps
to be absorbed: on a policy that camps on a reward and slips off and back, 10^8-10^9 sweeps
(issue 10 §12, issue 11 §1). A direct solve does not care how slowly the chain mixes:

- Markov chain: the states of probability 0 and 1 by graph search (prob0/prob1), then one
  sparse LU solve of (I - Q) x = b on the rest, refined with residuals in extended precision.
  Error bound: |x - x*| <= ||r|| * (I - Q)^-1 1, componentwise, where r bounds the residual
  (rounding of its computation included, and the rounding of the model's probabilities to
  float64) and (I - Q)^-1 1 is the expected number of steps until the chain leaves the
  undecided states, solved with the same factors and bounded the same way. The bounds are
  about 1e-15 times that number of steps wide: tight unless the chain mixes very slowly.
- MDP (Pmax, Pmin): Storm's value iteration, stopped early, gives a scheduler; its chain is
  solved as above and checked against every action; where an action improves on it beyond
  the chain's error bound the scheduler takes it (policy iteration) and is solved again.
  The values of a scheduler with no improving action are a fixpoint of Bellman's operator
  and those of an actual policy, hence the optimum (least fixpoint, Pmax below it). After
  MAX_IMPROVEMENTS rounds Storm's sound engine answers instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from verifier.engine.optimum import ORDERING
from verifier.graph import closed_states, reachable
from verifier.mdp import MDP

MAX_IMPROVEMENTS = 100  # policy improvements on the scheduler before Storm's sound engine
REFINEMENTS = 4  # steps of iterative refinement; two already reach the float64 limit
# The model's float64 probabilities are the intended ones (0.05 for slip 0.1) within a few
# units of their last place: each entry off by MODEL_ROUNDING relative at most, its row by
# that much in all, which (I - Q)^-1 turns into that much times the expected number of steps.
# A binary fraction of at most BINARY_DIGITS digits (0.25, 0.125, 0.75) is taken as meant.
MODEL_ROUNDING = 4 * float(np.finfo(np.float64).eps)
BINARY_DIGITS = 24
_EPS = float(np.finfo(np.float64).eps)
_EXTENDED_EPS = float(np.finfo(np.longdouble).eps)


@dataclass(frozen=True, slots=True, eq=False)
class Probabilities:
    """P[ left U target ] on every state, with sound bounds.

    values, lower, upper  float64 [n_states], lower <= values <= upper
    policy                int64 [n_states]: the optimal scheduler's global choice per state
                          (MDPs), the only choice of each state (chains); None for a step
                          bound (optimal schedulers need memory)
    method                how the values were obtained and how wide the bounds are
    """

    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    policy: np.ndarray | None
    method: str


def chain_until(
    chain: sp.csr_matrix, left: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """P[ left U target ] of a Markov chain (csr float64 [n, n]) by prob0/prob1 and a direct
    solve: (values, error bound), float64 [n] each."""
    n = chain.shape[0]
    coo = chain.tocoo()
    passing = left & ~target
    through = passing[coo.row]
    can_reach = reachable(coo.col[through], coo.row[through], target)
    never = ~can_reach
    may_miss = reachable(coo.col[through], coo.row[through], never)
    surely = ~may_miss
    values = surely.astype(np.float64)
    error = np.zeros(n)
    maybe = np.flatnonzero(~never & ~surely)
    if len(maybe):
        block = chain[maybe]
        inner = block[:, maybe].tocsc()
        into = block[:, np.flatnonzero(surely)].astype(np.longdouble)
        rhs = into @ np.ones(into.shape[1], dtype=np.longdouble)  # summed without rounding
        x, x_error = _solve_transient(inner, rhs, _reading_error(block))
        values[maybe] = x
        error[maybe] = x_error
    return values, error


def _reading_error(block: sp.csr_matrix) -> float:
    """The largest sum, over a row, of how far its float64 probabilities may be from the
    ones meant: MODEL_ROUNDING relative, nothing for short binary fractions (so a chain of
    quarters and eighths, a uniform policy on a slip of 0.25, is solved as it is meant)."""
    data = block.data
    scaled = data * 2.0**BINARY_DIGITS
    deviation = np.where(scaled == np.round(scaled), 0.0, MODEL_ROUNDING * data)
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    return float(np.bincount(rows, weights=deviation, minlength=block.shape[0]).max(initial=0.0))


def _solve_transient(
    inner: sp.csc_matrix, rhs: np.ndarray, reading: float
) -> tuple[np.ndarray, np.ndarray]:
    """x = (I - Q)^-1 rhs for a transient substochastic Q (csc [m, m]), rhs longdouble
    [m], with a componentwise error bound, the model's probabilities read `reading` off per
    row at most. (I - Q)^-1 |r| <= ||r||_inf * t, t = (I - Q)^-1 1 the expected time to
    absorption; t is itself solved and its error bounded by the same argument:
    ||t||_inf <= ||t_hat||_inf / (1 - ||r_t||_inf)."""
    m = inner.shape[0]
    factors = splu((sp.identity(m, format="csc") - inner).tocsc(), permc_spec=ORDERING)
    extended = inner.tocsr().astype(np.longdouble)
    x, x_residual = _refined(extended, factors, rhs)
    t, t_residual = _refined(extended, factors, np.ones(m, dtype=np.longdouble))
    if t_residual >= 1.0 or not np.isfinite(t).all():
        return np.clip(x.astype(np.float64), 0.0, 1.0), np.ones(m)
    t_norm = float(np.abs(t).max()) / (1.0 - t_residual)
    steps = np.abs(t).astype(np.float64) + t_norm * t_residual
    error = (x_residual + reading) * steps
    solution = x.astype(np.float64)
    rounding = np.abs(x - solution.astype(np.longdouble)).astype(np.float64)
    return solution, error + rounding + _EPS * np.abs(solution)


def _refined(
    inner: sp.csr_matrix, factors, rhs: np.ndarray, transposed: bool = False
) -> tuple[np.ndarray, float]:
    """Solve (I - Q) x = rhs (with `transposed`, (I - Q)^T x = rhs, `inner` then being
    Q^T) by LU (of I - Q in float64) and iterative refinement, the iterate and the
    residuals rhs - x + Q x in extended precision (Q read exactly: forming I - Q in float64
    would round its diagonal). The solution (longdouble) and a bound on the residual's
    norm, including the rounding of its own computation."""
    trans = "T" if transposed else "N"
    b = rhs.astype(np.longdouble)
    x = factors.solve(rhs.astype(np.float64), trans=trans).astype(np.longdouble)
    for _ in range(REFINEMENTS):
        x += factors.solve((b - x + inner @ x).astype(np.float64), trans=trans)
    residual = np.abs(b - x + inner @ x)
    terms = int(np.diff(inner.indptr).max(initial=0)) + 3
    rounding = terms * _EXTENDED_EPS * (np.abs(b) + np.abs(x) + abs(inner) @ np.abs(x))
    return x, float((residual + rounding).max(initial=0.0))


def probabilities(
    mdp: MDP,
    left: np.ndarray,
    target: np.ndarray,
    maximize: bool | None,
    steps: int | None = None,
    storm_model=None,
) -> Probabilities:
    """P[ left U(<=steps) target ] on every state: of a Markov chain (`maximize` None; one
    choice per state), or its maximum or minimum over schedulers. Step-bounded ones go to
    Storm's sound engine, which needs only `steps` sweeps (no memoryless policy attains
    them: `policy` is then None).

    `storm_model`: `mdp` in Storm, or a function returning it (called only where Storm is
    asked: never for an unbounded chain); by default `mdp` is converted."""
    from verifier import storm

    def in_storm():
        if storm_model is None:
            return storm.to_storm(mdp)
        return storm_model() if callable(storm_model) else storm_model

    if steps is not None:
        values, lower, upper, policy = storm.until(in_storm(), left, target, maximize, steps)
        return Probabilities(values, lower, upper, policy, storm.SOUND_METHOD)
    if maximize is None:
        if mdp.n_choices != mdp.n_states:
            raise ValueError("probabilities: a chain has one choice per state; give maximize")
        values, error = chain_until(mdp.transitions, left, target)
        return _bounded(values, error, np.arange(mdp.n_states, dtype=np.int64), _CHAIN_METHOD)
    model = in_storm()
    policy = storm.until(model, left, target, maximize, sound=False)[3]
    states = mdp.choice_states()
    undecided = (left & ~target)[states]
    for improvements in range(MAX_IMPROVEMENTS):
        values, error = chain_until(mdp.transitions[policy], left, target)
        q_values = mdp.transitions @ values
        gain = (q_values - values[states]) if maximize else (values[states] - q_values)
        better = undecided & (gain > error[states] + 4 * _EPS)
        if not better.any():
            direction = "max" if maximize else "min"
            return _bounded(
                values,
                error,
                policy,
                f"P{direction} by the scheduler of Storm's value iteration, improved "
                f"{improvements} times; its chain by {_CHAIN_METHOD}; no action improves on it "
                "beyond the error bound",
            )
        score = np.where(better, gain, -np.inf)
        best = np.maximum.reduceat(score, mdp.row_groups[:-1])
        switch = np.isfinite(best)
        first = np.minimum.reduceat(
            np.where(better & (score == best[states]), np.arange(mdp.n_choices), mdp.n_choices),
            mdp.row_groups[:-1],
        )
        policy = np.where(switch, first, policy)
    values, lower, upper, policy = storm.until(model, left, target, maximize)
    return Probabilities(values, lower, upper, policy, storm.SOUND_METHOD)


_CHAIN_METHOD = "prob0/prob1 graph search and a direct sparse LU solve"


def _bounded(values, error, policy, method) -> Probabilities:
    lower = np.clip(values - error, 0.0, 1.0)
    upper = np.clip(values + error, 0.0, 1.0)
    values = np.clip(values, lower, upper)
    width = float((upper - lower).max(initial=0.0))
    return Probabilities(values, lower, upper, policy, f"{method}; bounds at most {width:.1e} wide")


class Absorption:
    """Where a Markov chain's runs end: its closed classes (the bottom strongly connected
    components: an absorbing state, or a loop the chain never leaves), the probability of
    ending in each and the expected number of steps to get there.

    With T the transient states, Q the chain on T, R[t, c] the probability of stepping from
    t into class c and N = (I - Q)^-1 (expected visits), the probability of ending in c
    from t is (N R)[t, c] and the expected steps on the runs that end there,
    E[steps; ends in c] = (N N R)[t, c] (each visit to a transient state is one step).
    From given sources both come from two transposed solves, for every class at once:
    v = e_s N, w = v N, then v R and w R. One LU factorization of I - Q serves every
    question about a set of states; each solve is refined in extended precision
    (`_refined`).

    component  int64 [n]: the closed class of each state, -1 for transient states
    n_classes  the number of closed classes
    """

    def __init__(self, chain: sp.csr_matrix):
        n_scc, scc, closed = closed_states(chain)
        ids = np.full(n_scc, -1, dtype=np.int64)
        members = np.unique(scc[closed])
        ids[members] = np.arange(len(members))
        self.component = np.where(closed, ids[scc], -1)
        self.n_classes = len(members)
        self.transient = np.flatnonzero(~closed)
        self._chain = chain
        self._systems: dict[tuple[int, int], tuple] = {}

    def _system(self, states: np.ndarray):
        """For transient `states` closed under the chain's transient successors: (LU of
        I - Q, Q in extended precision, Q^T likewise, R: float64 [|states|, n_classes]),
        Q the chain on them and R their steps into each closed class."""
        key = (len(states), hash(states.tobytes()))
        if key not in self._systems:
            block = self._chain[states]
            inner = block[:, states]
            m = len(states)
            factors = splu((sp.identity(m, format="csc") - inner).tocsc(), permc_spec=ORDERING)
            coo = block.tocoo()
            into = self.component[coo.col] >= 0
            leaving = sp.csr_matrix(
                (coo.data[into], (coo.row[into], self.component[coo.col[into]])),
                shape=(m, self.n_classes),
            )
            extended = inner.tocsr().astype(np.longdouble)
            self._systems[key] = (factors, extended, extended.T.tocsr(), leaving)
        return self._systems[key]

    def from_states(self, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability, steps), float64 [len(sources), n_classes] each: from each source,
        the probability of ending in each closed class and the expected number of steps
        until it enters that class on the runs that do (nan where the probability is 0).
        The equations are those of the transient states the sources reach."""
        sources = np.asarray(sources, dtype=np.int64)
        probability = np.zeros((len(sources), self.n_classes))
        steps = np.full((len(sources), self.n_classes), np.nan)
        start_mask = np.zeros(self._chain.shape[0], dtype=bool)
        start_mask[sources[self.component[sources] < 0]] = True
        coo = self._chain.tocoo()
        passing = self.component[coo.row] < 0
        reached = reachable(coo.row[passing], coo.col[passing], start_mask)
        states = np.flatnonzero(reached & (self.component < 0))
        position = np.full(self._chain.shape[0], -1, dtype=np.int64)
        position[states] = np.arange(len(states))
        for row, source in enumerate(sources.tolist()):
            own = self.component[source]
            if own >= 0:
                probability[row, own], steps[row, own] = 1.0, 0.0
                continue
            factors, _, transposed, leaving = self._system(states)
            start = np.zeros(len(states), dtype=np.longdouble)
            start[position[source]] = 1.0
            visits, _ = _refined(transposed, factors, start, transposed=True)
            weighted, _ = _refined(transposed, factors, visits, transposed=True)
            p = np.asarray(leaving.T @ visits.astype(np.float64)).ravel()
            total = np.asarray(leaving.T @ weighted.astype(np.float64)).ravel()
            probability[row] = p
            steps[row] = np.divide(total, p, out=np.full_like(p, np.nan), where=p > 0)
        return probability, steps

    def into(self, classes: np.ndarray) -> np.ndarray:
        """float64 [n]: from every state, the probability of ending in one of `classes`
        (bool [n_classes])."""
        values = classes[self.component].astype(np.float64)
        values[self.component < 0] = 0.0
        if len(self.transient) and classes.any():
            factors, inner, _, leaving = self._system(self.transient)
            rhs = np.asarray(leaving[:, np.flatnonzero(classes)].sum(axis=1)).ravel()
            x, _ = _refined(inner, factors, rhs.astype(np.longdouble))
            values[self.transient] = np.clip(x.astype(np.float64), 0.0, 1.0)
        return values
