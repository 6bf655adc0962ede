"""Gymnasium model files (`[gymnasium]` TOML, `gym:ENV_ID`) -> exact MDPs of the real env.

A model is (id, make kwargs, reset seed, observation wrappers, action subset): the reset seed
fixes the layout, so each seed of `seeds` is one environment of a deployment set. MiniGrid
levels are enumerated through the environment's own `step` (verifier/minigrid_mdp.py);
toy-text environments are read from their transition table `P` (verifier/toytext_mdp.py).
gymnasium and minigrid are imported here only, and only when such a model is loaded.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

from verifier.errors import InputError, ResourceLimit

SHORTHAND = "gym:"
DEFAULT_OBJECTIVE = 'Pmax=? [ !"lava" U "goal" ]'
_KEYS = ("id", "seed", "seeds", "kwargs", "wrappers", "actions", "intended")
_MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")


@dataclass(frozen=True, slots=True)
class GymSpec:
    """What a `[gymnasium]` table says. `source` names the file (or the shorthand)."""

    source: str
    id: str
    seeds: tuple[int, ...] = (0,)
    kwargs: dict = field(default_factory=dict)
    wrappers: tuple[str, ...] = ()
    actions: tuple[str, ...] | None = None
    intended: str = DEFAULT_OBJECTIVE


@dataclass(slots=True, eq=False)
class GymInstance:
    """One made and reset environment: `env` with the user's wrappers, `unwrapped` the base
    env, `wrappers` the user's wrapper instances, inner to outer."""

    spec: GymSpec
    seed: int
    env: object
    unwrapped: object
    wrappers: tuple


# A top-level `gymnasium` key in any TOML spelling: `[gymnasium]`, `gymnasium.id = ...`,
# `gymnasium = {...}`, quoted or not. Only a file that matches is parsed to decide.
_GYMNASIUM_KEY = re.compile(r'^[ \t]*(\[[ \t]*)?["\']?gymnasium["\']?[ \t]*[\].=]', re.M)


def is_gym_model(model: str | Path) -> bool:
    """True for the shorthand `gym:ENV_ID` and for a TOML file with a `[gymnasium]` table."""
    text = str(model)
    if text.startswith(SHORTHAND):
        return True
    path = Path(text)
    if path.suffix.lower() != ".toml" or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not _GYMNASIUM_KEY.search(text):  # a maze: skip parsing its (possibly huge) map twice
        return False
    try:
        return "gymnasium" in tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False


