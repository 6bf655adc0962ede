"""The readable entries of a Stable-Baselines3 zip's `data` JSON, read without unpickling:
the policy class, its keyword arguments, the observation and action spaces
(verifier/policy/sb3_zip.py rebuilds the network from them).

`model.save` writes every attribute JSON cannot hold as a cloudpickle payload
(":serialized:", base64) beside readable copies of its first-level fields (a class's
`__module__` and its functions' names, a space's `_shape`, `dtype`, `low`, `high`, a dict's
items as text). Only those readable copies are read here; what they do not fix for certain
is an InputError naming the entry, with the export command `EXPORT`.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from verifier.errors import InputError

EXPORT = (
    "export the agent in its training script instead: "
    "from verifier.policy.export import export_sb3; export_sb3(model, 'policy.pt', env)"
)


# SB3's policy classes for PPO, A2C (common.policies) and DQN (dqn.policies):
# (module, class) -> (family, default features extractor).
POLICY_CLASSES = {
    ("stable_baselines3.common.policies", "ActorCriticPolicy"): (
        "actor-critic",
        "FlattenExtractor",
    ),
    ("stable_baselines3.common.policies", "ActorCriticCnnPolicy"): ("actor-critic", "NatureCNN"),
    ("stable_baselines3.common.policies", "MultiInputActorCriticPolicy"): (
        "actor-critic",
        "CombinedExtractor",
    ),
    ("stable_baselines3.dqn.policies", "DQNPolicy"): ("dqn", "FlattenExtractor"),
    ("stable_baselines3.dqn.policies", "CnnPolicy"): ("dqn", "NatureCNN"),
    ("stable_baselines3.dqn.policies", "MultiInputPolicy"): ("dqn", "CombinedExtractor"),
}


# Keyword arguments of those classes; the ones that shape the deterministic network are read,
# the others (optimiser, initialisation, continuous-action options) do not change it.
_KWARGS = {
    "actor-critic": {
        "net_arch",
        "activation_fn",
        "features_extractor_class",
        "features_extractor_kwargs",
        "normalize_images",
        "share_features_extractor",
        "ortho_init",
        "use_sde",
        "log_std_init",
        "full_std",
        "use_expln",
        "squash_output",
        "optimizer_class",
        "optimizer_kwargs",
    },
    "dqn": {
        "net_arch",
        "activation_fn",
        "features_extractor_class",
        "features_extractor_kwargs",
        "normalize_images",
        "optimizer_class",
        "optimizer_kwargs",
    },
}


_DEFAULT_ACTIVATION = {"actor-critic": "Tanh", "dqn": "ReLU"}


# torch.nn activations that SB3 builds as `activation_fn()`, without arguments.
ACTIVATIONS = frozenset(
    {
        "CELU",
        "ELU",
        "GELU",
        "Hardshrink",
        "Hardsigmoid",
        "Hardswish",
        "Hardtanh",
        "LeakyReLU",
        "LogSigmoid",
        "Mish",
        "PReLU",
        "ReLU",
        "ReLU6",
        "SELU",
        "SiLU",
        "Sigmoid",
        "Softplus",
        "Softshrink",
        "Softsign",
        "Tanh",
        "Tanhshrink",
    }
)


_EXTRACTOR_KWARGS = {
    "FlattenExtractor": {},
    "NatureCNN": {"features_dim": 512, "normalized_image": False},
    "CombinedExtractor": {"cnn_output_dim": 256, "normalized_image": False},
}


OBSERVATION_ENTRY = "data: observation_space"


_SPACE = "<class 'gymnasium.spaces.{}'>"
_BOX, _DISCRETE, _DICT = (_SPACE.format(s) for s in ("box.Box", "discrete.Discrete", "dict.Dict"))


@dataclass(frozen=True, slots=True)
class Array:
    """One Box or Discrete observation as SB3 preprocesses it.

    `shape` and `dtype` are the space's (SB3 stores images channels-first); `classes` is a
    Discrete space's n (0 for a Box); `image` is SB3's `is_image_space` (uint8, three
    dimensions, bounds 0 and 255 everywhere), None where the file prints the bounds in part.
    """

    shape: tuple[int, ...]
    dtype: str
    classes: int = 0
    image: bool | None = False


@dataclass(frozen=True, slots=True)
class Agent:
    """What the readable entries of an SB3 zip say about its policy.

    `observation` holds one Array per key of a dict observation, in the space's key order,
    or one under "" for a Box or Discrete observation."""

    policy_class: str
    family: str
    extractor: str
    extractor_kwargs: dict
    activation: str
    hidden: dict[str, tuple[int, ...]]
    normalize_images: bool
    observation: dict[str, Array]
    is_dict: bool
    actions: int


def read_agent(path: Path, text: str) -> Agent:
    """The policy an SB3 `data` JSON describes, from its readable entries only."""
    source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"invalid JSON ({exc})", "data") from None
    except RecursionError:
        raise InputError(source, "nested too deeply", "data") from None
    if not isinstance(data, dict):
        raise InputError(source, "must be a JSON object", "data")
    class_name, family, extractor = _policy_class(source, data.get("policy_class"))
    kwargs = _readable(source, data.get("policy_kwargs", {}), "policy_kwargs", "dict")
    unknown = sorted(set(kwargs) - _KWARGS[family])
    if unknown:
        raise InputError(
            source,
            f"{ascii(unknown[0])} is not a keyword argument of {class_name} that this rebuild "
            f"knows; {EXPORT}",
            "data: policy_kwargs",
        )
    if kwargs.get("squash_output", False) is not False:
        raise InputError(
            source, f"must be false for discrete actions; {EXPORT}", _at("squash_output")
        )
    extractor = _extractor_class(source, kwargs.get("features_extractor_class"), extractor)
    extractor_kwargs = _extractor_kwargs(source, kwargs.get("features_extractor_kwargs"), extractor)
    activation = _activation(source, kwargs.get("activation_fn"), family)
    normalize_images = kwargs.get("normalize_images", True)
    if not isinstance(normalize_images, bool):
        raise InputError(source, f"must be true or false; {EXPORT}", _at("normalize_images"))
    if not normalize_images and extractor != "FlattenExtractor":
        extractor_kwargs["normalized_image"] = True  # as SB3's BaseModel sets it
    hidden = _hidden_layers(source, kwargs.get("net_arch"), family, extractor)
    observation, is_dict = _observation(source, data.get("observation_space"))
    observation = _checked_observation(source, observation, is_dict, extractor, extractor_kwargs)
    actions = _actions(source, data.get("action_space"))
    return Agent(
        class_name,
        family,
        extractor,
        extractor_kwargs,
        activation,
        hidden,
        normalize_images,
        observation,
        is_dict,
        actions,
    )


def _checked_observation(
    source: str, observation: dict[str, Array], is_dict: bool, extractor: str, kwargs: dict
) -> dict[str, Array]:
    """The observation as the extractor requires it, every image's bounds known: SB3 builds
    CombinedExtractor for a Dict only and the others for a Box or Discrete only, and NatureCNN
    asserts `is_image_space` unless `normalized_image`, so where it was built on a Box whose
    bounds the file prints in part, they are 0 and 255 everywhere."""
    if is_dict != (extractor == "CombinedExtractor"):
        need = "MultiInputPolicy" if is_dict else "a Box or Discrete observation"
        raise InputError(
            source, f"{extractor} with this space: needs {need}; {EXPORT}", OBSERVATION_ENTRY
        )
    array = observation.get("")
    if extractor == "NatureCNN" and array is not None:
        if len(array.shape) != 3 or array.classes:
            raise InputError(source, f"NatureCNN needs a Box image; {EXPORT}", OBSERVATION_ENTRY)
        if not kwargs["normalized_image"]:
            if array.image is False:
                raise InputError(
                    source,
                    f"NatureCNN needs a uint8 image with bounds 0 and 255; {EXPORT}",
                    OBSERVATION_ENTRY,
                )
            observation = {"": Array(array.shape, array.dtype, 0, True)}
    if any(a.image is None for a in observation.values()):
        raise InputError(
            source,
            "the image bounds are printed in part only ('...'), so whether SB3 scales this "
            f"observation by 1/255 is not known; {EXPORT}",
            "data: observation_space.low",
        )
    return observation


def _at(kwarg: str) -> str:
    return f"data: policy_kwargs.{kwarg}"


def _policy_class(source: str, entry) -> tuple[str, str, str]:
    """(class name, family, default extractor) from the readable `__module__` and the name
    of its `__init__` ("<function ActorCriticPolicy.__init__ at 0x...>")."""
    place = "data: policy_class"
    if not isinstance(entry, dict):
        raise InputError(source, f"missing or not a class entry; {EXPORT}", place)
    module = entry.get("__module__")
    init = entry.get("__init__")
    match = re.fullmatch(r"<function (\w+)\.__init__ at 0x[0-9a-fA-F]+>", init or "")
    if not isinstance(module, str) or match is None:
        raise InputError(
            source,
            f"the class is not readable (no __module__ and __init__ fields); {EXPORT}",
            place,
        )
    name = match.group(1)
    if (module, name) not in POLICY_CLASSES:
        raise InputError(
            source,
            f"{ascii(f'{module}.{name}')[1:-1]} is not a policy class Stable-Baselines3 ships "
            "for PPO, A2C or DQN (a custom class cannot be rebuilt without running its code); "
            f"{EXPORT}",
            place,
        )
    family, extractor = POLICY_CLASSES[(module, name)]
    return name, family, extractor


def _readable(source: str, entry, place: str, kind: str) -> dict:
    """A dict entry: plain JSON, or the readable fields beside a serialized one."""
    if isinstance(entry, dict) and ":serialized:" in entry:
        readable = {k: v for k, v in entry.items() if k not in (":type:", ":serialized:")}
        if entry.get(":type:") != f"<class '{kind}'>" or not readable:
            # SB3 writes every item of a dict it pickles beside it, and never pickles {}
            raise InputError(source, f"a {kind} without readable items; {EXPORT}", f"data: {place}")
        return readable
    if not isinstance(entry, dict):
        raise InputError(source, f"expected a {kind}; {EXPORT}", f"data: {place}")
    return entry


def _extractor_class(source: str, text, default: str) -> str:
    if text is None:
        return default
    match = re.fullmatch(r"<class 'stable_baselines3\.common\.torch_layers\.(\w+)'>", str(text))
    if match is None or match.group(1) not in _EXTRACTOR_KWARGS:
        raise InputError(
            source,
            f"{ascii(text)} is not one of SB3's own features extractors (FlattenExtractor, "
            f"NatureCNN, CombinedExtractor); {EXPORT}",
            _at("features_extractor_class"),
        )
    return match.group(1)


def _extractor_kwargs(source: str, entry, extractor: str) -> dict:
    defaults = _EXTRACTOR_KWARGS[extractor]
    if entry is None:
        return dict(defaults)
    if not isinstance(entry, dict):
        raise InputError(source, f"not readable; {EXPORT}", _at("features_extractor_kwargs"))
    unknown = sorted(set(entry) - set(defaults))
    if unknown:
        raise InputError(
            source,
            f"{ascii(unknown[0])} is not an argument of {extractor}; {EXPORT}",
            _at("features_extractor_kwargs"),
        )
    merged = {**defaults, **entry}
    for key, value in merged.items():
        expected = bool if key == "normalized_image" else int
        if type(value) is not expected or (expected is int and value <= 0):
            raise InputError(
                source,
                f"{key} must be {'true or false' if expected is bool else 'a positive integer'}",
                _at("features_extractor_kwargs"),
            )
    return merged


def _activation(source: str, text, family: str) -> str:
    if text is None:
        return _DEFAULT_ACTIVATION[family]
    match = re.fullmatch(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>", str(text))
    if match is None or match.group(1) not in ACTIVATIONS:
        raise InputError(
            source,
            f"{ascii(text)} is not a torch.nn activation built without arguments; {EXPORT}",
            _at("activation_fn"),
        )
    return match.group(1)


def _hidden_layers(source: str, entry, family: str, extractor: str):
    """The hidden layer widths of SB3's net_arch, {"pi": ..., "vf": ...} (PPO, A2C) or
    {"q": ...} (DQN), with SB3's defaults: [64, 64], none after NatureCNN."""
    if entry is None:
        entry = [] if extractor == "NatureCNN" else [64, 64]
    if (
        family == "actor-critic"
        and isinstance(entry, list)
        and entry
        and isinstance(entry[0], dict)
    ):
        entry = entry[0]  # SB3 < 1.8's [dict(pi=..., vf=...)], which SB3 still accepts
    if family == "actor-critic" and isinstance(entry, dict):
        if set(entry) - {"pi", "vf"} or not all(_widths(v) for v in entry.values()):
            raise InputError(
                source, f"expected {{pi: [...], vf: [...]}}; {EXPORT}", _at("net_arch")
            )
        return {"pi": tuple(entry.get("pi", [])), "vf": tuple(entry.get("vf", []))}
    if not _widths(entry):
        raise InputError(source, f"expected a list of layer widths; {EXPORT}", _at("net_arch"))
    if family == "actor-critic":
        return {"pi": tuple(entry), "vf": tuple(entry)}
    return {"q": tuple(entry)}


