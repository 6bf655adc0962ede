"""A model file (maze TOML or PRISM) -> an environment ready to check, with its objective.

The objective is chosen as README ("Commands") says: `--spec`, else the `.props` file beside a PRISM
model (PRISM's convention), else the maze's `intended`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from verifier import storm
from verifier.compile import compile_maze, label_names
from verifier.errors import InputError
from verifier.gym_model import is_gym_model
from verifier.maze import Maze, load_maze
from verifier.mdp import MDP
from verifier.queries import Model, Property, PropertyResult

MAZE_SUFFIXES = (".toml",)
PRISM_SUFFIXES = (".prism", ".pm", ".nm")


@dataclass(frozen=True, slots=True, eq=False)
class Environment:
    """One model with the properties to check on it.

    `model` is the full reachable model and the questions asked of it (`mdp` is its MDP).
    `checked` is, for a PRISM file, Storm's build for the properties, which also evaluates
    their expressions over variables (`verify check` asks it); else None, and properties are
    checked on `model`. `maze` is set for maze files, `gym` (a verifier.gym_model.GymModel)
    for Gymnasium models; `notes` are said to the user.
    """

    path: Path
    model: Model
    properties: tuple[Property, ...]
    objective: str
    objective_source: str
    maze: Maze | None = None
    gym: object | None = None
    notes: tuple[str, ...] = ()
    checked: Model | None = None

    @property
    def mdp(self) -> MDP:
        return self.model.mdp

    @property
    def storm_model(self):
        """The Storm model the properties are checked on."""
        return (self.checked or self.model).storm

    def check(self, prop: Property) -> PropertyResult:
        """`prop` at the initial states (queries.Model.check); an error names where the
        objective was written."""
        return (self.checked or self.model).check(prop, self.objective_source)


def load_environment(
    path: str | Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
) -> Environment:
    """Read a maze or PRISM file (or a one-seed Gymnasium model), build it, and parse its
    objective."""
    if is_gym_model(path):
        environments = load_environments(path, spec, constants, max_states)
        if len(environments) > 1:
            raise InputError(
                str(path), f"has {len(environments)} seeds (a deployment set); give one seed here"
            )
        return environments[0]
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such file")
    suffix = path.suffix.lower()
    if suffix in MAZE_SUFFIXES:
        if constants:
            raise InputError("--const", f"{path} is a maze; --const applies to PRISM models")
        return maze_environment(load_maze(path), path, spec, max_states)
    if suffix in PRISM_SUFFIXES:
        prism = storm.load_prism(path, constants)
        objective, objective_source = _prism_objective(path, spec)
        properties = storm.parse_properties(objective, prism, source=objective_source)
        full = storm.build_prism(prism, max_states=max_states)
        _check_objectives(properties, objective_source, full.is_nondeterministic_model)
        mdp = storm.from_storm(
            full, name=path.stem, variables=prism.variables, actions=prism.actions
        )
        checked = Model(storm_model=storm.build_prism(prism, properties))
        return Environment(
            path,
            Model(mdp, full),
            tuple(properties),
            objective,
            objective_source,
            checked=checked,
        )
    known = ", ".join(MAZE_SUFFIXES + PRISM_SUFFIXES)
    raise InputError(str(path), f"unknown model type {suffix or '(no suffix)'!r}; known: {known}")


def load_environments(
    path: str | Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
) -> list[Environment]:
    """Every environment of one model: one, or one per seed of a Gymnasium model."""
    if not is_gym_model(path):
        return [load_environment(path, spec, constants, max_states)]
    if constants:
        raise InputError("--const", f"{path} is a Gymnasium model; --const applies to PRISM models")
    from verifier.gym_model import gym_environments

    return gym_environments(path, spec, max_states)


def maze_environment(
    maze: Maze, path: str | Path, spec: str | None = None, max_states: int | None = None
) -> Environment:
    """A maze (read from `path`, or generated and shown as `path`) as an environment."""
    objective, objective_source = (spec, "--spec") if spec else (maze.intended, f"{path}: intended")
    properties = storm.parse_properties(
        objective, source=objective_source, labels=label_names(maze)
    )
    _check_objectives(properties, objective_source, nondeterministic=True)
    mdp = compile_maze(maze, max_states=max_states)
    return Environment(Path(path), Model(mdp), tuple(properties), objective, objective_source, maze)


_UNDIRECTED = "on an MDP a query needs min or max, e.g. Pmax=? or Pmin=?"


def _check_objectives(properties, source: str, nondeterministic: bool) -> None:
    """InputError for a property that cannot be an objective (multi, quantile, a state
    formula), and on an MDP for a query without min or max (Pmax=?, Pmin=?): Storm refuses
    it in checks, and other paths would read an unset direction."""
    for prop in properties:
        problem = prop.problem
        if problem is None and nondeterministic and prop.comparison is None:
            problem = None if prop.direction else _UNDIRECTED
        if problem is not None:
            from verifier.objective import SUPPORTED  # objective imports this module

            raise InputError(source, f"{prop}: {problem}; {SUPPORTED}")


def _prism_objective(path: Path, spec: str | None) -> tuple[str, str]:
    if spec:
        return spec, "--spec"
    props = path.with_suffix(".props")
    if props.is_file():
        return props.read_text(encoding="utf-8"), str(props)
    raise InputError(
        str(path), f"no property to check: give --spec or write {props.name} beside it"
    )
