"""Oracles for the tests: Storm asked directly, on a fresh conversion, as an independent
second route to the verifier's answers."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import stormpy

from verifier.errors import InputError
from verifier.mdp import MDP
from verifier.storm import model_values, parse_properties, to_storm, until
from verifier.storm.core import storm_message


def state_values(mdp: MDP, formula_text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quantitative query on every state of our model: (values, lower, upper), float64
    [n_states] each, the bounds certified by Storm's sound engine."""
    return model_values(to_storm(mdp), formula_text)


def sound_until(
    mdp: MDP,
    left: np.ndarray,
    target: np.ndarray,
    maximize: bool | None,
    steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """`until` by Storm's sound engine on our MDP (or chain, `maximize` None)."""
    kind = "dtmc" if maximize is None else "mdp"
    return until(to_storm(replace(mdp, kind=kind)), left, target, maximize, steps)


def multi_objective(mdp: MDP, formula_text: str, precision: float = 1e-9) -> float:
    """The value of a `multi(...)` query with one `=?` objective at the one initial state of
    our model, by Storm's multi-objective engine (Pareto approximation, within `precision`).
    Storm needs non-negative rewards for total-reward objectives here."""
    if len(mdp.initial_states) != 1:
        raise InputError("objective", "multi-objective queries need exactly one initial state")
    environment = stormpy.Environment()
    multi = environment.modelchecker().multi()
    multi.method = stormpy.environments.MultiObjectiveMethod.PCAA
    multi.precision = stormpy.Rational(str(Fraction(precision).limit_denominator(10**15)))
    formula = parse_properties(formula_text)[0].formula
    try:
        result = stormpy.model_checking(to_storm(mdp), formula, environment=environment)
    except Exception as exc:
        raise InputError("objective", f"{formula_text}: {storm_message(exc)}") from None
    return float(result.get_value(int(mdp.initial_states[0])))
