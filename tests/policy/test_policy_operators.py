"""The accepted operators are derived from torch's registry and onnx.defs: every ordinary
network is accepted and runs, and what acts on the world or draws random numbers is not.

The corpus (tests/network_corpus.py: the layers of torch.nn, every torch.nn activation and
common tensor operators) is saved scripted and traced; every file is checked and run in one
contained child on the states of a small maze, and its outputs must be the module's own.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import maze_text

from verifier.cli import main
from verifier.inputs.load import load_environment
from verifier.policy.decide import decide
from verifier.policy.load import OPENERS, load_policy
from verifier.policy.operators import (
    ONNX_DENIED,
    TORCHSCRIPT_DENIED,
    onnx_operators,
    torchscript_operators,
)
from verifier.policy.safety import MEMORY_MB, run_contained

torch = pytest.importorskip("torch")

EXIT = '[cells.A]\nkind = "exit"\ncolor = "blue"\n'
ACTIONS = ["up", "down", "left", "right"]
META = {"observation": "valuation", "actions": ACTIONS, "output": "logits"}
OPEN = """
#####
#S..#
#...#
#..A#
#####
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[tuple[str, Path, np.ndarray]]]:
    """Every corpus network saved scripted and traced, with its outputs on the maze's
    valuations computed here by the module itself."""
    from network_corpus import CORPUS, build

    from verifier.policy.observation import valuation_observations

    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("corpus")
    model = directory / "open.toml"
    model.write_text(maze_text(OPEN, EXIT))
    env = load_environment(model)
    observations = valuation_observations(env.mdp, np.arange(env.mdp.n_states))
    example = torch.from_numpy(observations)
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecations of torch.jit, tracer warnings
        for name in CORPUS:
            net = build(name)
            with torch.no_grad():
                expected = net(example).numpy()
            for how in ("scripted", "traced"):
                saved = (
                    torch.jit.script(net)
                    if how == "scripted"
                    else torch.jit.trace(net, example, check_trace=False)
                )
                path = directory / f"{name}-{how}.pt"
                torch.jit.save(saved, str(path), _extra_files={"verifier.json": json.dumps(META)})
                files.append((f"{name} ({how})", path, expected))
    return model, files


def test_the_corpus_covers_the_layers_activations_and_operators_asked_for(corpus):
    from network_corpus import CORPUS, build

    _, files = corpus
    assert len(CORPUS) >= 40 and len(files) == 2 * len(CORPUS)
    layers = {
        "linear", "conv1d", "conv2d", "conv3d", "max_pool2d", "avg_pool2d", "batch_norm1d",
        "batch_norm2d", "layer_norm", "group_norm", "embedding", "embedding_bag", "gru",
        "lstm", "rnn", "gru_cell", "lstm_cell", "rnn_cell", "multihead_attention",
        "transformer_encoder", "flatten_unflatten", "dropout",
    }  # fmt: skip
    operators = {
        f"op_{op}"
        for op in (
            "one_hot", "bucketize", "searchsorted", "scatter", "scatter_reduce", "index_put",
            "gather", "where", "masked_fill", "normalize", "einsum", "topk", "sort", "cumsum",
            "argmax",
        )
    }  # fmt: skip
    assert layers | operators <= set(CORPUS)
    activations = {
        type(module).__name__
        for name in CORPUS
        if name.startswith(("activations", "glu", "softmax2d"))
        for module in build(name).modules()
    }
    every = {
        name
        for name in dir(torch.nn.modules.activation)
        if isinstance(getattr(torch.nn.modules.activation, name), type)
        and issubclass(getattr(torch.nn.modules.activation, name), torch.nn.Module)
        and name not in ("Module", "MultiheadAttention", "NonDynamicallyQuantizableLinear")
    }
    assert every <= activations, every - activations


