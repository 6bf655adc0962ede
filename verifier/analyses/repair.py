"""Reward repair: weights over given reward features under which every optimal policy
satisfies φ on every environment, with a margin, or a proof that no such weights exist.

Features: one per label (+w on arriving in a state with the label) and the step cost, as in
a maze reward TOML. "With a margin" means an *action gap*: every policy that takes only
actions within `action_gap` of the best in each state (Q(s, a) >= V*(s) - action_gap)
satisfies φ, so every optimal policy does, and small changes of the weights or of the
optimiser do not break it. (Not the reward report's `margin`, which bounds the loss of
*return* at the initial states: README, "Nearly-optimal policies".) The weights are
scale-free (any positive multiple of a repair is one), so they are searched in [-1, 1]^k.

Two searches, both for objectives met with probability 1 (reach surely, avoiding what φ
forbids):

1. A linear program (scipy's HiGHS), for the natural behaviour: actions that make
   progress towards the target (`_progress`) may be optimal, every other action must lose
   by the margin in every state that can still win (`_lp_rows`). Variables: the weights,
   the margin and V per state. It scales to large models, but a repair that needs other
   behaviour is beyond it.
2. When it finds none, z3 over linear real arithmetic (`_encode`), complete:

       exists w in [-1, 1]^k, margin > 0 and per environment values V with
         V(s) = max_a Q(s, a)                         (Bellman optimality, discount 1)
         every policy of actions with Q(s, a) >= V(s) - margin satisfies φ with
         probability 1: the states such policies reach from the initial states are in
         left or target and carry a rank, 0 on target, such that each of those actions
         from a ranked state has a successor of smaller rank (no policy can avoid the
         target forever)
       where Q(s, a) = w . F(s, a) + sum_s' P(s' | s, a) V(s').

   V* satisfies these whenever weights with the margin exist, so `unsat` is a proof that
   none do; it takes up to MAX_STATES states in all.

Found weights are rounded for people and verified again by the exact reward check
(verifier.analyses.reward_verdict with exact=True) on every environment; only then is the status
`repaired`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from verifier.errors import InputError, ResourceLimit
from verifier.graph import absorbing_states, reachable
from verifier.inputs.environment import Environment
from verifier.spec.objective import OBJECTIVE_TOLERANCE, resolve_objective
from verifier.spec.reward_file import Reward, reward_vector
from verifier.verdicts import RewardVerdict

MAX_STATES = 2_000  # for z3's complete search; the linear program has no limit
STEP = "step"


@dataclass(frozen=True, slots=True, eq=False)
class Repair:
    """`weights` (feature -> float, `step` included) when found, else None with a proof."""

    features: tuple[str, ...]
    status: str  # "repaired" | "impossible" | "unknown"
    weights: dict | None
    action_gap: float | None
    verified: dict  # model -> reward verdict of the rounded weights (exact check)
    method: str
    seconds: float

    def toml(self) -> str:
        """The repaired reward as a maze reward TOML."""
        if self.weights is None:
            raise ValueError(f"a repair with status {self.status!r} has no weights to write")
        lines = ["# Repaired reward (verify audit): every optimal policy satisfies the objective"]
        lines.append("# on every audited environment; every other action loses by the action gap.")
        lines.append(f"step = {self.weights[STEP]!r}")
        lines.append("[arrive]")
        lines += [f"{label} = {self.weights[label]!r}" for label in self.features if label != STEP]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "status": self.status,
            "weights": self.weights,
            "action_gap": self.action_gap,
            "verified": self.verified,
            "method": self.method,
            "seconds": round(self.seconds, 6),
        }


def repair_reward(
    envs: list[Environment], labels: list[str], base: dict[str, float] | None = None
) -> Repair:
    """Search the span of `labels` + step cost for a reward whose optimal policies all
    satisfy each environment's objective (its first property), within a margin.

    First a linear program (HiGHS) for the natural behaviour: every action that makes
    progress towards the target (`_progress`) may be optimal, every other one must lose by
    the margin; it scales to large models but can miss repairs that want other behaviour.
    Then, when it finds none and the models are small enough, z3's complete search, which
    either finds weights or proves there are none. Either way two optimisations: the
    largest margin M (weights in [-1, 1]), then, with margin at least M / 10, the weights
    nearest (L1) to `base` (the user's reward scaled into the box), so the repair changes
    what it must. Found weights are rounded, reported in the scale of `base`, and verified
    by the exact reward check on every environment."""
    started = time.perf_counter()
    features = (*dict.fromkeys(labels), STEP)
    base = {name: float((base or {}).get(name, 0.0)) for name in features}
    scale = max(map(abs, base.values())) or 1.0
    target = np.array([base[name] / scale for name in features])
    goals = [_sure_objective(env) for env in envs]
    found: tuple[dict, float | Fraction] | None = _lp_repair(envs, goals, features, target)
    method = "linear program (HiGHS) for progress towards the target"
    if found is None:
        total = sum(env.mdp.n_states for env in envs)
        if total > MAX_STATES:
            return Repair(
                features,
                "unknown",
                None,
                None,
                {},
                f"{method}: no weights; the complete search (z3) takes up to {MAX_STATES:,} "
                f"states in all, these environments have {total:,}",
                time.perf_counter() - started,
            )
        found = _z3_repair(envs, goals, features, target)
        method = "z3 (linear real arithmetic, exact): values, ranks and weights solved together"
        if found is None:
            return Repair(features, "impossible", None, None, {}, method, _since(started))
    weights, margin = found
    rounded = {name: _round(Fraction(w) * Fraction(scale)) for name, w in weights.items()}
    verified = _verify(envs, rounded)
    aligned = all(v == RewardVerdict.ALIGNED for v in verified.values())
    status = "repaired" if aligned else "unknown"
    return Repair(
        features,
        status,
        rounded,
        float(margin * scale),
        verified,
        method + "; rounded weights verified by the exact reward check",
        _since(started),
    )


def _since(started: float) -> float:
    return time.perf_counter() - started


def _lp_repair(envs, goals, features, target) -> tuple[dict, float] | None:
    """The largest margin, then the nearest weights, by two linear programs; None if no
    weights make progress strictly optimal. Columns: weights, margin, then V per state."""
    from scipy.optimize import linprog

    k = len(features)
    upper, equal, offset = [], [], k + 1
    for env, (objective, winning) in zip(envs, goals, strict=True):
        progress, chosen, reached = _progress(env.mdp, objective, winning)
        contested = winning & ~objective.target
        up, eq, offset = _lp_rows(env, features, progress, chosen, reached, contested, offset)
        upper.append(up)
        equal.append(eq)
    for block in upper + equal:  # each environment's columns end at its own V
        block.resize((block.shape[0], offset))
    a_ub, a_eq = sp.vstack(upper).tocsr(), sp.vstack(equal).tocsr()
    bounds = [(-1, 1)] * k + [(0, 1)] + [(None, None)] * (offset - k - 1)
    widest = np.zeros(offset)
    widest[k] = -1.0
    first = linprog(widest, a_ub, np.zeros(a_ub.shape[0]), a_eq, np.zeros(a_eq.shape[0]),
                    bounds=bounds, method="highs")  # fmt: skip
    if first.status != 0 or -first.fun <= 1e-9:
        return None
    # Second: margin >= M / 10 and the least sum of gaps >= |w - target| (columns after V).
    floor = sp.csr_matrix(([-1.0], ([0], [k])), shape=(1, offset + k))
    above = sp.hstack([sp.identity(k), sp.csr_matrix((k, offset - k)), -sp.identity(k)])
    below = sp.hstack([-sp.identity(k), sp.csr_matrix((k, offset - k)), -sp.identity(k)])
    a_ub2 = sp.vstack([sp.hstack([a_ub, sp.csr_matrix((a_ub.shape[0], k))]), floor, above, below])
    b_ub2 = np.concatenate([np.zeros(a_ub.shape[0]), [first.fun / 10], target, -target])
    a_eq2 = sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], k))])
    cost = np.concatenate([np.zeros(offset), np.ones(k)])
    second = linprog(cost, a_ub2, b_ub2, a_eq2, np.zeros(a_eq.shape[0]),
                     bounds=bounds + [(0, None)] * k, method="highs")  # fmt: skip
    solution = second.x if second.status == 0 else first.x  # both verified exactly later
    return dict(zip(features, solution[:k].tolist(), strict=True)), float(solution[k])


def _lp_rows(env, features, progress, chosen, reached, contested, offset):
    """One environment's rows: V(s) >= Q(s, a) everywhere; V(s) = Q(s, chosen(s)) where
    progress reaches from the initial states (so V is the value of progress there); and
    Q(s, a) <= V(s) - margin for every action a without progress in every `contested`
    state (winning, not yet at the target).

    Why these suffice: along any loop that avoids the target some action lacks progress,
    so the margins telescope to a negative mean reward. Hence no policy earns anything by
    looping, V >= TV bounds V* from above, V = V* where progress reaches, and there every
    action without progress loses at least the margin against V*."""
    mdp = env.mdp
    k = len(features)
    absorbing = absorbing_states(mdp)
    column = np.full(mdp.n_states, -1)
    column[~absorbing] = offset + np.arange(int((~absorbing).sum()))
    states = mdp.choice_states()
    live = ~absorbing[states]
    features_ = sp.csr_matrix(feature_matrix(env, features))
    coo = mdp.transitions.tocoo()
    keep = column[coo.col] >= 0
    width = offset + int((~absorbing).sum())
    successors = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], column[coo.col[keep]])), shape=(mdp.n_choices, width)
    )
    own = sp.csr_matrix(
        (np.ones(int(live.sum())), (np.flatnonzero(live), column[states[live]])),
        shape=(mdp.n_choices, width),
    )
    q_minus_v = sp.hstack([features_, sp.csr_matrix((mdp.n_choices, width - k))]).tocsr()
    q_minus_v = q_minus_v + successors - own  # Q(s, a) - V(s), without the margin column
    must_lose = live & contested[states] & ~progress
    margin = sp.csr_matrix(
        (
            np.ones(int(must_lose.sum())),
            (np.arange(int(must_lose.sum())), np.full(int(must_lose.sum()), k)),
        ),
        shape=(int(must_lose.sum()), width),
    )
    upper = sp.vstack(
        [q_minus_v[np.flatnonzero(live)], q_minus_v[np.flatnonzero(must_lose)] + margin]
    ).tocsr()
    equal = q_minus_v[chosen[reached & ~absorbing]].tocsr()
    return upper, equal, width


def _progress(mdp, objective, winning) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actions that make progress towards the target, almost surely and never leaving
    `left`: from a state that wins surely (Pmax = 1), every successor wins surely and one has
    a smaller rank (the fewest such steps to the target). Any policy of such actions meets
    φ with probability 1. Also one chosen progress action per state (the least expected
    rank) and the states that progress reaches from the initial states.

    Returns (bool [n_choices], int64 [n_states] choice or -1, bool [n_states])."""
    from scipy.sparse.csgraph import shortest_path

    n, states = mdp.n_states, mdp.choice_states()
    coo = mdp.transitions.tocoo()
    inside = np.ones(mdp.n_choices, dtype=bool)
    np.logical_and.at(inside, coo.row, winning[coo.col])
    allowed = inside & winning[states] & ~objective.target[states]
    keep = allowed[coo.row]
    graph = sp.csr_matrix(
        (np.ones(int(keep.sum()) + int(objective.target.sum())),
         (np.concatenate([coo.col[keep], np.full(int(objective.target.sum()), n)]),
          np.concatenate([states[coo.row[keep]], np.flatnonzero(objective.target)]))),
        shape=(n + 1, n + 1),
    )  # fmt: skip
    rank = shortest_path(graph, unweighted=True, indices=n)[:n] - 1
    lower = np.full(mdp.n_choices, np.inf)
    np.minimum.at(lower, coo.row, rank[coo.col])
    progress = allowed & (lower < rank[states])
    expected = mdp.transitions @ np.where(np.isfinite(rank), rank, 0.0)
    score = np.where(progress, expected, np.inf)
    best = np.minimum.reduceat(score, mdp.row_groups[:-1])
    first = np.where(progress & (score == best[states]))[0]
    chosen = np.full(n, -1, dtype=np.int64)
    chosen[states[first[::-1]]] = first[::-1]  # the first such choice of each state
    edges = progress[coo.row]
    start = np.zeros(n, dtype=bool)
    start[mdp.initial_states] = True
    reached = reachable(states[coo.row[edges]], coo.col[edges], start)
    return progress, chosen, reached & (chosen >= 0)


def _z3_repair(envs, goals, features, target) -> tuple[dict, Fraction] | None:
    """z3's complete search (module docstring): the widest margin, then the nearest
    weights; None when unsatisfiable (a proof that no weights exist)."""
    import z3

    weights = [z3.Real(f"w_{name}") for name in features]
    margin = z3.Real("margin")
    constraints = [margin > 0, *(z3.And(w >= -1, w <= 1) for w in weights)]
    for index, (env, goal) in enumerate(zip(envs, goals, strict=True)):
        _encode(
            lambda *items: constraints.extend(items), env, goal, index, features, weights, margin
        )
    widest = z3.Optimize()
    widest.add(*constraints)
    widest.maximize(margin)
    answer = widest.check()
    if answer == z3.unsat:
        return None
    if answer != z3.sat:
        raise ResourceLimit(f"z3 gave up on the reward repair ({widest.reason_unknown()})")
    best = _fraction(widest.model().eval(margin))
    nearest = z3.Optimize()
    nearest.add(*constraints, margin >= z3.RealVal(str(best / 10)))
    gaps = [z3.Real(f"gap_{name}") for name in features]
    for gap, w, goal in zip(gaps, weights, target, strict=True):
        value = z3.RealVal(str(Fraction(float(goal)).limit_denominator(10**9)))
        nearest.add(gap >= w - value, gap >= value - w)
    nearest.minimize(z3.Sum(*gaps))
    model = nearest.model() if nearest.check() == z3.sat else widest.model()
    found = {
        name: _fraction(model.eval(w, model_completion=True))
        for name, w in zip(features, weights, strict=True)
    }
    return found, _fraction(model.eval(margin))


def _sure_objective(env: Environment):
    """φ as (Objective, states that meet it surely); InputError unless φ is an unbounded
    Pmax query met with probability 1 from the initial states, which both searches need."""
    mdp = env.mdp
    objective = resolve_objective(env, env.properties[0])
    if objective.steps is not None or objective.threshold is not None or not objective.maximize:
        raise InputError(
            env.objective_source,
            f"{objective.text}: reward repair takes a Pmax=? [ left U target ] objective",
        )
    optimum = env.model.until(*objective.until_sets(), True).values
    if (optimum[mdp.initial_states] < 1 - OBJECTIVE_TOLERANCE).any():
        raise InputError(
            str(env.path),
            f"{objective.text}: reward repair needs an objective met with probability 1 "
            f"(its optimum here is {optimum[mdp.initial_states].min():.6g})",
        )
    return objective, optimum >= 1 - OBJECTIVE_TOLERANCE


def feature_matrix(env: Environment, features: tuple[str, ...]) -> np.ndarray:
    """float64 [n_choices, k]: each feature's reward for each choice (arrival in a label,
    1 for the step), 0 in absorbing states as every reward is."""
    mdp = env.mdp
    columns = []
    for name in features:
        values = np.ones(mdp.n_choices) if name == STEP else mdp.transitions @ mdp.label(name)
        columns.append(values.astype(np.float64))
    matrix = np.column_stack(columns)
    matrix[np.repeat(absorbing_states(mdp), np.diff(mdp.row_groups))] = 0.0
    return matrix


def _encode(add, env: Environment, goal, index: int, features, weights, margin) -> None:
    """The constraints of one environment, handed to `add`."""
    import z3

    mdp = env.mdp
    objective, _ = goal
    F = feature_matrix(env, features)
    absorbing = absorbing_states(mdp)
    n = mdp.n_states
    V = [z3.RealVal(0) if absorbing[s] else z3.Real(f"V{index}_{s}") for s in range(n)]
    reach = [z3.Bool(f"r{index}_{s}") for s in range(n)]
    rank = [z3.Int(f"d{index}_{s}") for s in range(n)]
    matrix = mdp.transitions
    for s in range(n):
        add(rank[s] >= 0, rank[s] <= n)
        if objective.target[s]:
            add(rank[s] == 0)
        elif not objective.left[s] or absorbing[s]:
            add(z3.Not(reach[s]))  # reaching it violates φ
    for s in mdp.initial_states:
        add(reach[int(s)])
    for s in np.flatnonzero(~absorbing).tolist():
        choices = range(int(mdp.row_groups[s]), int(mdp.row_groups[s + 1]))
        rows = {c: matrix.getrow(c) for c in choices}
        q = {
            c: z3.Sum(
                *[_real(F[c, k]) * weights[k] for k in range(len(features)) if F[c, k] != 0],
                *[_real(p) * V[t] for t, p in zip(row.indices, row.data, strict=True)],
                z3.RealVal(0),
            )
            for c, row in rows.items()
        }
        add(*[V[s] >= q[c] for c in choices], z3.Or(*[V[s] == q[c] for c in choices]))
        if objective.target[s]:
            continue  # φ holds from here on, whatever the policy does
        for c in choices:
            near = z3.And(reach[s], q[c] >= V[s] - margin)
            add(
                z3.Implies(
                    near,
                    z3.And(
                        *[reach[t] for t in rows[c].indices],
                        z3.Or(*[rank[t] < rank[s] for t in rows[c].indices]),
                    ),
                )
            )
        add(z3.Implies(reach[s], rank[s] >= 1))


def _verify(envs: list[Environment], weights: dict) -> dict:
    """The exact reward verdict of the weights on every environment."""
    from verifier.analyses.reward_verdict import check_reward

    reward = Reward(
        "repaired",
        "verify audit (repaired reward)",
        step=weights[STEP],
        arrive={k: v for k, v in weights.items() if k != STEP},
    )
    verdicts = {}
    for env in envs:
        vector = reward_vector(_with_all_labels(env, reward), reward)
        verdicts[str(env.path)] = check_reward(env, vector, env.properties[0], exact=True).verdict
    return verdicts


def _with_all_labels(env: Environment, reward: Reward):
    """The model with every feature label present (False where the model lacks it)."""
    from verifier.mdp import with_labels

    missing = {
        label: env.mdp.label(label) for label in reward.arrive if label not in env.mdp.labels
    }
    return with_labels(env.mdp, missing) if missing else env.mdp


def _real(value: float):
    import z3

    return z3.RealVal(str(Fraction(float(value)).limit_denominator(10**9)))


def _fraction(value) -> Fraction:
    return Fraction(value.as_fraction()) if hasattr(value, "as_fraction") else Fraction(str(value))


def _round(value: Fraction) -> float:
    """Six significant digits: what a person writes in a reward file."""
    return float(f"{float(value):.6g}")
