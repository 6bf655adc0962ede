"""V*, Q* and optimal actions (verifier.engine.optimum) against independent computations: a linear
program (HiGHS), brute force over deterministic memoryless policies and over state subsets,
Storm's total reward where Storm can answer, and values worked out by hand."""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from verifier import storm
from verifier.engine.optimum import solve
from verifier.graph import end_components
from verifier.inputs.maze_compile import compile_maze
from verifier.inputs.maze_generate import open_room, random_maze
from verifier.mdp import MDP, csr
from verifier.spec.reward_file import Reward, reward_vector

REWARDS = (-1.0, -0.5, 0.0, 0.5, 1.0)
DISCOUNTS = (0.5, 0.9, 0.99)
ATOL = 1e-7
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
RED = '[cells.R]\nkind = "object"\ncolor = "red"\n'
FAST = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


# --- building MDPs ----------------------------------------------------------------------------


def build(spec, initial=(0,)) -> tuple[MDP, np.ndarray]:
    """An MDP and its reward vector from spec[s] = [({target: probability}, reward), ...]."""
    rows, cols, probs, rewards, actions, row_groups = [], [], [], [], [], [0]
    for state, choices in enumerate(spec):
        for index, (distribution, reward) in enumerate(choices):
            for target, p in distribution.items():
                rows.append(len(rewards))
                cols.append(target)
                probs.append(p)
            rewards.append(reward)
            absorbing = len(choices) == 1 and distribution == {state: 1.0}
            actions.append(-1 if absorbing else index)
        row_groups.append(len(rewards))
    n = len(spec)
    mdp = MDP(
        transitions=csr(np.array(rows), np.array(cols), np.array(probs), (len(rewards), n)),
        row_groups=np.array(row_groups, dtype=np.int64),
        choice_actions=np.array(actions, dtype=np.int32),
        actions=("a0", "a1", "a2"),
        labels={},
        initial_states=np.array(sorted(initial), dtype=np.int64),
    )
    return mdp, np.array(rewards, dtype=np.float64)


