"""Reward TOML -> Reward; a Reward or a PRISM reward structure -> a vector over choices.

R(s, a) = step + sum over s' of P(s'|s,a) * (sum of `arrive` weights of the labels of s'),
for every choice of a non-absorbing state; absorbing states earn nothing (README, "Files").

Every number of a reward file is also kept as the exact decimal written (1e-08 is 1/10^8),
for `--exact`, which never passes through a float.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from verifier.documents import parse_toml, read_text
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
    source = str(path)
    doc = parse_toml(read_text(path, "reward"), source, parse_float=_decimal)
    problems = []
    for key in doc:
        if key not in _KEYS:
            problems.append(f"{key}: unknown key; known: {', '.join(_KEYS)}")
    discount = doc.get("discount", 1)
    if isinstance(discount, _Unreadable):
        problems.append(f"discount: {discount.problem}")
    elif not _number(discount) or not 0 < discount <= 1:
        problems.append(f"discount: must be a number in (0, 1], got {_shown(discount)}")
    elif discount < 1 and not 0.0 < float(discount) < 1.0:
        rounded = float(discount)
        problems.append(
            f"discount: a decimal {'just below 1' if rounded else 'just above 0'} that rounds "
            f"to {rounded:g} in double precision; write 1 for no discount, or a discount in "
            "[1e-300, 0.9999999999999999]"
        )
    numbers = {"step": doc.get("step", 0)}
    arrive = doc.get("arrive", {})
    if not isinstance(arrive, dict):
        problems.append("arrive: must be a table of label = weight")
        arrive = {}
    numbers.update({f"arrive.{label}": weight for label, weight in arrive.items()})
    for key, value in numbers.items():
        if isinstance(value, _Unreadable):
            problems.append(f"{key}: {value.problem}")
        elif not _number(value):
            problems.append(f"{key}: must be a number (finite), got {_shown(value)}")
        elif abs(value) > MAX_MAGNITUDE:
            problems.append(
                f"{key}: {_shown(value)} is too large; rewards must lie within "
                f"±{MAX_MAGNITUDE:.0e} (rescale the reward)"
            )
    if problems:
        raise InputError(source, "; ".join(problems))
    return Reward(
        name=path.stem,
        source=source,
        discount=float(discount),
        step=_signed_float(numbers["step"]),
        arrive={label: _signed_float(w) for label, w in arrive.items()},
        exact={key: Fraction(value) for key, value in numbers.items()},
    )


# Exact decimals are read up to these sizes: beyond them exact arithmetic on the number
# would cost more than the whole verdict (10^-999999999 has a billion digits).
MAX_DIGITS = 1000  # significant digits
MIN_EXPONENT = -1000  # 1e-1000: the least magnitude of a nonzero number
_DECIMAL = re.compile(r"([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?")


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A number of the file that is out of the range read exactly: why."""

    problem: str


def _decimal(text: str) -> Fraction | float | _Unreadable:
    """A TOML float as the exact decimal written; nan and inf stay floats (refused). The
    size is judged on the text first, so that 1e999999999 never becomes an integer."""
    match = _DECIMAL.fullmatch(text.replace("_", ""))
    if match is None:
        return float(text)
    sign, whole, fraction, exponent_text = match.groups()
    digits = (whole + (fraction or "")).lstrip("0")
    if not digits:
        return Fraction(0)
    shown = text if len(text) <= 40 else text[:37] + "..."
    if exponent_text is not None and len(exponent_text.lstrip("+-").lstrip("0")) > 6:
        exponent, leading = 0, -(10**7) if exponent_text.startswith("-") else 10**7
    else:
        exponent = int(exponent_text or 0) - len(fraction or "")
        leading = exponent + len(digits) - 1  # the decimal exponent of the first digit
    if leading > 15:
        if math.isfinite(float(text)):
            shown = repr(float(text))
        return _Unreadable(
            f"{shown} is too large; numbers must lie within ±{MAX_MAGNITUDE:.0e} "
            "(rescale the reward)"
        )
    if leading < MIN_EXPONENT:
        return _Unreadable(f"{shown} is nonzero but below 1e{MIN_EXPONENT}; write 0 or more")
    if len(digits) > MAX_DIGITS:
        return _Unreadable(f"{shown} has more than {MAX_DIGITS} significant digits")
    value = Fraction(int(sign + digits))
    return value * 10**exponent if exponent >= 0 else value / 10**-exponent


def _signed_float(value: int | Fraction) -> float:
    """The float of an exact number; a nonzero number below double precision's range
    (1e-400) keeps its sign as the least double, ±5e-324, so that a tiny positive step
    still earns reward (the loop rule of the README decides from signs)."""
    number = float(value)
    if number == 0.0 and value != 0:
        return math.copysign(math.ulp(0.0), value)
    return number


def _shortest(value: float) -> Fraction:
    """The decimal a float was most likely written as: its shortest repr (0.1 -> 1/10)."""
    return Fraction(repr(float(value)))


def _number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | Fraction) or (isinstance(value, float) and np.isfinite(value))


def _shown(value: object) -> str:
    """A value as the user wrote it (a decimal, not a fraction), short."""
    if isinstance(value, int | Fraction) and not isinstance(value, bool):
        magnitude = abs(Fraction(value))
        if magnitude >= 10**300:
            return f"a number of {len(str(int(magnitude)))} digits"
        if magnitude > 10**15:
            return f"{float(magnitude) if value > 0 else -float(magnitude):.3e}"
    if isinstance(value, Fraction):
        return repr(_signed_float(value))
    if isinstance(value, _Unreadable):
        return value.problem
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    absorbing = np.repeat(absorbing_states(mdp), np.diff(mdp.row_groups))
    values[absorbing] = 0.0
    if any(0 < abs(number) < _TINY for number in reward.exact.values()):
        _keep_signs(mdp, reward, values, absorbing)
    return RewardVector(reward.name, values, reward.discount, reward.source, reward)


_TINY = 1e-290  # below this, a weight times a probability can round to 0 in floating point


def _keep_signs(mdp: MDP, reward: Reward, values: np.ndarray, absorbing: np.ndarray) -> None:
    """Where a choice's float reward is 0 but its exact one is not (a weight below double
    precision's range times a probability), set it to ±5e-324, the sign of the exact sum
    (in place): signs decide whether a loop earns reward forever."""
    matrix = mdp.transitions
    step, weights = reward.exact_step(), reward.exact_arrive()
    arrival: dict[int, Fraction] = {}
    for c in np.flatnonzero((values == 0.0) & ~absorbing).tolist():
        total = step
        for k in range(matrix.indptr[c], matrix.indptr[c + 1]):
            t = int(matrix.indices[k])
            if t not in arrival:
                arrival[t] = sum(
                    (w for label, w in weights.items() if mdp.labels[label][t]), Fraction(0)
                )
            total += Fraction(float(matrix.data[k])) * arrival[t]
        if total:
            values[c] = math.copysign(math.ulp(0.0), total)


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
