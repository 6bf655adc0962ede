"""Policy networks: refused operators and outputs, captured output, timeouts, never code."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import interruptible, maze_text

from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.load import load_policy

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
        (wrong_width, "logits", "it expects 5 inputs; this model gives 8 inputs"),
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


def _marker_module(target: str, kind: str):
    """A module whose forward would create `target` (or print) if it were ever run."""

    class Saves(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.target = target

        def forward(self, obs):
            torch.save(obs, self.target)
            return obs[:, :4]

    class Prints(torch.nn.Module):
        def forward(self, obs):
            print("ALIGNED  forged report line")
            return obs[:, :4]

    class Reads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.target = target

        def forward(self, obs):
            return torch.from_file(self.target, size=4).expand(obs.shape[0], 4)

    return {"save": Saves, "print": Prints, "from_file": Reads}[kind]()


@pytest.mark.parametrize(
    ("kind", "operator"),
    [("save", "aten::save"), ("print", "prim::Print"), ("from_file", "aten::from_file")],
)
def test_torchscript_with_an_impure_operator_is_refused_before_it_runs(
    tmp_path, capfd, kind, operator
):
    target = tmp_path / "marker"
    code, err = _policy_exit(tmp_path, capfd, _marker_module(str(target), kind))
    out = capfd.readouterr().out
    assert code == 2 and operator in err and err.count("\n") == 1, err
    assert "forged" not in out
    assert not target.exists()


class _SetsState(torch.nn.Module):
    """`__setstate__` runs inside torch.jit.load, before any graph could be inspected."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, obs):
        return obs[:, :4]

    @torch.jit.export
    def __getstate__(self):
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.target = state[0]
        self.training = state[1]
        torch.save(torch.zeros(1), self.target)


def test_torchscript_setstate_is_refused_without_loading(tmp_path, capfd):
    target = tmp_path / "marker"
    path = _save(tmp_path, _SetsState(str(target)))
    assert not target.exists()
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    assert main([str(path), "--model", str(model)]) == 2
    err = capfd.readouterr().err
    assert "__setstate__" in err and "code/" in err, err
    assert not target.exists()


class _Warns(torch.nn.Module):
    """warnings.warn is an allowed operator (torch.nn uses it); its text must stay hidden."""

    def forward(self, obs):
        warnings.warn("ALIGNED  forged report line", stacklevel=1)
        return obs[:, :4]


def test_a_policy_cannot_write_to_stdout_or_stderr(tmp_path, capfd):
    code, _ = _policy_exit(tmp_path, capfd, _Warns())
    assert code in (0, 1)
    captured = capfd.readouterr()
    assert "forged" not in captured.out + captured.err


class _Spins(torch.nn.Module):
    """A forward that never returns: a TorchScript loop the interpreter never leaves."""

    def forward(self, obs):
        x = obs
        for _ in range(4611686018427387904):
            x = x + 1.0
        return x[:, :4]


def test_policy_past_its_timeout_is_stopped_with_exit_3(tmp_path, capfd):
    import time

    start = time.monotonic()
    code, err = _policy_exit(tmp_path, capfd, _Spins(), "logits", "--timeout", "1")
    assert code == 3 and "--timeout 1 s" in err and err.count("\n") == 1, err
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_nonpositive_timeout_is_refused(tmp_path, capfd, value):
    code, err = _policy_exit(tmp_path, capfd, _Warns(), "logits", "--timeout", value)
    assert code == 2 and "--timeout" in err, err


