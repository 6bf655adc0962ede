"""`verify check`: values and the optimisation direction they come from, against the maps."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from verifier.cli import main

LAVA = Path(__file__).resolve().parents[2] / "models" / "lava.toml"

# models/lava.toml: the long route reaches the exit with 0.9, the best possible; walking into
# the lava next to the start reaches it with 0 (the least). A bound decides on the worst
# scheduler for it: the min for >=, the max for <; Pmax/Pmin name their optimum themselves.
DIRECTIONS = [
    ('Pmax>=0.5 [ !"lava" U "exit" ]', 0, 0.9, "max"),
    ('Pmin<0.5 [ !"lava" U "exit" ]', 0, 0.0, "min"),
    ('P>=0.5 [ !"lava" U "exit" ]', 1, 0.0, "min"),
    ('P<0.5 [ !"lava" U "exit" ]', 1, 0.9, "max"),
]


@pytest.mark.parametrize(("spec", "code", "value", "direction"), DIRECTIONS)
def test_threshold_property_reports_the_value_of_its_own_direction(
    spec, code, value, direction, capsys, tmp_path
):
    report = tmp_path / "r.json"
    assert main(["check", "--model", str(LAVA), "--spec", spec, "--json", str(report)]) == code
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    data = data["reports"][0] if "reports" in data else data
    assert data["value"] == pytest.approx(value, abs=1e-5)
    assert data["direction"] == direction
    assert f"({direction} over policies)" in out
    assert f"value {value:.6g}"[:10] in out


# φ's optimum, the best any policy does for the property: for a query or an explicit
# Pmax/Pmin the value itself; for a bare bound the other optimum (0.9 for >=, 0 for <).
OPTIMA = [
    ('Pmax>=0.5 [ !"lava" U "exit" ]', 0.9),
    ('Pmin<0.5 [ !"lava" U "exit" ]', 0.0),
    ('P>=0.5 [ !"lava" U "exit" ]', 0.9),
    ('P<0.5 [ !"lava" U "exit" ]', 0.0),
    ('Pmin=? [ !"lava" U "exit" ]', 0.0),
]


@pytest.mark.parametrize(("spec", "optimum"), OPTIMA)
def test_optimal_value_is_the_best_any_policy_does_for_the_property(spec, optimum):
    from verifier import check

    (report,) = check(LAVA, spec)
    assert report.optimal_value == pytest.approx(optimum, abs=1e-5)
    assert report.to_dict()["optimal_value"] == report.optimal_value


def test_suite_json_reports_the_direction_of_a_threshold_property(capsys, tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            [suite]
            name = "directions"

            [environments.lava]
            files = ["{LAVA.as_posix()}"]

            [[check]]
            kind = "check"
            environments = "lava"
            spec = 'Pmax>=0.5 [ !"lava" U "exit" ]'
            """
        )
    )
    assert main(["suite", str(suite), "--json", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    row = row["report"]
    assert row["value"] == pytest.approx(0.9, abs=1e-5)
    assert row["direction"] == "max"


WALK = """dtmc
const int N;
module walk
  x : [0..N] init 1;
  [] x>0 & x<N -> 0.5:(x'=x-1) + 0.5:(x'=x+1);
  [] x=0 | x=N -> true;
endmodule
label "goal" = x=N;
"""


@pytest.mark.parametrize(("n", "spec"), [(2000, 'P=? [ F "goal" ]'), (3000, "P>=0.0003 [ F x=N ]")])
def test_slowly_mixing_walk_is_checked_exactly_within_narrow_bounds(tmp_path, capsys, n, spec):
    """Gambler's ruin: a fair walk from 1 reaches N before 0 with probability 1/N. It takes
    about N^2 steps to be absorbed, so Storm's sound engine needs millions of sweeps (48 s
    at N = 2000 here); the direct solve's bounds are within 1e-9 and hold the exact value.
    The second property names a variable (Storm's build for the property labels it)."""
    model = tmp_path / "walk.prism"
    model.write_text(WALK)
    report = tmp_path / "r.json"
    argv = ["check", "--model", model, "--const", f"N={n}", "--spec", spec, "--json", report]
    assert main([str(a) for a in argv]) == 0
    (initial,) = json.loads(report.read_text())["reports"][0]["initial_states"]
    assert initial["lower"] <= 1 / n <= initial["upper"]
    assert initial["upper"] - initial["lower"] <= 1e-9
    assert initial["value"] == pytest.approx(1 / n, rel=1e-9)
    capsys.readouterr()


# A walker on 0..6 that starts at 1: `right` earns 1 and moves up with 0.8 (down with 0.2),
# `left` moves down with 0.9; 0 (a pit) and 6 (the goal) are absorbing.
WALKER = """mdp
module walker
  x : [0..6] init 1;
  [left]  x>0 & x<6 -> 0.9 : (x'=x-1) + 0.1 : (x'=x);
  [right] x>0 & x<6 -> 0.8 : (x'=x+1) + 0.2 : (x'=x-1);
  [stay]  x=0 | x=6 -> true;
endmodule
label "goal" = x=6;
rewards "r"
  [right] true : 1;
endrewards
"""


def test_a_reward_until_a_target_is_the_rl_return_and_the_report_says_so(tmp_path, capsys):
    """V = (0, 425, 530, 555, 560, 560, 0) satisfies Bellman's equations by hand: right at
    1..4 (V(1) = 1 + 0.8 V(2) + 0.2 V(0) = 425, ..., V(4) = 1 + 0.8 V(5) + 0.2 V(3) = 560),
    left at 5 (V(5) = 0.9 V(4) + 0.1 V(5)), and no other action does better. Every policy
    can end in the pit, so PRISM's Rmax [ F "goal" ] is infinite: the report says which
    value this is. The least return is 0 (walk left into the pit), printed as 0, not -0."""
    model = tmp_path / "walker.prism"
    model.write_text(WALKER)
    assert main(["check", "--model", str(model), "--spec", 'R{"r"}max=? [ F "goal" ]']) == 0
    out = capsys.readouterr().out
    assert "value 425 (max over policies)" in out
    assert "a policy missing it keeps what it collected" in out
    assert main(["check", "--model", str(model), "--spec", 'R{"r"}min=? [ F "goal" ]']) == 0
    assert "value 0 (min over policies)" in capsys.readouterr().out
    assert main(["check", "--model", str(model), "--spec", 'R{"r"}max=? [ C ]']) == 0
    out = capsys.readouterr().out
    assert "value 425" in out and "keeps what it collected" not in out
