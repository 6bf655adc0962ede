"""Optimal values and actions re-derived in exact rational arithmetic (`--exact`): the
float solution's policy evaluated exactly by Storm's exact engine, every Q-value computed
exactly, and the policy improved exactly until no action is better.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from verifier import storm
from verifier.engine.optimum import MAX_ITERATIONS, Solution
from verifier.errors import InputError, SolverError
from verifier.graph import closed_states
from verifier.mdp import MDP
from verifier.progress import stage


@stage("certifying in exact arithmetic")
def certify_exact(
    mdp: MDP,
    rewards: np.ndarray,
    discount: float,
    solution: Solution,
    exact_rewards: Callable[[list[Fraction]], list[Fraction]] | None = None,
) -> Solution:
    """Re-derive V*, Q* and the optimal actions in exact rational arithmetic.

    Probabilities are read as the simplest fractions within 1e-12 of their float values
    (0.1 -> 1/10), and every distribution must then sum to exactly 1; the discount as the
    decimal its float was written as. The rewards are `exact_rewards(probabilities)` where given
    (a reward file's exact decimals, summed exactly over the exact probabilities), else
    `rewards` read like probabilities. (The engine receives exact rewards; it does not know
    the reward file format.)
    The float solution's policy is evaluated exactly (Storm's exact engine; a discount g
    becomes a stop with probability 1 - g), every Q-value is computed exactly, and the policy
    is improved exactly until no action is better: then V is V* and the optimal actions are
    exactly those with Q = V.
    """
    if solution.unbounded:
        return solution
    data = mdp.transitions
    probability = [_fraction(p) for p in data.data.tolist()]
    for c in range(mdp.n_choices):
        if sum(probability[data.indptr[c] : data.indptr[c + 1]]) != 1:
            raise InputError(
                mdp.name, f"choice {c}: probabilities are not exact fractions summing to 1"
            )
    if exact_rewards is None:
        reward_values = [_fraction(r) for r in rewards.tolist()]
    else:
        reward_values = exact_rewards(probability)
    gamma = Fraction(repr(float(discount)))
    doomed = np.isneginf(solution.values)
    policy = solution.policy.copy()
    states = mdp.choice_states()
    for _ in range(MAX_ITERATIONS):
        values = _exact_values(mdp, probability, reward_values, gamma, policy, doomed)
        q_values = [
            None
            if any(doomed[t] for t in data.indices[data.indptr[c] : data.indptr[c + 1]])
            else reward_values[c]
            + gamma
            * sum(
                p * values[t]
                for p, t in zip(
                    probability[data.indptr[c] : data.indptr[c + 1]],
                    data.indices[data.indptr[c] : data.indptr[c + 1]].tolist(),
                    strict=True,
                )
            )
            for c in range(mdp.n_choices)
        ]
        better = [
            c
            for c in range(mdp.n_choices)
            if not doomed[states[c]] and q_values[c] is not None and q_values[c] > values[states[c]]
        ]
        if not better:
            break
        for c in better:
            s = states[c]
            if q_values[c] > q_values[policy[s]]:
                policy[s] = c
    else:
        raise SolverError("exact policy iteration did not converge")
    optimal = np.array(
        [
            bool(doomed[states[c]])
            or (q_values[c] is not None and q_values[c] == values[states[c]])
            for c in range(mdp.n_choices)
        ]
    )
    as_float = np.array([float(v) if v is not None else -np.inf for v in values])
    q_float = np.array([float(q) if q is not None else -np.inf for q in q_values])
    gaps = [
        float(values[states[c]] - q_values[c])
        for c in range(mdp.n_choices)
        if not optimal[c] and q_values[c] is not None and not doomed[states[c]]
    ]
    return Solution(
        values=np.where(doomed, -np.inf, as_float),
        q_values=q_float,
        optimal=optimal,
        policy=policy,
        discount=discount,
        tolerance=0.0,
        gap=min(gaps, default=np.inf),
        residual=0.0,
        iterations=solution.iterations,
        method="exact rational arithmetic (Storm's exact engine and Python fractions)",
        positive_loop=solution.positive_loop,
    )


def _fraction(value: float) -> Fraction:
    exact = Fraction(value).limit_denominator(10**12)
    if abs(float(exact) - value) > 1e-12 * max(1.0, abs(value)):
        exact = Fraction(value)
    return exact


def _exact_values(mdp, probability, reward, gamma, policy, doomed) -> list[Fraction | None]:
    """Exact values of a policy: None where doomed (-inf)."""
    data = mdp.transitions
    n = mdp.n_states
    chain = data[policy]
    _, _, closed = closed_states(chain)
    done = closed | doomed
    rows, rewards = [], []
    stop = n  # the discount's stop state
    for s in range(n):
        c = int(policy[s])
        entries = list(
            zip(
                data.indices[data.indptr[c] : data.indptr[c + 1]].tolist(),
                probability[data.indptr[c] : data.indptr[c + 1]],
                strict=True,
            )
        )
        if gamma != 1:
            entries = [(t, gamma * p) for t, p in entries] + [(stop, 1 - gamma)]
        rows.append(entries)
        rewards.append(Fraction(0) if done[s] and gamma == 1 or doomed[s] else reward[c])
    if gamma != 1:
        rows.append([(stop, Fraction(1))])
        rewards.append(Fraction(0))
        done = np.concatenate([doomed, [True]])
    rows = [[(s, Fraction(1))] if done[s] else row for s, row in enumerate(rows)]
    values = storm.exact_total_reward(rows, rewards, done)
    return [None if doomed[s] else values[s] for s in range(n)]
