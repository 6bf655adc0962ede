"""Reward repair: weights over given reward features under which every optimal policy
satisfies φ on every environment, with a margin, or a proof that no such weights exist.

Features: one per label (+w on arriving in a state with the label) and the step cost, as in
a maze reward TOML. Found by z3 over linear real arithmetic, exactly:

    exists w in [-1, 1]^k, margin > 0 and per environment values V with
      V(s) = max_a Q(s, a)                         (Bellman optimality, discount 1)
      every policy that takes only actions within `margin` of the best,
      Q(s, a) >= V(s) - margin, satisfies φ = P [ left U target ] with probability 1:
      the states such policies reach from the initial states are in left or target, and
      carry a rank, 0 on target, such that each of those actions from a ranked state
      has a successor of smaller rank (so no policy can avoid the target forever)
    where Q(s, a) = w . F(s, a) + sum_s' P(s' | s, a) V(s').

"With a margin" thus means: every policy that is optimal up to `margin` per step satisfies
φ, so every optimal policy does, and small changes of the weights or of the optimiser do
not break it. The weights are scale-free (any positive multiple of a repair is one), so
the box loses nothing; `unsat` is a proof that no weights in the span do this, by any
margin. The encoding covers objectives whose optimum is 1 (reach surely, avoiding what φ
forbids) on models of up to MAX_STATES states in all. The weights found are rounded for
people and verified again by the exact reward check (verifier.reward with exact=True) on
every environment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from verifier.environment import Environment
from verifier.errors import InputError, ResourceLimit
from verifier.objective import OBJECTIVE_TOLERANCE, resolve_objective
from verifier.rewards import Reward, absorbing_states, reward_vector

MAX_STATES = 20_000
STEP = "step"


@dataclass(frozen=True, slots=True, eq=False)
class Repair:
    """`weights` (feature -> float, `step` included) when found, else None with a proof."""

    features: tuple[str, ...]
    status: str  # "repaired" | "impossible" | "unknown"
    weights: dict | None
    margin: float | None
    verified: dict  # model -> reward verdict of the rounded weights (exact check)
    method: str
    seconds: float

    def toml(self) -> str:
        """The repaired reward as a maze reward TOML."""
        lines = ["# Repaired reward (verify audit): every optimal policy satisfies the objective"]
        lines.append("# on every audited environment, by a margin.")
        lines.append(f"step = {self.weights[STEP]!r}")
        lines.append("[arrive]")
        lines += [f"{label} = {self.weights[label]!r}" for label in self.features if label != STEP]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "status": self.status,
            "weights": self.weights,
            "margin": self.margin,
            "verified": self.verified,
            "method": self.method,
            "seconds": round(self.seconds, 6),
        }


def repair_reward(
    envs: list[Environment], labels: list[str], base: dict[str, float] | None = None
) -> Repair:
    """Search the span of `labels` + step cost for a reward whose optimal policies all
    satisfy each environment's objective (its first property), by z3.

    Two exact optimisations over the same constraints: first the largest margin M (weights
    in [-1, 1]); then, with margin at least M / 10, the weights nearest (L1) to `base`, the
    user's reward scaled into the box, so the repair changes what it must and keeps the
    rest. Weights and margin are reported in the scale of `base`."""
    import z3

    started = time.perf_counter()
    features = (*dict.fromkeys(labels), STEP)
    total = sum(env.mdp.n_states for env in envs)
    if total > MAX_STATES:
        raise ResourceLimit(
            f"reward repair by z3 takes up to {MAX_STATES:,} states in all; these "
            f"environments have {total:,}"
        )
    base = {name: float((base or {}).get(name, 0.0)) for name in features}
    scale = max(map(abs, base.values())) or 1.0
    weights = [z3.Real(f"w_{name}") for name in features]
    margin = z3.Real("margin")
    constraints = [margin > 0, *(z3.And(w >= -1, w <= 1) for w in weights)]
    for index, env in enumerate(envs):
        _encode(lambda *items: constraints.extend(items), env, index, features, weights, margin)
    method = "z3 (linear real arithmetic, exact): values, ranks and weights solved together"

    widest = z3.Optimize()
    widest.add(*constraints)
    widest.maximize(margin)
    answer = widest.check()
    if answer != z3.sat:
        status = "impossible" if answer == z3.unsat else "unknown"
        return Repair(features, status, None, None, {}, method, time.perf_counter() - started)
    best = _fraction(widest.model().eval(margin))

    nearest = z3.Optimize()
    nearest.add(*constraints, margin >= z3.RealVal(str(best / 10)))
    gaps = [z3.Real(f"gap_{name}") for name in features]
    for gap, w, name in zip(gaps, weights, features, strict=True):
        target = z3.RealVal(str(Fraction(base[name] / scale).limit_denominator(10**9)))
        nearest.add(gap >= w - target, gap >= target - w)
    nearest.minimize(z3.Sum(*gaps))
    if nearest.check() != z3.sat:  # cannot happen: the widest solution satisfies it
        raise RuntimeError("reward repair: the second optimisation lost the first's solution")
    model = nearest.model()
    found = {
        name: _round(_fraction(model.eval(w, model_completion=True)) * Fraction(scale))
        for name, w in zip(features, weights, strict=True)
    }
    verified = _verify(envs, found)
    status = "repaired" if all(v == "aligned" for v in verified.values()) else "unknown"
    return Repair(
        features,
        status,
        found,
        float(_fraction(model.eval(margin)) * Fraction(scale)),
        verified,
        method + "; rounded weights re-verified by the exact reward check",
        time.perf_counter() - started,
    )


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


def _encode(add, env: Environment, index: int, features, weights, margin) -> None:
    """The constraints of one environment, handed to `add`."""
    import z3

    mdp = env.mdp
    objective = resolve_objective(env, env.properties[0])
    if objective.steps is not None or objective.threshold is not None or not objective.maximize:
        raise InputError(
            env.objective_source,
            f"{objective.text}: reward repair takes a Pmax=? [ left U target ] objective",
        )
    from verifier import storm

    optimum, _, _ = storm.state_values(
        _labelled(mdp, objective), 'Pmax=? [ "__left" U "__target" ]'
    )
    if (optimum[mdp.initial_states] < 1 - OBJECTIVE_TOLERANCE).any():
        raise InputError(
            str(env.path),
            f"{objective.text}: reward repair needs an objective met with probability 1 "
            f"(its optimum here is {optimum[mdp.initial_states].min():.6g})",
        )
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
    for s in np.flatnonzero(~absorbing):
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


def _labelled(mdp, objective):
    from verifier.mdp import with_labels

    return with_labels(
        mdp, {"__left": objective.left & ~objective.target, "__target": objective.target}
    )


def _verify(envs: list[Environment], weights: dict) -> dict:
    """The exact reward verdict of the weights on every environment."""
    from verifier.reward import check_reward

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
