"""Reward specification verdicts, each against a value worked out by hand or by a second route."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import stormpy
from helpers import maze_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import storm
from verifier.analyses.reward_verdict import (
    ALIGNED,
    MISSPECIFIED,
    SAME,
    TRAPPED,
    UNBOUNDED,
    UNDERSPECIFIED,
    check_reward,
    compare_rewards,
)
from verifier.cli import main
from verifier.engine.exact import certify_exact
from verifier.engine.optimum import solve
from verifier.graph import absorbing_states
from verifier.inputs.load import load_environment
from verifier.inputs.maze_generate import random_maze
from verifier.mdp import restrict, with_labels
from verifier.spec.reward_file import (
    Reward,
    RewardVector,
    exact_reward_values,
    resolve_reward,
    reward_vector,
)

REDBLUE = Path(__file__).resolve().parents[2] / "models" / "redblue"
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
RED_EXIT = '[cells.B]\nkind = "exit"\ncolor = "red"\n'
LAVA = '[cells.L]\nkind = "lava"\n'


def environment(tmp_path, map_text, cells, spec=None, **top):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text(map_text, cells, **top))
    return load_environment(path, spec=spec)


def verdict(env, step=0.0, discount=1.0, **arrive):
    reward = reward_vector(env.mdp, Reward("r", "test", discount, step, arrive))
    return check_reward(env, reward, env.properties[0])


@pytest.mark.parametrize("maze", ["train-01", "train-02", "train-03"])
def test_red_reward_is_aligned_on_every_training_maze(maze):
    env = load_environment(REDBLUE / f"{maze}.toml")
    report = check_reward(env, _file_reward(env, "red"), env.properties[0])
    assert report.verdict == ALIGNED
    assert report.objective_min == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("maze", ["deploy-01", "deploy-02"])
def test_red_reward_is_misspecified_on_blue_exit_deployment_mazes(maze):
    """Every optimal policy of "+1 on red" walks to the terminal red object: P(exit) = 0."""
    env = load_environment(REDBLUE / f"{maze}.toml")
    report = check_reward(env, _file_reward(env, "red"), env.properties[0])
    assert report.verdict == MISSPECIFIED
    assert report.objective_max == pytest.approx(0.0, abs=1e-9)
    assert report.optimal_value == pytest.approx(1.0, abs=1e-9)
    end = report.witness["path"][-1]
    assert env.mdp.label("object_red")[_state_of(env, end)]


@pytest.mark.parametrize("maze", sorted(p.stem for p in REDBLUE.glob("*.toml")))
def test_exit_reward_is_aligned_on_every_maze(maze):
    env = load_environment(REDBLUE / f"{maze}.toml")
    assert check_reward(env, _file_reward(env, "exit"), env.properties[0]).verdict == ALIGNED


def test_two_equally_good_exits_leave_the_objective_underspecified(tmp_path):
    """B . S . A: a red and a blue exit, two steps each way. "+1 on any exit" makes going
    left and going right both optimal; φ = reach the blue exit: the left-going optimal
    policy gets 0, the right-going one 1."""
    env = environment(tmp_path, "#B.S.A#", EXIT + RED_EXIT, spec='Pmax=? [ F "exit_blue" ]')
    report = verdict(env, step=-0.1, exit=1.0)
    assert report.verdict == UNDERSPECIFIED
    assert (report.objective_min, report.objective_max) == (0.0, 1.0)
    assert report.optimal_return == pytest.approx(-0.1 + 0.9)
    assert env.mdp.label("exit_red")[_state_of(env, report.witness["path"][-1])]


def test_reward_loop_is_unbounded_with_the_loop_as_witness(tmp_path):
    """A non-terminal red object: stepping off and back on earns +1 - 2 * 0.01 per two steps
    forever (reward hacking)."""
    env = environment(tmp_path, "#S.R.A#", EXIT + '[cells.R]\nkind = "object"\ncolor = "red"\n')
    report = verdict(env, step=-0.01, red=1.0)
    assert report.verdict == UNBOUNDED
    assert report.optimal_return == np.inf
    assert report.witness["loop"]
    assert not report.passed


def test_idle_loop_at_discount_1_is_not_optimal_so_exit_reward_is_aligned(tmp_path):
    """Step 0 and +1 on the exit, discount 1: V* = 1 everywhere and bumping into a wall keeps
    V*, so each idle action is Q*-optimal. A policy that idles forever collects 0 and is not
    optimal; every policy that reaches the exit is. Without excluding idlers, the least
    probability over "optimal" policies would be 0; the verdict must be aligned."""
    env = environment(tmp_path, "#S..A#", EXIT)
    report = verdict(env, exit=1.0)
    assert report.verdict == ALIGNED
    assert report.objective_min == pytest.approx(1.0)
    solution = solve(env.mdp, reward_vector(env.mdp, Reward("r", "t", arrive={"exit": 1.0})).values)
    optimal = with_labels(restrict(env.mdp, solution.optimal), {})
    values, _ = storm.optimize(optimal, 'Pmin=? [ F "exit" ]')
    assert values[env.mdp.initial_states[0]] == 0.0  # what naive Q*-greedy sets would say


def test_step_cost_makes_the_risky_path_by_lava_optimal_and_the_reward_misspecified(tmp_path):
    """S . . A above a row of lava, slip 0.2. Pushing right advances with 0.8, stays with 0.1
    (slip into the wall above) and falls into lava with 0.1: each cell is crossed before
    falling with probability 0.8 / 0.9, so three cells give (8/9)^3. Pushing up (into the
    wall) is safe but crawls by slips; with step cost 0.1 it is far worse in return.
    φ = Pmax [ !lava U exit ] = 1 (the crawl), so no optimal policy meets it."""
    env = environment(tmp_path, "######\n#S..A#\n#LLLL#\n######", EXIT + LAVA, slip=0.2)
    report = verdict(env, step=-0.1, exit=1.0)
    assert report.verdict == MISSPECIFIED
    assert report.objective_min == pytest.approx((8 / 9) ** 3, abs=1e-9)
    assert report.objective_max == pytest.approx((8 / 9) ** 3, abs=1e-9)
    assert report.optimal_value == pytest.approx(1.0, abs=1e-6)
    assert env.mdp.label("lava")[_state_of(env, report.witness["path"][-1])]


def test_cheap_steps_make_the_safe_crawl_optimal(tmp_path):
    """The same maze without step cost: crawling along the wall reaches the exit surely, so
    every optimal policy is safe."""
    env = environment(tmp_path, "######\n#S..A#\n#LLLL#\n######", EXIT + LAVA, slip=0.2)
    assert verdict(env, exit=1.0).verdict == ALIGNED


def test_several_starts_each_must_satisfy_the_objective(tmp_path):
    """B . S . . . S . A: the left start is nearer the red exit, the right one the blue.
    Shortest-path optimal policies send the left start to red: φ (reach blue) fails there,
    so no optimal policy satisfies φ from every start."""
    env = environment(tmp_path, "#B.S...S.A#", EXIT + RED_EXIT, spec='Pmax=? [ F "exit_blue" ]')
    report = verdict(env, step=-0.1, exit=1.0)
    assert len(env.mdp.initial_states) == 2
    assert report.verdict == MISSPECIFIED
    assert report.witness["start"]["col"] == 3


def test_negative_rewards_can_make_lava_the_optimal_escape(tmp_path):
    """Lava next to the start, the exit 6 steps away, step cost 0.3 and lava -1: jumping in
    costs 0.3 + 1 = 1.3, walking costs 6 * 0.3 = 1.8, so every optimal policy dies. With
    lava -2 walking is better (1.8 < 2.3): aligned."""
    env = environment(tmp_path, "#LS.....A#", EXIT + LAVA)
    suicide = verdict(env, step=-0.3, lava=-1.0)
    assert suicide.verdict == MISSPECIFIED
    assert suicide.optimal_return == pytest.approx(-1.3)
    walk = verdict(env, step=-0.3, lava=-2.0)
    assert walk.verdict == ALIGNED
    assert walk.optimal_return == pytest.approx(-1.8)


def test_discounted_wall_bumping_on_a_red_object_misspecifies(tmp_path):
    """A non-terminal red object beside the start, discount 0.9: standing on it and bumping
    into the wall earns +1 every step, 1 / (1 - 0.9) = 10, more than the exit's +1."""
    env = environment(tmp_path, "#RS..A#", EXIT + '[cells.R]\nkind = "object"\ncolor = "red"\n')
    report = verdict(env, discount=0.9, red=1.0, exit=1.0)
    assert report.verdict == MISSPECIFIED
    assert report.optimal_return == pytest.approx(1 + 0.9 * 10)


