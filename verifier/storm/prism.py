"""PRISM input: parse a program, define its constants, build its model with Storm, and turn
Storm's complaints into errors naming the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import stormpy
import stormpy.developer

from verifier.budget import over_budget
from verifier.errors import InputError
from verifier.progress import stage
from verifier.storm.convert import exported_arrays
from verifier.storm.core import PRISM_PREFIX, check_nesting, instance, storm_message


@dataclass(frozen=True, slots=True, eq=False)
class PrismProgram:
    """A parsed PRISM program with its constants defined, its variables in declaration order
    (Storm's API does not keep that order; policies' observations depend on it) and its
    action names in order of first use."""

    program: Any  # stormpy's PrismProgram
    variables: tuple[str, ...]
    actions: tuple[str, ...]
    source: str
    text: str = ""
    constants: tuple[tuple[str, str], ...] = ()


_DECLARATION = re.compile(
    r"^\s*(?:global\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?:\[|bool\b|int\b)", re.M
)


def load_prism(path: str | Path, constants: Mapping[str, str] | None = None) -> PrismProgram:
    """Parse a PRISM file and define its open constants; InputError naming the file and
    Storm's message on any problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read PRISM file: {exc}") from None
    text = re.sub(r"//[^\n]*", "", text)
    check_nesting(text, source, PRISM_PREFIX)
    _parse_survives_or_raise(source, text)
    try:  # unsimplified first: simplifying turns a variable never updated into a constant
        raw = stormpy.parse_prism_program(source, simplify=False)
        program = raw.simplify()
    except Exception as exc:  # stormpy raises RuntimeError carrying Storm's text
        raise InputError(source, storm_message(exc)) from None
    try:
        supported = program.model_type in _MODEL_TYPES
    except ValueError:  # a type stormpy's enum does not name (smg, pta)
        supported = False
    if not supported:
        keyword = re.search(r"[A-Za-z]+", text)
        name = keyword.group(0) if keyword else "?"
        raise InputError(source, f"model type {name} is not supported; use mdp or dtmc")
    program = _define_constants(program, source, dict(constants or {}))
    _check_ranges(raw, program, source, text)
    names = {v.name for v in program.variables} - {c.name for c in program.constants}
    declared = [n for n in dict.fromkeys(_DECLARATION.findall(text)) if n in names]
    declared += sorted(names - set(declared))  # e.g. from renamed modules
    actions = dict.fromkeys(
        command.action_name
        for module in program.modules
        for command in module.commands
        if command.is_labeled
    )
    return PrismProgram(
        program, tuple(declared), tuple(actions), source, text, tuple((constants or {}).items())
    )


_MODEL_TYPES = (stormpy.io.PrismModelType.MDP, stormpy.io.PrismModelType.DTMC)
# Where Storm's parser folds a constant division (`1/0`, `mod(1,0)`) it aborts the process
# with SIGFPE; such text is parsed in a child process first.
_DIVISION = re.compile(r"/|\bmod\b|\bpow\b")
_ZERO_DIVISOR = re.compile(
    r"/\s*\(?\s*0*\.?0+\s*\)?(?![\w.])|\bmod\s*\([^()]*,\s*\(?\s*0+\s*\)?\s*\)"
)


def _parse_survives_or_raise(source: str, text: str) -> None:
    """InputError if Storm's parser would kill the process on this file (division by zero
    in a constant expression); checked in a forked child, only for text that divides."""
    if not _DIVISION.search(text) or _survives(lambda: stormpy.parse_prism_program(source)):
        return
    lines = [i for i, line in enumerate(text.splitlines(), 1) if _ZERO_DIVISOR.search(line)]
    raise InputError(
        source,
        "an expression divides by zero (such as 1/0 or mod(1,0)); Storm cannot evaluate it",
        f"line {lines[0]}" if lines else None,
    )


