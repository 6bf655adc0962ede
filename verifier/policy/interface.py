"""The interface between a policy and a model, checked before any verdict (README, "Writing a
policy for verify"): every action the policy names exists in the model, and the model gives
the observation the policy was made for.

A policy's metadata may describe that observation: `observation_shape` (one state's shape,
or one per key of a dict observation) and `observation_dtype`, with `wrappers` (the
observation wrappers it was made with, inner to outer), as `export_sb3` writes them. An SB3
zip's come from its observation space: SB3 stores images channels-first and its network also
takes them channels-last (`channels_first_images`), and its `action_count` outputs are named
by the environment's actions. A network without a description that fails on the model's
observation is reported by the shapes it expects and the model gives, read from the failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from verifier.errors import InputError

METADATA = "verifier.json"
# wrappers that select dict entries, which the `env` observation does itself for the numeric
# entries (export_sb3 records them; a model TOML cannot name them, they take arguments)
SELECTING_WRAPPERS = frozenset({"FilterObservation"})

Layout = dict[str, tuple[tuple[int, ...], str]]
"""One state's observation: per entry ("" for an array, else the dict key), shape and dtype."""


@dataclass(frozen=True, slots=True, eq=False)
class Interface:
    """What a policy was made for, from its metadata (all optional).

    observation   the observation of one state (`Layout`)
    wrappers      the observation wrappers it was made with, inner to outer (class names)
    images        entries that are channels-first images the network also takes channels-last
    action_count  how many outputs the environment's actions name, in order, when the
                  metadata names none
    """

    observation: Layout | None = None
    wrappers: tuple[str, ...] | None = None
    images: frozenset[str] = frozenset()
    action_count: int | None = None


def read_interface(source: str, meta: dict) -> Interface | None:
    """The Interface a policy's metadata describes (None if it describes none)."""
    keys = ("observation_shape", "observation_dtype", "wrappers", "channels_first_images")
    if not any(k in meta for k in (*keys, "action_count")):
        return None
    shape, dtype = meta.get("observation_shape"), meta.get("observation_dtype")
    if (shape is None) != (dtype is None):
        raise InputError(
            source, f"{METADATA}: give observation_shape and observation_dtype together"
        )
    layout = None
    if isinstance(shape, dict) and not all(_plain(key) for key in shape):
        raise InputError(source, f"{METADATA}: observation_shape keys must be plain names")
    if isinstance(shape, dict) and isinstance(dtype, dict) and shape and set(shape) == set(dtype):
        layout = {key: (_shape(source, shape[key]), _dtype(source, dtype[key])) for key in shape}
    elif isinstance(shape, list) and isinstance(dtype, str):
        layout = {"": (_shape(source, shape), _dtype(source, dtype))}
    elif shape is not None:
        raise InputError(
            source,
            f"{METADATA}: observation_shape and observation_dtype must be a list of sizes and a "
            "dtype name, or dicts of them with the same keys",
        )
    wrappers = meta.get("wrappers")
    if wrappers is not None and (not isinstance(wrappers, list) or not all(map(_plain, wrappers))):
        raise InputError(source, f"{METADATA}: wrappers must be a list of class names")
    images = meta.get("channels_first_images", [])
    if not isinstance(images, list) or not all(layout and k in layout for k in images):
        raise InputError(
            source, f"{METADATA}: channels_first_images must list entries of the observation"
        )
    count = meta.get("action_count")
    if count is not None and (type(count) is not int or count <= 0):
        raise InputError(source, f"{METADATA}: action_count must be a positive integer")
    return Interface(
        layout,
        tuple(_name(w) for w in wrappers) if wrappers is not None else None,
        frozenset(images),
        count,
    )


def _plain(name) -> bool:
    """A name fit for a one-line message: printable text (no control characters), short."""
    return isinstance(name, str) and name.isprintable() and 0 < len(name) <= 100


def _shape(source: str, value) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) > 16
        or not all(type(v) is int and v >= 0 for v in value)
    ):
        raise InputError(source, f"{METADATA}: observation_shape must hold lists of sizes")
    return tuple(value)


def _dtype(source: str, value) -> str:
    if not isinstance(value, str) or len(value) > 20:
        raise InputError(source, f"{METADATA}: observation_dtype must hold dtype names")
    try:
        return np.dtype(value).name
    except (TypeError, ValueError, SyntaxError):
        raise InputError(
            source, f"{METADATA}: observation_dtype {ascii(value)[:40]} is not a dtype"
        ) from None


