"""PRISM properties parsed by Storm once and described in the verifier's own terms
(`Property`, `StateFormula`): the analyses read the fields, never Storm's formula objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import stormpy
from stormpy.logic import ComparisonType, OptimizationDirection

from verifier.errors import InputError
from verifier.storm.core import PROPERTY_PREFIX, check_nesting, storm_message
from verifier.storm.prism import PrismProgram, zero_division

# The forms of a property's path formula (Property.form).
UNTIL, GLOBALLY, PATH = "until", "globally", "path"  # P [ ... ]
TOTAL, REACH, DISCOUNTED = "total", "reach", "discounted"  # R [ C ], [ F ψ ], [ Cdiscount=γ ]
_COMPARISONS = {
    ComparisonType.GEQ: ">=",
    ComparisonType.GREATER: ">",
    ComparisonType.LEQ: "<=",
    ComparisonType.LESS: "<",
}


@dataclass(frozen=True, slots=True, eq=False)
class StateFormula:
    """A state formula inside a property (`!"lava"`, `"exit" | "goal"`), to ask where it
    holds. `formula` is Storm's, for this module only."""

    text: str
    formula: object = field(repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class Property:
    """One PRISM property, parsed by Storm once and described in the verifier's terms.
    Storm's formula (`formula`) is for this module only: the analyses read the fields.

    operator    "P" or "R"; "" for what cannot be an objective (`problem` says why)
    direction   "max" or "min" as written (`Pmax`), else None
    comparison  ">=", ">", "<=" or "<" for a bound; None for a query (`=?`)
    threshold   the bound's value (None for a query)
    reward      the reward structure an R operator names (None when it names none)
    form        P: until (`left U<=steps right`, `F right`: left None), globally (`G right`)
                or path (every other path formula: LTL, X, nested operators);
                R: total (`[ C ]`), reach (`[ F right ]`), discounted (`[ Cdiscount=γ ]`);
                "" for other R forms
    path        the path formula as Storm prints it
    source      where the property was written (`--spec`, a .props file, a maze's intended)
    """

    text: str
    operator: str
    direction: str | None
    comparison: str | None
    threshold: float | None
    reward: str | None
    form: str
    path: str
    source: str
    left: StateFormula | None = None
    right: StateFormula | None = None
    steps: int | None = None
    discount: float | None = None
    problem: str | None = None
    formula: Any = field(default=None, repr=False)  # stormpy's Property

    def __str__(self) -> str:
        return self.text


def parse_properties(
    text: str,
    prism: PrismProgram | None = None,
    source: str = "--spec",
    labels: Iterable[str] = (),
) -> list[Property]:
    """Parse PRISM-syntax properties: one per line or separated by ';', `//` comments, a
    property may span lines inside its brackets. InputError (with the line) if one is
    malformed or divides by zero; `labels` (a maze's) are suggested when a property names
    something else."""
    statements = _statements(text)
    if not statements:
        raise InputError(source, "no property found")
    properties = []
    for line, statement in statements:
        place = f"line {line}" if len(statements) > 1 or "\n" in text.strip() else None
        if _CONSTANT.match(statement):
            raise InputError(
                source,
                f"{statement.split('=')[0].strip()}: constants in property files are not "
                "supported; define the constant in the PRISM model (or --const), or write "
                "its value in the property",
                place,
            )
        check_nesting(statement, source, PROPERTY_PREFIX, place)
        try:
            if prism is None:
                parsed = stormpy.parse_properties(statement)
            else:
                parsed = stormpy.parse_properties(statement, prism.program)
        except Exception as exc:
            raise InputError(source, _property_message(exc, statement, labels), place) from None
        for prop in parsed:
            _check_property(prop, prism, source, place)
            try:
                properties.append(_describe(prop.get_raw_formula(), source))
            except RuntimeError as exc:  # Storm refusing a part it reads lazily (Cdiscount=1)
                message = storm_message(exc)
                if "Discount factor" in message:
                    message = "Cdiscount=γ needs 0 < γ < 1 (an undiscounted return is [ C ])"
                raise InputError(source, f"{prop.get_raw_formula()}: {message}", place) from None
    return properties


_CONSTANT = re.compile(r"const\b")


def _describe(formula, source: str) -> Property:
    """Our description of one of Storm's property formulas."""
    text = str(formula)
    problem = unsupported(formula)
    if problem is not None or not (
        formula.is_probability_operator_formula or formula.is_reward_operator_formula
    ):
        return Property(
            text, "", None, None, None, None, "", "", source, problem=problem, formula=formula
        )
    direction = None
    if formula.has_optimality_type:
        maximum = formula.optimality_type == OptimizationDirection.MAXIMIZE
        direction = "max" if maximum else "min"
    comparison = threshold = None
    if formula.has_bound:
        comparison = _COMPARISONS[formula.comparison_type]
        threshold = float(formula.threshold)
    path = formula.subformula
    fields: dict = {}
    if formula.is_reward_operator_formula:
        operator = "R"
        reward = formula.reward_name if formula.has_reward_model_name() else None
        if path.is_eventually_formula:
            fields = {"form": REACH, "right": StateFormula(str(path.subformula), path.subformula)}
        elif path.is_discounted_total_reward_formula:
            discount = float(Fraction(str(path.discount_factor_rational)))
            fields = {"form": DISCOUNTED, "discount": discount}
        else:
            fields = {"form": TOTAL if str(path) == "C" else ""}
    else:
        operator, reward = "P", None
        fields = _probability_form(path)
    return Property(
        text,
        operator,
        direction,
        comparison,
        threshold,
        reward,
        path=str(path),
        source=source,
        formula=formula,
        **fields,
    )


def _probability_form(path) -> dict:
    """The form of a P operator's path formula and its state formulas."""
    until = path.is_until_formula or path.is_eventually_formula
    if path.is_bounded_until_formula:
        until = not path.has_lower_bound and _single_bound(path)
    if until and path.is_eventually_formula and _is_state_formula(str(path.subformula)):
        return {"form": UNTIL, "right": StateFormula(str(path.subformula), path.subformula)}
    if until and not path.is_eventually_formula:
        parts = (path.left_subformula, path.right_subformula)
        if all(_is_state_formula(str(part)) for part in parts):
            steps = int(str(path.upper_bound_expression)) if path.is_bounded_until_formula else None
            left, right = (StateFormula(str(part), part) for part in parts)
            return {"form": UNTIL, "left": left, "right": right, "steps": steps}
    safety = re.fullmatch(r"G (.*)", str(path))
    if safety and _is_state_formula(safety.group(1)):
        return {"form": GLOBALLY, "right": StateFormula(str(path.subformula), path.subformula)}
    return {"form": PATH}


def _single_bound(path) -> bool:
    """A bounded until with one integer upper bound (not a reward or time bound)."""
    try:
        int(str(path.upper_bound_expression))
    except (RuntimeError, ValueError):
        return False
    return True


_OPERATOR = re.compile(r"(?:P|R|LRA|T|S)(?:\{[^}]*\})?(?:min|max)?(?:=\?|[<>]=?\s*[^\[\s]+)\s*\[")


def _is_state_formula(text: str) -> bool:
    """No temporal operator outside quotes and nested P/R operators."""
    _, bare = split_operators(re.sub(r'"[^"]*"', '""', text))
    return not re.search(r"\b[FGXU]\b", bare)


def split_operators(text: str) -> tuple[list[tuple[int, int]], str]:
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


def _statements(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each property: split at ';' and at line ends outside brackets."""
    statements: list[tuple[int, str]] = []
    current: list[str] = []
    first, depth = 1, 0
    for number, line in enumerate(text.splitlines() or [""], 1):
        line = line.split("//", 1)[0]
        for piece_index, piece in enumerate(line.split(";")):
            if piece_index:  # a ';' ended the statement before this piece
                statements.append((first, "\n".join(current)))
                current, first, depth = [], number, 0
            if not current:
                first = number
            current.append(piece)
            depth += piece.count("[") + piece.count("(") - piece.count("]") - piece.count(")")
        if depth <= 0:
            statements.append((first, "\n".join(current)))
            current, depth = [], 0
    statements.append((first, "\n".join(current)))
    return [(line, statement.strip()) for line, statement in statements if statement.strip()]


_BOUNDED_GLOBALLY = re.compile(r"\bG\s*(<=?|>=?)\s*([\w.]+)\s*(.*?)\s*\]?\s*$", re.S)


def _property_message(exc: Exception, statement: str, labels: Iterable[str]) -> str:
    message = storm_message(exc)
    bounded = _BOUNDED_GLOBALLY.search(statement)
    if bounded:
        operand = bounded.group(3).rstrip("] ") or "ψ"
        message += (
            f"; Storm's grammar has no bounded G: write !(F{bounded.group(1)}{bounded.group(2)} "
            f"!({operand})) for G{bounded.group(1)}{bounded.group(2)} {operand}"
        )
    labels = sorted(labels)
    if labels and "access to model variables" in str(exc):
        shown = ", ".join(f'"{label}"' for label in labels[:8])
        more = ", ..." if len(labels) > 8 else ""
        message += f" (on a maze, properties can use labels only: {shown}{more})"
    return message


def _check_property(prop, prism: PrismProgram | None, source: str, place: str | None) -> None:
    """InputError if a constant expression of `prop` (a bound, a step bound) divides by
    zero: Storm would abort evaluating it."""
    formula = prop.get_raw_formula()
    text = str(formula)
    constants = {}
    if prism is not None:
        constants = {
            c.expression_variable: c.definition for c in prism.program.constants if c.defined
        }
    for expression in _formula_expressions(formula):
        if constants:
            expression = expression.substitute(constants)
        zero = zero_division(expression)
        if zero is not None:
            raise InputError(source, f"{text}: {zero} divides by zero", place)


def unsupported(formula) -> str | None:
    """Why a parsed property cannot be an objective here (multi-objective, quantile, a bare
    state formula), or None."""
    if formula.is_multi_objective_formula:
        return "multi-objective properties are not objectives"
    if str(formula).startswith("quantile"):
        return "quantile properties are not supported"
    if not hasattr(formula, "has_bound"):
        return (
            "is a state formula, not a query; ask for a probability or a bound, "
            'e.g. Pmax=? [ F "goal" ] or P>=0.9 [ F "goal" ]'
        )
    if str(formula).startswith("LRA"):
        return "long-run averages (LRA, S) are not supported as objectives"
    if not (formula.is_probability_operator_formula or formula.is_reward_operator_formula):
        return "only P and R operators are objectives (expected time, T, is not supported)"
    return None


def _formula_expressions(formula) -> list:
    """The number expressions of a formula and its subformulas: bounds, step bounds."""
    found = []
    if getattr(formula, "has_bound", False):
        found.append(formula.threshold_expr)
    if getattr(formula, "is_bounded_until_formula", False):
        found.append(formula.upper_bound_expression)
        if formula.has_lower_bound:
            found.append(formula.lower_bound_expression)
    for name in ("subformula", "left_subformula", "right_subformula"):
        child = getattr(formula, name, None)
        if child is not None:
            found += _formula_expressions(child)
    return found


SUPPORTED = (
    "supported objectives: P operators over path formulas (F, U, G, X, their step bounds, "
    'boolean combinations: LTL) and R{"name"} operators over [ C ], [ F "label" ] or '
    "[ Cdiscount=γ ]"
)