@st.composite
def random_mdps(draw, max_states=8, rewards=REWARDS, proper=False):
    """(MDP, rewards): 2..max_states states, the last ones (after a random renumbering)
    absorbing with a zero-reward self-loop; the others 1-3 choices, each a distribution over
    1-3 successors with weights 1-4. `proper`: every choice of a non-absorbing state reaches
    an absorbing state with positive probability, so every policy is absorbed."""
    n = draw(st.integers(2, max_states))
    n_absorbing = draw(st.integers(1, max(1, n // 2)))
    order = draw(st.permutations(range(n)))
    absorbing = sorted(order[n - n_absorbing :])
    spec = []
    for state in range(n):
        if state in absorbing:
            spec.append([({state: 1.0}, 0.0)])
            continue
        choices = []
        for _ in range(draw(st.integers(1, 3))):
            targets = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))
            if proper and not set(targets) & set(absorbing):
                targets.append(draw(st.sampled_from(absorbing)))
            weights = draw(
                st.lists(st.integers(1, 4), min_size=len(targets), max_size=len(targets))
            )
            distribution = {t: w / sum(weights) for t, w in zip(targets, weights, strict=True)}
            choices.append((distribution, draw(st.sampled_from(rewards))))
        spec.append(choices)
    return build(spec, initial=(order[0],))


# --- independent references -------------------------------------------------------------------


def closure(adjacency: np.ndarray) -> np.ndarray:
    """Reflexive-transitive closure of a boolean adjacency matrix (repeated squaring)."""
    reach = adjacency | np.eye(len(adjacency), dtype=bool)
    while True:
        longer = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        if (longer == reach).all():
            return reach
        reach = longer


def absorbing_states(mdp: MDP) -> np.ndarray:
    dense = mdp.transitions.toarray()
    states = mdp.choice_states()
    stays = dense[np.arange(mdp.n_choices), states] == 1.0
    return np.array(
        [stays[mdp.row_groups[s] : mdp.row_groups[s + 1]].all() for s in range(mdp.n_states)]
    )


def brute_end_components(mdp: MDP, allowed: np.ndarray) -> tuple[list[frozenset], np.ndarray]:
    """Maximal end components by enumerating every subset of states: S is an end component
    when each of its states has an allowed choice with support inside S and those choices
    make S strongly connected. The union of the end components containing a state is its
    maximal one. Returns (the maximal components, inside bool [n_choices])."""
    n = mdp.n_states
    dense = mdp.transitions.toarray() > 0
    states = mdp.choice_states()
    union = [set() for _ in range(n)]
    for size in range(1, n + 1):
        for subset in itertools.combinations(range(n), size):
            members = np.zeros(n, dtype=bool)
            members[list(subset)] = True
            stay = allowed & members[states] & ~dense[:, ~members].any(axis=1)
            if not all(stay[states == s].any() for s in subset):
                continue
            edges = np.zeros((n, n), dtype=bool)
            for c in np.flatnonzero(stay):
                edges[states[c]] |= dense[c]
            reach = closure(edges)[np.ix_(members, members)]
            if reach.all():
                for s in subset:
                    union[s] |= set(subset)
    components = sorted({frozenset(u) for u in union if u}, key=min)
    where = {s: c for c in components for s in c}
    inside = np.array(
        [
            bool(allowed[c])
            and states[c] in where
            and set(np.flatnonzero(dense[c])) <= where[states[c]]
            for c in range(mdp.n_choices)
        ]
    )
    return components, inside


def partition(component: np.ndarray) -> list[frozenset]:
    ids = sorted(set(component.tolist()) - {-1})
    return sorted((frozenset(np.flatnonzero(component == i).tolist()) for i in ids), key=min)


def lp_values(mdp: MDP, rewards: np.ndarray, discount: float, rest=None, known=None):
    """V* as the least V with V(s) >= R(s,a) + discount * sum P(s'|s,a) V(s') for every
    choice (minimise sum V, HiGHS dual simplex); with discount 1, V >= 0 on the `rest` states
    (they can idle for ever at reward 0). States where `known` is infinite are left out, and
    with them every choice that can reach them."""
    n = mdp.n_states
    states = mdp.choice_states()
    dense = mdp.transitions.toarray()
    values = np.zeros(n) if known is None else np.array(known, dtype=np.float64)
    include = np.isfinite(values)
    keep = include[states] & ~(dense[:, ~include] > 0).any(axis=1)
    a_ub = discount * dense[keep][:, include]
    local = np.cumsum(include) - 1
    a_ub[np.arange(int(keep.sum())), local[states[keep]]] -= 1.0
    lower = np.zeros(n, dtype=bool) if rest is None else rest
    bounds = [(0.0 if lower[s] else None, None) for s in np.flatnonzero(include)]
    result = linprog(
        np.ones(int(include.sum())),
        A_ub=a_ub,
        b_ub=-rewards[keep],
        bounds=bounds,
        method="highs-ds",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    assert result.status == 0, result.message
    values[include] = result.x
    return values


def brute_total(mdp: MDP, rewards: np.ndarray):
    """Total reward (discount 1) by enumerating every deterministic memoryless policy.

    For each policy's chain: a closed class with only zero rewards is worth 0; one with
    negative mean reward is worth -inf, and so is every state that reaches it; the transient
    states solve a linear system. Returns a namespace with `values` (V*, the best policy per
    state, where no positive loop is reachable), `positive` (bool [n_states]: states of a
    closed class with positive mean reward under some policy), `winning` (states from which
    some policy reaches the zero-reward closed classes, the rest states, with probability
    1) and `oscillating` (some closed class has nonzero rewards but mean 0: no total reward;
    such models are left out)."""
    n = mdp.n_states
    dense = mdp.transitions.toarray()
    groups = [range(mdp.row_groups[s], mdp.row_groups[s + 1]) for s in range(n)]
    best = np.full(n, -np.inf)
    positive = np.zeros(n, dtype=bool)
    winning = np.zeros(n, dtype=bool)
    oscillating = False
    for policy in itertools.product(*groups):
        policy = list(policy)
        chain, reward = dense[policy], rewards[policy]
        reach = closure(chain > 0)
        recurrent = np.array([(reach[s] <= reach[:, s]).all() for s in range(n)])
        doomed = np.zeros(n, dtype=bool)
        settled = np.zeros(n, dtype=bool)
        earning = np.zeros(n, dtype=bool)
        for s in np.flatnonzero(recurrent):
            members = reach[s]
            if settled[members].any():
                continue
            settled |= members
            if (reward[members] == 0).all():
                continue
            earning |= members
            sub = chain[np.ix_(members, members)]
            k = int(members.sum())
            system = np.vstack([sub.T - np.eye(k), np.ones(k)])
            stationary = np.linalg.lstsq(system, np.r_[np.zeros(k), 1.0], rcond=None)[0]
            gain = float(stationary @ reward[members])
            if gain > 1e-9:
                positive |= members
            elif gain < -1e-9:
                doomed |= reach[:, members].any(axis=1)
            else:
                oscillating = True
        winning |= ~reach[:, earning].any(axis=1)
        values = np.zeros(n)
        values[doomed] = -np.inf
        transient = ~settled & ~doomed
        if transient.any():
            sub = chain[np.ix_(transient, transient)]
            values[transient] = np.linalg.solve(np.eye(len(sub)) - sub, reward[transient])
        best = np.maximum(best, values)
    return SimpleNamespace(values=best, positive=positive, winning=winning, oscillating=oscillating)


def assert_solution(mdp: MDP, rewards: np.ndarray, discount: float, solution, expected):
    """V* equal to `expected` (to ATOL, infinities exactly), Q* = R + discount P V*, and the
    optimal choices of every finite state exactly those whose Q* is within ATOL of V*."""
    states = mdp.choice_states()
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    assert np.array_equal(np.isposinf(solution.values), np.isposinf(expected))
    assert np.array_equal(np.isneginf(solution.values), np.isneginf(expected))
    np.testing.assert_allclose(solution.values[finite], expected[finite], rtol=0, atol=ATOL)
    q = rewards + discount * (mdp.transitions @ expected)
    check = finite[states]
    np.testing.assert_allclose(solution.q_values[check], q[check], rtol=0, atol=ATOL)
    expected_optimal = q >= expected[states] - ATOL
    assert np.array_equal(solution.optimal[check], expected_optimal[check]), (
        np.flatnonzero(solution.optimal != expected_optimal),
        solution.q_values,
        expected,
    )
    assert (solution.policy >= mdp.row_groups[:-1]).all()
    assert (solution.policy < mdp.row_groups[1:]).all()
    assert solution.optimal[solution.policy].all()


# --- 1, 2: against the LP, random MDPs and random mazes -----------------------------------------


@FAST
@given(random_mdps(), st.sampled_from(DISCOUNTS))
def test_discounted_values_equal_the_lp(case, discount):
    mdp, rewards = case
    solution = solve(mdp, rewards, discount)
    assert not solution.unbounded
    assert_solution(mdp, rewards, discount, solution, lp_values(mdp, rewards, discount))


@FAST
@given(random_mdps(proper=True))
def test_total_reward_of_absorbed_policies_equals_the_lp(case):
    """Every policy is absorbed: V* is the LP's with V(absorbing) >= 0 (pinned at 0)."""
    mdp, rewards = case
    solution = solve(mdp, rewards, 1.0)
    assert not solution.unbounded
    expected = lp_values(mdp, rewards, 1.0, rest=absorbing_states(mdp))
    assert_solution(mdp, rewards, 1.0, solution, expected)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(random_mdps(max_states=5, rewards=(*REWARDS, 0.0, 0.0)))  # more zero loops
def test_total_reward_equals_brute_force_and_the_lp(case):
    """Discount 1 with zero-reward end components, negative loops and positive loops: V* is
    the best deterministic memoryless policy (+inf wherever a positive loop can be reached);
    where finite, it is also the LP's with V >= 0 on the states of zero-reward end
    components (found by brute force over state subsets). Left out: loops of mean 0 with
    nonzero rewards (no total reward)."""
    mdp, rewards = case
    reference = brute_total(mdp, rewards)
    assume(not reference.oscillating)
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded == reference.positive.any()
    event("unbounded" if solution.unbounded else f"{int((~reference.winning).sum())} at -inf")
    if solution.unbounded:
        # +inf on exactly the states that reach the loop found (NaN, "not computed",
        # elsewhere), all of which can reach some positive loop.
        reach = closure(edges_of(mdp))
        expected_inf = reach[:, reference.positive].any(axis=1)
        found = reach[:, solution.positive_loop].any(axis=1)
        assert np.array_equal(np.isposinf(solution.values), found)
        assert (found <= expected_inf).all()
        assert not (solution.positive_loop & ~reference.positive).any()
        return
    assert np.array_equal(np.isfinite(reference.values), reference.winning)
    assert_solution(mdp, rewards, 1.0, solution, reference.values)
    components, _ = brute_end_components(mdp, rewards == 0.0)
    rest = np.zeros(mdp.n_states, dtype=bool)
    for component in components:
        rest[list(component)] = True
    event(f"{int((rest & ~absorbing_states(mdp)).sum())} non-absorbing rest states")
    expected = lp_values(mdp, rewards, 1.0, rest, reference.values)
    assert_solution(mdp, rewards, 1.0, solution, expected)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(random_mdps(max_states=5, rewards=(0.0, 0.0, 0.5, 1.0)))
def test_nonnegative_total_reward_by_storm_equals_brute_force_and_the_lp(case):
    """Non-negative rewards at discount 1 go to Storm's sound engine (policy iteration where
    its bounds are too wide to certify): against the brute force over deterministic
    policies and the LP (with V >= 0 on the zero-reward end components), and the optimal
    action sets they imply; a positive loop is unbounded."""
    mdp, rewards = case
    reference = brute_total(mdp, rewards)
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded == reference.positive.any()
    if solution.unbounded:
        return
    if not solution.method.startswith("Storm's sound engine") and mdp.n_choices != mdp.n_states:
        # the documented fall-back to policy iteration: Storm's bounds too wide to certify
        # (its lower bound can stay at 0 on a tiny model whose values it gets right)
        _, lower, upper = storm.total_values(storm.to_storm(mdp), rewards)
        assert (upper - lower).max() > 1e-9, solution.method
    assert_solution(mdp, rewards, 1.0, solution, reference.values)
    components, _ = brute_end_components(mdp, rewards == 0.0)
    rest = np.zeros(mdp.n_states, dtype=bool)
    for component in components:
        rest[list(component)] = True
    assert_solution(mdp, rewards, 1.0, solution, lp_values(mdp, rewards, 1.0, rest))


def edges_of(mdp: MDP) -> np.ndarray:
    """bool [n_states, n_states]: s -> s' where some choice of s can reach s'."""
    edges = np.zeros((mdp.n_states,) * 2, dtype=bool)
    coo = mdp.transitions.tocoo()
    edges[mdp.choice_states()[coo.row], coo.col] = True
    return edges


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(5, 5), (5, 7), (7, 5), (7, 7)]),
    st.integers(0, 10_000),
    st.sampled_from([0.0, 0.1, 0.3]),
    st.integers(0, 1),
    st.integers(0, 1),
)
def test_random_maze_total_reward_equals_the_lp(size, seed, slip, lava, keys):
    """step -0.01, +1 on arriving at the exit, -1 in lava, discount 1: every state can reach
    the exit, wall bumps are negative loops, the only rest states are the terminal ones."""
    try:
        maze = random_maze(*size, seed, lava=lava, keys=keys, slip=slip)
    except ValueError:  # too small for the lava or the key
        assume(False)
    mdp = compile_maze(maze)
    reward = Reward("r", "test", step=-0.01, arrive={"exit": 1.0, "lava": -1.0})
    rewards = reward_vector(mdp, reward).values
    solution = solve(mdp, rewards, 1.0)
    assert not solution.unbounded
    expected = lp_values(mdp, rewards, 1.0, rest=absorbing_states(mdp))
    assert np.isfinite(solution.values).all()
    assert_solution(mdp, rewards, 1.0, solution, expected)


