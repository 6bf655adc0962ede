"""`verify check` evaluates every objective the reward and policy verdicts evaluate
(issue 18 §5): performance rewards with mixed signs, and a maze reward TOML named as
R{"name"}, where Storm said "not implemented" or knew no such structure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import maze_text

from verifier.cli import main

MODELS = Path(__file__).resolve().parent.parent.parent / "models"
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'


def test_a_hidden_performance_with_mixed_signs_is_checked(tmp_path, capsys):
    """The absent supervisor's performance: the long walk rrrdddlll, -1 a move and +50 at
    the goal, is 41 with or without the supervisor (the upstream figures in the model's
    header): the greatest performance over all policies."""
    out = tmp_path / "o.json"
    model = str(MODELS / "gridworlds" / "absent-supervisor.prism")
    spec = 'R{"performance"}max=? [ C ]'
    assert main(["check", "--model", model, "--spec", spec, "--json", str(out)]) == 0
    report = json.loads(out.read_text())["reports"][0]
    assert report["value"] == pytest.approx(41.0) and report["direction"] == "max"


def test_a_maze_reward_file_is_a_performance_objective_of_check(tmp_path, capsys):
    """S . . A with exit.toml beside the maze (step -0.1, +1 on the exit): the best return
    is three steps and the exit, -0.3 + 1 = 0.7; the least is -inf (idling forever costs
    a step each time), so `>= 0.5`, which must hold for every policy, fails."""
    (tmp_path / "maze.toml").write_text(maze_text("#S..A#", EXIT))
    (tmp_path / "exit.toml").write_text("step = -0.1\n[arrive]\nexit = 1\n")
    model = str(tmp_path / "maze.toml")
    assert main(["check", "--model", model, "--spec", 'R{"exit"}max=? [ C ]']) == 0
    assert "value 0.7 (max over policies)" in capsys.readouterr().out
    assert main(["check", "--model", model, "--spec", 'R{"exit"}>=0.5 [ C ]']) == 1
    assert "value -inf (min over policies)" in capsys.readouterr().out
    assert main(["check", "--model", model, "--spec", 'R{"exit"}max>=0.5 [ C ]']) == 0


def test_check_agrees_with_the_reward_verdict_on_the_optimal_return(tmp_path, capsys):
    """The same optimum by the reward verdict's route (its printed optimal return), on a
    slippery corridor (slip 0.2)."""
    (tmp_path / "maze.toml").write_text(maze_text("#S..A#", EXIT, slip=0.2))
    (tmp_path / "exit.toml").write_text("step = -0.1\n[arrive]\nexit = 1\n")
    model, out = str(tmp_path / "maze.toml"), tmp_path / "o.json"
    assert main(["reward", "--model", model, "--reward", str(tmp_path / "exit.toml")]) == 0
    printed = capsys.readouterr().out.split("optimal return ")[1].split(";")[0]
    spec = 'R{"exit"}max=? [ C ]'
    assert main(["check", "--model", model, "--spec", spec, "--json", str(out)]) == 0
    value = json.loads(out.read_text())["reports"][0]["value"]
    assert f"{value:.6g}" == printed