def _widths(value) -> bool:
    return isinstance(value, list) and all(type(v) is int and v > 0 for v in value)


def _observation(source: str, entry) -> tuple[dict[str, Array], bool]:
    place = OBSERVATION_ENTRY
    if not isinstance(entry, dict):
        raise InputError(source, f"missing or not readable; {EXPORT}", place)
    kind = entry.get(":type:")
    if kind == _BOX:
        shape = entry.get("_shape")
        dtype = entry.get("dtype")
        if not isinstance(shape, list) or not _widths(shape) or not isinstance(dtype, str):
            raise InputError(source, f"a Box without a readable _shape and dtype; {EXPORT}", place)
        size = tuple(int(n) for n in shape)
        return {"": Array(size, dtype, 0, _box_image(entry, size, dtype))}, False
    if kind == _DISCRETE:
        return {"": _discrete(source, entry.get("n"), entry.get("start", 0), place)}, False
    if kind == _DICT:
        text = entry.get("spaces")
        if not isinstance(text, str):
            raise InputError(source, f"a Dict without readable spaces; {EXPORT}", place)
        return _dict_spaces(source, text, place), True
    raise InputError(
        source,
        f"{ascii(kind)} observations are not rebuilt (gymnasium Box, Discrete and Dict of "
        f"them are); {EXPORT}",
        place,
    )


