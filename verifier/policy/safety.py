"""What a policy file may contain, and the contained child process that reads and runs it.

A policy is untrusted input, like a maze. The verify process never parses one: every load,
inspection and run happens in a forked child (`run_contained`) whose stdout and stderr go
nowhere, that is killed at `--timeout` or on Ctrl-C, whose address space is capped at
`--memory` megabytes beyond what it inherits, that dies with its parent, and whose crash is
reported as bad input. Inside it, the checks read a file's structure (zip directory,
TorchScript functions, ONNX graph) and refuse, naming the member, function or operator,
anything that could execute code at load time, touch the file system or the network, write
to the terminal or draw random numbers; which operators compute is derived from the
installed libraries (verifier.policy.operators). Text from a file reaches the terminal
only through `printable`. torch and onnx are imported by the caller (verifier.policy.load) and
passed in, and numpy where it is used, so this module stays cheap to import (the command
line reads MEMORY_MB from it).

torch.export (`.pt2`) archives are refused outright: `torch.export.load` unpickles
weights, constants and sample inputs on the archive's say-so (falling back to
`weights_only=False` when the safe load fails), resolves graph targets by attribute lookup
on the torch module (`torch.os.system` resolves), evaluates symbolic shapes with
`sympy.sympify` (Python's eval) and loads AOTInductor shared libraries. No inspection
before loading closes all of these with torch's API.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import posixpath
import re
import select
import shutil
import signal
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from verifier.errors import InputError, ResourceLimit
from verifier.policy.operators import (
    ONNX_DOMAINS,
    is_seeded,
    onnx_operators,
    seeded_kinds,
    seeded_operator_is_off,
    torchscript_operators,
)

MEMORY_MB = 2048  # the default --memory: what loading and running a policy may allocate
PT2_REFUSED = (
    "torch.export (.pt2) archives are refused: loading one can run code the file carries "
    "(pickled weights and inputs, graph targets, shape expressions). Export the network as "
    "TorchScript (torch.jit.save(torch.jit.script(net), 'policy.pt', _extra_files="
    "{'verifier.json': ...})) or as ONNX (torch.onnx.export with a dynamic batch axis)"
)
_PURE = "a policy may only compute on tensors"

if TYPE_CHECKING:
    import numpy as np

# What a child returns: JSON-able facts and named arrays.
Contained = tuple[dict, dict[str, "np.ndarray"]]


def printable(text: str) -> str:
    """`text` with every character that is not printable (control characters, ANSI escape
    sequences' ESC, line and paragraph separators, bidirectional overrides) written as a
    Python escape, so that text from a policy file shows as one inert line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def quoted(text: str) -> str:
    """`text` in single quotes, made printable."""
    return f"'{printable(text)}'"


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.0f} MB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


# ---------------------------------------------------------------------------------------
# TorchScript


