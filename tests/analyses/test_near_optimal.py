"""Nearly-optimal policies (`verify reward --epsilon`), the margin and the trade-off curve,
against values derived by hand and Storm's multi-objective engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import oracles
import pytest
from helpers import maze_text
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from verifier import storm
from verifier.analyses.near_optimal import near_optimal
from verifier.analyses.reward_verdict import ALIGNED, MISSPECIFIED, UNDERSPECIFIED, check_reward
from verifier.cli import main
from verifier.engine.optimum import solve
from verifier.inputs.load import load_environment, maze_environment
from verifier.inputs.maze_generate import random_maze
from verifier.spec.objective import resolve_objective
from verifier.spec.reward_file import Reward, reward_vector

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
LAVA = '[cells.L]\nkind = "lava"\n'

# Three ways from s=0: `safe` reaches the exit (reward 1), `risky` reaches it with
# probability 1/2 (reward 0.8), `jump` goes into the lava (reward 0).
THREE_WAYS = """
mdp
module m
  s : [0..2] init 0;
  [safe]  s=0 -> (s'=1);
  [risky] s=0 -> 0.5 : (s'=1) + 0.5 : (s'=2);
  [jump]  s=0 -> (s'=2);
  [done]  s>0 -> true;
endmodule
label "exit" = s=1;
label "lava" = s=2;
rewards "r"
  [safe] true : 1;
  [risky] true : 0.8;
endrewards
"""


def maze_env(tmp_path, map_text, cells, spec=None, **top):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text(map_text, cells, **top))
    return load_environment(path, spec=spec)


def prism_env(tmp_path, text, spec):
    path = tmp_path / "model.prism"
    path.write_text(text)
    return load_environment(path, spec=spec)


def label_reward(env, step=0.0, **arrive):
    return reward_vector(env.mdp, Reward("r", "test", 1.0, step, arrive))


def storm_worst(env, reward, epsilon, direction="Pmin"):
    """The worst P(exit) over policies within `epsilon` of V*, by Storm's multi-objective
    engine (non-negative rewards only)."""
    optimum = solve(env.mdp, reward.values, 1.0).values[env.mdp.initial_states[0]]
    mdp = replace(env.mdp, rewards={"r": reward.values})
    query = f'multi({direction}=? [ !"lava" U "exit" ], R{{"r"}}>={optimum - epsilon:.15f} [ C ])'
    return oracles.multi_objective(mdp, query)


def test_worst_nearly_optimal_policy_is_randomised(tmp_path):
    """# L . S . A #, step -0.1, exit +1. From S the optimum goes right: V*(S) = -0.1 + 0.9
    = 0.8. Walking into the lava (left twice) returns -0.2, a shortfall of 1.0; bumping into
    a wall costs 0.1 and changes nothing. Every deterministic policy within 0.1 of V* reaches
    the exit (P = 1); the randomised one that goes left from S with probability 0.1 (and on
    to the lava) falls short by exactly 0.1 and has P(exit) = 0.9: the worst is 1 - ε."""
    env = maze_env(tmp_path, "#L.S.A#", EXIT + LAVA)
    reward = label_reward(env, step=-0.1, exit=1.0)
    for epsilon in (0.1, 0.5):
        report = check_reward(env, reward, env.properties[0], epsilon=epsilon)
        assert report.verdict == UNDERSPECIFIED
        assert report.objective_min == pytest.approx(1 - epsilon, abs=1e-9)
        assert report.objective_max == pytest.approx(1.0, abs=1e-9)
        at_start = report.witness["policy"][env.mdp.state_description(env.mdp.initial_states[0])]
        assert at_start == pytest.approx({"left": epsilon, "right": 1 - epsilon}, abs=1e-9)
    plain = check_reward(env, reward, env.properties[0])
    assert plain.verdict == ALIGNED
    assert plain.epsilon == 0.0


def test_idling_forever_costs_its_optimal_value(tmp_path):
    """# S . . A #, exit +1, no step cost: V* = 1 everywhere and every move is optimal. A
    policy that idles forever (say, against a wall) earns 0, a shortfall of 1: within ε it
    may idle with probability ε, so the worst P(exit) is 1 - ε and P>=0.9 has margin 0.1.
    Storm's multi-objective engine (total reward, where idling earns 0) agrees."""
    env = maze_env(tmp_path, "#S..A#", EXIT, spec='P>=0.9 [ !"lava" U "exit" ]', slip=0.2)
    reward = label_reward(env, exit=1.0)
    report = check_reward(env, reward, env.properties[0], epsilon=0.25, tradeoff=True)
    assert report.objective_min == pytest.approx(0.75, abs=1e-9)
    assert report.verdict == UNDERSPECIFIED
    assert report.margin == pytest.approx(0.1, abs=1e-9)
    assert np.allclose(report.tradeoff, [(0.0, 1.0), (1.0, 0.0)], atol=1e-9)
    assert storm_worst(env, reward, 0.25) == pytest.approx(0.75, abs=1e-6)


def test_three_ways_tradeoff_has_its_breakpoint_at_the_risky_action(tmp_path):
    """THREE_WAYS: V* = 1 (safe). The policies from s=0 are mixtures of safe (shortfall 0,
    P(exit) 1), risky (0.2, 1/2) and jump (1, 0). The worst P within a budget E is the lower
    boundary of their convex hull: 1 - 2.5 E up to E = 0.2, then 0.5 - 0.625 (E - 0.2) up
    to E = 1. So at ε = 0.5 the worst is 0.5 - 0.625 * 0.3 = 0.3125, P>=0.8 has margin
    (1 - 0.8) / 2.5 = 0.08, and the curve's breakpoints are (0, 1), (0.2, 0.5), (1, 0)."""
    env = prism_env(tmp_path, THREE_WAYS, 'P>=0.8 [ F "exit" ]')
    report = check_reward(
        env, reward_vector_of(env, "r"), env.properties[0], epsilon=0.5, tradeoff=True
    )
    assert report.verdict == UNDERSPECIFIED
    assert report.objective_min == pytest.approx(0.3125, abs=1e-9)
    assert report.objective_max == pytest.approx(1.0, abs=1e-9)
    assert report.margin == pytest.approx(0.08, abs=1e-9)
    assert np.allclose(report.tradeoff, [(0.0, 1.0), (0.2, 0.5), (1.0, 0.0)], atol=1e-9)
    reward = reward_vector_of(env, "r")
    assert storm_worst(env, reward, 0.5) == pytest.approx(0.3125, abs=1e-6)


def test_margin_is_the_share_of_the_shortfall_to_the_lava(tmp_path):
    """# L . . S . A #, step -0.1, exit +1, φ = P>=0.75. V*(S) = 0.8; the lava, three steps
    left, returns -0.3: a shortfall of 1.1, and nothing else loses φ. worst(E) = 1 - E/1.1,
    so the margin is (1 - 0.75) * 1.1 = 0.275, and the verdict at ε = 0.2 is aligned."""
    env = maze_env(tmp_path, "#L..S.A#", EXIT + LAVA, spec='P>=0.75 [ !"lava" U "exit" ]')
    reward = label_reward(env, step=-0.1, exit=1.0)
    report = check_reward(env, reward, env.properties[0], epsilon=0.2)
    assert report.margin == pytest.approx(0.275, abs=1e-9)
    assert report.verdict == ALIGNED
    assert report.objective_min == pytest.approx(1 - 0.2 / 1.1, abs=1e-9)
    assert check_reward(env, reward, env.properties[0], epsilon=0.3).verdict == UNDERSPECIFIED


def test_margin_is_zero_when_an_optimal_policy_fails(tmp_path):
    """# A . S . L #, the lava worth +1 like the exit: going left and right are both
    optimal, one of them fails φ, so the margin is 0; with every exit rewarded less than the
    lava, all optimal policies fail (misspecified, margin 0)."""
    env = maze_env(tmp_path, "#A.S.L#", EXIT + LAVA)
    report = check_reward(env, label_reward(env, step=-0.1, exit=1.0, lava=1.0), env.properties[0])
    assert (report.verdict, report.margin) == (UNDERSPECIFIED, 0.0)
    report = check_reward(env, label_reward(env, step=-0.1, exit=1.0, lava=2.0), env.properties[0])
    assert (report.verdict, report.margin) == (MISSPECIFIED, 0.0)
    near = check_reward(
        env, label_reward(env, step=-0.1, exit=1.0, lava=2.0), env.properties[0], epsilon=1.0
    )
    assert near.objective_max == pytest.approx(1.0, abs=1e-9)
    assert near.verdict == UNDERSPECIFIED


def test_minimised_objective_takes_the_greatest_probability_as_worst(tmp_path):
    """φ = Pmin=? [ F "lava" ] on # L . S . A #, step -0.1, exit +1: the optimum avoids
    the lava (P = 0), and within ε the worst policy walks there with probability ε (each
    such walk falls short by 1.0): the worst, now the greatest P(lava), is ε."""
    env = maze_env(tmp_path, "#L.S.A#", EXIT + LAVA, spec='Pmin=? [ F "lava" ]')
    report = check_reward(env, label_reward(env, step=-0.1, exit=1.0), env.properties[0], 0, 0.3)
    assert report.objective_max == pytest.approx(0.3, abs=1e-9)
    assert report.objective_min == pytest.approx(0.0, abs=1e-9)
    assert report.verdict == UNDERSPECIFIED


def test_every_initial_state_must_satisfy_the_objective(tmp_path):
    """# L S . S A #: from the start beside the exit V* = 0.9 and the lava, 3 steps left,
    returns -0.3 (shortfall 1.2); from the start beside the lava V* = 0.7 and the lava
    returns -0.1 (shortfall 0.8). A history-dependent policy may act differently from each,
    so the worst over the product is the worse of the two, 1 - ε/0.8, down to 0 at 0.8."""
    env = maze_env(tmp_path, "#LS.SA#", EXIT + LAVA)
    reward = label_reward(env, step=-0.1, exit=1.0)
    report = check_reward(env, reward, env.properties[0], epsilon=0.2, tradeoff=True)
    assert report.objective_min == pytest.approx(1 - 0.2 / 0.8, abs=1e-9)
    assert np.allclose(report.tradeoff, [(0.0, 1.0), (0.8, 0.0)], atol=1e-9)


def small_maze(seed, slip, objects=0):
    """A random 7 x 7 maze with one lava dead end (seeds without room for it are skipped)."""
    try:
        return random_maze(7, 7, seed, objects=objects, lava=1, slip=slip)
    except ValueError:
        reject()


def reward_vector_of(env, name):
    from verifier.spec.reward_file import resolve_reward

    return resolve_reward(name, env.mdp)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    slip=st.sampled_from([0.0, 0.1]),
    step=st.sampled_from([0.0, -0.01]),
    red=st.sampled_from([0.0, 1.0]),
)
def test_epsilon_zero_agrees_with_the_exact_verdict_on_random_mazes(seed, slip, step, red):
    """At ε = 0 the LP's least and greatest P(φ) are those of the exact verdict (Storm on
    the MDP of optimal actions, idlers excluded by end components)."""
    maze = small_maze(seed, slip, objects=2)
    env = maze_environment(maze, "random.toml")
    reward = reward_vector(env.mdp, Reward("r", "t", 1.0, step, {"exit": 1.0, "red": red}))
    exact = check_reward(env, reward, env.properties[0])
    if exact.verdict == "unbounded":
        return
    solution = solve(env.mdp, reward.values, 1.0)
    objective = resolve_objective(env, env.properties[0])
    optimum = storm.check(env.storm_model, env.properties[0]).values
    near = near_optimal(env.mdp, reward, solution, objective, optimum, 0.0)
    assert near.worst.min() == pytest.approx(exact.objective_min, abs=1e-6)
    assert near.best.min() == pytest.approx(exact.objective_max, abs=1e-6)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), epsilon=st.sampled_from([0.05, 0.3]))