@pytest.mark.parametrize(
    "maze",
    [
        open_room(12, 12, slip=0.3),
        random_maze(15, 15, 3, lava=2, keys=2, objects=3, slip=0.2),
    ],
    ids=lambda maze: maze.name,
)
@pytest.mark.parametrize(
    "reward",
    [
        Reward("cost", "test", step=-0.01, arrive={"exit": 1.0, "lava": -1.0}),
        Reward("red", "test", discount=0.999, arrive={"red": 1.0, "exit": 1.0}),
    ],
    ids=lambda reward: reward.name,
)
def test_larger_mazes_equal_the_lp(maze, reward):
    """100 and 280 states, slippery, with keys and doors: the same agreement at scale
    (values up to ~1000 with discount 0.999)."""
    mdp = compile_maze(maze)
    rewards = reward_vector(mdp, reward).values
    solution = solve(mdp, rewards, reward.discount)
    rest = absorbing_states(mdp) if reward.discount == 1.0 else None
    expected = lp_values(mdp, rewards, reward.discount, rest)
    assert_solution(mdp, rewards, reward.discount, solution, expected)


# --- 3: hand-computed cases --------------------------------------------------------------------


def state_at(mdp: MDP, row: int, col: int) -> int:
    where = np.flatnonzero((mdp.valuations[:, 0] == row) & (mdp.valuations[:, 1] == col))
    assert len(where) == 1
    return int(where[0])