def torchscript_archive(path: Path, data: bytes, limit: int) -> bytes:
    """The archive rewritten member by member, so that torch reads exactly what is checked
    here; refused when it holds code that would run while loading.

    torch's reader matches member names without regard to case and may pick either of two
    members of the same name, Python's zipfile matches case and takes the last: two
    same-named members are refused, and the rewritten copy (stored, in the same order) is
    what torch loads. `__setstate__` in any code member (`.py`, any case) would run inside
    `torch.jit.load`; so would the C++ `__setstate__` of a torch.classes object named in a
    pickle, or an RRef's, which connects to an RPC agent. Debug information
    (`.debug_pkl`, source text for error messages) is left out of the copy. Members may
    inflate to `limit` bytes in all (their declared sizes are checked before anything is
    inflated, and zipfile never inflates past a declared size).
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise InputError(str(path), f"{NOT_TORCHSCRIPT} ({_first_line(exc)})") from None
    seen: dict[str, str] = {}
    for member in members:
        key = member.filename.lower()
        if key in seen:
            raise InputError(
                str(path),
                f"the archive holds two members named {quoted(seen[key])} (names are "
                "compared without case, as torch reads them); a TorchScript archive has one",
                place=printable(member.filename),
            )
        seen[key] = member.filename
    total = sum(member.file_size for member in members)
    if total > limit:
        raise ResourceLimit(
            f"{path}: its members inflate to {megabytes(total)}, more than --memory "
            f"{limit // 2**20} MB (stopped before inflating them)"
        )
    copy = io.BytesIO()
    with zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as rewritten:
        for member in members:
            name = member.filename.lower()
            if name.endswith(".debug_pkl"):
                continue  # source ranges for error messages: torch loads without them
            try:
                content = archive.read(member)
            except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError) as exc:
                raise InputError(
                    str(path),
                    f"{NOT_TORCHSCRIPT} ({_first_line(exc)})",
                    place=printable(member.filename),
                ) from None
            if name.endswith(".py") and b"__setstate__" in content:
                raise InputError(
                    str(path),
                    f"defines __setstate__, which would run while loading; {_PURE}",
                    place=printable(member.filename),
                )
            if name.endswith("pkl"):
                _check_pickle(path, member.filename, content)
            rewritten.writestr(member.filename, content)
    return copy.getvalue()


def _check_pickle(path: Path, member: str, content: bytes) -> None:
    """Refuse a pickle that names a torch.classes (C++) class, whose `__setstate__` torch
    runs while loading, or an RRef, or that uses opcodes torch's own archives never write
    (torch's unpickler reads GLOBAL only)."""
    try:
        for opcode, argument, _ in pickletools.genops(content):
            if opcode.name in ("STACK_GLOBAL", "INST", "OBJ", "REDUCE_EX", "EXT1", "EXT2"):
                raise InputError(
                    str(path),
                    f"not a TorchScript archive: the pickle uses the opcode {opcode.name}, "
                    "which torch.jit.save never writes (plain pickles from torch.save are "
                    "refused because loading them can run arbitrary code)",
                    place=printable(member),
                )
            qualified = str(argument).replace(" ", ".", 1)  # torch joins module and name
            if opcode.name == "GLOBAL" and (
                "torch.classes" in qualified or qualified == "torch.distributed.rpc.rref"
            ):
                raise InputError(
                    str(path),
                    f"the pickle constructs {quoted(qualified)}, whose C++ code runs while "
                    f"loading; {_PURE}",
                    place=printable(member),
                )
    except (ValueError, EOFError) as exc:
        raise InputError(
            str(path), f"{NOT_TORCHSCRIPT} ({_first_line(exc)})", place=printable(member)
        ) from None


NOT_TORCHSCRIPT = (
    "not a TorchScript archive (save with torch.jit.save; plain pickles from torch.save are "
    "refused because loading them can run arbitrary code)"
)


def check_torchscript(path: Path, module, functions, torch) -> None:
    """Refuse a loaded module that could act on the world or draw random numbers.

    `functions` is the compilation unit's list of every function and method the archive
    defines; whatever can run (forward, the methods and functions it calls, a with
    statement's `__enter__` and `__exit__`) is among them, and each may use only the
    accepted operators (policy_operators.torchscript_operators). Hooks and pre-hooks, which
    would run outside forward, are refused, as is setting a module attribute (the policy
    must be a function of its observation, and modules stay in eval mode). Random
    operators are accepted where their randomness is off in eval mode: checked on forward
    with everything it calls inlined and every module's `training` set to False."""
    if not module._c._has_method("forward"):
        raise InputError(str(path), "the TorchScript module has no forward method")
    modules = dict(module.named_modules())
    for name, submodule in modules.items():
        hooks = submodule._c._get_forward_pre_hooks() + submodule._c._get_forward_hooks()
        if hooks:
            where = f"the submodule {quoted(name)}" if name else "the module"
            raise InputError(
                str(path),
                f"{where} has the forward hook {quoted(hooks[0].name)}; hooks run outside "
                "forward, so the verdict would judge another function: remove them "
                "(module._forward_hooks.clear(), ._forward_pre_hooks.clear()) before saving",
            )
    module_types = {submodule._c._type().qualified_name() for submodule in modules.values()}
    accepted = torchscript_operators(torch)
    by_name = {}
    for function in functions:
        by_name[function.qualified_name] = function
        graph = function.graph
        kinds = _kinds(graph)
        refused = sorted(kinds - accepted)
        if refused:
            raise InputError(
                str(path),
                f"{printable(function.qualified_name)} uses the operator {printable(refused[0])}, "
                "which does not compute on tensors (policies may not print, sleep, read or "
                "write files, fork or call out)",
            )
        for node in graph.findAllNodes("prim::SetAttr", True) if "prim::SetAttr" in kinds else ():
            if _type_name(node.inputsAt(0)) in module_types:
                raise InputError(
                    str(path),
                    f"{printable(function.qualified_name)} sets the module attribute "
                    f"{quoted(node.s('name'))}; a policy's forward may not change its "
                    "modules",
                )
    _check_randomness(path, module, by_name, module_types, torch)


def _check_randomness(path: Path, module, by_name: dict, module_types: set[str], torch) -> None:
    """Every seeded operator forward can reach has its randomness switched off."""
    pending = [("forward", module._c._get_method("forward").graph)]
    done = set()
    while pending:
        label, original = pending.pop()
        graph = original.copy()
        torch._C._jit_pass_inline(graph)
        for node in graph.findAllNodes("prim::GetAttr", True):
            if node.s("name") == "training" and _type_name(node.input()) in module_types:
                with graph.insert_point_guard(node):  # in eval mode, training is False
                    node.output().replaceAllUsesWith(graph.insertConstant(False))
        torch._C._jit_pass_constant_propagation(graph)
        kinds = _kinds(graph)
        for call in ("prim::CallMethod", "prim::CallFunction"):
            if call in kinds:
                raise InputError(
                    str(path),
                    f"{printable(label)} calls {call} through an interface, which the check "
                    "cannot follow; script the network without module interfaces",
                )
        for kind in ("prim::Enter", "prim::Exit") if "prim::Enter" in kinds else ():
            for node in graph.findAllNodes(kind, True):
                method = f"{_type_name(node.inputsAt(0))}.__{kind[6:].lower()}__"
                if method not in done and method in by_name:
                    done.add(method)
                    pending.append((method, by_name[method].graph))
        for kind in sorted(seeded_kinds(torch, frozenset(kinds))):
            for node in graph.findAllNodes(kind, True):
                if is_seeded(torch, node) and not seeded_operator_is_off(torch, node):
                    raise InputError(
                        str(path),
                        f"{printable(label)} draws random numbers ({kind}); a policy's outputs "
                        "must be a function of its observation (dropout and rrelu are accepted "
                        "in eval mode)",
                    )


# A node as printed in a graph: `%out : T = ns::kind[attributes](inputs)`, at any depth.
_KIND = re.compile(r"= ([A-Za-z_]\w*::\w+)[\[(]")


def _kinds(graph) -> set[str]:
    """The kinds of every node of a graph and its nested blocks (read from its printed form,
    which lists each; text in string constants can only add kinds, never hide one)."""
    return set(_KIND.findall(str(graph)))


def _type_name(value) -> str | None:
    qualified = getattr(value.type(), "qualified_name", None)
    return qualified() if callable(qualified) else None


# ---------------------------------------------------------------------------------------
# ONNX


def check_onnx(path: Path, model, onnx) -> None:
    """Refuse an ONNX model that uses operators outside the standard domains, random
    generators, Dropout in training mode, or tensor data outside its own directory."""
    accepted = onnx_operators(onnx)
    local = {(f.domain, f.name) for f in model.functions}
    graphs = [model.graph, *model.functions]
    while graphs:
        graph = graphs.pop()
        constants = {t.name: t for t in getattr(graph, "initializer", ())}
        for tensor in constants.values():
            _check_external(path, tensor, onnx)
        for node in graph.node:
            name = quoted(node.name or node.op_type)
            operator = (node.domain, node.op_type)
            if node.domain not in ONNX_DOMAINS and operator not in local:
                raise InputError(
                    str(path),
                    f"node {name} uses the operator domain {quoted(node.domain)}; only "
                    "the standard ONNX domains are run",
                )
            if node.domain in ONNX_DOMAINS and operator not in accepted:
                raise InputError(
                    str(path),
                    f"node {name} uses {quoted(node.op_type)}, which is not a "
                    "deterministic operator of the standard ONNX domains",
                )
            if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
                mode = constants.get(node.input[2])
                if mode is None or onnx.numpy_helper.to_array(mode).any():
                    raise InputError(
                        str(path),
                        f"node {name} is a Dropout in training mode, which draws random "
                        "numbers; export the network in eval mode",
                    )
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    _check_external(path, attribute.t, onnx)
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)


