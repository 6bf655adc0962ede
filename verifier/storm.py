"""The one door to Storm (stormpy 2.x): our MDP to and from Storm, PRISM input, checking.

Routes measured in benchmarks/: an MDP goes into Storm through one bulk
`SparseMatrixBuilder.add_next_values` call on numpy arrays (no Python loop per entry), and a
Storm model comes back through its UMB export, whose binary arrays are Storm's own CSR layout.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import stormpy
import stormpy.datastructures
import stormpy.developer
import stormpy.logic
import stormpy.models
from stormpy.logic import ComparisonType, OptimizationDirection

from verifier.errors import BackendError, InputError, ResourceLimit
from verifier.mdp import MDP, csr
from verifier.progress import stage

stormpy.developer.set_log_level(stormpy.developer.LogLevel.OFF)


def _instance(family, value_type=float):
    """A template family's instantiation for `value_type` (stormpy 2.x)."""
    instantiations = family.instantiations
    return (instantiations() if callable(instantiations) else instantiations)[(value_type,)]


def _bitvector(mask: np.ndarray):
    return stormpy.datastructures.BitVector(len(mask), np.flatnonzero(mask).tolist())


def _numpy_mask(bitvector, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[np.fromiter(bitvector, dtype=np.int64)] = True
    return mask


@stage("handing the model to Storm")
def to_storm(mdp: MDP):
    """Our MDP as a Storm sparse MDP (or DTMC), with labels, `init`, choice labels, rewards.

    Written as a UMB archive with numpy and read by Storm's UMB importer: the arrays are
    Storm's own layout, so this is a bulk copy (measured in benchmarks/compile_scaling.py:
    about 5x faster than SparseMatrixBuilder.add_next_values, which converts element by
    element).
    """
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.umb"
        _write_umb(mdp, archive)
        options = stormpy.io.UmbImportOptions()
        options.build_choice_labeling = True
        options.build_state_valuations = False
        return stormpy.build_model_from_umb(str(archive), options=options)


def _write_umb(mdp: MDP, path: Path) -> None:
    """The MDP as an uncompressed UMB archive (Storm's unified binary model format)."""
    matrix = mdp.transitions
    dtmc = mdp.kind == "dtmc"
    files = {
        "state-is-initial.bin": _bits(_initial_mask(mdp)),
        "choice-to-branches.bin": matrix.indptr.astype(np.uint64).tobytes(),
        "branch-to-target.bin": matrix.indices.astype(np.uint64).tobytes(),
        "branch-to-probability.bin": matrix.data.astype(np.float64).tobytes(),
    }
    annotations: dict = {"aps": {}, "rewards": {}}
    for name, mask in mdp.labels.items():
        annotations["aps"][name] = {
            "alias": name,
            "applies-to": ["states"],
            "type": {"size": 1, "type": "bool"},
        }
        files[f"annotations/aps/{name}/states/values.bin"] = _bits(mask)
    for name, values in mdp.rewards.items():
        annotations["rewards"][name] = {
            "alias": name,
            "applies-to": ["choices"],
            "type": {"size": 64, "type": "double"},
        }
        files[f"annotations/rewards/{name}/choices/values.bin"] = values.astype(
            np.float64
        ).tobytes()
    n_actions = 0
    if not dtmc:
        files["state-to-choices.bin"] = mdp.row_groups.astype(np.uint64).tobytes()
        if mdp.actions:
            names = ["", *mdp.actions]  # index 0: unlabelled choices
            encoded = [name.encode() for name in names]
            offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])])
            files["actions/choices/values.bin"] = (
                (mdp.choice_actions + 1).astype(np.uint32).tobytes()
            )
            files["actions/choices/string-mapping.bin"] = offsets.astype(np.uint64).tobytes()
            files["actions/choices/strings.bin"] = b"".join(encoded)
            n_actions = len(names)
    index = {
        "format-version": 1,
        "format-revision": 0,
        "file-data": {"tool": "verifier"},
        "transition-system": {
            "time": "discrete",
            "#players": 0 if dtmc else 1,
            "#states": mdp.n_states,
            "#initial-states": len(mdp.initial_states),
            "#choices": mdp.n_choices,
            "#choice-actions": n_actions,
            "#branches": int(matrix.nnz),
            "#branch-actions": 0,
            "#observations": 0,
            "branch-probability-type": {"size": 64, "type": "double"},
        },
        "annotations": {kind: entries for kind, entries in annotations.items() if entries},
    }
    with tarfile.open(path, "w") as tar:
        _add_to_tar(tar, "index.json", json.dumps(index).encode())
        for name, data in files.items():
            _add_to_tar(tar, name, data)


