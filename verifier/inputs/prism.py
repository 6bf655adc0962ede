"""PRISM model files (`.prism`, `.pm`, `.nm`: MDPs and DTMCs) -> environments, built by Storm,
with the objective from `--spec` or the `.props` file beside the model (PRISM's convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from verifier import storm
from verifier.engine.query import Model
from verifier.errors import InputError
from verifier.inputs.environment import Environment, check_objectives


def prism_environment(
    path: Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
) -> Environment:
    """Parse a PRISM file with its constants, build its full reachable model and, for
    `verify check`, Storm's build for the properties."""
    prism = storm.load_prism(path, constants)
    objective, objective_source = _prism_objective(path, spec)
    properties = storm.parse_properties(objective, prism, source=objective_source)
    full = storm.build_prism(prism, max_states=max_states)
    check_objectives(properties, objective_source, full.is_nondeterministic_model)
    mdp = storm.from_storm(full, name=path.stem, variables=prism.variables, actions=prism.actions)
    checked = Model(storm_model=storm.build_prism(prism, properties))
    return Environment(
        path, Model(mdp, full), tuple(properties), objective, objective_source, checked=checked
    )


def _prism_objective(path: Path, spec: str | None) -> tuple[str, str]:
    if spec:
        return spec, "--spec"
    props = path.with_suffix(".props")
    if props.is_file():
        return props.read_text(encoding="utf-8"), str(props)
    raise InputError(
        str(path), f"no property to check: give --spec or write {props.name} beside it"
    )