def test_ctrl_c_stops_a_policy_that_never_returns(tmp_path):
    """SIGINT while the network spins in the interpreter: exit 3, one line, promptly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    policy = _save(tmp_path, _Spins())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "verifier.cli", str(policy), "--model", str(model)]
    process = subprocess.Popen(
        [*command, "--timeout", "120"],  # should the signal be lost: no process left spinning
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=interruptible,
    )
    try:
        time.sleep(8)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = process.communicate(timeout=30)
        assert time.monotonic() - sent < 10
    finally:
        process.kill()
    assert process.returncode == 3 and "interrupted" in err and err.count("\n") == 1, err


def _exported(tmp_path) -> Path:
    net = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(net, (torch.zeros(2, 8),), dynamic_shapes=({0: batch},))
    path = tmp_path / "net.pt2"
    meta = {"observation": "valuation", "actions": ACTIONS, "output": "logits"}
    torch.export.save(program, str(path), extra_files={"verifier.json": json.dumps(meta)})
    return path


class _Payload:
    """Unpickling this creates a file: the proof that a loader ran code from the file."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_torch_export_archive_with_a_pickled_weight_is_refused_and_nothing_runs(tmp_path, capfd):
    """The archive's weight config asks for `use_pickle`: torch.export.load would run
    torch.load(weights_only=False) on the payload. The verifier refuses .pt2 unread."""
    import pickle
    import zipfile

    target = tmp_path / "marker"
    clean = _exported(tmp_path)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(clean) as src:
        name = next(n for n in src.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(src.read(name))
        for entry in config["config"].values():
            entry["use_pickle"] = True
        pickled = {f"{name.rsplit('/', 1)[0]}/{e['path_name']}" for e in config["config"].values()}
        with zipfile.ZipFile(evil, "w") as dst:
            for item in src.infolist():
                if item.filename == name:
                    dst.writestr(item, json.dumps(config))
                elif item.filename in pickled:
                    dst.writestr(item, pickle.dumps(_Payload(target)))
                else:
                    dst.writestr(item, src.read(item))
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    for path in (clean, evil):
        assert main([str(path), "--model", str(model)]) == 2
        err = capfd.readouterr().err
        assert "TorchScript" in err and "ONNX" in err and err.count("\n") == 1, err
    assert not target.exists()


def test_npz_with_an_object_array_is_refused_and_nothing_runs(tmp_path, capfd):
    import numpy as np

    target = tmp_path / "marker"
    path = tmp_path / "p.npz"
    np.savez(path, probs=np.array([_Payload(target)], dtype=object), actions=np.array(ACTIONS))
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    assert main([str(path), "--model", str(model)]) == 2
    assert "not a readable .npz policy" in capfd.readouterr().err
    assert not target.exists()


def _onnx_model(tmp_path, domain: str = "", external: str | None = None) -> Path:
    """obs [batch, 8] -> obs[:, :4] @ W (4x4 identity), W inline or as external data."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", external
    nodes = [
        helper.make_node("Slice", ["obs", "zero", "four", "one"], ["head"]),
        helper.make_node("MatMul", ["head", "W"], ["logits"], domain=domain),
    ]
    constants = [
        numpy_helper.from_array(np.array([v], dtype=np.int64), name)
        for name, v in (("zero", 0), ("four", 4), ("one", 1))
    ]
    graph = helper.make_graph(
        nodes,
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [weight, *constants],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    entry = model.metadata_props.add()
    meta = {"observation": "valuation", "actions": ACTIONS, "output": "logits"}
    entry.key, entry.value = "verifier.json", json.dumps(meta)
    path = tmp_path / "net.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.onnx
def test_standard_onnx_model_runs(tmp_path, capfd):
    """The control: logits = the first 4 valuation entries (row 0, col, no keys), so the
    argmax is `down` (the column) in `#S.A#`, into the wall: a capability failure, exit 1."""
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    assert main([str(_onnx_model(tmp_path)), "--model", str(model)]) == 1


@pytest.mark.onnx
@pytest.mark.parametrize(
    ("domain", "external", "expected"),
    [
        ("com.example.evil", None, "operator domain 'com.example.evil'"),
        ("", "/etc/passwd", "outside the model's directory"),
        ("", "../secret.bin", "outside the model's directory"),
        ("", "sub/../../secret.bin", "outside the model's directory"),
    ],
)
def test_onnx_custom_domains_and_external_data_outside_are_refused(
    tmp_path, capfd, domain, external, expected
):
    model = _write(tmp_path, "m.toml", maze_text("#S.A#", EXIT))
    path = _onnx_model(tmp_path, domain, external)
    assert main([str(path), "--model", str(model)]) == 2
    err = capfd.readouterr().err
    assert expected in err and err.count("\n") == 1, err
