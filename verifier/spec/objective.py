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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifier.engine.query import (
    DISCOUNTED,
    GLOBALLY,
    PATH,
    REACH,
    SUPPORTED,
    TOTAL,
    UNTIL,
    PathQuery,
    Property,
    StateFormula,
)
from verifier.errors import InputError
from verifier.inputs.environment import Environment

# A policy meets a query (`Pmax=? [...]`) when it attains the optimum within this (relative
# to the optimum's magnitude, at least 1, for a reward objective).
OBJECTIVE_TOLERANCE = 1e-6

REWARD = "reward"  # the objective kinds: UNTIL, PATH (every other P form) and REWARD


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
    path          the path formula, ready to ask of the model, its restrictions and its
                  policies' chains (path form only)
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
    path: PathQuery | None = None
    forbidden: np.ndarray | None = None
    performance: Performance | None = None

    def until_sets(self) -> tuple[np.ndarray, np.ndarray]:
        """(left, target) of the until form; ValueError for the other forms (a caller's bug)."""
        if self.left is None or self.target is None:
            raise ValueError(f"{self.text}: a {self.kind} objective has no left and target sets")
        return self.left, self.target

    def path_query(self) -> PathQuery:
        """`path` of the path form; ValueError for the other forms (a caller's bug)."""
        if self.path is None:
            raise ValueError(f"{self.text}: a {self.kind} objective has no path formula")
        return self.path

    def reward_performance(self) -> Performance:
        """`performance` of the reward form; ValueError for the other forms (a caller's bug)."""
        if self.performance is None:
            raise ValueError(f"{self.text}: a {self.kind} objective has no performance")
        return self.performance

    def satisfied(self, value: np.ndarray, optimum: np.ndarray) -> np.ndarray:
        """bool: does a policy with this value (probability or performance) meet φ?"""
        if self.threshold is None:
            slack: float | np.ndarray = OBJECTIVE_TOLERANCE
            if self.kind == REWARD:
                finite = np.where(np.isfinite(optimum), optimum, 0.0)
                slack = OBJECTIVE_TOLERANCE * np.maximum(1.0, np.abs(finite))
            if self.maximize:
                return value >= optimum - slack
            return value <= optimum + slack
        if self.maximize:
            return value > self.threshold if self.strict else value >= self.threshold
        return value < self.threshold if self.strict else value <= self.threshold


def resolve_objective(env: Environment, prop: Property) -> Objective:
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


def resolve_intended(env: Environment, prop: Property) -> Objective:
    """Any objective of the module docstring, resolved on the model of `env`."""
    if prop.operator == "R":
        return _reward_objective(env, prop)
    if prop.operator != "P":
        raise InputError(env.objective_source, f"{prop.text}: {SUPPORTED}")
    model = env.model
    maximize, threshold, strict = _direction(prop)
    if prop.form != UNTIL:
        forbidden = ~model.states(_right(prop)) if prop.form == GLOBALLY else None
        return Objective(
            prop.text,
            None,
            None,
            None,
            maximize,
            threshold,
            strict,
            PATH,
            path=model.path_query(prop),
            forbidden=forbidden,
        )
    target = model.states(_right(prop))
    everywhere = np.ones(env.mdp.n_states, dtype=bool)
    left = everywhere if prop.left is None else model.states(prop.left)
    return Objective(
        prop.text,
        left,
        target,
        prop.steps,
        maximize,
        threshold,
        strict,
        forbidden=~left & ~target,
    )


def _right(prop: Property) -> StateFormula:
    """The state formula of G ψ, F ψ and U ψ; ValueError for a property without one."""
    if prop.right is None:
        raise ValueError(f"{prop.text}: a {prop.form} property without its right operand")
    return prop.right


def _direction(prop: Property) -> tuple[bool, float | None, bool]:
    """(maximize, threshold, strict) of a P or R operator."""
    if prop.comparison is not None:
        return prop.comparison in (">=", ">"), prop.threshold, prop.comparison in (">", "<")
    if prop.direction is None:
        raise InputError("--spec", f"{prop.text}: say max=? or min=? (the model has choices)")
    return prop.direction == "max", None, False


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


def _reward_objective(env: Environment, prop: Property) -> Objective:
    """R{name} [ C ] / [ F target ] / [ Cdiscount=γ ]: the performance as objective."""
    from verifier.spec.reward_file import resolve_reward

    maximize, threshold, strict = _direction(prop)
    name = prop.reward
    if name is None:
        names = sorted(env.mdp.rewards)
        if len(names) != 1:
            raise InputError(
                env.objective_source, f'{prop.text}: name the performance reward: R{{"name"}}...'
            )
        name = names[0]
    performance = resolve_reward(_performance_source(env, name, prop.text), env.mdp)
    target = None
    if prop.form == REACH:
        form, discount = REACH, 1.0
        target = env.model.states(_right(prop))
    elif prop.form == DISCOUNTED:
        if prop.discount is None:
            raise ValueError(f"{prop.text}: a discounted property without its discount")
        form, discount = DISCOUNTED, prop.discount
    elif prop.form == TOTAL:
        form, discount = TOTAL, performance.discount
        if discount < 1.0:
            form = DISCOUNTED
    else:
        raise InputError(env.objective_source, f"{prop.text}: {SUPPORTED}")
    objective_performance = Performance(name, performance.values, form, discount, target)
    return Objective(
        prop.text,
        None,
        None,
        None,
        maximize,
        threshold,
        strict,
        REWARD,
        performance=objective_performance,
    )
