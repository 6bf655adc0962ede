"""PRISM model files (`.prism`, `.pm`, `.nm`: MDPs and DTMCs) -> environments, built by Storm,
with the objective from `--spec` or the `.props` file beside the model (PRISM's convention).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from verifier import storm
from verifier.documents import read_text
from verifier.engine.query import Model
from verifier.errors import InputError
from verifier.inputs.environment import Environment, check_labels, check_objectives


def prism_environment(
    path: Path,
    spec: str | None = None,
    constants: Mapping[str, str] | None = None,
    max_states: int | None = None,
    properties: bool = True,
) -> Environment:
    """Parse a PRISM file with its constants, build its full reachable model and, for
    `verify check`, Storm's build for the properties. Without `properties`, the model alone
    (`verify states`: no objective needed)."""
    prism = storm.load_prism(path, constants)
    objective, objective_source, parsed = "", "", []
    if properties:
        objective, objective_source = _prism_objective(path, spec)
        parsed = storm.parse_properties(objective, prism, source=objective_source)
    full = storm.build_prism(prism, max_states=max_states)
    mdp = storm.from_storm(full, name=path.stem, variables=prism.variables, actions=prism.actions)
    _check_rewards(mdp, str(path))
    if not properties:
        return Environment(path, Model(mdp, full), (), objective, objective_source)
    check_objectives(parsed, objective_source, full.is_nondeterministic_model)
    check_labels(parsed, objective_source, mdp.labels)
    checked = Model(storm_model=storm.build_prism(prism, parsed))
    return Environment(
        path, Model(mdp, full), tuple(parsed), objective, objective_source, checked=checked
    )


def _prism_objective(path: Path, spec: str | None) -> tuple[str, str]:
    if spec:
        return spec, "--spec"
    props = path.with_suffix(".props")
    if props.is_file():
        return read_text(props, "properties"), str(props)
    raise InputError(
        str(path), f"no property to check: give --spec or write {props.name} beside it"
    )


def _check_rewards(mdp, source: str) -> None:
    """InputError naming a reward structure with a value that is not a finite number (NaN
    from 0/0, inf from 1/0.0 or an overflow): no return is defined with it."""
    for name, values in mdp.rewards.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise InputError(
                source,
                f'rewards "{name}": {values[bad[0]]} at choice {int(bad[0])} of state '
                f"{mdp.state_description(int(mdp.choice_states()[bad[0]]))}; every reward "
                "must be a finite number",
            )