def actions_of(mdp: MDP, state: int, chosen: np.ndarray) -> set[str]:
    first, last = mdp.row_groups[state], mdp.row_groups[state + 1]
    return {mdp.actions[mdp.choice_actions[c]] for c in range(first, last) if chosen[c]}


def maze_reward(mdp: MDP, **kwargs) -> np.ndarray:
    return reward_vector(mdp, Reward("r", "test", **kwargs)).values


def test_corridor_with_step_cost(compile_text):
    """#S..A#, step -0.1, +1 on arriving at the exit, discount 1. From S three steps right:
    V*(S) = 3 * -0.1 + 1 = 0.7, then 0.8 and 0.9 on the way; the exit is worth 0. Only
    `right` is optimal: a bump costs 0.1 and leaves the agent where it was (Q = V - 0.1),
    `left` from a middle cell loses 0.2."""
    mdp = compile_text("#S..A#", EXIT)
    rewards = maze_reward(mdp, step=-0.1, arrive={"exit": 1.0})
    solution = solve(mdp, rewards, 1.0)
    cells = [state_at(mdp, 0, c) for c in (1, 2, 3, 4)]
    np.testing.assert_allclose(solution.values[cells], [0.7, 0.8, 0.9, 0.0], atol=1e-12)
    for state in cells[:3]:
        assert actions_of(mdp, state, solution.optimal) == {"right"}
    assert solution.gap == pytest.approx(0.1)
    assert_solution(
        mdp, rewards, 1.0, solution, lp_values(mdp, rewards, 1.0, absorbing_states(mdp))
    )


