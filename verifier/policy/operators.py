"""Which operators a policy network may use, derived from the installed torch and onnx.

A network may compute on tensors and nothing else. Rather than list the operators that
compute, the accepted sets are read from each library's own registry, and a short deny-list
takes out what acts on the world:

- TorchScript: every operator the installed torch registers under `aten::` (the
  dispatcher's native functions, `torch._C._dispatch_get_all_op_names()`, and the
  TorchScript builtins on numbers, strings, lists and dicts that the interpreter registers
  under `aten::`, `torch._C._jit_get_all_schemas()`), plus the nodes of the TorchScript
  language itself (`TORCHSCRIPT_LANGUAGE`: control flow, constants, attributes, containers,
  tensor properties), minus `TORCHSCRIPT_DENIED`. Every other namespace (`prim::Print`,
  `quantized::`, `profiler::`, custom operator libraries, ...) is refused. Operators torch
  tags `nondeterministic_seeded` draw random numbers: they are accepted only where their
  randomness is switched off (`seeded_operator_is_off`).
- ONNX: every operator of the standard domains ('' = ai.onnx, and ai.onnx.ml) that the
  installed onnx defines (`onnx.defs`), minus the random generators; Dropout only in
  inference mode.

torch and onnx are passed in by the caller, so importing this module stays cheap.
"""

from __future__ import annotations

import functools

# aten:: operators that act on the world or on global state, refused although torch
# registers them as native functions or TorchScript builtins. In-place variants (a trailing
# underscore) are refused with their names.
TORCHSCRIPT_DENIED = frozenset(
    {
        # files
        "aten::from_file",  # maps a file named by the network into a tensor
        "aten::save",  # torch.save from TorchScript: writes a file
        # the terminal
        "aten::_print",  # writes to stdout
        # time, threads, futures and RPC (TorchScript's fork/wait and RRef methods)
        "aten::wait",
        "aten::to_here",
        "aten::local_value",
        "aten::owner",
        "aten::owner_name",
        "aten::is_owner",
        "aten::confirmed_by_owner",
        "aten::dist_backward",
        # the global random state (random numbers themselves are tagged, see below)
        "aten::manual_seed",
        "aten::seed",
        "aten::initial_seed",
        "aten::Generator",
        "aten::_no_grad_normal_",  # torch.nn.init's samplers, registered untagged
        "aten::_no_grad_uniform_",
    }
)


# The TorchScript language's own nodes (they have no operator schema, or are the language's
# builtins on values): control flow, constants and attributes, tuples, lists, dicts and
# objects, exceptions, casts, and the properties of a tensor. Calls (CallFunction,
# CallMethod) and with-statements (Enter, Exit) run functions of the same archive, which
# are checked as well. Absent on purpose: prim::Print, prim::PythonOp, prim::fork,
# prim::rpc_*, prim::awaitable*, prim::TimePoint, prim::profile and the optimizer's fusion
# and guard nodes.
def _names(prefix: str, text: str) -> frozenset[str]:
    return frozenset(prefix + name for name in text.split())


TORCHSCRIPT_LANGUAGE = _names(
    "prim::",
    """
    Constant If Loop Return GetAttr SetAttr CallFunction CallMethod Enter Exit
    TupleConstruct TupleUnpack TupleIndex TupleSlice ListConstruct ListUnpack
    DictConstruct DictIndex CreateObject isinstance RaiseException Uninitialized
    unchecked_cast unchecked_unwrap_optional NumToTensor ImplicitTensorToNum
    EnumName EnumValue StringIndex ModuleContainerIndex rangelist tolist id
    min max abs index device dtype layout data grad requires_grad shape name type
    itemsize nbytes is_cuda is_cpu is_xpu is_xla is_mps is_ipu is_maia is_mtia
    is_meta is_mkldnn is_vulkan is_nested is_quantized is_sparse is_sparse_csr
    """,
)

# Operators whose result depends on the random state are accepted when an argument
# switches the randomness off: a `train`/`training` flag that is False (dropout, rrelu and
# the recurrent layers in eval mode), else a dropout probability that is 0 (attention).
SEEDED_SWITCHES = ("train", "training")
SEEDED_PROBABILITIES = ("dropout_p", "dropout", "p")

ONNX_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
# Standard ONNX operators that draw random numbers.
ONNX_DENIED = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)


def _denied(kind: str) -> bool:
    return kind in TORCHSCRIPT_DENIED or (
        kind.endswith("_") and not kind.endswith("__") and kind[:-1] in TORCHSCRIPT_DENIED
    )


@functools.cache
def torchscript_operators(torch) -> frozenset[str]:
    """Every node kind a TorchScript policy may use, without regard to randomness (the
    seeded operators are in it; `seeded_operator_is_off` decides each use)."""
    native = {name.split(".")[0] for name in torch._C._dispatch_get_all_op_names()}
    builtins = {schema.name for schema in torch._C._jit_get_all_schemas()}
    aten = {name for name in native | builtins if name.startswith("aten::")}
    return frozenset({name for name in aten if not _denied(name)} | TORCHSCRIPT_LANGUAGE)


@functools.cache
def _seeded(torch, kind: str, overload: str) -> bool:
    try:
        tags = torch._C._get_operation_overload(kind, overload)[2]
    except RuntimeError:
        return False
    return torch.Tag.nondeterministic_seeded in tags


@functools.cache
def seeded_kinds(torch, kinds: frozenset[str]) -> frozenset[str]:
    """Those of `kinds` with an overload torch tags `nondeterministic_seeded`."""
    return frozenset(
        kind
        for kind in kinds
        if kind.startswith("aten::")
        and any(
            _seeded(torch, kind, schema.overload_name)
            for schema in torch._C._jit_get_schemas_for_operator(kind)
        )
    )


def _schema(torch, node):
    text = node.schema()
    return None if text == "(no schema)" else torch._C.parse_schema(text)


def is_seeded(torch, node) -> bool:
    """Whether torch tags the node's operator overload `nondeterministic_seeded`."""
    schema = _schema(torch, node) if node.kind().startswith("aten::") else None
    return schema is not None and _seeded(torch, node.kind(), schema.overload_name)


def seeded_operator_is_off(torch, node) -> bool:
    """Whether a seeded node's randomness is switched off by constant arguments: a
    train/training flag that is False, or (without one) a dropout probability of 0."""
    schema = _schema(torch, node)
    if schema is None:
        return False
    values = {arg.name: value for arg, value in zip(schema.arguments, node.inputs(), strict=False)}
    for name in SEEDED_SWITCHES:
        if name in values:
            return _constant(values[name]) is False
    for name in SEEDED_PROBABILITIES:
        if name in values:
            value = _constant(values[name])
            return isinstance(value, float | int) and not isinstance(value, bool) and value == 0
    return False


def _constant(value):
    """The value of a prim::Constant node's output, else None."""
    return value.toIValue() if value.node().kind() == "prim::Constant" else None


@functools.cache
def onnx_operators(onnx) -> frozenset[tuple[str, str]]:
    """(domain, op_type) of every accepted ONNX operator: the standard domains of the
    installed onnx's schemas, the default domain under both of its names."""
    accepted = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ONNX_DOMAINS and schema.name not in ONNX_DENIED:
            accepted.add((schema.domain, schema.name))
            if schema.domain == "":
                accepted.add(("ai.onnx", schema.name))
    return frozenset(accepted)