def test_worst_within_epsilon_agrees_with_storm_multi_objective(seed, epsilon):
    """Non-negative reward (exit +1, lava +0.5): the least and greatest P(φ) within ε of V*
    by our LP and by Storm's multi-objective engine (Pmin, Pmax subject to a total-reward
    bound)."""
    maze = small_maze(seed, 0.1)
    env = maze_environment(maze, "random.toml")
    reward = reward_vector(env.mdp, Reward("r", "t", 1.0, 0.0, {"exit": 1.0, "lava": 0.5}))
    report = check_reward(env, reward, env.properties[0], epsilon=epsilon)
    assert report.objective_min == pytest.approx(storm_worst(env, reward, epsilon), abs=1e-6)
    assert report.objective_max == pytest.approx(
        storm_worst(env, reward, epsilon, "Pmax"), abs=1e-6
    )


def test_cli_epsilon_text_and_json(tmp_path, capsys):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text("#L.S.A#", EXIT + LAVA))
    reward = tmp_path / "r.toml"
    reward.write_text("step = -0.1\n[arrive]\nexit = 1.0\n")
    out = tmp_path / "out.json"
    code = main(
        ["reward", "--model", str(path), "--reward", str(reward), "--epsilon", "0.1",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 1
    text = capsys.readouterr().out
    assert "within 0.1 of it [0.9, 1]" in text
    assert "margin 1e-06" in text
    data = json.loads(out.read_text())["reports"][0]
    assert data["epsilon"] == 0.1
    assert data["objective_min"] == pytest.approx(0.9)
    assert data["margin"] == pytest.approx(1e-6)
    assert np.allclose(data["tradeoff"], [[0.0, 1.0], [1.0, 0.0]], atol=1e-9)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epsilon", "-1"], "--epsilon: must be a finite number >= 0"),
        (["--epsilon", "0.1", "--discount", "0.9"], "discount 0.9"),
        (["--epsilon", "0.1", "--spec", 'Pmax=? [ F<=3 "exit" ]'], "step bounds"),
        (["--epsilon", "0.1", "--compare", "REWARD"], "not to --compare"),
        (["--epsilon", "0.1", "--spec", 'Pmax=? [ X "exit" ]'], "reach-avoid objectives"),
    ],
)
def test_cli_refuses_what_epsilon_cannot_decide(tmp_path, capsys, extra, message):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text("#L.S.A#", EXIT + LAVA))
    reward = tmp_path / "r.toml"
    reward.write_text("step = -0.1\n[arrive]\nexit = 1.0\n")
    extra = [str(reward) if x == "REWARD" else x for x in extra]
    assert main(["reward", "--model", str(path), "--reward", str(reward), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_step_bounded_objective_reports_no_margin(tmp_path):
    env = maze_env(tmp_path, "#L.S.A#", EXIT + LAVA, spec='Pmax=? [ F<=3 "exit" ]')
    report = check_reward(env, label_reward(env, step=-0.1, exit=1.0), env.properties[0])
    assert report.verdict == ALIGNED
    assert report.margin is None


def test_redblue_deployment_exit_reward_margin(capsys):
    """deploy-01 with the exit reward (step -0.01): the red object B is as far as the exit,
    so walking there returns exactly 1 less than the optimum; the worst P(exit) is 1 - E."""
    models = Path(__file__).resolve().parents[2] / "models" / "redblue"
    env = load_environment(models / "deploy-01.toml", spec='P>=0.9 [ !"lava" U "exit" ]')
    reward = reward_vector_of(env, str(models / "rewards" / "exit.toml"))
    report = check_reward(env, reward, env.properties[0], tradeoff=True)
    assert report.margin == pytest.approx(0.1, abs=1e-7)
    assert np.allclose(report.tradeoff, [(0.0, 1.0), (1.0, 0.0)], atol=1e-7)


def test_margin_is_infinite_where_every_finite_return_policy_reaches_the_exit(tmp_path):
    """# S . . A #, step -0.1, exit +1: no lava and no free idling, so every policy of
    finite return reaches the exit: P(exit) = 1 whatever the budget, and the margin is inf."""
    env = maze_env(tmp_path, "#S..A#", EXIT, spec='P>=0.9 [ !"lava" U "exit" ]', slip=0.1)
    report = check_reward(env, label_reward(env, step=-0.1, exit=1.0), env.properties[0], 0, 5.0)
    assert report.margin == np.inf
    assert (report.verdict, report.objective_min) == (ALIGNED, 1.0)


@pytest.mark.parametrize(
    ("spec", "worst", "best"),
    [('P>=0.9 [ G !"red" ]', 0.8, 1.0), ('P<=0.1 [ F "red" ]', 0.2, 0.0)],
)
def test_safety_objective_within_epsilon_is_the_complement_of_reaching_the_hazard(
    spec, worst, best
):
    """deploy-01 with the exit reward: a policy that walks to the red object B with
    probability p falls short of the optimal return by p (B is as far as the exit, and ends
    the episode with no reward), and then P(G !red) = 1 - p. So over the policies within
    E = 0.2: P(G !red) in [0.8, 1], margin 0.1 for P >= 0.9, trade-off [(0, 1), (1, 0)];
    the same figures, turned around, as the reach objective P(F "red") <= 0.1."""
    models = Path(__file__).resolve().parents[2] / "models" / "redblue"
    env = load_environment(models / "deploy-01.toml", spec=spec)
    reward = reward_vector_of(env, str(models / "rewards" / "exit.toml"))
    report = check_reward(env, reward, env.properties[0], epsilon=0.2, tradeoff=True)
    assert report.verdict == UNDERSPECIFIED
    low, high = sorted((worst, best))
    assert (report.objective_min, report.objective_max) == (
        pytest.approx(low, abs=1e-7),
        pytest.approx(high, abs=1e-7),
    )
    assert report.margin == pytest.approx(0.1, abs=1e-7)
    ends = (1.0, 0.0) if spec.startswith("P>=") else (0.0, 1.0)
    assert np.allclose(report.tradeoff, [(0.0, ends[0]), (1.0, ends[1])], atol=1e-7)
    plain = check_reward(env, reward, env.properties[0])
    assert plain.verdict == ALIGNED and plain.margin == pytest.approx(0.1, abs=1e-7)