def test_bounded_objective_compares_with_its_threshold(tmp_path):
    env = environment(tmp_path, "#S..A#", EXIT, spec='P>=0.5 [ F<=3 "exit" ]')
    assert verdict(env, step=-0.1, exit=1.0).verdict == ALIGNED
    env = environment(tmp_path, "#S..A#", EXIT, spec='P>=0.5 [ F<=2 "exit" ]')
    assert verdict(env, step=-0.1, exit=1.0).verdict == MISSPECIFIED


PRISM_CORRIDOR = """
mdp
module walk
  x : [0..3] init 0;
  [right] x<2 -> (x'=x+1);
  [jump]  x<2 -> (x'=3);
  [] x>=2 -> true;
endmodule
rewards "cost"
  [right] true : -1;
  [jump] true : -3;
endrewards
rewards "thrill"
  [jump] true : 1;
endrewards
label "goal" = x=2;
label "pit" = x=3;
"""


def test_prism_reward_structures_are_checked_by_name(tmp_path, capsys):
    """From x=0: right, right reaches the goal for -2; jump falls into the pit for -3. Under
    "cost" the optimal policy walks (aligned); under "thrill" it jumps (misspecified)."""
    path = tmp_path / "walk.prism"
    path.write_text(PRISM_CORRIDOR)
    argv = ["reward", "--model", str(path), "--spec", 'Pmax=? [ F "goal" ]', "--reward"]
    assert main([*argv, "cost"]) == 0
    assert "ALIGNED" in capsys.readouterr().out
    json_path = tmp_path / "r.json"
    assert main([*argv, "thrill", "--json", str(json_path)]) == 1
    assert "MISSPECIFIED" in capsys.readouterr().out
    import json

    (entry,) = json.loads(json_path.read_text())["reports"]
    for field in ("objective_min", "objective_max", "witness", "value", "optimal_value"):
        assert field in entry
    assert entry["optimal_return"] == 1.0
    assert entry["witness"]["path"][-1] == {"x": 3}


