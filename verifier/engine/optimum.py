"""What Storm does not compute: V*, Q* and the optimal action sets for total (discount 1) and
discounted reward with mixed signs, and the end components they depend on.

Storm refuses total reward with negative entries, and its `Rmax [F goal]` is infinite as soon
as a scheduler can avoid the goal; the RL return needs neither restriction. We use policy
iteration with exact sparse linear solves (scipy's LU), so the values are those of an actual
policy, and check the Bellman residual of the result.

Total reward (discount 1): policy iteration starts from a policy that reaches the "rest"
states (absorbing states and zero-reward end components) almost surely, and switches actions
only on strict gains. Such a switch never closes a loop of zero or negative mean reward, so
every policy visited is evaluated exactly. It closes a loop of positive mean reward when one
is reachable: if it stopped at finite values V satisfying Bellman's equation, every policy's
partial sums would be bounded by V(s0) - min V. So:
- a policy whose chain has a closed class with positive mean reward (its stationary
  distribution times the rewards) proves the optimum +infinity (`unbounded`, a reward loop);
- from a state where every policy stays forever, with positive probability, away from the
  rest states, the value is -infinity;
- otherwise the values of the final policy are V*.
Storm's long-run average (`R max [ LRA ]`) would answer the first question directly but did
not terminate on periodic maze chains, sound or not; this needs no extra computation.

Speed: where no reward loop is possible, the start policy is Storm's: its `Rmin [ F T ]` on
the costs -R does accept both signs (see `_storm_start`), and one sweep certifies it.

Discounted reward (discount < 1): Storm's value iteration accepts both signs, and its values
need no linear solve: the Bellman residual r bounds their error by r / (1 - discount)
(`_storm_discounted`). Policy iteration answers only where that bound is too wide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path
from scipy.sparse.linalg import splu, spsolve

from verifier import storm
from verifier.errors import InputError, SolverError
from verifier.graph import absorbing_states, closed_states, end_components, reachable
from verifier.mdp import MDP, csr
from verifier.progress import stage

# Actions whose Q-value is within TOLERANCE of V*, relative to the scale of rewards and
# values, are optimal. Policy iteration switches an action only when that gains more than
# SWITCH (relative); it stops with a Bellman residual below SWITCH, so every action it
# keeps is within SWITCH of the best and V is within SWITCH * (expected steps) of V*.
# Improvements smaller than that are near-ties (in open rooms with slip they made policy
# iteration take over a hundred sweeps); `--exact` settles them in rational arithmetic.
TOLERANCE = 1e-9
SWITCH = 1e-10
MAX_ITERATIONS = 10_000
STEP_TIE_BREAK = 1e-9  # per-step cost (relative) added to Storm's warm start, see _storm_start
# Fill-reducing ordering of sparse LU: minimum degree on A^T + A halved the fill of COLAMD
# (scipy's default) on the policy chains of open rooms (42 against 90 million entries of L + U
# at 10^6 states: 7.8 s against 11.5 s).
ORDERING = "MMD_AT_PLUS_A"


@dataclass(frozen=True, slots=True, eq=False)
class Solution:
    """Optimal values of a reward on an MDP.

    values     float64 [n_states]: V*, +inf/-inf where the optimum is infinite
    q_values   float64 [n_choices]: Q* = R + discount * P V*
    optimal    bool [n_choices]: Q* >= V* - tolerance
    policy     int64 [n_states]: one optimal choice per state (global choice index): an
               optimal policy's, or where Storm's total reward answered, the first optimal
               action of each state
    tolerance  the absolute tolerance that separated optimal from sub-optimal actions
    gap        the smallest V* - Q* among sub-optimal actions (inf if none): the margin
    residual   max |max_a Q* - V*| over finite states
    positive_loop  bool [n_states]: a loop with positive mean reward (empty unless unbounded)
    """

    values: np.ndarray
    q_values: np.ndarray
    optimal: np.ndarray
    policy: np.ndarray
    discount: float
    tolerance: float
    gap: float
    residual: float
    iterations: int
    method: str
    positive_loop: np.ndarray

    @property
    def unbounded(self) -> bool:
        return bool(self.positive_loop.any())


@stage("solving for the optimal values")
def solve(mdp: MDP, rewards: np.ndarray, discount: float = 1.0, storm_model=None) -> Solution:
    """V*, Q* and optimal actions of `rewards` (float64 [n_choices]) with `discount` in (0, 1].

    `storm_model`: `mdp` in Storm, or a function returning it (asked only where Storm
    answers: a discount below 1, or non-negative rewards); by default `mdp` is converted
    where needed. A Markov chain (one choice per state) is evaluated directly, without
    Storm."""
    rewards = np.asarray(rewards, dtype=np.float64)
    chain = mdp.n_choices == mdp.n_states
    positive_loop = np.zeros(mdp.n_states, dtype=bool)
    evaluated = None  # the start policy's evaluation, when already computed
    if discount == 1.0:
        positive_loop = sure_reward_loops(mdp, rewards)
        if positive_loop.any():
            return _unbounded(mdp, positive_loop)
        if not chain and (rewards >= 0).all():  # no reward loop: Storm's total reward
            model = storm_model() if callable(storm_model) else storm_model
            found = _storm_total(mdp, rewards, model)
            if found is not None:
                return found
        component, resting = end_components(mdp, rewards == 0.0)
        finite, policy = _almost_sure_policy(mdp, component >= 0, resting)
        if not chain and not _may_loop(mdp, rewards):
            start = _storm_start(mdp, rewards, component >= 0, resting)
            start = np.where(finite, start, policy)
            evaluated = _evaluate_if_proper(mdp, rewards, start, finite)
            if evaluated is not None:
                policy = start
        if not finite.all():
            positive_loop = _positive_loop_anywhere(mdp, rewards)
            if positive_loop.any():
                return _unbounded(mdp, positive_loop)
    else:
        finite = np.ones(mdp.n_states, dtype=bool)
        policy = mdp.row_groups[:-1].copy()
        if not chain:
            model = storm_model() if callable(storm_model) else storm_model
            found, policy = _storm_discounted(mdp, rewards, discount, model)
            if found is not None:
                return found

    choice_state = mdp.choice_states()
    scale = max(1.0, float(np.abs(rewards).max(initial=0.0)))
    switch = SWITCH * scale
    iterations = 0
    while True:
        iterations += 1
        if iterations > MAX_ITERATIONS:
            raise SolverError(f"policy iteration did not converge in {MAX_ITERATIONS} iterations")
        values, positive_loop = evaluated or _evaluate(mdp, rewards, policy, discount, finite)
        evaluated = None
        if positive_loop.any():
            return _unbounded(mdp, positive_loop)
        q_values = rewards + discount * (mdp.transitions @ values)
        best = np.maximum.reduceat(q_values, mdp.row_groups[:-1])
        magnitude = np.abs(np.where(np.isfinite(values), values, 0.0))
        improve = best > q_values[policy] + switch * np.maximum(1.0, magnitude)
        if not improve.any():
            break
        first_best = _first_in_group(mdp, q_values >= best[choice_state])
        policy = np.where(improve, first_best, policy)

    known = np.isfinite(values)
    tolerance = TOLERANCE * max(scale, float(np.abs(values[known]).max(initial=0.0)))
    residual = float(np.abs(best[known] - values[known]).max(initial=0.0))
    if residual > tolerance / 5:
        raise SolverError(f"Bellman residual {residual:.3g} exceeds {tolerance / 5:.3g}")
    method = (
        f"policy iteration, exact sparse LU solves (float64); Bellman residual {residual:.1e}, "
        f"optimality tolerance {tolerance:.1e}"
    )
    return _solution(
        mdp, values, q_values, policy, discount, tolerance, residual, method, iterations
    )


def _solution(
    mdp: MDP,
    values: np.ndarray,
    q_values: np.ndarray,
    policy: np.ndarray,
    discount: float,
    tolerance: float,
    residual: float,
    method: str,
    iterations: int = 0,
) -> Solution:
    """The Solution of finished values: actions within `tolerance` of V* are optimal."""
    states = mdp.choice_states()
    optimal = q_values >= values[states] - tolerance
    compared = ~optimal & np.isfinite(values)[states]
    gaps = values[states][compared] - q_values[compared]
    return Solution(
        values=values,
        q_values=q_values,
        optimal=optimal,
        policy=policy,
        discount=discount,
        tolerance=tolerance,
        gap=float(gaps.min(initial=np.inf)),
        residual=residual,
        iterations=iterations,
        method=method,
        positive_loop=np.zeros(mdp.n_states, dtype=bool),
    )


def _storm_discounted(
    mdp: MDP, rewards: np.ndarray, discount: float, model=None
) -> tuple[Solution | None, np.ndarray]:
    """V* of a discounted reward by Storm's value iteration (any signs), certified by the
    Bellman residual r of its values V: |V - V*| <= r / (1 - discount), the Bellman operator
    being a contraction by `discount`. Returns the Solution, or None where that bound is too
    wide to tell optimal actions apart (DISCOUNT_ERROR of the optimality tolerance), and the
    greedy policy, a start for policy iteration then."""
    values = storm.discounted_values(
        storm.to_storm(mdp) if model is None else model, rewards, discount
    )
    q_values = rewards + discount * (mdp.transitions @ values)
    best = np.maximum.reduceat(q_values, mdp.row_groups[:-1])
    states = mdp.choice_states()
    policy = _first_in_group(mdp, q_values >= best[states])
    scale = max(1.0, float(np.abs(rewards).max(initial=0.0)), float(np.abs(values).max()))
    residual = float(np.abs(best - values).max(initial=0.0))
    # the residual as computed, plus the rounding of computing it (a few ulps of the scale)
    error = (residual + 8 * _EPS * scale) / (1.0 - discount)
    tolerance = TOLERANCE * scale
    if not np.isfinite(error) or error > DISCOUNT_ERROR * tolerance:
        return None, policy
    method = (
        f"Storm's value iteration (relative precision 1e-12); |V - V*| <= {error:.1e} "
        f"(Bellman residual {residual:.1e} / (1 - discount)), optimality tolerance "
        f"{tolerance:.1e}"
    )
    solution = _solution(mdp, values, q_values, policy, discount, tolerance, residual, method)
    return solution, policy


def _storm_total(mdp: MDP, rewards: np.ndarray, model=None) -> Solution | None:
    """V* of a non-negative total reward without reward loops (sure_reward_loops found
    none) by Storm's sound engine, whose lower and upper bounds certify the values:
    |V - V*| <= their width. None where that is too wide to tell optimal actions apart
    (DISCOUNT_ERROR of the optimality tolerance): policy iteration answers then."""
    values, lower, upper = storm.total_values(
        storm.to_storm(mdp) if model is None else model, rewards
    )
    scale = max(1.0, float(np.abs(rewards).max(initial=0.0)), float(np.abs(values).max()))
    error = float((upper - lower).max(initial=0.0)) + 8 * _EPS * scale
    tolerance = TOLERANCE * scale
    if not np.isfinite(error) or error > DISCOUNT_ERROR * tolerance:
        return None
    q_values = rewards + mdp.transitions @ values
    best = np.maximum.reduceat(q_values, mdp.row_groups[:-1])
    residual = float(np.abs(best - values).max(initial=0.0))
    # The first optimal action of each state: Storm gives no scheduler for total rewards.
    policy = _first_in_group(mdp, q_values >= values[mdp.choice_states()] - tolerance)
    method = (
        f"Storm's sound engine on the total reward (non-negative, no reward loop); "
        f"|V - V*| <= {error:.1e} (its certified bounds), optimality tolerance {tolerance:.1e}"
    )
    return _solution(mdp, values, q_values, policy, 1.0, tolerance, residual, method)


DISCOUNT_ERROR = 0.01  # largest |V - V*| of Storm's values, of the optimality tolerance
_EPS = float(np.finfo(np.float64).eps)


def _storm_start(
    mdp: MDP, rewards: np.ndarray, rest: np.ndarray, resting: np.ndarray
) -> np.ndarray:
    """A near-optimal proper policy from Storm for the total reward (discount 1), to start
    policy iteration, which certifies it and finds reward loops, where Storm's answer is
    meaningless.

    Storm's `Rmin [ F T ]` accepts costs of both signs: with costs -R, T the absorbing
    states, and a zero-cost "stop" added to every rest state (idling there forever earns 0),
    its scheduler maximises the return among policies that end. Storm's fast (unsound)
    engine is enough: policy iteration certifies the result. From Storm's choices it took
    one sweep where from scratch it took over a hundred (slippery open rooms).
    """
    n = mdp.n_states
    extended, shifted = _with_stop(mdp, rest, 1.0)
    cost = np.zeros(extended.n_choices)
    # Among policies of (nearly) equal return, the fastest: where every proper policy earns
    # the same (a reward only on arrival), Storm would pick any of them, including ones that
    # push into walls and progress only by slipping, whose linear systems are so
    # ill-conditioned that their evaluation errs by more than policy iteration's switching
    # threshold, and policy iteration then cycles. Policy iteration removes any return this
    # tie-break gives away.
    scale = max(1.0, float(np.abs(rewards).max(initial=0.0)))
    cost[shifted] = -rewards + STEP_TIE_BREAK * scale
    target = np.concatenate([absorbing_states(mdp), [True]])
    model = storm.to_storm(replace(extended, labels={"__target": target}, rewards={"cost": cost}))
    groups = extended.row_groups
    del extended, cost  # Storm has them: not held through its solve (~0.4 GB at 10^6 states)
    _, chosen = storm.optimize_model(model, 'R{"cost"}min=? [ F "__target" ]', sound=False)
    if chosen is None:  # a reachability reward has memoryless optimal schedulers
        raise SolverError("Storm returned no scheduler for the warm start")
    local = chosen[:n] - groups[:n]
    stops = rest & (local == np.diff(mdp.row_groups))  # Storm chose the added stop
    original = mdp.row_groups[:-1] + np.minimum(local, np.diff(mdp.row_groups) - 1)
    return np.where(stops, _first_in_group(mdp, resting), original)


def sure_reward_loops(mdp: MDP, rewards: np.ndarray) -> np.ndarray:
    """bool [n_states]: the states where a choice with reward > 0 stays inside an end
    component of the choices with reward >= 0. A deterministic policy that takes that
    choice there and moves back to the state inside the end component everywhere else
    earns a positive mean reward forever, so the optimum at discount 1 is +inf. Decided
    from the signs of the rewards alone, so a step reward of 1e-16 counts as positive,
    which no floating-point mean would settle; loops that need negative rewards on the way
    are left to policy iteration."""
    _, inside = end_components(mdp, rewards >= 0)
    earning = np.zeros(mdp.n_states, dtype=bool)
    earning[mdp.choice_states()[inside & (rewards > 0)]] = True
    return earning


def _may_loop(mdp: MDP, rewards: np.ndarray) -> bool:
    """Could a loop earn positive reward: does an end component contain a choice with
    positive reward? (If not, Storm's costs have no negative cycle, on which its solvers
    return nonsense or do not terminate; our policy iteration finds such loops.)"""
    _, inside = end_components(mdp, np.ones(mdp.n_choices, dtype=bool))
    return bool((inside & (rewards > 0)).any())


def _evaluate_if_proper(
    mdp: MDP, rewards: np.ndarray, policy: np.ndarray, finite: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The policy's evaluation if it is a safe start for policy iteration (no state that can
    avoid -inf is at -inf under it), else None. Storm's fast engine is not sound, so its
    scheduler is checked; the evaluation is reused as policy iteration's first."""
    try:
        values, positive = _evaluate(mdp, rewards, policy, 1.0, finite)
    except InputError:  # a loop without total reward: start from our own policy instead
        return None
    if positive.any() or not np.isneginf(values[finite]).any():
        return values, positive
    return None


