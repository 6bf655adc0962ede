"""A value whose sound bounds say nothing is never printed as certified (issue 18 §5: on a
107k-state maze `--stochastic` printed "value 2.94535e-05 (certified [0, 1])" for a chain
whose exact value is about 0)."""

from __future__ import annotations

import math

import pytest

from verifier.output.text import certification, format_policy


@pytest.mark.parametrize(
    ("objective", "value", "low", "high", "certified"),
    [
        ('Pmax=? [ !"lava" U "exit" ]', 2.94535e-05, 0.0, 1.0, False),
        ('P>=0.9 [ F "exit" ]', 0.5, -1e-16, 1.0 + 1e-16, False),
        ('Pmax=? [ F "exit" ]', 0.9, 0.9 - 1e-14, 0.9 + 1e-14, True),
        ('Pmax=? [ F "exit" ]', 0.0, 0.0, 0.5, True),  # wide, but it says something
        ('R{"p"}max=? [ C ]', 41.0, -math.inf, math.inf, False),
        ('R{"p"}max=? [ C ]', 41.0, 41.0, 41.0, True),
        ('R{"p"}max=? [ C ]', math.inf, math.inf, math.inf, True),  # an infinite return
    ],
)
def test_vacuous_bounds_are_said_to_certify_nothing(objective, value, low, high, certified):
    text = certification(objective, value, low, high)
    assert text.startswith("certified [") == certified
    assert text.startswith("not certified: its sound bounds") != certified


class _Report:
    """What format_policy reads of a policy report."""

    def __init__(self, bounds):
        self.data = {
            "verdict": "aligned",
            "passed": True,
            "model": "big.toml",
            "policy": "p.pt",
            "objective": 'Pmax=? [ !"lava" U "exit" ]',
            "value": 2.94535e-05,
            "value_bounds": bounds,
            "optimal_value": 1.0,
            "states": 107_000,
            "masked_states": 0,
            "outcomes": [],
            "goals": [],
            "pursued_goals": [],
            "reward": None,
            "worst_states_all": [],
        }

    def to_dict(self):
        return self.data


def test_a_policy_report_with_vacuous_bounds_says_not_certified():
    line = format_policy(_Report([0.0, 1.0]), color=False).splitlines()[1]
    assert "value 2.94535e-05 (not certified: its sound bounds [0, 1] say nothing" in line
    assert "(certified" not in line
    line = format_policy(_Report([2.9e-05, 3.0e-05]), color=False).splitlines()[1]
    assert "value 2.94535e-05 (certified [2.9e-05, 3e-05])" in line
