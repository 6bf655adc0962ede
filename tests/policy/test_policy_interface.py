"""The policy interface as the README documents it: its example runs, `verify states` lists
the state order, tables must say which state each row is for, batches fit in memory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.policy.decide import BATCH_BYTES, batch_states
from verifier.policy.load import load_policy

ROOT = Path(__file__).resolve().parents[2]
EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: torchscript policy -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its TorchScript example"
    return match.group(1)


@pytest.mark.torch
def test_readme_torchscript_example_runs_and_is_verified(tmp_path, capsys):
    """The example prefers right, then down. In `#S..A#` right reaches the exit surely
    (P = 1 = the optimum): aligned. In a maze whose exit is below the start, right walks
    into the wall for ever (P = 0): a capability failure."""
    code = _readme_example()
    assert len(code.strip().splitlines()) <= 16
    script = _write(tmp_path, "go_right.py", code)
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True, timeout=120)
    policy = tmp_path / "go-right.pt"
    flat = _write(tmp_path, "flat.toml", maze_text("#S..A#", EXIT))
    assert main([str(policy), "--model", str(flat)]) == 0
    down = _write(tmp_path, "down.toml", maze_text("###\n#S#\n#A#\n###", EXIT))
    assert main([str(policy), "--model", str(down)]) == 1
    assert "CAPABILITY_FAILURE" in capsys.readouterr().out


def test_states_lists_index_valuation_and_labels(tmp_path, capsys):
    """`#S.A#`: 3 states (0,1) start, (0,2) floor, (0,3) the blue exit, in the model's order."""
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    out = tmp_path / "states.json"
    assert main(["states", str(model), "--json", str(out)]) == 0
    listing = json.loads(out.read_text())
    env = load_environment(model)
    assert listing["variables"] == list(env.mdp.variables)
    assert [s["index"] for s in listing["states"]] == [0, 1, 2]
    assert [s["valuation"] for s in listing["states"]] == env.mdp.valuations.tolist()
    by_col = {s["valuation"][1]: set(s["labels"]) for s in listing["states"]}
    assert "start" in by_col[1] and {"exit", "blue", "exit_blue", "terminal"} <= by_col[3]
    capsys.readouterr()
    assert main(["states", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("index  row col key_red") and len(lines) == 4


def test_table_keyed_by_listed_valuations_in_any_order_is_verified(tmp_path):
    """Rows from `verify states --json`, reversed: `right` everywhere reaches the exit."""
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    listing = tmp_path / "states.json"
    main(["states", str(model), "--json", str(listing)])
    states = json.loads(listing.read_text())["states"][::-1]
    rows = [[0, 0, 0, 1] if s["valuation"][1] < 3 else [1, 0, 0, 0] for s in states]
    table = {"actions": ACTIONS, "valuations": [s["valuation"] for s in states], "probs": rows}
    policy = _write(tmp_path, "p.json", json.dumps(table))
    assert main([str(policy), "--model", str(model)]) == 0


def test_index_keyed_table_is_refused_unless_every_row_is_the_same(tmp_path, capsys):
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    varying = {"actions": ACTIONS, "probs": [[0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]}
    policy = _write(tmp_path, "p.json", json.dumps(varying))
    assert main([str(policy), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "valuations" in err and "verify states" in err and err.count("\n") == 1, err
    same = _write(tmp_path, "q.json", json.dumps({"actions": ACTIONS, "probs": [[0, 0, 0, 1]] * 3}))
    assert main([str(same), "--model", str(model)]) == 0


@pytest.mark.torch
def test_grid_batches_of_a_301x301_maze_fit_in_the_byte_budget(tmp_path):
    """One grid observation of a 301x301 maze is 19 * 301 * 301 * 4 = 6,885,676 bytes; 64 MiB
    holds 9 of them (before: 4096, 26.3 GiB). A valuation observation is 8 * 4 = 32 bytes:
    the full 4096."""
    from verifier.inputs.maze_generate import maze_to_toml, random_maze

    model = _write(tmp_path, "big.toml", maze_to_toml(random_maze(301, 301, 0)))
    env = load_environment(model)
    grid = load_policy(ROOT / "models" / "redblue" / "policy.pt")
    assert grid.observation == "grid"
    assert batch_states(grid, env) == 9 == BATCH_BYTES // (19 * 301 * 301 * 4)
    table = _write(tmp_path, "p.json", json.dumps({"actions": ACTIONS, "probs": [[1, 0, 0, 0]]}))
    assert batch_states(load_policy(table), env) == 4096


class _AgentColumn:
    """Source of a grid policy that reads only the agent plane (cheap on any maze size)."""

    SOURCE = """
import json, sys
import torch

class AgentColumn(torch.nn.Module):
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        agent = obs[:, 1]
        col = (agent.sum(1) * torch.arange(agent.shape[2], dtype=obs.dtype)).sum(1)
        return torch.stack([col * 0, col * 0, col * 0, col * 0 + 1], 1)

meta = {"observation": "grid", "actions": ["up", "down", "left", "right"], "output": "logits"}
extra = {"verifier.json": json.dumps(meta)}
torch.jit.save(torch.jit.script(AgentColumn()), sys.argv[1], _extra_files=extra)
"""


@pytest.mark.slow
@pytest.mark.torch
def test_grid_policy_runs_on_a_301x301_maze_within_a_memory_bound(tmp_path):
    """A 301x301 map whose open part is a 69x69 block (4761 states, more than one batch of
    4096): the run's peak resident memory stays under 2 GiB (before: "Unable to allocate
    26.3 GiB")."""
    import resource

    rows = ["#" * 301]
    rows += ["#S" + "." * 68 + "#" * 231] + ["#" + "." * 69 + "#" * 231] * 67
    rows += ["#" + "." * 68 + "A" + "#" * 231] + ["#" * 301] * (301 - 70)
    model = _write(tmp_path, "big.toml", maze_text("\n".join(rows), EXIT))
    policy = tmp_path / "agent.pt"
    script = _write(tmp_path, "agent_column.py", _AgentColumn.SOURCE)
    subprocess.run([sys.executable, str(script), str(policy)], check=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "verifier.cli", str(policy), "--model", str(model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode in (0, 1), done.stderr
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kib < 2 * 2**20, peak_kib
    assert np.isfinite(peak_kib)


def _errors(capsys) -> list[str]:
    """The error lines of a command (notes left out)."""
    return [line for line in capsys.readouterr().err.splitlines() if "note:" not in line]


@pytest.mark.parametrize("flag", [False, True], ids=["metadata", "--actions"])
def test_action_names_the_model_lacks_are_refused_listing_the_model_s(tmp_path, capsys, flag):
    """A typo in an action name ("rigth") is exit 2 before any verdict, whether the file or
    --actions names it (before: CAPABILITY_FAILURE, "4 states asked for a disabled
    action")."""
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    names = ["up", "down", "left", "rigth"]
    table = {"probs": [[0, 0, 0, 1]] * 3, **({} if flag else {"actions": names})}
    policy = _write(tmp_path, "p.json", json.dumps(table))
    extra = ["--actions", ",".join(names)] if flag else []
    assert main([str(policy), "--model", str(model), *extra]) == 2
    assert _errors(capsys) == [
        f"verify: {policy}: names actions the model does not have: 'rigth'; the model's "
        "actions: up, down, left, right"
    ]


def test_action_names_of_a_gymnasium_model_are_the_environment_s(tmp_path, capsys):
    """FrozenLake's actions are left, down, right, up: `north` is exit 2 listing them. A
    MiniGrid level restricted to three actions still has the others: a policy naming
    `pickup` there is verified (its choice of pickup is replaced by an enabled action)."""
    policy = _write(
        tmp_path, "p.json", json.dumps({"actions": ["north", "down"], "probs": [[1, 0]]})
    )
    assert main([str(policy), "--model", "gym:FrozenLake-v1"]) == 2
    assert _errors(capsys) == [
        f"verify: {policy}: names actions the model does not have: 'north'; the model's "
        "actions: left, down, right, up"
    ]
    pytest.importorskip("minigrid")
    level = "models/minigrid/distshift1.toml"
    names = ["left", "right", "forward", "pickup"]
    rows = [[0, 0, 1, 2]] * load_environment(level).mdp.n_states
    table = _write(tmp_path, "q.json", json.dumps({"actions": names, "probs": rows}))
    assert main([str(table), "--model", level]) in (0, 1)


class _Linear147:
    """Source of a TorchScript network on 147 inputs (as floats) whose metadata does not
    say so."""

    SOURCE = """
import json, sys
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(147, 3)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(obs.float())


meta = {"observation": "env", "actions": ["left", "right", "forward"], "output": "logits"}
net = torch.jit.script(Net())
torch.jit.save(net, sys.argv[1], _extra_files={"verifier.json": json.dumps(meta)})
"""


FLAT = [
    "minigrid.wrappers.FullyObsWrapper",
    "minigrid.wrappers.ImgObsWrapper",
    "gymnasium.wrappers.FlattenObservation",
]


def _gym_toml(tmp_path, name: str, env_id: str, wrappers: list[str]) -> Path:
    listed = ", ".join(f'"{w}"' for w in wrappers)
    return _write(
        tmp_path, name, f'[gymnasium]\nid = "{env_id}"\nseed = 0\nwrappers = [{listed}]\n'
    )


@pytest.mark.torch
def test_a_network_failing_on_the_observation_names_both_shapes(tmp_path, capsys):
    """A network on 147 inputs without interface metadata: on the full 5x5 grid, flattened
    (75 inputs), and on MiniGrid's dict observation, one line names what it expects and what
    the model gives (before: torch's "mat1 and mat2 shapes cannot be multiplied (20x75 and
    147x64)" and "Expected a value of type 'Tensor' ... found type 'dict'")."""
    pytest.importorskip("minigrid")
    policy = tmp_path / "net.pt"
    script = _write(tmp_path, "net.py", _Linear147.SOURCE)
    subprocess.run([sys.executable, str(script), str(policy)], check=True)
    flat = _gym_toml(tmp_path, "flat.toml", "MiniGrid-Empty-5x5-v0", FLAT)
    assert main([str(policy), "--model", str(flat)]) == 2
    assert main([str(policy), "--model", "gym:MiniGrid-Empty-5x5-v0"]) == 2
    assert _errors(capsys) == [
        f"verify: {policy}: the network does not take this model's observation: it expects 147 "
        "inputs; this model gives 75 inputs (FullyObsWrapper, ImgObsWrapper, FlattenObservation)",
        f"verify: {policy}: the network does not take this model's observation: it expects an "
        "array observation; this model gives a dict observation (image 7x7x3, direction)",
    ]


@pytest.mark.onnx
def test_an_onnx_network_failing_on_the_observation_names_both_shapes(tmp_path, capsys):
    """The same for ONNX Runtime's "Got invalid dimensions ... Got: 8 Expected: 5"."""
    import onnx
    import torch

    path = tmp_path / "net.onnx"
    torch.onnx.export(
        torch.nn.Linear(5, 4),
        (torch.zeros(2, 5),),
        str(path),
        input_names=["obs"],
        output_names=["logits"],
        dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    proto = onnx.load(str(path))
    proto.metadata_props.add(key="verifier.json", value=json.dumps({"actions": ACTIONS}))
    onnx.save(proto, str(path))
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    assert main([str(path), "--model", str(model)]) == 2
    assert _errors(capsys) == [
        f"verify: {path}: the network does not take this model's observation: it expects 5 "
        "inputs; this model gives 8 inputs"
    ]


@pytest.mark.torch
@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"wrappers": ["\x1b[2KImgObsWrapper"]}, "wrappers must be a list of class names"),
        (
            {"observation_shape": {"\nimage": [3]}, "observation_dtype": {"\nimage": "uint8"}},
            "observation_shape keys must be plain names",
        ),
        ({"observation_shape": [3], "observation_dtype": "nonsense"}, "is not a dtype"),
        ({"observation_shape": [3]}, "give observation_shape and observation_dtype together"),
        ({"action_count": 0}, "action_count must be a positive integer"),
    ],
)
def test_malformed_interface_metadata_is_refused_in_one_line(tmp_path, capsys, meta, problem):
    """Interface metadata that is malformed, or whose text carries control characters, is
    exit 2 in one line that does not echo them."""
    import torch

    class Right(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return obs[:, :4] * 0

    policy = tmp_path / "p.pt"
    extra = {"verifier.json": json.dumps({"actions": ACTIONS, **meta})}
    torch.jit.save(torch.jit.script(Right()), str(policy), _extra_files=extra)
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    assert main([str(policy), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and problem in err and "\x1b" not in err, err