def load_gym_spec(model: str | Path) -> GymSpec:
    """Read the shorthand or a model TOML's `[gymnasium]` table; InputError naming the key."""
    text = str(model)
    if text.startswith(SHORTHAND):
        env_id = text[len(SHORTHAND) :].strip()
        if not env_id:
            raise InputError(text, "empty environment id; write gym:ENV_ID, e.g. gym:FrozenLake-v1")
        return GymSpec(source=text, id=env_id)
    try:
        doc = tomllib.loads(Path(text).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(text, f"TOML syntax error: {exc}") from None
    table = doc["gymnasium"]
    if not isinstance(table, dict):
        raise InputError(text, "must be a table [gymnasium]", place="gymnasium")
    problems = [
        f"gymnasium.{key}: unknown key; known: {', '.join(_KEYS)}"
        for key in table
        if key not in _KEYS
    ]
    problems += [
        f"{key}: unknown top-level key; only [gymnasium]" for key in doc if key != "gymnasium"
    ]
    toml_id = table.get("id")
    if not isinstance(toml_id, str) or not toml_id.strip():
        problems.append(f"gymnasium.id: must be an environment id string, got {toml_id!r}")
    seeds = _seeds(table, problems)
    kwargs = table.get("kwargs", {})
    if not isinstance(kwargs, dict):
        problems.append(f"gymnasium.kwargs: must be a table, got {kwargs!r}")
    wrappers = table.get("wrappers", [])
    if not isinstance(wrappers, list) or not all(isinstance(w, str) for w in wrappers):
        problems.append(
            f"gymnasium.wrappers: must be a list of 'module.Class' strings, got {wrappers!r}"
        )
    actions = table.get("actions")
    if actions is not None and (
        not isinstance(actions, list)
        or not actions
        or not all(isinstance(a, str) for a in actions)
        or len(set(actions)) != len(actions)
    ):
        problems.append(
            f"gymnasium.actions: must be a list of distinct action names, got {actions!r}"
        )
    intended = table.get("intended", DEFAULT_OBJECTIVE)
    if not isinstance(intended, str):
        problems.append(f"gymnasium.intended: must be a property string, got {intended!r}")
    if problems:
        raise InputError(text, "; ".join(problems))
    return GymSpec(
        source=text,
        id=cast(str, toml_id).strip(),  # a str: checked above, with the problems raised
        seeds=seeds,
        kwargs=dict(kwargs),
        wrappers=tuple(wrappers),
        actions=tuple(actions) if actions is not None else None,
        intended=intended,
    )


def _seeds(table: dict, problems: list[str]) -> tuple[int, ...]:
    if "seed" in table and "seeds" in table:
        problems.append("gymnasium: give seed or seeds, not both")
    if "seeds" in table:
        seeds = table["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(_integer(s) for s in seeds):
            problems.append(f"gymnasium.seeds: must be a non-empty list of integers, got {seeds!r}")
            return (0,)
        return tuple(seeds)
    seed = table.get("seed", 0)
    if not _integer(seed):
        problems.append(f"gymnasium.seed: must be an integer, got {seed!r}")
        return (0,)
    return (seed,)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def make_instance(spec: GymSpec, seed: int) -> GymInstance:
    """gymnasium.make(id, **kwargs), the wrappers applied inner to outer, reset(seed)."""
    gymnasium = _import("gymnasium", spec.source, "gymnasium")
    if spec.id.startswith(_MINIGRID_PREFIXES):
        _import("minigrid", spec.source, "minigrid")
    try:
        env = gymnasium.make(spec.id, **spec.kwargs)
    except gymnasium.error.Error as exc:
        raise InputError(
            spec.source, f"cannot make {spec.id!r}: {_first_line(exc)}", "gymnasium.id"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(
            spec.source,
            f"gymnasium.make({spec.id!r}) refused the kwargs: {_first_line(exc)}",
            "gymnasium.kwargs",
        ) from None
    wrappers = []
    for i, name in enumerate(spec.wrappers):
        cls = _wrapper_class(name, spec.source, f"gymnasium.wrappers[{i}]")
        if not issubclass(cls, gymnasium.ObservationWrapper):
            raise InputError(
                spec.source,
                f"{name} is not a gymnasium.ObservationWrapper; only observation wrappers are "
                "allowed (the dynamics must be the environment's own)",
                f"gymnasium.wrappers[{i}]",
            )
        try:
            env = cls(env)
        except Exception as exc:
            raise InputError(
                spec.source, f"{name}(env) failed: {_first_line(exc)}", f"gymnasium.wrappers[{i}]"
            ) from None
        wrappers.append(env)
    try:
        env.reset(seed=seed)
    except Exception as exc:
        raise InputError(
            spec.source, f"reset(seed={seed}) failed: {_first_line(exc)}", "gymnasium.seed"
        ) from None
    return GymInstance(spec, seed, env, env.unwrapped, tuple(wrappers))


def _import(module: str, source: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            source, f"needs the {package} package: pip install 'verifier[gym]'"
        ) from None


def _wrapper_class(name: str, source: str, place: str):
    module_name, sep, attribute = name.replace(":", ".").rpartition(".")
    if not sep or not module_name:
        raise InputError(source, f"{name!r} is not 'module.Class'", place)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            source, f"cannot import {module_name!r} ({_first_line(exc)})", place
        ) from None
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type):
        raise InputError(source, f"module {module_name!r} has no class {attribute!r}", place)
    return cls


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True, slots=True, eq=False)
class GymModel:
    """What an Environment built from Gymnasium keeps for observations and reports.

    `kind` is "minigrid" or "toytext"; `snapshots` (MiniGrid) restore each state into
    `instance.unwrapped`; `steps_per_second` measures the enumeration (MiniGrid).
    """

    instance: GymInstance
    kind: str
    snapshots: tuple = ()
    doors: tuple = ()
    steps_per_second: float = 0.0
    seconds: float = 0.0


