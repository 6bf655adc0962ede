"""Reward TOML -> Reward; a Reward or a PRISM reward structure -> a vector over choices.

R(s, a) = step + sum over s' of P(s'|s,a) * (sum of `arrive` weights of the labels of s'),
for every choice of a non-absorbing state; absorbing states earn nothing (README, "Files").
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verifier.errors import InputError
from verifier.mdp import MDP

_KEYS = ("discount", "step", "arrive")


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward over labels: `step` per action, `arrive` weights per label of the next state."""

    name: str
    source: str
    discount: float = 1.0
    step: float = 0.0
    arrive: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class RewardVector:
    """A reward resolved on one model: float64 [n_choices], with its discount and origin."""

    name: str
    values: np.ndarray
    discount: float
    source: str


def load_reward(path: str | Path) -> Reward:
    """Read and validate a reward TOML file; InputError naming the key and the problem."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read reward: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), f"TOML syntax error: {exc}") from None
    problems = []
    for key in doc:
        if key not in _KEYS:
            problems.append(f"{key}: unknown key; known: {', '.join(_KEYS)}")
    discount = doc.get("discount", 1.0)
    if not _number(discount) or not 0.0 < discount <= 1.0:
        problems.append(f"discount: must be a number in (0, 1], got {discount!r}")
    step = doc.get("step", 0.0)
    if not _number(step):
        problems.append(f"step: must be a number, got {step!r}")
    arrive = doc.get("arrive", {})
    if not isinstance(arrive, dict):
        problems.append("arrive: must be a table of label = weight")
        arrive = {}
    for label, weight in arrive.items():
        if not _number(weight):
            problems.append(f"arrive.{label}: must be a number, got {weight!r}")
    if problems:
        raise InputError(str(path), "; ".join(problems))
    return Reward(
        name=path.stem,
        source=str(path),
        discount=float(discount),
        step=float(step),
        arrive={label: float(w) for label, w in arrive.items()},
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def absorbing_states(mdp: MDP) -> np.ndarray:
    """bool [n_states]: states whose every choice stays put with probability 1."""
    states = mdp.choice_states()
    matrix = mdp.transitions.tocoo()
    self_loop = np.zeros(mdp.n_choices)
    on_diagonal = matrix.col == states[matrix.row]
    np.add.at(self_loop, matrix.row[on_diagonal], matrix.data[on_diagonal])
    stays = np.isclose(self_loop, 1.0, rtol=0, atol=1e-12)
    return np.logical_and.reduceat(stays, mdp.row_groups[:-1]) if mdp.n_states else stays


def reward_vector(mdp: MDP, reward: Reward) -> RewardVector:
    """R(s, a) of a Reward on an MDP (vectorised: one sparse product)."""
    missing = sorted(set(reward.arrive) - set(mdp.labels))
    if missing:
        known = ", ".join(sorted(mdp.labels))
        raise InputError(
            reward.source,
            f"arrive.{missing[0]}: model {mdp.name!r} has no such label; known: {known}",
        )
    arrival = np.zeros(mdp.n_states)
    for label, weight in reward.arrive.items():
        arrival += weight * mdp.labels[label]
    values = reward.step + mdp.transitions @ arrival
    values[np.repeat(absorbing_states(mdp), np.diff(mdp.row_groups))] = 0.0
    return RewardVector(reward.name, values, reward.discount, reward.source)


def resolve_reward(spec: str, mdp: MDP, discount: float | None = None) -> RewardVector:
    """`--reward`: a reward TOML file, or the name of a reward structure of a PRISM model.

    `discount` (from `--discount`) overrides the file's discount; a PRISM reward structure
    is undiscounted unless it is given.
    """
    if discount is not None and not 0.0 < discount <= 1.0:
        raise InputError("--discount", f"must be in (0, 1], got {discount}")
    if spec in mdp.rewards:
        return RewardVector(
            spec, np.asarray(mdp.rewards[spec]), discount or 1.0, f"rewards {spec!r}"
        )
    path = Path(spec)
    if path.suffix.lower() == ".toml" or path.exists():
        if not path.is_file():
            raise InputError(spec, "no such reward file")
        vector = reward_vector(mdp, load_reward(path))
        if discount is not None:
            vector = RewardVector(vector.name, vector.values, discount, vector.source)
        return vector
    known = ", ".join(repr(name) for name in mdp.rewards) or "none"
    raise InputError(
        "--reward",
        f"{spec!r} is neither a reward file nor a reward structure of the model (it has: {known})",
    )
