"""Reward TOML -> Reward; a Reward or a PRISM reward structure -> a vector over choices.

R(s, a) = step + sum over s' of P(s'|s,a) * (sum of `arrive` weights of the labels of s'),
for every choice of a non-absorbing state; absorbing states earn nothing (README, "Files").

Every number of a reward file is also kept as the exact decimal written (1e-08 is 1/10^8),
for `--exact`, which never passes through a float.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from verifier.errors import InputError
from verifier.graph import absorbing_states
from verifier.mdp import MDP

_KEYS = ("discount", "step", "arrive")
# Beyond this magnitude a reward leaves no room for float64 values and tolerances (a return
# sums rewards over up to 10^6 states and 1 / (1 - discount) steps).
MAX_MAGNITUDE = 1e12


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward over labels: `step` per action, `arrive` weights per label of the next state.

    `exact` holds the same numbers as the exact decimals written in the file ("step",
    "arrive.<label>"); numbers not found there are read from their float's shortest repr.
    """

    name: str
    source: str
    discount: float = 1.0
    step: float = 0.0
    arrive: Mapping[str, float] = field(default_factory=dict)
    exact: Mapping[str, Fraction] = field(default_factory=dict)

    def exact_step(self) -> Fraction:
        return self.exact.get("step", _shortest(self.step))

    def exact_arrive(self) -> dict[str, Fraction]:
        return {
            label: self.exact.get(f"arrive.{label}", _shortest(weight))
            for label, weight in self.arrive.items()
        }


@dataclass(frozen=True, slots=True, eq=False)
class RewardVector:
    """A reward resolved on one model: float64 [n_choices], with its discount and origin
    (`reward`, the Reward it came from; None for a PRISM reward structure)."""

    name: str
    values: np.ndarray
    discount: float
    source: str
    reward: Reward | None = None


def load_reward(path: str | Path) -> Reward:
    """Read and validate a reward TOML file; InputError naming the key and the problem."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"), parse_float=_decimal)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read reward: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), f"TOML syntax error: {exc}") from None
    problems = []
    for key in doc:
        if key not in _KEYS:
            problems.append(f"{key}: unknown key; known: {', '.join(_KEYS)}")
    discount = doc.get("discount", 1)
    if not _number(discount) or not 0 < discount <= 1:
        problems.append(f"discount: must be a number in (0, 1], got {_shown(discount)}")
    numbers = {"step": doc.get("step", 0)}
    arrive = doc.get("arrive", {})
    if not isinstance(arrive, dict):
        problems.append("arrive: must be a table of label = weight")
        arrive = {}
    numbers.update({f"arrive.{label}": weight for label, weight in arrive.items()})
    for key, value in numbers.items():
        if not _number(value):
            problems.append(f"{key}: must be a number (finite), got {_shown(value)}")
        elif abs(value) > MAX_MAGNITUDE:
            problems.append(
                f"{key}: {_shown(value)} is too large; rewards must lie within "
                f"±{MAX_MAGNITUDE:.0e} (rescale the reward)"
            )
    if problems:
        raise InputError(str(path), "; ".join(problems))
    return Reward(
        name=path.stem,
        source=str(path),
        discount=float(discount),
        step=float(numbers["step"]),
        arrive={label: float(w) for label, w in arrive.items()},
        exact={key: Fraction(value) for key, value in numbers.items()},
    )


def _decimal(text: str) -> Fraction | float:
    """A TOML float as the exact decimal written; nan and inf stay floats (refused)."""
    try:
        return Fraction(text.replace("_", ""))
    except ValueError:
        return float(text)


def _shortest(value: float) -> Fraction:
    """The decimal a float was most likely written as: its shortest repr (0.1 -> 1/10)."""
    return Fraction(repr(float(value)))


def _number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | Fraction) or (isinstance(value, float) and np.isfinite(value))


def _shown(value: object) -> str:
    """A value as the user wrote it (a decimal, not a fraction)."""
    if isinstance(value, Fraction):
        return repr(float(value))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return f"{float(value):.3e}"
    return repr(value)


def exact_reward_values(mdp: MDP, reward: Reward, probability: list[Fraction]) -> list[Fraction]:
    """R(s, a) in exact rationals, from the decimals of the reward file and the exact
    `probability` of each entry of the transition matrix (CSR order); 0 where absorbing."""
    arrival = [Fraction(0)] * mdp.n_states
    for label, weight in reward.exact_arrive().items():
        for s in np.flatnonzero(mdp.labels[label]).tolist():
            arrival[s] += weight
    step = reward.exact_step()
    matrix = mdp.transitions
    absorbing = np.repeat(absorbing_states(mdp), np.diff(mdp.row_groups))
    values = []
    for c in range(mdp.n_choices):
        if absorbing[c]:
            values.append(Fraction(0))
            continue
        entries = range(matrix.indptr[c], matrix.indptr[c + 1])
        values.append(step + sum(probability[k] * arrival[matrix.indices[k]] for k in entries))
    return values


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
    return RewardVector(reward.name, values, reward.discount, reward.source, reward)


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
            vector = RewardVector(
                vector.name, vector.values, discount, vector.source, vector.reward
            )
        return vector
    known = ", ".join(repr(name) for name in mdp.rewards) or "none"
    raise InputError(
        "--reward",
        f"{spec!r} is neither a reward file nor a reward structure of the model (it has: {known})",
    )
