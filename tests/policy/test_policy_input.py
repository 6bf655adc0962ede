"""Malformed policy files and outputs: exit 2 with one line, never a verdict or a traceback."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.load import load_policy

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]
ROW = [0.0, 0.0, 0.0, 1.0]


def _run(tmp_path, capsys, name: str, content: str | bytes) -> str:
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    policy = tmp_path / name
    if isinstance(content, bytes):
        policy.write_bytes(content)
    else:
        policy.write_text(content)
    assert main([str(policy), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _valuations(**extra) -> str:
    """The 3 states of `#S.A#` are (0,1), (0,2), (0,3) with no keys held."""
    rows = [[0, c, 0, 0, 0, 0, 0, 0] for c in (1, 2, 3)]
    return json.dumps({"actions": ACTIONS, "valuations": rows, "probs": [ROW] * 3, **extra})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        (
            json.dumps({"actions": ACTIONS, "probs": [ROW], "valuations": [[2**70] * 8]}),
            "integers beyond 64 bits",
        ),
        (json.dumps({"actions": ["up", "up", "left", "right"], "probs": [ROW] * 3}), "repeat"),
        (json.dumps({"actions": ACTIONS, "probs": [["0", "0", "0", "1"]] * 3}), "strings"),
        (json.dumps({"actions": ACTIONS, "probs": "1,0,0,0"}), "strings"),
        (json.dumps({"actions": ACTIONS, "probs": [ROW, ROW, [0, 0, 0, 0]]}), "row 2 is all zero"),
        (json.dumps({"actions": "up", "probs": [ROW] * 3}), "no action names"),
        (
            json.dumps(
                {
                    "actions": ACTIONS,
                    "probs": [ROW] * 3,
                    "valuations": [
                        [0, 1.9, 0, 0, 0, 0, 0, 0],
                        *[[0, c, 0, 0, 0, 0, 0, 0] for c in (2, 3)],
                    ],
                }
            ),
            "holds 1.9",
        ),
    ],
    ids=[
        "deep",
        "bigint",
        "duplicate",
        "string-probs",
        "string-table",
        "zero-row",
        "str-actions",
        "fraction",
    ],
)
def test_malformed_json_tables_are_refused(tmp_path, capsys, content, expected):
    assert expected in _run(tmp_path, capsys, "p.json", content)


def test_well_formed_valuation_table_is_accepted(tmp_path, capsys):
    """The control for the refusals above: the same table with integer valuations."""
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    policy = tmp_path / "p.json"
    policy.write_text(_valuations())
    assert main([str(policy), "--model", str(model)]) == 0


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"probs": np.ones((3, 4), dtype=bool)}, "booleans"),
        ({"probs": np.ones((3, 4), dtype=complex)}, "complex"),
        ({"probs": np.array([["1"] * 4] * 3)}, "strings"),
        ({"probs": np.array([ROW, ROW, [0.0] * 4])}, "all zero"),
        ({"probs": np.array([ROW] * 3), "valuations": np.full((3, 8), 1.5)}, "holds 1.5"),
    ],
)
def test_malformed_npz_tables_are_refused(tmp_path, capsys, arrays, expected):
    path = tmp_path / "p.npz"
    np.savez(path, actions=np.array(ACTIONS), **arrays)
    assert expected in _run(tmp_path, capsys, "p.npz", path.read_bytes())


def test_single_choice_states_without_a_named_action_raise_no_warning(tmp_path):
    """Terminal states offer one unnamed self-loop: their softmax has no finite logit, so the
    shift must not be -inf - -inf (the RuntimeWarning "invalid value in subtract")."""
    env = load_environment(_write(tmp_path, "m.toml", maze_text("#S.A#", EXIT)))
    policy = _write(
        tmp_path, "p.json", json.dumps({"actions": ACTIONS, "output": "logits", "probs": [ROW] * 3})
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decisions = decide(load_policy(policy), env, stochastic=True)
    assert np.allclose(np.add.reduceat(decisions.choice_probs, env.mdp.row_groups[:-1]), 1.0)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path
