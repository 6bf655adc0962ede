"""Policy networks: refused operators and outputs, captured output, timeouts, never code."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.environment import load_environment
from verifier.policy import decide, load_policy

torch = pytest.importorskip("torch")

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _save(tmp_path, net, output: str = "logits"):
    path = tmp_path / "net.pt"
    meta = {"observation": "valuation", "actions": ACTIONS, "output": output}
    torch.jit.save(
        torch.jit.script(net), str(path), _extra_files={"verifier.json": json.dumps(meta)}
    )
    return path


def _policy_exit(tmp_path, capsys, net, output: str = "logits", *flags: str) -> tuple[int, str]:
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    code = main([str(_save(tmp_path, net, output)), "--model", str(model), *flags])
    return code, capsys.readouterr().err


def _module(forward):
    """A TorchScript-able module whose forward is `forward(obs)`."""
    return type(forward.__name__, (torch.nn.Module,), {"forward": forward})()


def bool_out(self, obs):
    return obs[:, :4] > 0


def complex_out(self, obs):
    return torch.complex(obs[:, :4], obs[:, :4])


def zero_probs(self, obs):
    return obs[:, :4] * 0


def wrong_width(self, obs):
    return torch.nn.functional.linear(obs, torch.zeros(4, 5))


def huge_logits(self, obs):
    """float64 logits up +1e308, the others -1e308: their differences overflow to -inf."""
    big = torch.full_like(obs[:, :1].double(), 1e308)
    return torch.cat([big, -big, -big, -big], 1)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("forward", "output", "expected"),
    [
        (bool_out, "logits", "outputs booleans"),
        (complex_out, "logits", "outputs complex numbers"),
        (zero_probs, "probs", "probability 0 everywhere"),
        (wrong_width, "logits", "mat1 and mat2 shapes cannot be multiplied"),
    ],
)
def test_bad_network_outputs_are_refused_with_the_reason(
    tmp_path, capsys, forward, output, expected
):
    code, err = _policy_exit(tmp_path, capsys, _module(forward), output)
    assert code == 2 and err.count("\n") == 1 and expected in err, err


@pytest.mark.torch
def test_overflowing_logits_give_the_limit_distribution_without_warnings(tmp_path):
    """Softmax of (1e308, -1e308, -1e308, -1e308) is (1, 0, 0, 0): every state goes up, into
    the wall of a one-row maze; the subtraction overflows to -inf, whose exp is exactly 0."""
    env = load_environment(_write(tmp_path, "m.toml", maze_text("#S.A#", EXIT)))
    policy = load_policy(_save(tmp_path, _module(huge_logits)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decisions = decide(policy, env, stochastic=True)
    up = env.mdp.choice_actions == env.mdp.actions.index("up")
    assert np.allclose(
        decisions.choice_probs,
        np.where(up, 1.0, 0.0) + (np.diff(env.mdp.row_groups) == 1)[env.mdp.choice_states()] * ~up,
    )