def _box_image(entry: dict, shape: tuple[int, ...], dtype: str) -> bool | None:
    """SB3's is_image_space from a Box entry's bounds: `low_repr`/`high_repr` (gymnasium's
    short form: one number when the bound is the same everywhere) when the space was
    printed, else the numpy text of `low` and `high`, which numpy cuts ("...") beyond 1000
    numbers: then only the printed numbers are known (None, unless one of them differs)."""
    if dtype != "uint8" or len(shape) != 3:
        return False
    complete = True
    for short, full, bound in (("low_repr", "low", 0), ("high_repr", "high", 255)):
        text = entry.get(short) if isinstance(entry.get(short), str) else entry.get(full)
        if not isinstance(text, str):
            return None
        numbers = re.findall(r"-?\d+", text)
        if not numbers or any(int(n) != bound for n in numbers):
            return False
        if "..." in text:
            complete = False
        elif len(numbers) not in (1, math.prod(shape)):
            return None
    return True if complete else None


def _discrete(source: str, n, start, place: str) -> Array:
    count, first = _integer(n), _integer(start)
    if count is None or count <= 0 or first is None:
        raise InputError(source, f"a Discrete space without a readable n; {EXPORT}", place)
    if first != 0:
        raise InputError(
            source, f"a Discrete space starting at {first} is not rebuilt; {EXPORT}", place
        )
    return Array((), "int64", count, False)


