"""What a policy file may contain before it is run: pure tensor computation, nothing else.

A policy is untrusted input, like a maze. The checks read a file's structure (zip
directory, TorchScript graph, ONNX graph) and refuse, naming the member or operator,
anything that could execute code, touch the file system or the network, or write to the
terminal; `run_contained` then runs the network in a child process that cannot write to
the terminal and is killed at a timeout or on Ctrl-C. torch and onnx are imported by the
caller (verifier.policy.load) and passed in, so this module stays cheap to import.

torch.export (`.pt2`) archives are refused outright: `torch.export.load` unpickles
weights, constants and sample inputs on the archive's say-so (falling back to
`weights_only=False` when the safe load fails), resolves graph targets by attribute lookup
on the torch module (`torch.os.system` resolves), evaluates symbolic shapes with
`sympy.sympify` (Python's eval) and loads AOTInductor shared libraries. No inspection
before loading closes all of these with torch's API.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import select
import signal
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from verifier.errors import InputError, ResourceLimit
from verifier.errors import first_line as _first_line

PT2_REFUSED = (
    "torch.export (.pt2) archives are refused: loading one can run code the file carries "
    "(pickled weights and inputs, graph targets, shape expressions). Export the network as "
    "TorchScript (torch.jit.save(torch.jit.script(net), 'policy.pt', _extra_files="
    "{'verifier.json': ...})) or as ONNX (torch.onnx.export with a dynamic batch axis)"
)


def _names(prefix: str, text: str) -> list[str]:
    return [prefix + name for name in text.split()]


# TorchScript operators a policy's forward may use: tensor arithmetic, the layers of
# torch.nn, shape and list plumbing, control flow. Names are matched without an in-place
# trailing underscore (`relu_` is `relu`). Absent on purpose: save, load, from_file,
# Print, sleep, wait, fork, RPC, profiler, every custom (non-aten/prim) namespace, and the
# operators whose result is random or uninitialised memory (multinomial, rrelu, empty).
TORCHSCRIPT_OPERATORS = frozenset(
    {
        # elementwise arithmetic and functions
        *_names(
            "aten::",
            """
            abs acos acosh add addcdiv addcmul addmm addmv all amax amin any arange argmax
            argmin argsort asin asinh atan atan2 atanh baddbmm batch_norm bitwise_and
            bitwise_not bitwise_or bitwise_xor bmm broadcast_tensors cat ceil celu chunk
            clamp clamp_max clamp_min clip clone complex contiguous conv1d conv2d conv3d
            conv_transpose1d conv_transpose2d conv_transpose3d _convolution copy cos cosh
            cross cumprod cumsum detach diag diagonal dim div dot dropout einsum elu
            embedding eq erf erfc exp exp2 expand expand_as expm1 eye
            feature_dropout fill flatten flip floor floor_divide fmod frac full full_like
            gather ge gelu glu group_norm gt hardshrink hardsigmoid hardswish hardtanh
            index index_select instance_norm is_floating_point is_grad_enabled isfinite
            isinf isnan layer_norm le leaky_relu lerp linear linspace log log10 log1p log2
            log_sigmoid log_softmax logaddexp logical_and logical_not logical_or
            logical_xor logit logsumexp lt masked_fill masked_select matmul max
            max_pool1d max_pool2d max_pool3d maximum mean median min minimum mish mm
            mode movedim mul mv nan_to_num narrow ne neg new_full one_hot
            new_ones new_zeros nonzero norm numel ones ones_like pad permute pow prelu prod
            real imag reciprocal relu relu6 remainder repeat repeat_interleave reshape reshape_as
            round rsqrt rsub scaled_dot_product_attention scatter scatter_add select
            selu sigmoid sign silu sin sinh size slice softmax softplus softshrink sort
            split split_with_sizes sqrt square squeeze stack std sub sum t tan tanh
            tanhshrink tensor threshold to topk transpose tril triu true_divide trunc
            type_as unbind unflatten unsqueeze var view view_as where zeros zeros_like
            avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d
            adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d
            pixel_shuffle upsample_nearest2d upsample_bilinear2d interpolate cosine_similarity
            pairwise_distance cdist lstm gru rnn_tanh rnn_relu lstm_cell gru_cell
            _native_multi_head_attention _transformer_encoder_layer_fwd
            """,
        ),
        # scalars, lists, dicts and strings of the TorchScript language
        *_names(
            "aten::",
            """
            Bool Float Int ScalarImplicit __and__ __contains__ __getitem__ __is__ __isnot__
            __not__ __or__ __range_length __derive_index __xor__ _set_item append
            ceildiv clear dict extend floordiv format insert items keys len list
            pop values warn __round_to_zero_floordiv
            """,
        ),
        *_names(
            "prim::",
            """
            Constant GetAttr If Loop ListConstruct ListUnpack TupleConstruct TupleIndex
            TupleUnpack DictConstruct RaiseException Uninitialized unchecked_cast
            device dtype is_nested requires_grad type layout NumToTensor min max abs
            isinstance shape data is_cuda is_cpu is_mps is_sparse is_quantized
            """,
        ),
    }
)


def check_torchscript_archive(path: Path) -> None:
    """Refuse an archive whose TorchScript code defines `__setstate__`, which
    `torch.jit.load` would run while reading the file, before any graph can be checked."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if "/code/" not in f"/{member}" or not member.endswith(".py"):
                continue
            if b"__setstate__" in archive.read(member):
                raise InputError(
                    str(path),
                    "defines __setstate__, which would run while loading; a policy may only "
                    "compute on tensors",
                    place=member,
                )