def _positive_loop_anywhere(mdp: MDP, rewards: np.ndarray) -> np.ndarray:
    """Reward loops also where no rest state is surely reachable: solve the MDP extended
    by a "give up" choice in every state (to a new absorbing state, reward -1). There every
    state reaches rest surely, so policy iteration closes a positive loop if one exists."""
    n = mdp.n_states
    extended, shifted = _with_stop(mdp, np.ones(n, dtype=bool), 1.0)
    extended_rewards = np.full(extended.n_choices, -1.0)  # the give-ups (and the stop's loop)
    extended_rewards[shifted] = rewards
    extended_rewards[-1] = 0.0
    return solve(extended, extended_rewards, 1.0).positive_loop[:n]


def _with_stop(mdp: MDP, stoppable: np.ndarray, discount: float) -> tuple[MDP, np.ndarray]:
    """The MDP with a new absorbing state (index n_states), a choice into it added last in
    every `stoppable` state, and every original choice moving there with probability
    1 - discount (a discount as a stop). Also the new index of each original choice."""
    n, m = mdp.n_states, mdp.n_choices
    stopping = np.flatnonzero(stoppable)
    added = np.concatenate([[0], np.cumsum(stoppable)])  # added choices before each state
    shifted = np.arange(m) + added[mdp.choice_states()]
    stop_rows = mdp.row_groups[1:][stopping] + added[stopping]
    size = m + len(stopping) + 1
    matrix = mdp.transitions.tocoo()
    rows = np.concatenate([shifted[matrix.row], stop_rows, [size - 1], shifted])
    cols = np.concatenate([matrix.col, np.full(len(stopping), n), [n], np.full(m, n)])
    probs = np.concatenate(
        [discount * matrix.data, np.ones(len(stopping)), [1.0], np.full(m, 1.0 - discount)]
    )
    extended = MDP(
        transitions=csr(rows, cols, probs, (size, n + 1)),
        row_groups=np.concatenate([mdp.row_groups + added, [size]]),
        choice_actions=np.full(size, -1, dtype=np.int32),
        actions=(),
        labels={},
        initial_states=mdp.initial_states,
    )
    return extended, shifted