def test_every_corpus_network_is_accepted_and_computes_what_the_module_computes(corpus):
    """All files checked and run in one contained child (as `verify` loads each one)."""
    model, files = corpus
    env = load_environment(model)
    from verifier.policy.observation import valuation_observations

    observations = valuation_observations(env.mdp, np.arange(env.mdp.n_states))

    def compute(tick):
        outputs = {}
        for label, path, _ in files:
            run = OPENERS["torchscript"](path, path.read_bytes(), MEMORY_MB, True).run
            outputs[label] = np.asarray(run(observations), dtype=np.float64)
            tick()
        return {}, outputs

    _, outputs = run_contained(compute, "corpus", "running", len(files), timeout=600)
    for label, _, expected in files:
        np.testing.assert_allclose(outputs[label], expected, rtol=1e-5, atol=1e-6, err_msg=label)


@pytest.mark.parametrize(
    "label",
    [
        "op_one_hot (scripted)",
        "gru_cell (traced)",
        "op_bucketize (scripted)",
        "op_scatter_reduce (scripted)",
        "op_normalize (traced)",
    ],
)
def test_the_operators_refused_last_month_verify_through_the_command_line(corpus, capsys, label):
    """F.one_hot, nn.GRUCell (traced: aten::unsafe_chunk), torch.bucketize, scatter_reduce
    and F.normalize (traced: aten::linalg_vector_norm) were refused by the hand-written list.
    `verify` gives a verdict; through load_policy + decide each state's action is the
    module's argmax."""
    model, files = corpus
    path, expected = next((p, e) for name, p, e in files if name == label)
    assert main([str(path), "--model", str(model)]) in (0, 1)
    assert capsys.readouterr().err == ""
    env = load_environment(model)
    decisions = decide(load_policy(path), env)
    taken = decisions.choice_probs == 1.0
    states = env.mdp.choice_states()[taken]
    several = np.diff(env.mdp.row_groups)[states] > 1
    chosen = [ACTIONS.index(env.mdp.actions[a]) for a in env.mdp.choice_actions[taken][several]]
    np.testing.assert_array_equal(chosen, expected[states[several]].argmax(axis=1))


def test_the_accepted_torchscript_operators_are_torchs_registry_minus_the_deny_list():
    accepted = torchscript_operators(torch)
    aten = {name for name in accepted if name.startswith("aten::")}
    print(f"accepted TorchScript operators: {len(accepted)} ({len(aten)} aten::)")
    assert len(aten) > 1500
    natives = {n.split(".")[0] for n in torch._C._dispatch_get_all_op_names()}
    assert {n for n in natives if n.startswith("aten::")} - TORCHSCRIPT_DENIED - {
        n for n in natives if n[:-1] in TORCHSCRIPT_DENIED
    } <= accepted
    leaked = sorted(
        name
        for name in accepted
        if name in TORCHSCRIPT_DENIED or (name.endswith("_") and name[:-1] in TORCHSCRIPT_DENIED)
    )
    assert not leaked, f"deny-listed operators accepted: {leaked}"
    refused = (
        "prim::Print", "prim::PythonOp", "prim::fork", "prim::rpc_async", "prim::TimePoint",
        "quantized::linear", "profiler::_record_function_enter", "aten::from_file",
        "aten::save", "aten::_print", "aten::wait", "aten::manual_seed",
    )  # fmt: skip
    assert not set(refused) & accepted
    ordinary = (
        "aten::unsafe_chunk", "aten::bucketize", "aten::linalg_vector_norm",
        "aten::scatter_reduce", "aten::one_hot", "prim::If", "prim::Loop", "aten::len",
    )  # fmt: skip
    assert set(ordinary) <= accepted


