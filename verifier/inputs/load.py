"""Model files -> environments: one table of readers, keyed by the `gym:` prefix or the file's
suffix (as Gymnasium's registry keys environments by id), and for TOML files by their
top-level table (`[gymnasium]`; otherwise a maze).

    gym:ENV_ID                  a Gymnasium environment (verifier/inputs/gym.py)
    .toml with [gymnasium]      a Gymnasium model file (verifier/inputs/gym.py)
    .toml                       a maze (verifier/inputs/maze.py, maze_compile.py)
    .prism .pm .nm              a PRISM model (verifier/inputs/prism.py)

A directory stands for its model files, sorted. One model file may give several
environments (a Gymnasium model with `seeds`: a deployment set).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from verifier import storm
from verifier.documents import parse_toml
from verifier.engine.query import Model
from verifier.errors import InputError
from verifier.inputs.environment import Environment, check_labels, check_objectives
from verifier.inputs.gym_spec import SHORTHAND, is_gym_model
from verifier.inputs.maze import Maze, load_maze
from verifier.inputs.maze_compile import compile_maze, label_names
from verifier.inputs.prism import PRISM_SUFFIXES, prism_environment

MAZE_SUFFIXES = (".toml",)
MODEL_SUFFIXES = MAZE_SUFFIXES + PRISM_SUFFIXES


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What every reader is given: the objective (`--spec`, else the model's own), open
    PRISM constants, the state budget, and whether properties are read at all (`verify
    states` lists a model's states and asks no property)."""

    spec: str | None = None
    constants: Mapping[str, str] | None = None
    max_states: int | None = None
    properties: bool = True


Reader = Callable[[Path | str, LoadOptions], list[Environment]]


def _gym(model: Path | str, options: LoadOptions) -> list[Environment]:
    if options.constants:
        raise InputError(
            "--const", f"{model} is a Gymnasium model; --const applies to PRISM models"
        )
    from verifier.inputs.gym import gym_environments  # gymnasium's machinery, on demand

    return gym_environments(model, options.spec, options.max_states, options.properties)


def _toml(model: Path | str, options: LoadOptions) -> list[Environment]:
    if is_gym_model(model):
        return _gym(model, options)
    if options.constants:
        raise InputError("--const", f"{model} is a maze; --const applies to PRISM models")
    maze = load_maze(model)
    return [maze_environment(maze, model, options.spec, options.max_states, options.properties)]


def _prism(model: Path | str, options: LoadOptions) -> list[Environment]:
    return [
        prism_environment(
            Path(model), options.spec, options.constants, options.max_states, options.properties
        )
    ]


PREFIX_READERS: dict[str, Reader] = {SHORTHAND: _gym}
SUFFIX_READERS: dict[str, Reader] = {
    **dict.fromkeys(MAZE_SUFFIXES, _toml),
    **dict.fromkeys(PRISM_SUFFIXES, _prism),
}


def load_environments(
    path: str | Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
    properties: bool = True,
) -> list[Environment]:
    """Every environment of one model file: one, or one per seed of a Gymnasium model.
    With `properties` False, the models alone (no objective is read: none to check)."""
    options = LoadOptions(spec, constants, max_states, properties)
    text = str(path)
    for prefix, reader in PREFIX_READERS.items():
        if text.startswith(prefix):
            return reader(text, options)
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_READERS:
        known = ", ".join(SUFFIX_READERS)
        raise InputError(
            str(path), f"unknown model type {suffix or '(no suffix)'!r}; known: {known}"
        )
    return SUFFIX_READERS[suffix](path, options)


def load_environment(
    path: str | Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
    properties: bool = True,
) -> Environment:
    """The one environment of a model file (a Gymnasium model must name one seed)."""
    environments = load_environments(path, spec, constants, max_states, properties)
    if len(environments) > 1:
        raise InputError(
            str(path), f"has {len(environments)} seeds (a deployment set); give one seed here"
        )
    return environments[0]


def model_paths(models: Sequence[str]) -> list[str]:
    """Model arguments with each directory replaced by its model files, sorted."""
    paths = []
    for model in models:
        if not Path(model).is_dir():
            paths.append(model)
            continue
        found = sorted(
            str(p)
            for p in Path(model).iterdir()
            if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES and not _is_reward_file(p)
        )
        if not found:
            raise InputError(
                model, f"a directory without model files ({', '.join(MODEL_SUFFIXES)})"
            )
        paths += found
    return paths


# The top-level keys of a reward TOML (verifier/spec/reward_file.py): a TOML file in a model
# directory with these alone is a reward beside the models (R{"name"} finds it there).
REWARD_KEYS = frozenset({"discount", "step", "arrive"})
_MODEL_KEY = re.compile(r"^[ \t]*(?:map|\[?[ \t]*[\"']?gymnasium)", re.M)


def _is_reward_file(path: Path) -> bool:
    """A TOML file whose top-level keys are a reward's only (read with a cheap look for a
    maze's `map` or a `[gymnasium]` table first: those are models)."""
    if path.suffix.lower() != ".toml":
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if _MODEL_KEY.search(text):
        return False
    try:
        doc = parse_toml(text, str(path))
    except InputError:  # the maze reader reports it
        return False
    return bool(doc) and doc.keys() <= REWARD_KEYS


def maze_environment(
    maze: Maze,
    path: str | Path,
    spec: str | None = None,
    max_states: int | None = None,
    properties: bool = True,
) -> Environment:
    """A maze (read from `path`, or generated and shown as `path`) as an environment."""
    objective, objective_source = (spec, "--spec") if spec else (maze.intended, f"{path}: intended")
    parsed = []
    if properties:
        parsed = storm.parse_properties(
            objective, source=objective_source, labels=label_names(maze)
        )
        check_objectives(parsed, objective_source, nondeterministic=True)
    mdp = compile_maze(maze, max_states=max_states)
    if properties:
        check_labels(parsed, objective_source, mdp.labels)
    return Environment(Path(path), Model(mdp), tuple(parsed), objective, objective_source, maze)