def check_torchscript_graph(path: Path, module, torch) -> None:
    """Refuse a module whose forward (with every method and submodule it calls inlined)
    uses an operator outside TORCHSCRIPT_OPERATORS."""
    if not module._c._has_method("forward"):
        raise InputError(str(path), "the TorchScript module has no forward method")
    graph = module._c._get_method("forward").graph.copy()
    torch._C._jit_pass_inline(graph)
    pending = [graph.block()]
    while pending:
        for node in pending.pop().nodes():
            kind = node.kind()
            if kind not in TORCHSCRIPT_OPERATORS and kind.rstrip("_") not in TORCHSCRIPT_OPERATORS:
                raise InputError(
                    str(path),
                    f"forward uses the operator {kind}, which is not a pure tensor operator "
                    "(policies may not print, sleep, read or write files, or call out)",
                )
            pending.extend(node.blocks())


ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


def check_onnx(path: Path, onnx) -> None:
    """Refuse an ONNX model that uses operators outside the standard domains or keeps
    tensor data outside its own directory."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(str(path), f"not a readable ONNX model ({_first_line(exc)})") from None
    local = {(f.domain, f.name): f for f in model.functions}
    graphs = [model.graph, *(f for f in model.functions)]
    while graphs:
        graph = graphs.pop()
        for tensor in getattr(graph, "initializer", ()):
            _check_external(path, tensor, onnx)
        for node in graph.node:
            if node.domain not in ONNX_DOMAINS and (node.domain, node.op_type) not in local:
                raise InputError(
                    str(path),
                    f"node {node.name or node.op_type!r} uses the operator domain "
                    f"{node.domain!r}; only the standard ONNX domains are run",
                )
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    _check_external(path, attribute.t, onnx)
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)


def _check_external(path: Path, tensor, onnx) -> None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    normal = posixpath.normpath(location.replace("\\", "/"))
    if not location or posixpath.isabs(normal) or normal.split("/")[0] == ".." or ":" in normal:
        raise InputError(
            str(path),
            f"tensor {tensor.name!r} keeps its data at {location!r}, outside the model's directory",
        )
    target = (path.parent / normal).resolve()
    if not target.is_relative_to(path.parent.resolve()):
        raise InputError(
            str(path),
            f"tensor {tensor.name!r} keeps its data at {location!r}, which leads outside the "
            "model's directory",
        )


def run_contained(
    compute: Callable[[Callable[[], None]], np.ndarray],
    batches: int,
    timeout: float | None = None,
    progress=None,
    prepare: Callable[[], None] | None = None,
) -> np.ndarray:
    """`compute(tick)` in a forked child whose stdout and stderr go nowhere, so a policy can
    neither forge report lines nor hang the verifier: past `timeout` seconds the child is
    killed (ResourceLimit), and Ctrl-C kills it at once. `compute` calls `tick()` after each
    of its `batches`, which advances `progress`; `prepare` runs first in the child. An
    InputError raised by `compute` reaches the caller as it was raised."""
    if not hasattr(os, "fork"):
        return compute(lambda: None)
    fd, result = tempfile.mkstemp(prefix="verify-policy-", suffix=".npy")
    os.close(fd)
    failure = f"{result}.json"
    ticks, done = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(compute, prepare, done, result, failure)
    os.close(done)
    try:
        _wait(pid, ticks, batches, timeout, progress)
        _, status = os.waitpid(pid, 0)
        pid = 0
        if os.path.exists(failure):
            error = json.loads(Path(failure).read_text(encoding="utf-8"))
            if "source" in error:
                raise InputError(error["source"], error["message"], error["place"])
            raise RuntimeError(f"running the policy failed: {error['message']}")
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            cause = (
                f"signal {signal.Signals(os.WTERMSIG(status)).name}"
                if os.WIFSIGNALED(status)
                else f"exit status {os.WEXITSTATUS(status)}"
            )
            raise RuntimeError(f"the process running the policy died ({cause})")
        return np.load(result, allow_pickle=False)
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(ticks)
        for path in (result, failure):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _child(compute, prepare, done: int, result: str, failure: str) -> None:
    """The forked side of run_contained: never returns."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the child exits)
        if prepare is not None:
            prepare()
        outputs = compute(lambda: os.write(done, b"."))
        np.save(result, np.asarray(outputs), allow_pickle=False)
    except InputError as exc:
        error = {"source": exc.source, "message": exc.message, "place": exc.place}
        Path(failure).write_text(json.dumps(error), encoding="utf-8")
    except BaseException as exc:  # relayed to the parent, which raises it
        message = " ".join(str(exc).split()) or type(exc).__name__
        Path(failure).write_text(json.dumps({"message": message}), encoding="utf-8")
        code = 1
    finally:
        os._exit(code)


def _wait(pid: int, ticks: int, batches: int, timeout: float | None, progress) -> None:
    """Read the child's ticks until it closes the pipe, or raise ResourceLimit at timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = iter(progress(range(batches))) if progress else None
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([ticks], [], [], remaining)
        if not ready:
            raise ResourceLimit(
                f"the policy did not finish within --timeout {timeout:g} s (stopped)"
            )
        data = os.read(ticks, 4096)
        if not data:
            break
        if bar is not None:
            for _ in range(len(data)):
                next(bar, None)
    if bar is not None:
        for _ in bar:
            pass