def test_the_accepted_onnx_operators_are_the_standard_domains_of_onnx_defs():
    onnx = pytest.importorskip("onnx")
    accepted = onnx_operators(onnx)
    standard = {
        (s.domain, s.name)
        for s in onnx.defs.get_all_schemas_with_history()
        if s.domain in ("", "ai.onnx.ml") and s.name not in ONNX_DENIED
    }
    print(f"accepted ONNX operators: {len(standard)}")
    assert standard <= accepted and len(standard) > 200
    assert {d for d, _ in accepted} == {"", "ai.onnx", "ai.onnx.ml"}
    assert not {n for _, n in accepted} & ONNX_DENIED


class _Random(torch.nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.how = how

    def forward(self, obs):
        x = obs[:, :4]
        if self.how == "rand":
            return x + torch.rand(x.shape)
        if self.how == "normal":
            return torch.normal(x, 1.0)
        if self.how == "bernoulli":
            return torch.bernoulli(torch.sigmoid(x))
        if self.how == "multinomial":
            return torch.multinomial(torch.softmax(x, 1), 4).to(x.dtype)
        if self.how == "randperm":
            return x[:, torch.randperm(4)]
        return torch.nn.functional.dropout(x, 0.5, True)  # dropout forced into training mode


@pytest.mark.parametrize(
    "how", ["rand", "normal", "bernoulli", "multinomial", "randperm", "dropout in training"]
)
def test_random_operators_are_refused(tmp_path, capsys, how):
    path = tmp_path / "random.pt"
    torch.jit.save(
        torch.jit.script(_Random(how)), str(path), _extra_files={"verifier.json": json.dumps(META)}
    )
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    assert main([str(path), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "draws random numbers" in err and err.count("\n") == 1, err


class _TrainingDropout(torch.nn.Module):
    """Saved in training mode: verify runs it in eval mode, where dropout is the identity."""

    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.9)

    def forward(self, obs):
        return self.drop(obs[:, :4])


def test_a_network_saved_in_training_mode_runs_in_eval_mode(tmp_path):
    """Logits (row, col, key_red, key_green) = (0, c, 0, 0): the argmax is `down` in every
    state of `#S.A#`, exactly, as dropout is off (with p=0.9 it would zero most of them)."""
    net = _TrainingDropout().train()
    path = tmp_path / "train.pt"
    torch.jit.save(
        torch.jit.script(net), str(path), _extra_files={"verifier.json": json.dumps(META)}
    )
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    env = load_environment(model)
    decisions = decide(load_policy(path), env)
    chosen = env.mdp.choice_actions[decisions.choice_probs == 1.0]
    states = env.mdp.choice_states()[decisions.choice_probs == 1.0]
    several = np.diff(env.mdp.row_groups)[states] > 1
    assert {env.mdp.actions[a] for a in chosen[several]} == {"down"}


def _onnx_with(tmp_path, nodes, constants=()):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        list(constants),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = "verifier.json", json.dumps(META)
    path = tmp_path / "net.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.onnx
@pytest.mark.parametrize("case", ["RandomUniformLike", "Dropout in training mode"])
def test_random_onnx_operators_are_refused(tmp_path, capsys, case):
    from onnx import helper, numpy_helper

    starts = numpy_helper.from_array(np.array([0], dtype=np.int64), "s")
    ends = numpy_helper.from_array(np.array([4], dtype=np.int64), "e")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "a")
    slice_ = helper.make_node("Slice", ["obs", "s", "e", "a"], ["head"])
    if case == "RandomUniformLike":
        nodes = [slice_, helper.make_node("RandomUniformLike", ["head"], ["logits"])]
        constants = [starts, ends, axes]
    else:
        mode = numpy_helper.from_array(np.array(True), "training")
        ratio = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ratio")
        nodes = [slice_, helper.make_node("Dropout", ["head", "ratio", "training"], ["logits"])]
        constants = [starts, ends, axes, mode, ratio]
    model = tmp_path / "m.toml"
    model.write_text(maze_text("#S.A#", EXIT))
    assert main([str(_onnx_with(tmp_path, nodes, constants)), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert case.split()[0] in err and err.count("\n") == 1, err
