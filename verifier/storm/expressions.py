"""Expressions over a PRISM model's variables (`x = 3`, `x > 0 & y < N`) evaluated on every
state at once with numpy, on the model's state valuations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import stormpy

from verifier.storm.convert import OUT_OF_BOUNDS_VARIABLE, state_valuations


def expression_mask(model, text: str) -> np.ndarray | None:
    """bool [n_states]: where an expression over the model's variables holds, evaluated on
    its state valuations with numpy; None when `text` is not such an expression."""
    variables = [
        v for v in model.state_valuations.get_all_variables() if v.name != OUT_OF_BOUNDS_VARIABLE
    ]
    if not variables:
        return None
    parser = stormpy.expressions.ExpressionParser(variables[0].manager)
    parser.set_identifier_mapping({v.name: v.get_expression() for v in variables})
    try:
        expression = parser.parse_from_string(text)
    except Exception:
        return None
    if not expression.has_boolean_type():
        return None
    names, values = state_valuations(model, None)
    columns = {name: values[:, i] for i, name in enumerate(names)}
    result = _evaluate(expression, columns)
    return np.broadcast_to(np.asarray(result, dtype=bool), (model.nr_states,)).copy()


_NUMPY_OPERATORS: dict[str, Callable[..., Any]] = {
    "AND": np.logical_and,
    "OR": np.logical_or,
    "XOR": np.logical_xor,
    "IFF": np.equal,
    "IMPLIES": lambda a, b: np.logical_or(np.logical_not(a), b),
    "EQUAL": np.equal,
    "NOT_EQUAL": np.not_equal,
    "LESS": np.less,
    "LESS_OR_EQUAL": np.less_equal,
    "GREATER": np.greater,
    "GREATER_OR_EQUAL": np.greater_equal,
    "PLUS": np.add,
    "TIMES": np.multiply,
    "DIVIDE": np.true_divide,
    "MODULO": np.mod,
    "POWER": np.power,
    "MIN": np.minimum,
    "MAX": np.maximum,
}


def _evaluate(expression, columns: Mapping[str, np.ndarray]):
    """A Storm expression evaluated on every state at once: variables are the valuation
    columns, literals numbers; PRISM's operators as numpy's."""
    if expression.is_variable():
        return columns[expression.get_identifier()]
    if not expression.is_function_application:
        if expression.has_boolean_type():
            return expression.evaluate_as_bool()
        if expression.has_integer_type():
            return expression.evaluate_as_int()
        return expression.evaluate_as_double()
    operator = expression.operator.name
    operands = [_evaluate(expression.get_operand(i), columns) for i in range(expression.arity)]
    if operator == "NOT":
        return np.logical_not(operands[0])
    if operator == "MINUS":
        return np.negative(operands[0]) if len(operands) == 1 else operands[0] - operands[1]
    if operator == "ITE":
        return np.where(*operands)
    if operator == "FLOOR":
        return np.floor(operands[0])
    if operator == "CEIL":
        return np.ceil(operands[0])
    return _NUMPY_OPERATORS[operator](*operands)


# Storm's exceptions that mean the property does not fit the model (the user's to fix);
# every other failure is the machinery's.