TIME_NOTE = (
    "the step counter is abstracted away (0 before every step): exact for objectives and "
    "policies that do not observe time; reward `env` is the first step's"
)


def gym_environments(model: str | Path, spec: str | None = None, max_states: int | None = None):
    """One Environment per seed of a Gymnasium model (the shorthand or a model TOML)."""
    import time

    from verifier import storm
    from verifier.environment import Environment
    from verifier.queries import Model

    gym_spec = load_gym_spec(model)
    objective, objective_source = (
        (spec, "--spec") if spec else (gym_spec.intended, f"{gym_spec.source}: intended")
    )
    properties = storm.parse_properties(objective, source=objective_source)
    environments = []
    for seed in gym_spec.seeds:
        name = gym_spec.source if len(gym_spec.seeds) == 1 else f"{gym_spec.source}@seed={seed}"
        instance = make_instance(gym_spec, seed)
        started = time.perf_counter()
        mdp, gym_model, notes = _build_mdp(instance, name, max_states)
        gym_model = replace(gym_model, seconds=time.perf_counter() - started)
        environments.append(
            Environment(
                Path(name),
                Model(mdp),
                tuple(properties),
                objective,
                objective_source,
                gym=gym_model,
                notes=notes,
            )
        )
    return environments


def _build_mdp(instance: GymInstance, name: str, max_states: int | None):
    """(MDP, GymModel, notes) for a MiniGrid level or a toy-text environment."""
    env = instance.unwrapped
    source = instance.spec.source
    minigrid_env = _minigrid_base()
    if minigrid_env is not None and isinstance(env, minigrid_env):
        from verifier.minigrid_mdp import enumerate_minigrid

        found = enumerate_minigrid(env, source, instance.spec.actions, max_states, name)
        model = GymModel(instance, "minigrid", found.snapshots, found.doors, found.steps_per_second)
        return found.mdp, model, (TIME_NOTE,)
    if hasattr(env, "P") and hasattr(env, "initial_state_distrib"):
        from verifier.toytext_mdp import toytext_mdp

        mdp = toytext_mdp(env, source, instance.spec.actions, name)
        if max_states is not None and mdp.n_states > max_states:
            raise ResourceLimit(
                f"{name} has {mdp.n_states} states, more than --max-states {max_states}"
            )
        return mdp, GymModel(instance, "toytext"), ()
    raise InputError(
        source,
        f"{instance.spec.id} is neither a MiniGrid level nor a toy-text environment with a "
        "transition table P; only those are exact finite MDPs here",
        "gymnasium.id",
    )


def action_names(env) -> tuple[str, ...]:
    """The names of an environment's actions in the order of their ids (a model's `actions`
    enables a subset of them): MiniGrid's `Actions`, FrozenLake's left, down, right, up,
    CliffWalking's and Taxi's (verifier/toytext_mdp.py), else a0, a1, ..."""
    base = env.unwrapped
    minigrid_env = _minigrid_base()
    if minigrid_env is not None and isinstance(base, minigrid_env):
        return tuple(a.name for a in base.actions)
    from verifier.toytext_mdp import ACTION_NAMES

    count = int(getattr(base.action_space, "n", 0))
    return ACTION_NAMES.get(type(base).__name__, tuple(f"a{i}" for i in range(count)))


def _minigrid_base():
    try:
        from minigrid.minigrid_env import MiniGridEnv
    except ImportError:
        return None
    return MiniGridEnv