def _unbounded(mdp: MDP, positive_loop: np.ndarray) -> Solution:
    """+inf wherever a positive loop is reachable; NaN (not computed) elsewhere."""
    reaches = _can_reach(mdp, positive_loop, np.ones(mdp.n_choices, dtype=bool))
    values = np.where(reaches, np.inf, np.nan)
    return Solution(
        values=values,
        q_values=np.full(mdp.n_choices, np.nan),
        optimal=np.zeros(mdp.n_choices, dtype=bool),
        policy=mdp.row_groups[:-1].copy(),
        discount=1.0,
        tolerance=0.0,
        gap=np.inf,
        residual=0.0,
        iterations=0,
        method="policy iteration found a loop with positive mean reward",
        positive_loop=positive_loop,
    )


def _can_reach(mdp: MDP, target: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """bool [n_states]: states with a path to `target` using `allowed` choices."""
    matrix = mdp.transitions.tocoo()
    keep = allowed[matrix.row]
    return reachable(matrix.col[keep], mdp.choice_states()[matrix.row[keep]], target)


def _reverse_graph(
    mdp: MDP, allowed: np.ndarray, sources: np.ndarray | None = None
) -> sp.csr_matrix:
    """Graph with an edge s' -> s for every allowed choice of s that can reach s', plus a
    super-source (node n_states) with edges to `sources` (default: none)."""
    matrix = mdp.transitions.tocoo()
    keep = allowed[matrix.row]
    rows = matrix.col[keep]
    cols = mdp.choice_states()[matrix.row[keep]]
    if sources is not None:
        rows = np.concatenate([rows, np.full(int(sources.sum()), mdp.n_states)])
        cols = np.concatenate([cols, np.flatnonzero(sources)])
    n = mdp.n_states + 1
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, n))


