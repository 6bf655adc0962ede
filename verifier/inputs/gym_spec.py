"""Gymnasium model files: the `[gymnasium]` TOML table or the `gym:ENV_ID` shorthand, read and
validated at the edge, and the types an environment built from them keeps. No gymnasium
import here: reading a model file needs none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from verifier.documents import parse_toml, read_text, toml_naming
from verifier.errors import InputError

SHORTHAND = "gym:"


DEFAULT_OBJECTIVE = 'Pmax=? [ !"lava" U "goal" ]'


_KEYS = ("id", "seed", "seeds", "kwargs", "wrappers", "actions", "intended", "packages")
# The packages whose modules a model file may have imported (environments, wrappers);
# `packages = [...]` in the file adds the user's own.
TRUSTED_PACKAGES = ("gymnasium", "minigrid")
# render_mode values without side effects; "human" opens a window (and costs a minute).
RENDER_MODES = ("rgb_array", "ansi")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


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
    packages: tuple[str, ...] = ()

    def allows(self, module: str) -> bool:
        """May `module` be imported for this model: is it gymnasium, minigrid, or in one of
        the packages the file names (`packages`), or a submodule of one?"""
        return any(
            module == package or module.startswith(package + ".")
            for package in TRUSTED_PACKAGES + self.packages
        )


@dataclass(slots=True, eq=False)
class GymInstance:
    """One made and reset environment: `env` with the user's wrappers, `unwrapped` the base
    env, `wrappers` the user's wrapper instances, inner to outer."""

    spec: GymSpec
    seed: int
    env: object
    unwrapped: object
    wrappers: tuple


def is_gym_model(model: str | Path) -> bool:
    """True for the shorthand `gym:ENV_ID` and for a TOML file with a `[gymnasium]` table."""
    text = str(model)
    if text.startswith(SHORTHAND):
        return True
    found = toml_naming(text, "gymnasium")
    if found is None:  # a maze: skip parsing its (possibly huge) map twice
        return False
    try:
        return "gymnasium" in parse_toml(found, text)
    except InputError:  # the maze reader reports it
        return False


def load_gym_spec(model: str | Path) -> GymSpec:
    """Read the shorthand or a model TOML's `[gymnasium]` table; InputError naming the key."""
    text = str(model)
    if text.startswith(SHORTHAND):
        env_id = text[len(SHORTHAND) :].strip()
        if not env_id:
            raise InputError(text, "empty environment id; write gym:ENV_ID, e.g. gym:FrozenLake-v1")
        return GymSpec(source=text, id=env_id)
    doc = parse_toml(read_text(text, "Gymnasium model"), text)
    return gym_spec_of(text, doc)


def gym_spec_of(text: str, doc: dict) -> GymSpec:
    """The GymSpec of a parsed TOML document with a `[gymnasium]` table (`text` names where
    it was written); InputError naming the key."""
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
        problems.append(f"gymnasium.id: must be an environment id string, got {_short(toml_id)}")
    seeds = _seeds(table, problems)
    kwargs = table.get("kwargs", {})
    if not isinstance(kwargs, dict):
        problems.append(f"gymnasium.kwargs: must be a table, got {_short(kwargs)}")
        kwargs = {}
    render_mode = kwargs.get("render_mode")
    if render_mode is not None and render_mode not in RENDER_MODES:
        problems.append(
            f"gymnasium.kwargs.render_mode: {_short(render_mode)} is refused (verify renders "
            f'nothing; "human" would open a window); leave it out, or {" or ".join(RENDER_MODES)}'
        )
    packages = table.get("packages", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and _MODULE.fullmatch(p) for p in packages
    ):
        problems.append(
            'gymnasium.packages: must be a list of package names such as "my_envs", got '
            f"{_short(packages)}"
        )
        packages = []
    wrappers = table.get("wrappers", [])
    if not isinstance(wrappers, list) or not all(isinstance(w, str) for w in wrappers):
        problems.append(
            f"gymnasium.wrappers: must be a list of 'module.Class' strings, got {_short(wrappers)}"
        )
        wrappers = []
    actions = table.get("actions")
    if actions is not None and (
        not isinstance(actions, list)
        or not actions
        or not all(isinstance(a, str) for a in actions)
        or len(set(actions)) != len(actions)
    ):
        problems.append(
            f"gymnasium.actions: must be a list of distinct action names, got {_short(actions)}"
        )
    intended = table.get("intended", DEFAULT_OBJECTIVE)
    if not isinstance(intended, str):
        problems.append(f"gymnasium.intended: must be a property string, got {_short(intended)}")
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
        packages=tuple(packages),
    )


def _seeds(table: dict, problems: list[str]) -> tuple[int, ...]:
    if "seed" in table and "seeds" in table:
        problems.append("gymnasium: give seed or seeds, not both")
    if "seeds" in table:
        seeds = table["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(_integer(s) for s in seeds):
            problems.append(
                f"gymnasium.seeds: must be a non-empty list of integers, got {_short(seeds)}"
            )
            return (0,)
        return tuple(seeds)
    seed = table.get("seed", 0)
    if not _integer(seed):
        problems.append(f"gymnasium.seed: must be an integer, got {_short(seed)}")
        return (0,)
    return (seed,)


def _short(value: object) -> str:
    """repr of a value from the file, cut to one short line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
