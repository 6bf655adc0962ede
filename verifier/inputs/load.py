"""Model files -> environments: one table of readers, keyed by the `gym:` prefix or the file's
suffix (as Gymnasium's registry keys environments by id), and for TOML files by their
top-level table (`[gymnasium]`; otherwise a maze).

    gym:ENV_ID                  a Gymnasium environment (verifier/inputs/gym.py)
    .toml with [gymnasium]      a Gymnasium model file (verifier/inputs/gym.py)
    .toml with [family]         a level family, read lazily (verifier/inputs/family.py)
    .toml                       a maze (verifier/inputs/maze.py, maze_compile.py)
    .prism .pm .nm              a PRISM model (verifier/inputs/prism.py)

A directory stands for its model files, sorted. One model file may give several
environments (a Gymnasium model with `seeds`: a deployment set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from verifier import storm
from verifier.engine.query import Model
from verifier.errors import InputError
from verifier.inputs.environment import Environment, check_labels, check_objectives
from verifier.inputs.family import Family, is_family, load_family
from verifier.inputs.gym_spec import SHORTHAND, is_gym_model
from verifier.inputs.maze import Maze, load_maze
from verifier.inputs.maze_compile import compile_maze, label_names
from verifier.inputs.paths import MAZE_SUFFIXES, PRISM_SUFFIXES
from verifier.inputs.prism import prism_environment


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
    if is_family(model):
        return list(_family(model, options))
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


def _family(model: Path | str, options: LoadOptions) -> Iterator[Environment]:
    if options.constants:
        raise InputError("--const", f"{model} is a level family; --const applies to PRISM models")
    family = load_family(model)
    for index in range(len(family)):
        yield from level_environments(family, index, options.spec, options.max_states)


def level_environments(
    family: Family, index: int, spec: str | None = None, max_states: int | None = None
) -> list[Environment]:
    """The environments of level `index` of a family (one), made now; φ is `spec`, else
    the family's `intended`, else the level's own."""
    level = family.level(index)
    spec = spec or family.intended
    if level.maze is not None:
        return [maze_environment(level.maze, level.name, spec, max_states)]
    if level.gym_spec is not None:
        from verifier.inputs.gym import spec_environments  # gymnasium's machinery, on demand

        return spec_environments(level.gym_spec, spec, max_states, level.name)
    if level.file is None:
        raise ValueError(f"{level.name}: a level with no source")
    return load_environments(level.file, spec, max_states=max_states)


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


def iter_environments(
    path: str | Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
) -> Iterator[Environment]:
    """Every environment of one model file, each made when it is reached: a level family
    (verifier/inputs/family.py) is never held whole."""
    if is_family(path):
        yield from _family(path, LoadOptions(spec, constants, max_states))
    else:
        yield from load_environments(path, spec, constants, max_states)


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