def _name(wrapper: str) -> str:
    """A wrapper's class name, from 'module.Class' or 'module:Class' or 'Class'."""
    return re.split(r"[.:]", wrapper)[-1]


def layout_of(batch) -> Layout:
    """The Layout of one state of a batch of observations (an array or a dict of arrays)."""
    if isinstance(batch, dict):
        return {key: (tuple(v.shape[1:]), v.dtype.name) for key, v in batch.items()}
    return {"": (tuple(batch.shape[1:]), batch.dtype.name)}


def describe(layout: Layout, dtype: bool = False, images: frozenset[str] = frozenset()) -> str:
    """'147 inputs', 'a 7x7x3 array', 'one number', 'a dict observation (image 7x7x3,
    direction)'; with the dtypes when `dtype`; `images` are channels-first images that may
    also come channels-last ('a 3x5x5 image (or 5x5x3)')."""

    def dims(key: str, shape: tuple[int, ...]) -> str:
        text = "x".join(map(str, shape))
        if key in images and len(shape) == 3:
            text += f" (or {shape[1]}x{shape[2]}x{shape[0]})"
        return text

    if list(layout) == [""]:
        shape, name = layout[""]
        kind = f"{name} " if dtype else ""
        if not shape:
            return f"one {kind}number"
        if len(shape) == 1:
            return f"{shape[0]} {kind}inputs"
        if "" in images and len(shape) == 3:
            channels, height, width = shape
            return f"a {channels}x{height}x{width} {kind}image (or {height}x{width}x{channels})"
        return f"a {dims('', shape)} {kind}array"
    entries = [
        " ".join(filter(None, (key, dims(key, shape), name if dtype else "")))
        for key, (shape, name) in layout.items()
    ]
    return f"a dict observation ({', '.join(entries)})"


def model_actions(env) -> tuple[str, ...]:
    """Every action the model's environment has: a Gymnasium environment's own (a model TOML
    may enable a subset of them), else the model's."""
    if env.gym is not None:
        from verifier.inputs.gym import action_names

        return action_names(env.gym.instance.unwrapped)
    return tuple(env.mdp.actions)


def model_wrappers(env) -> tuple[str, ...] | None:
    """The class names of the model's observation wrappers (None for a model that is not a
    Gymnasium environment)."""
    if env.gym is None:
        return None
    return tuple(_name(w) for w in env.gym.instance.spec.wrappers)


def check_interface(
    source: str, actions: tuple[str, ...], interface: Interface | None, env, sample
) -> tuple[str, ...]:
    """The policy's action names once they and its observation are checked against the model
    (InputError saying what differs). `sample` is the policy's observation of one state of
    the model (None when there is no observation to compare)."""
    known = model_actions(env)
    if not actions:
        actions = _named_by_env(source, interface, env, known)
    elif interface is not None and interface.action_count not in (None, len(actions)):
        raise InputError(
            source,
            f"names {len(actions)} actions for the policy's {interface.action_count} outputs",
        )
    seen = set(known)
    unknown = [a for a in actions if a not in seen]
    if unknown:
        listed = ", ".join(known) if known else "none (its choices are unlabelled)"
        raise InputError(
            source,
            f"names actions the model does not have: {', '.join(map(repr, unknown))}; the "
            f"model's actions: {listed}",
        )
    if interface is not None and interface.observation is not None and sample is not None:
        problem = observation_mismatch(interface, layout_of(sample), model_wrappers(env))
        if problem:
            raise InputError(source, problem)
    return actions


def _named_by_env(source: str, interface: Interface | None, env, known: tuple[str, ...]):
    count = interface.action_count if interface is not None else None
    if count is None:
        raise ValueError(f"{source}: a policy without action names or an action count")
    if env.gym is None:
        raise InputError(
            source,
            f"its {count} outputs are named by a Gymnasium environment's actions, and this model "
            "is not one: name them with --actions A,B,...",
        )
    if count > len(known):
        raise InputError(
            source,
            f"the policy has {count} outputs and the environment {len(known)} actions "
            f"({', '.join(known)}): name them with --actions A,B,...",
        )
    return known[:count]


