"""One report protocol, and the JSON shape of every report made from it.

A report is a frozen dataclass of one verdict (check, reward, compare, policy, audit) that
derives from `Report`. Its JSON object is `kind`, then its fields in declaration order, then
`passed`: a field with metadata `IN_MEMORY` stays out (arrays kept for pictures), one with
`json_key(name)` is written under `name`, one with `OPTIONAL` only when it is set;
`derived()` adds keys computed from the fields. Values become JSON as `plain` says.
The shapes are the contract of README, "Reports (JSON)", checked against the JSON Schema
shipped in verifier/output/report.schema.json.

In every report of one model, `value` is φ's value under what is judged (the model's
optimum for `check`, the worst optimal policy of a reward, the policy), at the initial
states, and `optimal_value` φ's optimum over all policies there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

_KEY = "json_key"  # field metadata: the key written, None for none
_OPTIONAL = "optional"  # field metadata: left out when None
IN_MEMORY: Mapping[str, Any] = {_KEY: None}  # metadata of a field kept out of the JSON
OPTIONAL: Mapping[str, Any] = {_OPTIONAL: True}  # metadata of a key written only when set


def json_key(name: str) -> Mapping[str, Any]:
    """Metadata of a report field written under the key `name`."""
    return {_KEY: name}


class Report:
    """What every report offers: `kind`, `verdict`, `objective`, `passed`, `seconds` and
    `to_dict()`, its JSON object (module docstring)."""

    __slots__ = ()
    kind: ClassVar[str]

    @property
    def passed(self) -> bool:
        """Whether the verdict passes (a CI gate's question)."""
        raise NotImplementedError

    def derived(self) -> dict[str, Any]:
        """Keys computed from the fields, written after them."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (module docstring)."""
        data: dict[str, Any] = {"kind": self.kind}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            key = item.metadata.get(_KEY, item.name)
            value = getattr(self, item.name)
            if key is None or (value is None and item.metadata.get(_OPTIONAL)):
                continue
            data[key] = round(value, 6) if key == "seconds" else plain(value)
        data.update(plain(self.derived()))
        data["passed"] = self.passed
        return data


def plain(value: Any) -> Any:
    """A value as JSON data: tuples and arrays become lists, numpy scalars Python numbers,
    NaN (a number not computed) null, objects with `to_dict` their dict; infinities stay
    (an unbounded return is +inf; Python's json writes Infinity)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):  # verdicts are StrEnums: their values
        return str(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not a report value")
