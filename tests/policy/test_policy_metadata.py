"""Policy metadata and tables that Python's readers fail on in unusual ways (issue 20):
integers over 4,300 digits (a ValueError that is no JSONDecodeError) and ONNX metadata that
is not UTF-8 (onnxruntime's UnicodeDecodeError). One line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from verifier.cli import main

LAVA = str(Path(__file__).resolve().parent.parent.parent / "models" / "lava.toml")
HUGE = "1" * 5000


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify: "), err
    return lines[0]


def test_a_json_table_with_a_5000_digit_integer_is_bad_input(tmp_path, capsys):
    table = {"actions": ["up", "down", "left", "right"], "probs": [[0.25] * 4],
             "valuations": [[12345]]}  # fmt: skip
    path = tmp_path / "p.json"
    path.write_text(json.dumps(table).replace("12345", HUGE))
    assert main([str(path), "--model", LAVA]) == 2
    assert "value has 5000 digits" in one_line(capsys.readouterr().err)


@pytest.mark.torch
def test_verifier_json_with_a_5000_digit_integer_is_bad_input(tmp_path, capsys):
    import torch

    class Uniform(torch.nn.Module):
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return obs.new_zeros(obs.shape[0], 4)

    path = tmp_path / "p.pt"
    meta = '{"actions": ["up", "down", "left", "right"], "x": ' + HUGE + "}"
    torch.jit.save(torch.jit.script(Uniform()), str(path), _extra_files={"verifier.json": meta})
    assert main([str(path), "--model", LAVA]) == 2
    assert "verifier.json: invalid JSON" in one_line(capsys.readouterr().err)


@pytest.mark.onnx
def test_onnx_metadata_that_is_not_utf8_is_bad_input(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("W", TensorProto.FLOAT, [8, 4], np.ones(32, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["out"])],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"verifier.json": "PLACEHOLDER"})
    onnx.checker.check_model(model)
    path = tmp_path / "p.onnx"
    # the same length, so that the protobuf framing stays valid
    path.write_bytes(model.SerializeToString().replace(b"PLACEHOLDER", b"\xff\xfe{}PLACEHO"))
    assert main([str(path), "--model", LAVA]) == 2
    assert "metadata is not UTF-8 text" in one_line(capsys.readouterr().err)
