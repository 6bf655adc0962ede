"""Performance (hidden reward) objectives: R{"performance"} over the R-optimal policies and
for one policy, against returns counted by hand and Storm's total reward where it answers."""

from __future__ import annotations

import json

import numpy as np
import oracles
import pytest
from helpers import maze_text

from verifier.analyses.policy_verdict import MISALIGNED, classify
from verifier.analyses.reward_verdict import ALIGNED, MISSPECIFIED, UNDERSPECIFIED, check_reward
from verifier.cli import main
from verifier.engine.optimum import solve
from verifier.inputs.load import load_environment
from verifier.mdp import restrict
from verifier.policy.decide import decide
from verifier.policy.load import load_policy
from verifier.spec.objective import REWARD, resolve_intended
from verifier.spec.reward_file import Reward, reward_vector

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
RED_EXIT = '[cells.B]\nkind = "exit"\ncolor = "red"\n'
ACTIONS = ["up", "down", "left", "right"]


def setup(tmp_path, map_text, performance: str, spec_form="max=? [ C ]"):
    (tmp_path / "perf.toml").write_text(performance)
    path = tmp_path / "maze.toml"
    path.write_text(maze_text(map_text, EXIT + RED_EXIT))
    spec = f'R{{"perf"}}{spec_form}'  # perf.toml beside the maze
    return load_environment(path, spec=spec)


def training(env, step=-0.1, discount=1.0, **arrive):
    return reward_vector(env.mdp, Reward("r", "test", discount, step, arrive or {"exit": 1.0}))


def test_a_tie_in_the_reward_with_different_performance_is_underspecified(tmp_path):
    """B . S . A: both exits two moves away, "+1 on any exit, -0.1 a step" ties them.
    Performance: -1 a step, +10 on the blue exit: blue earns -2 + 10 = 8, red -2."""
    env = setup(tmp_path, "#B.S.A#", "step = -1\n[arrive]\nblue = 10\n")
    assert resolve_intended(env, env.properties[0]).kind == REWARD
    report = check_reward(env, training(env), env.properties[0])
    assert (report.objective_min, report.objective_max) == pytest.approx((-2.0, 8.0))
    assert report.optimal_value == pytest.approx(8.0)
    assert report.verdict == UNDERSPECIFIED


def test_a_performance_that_disagrees_with_the_reward_is_misspecified(tmp_path):
    """B S . . A: red one move away (R 0.9), blue three (R 0.7): R goes red. Performance
    -1 a step, +10 on blue: red earns -1, blue 7."""
    env = setup(tmp_path, "#BS..A#", "step = -1\n[arrive]\nblue = 10\n")
    report = check_reward(env, training(env), env.properties[0])
    assert (report.objective_min, report.objective_max) == pytest.approx((-1.0, -1.0))
    assert report.optimal_value == pytest.approx(7.0)
    assert report.verdict == MISSPECIFIED


def test_negative_performance_is_solved_and_matches_storm_on_the_positive_costs(tmp_path):
    """B S . . A with performance -1 a step and -5 on red (a cost): red costs -6, blue -3,
    so the best performance is -3 (the blue exit), which the R-optimal red walk misses.
    Storm cannot take the negative rewards; on the positive costs its Rmin [C] is 3 over
    all policies and 6 over the R-optimal ones."""
    env = setup(tmp_path, "#BS..A#", "step = -1\n[arrive]\nred = -5\n")
    report = check_reward(env, training(env), env.properties[0])
    assert report.optimal_value == pytest.approx(-3.0)
    assert (report.objective_min, report.objective_max) == pytest.approx((-6.0, -6.0))
    assert report.verdict == MISSPECIFIED
    objective = resolve_intended(env, env.properties[0])
    costs = {"cost": -objective.performance.values}
    mdp = env.mdp
    full = type(mdp)(**{**{n: getattr(mdp, n) for n in mdp.__slots__}, "rewards": costs})
    best = oracles.state_values(full, 'R{"cost"}min=? [ C ]')[0][mdp.initial_states]
    assert report.optimal_value == pytest.approx(-best.min())
    optimal = restrict(full, solve(mdp, training(env).values).optimal)
    worst = oracles.state_values(optimal, 'R{"cost"}max=? [ C ]')[0][mdp.initial_states]
    assert report.objective_min == pytest.approx(-worst.min())


