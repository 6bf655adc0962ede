"""Gymnasium model files (`[gymnasium]` TOML, `gym:ENV_ID`) -> exact MDPs of the real env.

A model is (id, make kwargs, reset seed, observation wrappers, action subset): the reset seed
fixes the layout, so each seed of `seeds` is one environment of a deployment set. MiniGrid
levels are enumerated through the environment's own `step` (verifier/inputs/minigrid.py);
toy-text environments are read from their transition table `P` (verifier/inputs/toytext.py).
gymnasium and minigrid are imported here only, and only when such a model is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from verifier import storm
from verifier.budget import over_budget
from verifier.engine.query import Model
from verifier.errors import DependencyMissing, InputError, first_line
from verifier.inputs.environment import Environment, check_labels
from verifier.inputs.gym_spec import GymInstance, GymModel, GymSpec, load_gym_spec
from verifier.inputs.toytext import check_toytext_kwargs

_MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")


def make_instance(spec: GymSpec, seed: int, max_states: int | None = None) -> GymInstance:
    """gymnasium.make(id, **kwargs), the wrappers applied inner to outer, reset(seed).

    Only modules of gymnasium, minigrid and the file's `packages` are imported (an id
    `module:Env` and each wrapper are checked before anything is imported), and a toy-text
    map is measured against the state budget before gymnasium builds it."""
    module, _, _ = spec.id.rpartition(":")
    if module and not spec.allows(module):
        raise InputError(
            spec.source, _not_allowed(module, "the environment's module"), "gymnasium.id"
        )
    for i, name in enumerate(spec.wrappers):
        _check_wrapper_name(spec, name, f"gymnasium.wrappers[{i}]")
    gymnasium = _import("gymnasium", spec.source, "gymnasium")
    if spec.id.startswith(_MINIGRID_PREFIXES):
        _import("minigrid", spec.source, "minigrid")
    for package in spec.packages:
        try:
            importlib.import_module(package)
        except Exception as exc:  # the package's own code failing is the file's problem
            raise InputError(
                spec.source, f"cannot import {package!r} ({first_line(exc)})", "gymnasium.packages"
            ) from None
    _check_registered(spec, gymnasium)
    check_toytext_kwargs(spec, max_states)
    try:
        env = gymnasium.make(spec.id, **spec.kwargs)
    except gymnasium.error.Error as exc:
        raise InputError(
            spec.source, f"cannot make {spec.id!r}: {first_line(exc)}", "gymnasium.id"
        ) from None
    except Exception as exc:
        raise InputError(
            spec.source,
            f"gymnasium.make({spec.id!r}) failed on the kwargs: {first_line(exc)}",
            "gymnasium.kwargs",
        ) from None
    wrappers = []
    for i, name in enumerate(spec.wrappers):
        place = f"gymnasium.wrappers[{i}]"
        cls = _wrapper_class(name, spec.source, place)
        if not issubclass(cls, gymnasium.ObservationWrapper):
            raise InputError(
                spec.source,
                f"{name} is not a gymnasium.ObservationWrapper; only observation "
                "wrappers are allowed (the dynamics must be the environment's own)",
                place,
            )
        try:
            env = cls(env)
        except Exception as exc:
            raise InputError(spec.source, f"{name}(env) failed: {first_line(exc)}", place) from None
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


def _not_allowed(module: str, what: str) -> str:
    return (
        f"{what} {module!r} is outside gymnasium and minigrid; name its package in "
        f'`packages = ["{module.split(".")[0]}"]` to allow importing it'
    )


def _check_wrapper_name(spec: GymSpec, name: str, place: str) -> None:
    """A wrapper written `package.module.Class` (or `package.module:Class`), checked before
    anything is imported: absolute, and inside the allowed packages."""
    module, sep, attribute = name.replace(":", ".").rpartition(".")
    if not sep or not _MODULE_NAME.fullmatch(module) or not attribute.isidentifier():
        raise InputError(
            spec.source, f"{name!r} is not an absolute 'package.module.Class' name", place
        )
    if not spec.allows(module):
        raise InputError(spec.source, _not_allowed(module, "the wrapper's module"), place)


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def _wrapper_class(name: str, source: str, place: str):
    """The class a checked wrapper name names (_check_wrapper_name first)."""
    module_name, _, attribute = name.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise InputError(
            source, f"cannot import {module_name!r} ({first_line(exc)})", place
        ) from None
    cls = getattr(module, attribute, None)
    if not isinstance(cls, type):
        raise InputError(source, f"module {module_name!r} has no class {attribute!r}", place)
    return cls


def _check_registered(spec: GymSpec, gymnasium) -> None:
    """An id registered with an entry point outside the allowed packages is refused before
    gymnasium.make imports it."""
    registered = gymnasium.envs.registration.registry.get(spec.id.rpartition(":")[2])
    entry_point = getattr(registered, "entry_point", None)
    if isinstance(entry_point, str):
        module = entry_point.partition(":")[0]
        if not spec.allows(module):
            raise InputError(
                spec.source,
                _not_allowed(module, f"{spec.id!r} is registered from the module"),
                "gymnasium.id",
            )


@contextlib.contextmanager
def quiet_loading(source: str):
    """Loading a Gymnasium model runs the environment's own code. While it runs, warnings
    are silenced (gymnasium's deprecation notices), everything written to stdout or stderr
    (file descriptors 1 and 2 and Python's sys.stdout/sys.stderr) is captured, and what
    was written is an InputError, as is a call of sys.exit: a model file must not speak
    for the verifier, nor end it."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    python = io.StringIO()
    with tempfile.TemporaryFile() as captured, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = (os.dup(1), os.dup(2))
        try:
            os.dup2(captured.fileno(), 1)
            os.dup2(captured.fileno(), 2)
            with contextlib.redirect_stdout(python), contextlib.redirect_stderr(python):
                try:
                    yield
                except SystemExit as exc:
                    raise InputError(
                        source, f"loading the environment called sys.exit({exc.code!r}); refused"
                    ) from None
        finally:
            _flush_c_streams()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        captured.seek(0)
        written = captured.read().decode("utf-8", "replace") + python.getvalue()
    lines = [line.strip() for line in written.splitlines() if line.strip()]
    if lines:
        shown = lines[0] if len(lines[0]) <= 100 else lines[0][:97] + "..."
        more = f" (and {len(lines) - 1} more lines)" if len(lines) > 1 else ""
        raise InputError(
            source,
            f"loading the environment printed {shown!r}{more}; a model must load silently",
        )


def _flush_c_streams() -> None:
    """fflush(NULL): what C code buffered for stdout goes to the captured file now."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


TIME_NOTE = (
    "the step counter is abstracted away (0 before every step): exact for objectives and "
    "policies that do not observe time; reward `env` is the first step's"
)


def gym_environments(
    model: str | Path,
    spec: str | None = None,
    max_states: int | None = None,
    properties: bool = True,
):
    """One Environment per seed of a Gymnasium model (the shorthand or a model TOML);
    without `properties`, the models alone (no objective read)."""
    return spec_environments(load_gym_spec(model), spec, max_states, properties=properties)


def spec_environments(
    gym_spec: GymSpec,
    spec: str | None = None,
    max_states: int | None = None,
    named: str = "",
    properties: bool = True,
):
    """One Environment per seed of `gym_spec`, each named `named` (default: the spec's
    source, with `@seed=N` where it has several seeds)."""
    objective, objective_source = (
        (spec, "--spec") if spec else (gym_spec.intended, f"{gym_spec.source}: intended")
    )
    parsed = storm.parse_properties(objective, source=objective_source) if properties else []
    environments = []
    for seed in gym_spec.seeds:
        name = named or gym_spec.source
        if len(gym_spec.seeds) > 1:
            name = f"{name}@seed={seed}"
        with quiet_loading(gym_spec.source):
            instance = make_instance(gym_spec, seed, max_states)
            started = time.perf_counter()
            mdp, gym_model, notes = _build_mdp(instance, name, max_states)
        gym_model = replace(gym_model, seconds=time.perf_counter() - started)
        check_labels(parsed, objective_source, mdp.labels)
        environments.append(
            Environment(
                Path(name),
                Model(mdp),
                tuple(parsed),
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

        mdp = toytext_mdp(env, source, instance.spec.actions, name, max_states)
        if max_states is not None and mdp.n_states > max_states:
            raise over_budget(name, max_states, f": {mdp.n_states}")
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
