"""Storm's plumbing shared by the storm package: template instances, bit vectors, labels in
memory, result vectors, and running a check with Storm's errors turned into ours.

The `storm` package is the one door to Storm (stormpy 2.x): nothing else in the verifier
imports stormpy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import stormpy
import stormpy.datastructures
import stormpy.developer

from verifier.errors import BackendError, InputError

stormpy.developer.set_log_level(stormpy.developer.LogLevel.OFF)


def instance(family, value_type=float):
    """A template family's instantiation for `value_type` (stormpy 2.x)."""
    instantiations = family.instantiations
    return (instantiations() if callable(instantiations) else instantiations)[(value_type,)]


def bitvector(mask: np.ndarray):
    return stormpy.datastructures.BitVector(len(mask), np.flatnonzero(mask).tolist())


def numpy_mask(bitvector, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[np.fromiter(bitvector, dtype=np.int64)] = True
    return mask


def add_labels(model, labels: Mapping[str, np.ndarray]) -> None:
    """Set state labels (bool [n_states] each) on a Storm model in memory: added, or
    replaced where the model has them. Checking then needs no new model."""
    labeling = model.labeling
    for name, mask in labels.items():
        if not labeling.contains_label(name):
            labeling.add_label(name)
        labeling.set_states(name, bitvector(mask))


def result_values(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.asarray(result.get_value_vector(), dtype=np.float64)
    lower = np.asarray(result.get_lower_bound_vector()) if result.has_lower_bounds() else values
    upper = np.asarray(result.get_upper_bound_vector()) if result.has_upper_bounds() else values
    return values, lower.astype(np.float64), upper.astype(np.float64)


def fast_environment():
    """Storm's topological min-max solver at precision 1e-12: not sound, but close enough
    that a policy read from it needs at most a sweep of certification (measured on mazes
    with long corridors, where value iteration to 1e-6 left hundreds of sweeps)."""
    environment = stormpy.Environment()
    solver = environment.solver().min_max()
    solver.method = stormpy.environments.MinMaxMethod.TOPOLOGICAL
    solver.precision = stormpy.Rational("1/1000000000000")
    solver.maximal_number_of_iterations = 1_000_000
    return environment


def initial_states(model) -> np.ndarray:
    """int64 [k]: a Storm model's initial states, sorted."""
    return np.array(sorted(model.initial_states), dtype=np.int64)


_PROPERTY_FAULTS = (
    "InvalidPropertyException",
    "IllegalArgumentException",
    "IllegalFunctionCallException",
    "InvalidArgumentException",
    "NotImplementedException",
    "WrongFormatException",
)


def run(model, formula, text: str, source: str, **options):
    """stormpy.model_checking; InputError (naming `source`, where the property was written)
    when Storm refuses the property, BackendError when Storm itself fails."""
    try:
        return stormpy.model_checking(model, formula, only_initial_states=False, **options)
    except Exception as exc:
        message = f"{text}: {storm_message(exc)}"
        if any(fault in str(exc) for fault in _PROPERTY_FAULTS):
            raise InputError(source, message) from None
        raise BackendError("Storm", message) from None


def storm_message(exc: Exception) -> str:
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


# Storm's parsers recurse once per nested bracket or prefix operator and overflow the stack
# (SIGSEGV) between about 1,100 and 8,000 levels (measured on stormpy 2.0: P operators
# 1,141, parentheses in a property 1,532, in a PRISM constant 1,727, X 2,899, ! 7,819).
# No model or property nests anywhere near this deep, so text is refused well below it.
MAX_NESTING = 100
# Prefix operators: (a regex of one, the characters one can start with)
PRISM_PREFIX = (r"!(?!=)", "!")  # in PRISM programs and expressions
PROPERTY_PREFIX = (r"!(?!=)|\b[XFG]\b(?:\s*[<>]=?\s*[\w.]+)?", "!XFG")  # in properties
_QUOTED_OR_COMMENT = re.compile(r'"[^"\n]*"|//[^\n]*')


def check_nesting(
    text: str, source: str, prefix: tuple[str, str], place: str | None = None
) -> None:
    """InputError if brackets and prefix operators (`prefix`, PRISM_PREFIX or
    PROPERTY_PREFIX) nest deeper than
    MAX_NESTING in `text`, before Storm's recursive parser sees it. The depth at a point is
    the number of open brackets plus the prefix operators applied to what follows (a chain
    `X X X` counts 3, and each enclosing bracket keeps the chain before it); anything else
    between two of them ends a chain. One step per bracket or operator, not per character."""
    if len(text) <= MAX_NESTING:
        return
    bare = _QUOTED_OR_COMMENT.sub(lambda m: "x" * len(m.group()), text)
    if _nesting_bound(bare, prefix) <= MAX_NESTING:
        return
    tokens = re.compile(rf"(?P<open>[(\[{{])|(?P<close>[)\]}}])|(?P<prefix>{prefix[0]})")
    stack: list[int] = []
    enclosing = chain = end = 0
    for match in tokens.finditer(bare):
        if not bare[end : match.start()].isspace() and match.start() > end:
            chain = 0  # an operand since the last bracket or operator
        end = match.end()
        kind = match.lastgroup
        if kind == "open":
            stack.append(chain)
            enclosing += chain + 1
            chain = 0
        elif kind == "close":
            chain = 0
            if stack:
                enclosing -= stack.pop() + 1
        else:
            chain += 1
        if enclosing + chain > MAX_NESTING:
            line = text.count("\n", 0, match.start()) + 1
            where = place or (f"line {line}" if "\n" in text.strip() else None)
            raise InputError(
                source,
                f"nested deeper than {MAX_NESTING} levels (brackets and operators such as "
                "!, X, F, G); Storm's parser cannot take such text",
                where,
            )


_BRACKET_STEP = np.zeros(256, dtype=np.int8)  # +1 for ( [ {, -1 for ) ] }, by byte
_BRACKET_STEP[[ord(c) for c in "([{"]] = 1
_BRACKET_STEP[[ord(c) for c in ")]}"]] = -1


def _nesting_bound(bare: str, prefix: tuple[str, str]) -> int:
    """An upper bound of check_nesting's depth, vectorised: with brackets at most D deep
    and chains of prefix operators at most R long, no point is deeper than D * (1 + R) + R.
    R is bounded by the count of the operators' first characters, else by the longest run
    of operators and spaces. Ordinary text passes on this alone."""
    steps = _BRACKET_STEP[np.frombuffer(bare.encode(), dtype=np.uint8)]
    deepest = int(np.cumsum(steps, dtype=np.int32).max(initial=0))
    longest = sum(bare.count(c) for c in prefix[1])
    if deepest * (1 + longest) + longest > MAX_NESTING:
        runs = re.findall(rf"(?:(?:{prefix[0]})\s*)+", bare)
        longest = max(map(len, runs), default=0)
    return deepest * (1 + longest) + longest