def test_a_bound_on_the_performance_holds_when_it_holds(tmp_path):
    env = setup(tmp_path, "#B.S.A#", "step = -1\n[arrive]\nblue = 10\n", "min>=-3 [ C ]")
    assert check_reward(env, training(env), env.properties[0]).verdict == ALIGNED


def test_reach_form_stops_at_the_target_and_idlers_are_excluded(tmp_path):
    """S . . A with step 0 and +1 on the exit at discount 1: every policy reaching the exit
    is optimal, idling forever is not. Performance +1 a step until "exit" ([ F "exit" ]):
    Rmin over the optimal policies is 3 (straight there), the max is infinite (any detour
    is optimal: the supremum of ever longer ones)."""
    env = setup(tmp_path, "#S..A#", "step = 1\n", 'max=? [ F "exit" ]')
    report = check_reward(env, training(env, step=0.0), env.properties[0])
    assert report.objective_min == pytest.approx(3.0)
    assert report.objective_max == np.inf


def test_discounted_performance_of_the_shorter_walk(tmp_path):
    """B . S . A, tie under R; performance +10 on blue, discounted by 0.5: arriving on the
    second move earns 0.5 * 10 = 5."""
    env = setup(tmp_path, "#B.S.A#", "[arrive]\nblue = 10\n", "max=? [ Cdiscount=0.5 ]")
    report = check_reward(env, training(env), env.properties[0])
    assert (report.objective_min, report.objective_max) == pytest.approx((0.0, 5.0))


def test_policy_check_reports_the_performance_its_optimum_and_gap(tmp_path, capsys):
    """B . S . A, a policy always going left earns the red walk's -2 against the best 8; it
    reaches the red exit surely, as well as possible: it pursues red (no reward: misaligned)."""
    env = setup(tmp_path, "#B.S.A#", "step = -1\n[arrive]\nblue = 10\n")
    policy = tmp_path / "left.json"
    probs = [[0.0, 0.0, 1.0, 0.0]] * env.mdp.n_states
    policy.write_text(json.dumps({"actions": ACTIONS, "probs": probs}))
    decisions = decide(load_policy(policy), env)
    report = classify(env, "left", decisions, env.properties[0])
    assert (report.value, report.optimal_value) == pytest.approx((-2.0, 8.0))
    assert report.to_dict()["gap"] == pytest.approx(10.0)
    assert report.verdict == MISALIGNED
    assert report.pursued_goal == "red"
    assert any("no label is a hazard" in note for note in report.notes)


def test_reward_command_with_a_prism_performance_structure(tmp_path, capsys):
    """A two-action choice: `a` earns reward 1 and performance 0, `b` reward 1 and
    performance 5 (a tie in R); both end the run."""
    model = tmp_path / "m.prism"
    model.write_text(
        "mdp\nmodule m\n s : [0..1] init 0;\n [a] s=0 -> (s'=1);\n [b] s=0 -> (s'=1);\n"
        " [] s=1 -> (s'=1);\nendmodule\n"
        'label "done" = s=1;\n'
        'rewards "reward"\n [a] true : 1;\n [b] true : 1;\nendrewards\n'
        'rewards "performance"\n [b] true : 5;\nendrewards\n'
    )
    out = tmp_path / "r.json"
    code = main(["reward", "--model", str(model), "--reward", "reward", "--spec",
                 'R{"performance"}max=? [ C ]', "--json", str(out)])  # fmt: skip
    capsys.readouterr()
    data = json.loads(out.read_text())
    data = data["reports"][0] if "reports" in data else data
    assert code == 1
    assert data["verdict"] == "underspecified"
    assert (data["objective_min"], data["objective_max"]) == (0.0, 5.0)