def test_slippery_corridor_solves_a_linear_equation(compile_text):
    """#S.A#, slip 0.2, step -0.1, exit +1, discount 1. Pushing `right` advances with 0.8 and
    otherwise slips into a wall and stays. Next to the exit (M):
        V(M) = -0.1 + 0.8 * 1 + 0.2 V(M)          => V(M) = 0.7 / 0.8 = 0.875
    and from S:
        V(S) = -0.1 + 0.8 V(M) + 0.2 V(S)         => V(S) = V(M) - 0.1 / 0.8 = 0.75.
    `up` at S: stays with 0.8 + 0.1 (slip left into the wall), moves right with 0.1:
        Q = -0.1 + 0.9 * 0.75 + 0.1 * 0.875 = 0.6625 < 0.75."""
    mdp = compile_text("#S.A#", EXIT, slip=0.2)
    rewards = maze_reward(mdp, step=-0.1, arrive={"exit": 1.0})
    solution = solve(mdp, rewards, 1.0)
    start, middle = state_at(mdp, 0, 1), state_at(mdp, 0, 2)
    assert solution.values[start] == pytest.approx(0.75, abs=1e-12)
    assert solution.values[middle] == pytest.approx(0.875, abs=1e-12)
    up = mdp.row_groups[start] + mdp.actions.index("up")
    assert solution.q_values[up] == pytest.approx(0.6625, abs=1e-12)
    assert actions_of(mdp, start, solution.optimal) == {"right"}
    assert actions_of(mdp, middle, solution.optimal) == {"right"}


def test_two_equally_good_goals_make_both_first_actions_optimal(compile_text):
    """#A.S.A#, step -0.1, exit +1, discount 1: both exits two steps away, V*(S) =
    -0.1 + -0.1 + 1 = 0.8 and both `left` and `right` are optimal there (a tie); next to
    each exit (V* = 0.9) only the move into it is."""
    mdp = compile_text("#A.S.A#", EXIT)
    rewards = maze_reward(mdp, step=-0.1, arrive={"exit": 1.0})
    solution = solve(mdp, rewards, 1.0)
    start = state_at(mdp, 0, 3)
    assert solution.values[start] == pytest.approx(0.8, abs=1e-12)
    assert actions_of(mdp, start, solution.optimal) == {"left", "right"}
    assert solution.values[state_at(mdp, 0, 2)] == pytest.approx(0.9, abs=1e-12)
    assert actions_of(mdp, state_at(mdp, 0, 2), solution.optimal) == {"left"}
    assert actions_of(mdp, state_at(mdp, 0, 4), solution.optimal) == {"right"}


def test_positive_reward_loop_is_unbounded(compile_text):
    """#SRA#, +1 for arriving on the red object R (non-terminal), step 0, discount 1: at R,
    bumping into the wall above arrives on R again, +1 for ever: no finite optimum."""
    mdp = compile_text("#SRA#", EXIT + RED)
    rewards = maze_reward(mdp, arrive={"red": 1.0})
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded
    assert (solution.values[mdp.initial_states] == np.inf).all()
    assert solution.positive_loop[state_at(mdp, 0, 2)]
    assert not solution.positive_loop[state_at(mdp, 0, 3)]  # the exit


