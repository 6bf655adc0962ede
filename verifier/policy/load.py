"""Learned policies: load a file safely, run it on every state, induce the Markov chain.

Formats (README, "Files"): TorchScript `.pt` (torch is an optional extra), `.onnx`
(onnxruntime), tabular `.npz` / `.json`, and Stable-Baselines3 `.zip` agents, whose network
is rebuilt from the archive's readable entries and weights (verifier.policy.sb3_zip).
Metadata `verifier.json` ({"observation", "actions", "output"}, and the observation the
policy was made for) travels inside the file; flags override it; its interface is checked
against each model before the policy runs (verifier.policy.interface). A policy file is
untrusted input (verifier.policy.safety): the verify process never reads it. Every load, inspection
and run happens in a contained child process (a time limit, a memory cap, no terminal),
nothing in it is unpickled or run before its code is checked to be pure tensor computation,
`.npz` is read with allow_pickle=False, and plain pickles and torch.export `.pt2` archives
are refused. A run re-reads the file and checks that it is the one that was inspected.

The only module that imports torch or onnxruntime, lazily.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verifier.errors import DependencyMissing, InputError, ResourceLimit, first_line
from verifier.policy.interface import (
    Interface,
    read_interface,
)
from verifier.policy.operators import onnx_operators, torchscript_operators
from verifier.policy.safety import (
    MEMORY_MB,
    NOT_TORCHSCRIPT,
    PT2_REFUSED,
    check_npz,
    check_onnx,
    check_torchscript,
    has_external_data,
    megabytes,
    out_of_memory,
    printable,
    quoted,
    run_contained,
    torchscript_archive,
)

OBSERVATIONS = ("valuation", "grid", "env")
OUTPUTS = ("logits", "probs")
METADATA = "verifier.json"
METADATA_BYTES = 2**20  # the most a file's verifier.json may hold


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """A loaded policy: a network to run on batches of observations, or a table.

    For networks, `format` names the opener (`OPENERS`) that reads the file inside the
    contained child, and `digest` (SHA-256) is the file that was inspected: a run re-reads
    the file and refuses another one. `timeout` (seconds, per load and per run) and
    `memory` (MB) bound the child. For tabular policies `table` holds the distribution per
    state (float64 [n, A]) and `keys` how rows are found: "state" (row = state index) or
    "valuation" (`valuations`). `interface` is what the metadata says the policy was made
    for; `actions` is empty when the environment names them (`interface.action_count`),
    until `decide` names them. `run`: a network in memory (verifier.policy.live), the
    caller's own code, which runs in this process rather than contained in a child.
    """

    path: str
    format: str
    observation: str
    actions: tuple[str, ...]
    output: str
    table: np.ndarray | None = None
    keys: str = "state"
    valuations: np.ndarray | None = None
    timeout: float | None = None
    memory: int = MEMORY_MB
    digest: str = ""
    interface: Interface | None = None
    run: Callable[[np.ndarray | dict[str, np.ndarray]], np.ndarray] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Opened:
    """A network opened inside the contained child: its batch function and metadata text."""

    run: Callable[[np.ndarray | dict[str, np.ndarray]], np.ndarray]
    metadata: str | bytes


def load_policy(
    path: str | Path,
    observation: str | None = None,
    actions: tuple[str, ...] | None = None,
    output: str | None = None,
    timeout: float | None = None,
    memory: int = MEMORY_MB,
) -> Policy:
    """Load a policy file; flags (`observation`, `actions`, `output`) override its metadata.

    The file is read, inspected and (later, by `decide`) run only inside a contained child
    process, within `timeout` seconds (default: none) and `memory` MB each time."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such policy file")
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        raise InputError(str(path), PT2_REFUSED)
    if suffix not in FORMATS:
        known = ", ".join([*FORMATS, ".pt2"])
        raise InputError(str(path), f"unknown policy format {suffix!r}; known: {known}")
    fmt = FORMATS[suffix]
    network = fmt in OPENERS
    if network:
        _import_network_libraries(path, fmt)  # once, before the children fork
    read = _inspect if network else _read_table
    info, arrays = run_contained(
        lambda tick: read(path, fmt, memory),
        str(path),
        "loading",
        timeout=timeout,
        memory=memory,
        prepare=single_thread if network else None,
    )
    meta = {
        **info["meta"],
        **{
            k: v
            for k, v in (("observation", observation), ("actions", actions), ("output", output))
            if v
        },
    }
    table = arrays.get("probs")
    observation = meta.get("observation", "valuation")
    if observation not in OBSERVATIONS:
        raise InputError(
            str(path),
            f"observation {_shown(observation)}; known: {', '.join(OBSERVATIONS)}",
        )
    output = meta.get("output", "logits" if table is None else "probs")
    if output not in OUTPUTS:
        raise InputError(str(path), f"output {_shown(output)}; known: {', '.join(OUTPUTS)}")
    interface = read_interface(str(path), meta)
    names: tuple[str, ...] = ()  # or named by the environment's actions, model by model
    if meta.get("actions") or interface is None or interface.action_count is None:
        names = _action_names(path, meta.get("actions"))
    return Policy(
        str(path),
        fmt,
        observation,
        names,
        output,
        table,
        info.get("keys", "state"),
        arrays.get("valuations"),
        timeout,
        memory,
        info.get("digest", ""),
        interface,
    )


