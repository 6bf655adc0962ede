"""Gymnasium model files (`[gymnasium]` TOML, `gym:ENV_ID`) -> exact MDPs of the real env.

A model is (id, make kwargs, reset seed, observation wrappers, action subset): the reset seed
fixes the layout, so each seed of `seeds` is one environment of a deployment set. MiniGrid
levels are enumerated through the environment's own `step` (verifier/inputs/minigrid.py);
toy-text environments are read from their transition table `P` (verifier/inputs/toytext.py).
gymnasium and minigrid are imported here only, and only when such a model is loaded.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import replace
from pathlib import Path

from verifier import storm
from verifier.engine.query import Model
from verifier.errors import DependencyMissing, InputError, ResourceLimit, first_line
from verifier.inputs.environment import Environment
from verifier.inputs.gym_spec import GymInstance, GymModel, GymSpec, load_gym_spec

_MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")


def make_instance(spec: GymSpec, seed: int) -> GymInstance:
    """gymnasium.make(id, **kwargs), the wrappers applied inner to outer, reset(seed)."""
    gymnasium = _import("gymnasium", spec.source, "gymnasium")
    if spec.id.startswith(_MINIGRID_PREFIXES):
        _import("minigrid", spec.source, "minigrid")
    try:
        env = gymnasium.make(spec.id, **spec.kwargs)
    except gymnasium.error.Error as exc:
        raise InputError(
            spec.source, f"cannot make {spec.id!r}: {first_line(exc)}", "gymnasium.id"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InputError(
            spec.source,
            f"gymnasium.make({spec.id!r}) refused the kwargs: {first_line(exc)}",
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
                spec.source, f"{name}(env) failed: {first_line(exc)}", f"gymnasium.wrappers[{i}]"
            ) from None
        wrappers.append(env)
    try:
        env.reset(seed=seed)
    except Exception as exc:
        raise InputError(
            spec.source, f"reset(seed={seed}) failed: {first_line(exc)}", "gymnasium.seed"
        ) from None
    return GymInstance(spec, seed, env, env.unwrapped, tuple(wrappers))


def _import(module: str, source: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyMissing("a Gymnasium model", package, "gym", source) from None


def _wrapper_class(name: str, source: str, place: str):
    module_name, sep, attribute = name.replace(":", ".").rpartition(".")
    if not sep or not module_name:
        raise InputError(source, f"{name!r} is not 'module.Class'", place)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(
            source, f"cannot import {module_name!r} ({first_line(exc)})", place
        ) from None
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type):
        raise InputError(source, f"module {module_name!r} has no class {attribute!r}", place)
    return cls


TIME_NOTE = (
    "the step counter is abstracted away (0 before every step): exact for objectives and "
    "policies that do not observe time; reward `env` is the first step's"
)


def gym_environments(model: str | Path, spec: str | None = None, max_states: int | None = None):
    """One Environment per seed of a Gymnasium model (the shorthand or a model TOML)."""
    return spec_environments(load_gym_spec(model), spec, max_states)


def spec_environments(
    gym_spec: GymSpec, spec: str | None = None, max_states: int | None = None, named: str = ""
):
    """One Environment per seed of `gym_spec`, each named `named` (default: the spec's
    source, with `@seed=N` where it has several seeds)."""
    objective, objective_source = (
        (spec, "--spec") if spec else (gym_spec.intended, f"{gym_spec.source}: intended")
    )
    properties = storm.parse_properties(objective, source=objective_source)
    environments = []
    for seed in gym_spec.seeds:
        name = named or gym_spec.source
        if len(gym_spec.seeds) > 1:
            name = f"{name}@seed={seed}"
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
        from verifier.inputs.minigrid import enumerate_minigrid

        found = enumerate_minigrid(env, source, instance.spec.actions, max_states, name)
        model = GymModel(instance, "minigrid", found.snapshots, found.doors, found.steps_per_second)
        return found.mdp, model, (TIME_NOTE,)
    if hasattr(env, "P") and hasattr(env, "initial_state_distrib"):
        from verifier.inputs.toytext import toytext_mdp

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
    CliffWalking's and Taxi's (verifier/inputs/toytext.py), else a0, a1, ..."""
    base = env.unwrapped
    minigrid_env = _minigrid_base()
    if minigrid_env is not None and isinstance(base, minigrid_env):
        return tuple(a.name for a in base.actions)
    from verifier.inputs.toytext import ACTION_NAMES

    count = int(getattr(base.action_space, "n", 0))
    return ACTION_NAMES.get(type(base).__name__, tuple(f"a{i}" for i in range(count)))


def _minigrid_base():
    try:
        from minigrid.minigrid_env import MiniGridEnv
    except ImportError:
        return None
    return MiniGridEnv
