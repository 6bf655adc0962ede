"""An environment: one model ready to check, with the properties to check on it.

Every input reader (verifier/inputs/load.py keeps them in a table) produces these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from verifier.engine.query import Model, Property, PropertyResult
from verifier.errors import InputError
from verifier.inputs.gym_spec import GymModel
from verifier.inputs.maze import Maze
from verifier.mdp import MDP
from verifier.storm import SUPPORTED


@dataclass(frozen=True, slots=True, eq=False)
class Environment:
    """One model with the properties to check on it.

    `model` is the full reachable model and the questions asked of it (`mdp` is its MDP).
    `checked` is, for a PRISM file, Storm's build for the properties, which also evaluates
    their expressions over variables (`verify check` asks it); else None, and properties are
    checked on `model`. `maze` is set for maze files, `gym` for Gymnasium models; `notes`
    are said to the user.
    """

    path: Path
    model: Model
    properties: tuple[Property, ...]
    objective: str
    objective_source: str
    maze: Maze | None = None
    gym: GymModel | None = None
    notes: tuple[str, ...] = ()
    checked: Model | None = None

    @property
    def mdp(self) -> MDP:
        return self.model.mdp

    @property
    def storm_model(self):
        """The Storm model the properties are checked on."""
        return (self.checked or self.model).storm

    def check(self, prop: Property, best: bool = False) -> PropertyResult:
        """`prop` at the initial states (Model.check; `best`: for a bound on an MDP, the
        optimum in its favour); an error names where the objective was written."""
        return (self.checked or self.model).check(prop, self.objective_source, best)


_UNDIRECTED = "on an MDP a query needs min or max, e.g. Pmax=? or Pmin=?"
# Labels every Storm model has, whatever the model file defines.
STORM_LABELS = ("init", "deadlock")
_REWARD_NAME = re.compile(r'\{\s*"[^"]*"\s*\}')
_LABEL = re.compile(r'"([^"]*)"')


def check_labels(properties, source: str, labels) -> None:
    """InputError naming a label that a property uses and the model does not have, with
    the labels it has."""
    known = set(labels) | set(STORM_LABELS)
    for prop in properties:
        used = _LABEL.findall(_REWARD_NAME.sub("", prop.text))
        unknown = [label for label in dict.fromkeys(used) if label not in known]
        if unknown:
            shown = ", ".join(f'"{label}"' for label in sorted(known - set(STORM_LABELS)))
            raise InputError(
                source,
                f"{prop.text}: unknown label '{unknown[0]}'; the model's labels: {shown}",
            )


def check_objectives(properties, source: str, nondeterministic: bool) -> None:
    """InputError for a property that cannot be an objective (multi, quantile, a state
    formula), and on an MDP for a query without min or max (Pmax=?, Pmin=?): Storm refuses
    it in checks, and other paths would read an unset direction."""
    for prop in properties:
        problem = prop.problem
        if problem is None and nondeterministic and prop.comparison is None:
            problem = None if prop.direction else _UNDIRECTED
        if problem is not None:
            raise InputError(source, f"{prop}: {problem}; {SUPPORTED}")