def test_states_that_loop_for_ever_with_negative_reward_are_minus_infinity():
    """State 0 can pay 1 to be absorbed in 3 (V*(0) = -1) or go to 1 at no cost. From 1 and
    2 every policy circles among {1, 2} for ever at -0.5 or -1 a step: V* = -inf. State 4
    falls into that loop with probability 1/2 whatever it does: V*(4) = -inf as well. So the
    only optimal choice of 0 is the one into 3."""
    mdp, rewards = build(
        [
            [({3: 1.0}, -1.0), ({1: 1.0}, 0.0)],
            [({2: 1.0}, -0.5), ({1: 1.0}, -1.0)],
            [({1: 1.0}, -0.5)],
            [({3: 1.0}, 0.0)],
            [({3: 0.5, 1: 0.5}, 0.0)],
        ],
        initial=(0, 4),
    )
    solution = solve(mdp, rewards, 1.0)
    assert not solution.unbounded
    assert solution.values.tolist() == [-1.0, -np.inf, -np.inf, 0.0, -np.inf]
    assert solution.optimal[:2].tolist() == [True, False]
    assert solution.policy[0] == 0
    reference = brute_total(mdp, rewards)
    assert reference.values.tolist() == solution.values.tolist()
    assert not reference.positive.any()


def test_minus_infinity_values_raise_no_numpy_warnings():
    """State 0 loops for ever at -1 a step (V* = -inf); 1 is absorbing (V* = 0). `verify
    reward` on such a model would print 'RuntimeWarning: invalid value encountered in
    subtract' (solve.py, the residual and the gaps)."""
    mdp, rewards = build([[({0: 1.0}, -1.0)], [({1: 1.0}, 0.0)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solution = solve(mdp, rewards, 1.0)
    assert solution.values.tolist() == [-np.inf, 0.0]


def test_idle_loop_ties_are_optimal_actions(compile_text):
    """#S.A#, step 0, exit +1, discount 1: any policy that eventually enters the exit earns
    1, so V* = 1 in both non-terminal states, and every action (including the bumps that
    idle in place, Q = 0 + V* = 1) attains it. Idling for ever earns 0, but excluding such
    policies is the verdict layer's job (end components), not the solver's."""
    mdp = compile_text("#S.A#", EXIT)
    rewards = maze_reward(mdp, arrive={"exit": 1.0})
    solution = solve(mdp, rewards, 1.0)
    start, middle, exit_ = state_at(mdp, 0, 1), state_at(mdp, 0, 2), state_at(mdp, 0, 3)
    assert solution.values[[start, middle, exit_]].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert actions_of(mdp, start, solution.optimal) == {"up", "down", "left", "right"}
    assert actions_of(mdp, middle, solution.optimal) == {"up", "down", "left", "right"}
    assert solution.q_values[solution.policy[start]] == pytest.approx(1.0)


def test_discounted_reward_hacking_on_a_red_cell(compile_text):
    """#SRA#, +1 for arriving on red, discount 0.9, step 0. At R bumping into a wall
    arrives on R again: V*(R) = 1 + 0.9 V*(R) = 1 / (1 - 0.9) = 10. From S, `right` earns
    1 on arrival: V*(S) = 1 + 0.9 * 10 = 10. `left` from R earns 0 then 0.9 * 10 = 9, and
    going into the exit 0: only the bumps (up, down) are optimal at R."""
    mdp = compile_text("#SRA#", EXIT + RED)
    rewards = maze_reward(mdp, arrive={"red": 1.0})
    solution = solve(mdp, rewards, 0.9)
    start, red = state_at(mdp, 0, 1), state_at(mdp, 0, 2)
    assert solution.values[red] == pytest.approx(10.0, abs=1e-9)
    assert solution.values[start] == pytest.approx(10.0, abs=1e-9)
    assert actions_of(mdp, red, solution.optimal) == {"up", "down"}
    assert actions_of(mdp, start, solution.optimal) == {"right"}
    assert solution.q_values[mdp.row_groups[red] + mdp.actions.index("left")] == pytest.approx(9.0)
    assert not solution.unbounded
    assert_solution(mdp, rewards, 0.9, solution, lp_values(mdp, rewards, 0.9))


def test_zero_reward_loop_with_a_costly_way_out_is_worth_zero():
    """State 0 can idle at reward 0 (self-loop) or pay 1 to be absorbed: idling for ever is
    a legitimate policy worth 0 > -1, so V*(0) = 0 with only the self-loop optimal. State 1
    must pay 0.5 to enter 0: V*(1) = -0.5. (Without V >= 0 on the idle state the LP would
    answer -1: it needs the rest constraint.)"""
    mdp, rewards = build(
        [[({0: 1.0}, 0.0), ({2: 1.0}, -1.0)], [({0: 1.0}, -0.5)], [({2: 1.0}, 0.0)]],
        initial=(1,),
    )
    solution = solve(mdp, rewards, 1.0)
    assert solution.values.tolist() == [0.0, -0.5, 0.0]
    assert solution.optimal.tolist() == [True, False, True, True]
    rest = np.array([True, False, True])
    assert_solution(mdp, rewards, 1.0, solution, lp_values(mdp, rewards, 1.0, rest))


def test_positive_loop_is_the_loop_not_the_states_that_reach_it():
    """State 0 can idle at reward 0 (self-loop) or move to 1, whose self-loop pays +1 for
    ever: V* = +inf in both. The loop with positive mean reward is {1}; 0 only reaches it."""
    mdp, rewards = build([[({0: 1.0}, 0.0), ({1: 1.0}, 0.0)], [({1: 1.0}, 1.0)]])
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded
    assert solution.values.tolist() == [np.inf, np.inf]
    assert solution.positive_loop.tolist() == [False, True]


def test_positive_loop_that_cannot_reach_a_rest_state_is_unbounded():
    """State 0 (initial) may be absorbed in 2 at reward 0, or move to 1 at reward 0. In 1,
    choice 0 is a self-loop paying -1, choice 1 a self-loop paying +1: staying in 1 with
    choice 1 earns +1 for ever, so V*(1) = V*(0) = +inf (unbounded). Nothing leads back
    from 1 to a rest state, so 1 lies outside the region where policy iteration improves."""
    mdp, rewards = build(
        [
            [({2: 1.0}, 0.0), ({1: 1.0}, 0.0)],
            [({1: 1.0}, -1.0), ({1: 1.0}, 1.0)],
            [({2: 1.0}, 0.0)],
        ]
    )
    reference = brute_total(mdp, rewards)
    assert reference.positive.tolist() == [False, True, False]
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded
    assert solution.values[:2].tolist() == [np.inf, np.inf]


def test_maze_without_exit_with_a_red_reward_loop_is_unbounded(compile_text):
    """No exit, so no terminal state; step -0.01 makes every choice's reward nonzero, so
    there is no rest state at all. At R (row 1, col 2) bumping `down` into the wall arrives
    on R again: -0.01 + 1 = 0.99 a step for ever, V* = +inf everywhere (every cell reaches
    R). The solver's first choice everywhere is `up`, whose loops are wall bumps at -0.01,
    and it answers V* = -inf everywhere, not unbounded."""
    mdp = compile_text(
        """
        #####
        #S..#
        #.R.#
        #####
        """,
        RED,
    )
    rewards = maze_reward(mdp, step=-0.01, arrive={"red": 1.0})
    down = mdp.row_groups[state_at(mdp, 1, 2)] + mdp.actions.index("down")
    assert rewards[down] == pytest.approx(0.99)
    solution = solve(mdp, rewards, 1.0)
    assert solution.unbounded
    assert (solution.values == np.inf).all()


# --- 4: Storm's total reward, where it is defined ------------------------------------------------


def storm_total(mdp: MDP, rewards: np.ndarray, direction: str) -> np.ndarray:
    model = storm.to_storm(dataclasses.replace(mdp, rewards={"r": rewards}))
    prop = storm.parse_properties(f'R{{"r"}}{direction}=? [ C ]')[0]
    return storm.check(model, prop).values


@FAST
@given(random_mdps(rewards=(0.0, 0.5, 1.0), proper=True))
def test_nonnegative_total_reward_equals_storm_rmax(case):
    """Rewards >= 0, every policy absorbed in a zero-reward self-loop: Storm's
    R{"r"}max=? [ C ] is V* at the initial states."""
    mdp, rewards = case
    assert (rewards >= 0).all()
    solution = solve(mdp, rewards, 1.0)
    expected = storm_total(mdp, rewards, "max")
    np.testing.assert_allclose(solution.values[mdp.initial_states], expected, rtol=1e-6, atol=1e-6)


@FAST
@given(random_mdps(rewards=(-1.0, -0.5, 0.0), proper=True))
def test_nonpositive_total_reward_equals_minus_storm_rmin(case):
    """Rewards <= 0, every policy absorbed: -R{"r"}min=? [ C ] of the negated (nonnegative)
    reward is V* at the initial states."""
    mdp, rewards = case
    solution = solve(mdp, rewards, 1.0)
    expected = -storm_total(mdp, -rewards, "min")
    np.testing.assert_allclose(solution.values[mdp.initial_states], expected, rtol=1e-6, atol=1e-6)


# --- 5: end components ---------------------------------------------------------------------------


def two_components() -> MDP:
    """0 transient (to 1, or split between 3 and 4); {1, 2} an end component (1 -> 2,
    2 -> 1; 1 may leave to 4, 2 may leave half the time to 3); 3 absorbing; 4 has a
    self-loop (choice 7) and a move to 3 (choice 8). Choices 0..8 in that order."""
    return build(
        [
            [({1: 1.0}, 0.0), ({3: 0.5, 4: 0.5}, 0.0)],
            [({2: 1.0}, 0.0), ({4: 1.0}, 0.0)],
            [({1: 1.0}, 0.0), ({1: 0.5, 3: 0.5}, 0.0)],
            [({3: 1.0}, 0.0)],
            [({4: 1.0}, 0.0), ({3: 1.0}, 0.0)],
        ]
    )[0]


def test_end_components_of_a_hand_built_mdp():
    mdp = two_components()
    component, inside = end_components(mdp, np.ones(mdp.n_choices, dtype=bool))
    assert component[0] == -1
    assert partition(component) == [{1, 2}, {3}, {4}]
    assert np.flatnonzero(inside).tolist() == [2, 4, 6, 7]


def test_without_its_self_loop_a_state_is_in_no_end_component():
    mdp = two_components()
    allowed = np.ones(mdp.n_choices, dtype=bool)
    allowed[7] = False
    component, inside = end_components(mdp, allowed)
    assert component[[0, 4]].tolist() == [-1, -1]
    assert partition(component) == [{1, 2}, {3}]
    assert np.flatnonzero(inside).tolist() == [2, 4, 6]


def test_without_its_way_back_a_cycle_is_no_end_component():
    """Dropping 2 -> 1 (choice 4) leaves 2 only a choice that can leave to 3: 2 is in no
    component, and then neither is 1. Absorbing 3 and the self-loop of 4 remain."""
    mdp = two_components()
    allowed = np.ones(mdp.n_choices, dtype=bool)
    allowed[4] = False
    component, inside = end_components(mdp, allowed)
    assert component[[0, 1, 2]].tolist() == [-1, -1, -1]
    assert partition(component) == [{3}, {4}]
    assert np.flatnonzero(inside).tolist() == [6, 7]


@settings(deadline=None, max_examples=60)
@given(random_mdps(max_states=7), st.data())
def test_end_components_equal_brute_force_over_state_subsets(case, data):
    mdp, _ = case
    allowed = np.array(
        data.draw(st.lists(st.booleans(), min_size=mdp.n_choices, max_size=mdp.n_choices))
    )
    components, inside = brute_end_components(mdp, allowed)
    component, solver_inside = end_components(mdp, allowed)
    assert partition(component) == components
    assert np.array_equal(solver_inside, inside)
    assert component.dtype == np.int64
    if components:
        assert sorted(set(component.tolist()) - {-1}) == list(range(len(components)))


@pytest.mark.parametrize("side", [5, 20, 60])
@pytest.mark.parametrize("route", ["storm", "policy iteration"])
def test_arrival_only_reward_in_slippery_rooms_converges_to_storms_value(side, route, monkeypatch):
    """+1 on arriving at the exit and nothing per step: every proper policy is optimal, and
    policy iteration used to cycle here (5x5 and 20x20 rooms) from an ill-conditioned start
    that pushed into walls. Storm's Rmax [ C ] is the independent value: 1 everywhere. A
    non-negative reward goes to Storm's sound engine; policy iteration, which answers where
    Storm's bounds are too wide, is run too and must take one iteration."""
    import verifier.engine.optimum

    if route != "storm":
        monkeypatch.setattr(verifier.engine.optimum, "_storm_total", lambda *args: None)
    mdp = compile_maze(open_room(side + 2, side + 2, slip=0.1))
    rewards = reward_vector(mdp, Reward("exit", "test", arrive={"exit": 1.0})).values
    solution = solve(mdp, rewards, 1.0)
    expected = storm_total(mdp, rewards, "max")
    np.testing.assert_allclose(solution.values[mdp.initial_states], expected, atol=1e-9)
    away = ~mdp.label("exit")  # the exit is reached surely from everywhere else
    np.testing.assert_allclose(solution.values[away], 1.0, rtol=0, atol=1e-9)
    assert solution.iterations == (0 if route == "storm" else 1)
