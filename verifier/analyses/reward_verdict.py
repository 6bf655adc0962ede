"""Reward specification: do the optimal policies of a reward satisfy the intended objective?

Over the set of R-optimal policies we compute the least and the greatest probability of the
objective's path formula at each initial state, and compare both with what φ asks:

    aligned          every optimal policy satisfies φ
    underspecified   some do, some do not (inner-alignment risk)
    misspecified     none does (outer-alignment failure)
    unbounded        the optimal return is +infinite (a reward loop: reward hacking)
    trapped          the optimal return is -infinite: every policy stays forever, with
                     positive probability, where steps cost (no way out; not reward hacking)

The optimal policies are those that take only Q*-optimal actions; with discount 1 they must
moreover not idle forever in a loop where V* is not 0 (such a policy collects nothing, so it
is not optimal although each of its actions is). For an unbounded until `A U T` that means:
the least probability over optimal policies is 1 - Pmax[(A & !T) U ((!A & !T) | rest)] on the
MDP of optimal actions, `rest` being the T-free end components of zero-reward optimal actions
where V* = 0, where staying forever is optimal; the greatest is Pmax[A U T] there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import numpy as np

from verifier.analyses.near_optimal import MARGIN_STATES, near_optimal, unsupported
from verifier.analyses.report import IN_MEMORY, OPTIONAL, Report, json_key
from verifier.engine.exact import certify_exact
from verifier.engine.query import Model, Property, Solution
from verifier.errors import InputError
from verifier.graph import absorbing_states, end_components, most_likely_path
from verifier.inputs.environment import Environment
from verifier.mdp import MDP
from verifier.spec.objective import PATH, REACH, REWARD, Objective, resolve_intended
from verifier.spec.performance import REACH_METHOD, best_performance, performance_over
from verifier.spec.reward_file import RewardVector, exact_reward_values, resolve_reward
from verifier.verdicts import CompareVerdict, RewardVerdict

ALIGNED = RewardVerdict.ALIGNED
UNDERSPECIFIED = RewardVerdict.UNDERSPECIFIED
MISSPECIFIED = RewardVerdict.MISSPECIFIED
UNBOUNDED = RewardVerdict.UNBOUNDED
TRAPPED = RewardVerdict.TRAPPED


@dataclass(frozen=True, slots=True, eq=False)
class RewardReport(Report):
    """The reward verdict on one environment (README, "Reports (JSON)").

    `objective_min` and `objective_max` are the least and greatest value of φ over the
    reward's optimal policies (over the policies within `epsilon` of the optimal return
    with --epsilon), at the worst initial state; `value` is the one of them that decides
    the verdict (the least for a maximised φ); `optimal_value` is φ's optimum over all
    policies (for a bound, the best any policy does); `optimal_return` the reward's own
    optimum. NaN where not computed (an unbounded or trapped reward).
    """

    kind: ClassVar[str] = "reward"
    model: str
    reward: str
    objective: str
    verdict: str
    value: float
    optimal_value: float
    optimal_return: float
    objective_min: float
    objective_max: float
    states: int
    discount: float
    witness: dict | None
    method: str
    seconds: float
    epsilon: float = 0.0
    margin: float | None = None
    tradeoff: list | None = field(default=None, metadata=OPTIONAL)
    # For pictures (not in the JSON): the witness policy (global choice per state; None
    # where it is not memoryless or not drawn), its path as state indices, and the states
    # where φ is lost.
    witness_policy: np.ndarray | None = field(default=None, metadata=IN_MEMORY)
    witness_path: tuple[int, ...] = field(default=(), metadata=IN_MEMORY)
    violation: np.ndarray | None = field(default=None, metadata=IN_MEMORY)

    @property
    def passed(self) -> bool:
        return self.verdict == ALIGNED


def reward_reports(
    env: Environment,
    reward: str,
    discount: float | None = None,
    exact: bool = False,
    compare: str | None = None,
    epsilon: float | None = None,
    tradeoff: bool = False,
) -> list:
    """`verify reward` on one environment: a RewardReport per property of `env`, or, with
    `compare` (a second reward), the one CompareReport of the two rewards."""
    first = resolve_reward(reward, env.mdp, discount)
    if compare and epsilon is not None:
        raise InputError("--epsilon", "applies to the reward verdict, not to --compare")
    if compare:
        return [compare_rewards(env, first, resolve_reward(compare, env.mdp, discount), exact)]
    return [check_reward(env, first, prop, exact, epsilon, tradeoff) for prop in env.properties]


def optimal_solution(model: Model, reward: RewardVector, exact: bool = False) -> Solution:
    """V*, Q* and optimal actions; with `exact`, certified in rational arithmetic."""
    solution = model.optimum(reward.values, reward.discount)
    if not exact:
        return solution
    exact_rewards = None
    if reward.reward is not None:  # a reward file's decimals, summed exactly
        exact_rewards = partial(exact_reward_values, model.mdp, reward.reward)
    return certify_exact(model.mdp, reward.values, reward.discount, solution, exact_rewards)


def check_reward(
    env: Environment,
    reward: RewardVector,
    prop: Property,
    exact: bool = False,
    epsilon: float | None = None,
    tradeoff: bool = False,
) -> RewardReport:
    """The reward verdict of `reward` against the property `prop` on one environment; with
    `epsilon`, over the policies within `epsilon` of the optimal return (near_optimal.py)."""
    started = time.perf_counter()
    mdp = env.mdp
    objective = resolve_intended(env, prop)
    solution = optimal_solution(env.model, reward, exact)
    initial = mdp.initial_states
    optimum = _objective_optimum(env, prop, objective)
    common: dict[str, Any] = {  # RewardReport's fields shared by both reports below
        "model": str(env.path),
        "reward": reward.name,
        "objective": objective.text,
        "optimal_value": float(optimum.min()),
        "states": mdp.n_states,
        "discount": reward.discount,
    }
    init_values = solution.values[initial]
    if solution.unbounded or np.isneginf(init_values).any():
        # Every state of a model is reachable from some initial state, so a reward loop
        # anywhere makes the optimum infinite from one of them.
        worst = int(initial[np.argmax(~np.isfinite(init_values))])
        loop_witness, loop_path = _loop_witness(env, solution, worst)
        return RewardReport(
            verdict=UNBOUNDED if solution.unbounded else TRAPPED,
            value=float("nan"),
            optimal_return=float(np.inf if solution.unbounded else init_values.min()),
            objective_min=float("nan"),
            objective_max=float("nan"),
            witness=loop_witness,
            method=solution.method,
            seconds=time.perf_counter() - started,
            epsilon=epsilon or 0.0,
            margin=0.0,
            witness_path=loop_path,
            violation=solution.positive_loop,
            **common,
        )

    optimal = env.model.restrict(solution.optimal)
    if objective.kind in (PATH, REWARD):
        low, high = _extremes_over_optimal(mdp, optimal, reward, solution, objective)
        low_policy = high_policy = violation = None
        if objective.forbidden is not None and objective.maximize:
            low_policy = _safety_breaker(optimal, solution, objective)
            violation = objective.forbidden
    else:
        low, low_policy, violation = _least_over_optimal(optimal, mdp, reward, solution, objective)
        high, high_policy = _greatest_over_optimal(optimal, solution, objective)
    low_i, high_i = low[initial], high[initial]
    if objective.maximize:
        worse, worse_policy, best_i = low_i, low_policy, high_i
    else:
        worse, worse_policy, best_i = high_i, high_policy, low_i
    if objective.satisfied(worse, optimum).all():
        verdict = ALIGNED
    elif not objective.satisfied(best_i, optimum).all():
        verdict = MISSPECIFIED
    else:
        verdict = UNDERSPECIFIED
    witness: dict | None = None
    path: tuple[int, ...] = ()
    drawn: np.ndarray | None = solution.policy
    if verdict != ALIGNED:
        failing = ~objective.satisfied(worse, optimum)
        start = int(initial[np.flatnonzero(failing)[0]])
        drawn = worse_policy
        if worse_policy is None:
            witness = _memory_witness(env, start, objective)
        else:
            witness, path = _violation_witness(env, worse_policy, start, objective, violation)
    method = f"{solution.method}; {_objective_method(objective)}"
    near: dict[str, Any] = {"epsilon": 0.0, "margin": 0.0 if verdict != ALIGNED else None}
    if epsilon is not None or (
        mdp.n_states <= MARGIN_STATES and unsupported(objective, reward) is None
    ):
        found = near_optimal(
            mdp, reward, solution, objective, optimum, epsilon, verdict == ALIGNED, tradeoff
        )
        near = {"epsilon": found.epsilon, "margin": found.margin, "tradeoff": found.tradeoff}
        method += f"; margin by {found.method}"
        if epsilon:
            verdict, low_i, high_i = _near_verdict(objective, found, optimum)
            witness, path, drawn = found.witness, (), None
    return RewardReport(
        verdict=verdict,
        value=float(low_i.min() if objective.maximize else high_i.min()),
        optimal_return=float(init_values.min()),
        objective_min=float(low_i.min()),
        objective_max=float(high_i.min()),
        witness=witness,
        method=method,
        seconds=time.perf_counter() - started,
        witness_policy=drawn,
        witness_path=path,
        violation=violation,
        **common,
        **near,
    )


def _near_verdict(objective: Objective, found, optimum: np.ndarray):
    """The verdict over the ε-optimal policies and the least and greatest P(φ) per initial
    state."""
    if objective.satisfied(found.worst, optimum).all():
        verdict = ALIGNED
    elif not objective.satisfied(found.best, optimum).all():
        verdict = MISSPECIFIED
    else:
        verdict = UNDERSPECIFIED
    if objective.maximize:
        return verdict, found.worst, found.best
    return verdict, found.best, found.worst


def _objective_optimum(env: Environment, prop: Property, objective: Objective) -> np.ndarray:
    """The best value of φ (probability or performance) over all policies, per initial
    state; for a bound, the best in its favour (which the verdict does not use)."""
    if objective.kind == REWARD:
        best = best_performance(env.model, objective.reward_performance(), objective.maximize)
        return best[env.mdp.initial_states]
    return env.check(prop, best=True).values


def _objective_method(objective: Objective) -> str:
    if objective.kind == REWARD:
        performance = objective.reward_performance()
        method = (
            f"performance {performance.name!r} ({performance.form}) by "
            "policy iteration on the MDP of optimal actions"
        )
        if performance.form == REACH:
            method += f"; {REACH_METHOD}"
        return method
    if objective.kind == PATH:
        return "objective by Storm's automaton product on the MDP of optimal actions"
    return (
        "objective on the MDP of optimal actions by Storm's value iteration's scheduler, "
        "improved and certified by direct solves (Storm's sound engine where that fails, "
        "and for step bounds)"
    )


def _extremes_over_optimal(
    mdp: MDP, optimal: Model, reward: RewardVector, solution: Solution, objective: Objective
) -> tuple[np.ndarray, np.ndarray]:
    """(least, greatest) value of φ over the R-optimal policies, history-dependent ones
    included, per state, for the path and reward forms.

    R-optimal policies are the policies of the MDP of optimal actions that, at discount 1,
    almost surely end up idling where idling is optimal (`_idle_optimal`: an end component
    of zero-reward optimal choices with V* = 0), i.e. satisfy F G "idle". As every state has
    such a policy, max P(φ) over them is Pmax [ φ & F G "idle" ] there and min P(φ) is
    1 - Pmax [ !φ & F G "idle" ] (a run that is not F G "idle" is not R-optimal's, and a
    maximising policy can switch to an R-optimal one where φ's chance is 0); Storm checks
    both through its automaton product. At discount < 1 every such policy is R-optimal.
    """
    idle = _idle_optimal(mdp, reward, solution) if reward.discount == 1.0 else None
    if objective.kind == REWARD:
        performance = objective.reward_performance()
        values = performance.values[solution.optimal]
        return performance_over(optimal.mdp, values, performance, idle)
    path = objective.path_query()
    if idle is None:
        low = optimal.path(path, "min")[0]
        high = optimal.path(path, "max")[0]
    else:
        high = optimal.path(path, "max", idle)[0]
        low = 1.0 - optimal.path(path, "max", idle, negate=True)[0]
    high = np.clip(high, 0.0, 1.0)
    return np.minimum(np.clip(low, 0.0, 1.0), high), high


def _safety_breaker(optimal: Model, solution: Solution, objective: Objective) -> np.ndarray:
    """For G ψ: an optimal policy (memoryless) most likely to reach !ψ, the worst one for
    P(G ψ) (reaching !ψ is all that loses G ψ, and idling or not does not change it)."""
    if objective.forbidden is None:
        raise ValueError(f"{objective.text}: no forbidden states to reach")
    everywhere = np.ones(optimal.mdp.n_states, dtype=bool)
    found = optimal.until(everywhere, objective.forbidden, True)
    return _global_policy(solution, found.policy)


def _memory_witness(env: Environment, start: int, objective: Objective) -> dict:
    """The witness where the extreme policy needs memory or is not drawn as a path."""
    return {
        "policy": None,
        "start": env.mdp.valuation(start),
        "path": [],
        "note": (
            "the worst optimal policy for this objective may need memory (Storm's automaton "
            "product) or is a return, not a path: no path is drawn"
            if objective.kind == PATH
            else "the objective is a performance (a return), not a path: no path is drawn"
        ),
    }


def _global_policy(solution: Solution, local_policy: np.ndarray | None) -> np.ndarray:
    """Map choice indices of the optimal-action MDP back to the original MDP's. Without a
    memoryless extreme policy (step-bounded objectives), the solver's optimal policy."""
    if local_policy is None:
        return solution.policy
    return np.flatnonzero(solution.optimal)[local_policy]


def _greatest_over_optimal(
    optimal: Model, solution: Solution, objective: Objective
) -> tuple[np.ndarray, np.ndarray]:
    left, target = objective.until_sets()
    found = optimal.until(left, target, True, objective.steps)
    return found.values, _global_policy(solution, found.policy)


def _least_over_optimal(
    optimal: Model, mdp: MDP, reward: RewardVector, solution: Solution, objective: Objective
):
    """Least probability of φ over optimal policies, a policy attaining it, and the set of
    states where reaching it violates φ."""
    left, target = objective.until_sets()
    not_left = ~left & ~target
    if reward.discount < 1.0 or objective.steps is not None:
        found = optimal.until(left, target, False, objective.steps)
        misses = absorbing_states(mdp) & ~target
        return found.values, _global_policy(solution, found.policy), not_left | misses
    rest = _rest(mdp, reward, solution, objective)
    violation = not_left | rest
    found = optimal.until(left & ~target, violation, True)
    return np.clip(1.0 - found.values, 0.0, 1.0), _global_policy(solution, found.policy), violation


def _rest(mdp: MDP, reward: RewardVector, solution: Solution, objective: Objective) -> np.ndarray:
    """States where an optimal policy may stay forever without reaching the target."""
    return _idle_optimal(mdp, reward, solution, avoid=objective.target)


def _violation_witness(env, policy, start, objective, violation) -> tuple[dict, tuple[int, ...]]:
    """The most likely path, under `policy`, from `start` to a state where φ is lost: the
    witness as reported, and the path's states."""
    chain = env.mdp.transitions[policy].tocoo()
    through = ~violation
    if objective.left is not None:
        through &= objective.left & ~objective.target
    witness = {"policy": _policy_table(env, policy), "start": env.mdp.valuation(start), "path": []}
    found = most_likely_path(chain.row, chain.col, chain.data, through, start, violation)
    if not found:
        return witness, ()
    path, probability = found
    witness["path"] = [env.mdp.valuation(s) for s in path]
    witness["probability"] = probability
    return witness, tuple(path)


def _loop_witness(env: Environment, solution: Solution, start: int) -> tuple[dict, tuple[int, ...]]:
    """A path from `start` into an end component with positive mean reward: the witness as
    reported, and the path's states."""
    mdp = env.mdp
    loop = solution.positive_loop
    matrix = mdp.transitions.tocoo()
    everywhere = np.ones(mdp.n_states, dtype=bool)
    states = mdp.choice_states()[matrix.row]
    found = most_likely_path(states, matrix.col, matrix.data, everywhere, start, loop)
    if not found:
        return {"start": env.mdp.valuation(start), "path": [], "loop": []}, ()
    witness = {
        "start": env.mdp.valuation(start),
        "path": [env.mdp.valuation(s) for s in found[0]],
        "loop": [env.mdp.valuation(s) for s in np.flatnonzero(loop)[:20]],
    }
    return witness, tuple(found[0])


def _policy_table(env: Environment, policy: np.ndarray) -> dict | None:
    """For small models, the witness policy as {state description: action}."""
    mdp = env.mdp
    if mdp.n_states > 200:
        return None
    return {
        mdp.state_description(s): (mdp.actions[a] if (a := mdp.choice_actions[c]) >= 0 else "-")
        for s, c in enumerate(policy.tolist())
    }


SAME, DIFFERENT = CompareVerdict.SAME, CompareVerdict.DIFFERENT


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class CompareReport(Report):
    """Whether two rewards have the same optimal policies on one environment. The question
    has no value of φ: `value` and `optimal_value` are None."""

    kind: ClassVar[str] = "compare"
    model: str
    reward: str
    other: str = field(metadata=json_key("compare"))
    objective: str
    verdict: str
    value: None = None
    optimal_value: None = None
    states: int
    witness: dict | None
    method: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict == SAME


def compare_rewards(
    env: Environment, first: RewardVector, second: RewardVector, exact: bool = False
) -> CompareReport:
    """Same set of optimal policies: the same optimal actions in every state and, with
    discount 1, the same states where idling forever is optimal (V* = 0 on a zero-reward
    loop); both unbounded also counts as the same."""
    started = time.perf_counter()
    mdp = env.mdp
    solutions = [optimal_solution(env.model, r, exact) for r in (first, second)]
    witness: dict[str, object] | None = None
    if solutions[0].unbounded or solutions[1].unbounded:
        same = solutions[0].unbounded and solutions[1].unbounded
        if not same:
            witness = {"unbounded": first.name if solutions[0].unbounded else second.name}
    else:
        rests = [_idle_optimal(mdp, r, s) for r, s in zip((first, second), solutions, strict=True)]
        differs = np.logical_or.reduceat(
            solutions[0].optimal != solutions[1].optimal, mdp.row_groups[:-1]
        )
        differs |= rests[0] != rests[1]
        same = not differs.any()
        if not same:
            state = int(np.flatnonzero(differs)[0])
            witness = {"state": env.mdp.valuation(state)}
            for reward, solution in zip((first, second), solutions, strict=True):
                choices = range(mdp.row_groups[state], mdp.row_groups[state + 1])
                witness[reward.name] = [
                    _action_name(mdp, c) for c in choices if solution.optimal[c]
                ]
    return CompareReport(
        model=str(env.path),
        reward=first.name,
        other=second.name,
        objective=f"optimal policies of {first.name} = those of {second.name}",
        verdict=SAME if same else DIFFERENT,
        states=mdp.n_states,
        witness=witness,
        method="optimal actions of each reward: " + "; ".join(s.method for s in solutions),
        seconds=time.perf_counter() - started,
    )


def _idle_optimal(
    mdp: MDP, reward: RewardVector, solution: Solution, avoid: np.ndarray | None = None
) -> np.ndarray:
    """bool [n_states]: states of end components of zero-reward optimal choices where V* = 0
    (and off `avoid`): there an optimal policy may stay forever (discount 1 only)."""
    if reward.discount < 1.0:
        return np.zeros(mdp.n_states, dtype=bool)
    calm = np.abs(solution.values) <= solution.tolerance
    if avoid is not None:
        calm &= ~avoid
    allowed = solution.optimal & (reward.values == 0.0) & calm[mdp.choice_states()]
    return end_components(mdp, allowed)[0] >= 0


def _action_name(mdp: MDP, choice: int) -> str:
    action = mdp.choice_actions[choice]
    return mdp.actions[action] if action >= 0 else "-"
