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