def _almost_sure_policy(
    mdp: MDP, rest: np.ndarray, resting: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """States from which `rest` (zero-reward end components) is reached with probability 1
    under some policy, and such a policy: the classic Pmax = 1 fixpoint, each choice staying
    in the winning region and moving closer to `rest` with positive probability; in `rest`, a
    `resting` choice (zero reward, staying in its component). Outside the region the value
    is -inf: every policy stays forever, with positive probability, where rewards are
    negative on average."""
    choice_state = mdp.choice_states()
    winning = np.ones(mdp.n_states, dtype=bool)
    while True:
        stays = np.asarray(mdp.transitions @ (~winning).astype(np.float64)).ravel() == 0
        allowed = stays & winning[choice_state]
        graph = _reverse_graph(mdp, allowed, sources=rest & winning)
        distance = shortest_path(graph, method="D", unweighted=True, indices=mdp.n_states)[:-1]
        reached = np.isfinite(distance)
        if (reached == winning).all():
            break
        winning = reached
    matrix = mdp.transitions
    successor_distance = np.full(mdp.n_choices, np.inf)
    nonempty = np.diff(matrix.indptr) > 0
    successor_distance[nonempty] = np.minimum.reduceat(
        distance[matrix.indices], matrix.indptr[:-1][nonempty]
    )
    closer = allowed & (successor_distance < distance[choice_state])
    # Among those, the one that gets closest in expectation: a good start for improvement.
    expected = matrix @ np.where(winning, distance, 0.0)
    score = np.where(closer, expected, np.inf)
    best = np.minimum.reduceat(score, mdp.row_groups[:-1])
    progress = _first_in_group(mdp, closer & (score == best[choice_state]))
    policy = np.where(rest, _first_in_group(mdp, resting), progress)
    return winning, policy


def _first_in_group(mdp: MDP, mask: np.ndarray) -> np.ndarray:
    """int64 [n_states]: the first choice of each state where `mask` holds (its first choice
    where none does)."""
    index = np.where(mask, np.arange(mdp.n_choices), mdp.n_choices)
    first = np.minimum.reduceat(index, mdp.row_groups[:-1])
    return np.where(first < mdp.n_choices, first, mdp.row_groups[:-1])


def _evaluate(
    mdp: MDP, rewards: np.ndarray, policy: np.ndarray, discount: float, finite: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values of a memoryless deterministic policy by an exact sparse solve, and the states
    of closed classes of its chain with positive mean reward (discount 1; then the values
    are not used).

    With discount 1, a closed class earning only zero rewards is worth 0; one with negative
    mean reward is worth -inf, and so is every state that reaches it or lies outside
    `finite`; zero mean reward with nonzero rewards has no total reward at all.
    """
    chain = mdp.transitions[policy]
    reward = rewards[policy]
    n = mdp.n_states
    positive = np.zeros(n, dtype=bool)
    if discount < 1.0:
        return _solve_linear(sp.identity(n, format="csc") - discount * chain, reward), positive
    values = np.zeros(n)
    n_classes, scc, closed = closed_states(chain)
    coo = chain.tocoo()
    earning = np.zeros(n_classes, dtype=bool)
    earning[scc[reward != 0]] = True
    negative = np.zeros(n, dtype=bool)
    scale = max(1.0, float(np.abs(reward).max(initial=0.0)))
    for members in _classes(scc, closed & earning[scc] & finite):
        gain = _mean_reward(chain, reward, members)
        if gain > 1e-12 * scale:
            positive[members] = True
        elif gain < -1e-12 * scale:
            negative[members] = True
        else:
            raise InputError(
                "--reward",
                f"the total reward is undefined: a loop through {len(members)} states has mean "
                "reward 0 but nonzero rewards, so its sum does not converge; use a discount < 1",
            )
    if positive.any():
        return values, positive
    doomed = reachable(coo.col, coo.row, negative | ~finite)
    transient = ~closed & ~doomed
    idx = np.flatnonzero(transient)
    if len(idx):
        sub = chain[idx][:, idx]
        values[idx] = _solve_linear(sp.identity(len(idx), format="csc") - sub, reward[idx])
    values[doomed] = -np.inf
    return values, positive


def _solve_linear(matrix: sp.spmatrix, rhs: np.ndarray) -> np.ndarray:
    """Solve matrix @ x = rhs by sparse LU with two steps of iterative refinement: the
    systems of slippery mazes are ill-conditioned (long expected times), and the plain
    solve's error (~1e-10) would pass for improvements in policy iteration."""
    matrix = matrix.tocsc()
    factors = splu(matrix, permc_spec=ORDERING)
    solution = factors.solve(rhs)
    for _ in range(2):
        solution += factors.solve(rhs - matrix @ solution)
    return solution


def _classes(scc: np.ndarray, selected: np.ndarray) -> list[np.ndarray]:
    """The states of each strongly connected component that has a selected state."""
    order = np.flatnonzero(selected)
    if not len(order):
        return []
    order = order[np.argsort(scc[order], kind="stable")]
    return np.split(order, np.flatnonzero(np.diff(scc[order])) + 1)


def _mean_reward(chain: sp.csr_matrix, reward: np.ndarray, members: np.ndarray) -> float:
    """Long-run mean reward of an irreducible closed class: stationary distribution · reward
    (solve pi (P - I) = 0 with one equation replaced by sum(pi) = 1)."""
    if len(members) == 1:
        return float(reward[members[0]])
    block = chain[members][:, members]
    system = (block.T - sp.identity(len(members))).tolil()
    system[0, :] = 1.0
    rhs = np.zeros(len(members))
    rhs[0] = 1.0
    stationary = spsolve(system.tocsc(), rhs)
    return float(stationary @ reward[members])