def _bits(mask: np.ndarray) -> bytes:
    """A bool array as UMB bit vector: little-endian bits in 64-bit words."""
    padded = np.zeros(-(-len(mask) // 64) * 64, dtype=bool)
    padded[: len(mask)] = mask
    return np.packbits(padded, bitorder="little").tobytes()


def _add_to_tar(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _initial_mask(mdp: MDP) -> np.ndarray:
    mask = np.zeros(mdp.n_states, dtype=bool)
    mask[mdp.initial_states] = True
    return mask


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
    _parse_survives_or_raise(source, text)
    try:
        program = stormpy.parse_prism_program(source)
    except Exception as exc:  # stormpy raises RuntimeError carrying Storm's text
        raise InputError(source, _storm_message(exc)) from None
    try:
        supported = program.model_type in _MODEL_TYPES
    except ValueError:  # a type stormpy's enum does not name (smg, pta)
        supported = False
    if not supported:
        keyword = re.search(r"[A-Za-z]+", text)
        name = keyword.group(0) if keyword else "?"
        raise InputError(source, f"model type {name} is not supported; use mdp or dtmc")
    program = _define_constants(program, source, dict(constants or {}))
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
        try:
            expression = parser.parse_from_string(text)
        except Exception as exc:
            raise InputError("--const", f"{name}={text}: {_storm_message(exc)}") from None
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
            raise InputError("--const", _storm_message(exc)) from None
    undefined = [c.name for c in program.constants if not c.defined and c.name not in constants]
    if undefined:
        raise InputError(
            source,
            f"constants {', '.join(undefined)} are not defined; set them with --const NAME=VALUE",
        )
    return program


def _check_expression(expression, source: str, text: str) -> None:
    """InputError if a constant part of `expression` divides by zero (Storm would abort
    with SIGFPE evaluating it). Divisors over variables are left to Storm's exploration
    checks."""
    zero = _zero_division(expression)
    if zero is not None:
        raise InputError(source, f"{text}: {zero} divides by zero")


_DIVIDING = ("DIVIDE", "MODULO")


def _zero_division(expression) -> str | None:
    """The first subexpression (as text) whose divisor is a constant zero, else None;
    children first, so that evaluating a divisor never divides by zero itself."""
    if not expression.is_function_application:
        return None
    for i in range(expression.arity):
        found = _zero_division(expression.get_operand(i))
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
        try:
            if prism is None:
                parsed = stormpy.parse_properties(statement)
            else:
                parsed = stormpy.parse_properties(statement, prism.program)
        except Exception as exc:
            raise InputError(source, _property_message(exc, prism, labels), place) from None
        for prop in parsed:
            _check_property(prop, prism, source, place)
            properties.append(_describe(prop.get_raw_formula(), source))
    return properties


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


def _property_message(exc: Exception, prism: PrismProgram | None, labels: Iterable[str]) -> str:
    message = _storm_message(exc)
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
        zero = _zero_division(expression)
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
        raise ResourceLimit(
            f"{prism.source} has more than {max_states} states (--max-states): exploration "
            f"stopped at {model.nr_states}"
        )
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
    exploration = _instance(stormpy.developer.ExplicitModelBuilderOptions)()
    if max_states is not None:
        exploration.exploration_state_limit = max_states + 1
    try:
        builder = _instance(stormpy.developer.make_explicit_model_builder)(
            program or prism.program, options, None, exploration
        )
        return builder.build()
    except Exception as exc:
        message = _storm_message(exc)
        raise InputError(prism.source, message, _command_line(prism, message)) from None


# The marker variable Storm adds for out-of-bounds detection (not a model variable).
OUT_OF_BOUNDS_VARIABLE = "_OutOfBoundsBit"
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
    arrays = _exported_arrays(model)
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


def from_storm(
    model,
    name: str = "model",
    variables: Iterable[str] | None = None,
    actions: Iterable[str] | None = None,
) -> MDP:
    """Read a Storm sparse MDP or DTMC into our type (via Storm's UMB export: bulk arrays).

    `variables` orders the valuation columns and `actions` the action names (a PRISM
    program's declaration order); names not given come after, sorted.
    """
    arrays = _exported_arrays(model)
    n_states, n_choices = model.nr_states, model.nr_choices
    if "state-to-choices.bin" in arrays:
        row_groups = arrays["state-to-choices.bin"].astype(np.int64)
    else:  # a DTMC: one choice per state
        row_groups = np.arange(n_states + 1, dtype=np.int64)
    branch_start = arrays["choice-to-branches.bin"].astype(np.int64)
    rows = np.repeat(np.arange(n_choices, dtype=np.int64), np.diff(branch_start))
    transitions = csr(
        rows,
        arrays["branch-to-target.bin"].astype(np.int64),
        arrays["branch-to-probability.bin"],
        (n_choices, n_states),
    )

    names: list[str] = []
    choice_actions = np.full(n_choices, -1, dtype=np.int32)
    if model.has_choice_labeling():
        labels = model.choice_labeling.get_labels()
        given = [a for a in (actions or ()) if a in labels]
        for action in given + sorted(set(labels) - set(given)):
            choice_actions[_numpy_mask(model.choice_labeling.get_choices(action), n_choices)] = len(
                names
            )
            names.append(action)

    labels = {
        label: _numpy_mask(model.labeling.get_states(label), n_states)
        for label in model.labeling.get_labels()
        if label not in ("init", "deadlock", "out_of_bounds")
    }
    variables, valuations = _valuations(model, variables)
    choice_states = np.repeat(np.arange(n_states), np.diff(row_groups))
    rewards = {}
    for reward_name, reward_model in model.reward_models.items():
        total = np.zeros(n_choices)
        if reward_model.has_state_rewards:
            total += np.asarray(reward_model.state_rewards)[choice_states]
        if reward_model.has_state_action_rewards:
            total += np.asarray(reward_model.state_action_rewards)
        if reward_model.has_transition_rewards:
            raise InputError(
                name,
                f"reward structure {reward_name!r} has transition rewards, which are not supported",
            )
        rewards[reward_name] = total
    return MDP(
        transitions=transitions,
        row_groups=row_groups,
        choice_actions=choice_actions,
        actions=tuple(names),
        labels=labels,
        initial_states=np.array(sorted(model.initial_states), dtype=np.int64),
        variables=variables,
        valuations=valuations,
        rewards=rewards,
        kind="mdp" if model.is_nondeterministic_model else "dtmc",
        name=name,
    )


def _exported_arrays(model) -> dict[str, np.ndarray]:
    """A Storm model's transition arrays, through its uncompressed UMB export."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.umb"
        options = stormpy.io.UmbExportOptions()
        options.compression = type(options.compression).NO_COMPRESSION
        stormpy.io.export_to_umb(model, str(archive), options=options)
        return _read_umb_arrays(archive)


def _read_umb_arrays(archive: Path) -> dict[str, np.ndarray]:
    dtypes = {
        "state-to-choices.bin": np.uint64,
        "choice-to-branches.bin": np.uint64,
        "branch-to-target.bin": np.uint64,
        "branch-to-probability.bin": np.float64,
    }
    with tarfile.open(archive) as tar:

        def member(name: str) -> bytes:
            file = tar.extractfile(name)
            if file is None:
                raise InputError(str(archive), f"{name} is not a regular file")
            return file.read()

        index = json.loads(member("index.json"))
        probability_type = index["transition-system"].get("branch-probability-type", {})
        if probability_type.get("type") != "double":
            raise InputError(str(archive), f"unsupported probability type {probability_type}")
        present = set(tar.getnames())
        return {
            name: np.frombuffer(member(name), dtype=dtype)
            for name, dtype in dtypes.items()
            if name in present
        }


def _valuations(model, order: Iterable[str] | None) -> tuple[tuple[str, ...], np.ndarray]:
    """Variables (in `order` if given) and their int64 values (booleans as 0/1)."""
    if not model.has_state_valuations():
        return (), np.zeros((model.nr_states, 0), dtype=np.int64)
    valuations = model.state_valuations
    variables = sorted(valuations.get_all_variables(), key=lambda v: v.index)
    variables = [v for v in variables if v.name != OUT_OF_BOUNDS_VARIABLE]
    if order is not None:
        rank = {name: i for i, name in enumerate(order)}
        variables.sort(key=lambda v: rank.get(v.name, len(rank)))
    columns = []
    for variable in variables:
        if variable.has_boolean_type():
            columns.append(_numpy_mask(valuations.get_boolean_values(variable), model.nr_states))
        elif variable.has_integer_type():
            columns.append(np.asarray(valuations.get_int64_values(variable), dtype=np.int64))
        else:
            raise InputError(
                "PRISM model", f"variable {variable.name!r} is neither integer nor boolean"
            )
    values = (
        np.column_stack(columns).astype(np.int64) if columns else np.zeros((model.nr_states, 0))
    )
    return tuple(v.name for v in variables), values


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
    builder = _instance(stormpy.datastructures.SparseMatrixBuilder, stormpy.Rational)(
        rows=n, columns=n, entries=sum(len(r) for r in rows), force_dimensions=True
    )
    for s, row in enumerate(rows):
        for target, probability in sorted(row):
            builder.add_next_value(s, target, stormpy.Rational(str(probability)))
    labeling = stormpy.models.StateLabeling(n)
    for name, mask in (("done", done), ("init", np.ones(n, dtype=bool))):
        labeling.add_label(name)
        labeling.set_states(name, _bitvector(mask))
    reward_model = _instance(stormpy.models.SparseRewardModel, stormpy.Rational)(
        optional_state_reward_vector=[stormpy.Rational(str(r)) for r in rewards]
    )
    components = _instance(stormpy.models.SparseModelComponents, stormpy.Rational)(
        transition_matrix=builder.build(),
        state_labeling=labeling,
        reward_models={"r": reward_model},
    )
    model = _instance(stormpy.models.SparseDtmc, stormpy.Rational)(components)
    prop = parse_properties('R{"r"}=? [ F "done" ]')[0]
    result = stormpy.model_checking(
        model,
        prop.formula,
        only_initial_states=False,
        environment=stormpy.environments.exact(),
    )
    return [Fraction(str(v)) for v in result.get_value_vector()]


def add_labels(model, labels: Mapping[str, np.ndarray]) -> None:
    """Set state labels (bool [n_states] each) on a Storm model in memory: added, or
    replaced where the model has them. Checking then needs no new model."""
    labeling = model.labeling
    for name, mask in labels.items():
        if not labeling.contains_label(name):
            labeling.add_label(name)
        labeling.set_states(name, _bitvector(mask))


def satisfying_states(model, formula: StateFormula | Property) -> np.ndarray:
    """bool [n_states]: where a state formula (or a bounded property) holds, e.g.
    `!"lava"`."""
    result = _model_check(model, formula.formula, formula.text)
    return _numpy_mask(result.get_truth_values_vector(), model.nr_states)


def state_values(mdp: MDP, formula_text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quantitative query on every state of our model: (values, lower, upper), float64
    [n_states] each, the bounds certified by Storm's sound engine."""
    return model_values(to_storm(mdp), formula_text)


def model_values(model, formula_text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`state_values` on a model already in Storm (to check many formulas on one model)."""
    formula = stormpy.parse_properties(formula_text)[0].get_raw_formula()
    return _values(_model_check(model, formula, formula_text))


def _values(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.asarray(result.get_value_vector(), dtype=np.float64)
    lower = np.asarray(result.get_lower_bound_vector()) if result.has_lower_bounds() else values
    upper = np.asarray(result.get_upper_bound_vector()) if result.has_upper_bounds() else values
    return values, lower.astype(np.float64), upper.astype(np.float64)


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
    environment = stormpy.environments.sound() if sound else _fast_environment()
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
        environment = _fast_environment()
        environment.solver().min_max().maximal_number_of_iterations = SCHEDULER_SWEEPS
    return _optimum(model, formula, text, environment)


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


def _optimum(model, formula, text: str, environment):
    """(values, lower, upper, global scheduler or None) of a query on a Storm model."""
    memoryless = model.is_nondeterministic_model and not (
        formula.subformula.is_bounded_until_formula
    )
    result = _run(
        model, formula, text, "objective", extract_scheduler=memoryless, environment=environment
    )
    values, lower, upper = _values(result)
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


def _fast_environment():
    """Storm's topological min-max solver at precision 1e-12: not sound, but close enough
    that a policy read from it needs at most a sweep of certification (measured on mazes
    with long corridors, where value iteration to 1e-6 left hundreds of sweeps)."""
    environment = stormpy.Environment()
    solver = environment.solver().min_max()
    solver.method = stormpy.environments.MinMaxMethod.TOPOLOGICAL
    solver.precision = stormpy.Rational("1/1000000000000")
    solver.maximal_number_of_iterations = 1_000_000
    return environment


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
    for start, end in _split_operators(prop.path)[0]:
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
    return _values(_model_check(model, formula, text))


def with_rewards(model, rewards: Mapping[str, np.ndarray]):
    """A Storm MDP with the transition matrix and labels of `model` and these state-action
    reward structures (float64 [n_choices] each): a copy in memory, not a conversion."""
    reward_models = {
        name: _instance(stormpy.models.SparseRewardModel)(
            optional_state_action_reward_vector=np.asarray(values, dtype=np.float64).tolist()
        )
        for name, values in rewards.items()
    }
    components = _instance(stormpy.models.SparseModelComponents)(
        transition_matrix=model.transition_matrix,
        state_labeling=model.labeling,
        reward_models=reward_models,
    )
    kind = (
        stormpy.models.SparseMdp if model.is_nondeterministic_model else stormpy.models.SparseDtmc
    )
    return _instance(kind)(components)


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
    result = _run(
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
    return _values(_run(rewarded, formula, text, "--reward", environment=environment))


def initial_states(model) -> np.ndarray:
    """int64 [k]: a Storm model's initial states, sorted."""
    return np.array(sorted(model.initial_states), dtype=np.int64)


@stage("model checking with Storm")
def check(model, prop: Property, source: str | None = None) -> PropertyResult:
    """Check one property on a Storm model; values at its initial states.

    A bounded property `P>=p [...]` on an MDP holds when it holds under every scheduler, so
    its value is the minimum (for lower bounds) or maximum (upper bounds) over schedulers;
    an explicit `Pmax>=p` / `Pmin<p` is honoured (its value is that optimum). A property
    Storm refuses is an InputError naming `source` (default: where it was written).
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
                OptimizationDirection.MINIMIZE if lower_bound else OptimizationDirection.MAXIMIZE
            )
    direction = None
    if model.is_nondeterministic_model and quantitative.has_optimality_type:
        maximum = quantitative.optimality_type == OptimizationDirection.MAXIMIZE
        direction = "max" if maximum else "min"
    result = _model_check(model, quantitative, prop.text, source)
    initial = initial_states(model)
    values, lower, upper = (v[initial] for v in _values(result))
    holds = None
    if formula.has_bound:
        truth = _model_check(model, formula, prop.text, source).get_truth_values_vector()
        holds = all(truth[s] for s in initial.tolist())
    return PropertyResult(prop.text, values, lower, upper, holds, SOUND_METHOD, direction)


def _model_check(model, prop, text: str, source: str = "--spec"):
    """`_run` with Storm's sound engine. On a model Storm built from PRISM, an expression over
    its variables in a state formula (`x = 3`), which Storm looks up as a label of that name,
    becomes one: evaluated on the state valuations, added in memory, and the check re-run."""
    added: set[str] = set()
    while True:
        try:
            return _run(model, prop, text, source, environment=stormpy.environments.sound())
        except InputError as exc:
            unknown = _UNKNOWN_LABEL.search(exc.message)
            if unknown is None or unknown.group(1) in added or not model.has_state_valuations():
                raise
            name = unknown.group(1)
            mask = _expression_mask(model, name)
            if mask is None:
                raise
            add_labels(model, {name: mask})
            added.add(name)


_UNKNOWN_LABEL = re.compile(r"unknown label '(.+?)'")


def _expression_mask(model, text: str) -> np.ndarray | None:
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
    names, values = _valuations(model, None)
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
_PROPERTY_FAULTS = (
    "InvalidPropertyException",
    "IllegalArgumentException",
    "IllegalFunctionCallException",
    "InvalidArgumentException",
    "NotImplementedException",
    "WrongFormatException",
)


def _run(model, formula, text: str, source: str, **options):
    """stormpy.model_checking; InputError (naming `source`, where the property was written)
    when Storm refuses the property, BackendError when Storm itself fails."""
    try:
        return stormpy.model_checking(model, formula, only_initial_states=False, **options)
    except Exception as exc:
        message = f"{text}: {_storm_message(exc)}"
        if any(fault in str(exc) for fault in _PROPERTY_FAULTS):
            raise InputError(source, message) from None
        raise BackendError("Storm", message) from None


def _storm_message(exc: Exception) -> str:
    """Storm's error text reduced to one clear line."""
    text = " ".join(str(exc).split())
    text = re.split(r"\s*Note that the used API function", text)[0]
    for prefix in (
        "WrongFormatException:",
        "InvalidArgumentException:",
        "InvalidPropertyException:",
        "NotImplementedException:",
        "InvalidOperationException:",
        "InvalidStateException:",
        "IllegalArgumentException:",
    ):
        text = text.replace(prefix, "").strip()
    return text or type(exc).__name__


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
        raise InputError("objective", f"{formula_text}: {_storm_message(exc)}") from None
    return float(result.get_value(int(mdp.initial_states[0])))