def _survives(action) -> bool:
    """Run `action` in a forked child: False when a signal killed the child (Storm aborting
    on a division by zero), True otherwise (exceptions are the parent's to see again)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            action()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return not os.WIFSIGNALED(status)


def _define_constants(program, source: str, constants: dict[str, str]):
    known = {c.name: c for c in program.constants}
    for name in constants:
        if name not in known:
            raise InputError("--const", f"{name!r} is not a constant of {source}")
        if known[name].defined:
            raise InputError(
                "--const", f"{name} is already defined in {source}; only open constants can be set"
            )
    parser = stormpy.expressions.ExpressionParser(program.expression_manager)
    parser.set_identifier_mapping({})
    definitions = {}
    for name, text in constants.items():
        check_nesting(text, "--const", PRISM_PREFIX, name)
        try:
            expression = parser.parse_from_string(text)
        except Exception as exc:
            raise InputError("--const", f"{name}={text}: {storm_message(exc)}") from None
        _check_expression(expression, "--const", f"{name}={text}")
        constant = known[name]
        if constant.type.is_integer and not expression.has_integer_type():
            raise InputError("--const", f"{name}={text}: {name} is an int constant")
        if constant.type.is_boolean != expression.has_boolean_type():
            kind = "a bool" if constant.type.is_boolean else "a number"
            raise InputError("--const", f"{name}={text}: {name} needs {kind}")
        definitions[constant.expression_variable] = expression
    if definitions:
        try:
            program = program.define_undefined_constants(definitions)
        except Exception as exc:
            raise InputError("--const", storm_message(exc)) from None
    undefined = [c.name for c in program.constants if not c.defined and c.name not in constants]
    if undefined:
        raise InputError(
            source,
            f"constants {', '.join(undefined)} are not defined; set them with --const NAME=VALUE",
        )
    return program


def _check_ranges(raw, program, source: str, text: str) -> None:
    """InputError for a bounded int variable whose range is empty (`s : [5..0]`) or whose
    initial value lies outside it (`s : [0..1] init 7`): Storm builds such a model without
    complaint (the variable is a constant when nothing updates it). `raw` is the program as
    written, `program` the one with every constant defined."""
    constants = {c.expression_variable: c.definition for c in program.constants if c.defined}
    variables = list(raw.global_integer_variables)
    variables += [v for module in raw.modules for v in module.integer_variables]
    for variable in variables:
        bounds = (variable.lower_bound_expression, variable.upper_bound_expression)
        if any("notinitialized" in str(e) for e in bounds):  # `int`: unbounded
            continue
        found = [_constant_value(e, constants) for e in bounds]
        initial = variable.initial_value_expression
        if "notinitialized" not in str(initial):  # else the lowest value, or an init block
            found.append(_constant_value(initial, constants))
        values = [v for v in found if v is not None]
        if len(values) < len(found):
            continue
        low, high, *start = values
        place = _declaration_line(text, variable.name)
        if low > high:
            raise InputError(source, f"{variable.name} : [{low}..{high}] is an empty range", place)
        if start and not low <= start[0] <= high:
            raise InputError(
                source,
                f"{variable.name} starts at {start[0]}, outside its range [{low}..{high}]",
                place,
            )


def _constant_value(expression, constants) -> int | None:
    """The integer value of a constant expression (constants substituted), None where it
    depends on a variable or divides by zero (Storm's exploration reports those)."""
    for _ in range(len(constants) + 1):
        substituted = expression.substitute(constants) if constants else expression
        if str(substituted) == str(expression):
            break
        expression = substituted
    if expression.contains_variables() or zero_division(expression) is not None:
        return None
    return expression.evaluate_as_int()


def _declaration_line(text: str, name: str) -> str | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*(?:global\s+)?{re.escape(name)}\s*:", line):
            return f"line {number}"
    return None


def _check_expression(expression, source: str, text: str) -> None:
    """InputError if a constant part of `expression` divides by zero (Storm would abort
    with SIGFPE evaluating it). Divisors over variables are left to Storm's exploration
    checks."""
    zero = zero_division(expression)
    if zero is not None:
        raise InputError(source, f"{text}: {zero} divides by zero")


_DIVIDING = ("DIVIDE", "MODULO")


def zero_division(expression) -> str | None:
    """The first subexpression (as text) whose divisor is a constant zero, else None;
    children first, so that evaluating a divisor never divides by zero itself."""
    if not expression.is_function_application:
        return None
    for i in range(expression.arity):
        found = zero_division(expression.get_operand(i))
        if found is not None:
            return found
    operator = expression.operator.name
    if operator not in (*_DIVIDING, "POWER") or expression.arity != 2:
        return None
    base, divisor = expression.get_operand(0), expression.get_operand(1)
    if operator == "POWER":
        if base.contains_variables() or divisor.contains_variables():
            return None
        if base.evaluate_as_double() == 0 and divisor.evaluate_as_double() < 0:
            return str(expression)
        return None
    if divisor.contains_variables() or divisor.has_boolean_type():
        return None
    return str(expression) if divisor.evaluate_as_double() == 0 else None


@stage("building the PRISM model with Storm")
def build_prism(prism: PrismProgram, properties: Iterable = (), max_states: int | None = None):
    """Build a PRISM program with Storm, with state valuations, choice labels, every label and
    reward structure; Storm's exploration checks on (probabilities that do not sum to one,
    updates out of a variable's range are InputErrors naming the line).

    Without properties this is the full reachable model. With properties, Storm also builds
    the labels of their expressions over variables (`F row=3`) and makes states where their
    outcome is decided absorbing: a smaller model, right for checking those properties only.
    With `max_states`, exploration stops one state past it: ResourceLimit, before the work.
    """
    try:
        model = _explore(prism, list(properties), max_states, checks=True)
    except InputError as exc:
        if not _rounding_only(exc.message):
            raise
        # Storm sums decimal probabilities in floating point (0.8 + 0.1 + 0.1 != 1) and
        # compares exactly: build without its checks, and check ranges and sums here. The
        # out-of-bounds marker adds a variable to the program, so it gets a fresh copy.
        program = stormpy.parse_prism_program(prism.source)
        program = _define_constants(program, prism.source, dict(prism.constants))
        model = _explore(prism, list(properties), max_states, checks=False, program=program)
        _check_distributions(prism, model)
    if max_states is not None and model.nr_states > max_states:
        raise over_budget(prism.source, max_states, f": exploration stopped at {model.nr_states}")
    return model


def _explore(prism, properties: list, max_states: int | None, checks: bool, program=None):
    formulas = [prop.formula for prop in properties]
    options = stormpy.BuilderOptions(formulas) if formulas else stormpy.BuilderOptions()
    options.set_build_all_labels()
    options.set_build_all_reward_models()
    options.set_build_state_valuations()
    options.set_build_choice_labels()
    options.set_exploration_checks(checks)
    if not checks:
        options.set_add_out_of_bounds_state(True)
    exploration = instance(stormpy.developer.ExplicitModelBuilderOptions)()
    if max_states is not None:
        exploration.exploration_state_limit = max_states + 1
    try:
        builder = instance(stormpy.developer.make_explicit_model_builder)(
            program or prism.program, options, None, exploration
        )
        return builder.build()
    except Exception as exc:
        message = storm_message(exc)
        raise InputError(prism.source, message, _command_line(prism, message)) from None


_SUM = re.compile(r"Probabilities do not sum to one .*\(actually sum to ([-+0-9.eE]+)\)")
# How far from 1 a distribution written in decimals may sum in floating point.
SUM_TOLERANCE = 1e-9


def _rounding_only(message: str) -> bool:
    match = _SUM.search(message)
    return match is not None and abs(float(match.group(1)) - 1.0) <= SUM_TOLERANCE


def _check_distributions(prism: PrismProgram, model) -> None:
    """InputError if an update leaves a variable's range or a choice's probabilities are
    negative or do not sum to 1 (within SUM_TOLERANCE): Storm's exploration checks, done on
    the built model."""
    if model.labeling.contains_label("out_of_bounds") and (
        model.labeling.get_states("out_of_bounds").get_number_of_set_bits()
    ):
        raise InputError(prism.source, "an update leads to a value outside its variable's range")
    arrays = exported_arrays(model)
    probabilities = arrays["branch-to-probability.bin"]
    starts = arrays["choice-to-branches.bin"].astype(np.int64)
    sums = np.add.reduceat(probabilities, starts[:-1]) if len(probabilities) else np.ones(0)
    sums[starts[:-1] == starts[1:]] = 0.0
    bad = np.flatnonzero(
        (np.abs(sums - 1.0) > SUM_TOLERANCE)
        | (
            np.minimum.reduceat(probabilities, starts[:-1]) < 0
            if len(probabilities)
            else np.zeros(0, dtype=bool)
        )
    )
    if len(bad):
        raise InputError(
            prism.source,
            f"the probabilities of a command sum to {sums[bad[0]]:.12g}, not 1 "
            f"({len(bad)} choice(s) of the model)",
        )


def _command_line(prism: PrismProgram, message: str) -> str | None:
    """`line N` of the command a Storm message quotes (as Storm prints it), if found."""
    for module in prism.program.modules:
        for index, command in enumerate(module.commands):
            quoted = [str(command)] + [str(update) for update in command.updates]
            if any(text in message for text in quoted):
                line = _nth_command_line(prism.text, module.name, index)
                return f"line {line}" if line else None
    return None


def _nth_command_line(text: str, module: str, index: int) -> int | None:
    """The line of the `index`-th command (a line starting with `[`) of `module` in PRISM
    text (comments already removed)."""
    inside, seen = False, -1
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if re.match(rf"module\s+{re.escape(module)}\b", stripped):
            inside = True
        elif stripped.startswith("endmodule"):
            inside = False
        elif inside and stripped.startswith("["):
            seen += 1
            if seen == index:
                return number
    return None
