"""Model checking a property on an environment: the `verify check` capability."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from verifier.analyses.report import Report, json_key
from verifier.inputs.environment import Environment
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
        return {"bound_width": max((s["upper"] - s["lower"] for s in self.initial), default=0.0)}


def check_environment(env: Environment) -> list[CheckReport]:
    """Check every property of the environment at its initial states."""
    mdp = env.mdp
    reports = []
    for prop in env.properties:
        started = time.perf_counter()
        result = env.check(prop)
        initial = tuple(
            {"valuation": valuation, "value": float(v), "lower": float(lo), "upper": float(hi)}
            for valuation, v, lo, hi in zip(
                _initial_valuations(env), result.values, result.lower, result.upper, strict=True
            )
        )
        verdict = {None: COMPUTED, True: HOLDS, False: FAILS}[result.holds]
        optimal = result.value
        if result.direction is not None and prop.direction is None:  # a bound on an MDP
            optimal = env.check(prop, best=True).value
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


def _initial_valuations(env: Environment) -> list[dict[str, int]]:
    """The valuation of each initial state. Storm explores initial states first and in the
    same order in every build of one program, so the full model's k-th initial state is the
    checked model's k-th."""
    mdp = env.mdp
    return [mdp.valuation(s) for s in mdp.initial_states]
