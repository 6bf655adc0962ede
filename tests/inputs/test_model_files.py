"""Model arguments as a new user gives them (issue 18 §5, issue 20): directories holding
rewards beside their mazes, the help texts, `verify states` on any model, and the state
budget of every command (a default, a number, or none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import maze_text

from verifier.budget import DEFAULT_MAX_STATES
from verifier.cli import build_parser, main

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
LAVA = str(Path(__file__).resolve().parent.parent.parent / "models" / "lava.toml")


def test_reward_files_in_a_model_directory_are_not_read_as_mazes(tmp_path, capsys):
    """A performance reward lives beside its mazes (R{"exit"} finds exit.toml there):
    `--model DIR` checks the two mazes and skips the reward, which it read as a maze
    without `map` (exit 2)."""
    (tmp_path / "a.toml").write_text(maze_text("#S.A#", EXIT))
    (tmp_path / "b.toml").write_text(maze_text("#S..A#", EXIT))
    (tmp_path / "exit.toml").write_text("step = -0.1\n[arrive]\nexit = 1\n")
    assert main(["check", "--model", str(tmp_path), "--spec", 'R{"exit"}max=? [ C ]']) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out[:2]] == [
        str(tmp_path / "a.toml"),
        str(tmp_path / "b.toml"),
    ]
    assert "value 0.8" in out[0] and "value 0.7" in out[1]


def _help(command: str) -> str:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[command].format_help()


def test_help_texts_name_what_is_accepted():
    """`policy --help` listed .pt2 (refused); `states --help` named mazes and PRISM only."""
    assert ".pt2" not in _help("policy")
    states = _help("states")
    assert "gym:ENV_ID" in states and "--max-states" in states
    assert "none for no budget" in _help("check")


def test_states_lists_a_gymnasium_model(tmp_path, capsys):
    pytest.importorskip("gymnasium")
    out = tmp_path / "s.json"
    assert main(["states", "gym:FrozenLake-v1", "--json", str(out)]) == 0
    listing = json.loads(out.read_text())
    assert listing["variables"] == ["state", "absorbed"] and len(listing["states"]) == 16
    assert main(["states", "gym:FrozenLake-v1", "--max-states", "5"]) == 3


def test_states_takes_a_state_budget(capsys):
    assert main(["states", LAVA, "--max-states", "3"]) == 3
    assert "more than 3 states" in capsys.readouterr().err


def test_generate_refuses_sizes_beyond_the_budget_with_the_estimate(tmp_path, capsys):
    """20001x20001 ended in "internal error (allocation failed)" at 7 GB."""
    out = tmp_path / "g.toml"
    assert main(["generate", "--size", "20001x20001", "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"more than {DEFAULT_MAX_STATES} states: about 199999999, one per floor cell" in err
    assert not out.exists()
    assert main(["generate", "--size", "41x41", "--max-states", "100", "-o", str(out)]) == 3
    assert main(["generate", "--size", "41x41", "--max-states", "none", "-o", str(out)]) == 0
    assert main(["generate", "--size", "9" * 20 + "x5", "-o", str(out)]) == 2


def test_max_states_none_lifts_the_budget_and_zero_is_refused(capsys):
    assert main(["check", "--model", LAVA, "--max-states", "none"]) == 0
    assert main(["check", "--model", LAVA, "--max-states", "0"]) == 2
    assert "must be a positive integer, got '0' (or none: no budget)" in capsys.readouterr().err
