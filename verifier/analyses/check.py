"""Model checking a property on an environment: the `verify check` capability."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from verifier.analyses.report import Report, json_key
from verifier.engine.query import DISCOUNTED, REACH, TOTAL, Property, PropertyResult
from verifier.inputs.environment import Environment
from verifier.spec.objective import resolve_intended
from verifier.spec.performance import best_performance_method
from verifier.verdicts import CheckVerdict

HOLDS, FAILS, COMPUTED = CheckVerdict.HOLDS, CheckVerdict.FAILS, CheckVerdict.COMPUTED


@dataclass(frozen=True, slots=True, eq=False)
class CheckReport(Report):
    """The result of one property on one model.

    `verdict` is `holds` or `fails` for a bounded property (`P>=0.9 [...]`) and `computed` for
    a query (`Pmax=? [...]`). `value` is the minimum over the initial states; `initial` lists
    each initial state with its valuation, value and Storm's sound bounds. On an MDP,
    `direction` says which optimum the value is ("max" or "min"): the property's own, else
    the one that decides its bound (the minimum for `>=`/`>`, the maximum for `<=`/`<`).
    `optimal_value` is φ's optimum: the best any policy does for the property (the maximum
    for a query with max or a bound `>=`/`>`, the minimum otherwise); it is `value` for a
    query and on a Markov chain, and the other optimum for a bound on an MDP.
    """

    kind: ClassVar[str] = "check"
    model: str
    objective: str
    verdict: str
    value: float
    optimal_value: float
    direction: str | None
    states: int
    choices: int
    transitions: int
    initial: tuple[dict, ...] = field(metadata=json_key("initial_states"))
    method: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.verdict != FAILS

    def derived(self) -> dict:
        widths = (
            s["upper"] - s["lower"] if s["upper"] != s["lower"] else 0.0 for s in self.initial
        )
        return {"bound_width": max(widths, default=0.0)}  # exact infinite values: width 0


def check_environment(env: Environment) -> list[CheckReport]:
    """Check every property of the environment at its initial states."""
    mdp = env.mdp
    reports = []
    for prop in env.properties:
        started = time.perf_counter()
        performance = _is_performance(env, prop)
        result = _performance(env, prop) if performance else env.check(prop)
        initial = tuple(
            {"valuation": valuation, "value": float(v), "lower": float(lo), "upper": float(hi)}
            for valuation, v, lo, hi in zip(
                _initial_valuations(env), result.values, result.lower, result.upper, strict=True
            )
        )
        verdict = {None: COMPUTED, True: HOLDS, False: FAILS}[result.holds]
        optimal = result.value
        if result.direction is not None and prop.direction is None:  # a bound on an MDP
            best = _performance(env, prop, best=True) if performance else env.check(prop, best=True)
            optimal = best.value
        reports.append(
            CheckReport(
                model=str(env.path),
                objective=result.property,
                verdict=verdict,
                value=result.value,
                optimal_value=optimal,
                direction=result.direction,
                states=mdp.n_states,
                choices=mdp.n_choices,
                transitions=mdp.n_transitions,
                initial=initial,
                method=result.method,
                seconds=time.perf_counter() - started,
            )
        )
    return reports


def _is_performance(env: Environment, prop: Property) -> bool:
    """An R operator that the reward and policy verdicts evaluate as an RL return (mixed
    signs, a reward TOML beside the model, [ F target ] stopping there): `verify check`
    evaluates it the same way. A query without min or max on a Markov chain stays Storm's."""
    return (
        prop.operator == "R"
        and prop.form in (TOTAL, REACH, DISCOUNTED)
        and (prop.direction is not None or prop.comparison is not None or env.mdp.kind != "dtmc")
    )


def _performance(env: Environment, prop: Property, best: bool = False) -> PropertyResult:
    """A performance objective's optimum at the initial states, by our policy iteration
    (README, "The objective language"). As for every property of `verify check`, a bound
    without min or max holds when it holds for every policy: the least return decides
    `>=`, the greatest `<=`; with `best`, the other optimum (the best any policy does)."""
    objective = resolve_intended(env, prop)
    lower_bound = prop.comparison in (">=", ">")
    direction = prop.direction or ("max" if lower_bound == best else "min")
    values, method = best_performance_method(
        env.model, objective.reward_performance(), direction == "max"
    )
    initial = values[env.mdp.initial_states]
    holds = None
    if prop.comparison is not None:
        holds = bool(objective.satisfied(initial, initial).all())
    shown = None if env.mdp.kind == "dtmc" else direction
    return PropertyResult(prop.text, initial, initial, initial, holds, method, shown)


def _initial_valuations(env: Environment) -> list[dict[str, int]]:
    """The valuation of each initial state. Storm explores initial states first and in the
    same order in every build of one program, so the full model's k-th initial state is the
    checked model's k-th."""
    mdp = env.mdp
    return [mdp.valuation(s) for s in mdp.initial_states]