def has_external_data(model, onnx) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def _check_external(path: Path, tensor, onnx) -> None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    normal = posixpath.normpath(location.replace("\\", "/"))
    shown = quoted(location)
    if not location or posixpath.isabs(normal) or normal.split("/")[0] == ".." or ":" in normal:
        raise InputError(
            str(path),
            f"tensor {quoted(tensor.name)} keeps its data at {shown}, outside the "
            "model's directory",
        )
    target = (path.parent / normal).resolve()
    if not target.is_relative_to(path.parent.resolve()):
        raise InputError(
            str(path),
            f"tensor {quoted(tensor.name)} keeps its data at {shown}, which leads "
            "outside the model's directory",
        )


# ---------------------------------------------------------------------------------------
# Tables


def check_npz(path: Path, data: bytes, limit: int) -> None:
    """Refuse an .npz whose arrays would take more than `limit` bytes, before any is read:
    every member's declared size, and every array's declared shape (numpy allocates the
    whole shape before reading), which may not exceed its member's size."""
    import numpy as np
    from numpy.lib import format as npy_format

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
        total = sum(member.file_size for member in members)
        if total > limit:
            raise ResourceLimit(
                f"{path}: its arrays inflate to {megabytes(total)}, more than --memory "
                f"{limit // 2**20} MB (stopped before inflating them)"
            )
        for member in members:
            with archive.open(member) as stream:
                version = npy_format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = npy_format.read_array_header_1_0(stream)
                else:
                    shape, _, dtype = npy_format.read_array_header_2_0(stream)
            if dtype.hasobject:
                continue  # np.load refuses it (allow_pickle=False)
            size = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if size > member.file_size:
                raise InputError(
                    str(path),
                    f"the array declares shape {tuple(shape)} ({megabytes(size)}), more than "
                    f"its {megabytes(member.file_size)} of data",
                    place=printable(member.filename),
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(
            str(path), f"not a readable .npz policy ({printable(_first_line(exc))})"
        ) from None


# ---------------------------------------------------------------------------------------
# The contained child


def run_contained(
    compute: Callable[[Callable[[], None]], Contained],
    source: str,
    doing: str,
    batches: int = 0,
    timeout: float | None = None,
    memory: int = MEMORY_MB,
    progress=None,
    prepare: Callable[[], None] | None = None,
) -> Contained:
    """`compute(tick)` in a forked child, its result returned: the facts and arrays it
    computed from `source` (a policy file) while `doing` ("loading", "running").

    The child's stdout and stderr go nowhere, so a policy can neither forge report lines
    nor write escape sequences; past `timeout` seconds it is killed (ResourceLimit), Ctrl-C
    kills it at once, and it dies when its parent dies (PR_SET_PDEATHSIG on Linux, else at
    its next tick). Its address space may grow by `memory` MB (RLIMIT_AS, Linux): an
    allocation beyond is a ResourceLimit. A child that crashes (a signal) is bad input:
    InputError naming the signal. `compute` calls `tick()` after each of its `batches`,
    which advances `progress`; `prepare` runs first in the child. An InputError or
    ResourceLimit raised by `compute` reaches the caller with its text made printable.
    """
    import numpy as np

    if not hasattr(os, "fork"):
        return compute(lambda: None)
    directory = tempfile.mkdtemp(prefix="verify-policy-")
    ticks, done = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _child(parent, compute, prepare, done, directory, memory)
    os.close(done)
    try:
        _wait(pid, ticks, batches, timeout, progress, f"{source}: {doing}")
        _, status = os.waitpid(pid, 0)
        pid = 0
        _raise_failure(Path(directory), status, source, doing, memory)
        info = json.loads(Path(directory, "info.json").read_text(encoding="utf-8"))
        with np.load(Path(directory, "arrays.npz"), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        return info, arrays
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(ticks)
        shutil.rmtree(directory, ignore_errors=True)


def _raise_failure(directory: Path, status: int, source: str, doing: str, memory: int) -> None:
    failure = directory / "failure.json"
    if failure.exists():
        error = json.loads(failure.read_text(encoding="utf-8"))
        if "source" in error:
            raise InputError(
                printable(error["source"]),
                printable(error["message"]),
                printable(error["place"]) if error["place"] else None,
            )
        if error.get("memory"):
            raise ResourceLimit(
                f"{source}: {doing} the policy needs more than --memory {memory} MB (stopped)"
            )
        if "limit" in error:
            raise ResourceLimit(printable(error["limit"]))
        raise RuntimeError(f"{doing} the policy failed: {printable(error['message'])}")
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise InputError(
            source,
            f"the process {doing} the policy crashed ({name}): the file is malformed beyond "
            f"what torch or onnxruntime can read (too deeply nested, or past --memory "
            f"{memory} MB)",
        )
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"the process {doing} the policy ended with status {status}")


def _child(parent: int, compute, prepare, done: int, directory: str, memory: int) -> None:
    """The forked side of run_contained: never returns."""
    code = 0
    failure = Path(directory, "failure.json")
    try:
        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the child exits)
        _cap_memory(memory)
        if prepare is not None:
            prepare()

        def tick() -> None:
            if os.getppid() != parent:
                os._exit(1)
            os.write(done, b".")

        import numpy as np

        info, arrays = compute(tick)
        np.savez(Path(directory, "arrays.npz"), **arrays)
        Path(directory, "info.json").write_text(json.dumps(info), encoding="utf-8")
    except InputError as exc:
        error = {"source": exc.source, "message": exc.message, "place": exc.place}
        failure.write_text(json.dumps(error), encoding="utf-8")
    except ResourceLimit as exc:
        failure.write_text(json.dumps({"limit": str(exc)}), encoding="utf-8")
    except BaseException as exc:  # relayed to the parent, which raises it
        if out_of_memory(exc):
            failure.write_text(json.dumps({"memory": True}), encoding="utf-8")
        else:
            message = " ".join(str(exc).split()) or type(exc).__name__
            failure.write_text(json.dumps({"message": message}), encoding="utf-8")
            code = 1
    finally:
        os._exit(code)


def out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocation that failed (under the child's RLIMIT_AS)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return any(sign in text for sign in _ALLOCATION_FAILED)


# How torch, the C++ runtime and onnxruntime say that an allocation failed.
_ALLOCATION_FAILED = (
    "can't allocate memory",
    "bad_alloc",
    "Cannot allocate memory",
    "bad allocation",
)


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (Linux), and exit if the parent
    is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _cap_memory(memory: int) -> None:
    """Let the address space grow by `memory` MB beyond what the child inherited (Linux)."""
    try:
        import resource

        status = Path("/proc/self/status").read_text(encoding="ascii")
    except (ImportError, OSError):
        return
    inherited = next(
        (int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:")),
        None,
    )
    if inherited is None:
        return
    limit = inherited + memory * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _wait(pid: int, ticks: int, batches: int, timeout: float | None, progress, doing: str) -> None:
    """Read the child's ticks until it closes the pipe, or raise ResourceLimit at timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = iter(progress(range(batches))) if progress and batches else None
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([ticks], [], [], remaining)
        if not ready:
            raise ResourceLimit(
                f"{doing} the policy did not finish within --timeout {timeout:g} s (stopped)"
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
