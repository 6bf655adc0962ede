"""The intended objective φ, decomposed: P⋈ [ left U(<=k) target ] evaluated on a model,
and when a policy's probability of it meets φ (DESIGN.md, "Objectives")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verifier import storm
from verifier.environment import Environment
from verifier.errors import InputError

# A policy meets a query (`Pmax=? [...]`) when it attains the optimum within this.
OBJECTIVE_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True, eq=False)
class Objective:
    """φ = P⋈ [ left U(<=steps) target ], resolved on one model.

    left, target  bool [n_states]
    maximize      True when higher probability is better (Pmax query, or a >=/> bound)
    threshold     the bound of a bounded property, None for a query
    """

    text: str
    left: np.ndarray
    target: np.ndarray
    steps: int | None
    maximize: bool
    threshold: float | None
    strict: bool

    def path_formula(self, left: str, target: str) -> str:
        bound = "" if self.steps is None else f"<={self.steps}"
        return f'"{left}" U{bound} "{target}"'

    def satisfied(self, probability: np.ndarray, optimum: np.ndarray) -> np.ndarray:
        """bool: does a policy with this probability meet φ (DESIGN.md)?"""
        if self.threshold is None:
            if self.maximize:
                return probability >= optimum - OBJECTIVE_TOLERANCE
            return probability <= optimum + OBJECTIVE_TOLERANCE
        if self.maximize:
            return probability > self.threshold if self.strict else probability >= self.threshold
        return probability < self.threshold if self.strict else probability <= self.threshold


def resolve_objective(env: Environment, prop) -> Objective:
    """Split a P-operator property into its until parts and evaluate them on the model."""
    formula = prop.get_raw_formula()
    text = str(formula)
    if not formula.is_probability_operator_formula:
        raise InputError(
            env.objective_source,
            f"{text}: reward verdicts need a probability objective such as "
            '\'Pmax=? [ !"lava" U "exit" ]\'',
        )
    path = formula.subformula
    if not (path.is_until_formula or path.is_eventually_formula or path.is_bounded_until_formula):
        raise InputError(
            env.objective_source, f"{text}: supported path formulas are F, U and their step bounds"
        )
    if path.is_bounded_until_formula and path.has_lower_bound:
        raise InputError(env.objective_source, f"{text}: lower step bounds are not supported")
    model = env.storm_model if env.maze is not None else storm.to_storm(env.mdp)
    if path.is_eventually_formula:
        left = np.ones(env.mdp.n_states, dtype=bool)
        target = storm.satisfying_states(model, path.subformula)
    else:
        left = storm.satisfying_states(model, path.left_subformula)
        target = storm.satisfying_states(model, path.right_subformula)
    steps = int(str(path.upper_bound_expression)) if path.is_bounded_until_formula else None
    if formula.has_bound:
        comparison = formula.comparison_type
        maximize = comparison in (storm.ComparisonType.GEQ, storm.ComparisonType.GREATER)
        strict = comparison in (storm.ComparisonType.GREATER, storm.ComparisonType.LESS)
        threshold = float(formula.threshold)
    else:
        maximize = formula.optimality_type == storm.OptimizationDirection.MAXIMIZE
        strict, threshold = False, None
    return Objective(text, left, target, steps, maximize, threshold, strict)