def _integer(value) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
        return int(value)
    return None


_KEY_AND_SPACE = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*:\s*(\w+)\((.*)\)""", re.S)


def _dict_spaces(source: str, text: str, place: str) -> dict[str, Array]:
    """The subspaces of a Dict from its readable `spaces` text, a Python dict's str:
    "{'direction': Discrete(4), 'image': Box(0, 255, (3, 56, 56), uint8)}". A Box prints
    its bounds in gymnasium's short form, one number when the bound is uniform."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise InputError(source, f"spaces is not readable; {EXPORT}", place)
    arrays = {}
    for item in _split(text[1:-1]):
        match = _KEY_AND_SPACE.fullmatch(item)
        if match is None:
            raise InputError(
                source, f"spaces entry {ascii(item[:80])} is not readable; {EXPORT}", place
            )
        key = ast.literal_eval(match.group(1))
        if not isinstance(key, str) or not key.isprintable() or len(key) > 100:
            raise InputError(source, f"spaces key {ascii(key)[:80]} is not a plain name", place)
        kind, args = match.group(2), _split(match.group(3))
        if kind == "Discrete":
            start = next((a.split("=", 1)[1] for a in args[1:] if a.startswith("start=")), 0)
            arrays[key] = _discrete(source, args[0] if args else None, start, f"{place}[{key!r}]")
        elif kind == "Box" and len(args) == 4 and re.fullmatch(r"\w+", args[3]):
            try:
                shape = ast.literal_eval(args[2]) if len(args[2]) <= 200 else None
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                shape = None
            if not isinstance(shape, tuple) or not _widths(list(shape)):
                raise InputError(source, f"{ascii(key)}: unreadable shape; {EXPORT}", place)
            image = args[3] == "uint8" and len(shape) == 3 and args[:2] == ["0", "255"]
            arrays[key] = Array(shape, args[3], 0, image)
        else:
            raise InputError(
                source,
                f"{ascii(key)}: {ascii(kind)} entries are not rebuilt (Box and Discrete are); "
                f"{EXPORT}",
                place,
            )
    if not arrays:
        raise InputError(source, f"an empty Dict; {EXPORT}", place)
    return arrays


def _split(text: str) -> list[str]:
    """`text` split at the commas outside brackets and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _actions(source: str, entry) -> int:
    place = "data: action_space"
    kind = entry.get(":type:") if isinstance(entry, dict) else None
    if not isinstance(kind, str) or not kind.startswith("<class 'gymnasium.spaces."):
        raise InputError(source, f"missing or not readable; {EXPORT}", place)
    if kind != _DISCRETE:
        raise InputError(
            source,
            f"{ascii(kind)} actions: only a Discrete action space is a finite MDP's choice",
            place,
        )
    return _discrete(source, entry.get("n"), entry.get("start", 0), place).classes
