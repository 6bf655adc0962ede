"""The intended objective φ, resolved on a model, and when a policy's value of it meets φ
(README, "The objective language").

Three forms, each a P or R operator with a query (`max=?`/`min=?`) or a bound:

    until     P [ left U(<=k) target ] and P [ F(<=k) target ]: the reach-avoid form,
              decomposed into the `left` and `target` state sets
    path      every other path formula Storm checks: G, X, boolean combinations and nesting
              of them (LTL, through Storm's automaton product), with state subformulas, also
              nested P operators, evaluated on the full model first
    reward    R{"performance"} [ C ], [ F "done" ], [ Cdiscount=γ ]: a performance reward
              (a reward structure of the model or a reward TOML) as the objective

PRISM precedence: `F "key" & F "exit"` is `F ("key" & F "exit")` (F binds looser than &):
write `(F "key") & (F "exit")` for the conjunction of two eventualities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from verifier import storm
from verifier.environment import Environment
from verifier.errors import InputError
from verifier.mdp import MDP

# A policy meets a query (`Pmax=? [...]`) when it attains the optimum within this (relative
# to the optimum's magnitude, at least 1, for a reward objective).
OBJECTIVE_TOLERANCE = 1e-6

UNTIL, PATH, REWARD = "until", "path", "reward"
TOTAL, REACH, DISCOUNTED = "total", "reach", "discounted"
SUPPORTED = (
    "supported objectives: P operators over path formulas (F, U, G, X, their step bounds, "
    'boolean combinations: LTL) and R{"name"} operators over [ C ], [ F "label" ] or '
    "[ Cdiscount=γ ]"
)

_LEFT, _TARGET = "__verify_left", "__verify_target"
_OPERATOR = re.compile(r"(?:P|R|LRA|T|S)(?:\{[^}]*\})?(?:min|max)?(?:=\?|[<>]=?\s*[^\[\s]+)\s*\[")


@dataclass(frozen=True, slots=True, eq=False)
class Performance:
    """A reward objective R{name} [form]: `values` float64 [n_choices] on the model.

    form      total: [ C ]; reach: [ F target ] (total reward until `target`, which is made
              absorbing); discounted: [ Cdiscount=γ ] (or the reward file's discount)
    """

    name: str
    values: np.ndarray
    form: str
    discount: float
    target: np.ndarray | None


@dataclass(frozen=True, slots=True, eq=False)
class Objective:
    """φ resolved on one model.

    kind          until, path or reward (module docstring)
    left, target  bool [n_states], the until form only (None otherwise)
    path          Storm's path formula over `labels` and the model's own labels (P forms)
    labels        extra labels `path` refers to: the until parts, evaluated state subformulas
    forbidden     bool [n_states]: states φ forbids (until: neither left nor target; G ψ:
                  !ψ), None where φ forbids no states as such (other path forms, rewards)
    performance   the reward objective (reward form only)
    maximize      True when higher is better (a max query, or a >=/> bound)
    threshold     the bound of a bounded property, None for a query
    """

    text: str
    left: np.ndarray | None
    target: np.ndarray | None
    steps: int | None
    maximize: bool
    threshold: float | None
    strict: bool
    kind: str = UNTIL
    path: str = ""
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    forbidden: np.ndarray | None = None
    performance: Performance | None = None

    def path_formula(self, left: str, target: str) -> str:
        bound = "" if self.steps is None else f"<={self.steps}"
        return f'"{left}" U{bound} "{target}"'

    def satisfied(self, value: np.ndarray, optimum: np.ndarray) -> np.ndarray:
        """bool: does a policy with this value (probability or performance) meet φ?"""
        if self.threshold is None:
            slack = OBJECTIVE_TOLERANCE
            if self.kind == REWARD:
                finite = np.where(np.isfinite(optimum), optimum, 0.0)
                slack = OBJECTIVE_TOLERANCE * np.maximum(1.0, np.abs(finite))
            if self.maximize:
                return value >= optimum - slack
            return value <= optimum + slack
        if self.maximize:
            return value > self.threshold if self.strict else value >= self.threshold
        return value < self.threshold if self.strict else value <= self.threshold

    def query(self, direction: str) -> str:
        """The objective as a Storm query in `direction` ("max", "min" or "" on a DTMC) on
        a model carrying `labels` (P forms only)."""
        return f"P{direction}=? [ {self.path} ]"

    def labelled(self, mdp: MDP) -> MDP:
        """`mdp` (or a restriction or induced chain of it) with the labels `path` needs."""
        from verifier.mdp import with_labels

        return with_labels(mdp, self.labels)


def resolve_objective(env: Environment, prop) -> Objective:
    """φ in the reach-avoid form P [ left U(<=k) target ], which the audit and the reward
    repair need; InputError naming the form otherwise."""
    objective = resolve_intended(env, prop)
    if objective.kind != UNTIL:
        raise InputError(
            env.objective_source,
            f"{objective.text}: this command needs a reach-avoid objective such as "
            '\'Pmax=? [ !"lava" U "exit" ]\'',
        )
    return objective


def resolve_intended(env: Environment, prop) -> Objective:
    """Any objective of the module docstring, resolved on the model of `env`."""
    formula = prop.get_raw_formula()
    text = str(formula)
    if formula.is_reward_operator_formula:
        return _reward_objective(env, formula, text)
    if not formula.is_probability_operator_formula:
        raise InputError(env.objective_source, f"{text}: {SUPPORTED}")
    model = env.storm_model if env.maze is not None else storm.to_storm(env.mdp)
    maximize, threshold, strict = _direction(formula)
    path = formula.subformula
    is_until = path.is_until_formula or path.is_eventually_formula
    if path.is_bounded_until_formula:
        is_until = not path.has_lower_bound and _single_bound(path)
    if is_until and path.is_eventually_formula:
        is_until = _is_state_formula(str(path.subformula))
    elif is_until:
        parts = (path.left_subformula, path.right_subformula)
        is_until = all(_is_state_formula(str(part)) for part in parts)
    if not is_until:
        labels, path_text = _evaluate_state_operators(env, model, str(path))
        forbidden = None
        safety = re.fullmatch(r"G (.*)", str(path))
        if safety and _is_state_formula(safety.group(1)):
            safe = storm.parse_properties(f"P=? [ F {safety.group(1)} ]")[0].get_raw_formula()
            forbidden = ~storm.satisfying_states(model, safe.subformula.subformula)
        return Objective(
            text,
            None,
            None,
            None,
            maximize,
            threshold,
            strict,
            PATH,
            path_text,
            labels,
            forbidden,
        )
    if path.is_eventually_formula:
        left = np.ones(env.mdp.n_states, dtype=bool)
        target = storm.satisfying_states(model, path.subformula)
    else:
        left = storm.satisfying_states(model, path.left_subformula)
        target = storm.satisfying_states(model, path.right_subformula)
    steps = int(str(path.upper_bound_expression)) if path.is_bounded_until_formula else None
    objective = Objective(text, left, target, steps, maximize, threshold, strict)
    labels = {_LEFT: left & ~target, _TARGET: target}
    return Objective(
        text,
        left,
        target,
        steps,
        maximize,
        threshold,
        strict,
        UNTIL,
        objective.path_formula(_LEFT, _TARGET),
        labels,
        ~left & ~target,
    )


def _is_state_formula(text: str) -> bool:
    """No temporal operator outside quotes and nested P/R operators."""
    _, bare = _split_operators(re.sub(r'"[^"]*"', '""', text))
    return not re.search(r"\b[FGXU]\b", bare)


def _split_operators(text: str) -> tuple[list[tuple[int, int]], str]:
    """The spans of the P/R operators nested in `text`, and `text` without them."""
    spans, position = [], 0
    for match in _OPERATOR.finditer(text):
        if match.start() < position:
            continue
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"[": 1, "]": -1}.get(text[end], 0)
            end += 1
        spans.append((match.start(), end))
        position = end
    bare, position = [], 0
    for start, end in spans:
        bare.append(text[position:start])
        position = end
    bare.append(text[position:])
    return spans, "".join(bare)


def _single_bound(path) -> bool:
    """A bounded until with one integer upper bound (not a reward or time bound)."""
    try:
        int(str(path.upper_bound_expression))
    except (RuntimeError, ValueError):
        return False
    return True


def _direction(formula) -> tuple[bool, float | None, bool]:
    """(maximize, threshold, strict) of a P or R operator."""
    if formula.has_bound:
        comparison = formula.comparison_type
        maximize = comparison in (storm.ComparisonType.GEQ, storm.ComparisonType.GREATER)
        strict = comparison in (storm.ComparisonType.GREATER, storm.ComparisonType.LESS)
        return maximize, float(formula.threshold), strict
    if not formula.has_optimality_type:
        raise InputError("--spec", f"{formula}: say max=? or min=? (the model has choices)")
    return formula.optimality_type == storm.OptimizationDirection.MAXIMIZE, None, False


def _evaluate_state_operators(env, model, path_text: str) -> tuple[dict, str]:
    """Replace every P/R operator nested in a path formula by a fresh label holding where
    it holds on the full model (not on a restriction of it, where its value would differ)."""
    labels = {}
    pieces, position = [], 0
    for start, end in _split_operators(path_text)[0]:
        name = f"__verify_state_{len(labels)}"
        nested = storm.parse_properties(path_text[start:end], source=env.objective_source)[0]
        labels[name] = storm.satisfying_states(model, nested.get_raw_formula())
        pieces += [path_text[position:start], f'"{name}"']
        position = end
    pieces.append(path_text[position:])
    return labels, "".join(pieces)


def _performance_source(env: Environment, name: str, text: str) -> str:
    """R{name}: a reward structure of the model, else the reward TOML `name.toml` in the
    model's `rewards/` folder or beside the model (PRISM's grammar takes no paths there)."""
    if name in env.mdp.rewards:
        return name
    folder = Path(env.path).parent
    for candidate in (folder / "rewards" / f"{name}.toml", folder / f"{name}.toml"):
        if candidate.is_file():
            return str(candidate)
    known = ", ".join(repr(n) for n in env.mdp.rewards) or "none"
    raise InputError(
        env.objective_source,
        f"{text}: {name!r} is neither a reward structure of the model (it has: {known}) nor "
        f"a reward file {name}.toml in {folder / 'rewards'} or {folder}",
    )


def _reward_objective(env: Environment, formula, text: str) -> Objective:
    """R{name} [ C ] / [ F target ] / [ Cdiscount=γ ]: the performance as objective."""
    from verifier.rewards import resolve_reward

    maximize, threshold, strict = _direction(formula)
    if not formula.has_reward_model_name():
        names = sorted(env.mdp.rewards)
        if len(names) != 1:
            raise InputError(
                env.objective_source, f'{text}: name the performance reward: R{{"name"}}...'
            )
        name = names[0]
    else:
        name = formula.reward_name
    performance = resolve_reward(_performance_source(env, name, text), env.mdp)
    path = formula.subformula
    target = None
    if path.is_eventually_formula:
        model = env.storm_model if env.maze is not None else storm.to_storm(env.mdp)
        form, discount = REACH, 1.0
        target = storm.satisfying_states(model, path.subformula)
    elif path.is_discounted_total_reward_formula:
        form, discount = DISCOUNTED, float(Fraction(str(path.discount_factor_rational)))
    elif str(path) == "C":
        form, discount = TOTAL, performance.discount
        if discount < 1.0:
            form = DISCOUNTED
    else:
        raise InputError(env.objective_source, f"{text}: {SUPPORTED}")
    objective_performance = Performance(name, performance.values, form, discount, target)
    return Objective(
        text,
        None,
        None,
        None,
        maximize,
        threshold,
        strict,
        REWARD,
        performance=objective_performance,
    )