def test_compare_finds_different_optimal_policies(tmp_path):
    env = load_environment(REDBLUE / "deploy-01.toml")
    report = compare_rewards(env, _file_reward(env, "red"), _file_reward(env, "exit"))
    assert report.verdict == "different"
    assert set(report.witness) >= {"state", "red", "exit"}


@st.composite
def shaped(draw):
    seed = draw(st.integers(0, 10_000))
    slip = draw(st.sampled_from([0.0, 0.2]))
    discount = draw(st.sampled_from([1.0, 0.9]))
    scale = draw(st.sampled_from([0.5, 3.0]))
    maze = random_maze(9, 11, seed, objects=2, lava=1, slip=slip)
    return maze, seed, discount, scale


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=shaped())
def test_potential_shaping_and_positive_scaling_keep_optimal_policies_and_verdicts(case, tmp_path):
    """Ng et al. (1999): adding γΦ(s') - Φ(s) with Φ = 0 on absorbing states, or scaling by
    c > 0, leaves the optimal policies unchanged, hence every verdict. (The base reward has
    a step cost, so at discount 1 there is no zero-reward loop for the shaping to tilt.)"""
    maze, seed, discount, scale = case
    from verifier.inputs.maze_generate import maze_to_toml

    path = tmp_path / "m.toml"
    path.write_text(maze_to_toml(maze))
    env = load_environment(path)
    mdp = env.mdp
    base = reward_vector(mdp, Reward("base", "t", discount, -0.05, {"exit": 1.0, "red": 0.3}))
    potential = np.random.default_rng(seed).normal(size=mdp.n_states)
    potential[absorbing_states(mdp)] = 0.0
    states = np.repeat(np.arange(mdp.n_states), np.diff(mdp.row_groups))
    shaping = discount * (mdp.transitions @ potential) - potential[states]
    shaping[absorbing_states(mdp)[states]] = 0.0
    variants = [
        RewardVector("shaped", base.values + shaping, discount, "t"),
        RewardVector("scaled", scale * base.values, discount, "t"),
    ]
    base_report = check_reward(env, base, env.properties[0])
    for variant in variants:
        assert compare_rewards(env, base, variant).verdict == SAME, variant.name
        assert check_reward(env, variant, env.properties[0]).verdict == base_report.verdict


