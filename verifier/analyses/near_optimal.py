"""Nearly-optimal policies: the least and greatest probability of φ over every policy whose
return is within ε of the optimum, the margin of a reward and its trade-off curve.

An occupancy-measure linear program (Puterman 1994, §7.2; Altman 1999, constrained MDPs),
solved by HiGHS. φ = `left U target` is decided at the first state outside U = left & !target;
what a policy does after that cannot change φ, and the most it can then earn is V*. So from
an initial state s0 a policy is described, up to that moment, by

    y(s, a) >= 0   the expected number of times it takes choice a in a state s of U
    z(s)    >= 0   the probability that it stays forever, from s on, in an end component of
                   zero-reward choices inside U (it idles: φ is lost, the return from s is 0)

under flow conservation  Σ_a y(s, a) + z(s) = [s = s0] + Σ_(s', a') y(s', a') P(s | s', a').
Writing R(s, a) = V*(s) - gap(s, a) - Σ_s' P(s' | s, a) V*(s') (gap = V* - Q* >= 0) and
summing along the flow, its return falls short of the optimum by exactly

    V*(s0) - V^π(s0) = Σ y(s, a) gap(s, a) + Σ z(s) V*(s)          (the shortfall)

and P(φ) = [s0 in target] + Σ y(s, a) P(target | s, a): both linear. Every policy, randomised
and history-dependent, whose total reward converges has such a (y, z); every feasible (y, z)
is attained by the stationary randomised policy choosing a with probability proportional to
y(s, a) and idling with probability proportional to z(s) (Kallenberg 1983; Etessami et al.
2008 for end components). A feasible point may add a circulation on an end component, which
never raises the return of a bounded model (no loop earns positive mean reward) nor changes
P(φ). So the extremes of P(φ) over the ε-optimal policies are two linear programs. Policies
that take nonzero rewards forever without being absorbed have no finite total reward and are
not ε-optimal; idling forever where V* > 0 costs V*, the idler rule of the exact verdict.

Several initial states: a history-dependent policy may act independently from each, so the
ε-optimal set is the product of one set per initial state; one program per initial state, and
φ must hold from all of them.

The margin is the least shortfall of a policy that violates φ (for a lower bound θ on P:
min { shortfall : P(φ) <= θ }); below it every policy satisfies φ. The worst probability
as a function of the budget, worst(E) = min { P(φ) : shortfall <= E }, is convex, piecewise
linear and non-increasing (the value of a linear program in its right-hand side); its
breakpoints are the vertices of the lower boundary of the polygon of (shortfall, P(φ)) over
all policies, found exactly by non-inferior set estimation (Cohon 1978): the two ends, then
for each segment the program in the direction normal to it: a point below the segment is a
new vertex, none proves the segment an edge.

A safety objective G ψ is the complement of a reach objective: P(G ψ) = 1 - P(true U !ψ),
so its programs are those of F !ψ with the direction and the bound turned around (a policy
that idles forever inside ψ satisfies G ψ, and reaches no !ψ state).

A reward-valued φ plugs in by replacing `win` (P(target | s, a) per choice, decided states
absorbing) with the performance reward per choice on U = every state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from verifier.engine.optimum import Solution
from verifier.errors import InputError, LinearProgramError
from verifier.graph import end_components, reachable
from verifier.mdp import MDP
from verifier.spec.objective import OBJECTIVE_TOLERANCE, PATH, UNTIL, Objective
from verifier.spec.reward_file import RewardVector

# HiGHS' primal and dual feasibility tolerance: tighter than φ's tolerance, so that an LP's
# rounding cannot decide whether a policy meets φ.
LP_TOLERANCE = 1e-10
_OPTIONS = {"primal_feasibility_tolerance": LP_TOLERANCE, "dual_feasibility_tolerance": 1e-10}


# Without --epsilon the margin is computed up to this many states: its LP took 3.5 s at 10^4
# states and 21 s at 10^5 (benchmarks/results/epsilon_scaling.md); --epsilon always does.
MARGIN_STATES = 20_000


@dataclass(frozen=True, slots=True, eq=False)
class NearOptimal:
    """φ over the ε-optimal policies, per initial state, with the margin and trade-off.

    worst, best  float64 [k]: the worse and the better P(φ) over ε-optimal policies (for a
                 maximised φ, the least and the greatest) at each initial state; empty
                 when ε was not given
    margin       the largest ε at which every ε-optimal policy satisfies φ (a supremum for a
                 strict bound; inf when every policy satisfies φ)
    tradeoff     (ε, worst P(φ) over the initial states) at the breakpoints, or None
    witness      an ε-optimal randomised policy attaining the worst, where φ fails, or None
    """

    epsilon: float
    worst: np.ndarray
    best: np.ndarray
    margin: float
    tradeoff: list[tuple[float, float]] | None
    witness: dict | None
    method: str


@dataclass(frozen=True, slots=True, eq=False)
class _Program:
    """The occupancy LP of one model: columns are the y of each choice of a U state (those
    reaching a state of V* = -inf left out), then the z of each idling state.

    flow      csr [n_undecided, n_columns]: flow conservation, right-hand side e_s0
    shortfall float64 [n_columns]
    win       float64 [n_columns]: P(target | column)
    may_win, may_lose  bool [n_states]: U states from which some policy of finite return
              reaches the target, resp. loses φ (a decided non-target state, or idling)
    """

    flow: sp.csr_matrix
    shortfall: np.ndarray
    win: np.ndarray
    row_of: np.ndarray  # int64 [n_states]: the flow row of a U state, -1 elsewhere
    choices: np.ndarray  # int64: the choice of each y column
    idlers: np.ndarray  # int64: the state of each z column
    may_win: np.ndarray
    may_lose: np.ndarray

    @property
    def size(self) -> int:
        return len(self.shortfall)


def unsupported(objective: Objective, reward: RewardVector) -> str | None:
    """Why nearly-optimal policies cannot be computed for this objective and reward, or None."""
    if objective.kind != UNTIL and _complement(objective) is None:
        return (
            f"{objective.text}: nearly-optimal policies are computed for reach-avoid "
            'objectives P [ left U target ] and P [ F target ] (such as Pmax=? [ !"lava" U '
            '"exit" ]) and safety objectives P [ G ψ ]; X, LTL and reward objectives are not '
            "supported yet"
        )
    if objective.steps is not None:
        return (
            f"{objective.text}: nearly-optimal policies are computed for unbounded F and U "
            "objectives; step bounds are not supported"
        )
    if reward.discount != 1.0:
        return (
            f"discount {reward.discount}: nearly-optimal policies are computed for the total "
            "reward (discount 1); a discounted return weighs time and P(φ) does not, so the "
            "extremes would need time-dependent policies"
        )
    return None


def near_optimal(
    mdp: MDP,
    reward: RewardVector,
    solution: Solution,
    objective: Objective,
    optimum: np.ndarray,
    epsilon: float | None = 0.0,
    margin: bool = True,
    tradeoff: bool = False,
) -> NearOptimal:
    """φ over every policy whose total reward is within `epsilon` of V* at every initial
    state (not computed when `epsilon` is None); `optimum` is the best P(φ) per initial
    state (unused for a bounded φ). The margin is computed when `margin` (else 0: the caller
    knows that φ fails already at ε = 0), the trade-off curve when `tradeoff`."""
    reason = unsupported(objective, reward)
    if reason:
        raise InputError("--epsilon", reason)
    if epsilon is not None and not 0.0 <= epsilon < np.inf:
        raise InputError("--epsilon", f"must be a finite number >= 0, got {epsilon}")
    reach = _complement(objective)
    if reach is not None:  # G ψ: the programs of F !ψ, P(G ψ) = 1 - P(F !ψ)
        found = near_optimal(mdp, reward, solution, reach, 1.0 - optimum, epsilon, margin, tradeoff)
        witness = found.witness
        if witness is not None:
            witness = {**witness, "probability": 1.0 - witness["probability"]}
        return replace(
            found,
            worst=1.0 - found.worst,
            best=1.0 - found.best,
            tradeoff=None if found.tradeoff is None else [(e, 1.0 - p) for e, p in found.tradeoff],
            witness=witness,
            method=f"{found.method}; P(G ψ) as 1 - P(F !ψ)",
        )
    program = _program(mdp, reward, solution, objective)
    sign = 1.0 if objective.maximize else -1.0
    worst, best, margins, curves, witness = [], [], [], [], None
    decided = 0
    for index, start in enumerate(mdp.initial_states.tolist()):
        here = optimum[index : index + 1]
        value = _constant_probability(program, start, objective)
        if value is not None:  # every policy of finite return has this P(φ)
            decided += 1
            if epsilon is not None:
                worst.append(value)
                best.append(value)
            margins.append(np.inf if objective.satisfied(np.array([value]), here)[0] else 0.0)
            curves.append([(0.0, value)])
            continue
        if margin:
            margins.append(_margin(program, start, sign, _violation_threshold(objective, here[0])))
        if tradeoff:
            curves.append(_curve(program, start, sign))
        if epsilon is None:
            continue
        low, low_x = _extreme(program, start, sign, epsilon)
        worst.append(low)
        best.append(_extreme(program, start, -sign, epsilon)[0])
        if witness is None and epsilon > 0 and not objective.satisfied(np.array([low]), here)[0]:
            witness = _policy_witness(mdp, program, start, low_x, low)
    return NearOptimal(
        epsilon=epsilon or 0.0,
        worst=np.array(worst),
        best=np.array(best),
        margin=float(min(margins)) if margin else 0.0,
        tradeoff=_envelope(curves, sign) if tradeoff else None,
        witness=witness,
        method=(
            f"occupancy-measure LP ({program.size} variables, {program.flow.shape[0]} flow "
            f"constraints) by HiGHS, feasibility tolerance {LP_TOLERANCE:.0e}"
            + (
                f"; from {decided} of {len(mdp.initial_states)} initial states every policy "
                "of finite return has the same P(φ) (graph analysis, no LP)"
                if decided
                else ""
            )
        ),
    )


def _complement(objective: Objective) -> Objective | None:
    """For a safety objective G ψ, the reach objective F !ψ whose probability is 1 - P(G ψ),
    with the direction and the bound turned around; None for every other objective."""
    if objective.kind != PATH or objective.forbidden is None:
        return None
    threshold = None if objective.threshold is None else 1.0 - objective.threshold
    return replace(
        objective,
        text=f"1 - ({objective.text})",
        left=np.ones(len(objective.forbidden), dtype=bool),
        target=objective.forbidden,
        maximize=not objective.maximize,
        threshold=threshold,
        kind=UNTIL,
        path=None,
    )


def _program(mdp: MDP, reward: RewardVector, solution: Solution, objective: Objective) -> _Program:
    left, target = objective.until_sets()
    undecided = left & ~target
    states = mdp.choice_states()
    values = solution.values
    doomed = np.isneginf(values)
    reaches_doom = np.asarray(mdp.transitions @ doomed.astype(np.float64)).ravel() > 0
    usable = undecided[states] & ~reaches_doom & ~doomed[states]
    choices = np.flatnonzero(usable)
    gap = np.where(solution.optimal, 0.0, values[states] - solution.q_values)
    gap = np.maximum(gap, 0.0)
    calm = np.zeros(mdp.n_choices, dtype=bool)
    calm[choices] = reward.values[choices] == 0.0
    idlers = np.flatnonzero(end_components(mdp, calm)[0] >= 0)
    idle_cost = np.where(values[idlers] <= solution.tolerance, 0.0, values[idlers])

    rows = np.flatnonzero(undecided)
    row_of = np.full(mdp.n_states, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    moves = mdp.transitions[choices][:, rows]  # [n_y, n_rows]: P(s' | choice), s' in U
    n_y, n_rows = len(choices), len(rows)
    leaving = sp.csr_matrix(
        (np.ones(n_y), (row_of[states[choices]], np.arange(n_y))), shape=(n_rows, n_y)
    )
    idling = sp.csr_matrix(
        (np.ones(len(idlers)), (row_of[idlers], np.arange(len(idlers)))),
        shape=(n_rows, len(idlers)),
    )
    flow = sp.hstack([leaving - moves.T, idling], format="csr")
    win = np.asarray(mdp.transitions[choices] @ target.astype(np.float64)).ravel()
    bad = (~undecided & ~target).astype(np.float64)
    lose = np.asarray(mdp.transitions[choices] @ bad).ravel() > 0
    edges = moves.tocoo()  # choice column -> U successor row
    tails, heads = rows[edges.col], states[choices][edges.row]  # reversed: successor -> state
    losing = np.zeros(mdp.n_states, dtype=bool)
    losing[states[choices][lose]] = True
    losing[idlers] = True
    winning = np.zeros(mdp.n_states, dtype=bool)
    winning[states[choices][win > 0]] = True
    return _Program(
        flow=flow,
        shortfall=np.concatenate([gap[choices], idle_cost]),
        win=np.concatenate([win, np.zeros(len(idlers))]),
        row_of=row_of,
        choices=choices,
        idlers=idlers,
        may_win=reachable(tails, heads, winning),
        may_lose=reachable(tails, heads, losing),
    )


def _constant_probability(program: _Program, start: int, objective: Objective) -> float | None:
    """P(φ) from `start` when it is the same for every policy of finite return: φ decided
    in `start`, or only one outcome reachable from it (then no LP is needed; proving an LP
    infeasible took HiGHS 100 s on a 10^4-state open room)."""
    if program.row_of[start] < 0:
        _, target = objective.until_sets()
        return float(target[start])
    if not program.may_lose[start]:
        return 1.0
    if not program.may_win[start]:
        return 0.0
    return None


def _solve(program: _Program, start: int, cost: np.ndarray, upper=None) -> np.ndarray | None:
    """argmin cost · x over the flows from `start`, with the extra rows `upper` (a list of
    (coefficients, bound): coefficients · x <= bound); None when infeasible."""
    b_eq = np.zeros(program.flow.shape[0])
    b_eq[program.row_of[start]] = 1.0
    a_ub = b_ub = None
    if upper:
        a_ub = np.vstack([row for row, _ in upper])
        b_ub = np.array([bound for _, bound in upper])
    result = linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=program.flow,
        b_eq=b_eq,
        bounds=(0, None),
        method="highs",
        options=_OPTIONS,
    )
    if result.status == 2:
        return None
    if result.status != 0:
        raise LinearProgramError(f"HiGHS: {result.message}")
    return result.x


def _feasible(program: _Program, start: int, cost: np.ndarray, upper=None) -> np.ndarray:
    """`_solve` for a program that has a solution (some policy meets its rows);
    LinearProgramError when HiGHS finds none."""
    x = _solve(program, start, cost, upper)
    if x is None:
        raise LinearProgramError(f"HiGHS found no policy from state {start} where one exists")
    return x


def _extreme(program: _Program, start: int, sign: float, budget: float) -> tuple[float, np.ndarray]:
    """The least (sign 1) or greatest (sign -1) P(φ) from `start` within the shortfall
    budget, and the occupancy attaining it."""
    x = _solve(program, start, sign * program.win, [(program.shortfall, budget)])
    if x is None:
        raise LinearProgramError(f"no policy within the budget {budget} from state {start}")
    return float(np.clip(program.win @ x, 0.0, 1.0)), x


def _violation_threshold(objective: Objective, optimum: float) -> float:
    """The P(φ) at and beyond which (below for a maximised φ) a policy violates φ."""
    if objective.threshold is not None:
        return objective.threshold
    return optimum - OBJECTIVE_TOLERANCE if objective.maximize else optimum + OBJECTIVE_TOLERANCE


def _margin(program: _Program, start: int, sign: float, threshold: float) -> float:
    """The least shortfall of a policy from `start` whose P(φ) is on the wrong side of
    `threshold` (inf when no policy is)."""
    x = _solve(program, start, program.shortfall, [(sign * program.win, sign * threshold)])
    if x is None:
        return np.inf
    return float(max(program.shortfall @ x, 0.0))


def _curve(program: _Program, start: int, sign: float) -> list[tuple[float, float]]:
    """The vertices (shortfall, worst P(φ)) of worst(E) from `start`, E from 0 to where it
    stops changing (non-inferior set estimation; each vertex one LP)."""
    first = _point(program, _feasible(program, start, sign * program.win, [(program.shortfall, 0)]))
    if first[1] == (0.0 if sign > 0 else 1.0):  # the worst already at E = 0: a flat curve
        return [first]
    lowest = sign * program.win @ _feasible(program, start, sign * program.win)
    scale = max(1.0, float(np.abs(program.shortfall).max(initial=0.0)))
    cheapest = _solve(program, start, program.shortfall, [(sign * program.win, lowest)])
    if cheapest is None:  # `lowest` itself is off by HiGHS' tolerance
        cheapest = _feasible(
            program, start, program.shortfall, [(sign * program.win, lowest + LP_TOLERANCE)]
        )
    last = _point(program, cheapest)
    tolerance = 1e-9 * scale
    vertices = [first]
    stack = [(first, last)]
    while stack:
        a, b = stack.pop()
        if b[0] - a[0] <= tolerance or sign * (a[1] - b[1]) <= LP_TOLERANCE:
            vertices.append(b)
            continue
        weight_shortfall, weight_win = sign * (a[1] - b[1]), b[0] - a[0]
        cost = weight_shortfall * program.shortfall + weight_win * sign * program.win
        c = _point(program, _feasible(program, start, cost))
        below = (weight_shortfall * a[0] + weight_win * sign * a[1]) - (
            weight_shortfall * c[0] + weight_win * sign * c[1]
        )
        if below <= 1e-9 * max(weight_shortfall, weight_win):
            vertices.append(b)
        else:
            stack.append((c, b))
            stack.append((a, c))
    vertices.sort()
    return _dedupe(vertices, sign)


def _point(program: _Program, x: np.ndarray) -> tuple[float, float]:
    return float(max(program.shortfall @ x, 0.0)), float(np.clip(program.win @ x, 0.0, 1.0))


def _dedupe(points: list[tuple[float, float]], sign: float) -> list[tuple[float, float]]:
    """Sorted points, the worse one where two share an ε, without points that lie on the
    segment between their neighbours."""
    pick = min if sign > 0 else max
    unique: list[tuple[float, float]] = []
    for e, p in sorted(points):
        if unique and e - unique[-1][0] <= 1e-12:
            unique[-1] = (unique[-1][0], pick(unique[-1][1], p))
        else:
            unique.append((e, p))
    kept = unique[:1]
    for i in range(1, len(unique) - 1):
        (e0, p0), (e1, p1), (e2, p2) = kept[-1], unique[i], unique[i + 1]
        if abs(p0 + (p2 - p0) * (e1 - e0) / (e2 - e0) - p1) > 1e-9:
            kept.append(unique[i])
    if len(unique) > 1:
        kept.append(unique[-1])
    while len(kept) > 1 and abs(kept[-1][1] - kept[-2][1]) <= 1e-12:
        kept.pop()  # the curve is flat from its last change on
    return kept


def _envelope(curves: list[list[tuple[float, float]]], sign: float) -> list[tuple[float, float]]:
    """The worst of several piecewise-linear curves (each flat after its last point), at
    their breakpoints and crossings."""
    if len(curves) == 1:
        return [(round(e, 10), round(p, 10)) for e, p in curves[0]]
    xs = sorted({e for curve in curves for e, _ in curve})
    pick = min if sign > 0 else max

    def at(curve, e):
        es = [p[0] for p in curve]
        return float(np.interp(e, es, [p[1] for p in curve]))

    points = [(xs[0], pick(at(c, xs[0]) for c in curves))]
    for a, b in zip(xs, xs[1:], strict=False):
        ends = [(at(c, a), at(c, b)) for c in curves]
        candidates = [b]
        for i in range(len(ends)):
            for j in range(i + 1, len(ends)):
                da = ends[i][0] - ends[j][0]
                db = ends[i][1] - ends[j][1]
                if da * db < 0:
                    candidates.append(a + (b - a) * da / (da - db))
        for e in sorted(candidates):
            points.append((e, pick(at(c, e) for c in curves)))
    return [(round(e, 10), round(p, 10)) for e, p in _dedupe(points, sign)]


def _policy_witness(mdp: MDP, program: _Program, start: int, x: np.ndarray, low: float) -> dict:
    """The worst ε-optimal policy as its action distribution in the states it visits (for
    models up to 200 states)."""
    witness = {"start": mdp.state_description(start), "probability": low}
    if mdp.n_states > 200:
        return witness
    n_y = len(program.choices)
    states = mdp.choice_states()[program.choices]
    visits = np.zeros(mdp.n_states)
    np.add.at(visits, states, x[:n_y])
    np.add.at(visits, program.idlers, x[n_y:])
    table: dict[str, dict[str, float]] = {}
    for column in np.flatnonzero(x > LP_TOLERANCE).tolist():
        if column < n_y:
            choice = program.choices[column]
            state = int(states[column])
            action = mdp.choice_actions[choice]
            name = mdp.actions[action] if action >= 0 else f"choice {choice}"
        else:
            state = int(program.idlers[column - n_y])
            name = "idle forever"
        share = round(float(x[column] / visits[state]), 9)
        table.setdefault(mdp.state_description(state), {})[name] = share
    witness["policy"] = table
    return witness