def _shown(value) -> str:
    """A metadata value as it may be shown: quoted, escaped, cut at 80 characters."""
    text = quoted(value) if isinstance(value, str) else printable(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _action_names(path: Path, names) -> tuple[str, ...]:
    """The action names, checked: a list of distinct, printable strings."""
    if (
        not names
        or not isinstance(names, list | tuple)
        or not all(isinstance(a, str) for a in names)
    ):
        raise InputError(
            str(path), f'no action names: put "actions" in {METADATA} or pass --actions up,down,...'
        )
    unprintable = next((a for a in names if not a.isprintable() or not a), None)
    if unprintable is not None:
        raise InputError(
            str(path),
            f"the action name {_shown(unprintable)} is empty or holds control characters",
        )
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        shown = ", ".join(_shown(a) for a in sorted(repeated)[:5])
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise InputError(str(path), f"action names repeat: {shown}{more}")
    return tuple(names)


FORMATS = {
    ".pt": "torchscript",
    ".onnx": "onnx",
    ".zip": "sb3-zip",
    ".npz": "npz",
    ".json": "json",
}


def _import_network_libraries(path: Path, fmt: str) -> None:
    """Import torch (and onnx, onnxruntime) in the verify process and derive the accepted
    operators there, so that every child forks with them ready; a missing library is an
    InputError naming the pip command."""
    try:
        if fmt == "onnx":
            import onnx
            import onnxruntime  # noqa: F401

            onnx_operators(onnx)
        else:
            import torch

            torchscript_operators(torch)
    except ImportError:
        if fmt == "onnx":
            raise DependencyMissing(
                "reading .onnx policies", "onnx and onnxruntime", "torch", str(path)
            ) from None
        raise DependencyMissing(
            f"reading {path.suffix} policies", "torch", "torch", str(path)
        ) from None


def read_file(path: Path, memory: int, digest: str = "") -> tuple[bytes, str]:
    """The file's bytes and SHA-256 (inside the child); a file larger than the memory cap
    is a ResourceLimit, and one that is not the inspected `digest` an InputError."""
    try:
        size = os.stat(path).st_size
        if size > memory * 2**20:
            raise ResourceLimit(
                f"{path}: the file is {megabytes(size)}, more than --memory {memory} MB"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    found = hashlib.sha256(data).hexdigest()
    if digest and found != digest:
        raise InputError(str(path), "the file changed on disk while verify was using it")
    return data, found


def _inspect(path: Path, fmt: str, memory: int):
    """In the child: open the network (which checks it) and return its metadata."""
    data, digest = read_file(path, memory)
    opened = OPENERS[fmt](path, data, memory, True)
    return {"digest": digest, "meta": _metadata(path, opened.metadata)}, {}


def _open_torchscript(path: Path, data: bytes, memory: int, inspect: bool) -> Opened:
    """A TorchScript archive, loaded from its checked copy (verifier.policy.safety), its
    functions checked when `inspect`, and run through `forward` (never through hooks) in
    eval mode."""
    import torch

    archive = torchscript_archive(path, data, memory * 2**20)
    extra = {METADATA: ""}
    binding: Any = torch._C  # the loader torch.jit.load wraps, for its compilation unit
    functions = binding.CompilationUnit()
    try:
        compiled = binding.import_ir_module_from_buffer(
            functions, archive, torch.device("cpu"), extra, False
        )
    except Exception as exc:
        if out_of_memory(exc):
            raise MemoryError from None
        raise InputError(str(path), f"{NOT_TORCHSCRIPT} ({first_line(exc)})") from None
    module = torch.jit._recursive.wrap_cpp_module(compiled)
    if inspect:
        with torch.jit.optimized_execution(True):  # torch inlines calls only in this mode
            check_torchscript(path, module, functions.get_functions(), torch)
    module.eval()

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        inputs: Any
        if isinstance(batch, dict):  # a dict observation: forward(Dict[str, Tensor])
            inputs = {key: torch.from_numpy(value) for key, value in batch.items()}
        else:
            inputs = torch.from_numpy(batch)
        # The graphs as checked, without the profiling executor's specialising passes (which
        # cost more than they save on the few batches of one check, in every child anew).
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return module.forward(inputs).detach().cpu().resolve_conj().numpy()

    return Opened(run, extra[METADATA])


def _open_onnx(path: Path, data: bytes, memory: int, inspect: bool) -> Opened:
    """An ONNX model, checked (verifier.policy.safety) when `inspect`, run by onnxruntime on
    one thread with its logging off."""
    import onnx
    import onnxruntime

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        if out_of_memory(exc):
            raise MemoryError from None
        raise InputError(str(path), f"not a readable ONNX model ({first_line(exc)})") from None
    if inspect:
        check_onnx(path, model, onnx)
    onnxruntime.set_default_logger_severity(4)  # fatal only: node names stay unprinted
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4
    source = str(path) if has_external_data(model, onnx) else data
    try:
        session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if out_of_memory(exc):
            raise MemoryError from None
        raise InputError(str(path), f"not a readable ONNX model ({first_line(exc)})") from None
    names = [i.name for i in session.get_inputs()]
    meta = next((p.value for p in model.metadata_props if p.key == METADATA), "")
    del model

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        if not isinstance(batch, dict):  # one input, whatever its name
            return np.asarray(session.run(None, {names[0]: batch})[0])
        missing = [name for name in names if name not in batch]
        if missing:  # a dict observation: one input per key, by name
            raise InputError(
                str(path),
                f"the model's inputs {', '.join(map(printable, names))} are not keys of the "
                f"dict observation ({', '.join(batch)}); name each input after its key",
            )
        return np.asarray(session.run(None, {name: batch[name] for name in names})[0])

    return Opened(run, meta)


def _open_sb3(path: Path, data: bytes, memory: int, inspect: bool) -> Opened:
    """A Stable-Baselines3 agent: its network rebuilt by the verifier's own modules from the
    archive's readable entries and its weights (torch.load weights_only), never unpickled
    (verifier.policy.sb3_zip); the code that runs is ours, the file gives only numbers."""
    import torch

    from verifier.policy.sb3_zip import read_sb3_zip

    module, meta = read_sb3_zip(path, data)
    module.eval()

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        inputs: Any
        if isinstance(batch, dict):
            inputs = {key: torch.from_numpy(value) for key, value in batch.items()}
        else:
            inputs = torch.from_numpy(batch)
        with torch.no_grad():
            return module.forward(inputs).detach().cpu().numpy()

    return Opened(run, json.dumps(meta))


# The networks' openers by format, run inside the contained child only: (path, the file's
# bytes, the memory cap in MB, whether to inspect the network) -> Opened. A run opens the
# bytes an earlier child inspected (the same SHA-256) without inspecting them again. A new
# network format adds its opener here.
OPENERS: dict[str, Callable[[Path, bytes, int, bool], Opened]] = {
    "torchscript": _open_torchscript,
    "onnx": _open_onnx,
    "sb3-zip": _open_sb3,
}


def _read_table(path: Path, fmt: str, memory: int):
    """In the child: a .npz or .json table's metadata and arrays."""
    data, _ = read_file(path, memory)
    meta, probs, valuations = (_load_npz if fmt == "npz" else _load_json)(path, data, memory)
    keys, valuations, probs = _table(path, probs, valuations)
    arrays = {"probs": probs} if valuations is None else {"probs": probs, "valuations": valuations}
    return {"meta": meta, "keys": keys}, arrays


def _load_npz(path: Path, data: bytes, memory: int):
    """`probs` [n, A] (rows by state index, or by `valuations` [n, k]), `actions` [A]."""
    check_npz(path, data, memory * 2**20)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except Exception as exc:
        if out_of_memory(exc):
            raise MemoryError from None
        raise InputError(str(path), f"not a readable .npz policy ({first_line(exc)})") from None
    if "probs" not in arrays:
        raise InputError(str(path), "missing array 'probs' [n_states, n_actions]")
    meta = {}
    if "actions" in arrays:
        if arrays["actions"].dtype.kind not in "US" or arrays["actions"].ndim != 1:
            raise InputError(str(path), "actions must be a 1-d array of strings")
        meta["actions"] = [str(a) for a in arrays["actions"].tolist()]
    probs = _numbers(path, "probs", arrays["probs"])
    valuations = arrays.get("valuations")
    if valuations is not None:
        valuations = _numbers(path, "valuations", valuations)
    return meta, probs, valuations


def _load_json(path: Path, data: bytes, memory: int):
    """{"actions": [...], "probs": [[...], ...], optional "valuations": [[...], ...]}."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also over 4300 digits
        raise InputError(str(path), f"not a readable JSON policy ({first_line(exc)})") from None
    except RecursionError:
        raise InputError(str(path), "not a readable JSON policy (nested too deeply)") from None
    if not isinstance(doc, dict) or "probs" not in doc:
        raise InputError(str(path), 'expected {"actions": [...], "probs": [[...], ...]}')
    probs = _numbers(path, "probs", doc["probs"])
    valuations = _numbers(path, "valuations", doc["valuations"]) if "valuations" in doc else None
    meta = {k: doc[k] for k in ("actions", "observation", "output") if k in doc}
    return meta, probs, valuations


def _numbers(path: Path, name: str, value) -> np.ndarray:
    """A table of plain numbers (int64 or float64) from JSON or .npz; strings, booleans,
    complex numbers, objects and integers beyond int64 are refused, not converted."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(str(path), f"{name} must be a table of numbers, one row each") from None
    if array.dtype.kind not in "iuf":
        raise InputError(
            str(path), f"{name} must hold plain numbers, not {KIND_NAMES.get(array.dtype.kind)}"
        )
    return array


KIND_NAMES = {
    "b": "booleans",
    "c": "complex numbers",
    "U": "strings",
    "S": "strings",
    "O": "objects or integers beyond 64 bits",
    "V": "records",
    "M": "dates",
    "m": "time spans",
}


def _table(path: Path, probs: np.ndarray, valuations: np.ndarray | None):
    if probs.ndim != 2 or not np.isfinite(probs).all() or (probs < 0).any():
        raise InputError(
            str(path), "probs must be a finite, non-negative [n_states, n_actions] table"
        )
    zero = np.flatnonzero(~(probs > 0).any(axis=1))
    if len(zero):
        raise InputError(
            str(path), f"probs row {int(zero[0])} is all zero: every row must be a distribution"
        )
    if valuations is None and len(probs) and not (probs == probs[0]).all():
        raise InputError(
            str(path),
            "rows keyed by state index depend on the verifier's state order: add "
            '"valuations", the model variables of each row\'s state (`verify states MODEL` '
            "lists them), or give the same row for every state",
        )
    if valuations is not None:
        if valuations.ndim != 2 or len(valuations) != len(probs):
            raise InputError(
                str(path), "valuations must be [n_states, n_vars], one row per probs row"
            )
        if valuations.dtype.kind == "f":
            fractional = ~np.isfinite(valuations) | (valuations != np.round(valuations))
            if fractional.any():
                row, col = np.argwhere(fractional)[0]
                raise InputError(
                    str(path),
                    f"valuations row {row} holds {float(valuations[row, col])!r}: model variables "
                    "are integers",
                )
            if (np.abs(valuations) > 2**53).any():
                raise InputError(str(path), "valuations beyond 2^53 cannot be told apart")
        valuations = valuations.astype(np.int64)
        _check_distinct(path, valuations)
    return (
        ("valuation" if valuations is not None else "state"),
        valuations,
        probs.astype(np.float64),
    )


def _check_distinct(path: Path, valuations: np.ndarray) -> None:
    """Refuse two rows for one state (which row would win is arbitrary), in O(n log n)."""
    if len(valuations) < 2:
        return
    _, inverse, counts = np.unique(valuations, axis=0, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts > 1)
    if len(repeated):
        rows = np.flatnonzero(inverse.ravel() == repeated[0])[:2]
        raise InputError(
            str(path),
            f"valuations rows {int(rows[0])} and {int(rows[1])} are the same state "
            f"{valuations[rows[0]].tolist()}: give one row per state",
        )


def _metadata(path: Path, text: str | bytes) -> dict:
    """The metadata text of a network file (inside the child): a JSON object of at most
    METADATA_BYTES."""
    if not text:
        return {}
    if len(text) > METADATA_BYTES:
        limit = megabytes(METADATA_BYTES)
        raise InputError(str(path), f"{METADATA} holds {megabytes(len(text))}; at most {limit}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                str(path), f"the model's metadata is not UTF-8 text (byte {exc.start})"
            ) from None
    try:
        meta = json.loads(text)
    except ValueError as exc:  # ValueError: also over 4300 digits
        raise InputError(str(path), f"{METADATA}: invalid JSON ({first_line(exc)})") from None
    except RecursionError:
        raise InputError(str(path), f"{METADATA}: nested too deeply") from None
    if not isinstance(meta, dict):
        raise InputError(str(path), f"{METADATA}: must be a JSON object")
    return meta


def single_thread() -> None:
    """In the child that runs a network: one torch thread (OpenMP does not survive fork)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