def _file_reward(env, name):
    from verifier.spec.reward_file import resolve_reward

    return resolve_reward(str(REDBLUE / "rewards" / f"{name}.toml"), env.mdp)


def _state_of(env, valuation: dict) -> int:
    row = [valuation[v] for v in env.mdp.variables]
    return int(np.flatnonzero((env.mdp.valuations == row).all(axis=1))[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("step = ", "TOML syntax error"),
        ("discount = 1.5\n", "discount: must be a number in (0, 1], got 1.5"),
        ("discount = 0\n", "discount: must be a number in (0, 1]"),
        ('step = "cheap"\n', "step: must be a number"),
        ("[arrive]\nexit = true\n", "arrive.exit: must be a number"),
        ("bonus = 1\n", "bonus: unknown key; known: discount, step, arrive"),
        ("[arrive]\nexitt = 1.0\n", "arrive.exitt: model 'maze' has no such label; known:"),
    ],
)
def test_malformed_reward_files_exit_2_with_one_line(tmp_path, capsys, text, expected):
    maze = tmp_path / "maze.toml"
    maze.write_text(maze_text("#S.A#", EXIT))
    reward = tmp_path / "r.toml"
    reward.write_text(text)
    assert main(["reward", "--model", str(maze), "--reward", str(reward)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and str(reward) in err, err


def test_unknown_reward_name_lists_the_model_reward_structures(tmp_path, capsys):
    path = tmp_path / "walk.prism"
    path.write_text(PRISM_CORRIDOR)
    code = main(
        ["reward", "--model", str(path), "--spec", 'Pmax=? [ F "goal" ]', "--reward", "fun"]
    )
    assert code == 2
    assert "'fun' is neither a reward file nor a reward structure" in capsys.readouterr().err


@pytest.mark.parametrize("maze", sorted(p.stem for p in REDBLUE.glob("*.toml")))
@pytest.mark.parametrize("name", ["red", "exit"])
def test_exact_arithmetic_confirms_the_float_optimal_actions(maze, name):
    env = load_environment(REDBLUE / f"{maze}.toml")
    reward = _file_reward(env, name)
    floating = solve(env.mdp, reward.values, reward.discount)
    from verifier.engine.exact import certify_exact

    exact = certify_exact(env.mdp, reward.values, reward.discount, floating)
    assert exact.optimal.tolist() == floating.optimal.tolist()
    np.testing.assert_allclose(exact.values, floating.values, atol=1e-12)


def test_exact_arithmetic_separates_a_near_tie_that_floats_call_a_tie(tmp_path):
    """B . S . A with exit rewards 1 (blue A) and 1 + 1e-11 (red B). Within the float
    tolerance (1e-9) both directions are optimal: underspecified. Exactly, only the red exit
    is optimal, so no optimal policy reaches the blue exit: misspecified."""
    env = environment(tmp_path, "#B.S.A#", EXIT + RED_EXIT, spec='Pmax=? [ F "exit_blue" ]')
    reward = reward_vector(
        env.mdp, Reward("r", "t", 1.0, -0.1, {"exit_blue": 1.0, "exit_red": 1.00000000001})
    )
    assert check_reward(env, reward, env.properties[0]).verdict == UNDERSPECIFIED
    exact = check_reward(env, reward, env.properties[0], exact=True)
    assert exact.verdict == MISSPECIFIED
    assert "exact rational arithmetic" in exact.method


def test_property_storm_refuses_is_bad_input_naming_where_it_was_written(tmp_path, capsys):
    """A reward structure the model lacks is the user's to fix: exit 2, the message names the
    maze's `intended` (where the property came from), not --spec."""
    path = tmp_path / "maze.toml"
    path.write_text(maze_text("#S.A#", EXIT, intended='R{"nope"}max=? [ F "exit" ]'))
    assert main(["check", "--model", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}: intended" in error and "'nope' is neither a reward structure" in error


def test_failure_of_storm_itself_is_exit_3(tmp_path, capsys, monkeypatch):
    """Storm failing (here: made to raise its InvalidStateException) is the machinery's
    fault: exit 3 with Storm's message, never the exit 2 of bad input."""

    def failing(*args, **kwargs):
        raise RuntimeError("InvalidStateException: solver diverged")

    monkeypatch.setattr(stormpy, "model_checking", failing)
    path = tmp_path / "maze.toml"
    path.write_text(maze_text("#S.A#", EXIT))
    assert main(["check", "--model", str(path)]) == 3
    assert "Storm: " in capsys.readouterr().err


WALLED = "#####\n#S#A#\n#####"
RED_OBJECT = '[cells.B]\nkind = "object"\ncolor = "red"\nterminal = true\n'


@pytest.mark.parametrize(
    ("discount", "step", "expected"),
    [(0.9, -0.01, -0.1), (1.0, -0.01, -np.inf), (0.9, 0.05, 0.5), (1.0, 0.05, np.inf)],
)
def test_walled_in_start_pays_its_step_for_ever(tmp_path, discount, step, expected):
    """Issue 10 §13: S is walled in on all four sides but not terminal, so every move stays
    put and costs the step: V = step / (1 - discount) = -0.01 / 0.1 = -0.1, or 0.05 / 0.1 =
    0.5; at discount 1 the sum diverges, to -inf or +inf."""
    env = environment(tmp_path, WALLED, EXIT)
    assert not absorbing_states(env.mdp)[env.mdp.initial_states].any()
    vector = reward_vector(env.mdp, Reward("r", "test", discount, step, {}))
    start = env.mdp.initial_states[0]
    values = solve(env.mdp, vector.values, discount).values
    assert values[start] == pytest.approx(expected, abs=1e-12) or values[start] == expected


def test_walled_in_start_with_a_step_cost_is_trapped_not_reward_hacking(tmp_path, capsys):
    """Issue 10 §15: an optimum of -inf is its own verdict, with its own text."""
    env = environment(tmp_path, WALLED, EXIT)
    assert verdict(env, step=-0.01).verdict == TRAPPED
    assert verdict(env, step=0.05).verdict == UNBOUNDED
    (tmp_path / "cost.toml").write_text("step = -0.01\n")
    argv = [
        "reward",
        "--model",
        str(tmp_path / "maze.toml"),
        "--reward",
        str(tmp_path / "cost.toml"),
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "TRAPPED" in out and "reward hacking" not in out


@pytest.mark.parametrize(
    "reward_text", ["step = 1e-12\n[arrive]\nexit = 1\n", "[arrive]\nfloor = 1e-16\nexit = 1\n"]
)
@pytest.mark.parametrize("exact", [False, True])
def test_tiny_positive_reward_loop_is_unbounded(tmp_path, reward_text, exact):
    """Issue 10 §7: at discount 1, walking between two floor cells earns 1e-12 (or 1e-16)
    a step for ever, more than the exit's 1: unbounded, decided from the signs alone."""
    env = environment(tmp_path, "#S..A#", EXIT)
    (tmp_path / "r.toml").write_text(reward_text)
    reward = resolve_reward(str(tmp_path / "r.toml"), env.mdp)
    assert check_reward(env, reward, env.properties[0], exact).verdict == UNBOUNDED


def test_exact_reads_the_decimals_written_and_sums_them_exactly(tmp_path):
    """Issue 10 §14, first case: B . . S . A, a terminal red object B three steps left of S,
    the exit A two steps right. Left pays 1.00000001 - 3 * 1e-08 = 0.99999998, right pays
    1.0 - 2 * 1e-08 = 0.99999998: an exact tie, so both are optimal and φ (reach the exit)
    is underspecified, in floats and exactly (summing rounded floats made it misspecified)."""
    env = environment(tmp_path, "#B..S.A#", EXIT + RED_OBJECT)
    (tmp_path / "r.toml").write_text("step = -1e-08\n[arrive]\nexit = 1.0\nred = 1.00000001\n")
    reward = resolve_reward(str(tmp_path / "r.toml"), env.mdp)
    for exact in (False, True):
        report = check_reward(env, reward, env.properties[0], exact)
        assert report.verdict == UNDERSPECIFIED, exact
        assert (report.objective_min, report.objective_max) == (0.0, 1.0)


def test_exact_keeps_a_step_that_float_rounding_lost(tmp_path):
    """Issue 10 §14, second case: B . S . A, red 1.00000000000002 two steps left, the exit 1
    two steps right, step -1e-14. Left pays exactly 1.00000000000002 - 2e-14 = 1, right
    1 - 2e-14: red wins by 2e-14, so exactly φ is misspecified and V*(S) = 1. (Reading the
    numbers within 1e-12 made the step 0 and red 1: a tie.) In floats the 2e-14 is inside
    the optimality tolerance: underspecified."""
    env = environment(tmp_path, "#B.S.A#", EXIT + RED_OBJECT)
    (tmp_path / "r.toml").write_text("step = -1e-14\n[arrive]\nexit = 1\nred = 1.00000000000002\n")
    reward = resolve_reward(str(tmp_path / "r.toml"), env.mdp)
    assert check_reward(env, reward, env.properties[0]).verdict == UNDERSPECIFIED
    report = check_reward(env, reward, env.properties[0], exact=True)
    assert report.verdict == MISSPECIFIED
    assert report.optimal_return == 1.0
    exact_rewards = partial(exact_reward_values, env.mdp, reward.reward)
    solution = certify_exact(
        env.mdp, reward.values, 1.0, solve(env.mdp, reward.values), exact_rewards
    )
    assert solution.gap == pytest.approx(2e-14, rel=1e-9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("step = 99999999999999999999999\n", "step: 1.000e+23 is too large"),
        ("step = 1e300\n", "step: 1e+300 is too large"),
        ("step = nan\n", "step: must be a number (finite)"),
        ("[arrive]\nexit = -inf\n", "arrive.exit: must be a number (finite)"),
        ("discount = 1.5\n", "discount: must be a number in (0, 1]"),
    ],
)
def test_unusable_reward_numbers_are_bad_input(tmp_path, capsys, text, message):
    """Issue 10 §10: exit 2 and one line naming the key, not an internal error."""
    env = environment(tmp_path, "#S.A#", EXIT)
    (tmp_path / "r.toml").write_text(text)
    assert main(["reward", "--model", str(env.path), "--reward", str(tmp_path / "r.toml")]) == 2
    assert message in capsys.readouterr().err


_TOML_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1e300", "-1e-320", "nan", "inf", "1_000.5", "0x10", '"x"', "[1]", "{}"]),
    st.text(alphabet="0123456789.e-+_", min_size=1, max_size=12),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["discount", "step", "arrive.exit", "arrive.red", "junk"]), _TOML_VALUES
        ),
        max_size=4,
    )
)
@settings(deadline=None, max_examples=40, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_reward_files_give_a_verdict_or_one_line_of_bad_input(tmp_path_factory, entries):
    """Mutated reward files: exit 0, 1 or 2, never an internal error or a traceback."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("fuzz")
    maze = tmp / "maze.toml"
    maze.write_text(maze_text("#S.A#", EXIT))
    top = [f"{k} = {v}" for k, v in entries if "." not in k]
    arrive = [f"{k.split('.')[1]} = {v}" for k, v in entries if "." in k]
    (tmp / "r.toml").write_text("\n".join([*top, "[arrive]", *arrive]) + "\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["reward", "--model", str(maze), "--reward", str(tmp / "r.toml")])
    assert code in (0, 1, 2), err.getvalue()
    assert "Traceback" not in err.getvalue() and "internal error" not in err.getvalue()
    if code == 2:
        assert err.getvalue().count("\n") == 1
