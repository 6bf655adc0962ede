"""Model checking with Storm: properties at the initial states, values and schedulers on every
state, path formulas (LTL), and the reward optima Storm computes.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import stormpy
import stormpy.datastructures
import stormpy.models
from stormpy.logic import ComparisonType, OptimizationDirection

from verifier.errors import InputError
from verifier.mdp import MDP
from verifier.progress import stage
from verifier.storm.convert import to_storm, with_rewards
from verifier.storm.core import (
    add_labels,
    bitvector,
    fast_environment,
    initial_states,
    instance,
    numpy_mask,
    result_values,
    run,
)
from verifier.storm.expressions import expression_mask
from verifier.storm.properties import (
    GLOBALLY,
    Property,
    StateFormula,
    parse_properties,
    split_operators,
)


@dataclass(frozen=True, slots=True, eq=False)
class PropertyResult:
    """One property checked at the initial states.

    values          float64 [k]: the value at each initial state (for a bounded property,
                    the probability or reward that the bound is compared with)
    lower, upper    float64 [k]: Storm's sound bounds on `values`
    holds           for a bounded property, whether it holds in every initial state; None
                    for a query (`=?`)
    direction       on an MDP, which optimum `values` are: "max" or "min"; None on a DTMC
    """

    property: str
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    holds: bool | None
    method: str
    direction: str | None = None

    @builtins.property  # the field `property` shadows the builtin in this class body
    def value(self) -> float:
        """The value over the initial states: the minimum where there are several."""
        return float(self.values.min())


SOUND_METHOD = "Storm sparse engine, sound numerics (certified lower and upper bounds)"


def exact_total_reward(
    rows: list[list[tuple[int, Fraction]]], rewards: list[Fraction], done: np.ndarray
) -> list[Fraction]:
    """Expected total reward until `done` of a Markov chain, in exact rational arithmetic
    (Storm's exact engine): rows[s] lists (successor, probability); every state must reach
    `done` with probability 1."""
    n = len(rows)
    builder = instance(stormpy.datastructures.SparseMatrixBuilder, stormpy.Rational)(
        rows=n, columns=n, entries=sum(len(r) for r in rows), force_dimensions=True
    )
    for s, row in enumerate(rows):
        for target, probability in sorted(row):
            builder.add_next_value(s, target, stormpy.Rational(str(probability)))
    labeling = stormpy.models.StateLabeling(n)
    for name, mask in (("done", done), ("init", np.ones(n, dtype=bool))):
        labeling.add_label(name)
        labeling.set_states(name, bitvector(mask))
    reward_model = instance(stormpy.models.SparseRewardModel, stormpy.Rational)(
        optional_state_reward_vector=[stormpy.Rational(str(r)) for r in rewards]
    )
    components = instance(stormpy.models.SparseModelComponents, stormpy.Rational)(
        transition_matrix=builder.build(),
        state_labeling=labeling,
        reward_models={"r": reward_model},
    )
    model = instance(stormpy.models.SparseDtmc, stormpy.Rational)(components)
    prop = parse_properties('R{"r"}=? [ F "done" ]')[0]
    result = stormpy.model_checking(
        model,
        prop.formula,
        only_initial_states=False,
        environment=stormpy.environments.exact(),
    )
    return [Fraction(str(v)) for v in result.get_value_vector()]


def satisfying_states(model, formula: StateFormula | Property) -> np.ndarray:
    """bool [n_states]: where a state formula (or a bounded property) holds, e.g.
    `!"lava"`."""
    result = _model_check(model, formula.formula, formula.text)
    return numpy_mask(result.get_truth_values_vector(), model.nr_states)


def model_values(model, formula_text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quantitative query on every state of a model in Storm: (values, lower, upper),
    float64 [n_states] each, the bounds certified by Storm's sound engine."""
    formula = stormpy.parse_properties(formula_text)[0].get_raw_formula()
    return result_values(_model_check(model, formula, formula_text))


@stage("model checking with Storm")
def optimize(
    mdp: MDP, formula_text: str, sound: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Values of a `Pmax=?`/`Pmin=?` (or reward) query on every state and an optimal
    memoryless policy: (float64 [n_states], int64 [n_states] global choice index), by
    Storm's sound engine, or its fast default one where the caller certifies the result.
    Step-bounded objectives need policies with memory: there the policy is None."""
    return optimize_model(to_storm(mdp), formula_text, sound)


def optimize_model(
    model, formula_text: str, sound: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """`optimize` on a model already in Storm (whose MDP the caller need not keep)."""
    environment = stormpy.environments.sound() if sound else fast_environment()
    formula = stormpy.parse_properties(formula_text)[0].get_raw_formula()
    values, _, _, policy = _optimum(model, formula, formula_text, environment)
    return values, policy


SCHEDULER_SWEEPS = 10_000


@stage("model checking with Storm")
def until(
    model,
    left: np.ndarray,
    target: np.ndarray,
    maximize: bool | None,
    steps: int | None = None,
    sound: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """P [ left U(<=steps) target ] on a Storm model: of a chain (`maximize` None), or its
    maximum or minimum over schedulers. (values, lower, upper, float64 [n_states] each, and
    an optimal scheduler, global choice per state; None for a chain or a step bound.)

    `sound`: Storm's sound engine; else its topological value iteration stopped after
    SCHEDULER_SWEEPS sweeps, not sound: a scheduler for the caller to certify. (Storm's
    policy iteration did not return on a slowly mixing MDP of 40 states: its inner linear
    solver iterates.) The masks become labels of the model in memory."""
    add_labels(model, {"__until_left": left, "__until_target": target})
    direction = ("min" if maximize is False else "max") if model.is_nondeterministic_model else ""
    bound = "" if steps is None else f"<={steps}"
    text = f'P{direction}=? [ "__until_left" U{bound} "__until_target" ]'
    formula = stormpy.parse_properties(text)[0].get_raw_formula()
    if sound:
        environment = stormpy.environments.sound()
    else:
        environment = fast_environment()
        environment.solver().min_max().maximal_number_of_iterations = SCHEDULER_SWEEPS
    return _optimum(model, formula, text, environment)


def _optimum(model, formula, text: str, environment):
    """(values, lower, upper, global scheduler or None) of a query on a Storm model."""
    memoryless = model.is_nondeterministic_model and not (
        formula.subformula.is_bounded_until_formula
    )
    result = run(
        model, formula, text, "objective", extract_scheduler=memoryless, environment=environment
    )
    values, lower, upper = result_values(result)
    return values, lower, upper, _scheduler(result, model) if memoryless else None


def _scheduler(result, model) -> np.ndarray:
    """int64 [n_states]: a memoryless scheduler's global choice in each state, read as one
    bit vector; the first choice where Storm leaves it open (states whose value its graph
    precomputation settled, where every choice is as good)."""
    groups = model.nondeterministic_choice_indices
    support = result.get_scheduler().compute_action_support(groups)
    chosen = np.fromiter(support, dtype=np.int64)
    row_groups = np.asarray(groups, dtype=np.int64)
    policy = row_groups[:-1].copy()
    policy[np.searchsorted(row_groups, chosen, side="right") - 1] = chosen
    return policy


@dataclass(frozen=True, slots=True, eq=False)
class PathQuery:
    """A P operator's path formula made ready to check on any model with the same states:
    its text over labels, and the masks of the labels it adds (the P and R operators
    nested in it, evaluated once on the full model, where they mean what φ says)."""

    text: str
    labels: Mapping[str, np.ndarray]


def path_query(model, prop: Property) -> PathQuery:
    """`prop`'s path formula, its nested operators evaluated on `model` (the full model).
    InputError for expressions over a PRISM model's variables in an LTL formula (they are
    not checked on the restrictions and chains that the path formula is asked of); in G ψ,
    ψ is evaluated here, and may have them."""
    if prop.form == GLOBALLY and prop.right is not None:
        invariant = satisfying_states(model, prop.right)
        return PathQuery('G "__invariant"', {"__invariant": invariant})
    try:
        stormpy.parse_properties(f"P=? [ {prop.path} ]")
    except Exception:
        raise InputError(
            prop.source,
            f"{prop.text}: expressions over variables are supported in reach-avoid (U, F) and "
            'G objectives; in other path formulas name them by a label (label "at3" = x=3; in '
            'the PRISM file, then "at3")',
        ) from None
    labels: dict[str, np.ndarray] = {}
    pieces, position = [], 0
    for start, end in split_operators(prop.path)[0]:
        name = f"__nested_{len(labels)}"
        (nested,) = parse_properties(prop.path[start:end], source=prop.source)
        labels[name] = satisfying_states(model, nested)
        pieces += [prop.path[position:start], f'"{name}"']
        position = end
    pieces.append(prop.path[position:])
    return PathQuery("".join(pieces), labels)


def path_values(
    model,
    query: PathQuery,
    direction: str | None,
    idle: np.ndarray | None = None,
    negate: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(direction)=? [ ψ ] on every state of a Storm model (values, lower, upper), ψ the
    query's path formula, or its negation with `negate`, and with `idle` (bool [n_states])
    conjoined with `F G idle` (the runs that end up idling there): LTL through Storm's
    automaton product, sound engine."""
    path = f"!({query.text})" if negate else query.text
    labels = dict(query.labels)
    if idle is not None:
        labels["__idle"] = idle
        path = f'({path}) & F G "__idle"'
    add_labels(model, labels)
    text = f"P{direction or ''}=? [ {path} ]"
    formula = stormpy.parse_properties(text)[0].get_raw_formula()
    return result_values(_model_check(model, formula, text))


DISCOUNT_PRECISION = "1/1000000000000"


@stage("solving for the optimal values")
def discounted_values(model, rewards: np.ndarray, discount: float) -> np.ndarray:
    """float64 [n_states]: the greatest expected discounted reward (`rewards` float64
    [n_choices], any signs), by Storm's value iteration to relative precision 1e-12. Not
    certified here: the caller bounds the error by the Bellman residual / (1 - discount)."""
    text = f'R{{"__reward"}}max=? [ Cdiscount={Fraction(discount).limit_denominator(10**12)} ]'
    formula = stormpy.parse_properties(text)[0].get_raw_formula()
    environment = stormpy.Environment()
    solver = environment.solver().min_max()
    solver.precision = stormpy.Rational(DISCOUNT_PRECISION)
    solver.maximal_number_of_iterations = 10_000_000
    result = run(
        with_rewards(model, {"__reward": rewards}),
        formula,
        text,
        "--reward",
        environment=environment,
    )
    return np.asarray(result.get_value_vector(), dtype=np.float64)


TOTAL_PRECISION = "1/1000000000000"


@stage("solving for the optimal values")
def total_values(model, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The greatest expected total reward (`rewards` float64 [n_choices], all >= 0, no end
    component earning any) by Storm's sound engine at relative precision 1e-12: (values,
    lower, upper), float64 [n_states] each. (Storm gives no scheduler for total rewards.)"""
    text = 'R{"__reward"}max=? [ C ]'
    formula = stormpy.parse_properties(text)[0].get_raw_formula()
    environment = stormpy.environments.sound()
    environment.solver().min_max().precision = stormpy.Rational(TOTAL_PRECISION)
    rewarded = with_rewards(model, {"__reward": rewards})
    return result_values(run(rewarded, formula, text, "--reward", environment=environment))


@stage("model checking with Storm")
def check(model, prop: Property, source: str | None = None, best: bool = False) -> PropertyResult:
    """Check one property on a Storm model; values at its initial states.

    A bounded property `P>=p [...]` on an MDP holds when it holds under every scheduler, so
    its value is the minimum (for lower bounds) or maximum (upper bounds) over schedulers;
    an explicit `Pmax>=p` / `Pmin<p` is honoured (its value is that optimum). With `best`,
    the value is the other optimum, the best any scheduler does for the bound (then `holds`
    is not computed). A property Storm refuses is an InputError naming `source` (default:
    where it was written).
    """
    source = source or prop.source
    formula = prop.formula
    quantitative = formula
    if formula.has_bound:
        quantitative = formula.clone()
        quantitative.remove_bound()
        if model.is_nondeterministic_model and not formula.has_optimality_type:
            lower_bound = formula.comparison_type in (ComparisonType.GEQ, ComparisonType.GREATER)
            quantitative.set_optimality_type(
                OptimizationDirection.MINIMIZE
                if lower_bound != best
                else OptimizationDirection.MAXIMIZE
            )
    direction = None
    if model.is_nondeterministic_model and quantitative.has_optimality_type:
        maximum = quantitative.optimality_type == OptimizationDirection.MAXIMIZE
        direction = "max" if maximum else "min"
    result = _model_check(model, quantitative, prop.text, source)
    initial = initial_states(model)
    values, lower, upper = (v[initial] for v in result_values(result))
    holds = None
    if formula.has_bound and not best:
        truth = _model_check(model, formula, prop.text, source).get_truth_values_vector()
        holds = all(truth[s] for s in initial.tolist())
    return PropertyResult(prop.text, values, lower, upper, holds, SOUND_METHOD, direction)


def _model_check(model, prop, text: str, source: str = "--spec"):
    """`run` with Storm's sound engine. On a model Storm built from PRISM, an expression over
    its variables in a state formula (`x = 3`), which Storm looks up as a label of that name,
    becomes one: evaluated on the state valuations, added in memory, and the check re-run."""
    added: set[str] = set()
    while True:
        try:
            return run(model, prop, text, source, environment=stormpy.environments.sound())
        except InputError as exc:
            unknown = _UNKNOWN_LABEL.search(exc.message)
            if unknown is None or unknown.group(1) in added or not model.has_state_valuations():
                raise
            name = unknown.group(1)
            mask = expression_mask(model, name)
            if mask is None:
                raise
            add_labels(model, {name: mask})
            added.add(name)


_UNKNOWN_LABEL = re.compile(r"unknown label '(.+?)'")
