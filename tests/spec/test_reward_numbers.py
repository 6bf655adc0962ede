"""Numbers of a reward file (issue 20): judged on the decimal written, before any float or
fraction is built from it. A nonzero number below double precision's range keeps its sign;
numbers out of range are one line, exit 2, in seconds."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from helpers import maze_text

from verifier.analyses.reward_verdict import UNBOUNDED, check_reward
from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.spec.reward_file import load_reward, resolve_reward, reward_vector

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'


def maze(tmp_path, map_text="#S..A#", cells=EXIT, **top):
    path = tmp_path / "maze.toml"
    path.write_text(maze_text(map_text, cells, **top))
    return path


@pytest.mark.parametrize("exact", [False, True])
def test_a_step_below_double_precision_still_makes_a_reward_loop(tmp_path, exact):
    """step = 1e-400 reads as 0.0 in Python, yet it is positive: walking between two floor
    cells earns it forever, more than the exit's 1 (the README's rule: any positive step at
    discount 1 is a reward loop). Once UNDERSPECIFIED with return 0, and past 60 s with
    --exact; now unbounded, decided from the signs."""
    env = load_environment(maze(tmp_path))
    (tmp_path / "r.toml").write_text("step = 1e-400\n[arrive]\nexit = 1\n")
    reward = resolve_reward(str(tmp_path / "r.toml"), env.mdp)
    assert reward.reward is not None
    assert reward.reward.step > 0.0 and reward.reward.exact_step() == Fraction(1, 10**400)
    report = check_reward(env, reward, env.properties[0], exact)
    assert report.verdict == UNBOUNDED and report.optimal_return == np.inf


def test_a_tiny_weight_times_a_probability_keeps_its_sign(tmp_path):
    """At slip 0.8 the move right from S reaches B (a red object) with probability 0.2, the
    move up with 0.4 (slipping right): 0.2 and 0.4 times the least double (which 1e-400
    is read as) round to 0 in floating point; the exact sums are positive, so both choices
    earn the least positive double. Left never reaches B: 0."""
    cells = EXIT + '[cells.B]\nkind = "object"\ncolor = "red"\n'
    env = load_environment(maze(tmp_path, "#SBA#", cells, slip=0.8))
    (tmp_path / "r.toml").write_text("[arrive]\nred = 1e-400\n")
    vector = reward_vector(env.mdp, load_reward(tmp_path / "r.toml"))
    mdp = env.mdp
    start = int(mdp.initial_states[0])
    right = int(mdp.row_groups[start]) + mdp.actions.index("right")
    assert vector.values[right] == np.nextafter(0.0, 1.0)
    up = int(mdp.row_groups[start]) + mdp.actions.index("up")
    assert vector.values[up] == np.nextafter(0.0, 1.0)
    left = int(mdp.row_groups[start]) + mdp.actions.index("left")
    assert vector.values[left] == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("step = 1e400\n", "step: 1e400 is too large"),
        ("step = 1e999999999\n", "step: 1e999999999 is too large"),
        ("step = -1e9999999\n", "step: -1e9999999 is too large"),
        ("step = 1e-999999999\n", "step: 1e-999999999 is nonzero but below 1e-1000"),
        ("step = " + "1" * 400 + ".5\n", "is too large; numbers must lie within"),
        ("step = " + "1" * 400 + "\n", "step: a number of 400 digits is too large"),
        ("step = " + "1" * 5000 + "\n", "a number of more than 4300 digits"),
        ("[arrive]\nexit = 0." + "1" * 1200 + "\n", "more than 1000 significant digits"),
        ("discount = 0." + "9" * 400 + "\n", "discount: a decimal just below 1 that rounds"),
        ("discount = 1e-400\n", "discount: a decimal just above 0 that rounds to 0"),
        ("a = " + "[" * 4000 + "]" * 4000 + "\n", "nested deeper than 100 levels"),
        ("discount = 1e400\n", "discount: 1e400 is too large"),
    ],
)
def test_reward_numbers_out_of_range_are_one_line_exit_2(tmp_path, capsys, text, message):
    """Each was a crash or a hang: `integer division result too large for a float`,
    Fraction("1e999999999") computing 10^999999999, a RecursionError, the int-to-str limit;
    and a discount of 0.999...9 (400 nines) was silently 1."""
    (tmp_path / "r.toml").write_text(text)
    code = main(["reward", "--model", str(maze(tmp_path)), "--reward", str(tmp_path / "r.toml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err


def test_exact_decimals_of_400_digits_within_range_are_read_exactly(tmp_path):
    digits = "0." + "3" * 400
    (tmp_path / "r.toml").write_text(f"step = -{digits}\n")
    reward = load_reward(tmp_path / "r.toml")
    assert reward.exact_step() == -Fraction(int("3" * 400), 10**400)
    assert reward.step == pytest.approx(-1 / 3)


@pytest.mark.parametrize(
    "text",
    [
        'map = """\n#SA#\n"""\nslip = ' + "1" * 5000 + '\n[cells.A]\nkind = "exit"\n',
        'map = """\n#SA#\n"""\nx = ' + "[" * 3000 + "]" * 3000 + "\n",
        'map = """\n#SA#\n"""\n[cells.A]\nkind = "exit"\nlabels = ' + "[" * 5000 + "]" * 5000,
    ],
)
def test_maze_files_with_huge_integers_or_deep_nesting_are_bad_input(tmp_path, capsys, text):
    path = tmp_path / "m.toml"
    path.write_text(text)
    assert main(["check", "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nested deeper than 100 levels" in err or "more than 4300 digits" in err