def observation_mismatch(
    interface: Interface, given: Layout, wrappers: tuple[str, ...] | None
) -> str | None:
    """What differs between the observation a policy was made for and the one the model gives
    (None when they agree); `wrappers` are the model's observation wrappers."""
    expected = interface.observation
    if expected is None:
        return None

    def fits(key: str) -> bool:
        (want, _), (have, _) = expected[key], given[key]
        transposed = len(have) == 3 and (have[2], have[0], have[1]) == want
        return have == want or (key in interface.images and transposed)

    ours = interface.wrappers
    theirs = f" ({', '.join(wrappers)})" if wrappers else ""
    hint = (
        "; the model's [gymnasium] wrappers must give the policy's observation"
        if wrappers is not None and ours is not None
        else ""
    )
    made = f" ({', '.join(ours)})" if ours else ""
    if set(expected) != set(given) or not all(fits(key) for key in expected):
        return (
            f"the policy expects {describe(expected, images=interface.images)}{made}; this model "
            f"gives {describe(given)}{theirs}{hint}"
        )
    if any(expected[key][1] != given[key][1] for key in expected):
        return (
            f"the policy expects {describe(expected, True, interface.images)}{made}; this model "
            f"gives {describe(given, dtype=True)}{theirs}{hint}"
        )
    if ours is not None and wrappers is not None:
        kept = tuple(w for w in ours if w not in SELECTING_WRAPPERS)
        if kept != wrappers:
            return (
                f"the policy was made with the wrappers {', '.join(kept) or 'none'}; this model "
                f"has {', '.join(wrappers) or 'none'} (both give {describe(given)}){hint}"
            )
    return None


_TORCH_DTYPES = {
    "Byte": "uint8",
    "Char": "int8",
    "Short": "int16",
    "Int": "int32",
    "Long": "int64",
    "Half": "float16",
    "Float": "float32",
    "Double": "float64",
    "Bool": "bool",
}
_ORT_DTYPES = {"float": "float32", "double": "float64", "float16": "float16"}


def failure_shapes(text: str, given: Layout) -> tuple[str, bool] | None:
    """What a network's failure on an observation says it expects, as (description, whether
    the dtype is what differs); None when the failure says nothing about the input."""
    plain = given.get("")
    width = plain[0][0] if plain is not None and len(plain[0]) == 1 else None
    if m := re.search(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x", text):
        got, want = int(m[2]), int(m[3])
        if got == width:
            return f"{want} inputs", False
        return f"an observation whose features have {want} values (this one's have {got})", False
    if m := re.search(r"Expected a value of type '([^']*)' for argument '\w+' but instead", text):
        return ("a dict observation" if "Dict" in m[1] else "an array observation"), False
    if m := re.search(r"mat1 and mat2 must have the same dtype, but got (\w+) and (\w+)", text):
        return f"{_TORCH_DTYPES.get(m[2], m[2])} inputs", True
    if m := re.search(r"expected input\[[\d, ]+\] to have (\d+) channels, but got \d+", text):
        return f"images with {m[1]} channels first ([batch, {m[1]}, height, width])", False
    if m := re.search(
        r"Expected (\d)D \(unbatched\) or (\d)D \(batched\) input to (conv\w*)", text
    ):
        return f"{int(m[2]) - 1}-dimensional images per state (for {m[3]})", False
    if "Kernel size can't be greater than actual input size" in text:
        return "images larger than its convolution kernels", False
    if m := re.search(r"KeyError: (\S+)", text):
        return f"a dict observation with the entry {m[1]!r}", False
    if m := re.search(
        r"Got invalid dimensions for input: \S+ for the following indices\s+"
        r"index: (\d+) Got: (\d+) Expected: (\d+)",
        text,
    ):
        if m[1] == "1" and width is not None:
            return f"{m[3]} inputs", False
        return f"size {m[3]} in dimension {m[1]} of [batch, ...]", False
    if m := re.search(r"Invalid rank for input: \S+ Got: (\d+) Expected: (\d+)", text):
        return f"{int(m[2]) - 1}-dimensional observations per state", False
    if m := re.search(
        r"Unexpected input data type\. Actual: \(tensor\((\w+)\)\) , "
        r"expected: \(tensor\((\w+)\)\)",
        text,
    ):
        return f"{_ORT_DTYPES.get(m[2], m[2])} inputs", True
    return None


def failure_message(text: str, given: Layout, wrappers: tuple[str, ...] | None) -> str | None:
    """One line naming what the network expects and what the model gives, read from the
    failure `text` of running the network on the model's observation (None if it says
    nothing about the input)."""
    found = failure_shapes(text, given)
    if found is None:
        return None
    expects, dtype = found
    theirs = f" ({', '.join(wrappers)})" if wrappers else ""
    return (
        f"the network does not take this model's observation: it expects {expects}; this model "
        f"gives {describe(given, dtype=dtype)}{theirs}"
    )
