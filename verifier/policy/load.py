"""Learned policies: load a file safely, run it on every state, induce the Markov chain.

Formats (README, "Files"): TorchScript `.pt` (torch is an optional extra), `.onnx`
(onnxruntime), tabular `.npz` / `.json`. Metadata `verifier.json` ({"observation",
"actions", "output"}) travels inside the file; flags override it. A policy file is untrusted
input (verifier.policy.safety): nothing in it is unpickled or run before its graph is checked
to be pure tensor computation, `.npz` is read with allow_pickle=False, plain pickles and
torch.export `.pt2` archives are refused, and networks run in a contained child process.

The only module that imports torch or onnxruntime, lazily.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from verifier.errors import InputError
from verifier.inputs.environment import Environment
from verifier.inputs.maze import Maze
from verifier.mdp import MDP
from verifier.policy.gym_observation import env_observations
from verifier.policy.observation import (
    GRID_CHANNELS,
    grid_observations,
    static_planes,
    valuation_observations,
)
from verifier.policy.safety import (
    PT2_REFUSED,
    check_onnx,
    check_torchscript_archive,
    check_torchscript_graph,
    run_contained,
)

OBSERVATIONS = ("valuation", "grid", "env")
OUTPUTS = ("logits", "probs")
METADATA = "verifier.json"
SB3_ZIP_REFUSED = (
    "a Stable-Baselines3 .zip holds cloudpickled objects and is never loaded; export the "
    "policy in your training script: from verifier.policy.export import export_sb3; "
    "export_sb3(model, 'policy.pt', env)"
)
BATCH_STATES = 4096
BATCH_BYTES = 64 * 2**20  # observations per batch are capped to this many bytes
_GRID_NEEDS_MAZE = "the grid observation exists for mazes only; use valuation"


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """A loaded policy: a function from a batch of observations to a batch of outputs.

    For tabular policies `table` holds the distribution per state (float64 [n, A]) and
    `keys` how rows are found: "state" (row = state index) or "valuation" (`valuations`).
    """

    path: str
    format: str
    observation: str
    actions: tuple[str, ...]
    output: str
    run: Callable[[np.ndarray], np.ndarray] | None = None
    table: np.ndarray | None = None
    keys: str = "state"
    valuations: np.ndarray | None = None
    timeout: float | None = None


def load_policy(
    path: str | Path,
    observation: str | None = None,
    actions: tuple[str, ...] | None = None,
    output: str | None = None,
    timeout: float | None = None,
) -> Policy:
    """Load a policy file; flags (`observation`, `actions`, `output`) override its metadata.

    A network is run with a time limit of `timeout` seconds in all (default: none)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such policy file")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        raise InputError(str(path), SB3_ZIP_REFUSED)
    loaders = {
        ".pt": _load_torchscript,
        ".pt2": _load_exported,
        ".onnx": _load_onnx,
        ".npz": _load_npz,
        ".json": _load_json,
    }
    if suffix not in loaders:
        raise InputError(
            str(path), f"unknown policy format {suffix!r}; known: {', '.join(loaders)}"
        )
    fmt, run, meta, table = loaders[suffix](path)
    meta = {
        **meta,
        **{
            k: v
            for k, v in (("observation", observation), ("actions", actions), ("output", output))
            if v
        },
    }
    observation = meta.get("observation", "valuation")
    if observation not in OBSERVATIONS:
        raise InputError(
            str(path), f"observation {observation!r}; known: {', '.join(OBSERVATIONS)}"
        )
    output = meta.get("output", "logits" if table is None else "probs")
    if output not in OUTPUTS:
        raise InputError(str(path), f"output {output!r}; known: {', '.join(OUTPUTS)}")
    names = meta.get("actions")
    if (
        not names
        or not isinstance(names, list | tuple)
        or not all(isinstance(a, str) for a in names)
    ):
        raise InputError(
            str(path), f'no action names: put "actions" in {METADATA} or pass --actions up,down,...'
        )
    repeated = sorted({a for a in names if names.count(a) > 1})
    if repeated:
        raise InputError(str(path), f"action names repeat: {', '.join(map(repr, repeated))}")
    keys, valuations = "state", None
    if table is not None:
        keys, valuations, table = table
    return Policy(
        str(path), fmt, observation, tuple(names), output, run, table, keys, valuations, timeout
    )


def _torch(path: Path):
    try:
        import torch
    except ImportError:
        raise InputError(
            str(path), "reading .pt/.pt2 policies needs torch: pip install 'verifier[torch]'"
        ) from None
    return torch


def _load_torchscript(path: Path):
    torch = _torch(path)
    if not zipfile.is_zipfile(path):
        raise InputError(str(path), _NOT_TORCHSCRIPT)
    try:
        check_torchscript_archive(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(str(path), f"{_NOT_TORCHSCRIPT} ({_first_line(exc)})") from None
    extra = {METADATA: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise InputError(str(path), f"{_NOT_TORCHSCRIPT} ({_first_line(exc)})") from None
    check_torchscript_graph(path, module, torch)
    module.eval()

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(batch, dict):  # a dict observation: forward(Dict[str, Tensor])
            inputs = {key: torch.from_numpy(value) for key, value in batch.items()}
        else:
            inputs = torch.from_numpy(batch)
        with torch.no_grad():
            return module(inputs).detach().cpu().resolve_conj().numpy()

    return "torchscript", run, _metadata(path, extra[METADATA]), None


_NOT_TORCHSCRIPT = (
    "not a TorchScript archive (save with torch.jit.save; plain pickles from torch.save are "
    "refused because loading them can run arbitrary code)"
)


def _load_exported(path: Path):
    raise InputError(str(path), PT2_REFUSED)


def _load_onnx(path: Path):
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise InputError(
            str(path),
            "reading .onnx policies needs onnx and onnxruntime: pip install onnxruntime onnx",
        ) from None
    check_onnx(path, onnx)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # safe to fork
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise InputError(str(path), f"not a readable ONNX model ({_first_line(exc)})") from None
    names = [i.name for i in session.get_inputs()]
    try:
        meta = session.get_modelmeta().custom_metadata_map.get(METADATA, "")
    except UnicodeDecodeError as exc:  # onnxruntime decodes every entry as UTF-8
        raise InputError(
            str(path), f"the model's metadata is not UTF-8 text (byte {exc.start})"
        ) from None

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        if not isinstance(batch, dict):  # one input, whatever its name
            return np.asarray(session.run(None, {names[0]: batch})[0])
        missing = [name for name in names if name not in batch]
        if missing:  # a dict observation: one input per key, by name
            raise InputError(
                str(path),
                f"the model's inputs {', '.join(names)} are not keys of the dict observation "
                f"({', '.join(batch)}); name each input after its key",
            )
        return np.asarray(session.run(None, {name: batch[name] for name in names})[0])

    return "onnx", run, _metadata(path, meta), None


def _load_npz(path: Path):
    """`probs` [n, A] (rows by state index, or by `valuations` [n, k]), `actions` [A]."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise InputError(str(path), f"not a readable .npz policy ({_first_line(exc)})") from None
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
    return "table", None, meta, _table(path, probs, valuations)


def _load_json(path: Path):
    """{"actions": [...], "probs": [[...], ...], optional "valuations": [[...], ...]}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: over 4300 digits
        raise InputError(str(path), f"not a readable JSON policy ({_first_line(exc)})") from None
    except RecursionError:
        raise InputError(str(path), "not a readable JSON policy (nested too deeply)") from None
    if not isinstance(doc, dict) or "probs" not in doc:
        raise InputError(str(path), 'expected {"actions": [...], "probs": [[...], ...]}')
    probs = _numbers(path, "probs", doc["probs"])
    valuations = _numbers(path, "valuations", doc["valuations"]) if "valuations" in doc else None
    meta = {k: doc[k] for k in ("actions", "observation", "output") if k in doc}
    return "table", None, meta, _table(path, probs, valuations)


def _numbers(path: Path, name: str, value) -> np.ndarray:
    """A table of plain numbers (int64 or float64) from JSON or .npz; strings, booleans,
    complex numbers, objects and integers beyond int64 are refused, not converted."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(str(path), f"{name} must be a table of numbers, one row each") from None
    if array.dtype.kind not in "iuf":
        raise InputError(
            str(path), f"{name} must hold plain numbers, not {_KIND_NAMES.get(array.dtype.kind)}"
        )
    return array


_KIND_NAMES = {
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
    zero = np.flatnonzero(probs.sum(axis=1) == 0)
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
    return (
        ("valuation" if valuations is not None else "state"),
        valuations,
        probs.astype(np.float64),
    )


def _metadata(path: Path, text: str | bytes) -> dict:
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also over 4300 digits
        raise InputError(str(path), f"{METADATA}: invalid JSON ({_first_line(exc)})") from None
    except RecursionError:
        raise InputError(str(path), f"{METADATA}: nested too deeply") from None
    if not isinstance(meta, dict):
        raise InputError(str(path), f"{METADATA}: must be a JSON object")
    return meta


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _failure(exc: Exception) -> str:
    """The reason a policy run failed, in one line. The TorchScript interpreter puts its own
    traceback first and the original error last ("RuntimeError: mat1 and mat2 shapes ...")."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "TorchScript interpreter" in lines[0]:
        return lines[-1]
    return lines[0]


@dataclass(frozen=True, slots=True, eq=False)
class Decisions:
    """What a policy does on every state of one model.

    choice_probs  float64 [n_choices]: probability of each choice (sums to 1 per state)
    masked        bool [n_states]: states where the policy's preferred action is not enabled
    """

    choice_probs: np.ndarray
    masked: np.ndarray


def decide(policy: Policy, env: Environment, stochastic: bool = False, progress=None) -> Decisions:
    """Run the policy on every state (in batches) and map its outputs to the model's choices:
    argmax over the enabled actions by default, the renormalised distribution with
    `stochastic`. States with a single choice take it."""
    mdp = env.mdp
    outputs = _outputs(policy, env, progress)
    if outputs.shape[1] != len(policy.actions):
        raise InputError(
            policy.path,
            f"outputs {outputs.shape[1]} values per state but names {len(policy.actions)} actions",
        )
    column = _choice_columns(policy, mdp)
    states = mdp.choice_states()
    single = np.diff(mdp.row_groups) == 1
    enabled = column >= 0
    stuck = ~np.logical_or.reduceat(enabled, mdp.row_groups[:-1]) & ~single
    if stuck.any():
        bad = int(np.flatnonzero(stuck)[0])
        raise InputError(
            policy.path,
            f"state {mdp.state_description(bad)} has no choice labelled with the policy's actions "
            f"({', '.join(policy.actions)})",
        )
    scores = np.where(enabled, outputs[states, np.maximum(column, 0)], -np.inf)
    preferred = outputs.argmax(axis=1)
    best_enabled = np.maximum.reduceat(scores, mdp.row_groups[:-1])
    masked = ~single & (outputs[np.arange(mdp.n_states), preferred] > best_enabled)
    if stochastic:
        weights = _probabilities(policy, scores, states, mdp)
    else:
        is_best = scores == best_enabled[states]
        index = np.where(is_best, np.arange(mdp.n_choices), mdp.n_choices)
        first = np.minimum.reduceat(index, mdp.row_groups[:-1])
        weights = np.zeros(mdp.n_choices)
        weights[first[first < mdp.n_choices]] = 1.0
    weights[mdp.row_groups[:-1][single]] = 1.0
    return Decisions(weights, masked)


def _probabilities(policy: Policy, scores: np.ndarray, states: np.ndarray, mdp: MDP) -> np.ndarray:
    """Renormalised distribution over enabled choices (softmax for logits).

    The softmax is shifted by the row's largest enabled logit; a row with none (a state with
    a single choice the policy does not name) is shifted by 0, and a logit so far below the
    largest that the difference overflows has probability exactly 0.
    """
    finite = np.isfinite(scores)
    if policy.output == "logits":
        shift = np.maximum.reduceat(scores, mdp.row_groups[:-1])
        shift = np.where(np.isfinite(shift), shift, 0.0)
        with np.errstate(over="ignore"):
            weights = np.exp(np.where(finite, scores - shift[states], -np.inf))
    else:
        weights = np.where(finite, scores, 0.0)
    totals = np.add.reduceat(weights, mdp.row_groups[:-1])
    single = np.diff(mdp.row_groups) == 1
    stuck = np.flatnonzero((totals <= 0) & ~single)
    if len(stuck):
        raise InputError(
            policy.path,
            f"state {mdp.state_description(int(stuck[0]))}: probability 0 for every enabled "
            "action, so the distribution cannot be renormalised",
        )
    return np.divide(weights, totals[states], out=np.zeros_like(weights), where=totals[states] > 0)


def _choice_columns(policy: Policy, mdp: MDP) -> np.ndarray:
    """int64 [n_choices]: the policy output column of each choice's action, -1 if none."""
    lookup = np.array(
        [policy.actions.index(a) if a in policy.actions else -1 for a in mdp.actions] + [-1]
    )
    return lookup[mdp.choice_actions]


def _outputs(policy: Policy, env: Environment, progress) -> np.ndarray:
    """float64 [n_states, n_actions]: the policy's outputs on every state."""
    mdp = env.mdp
    if policy.table is not None:
        return _table_outputs(policy, policy.table, mdp)
    grid = None  # the maze and its static planes, for the grid observation
    if policy.observation == "grid":
        if env.maze is None:
            raise InputError(policy.path, _GRID_NEEDS_MAZE)
        grid = (env.maze, static_planes(env.maze))
    if policy.observation == "env" and env.gym is None:
        raise InputError(policy.path, "the env observation exists for Gymnasium models only")
    starts = range(0, mdp.n_states, batch_states(policy, env))

    def compute(tick) -> np.ndarray:
        chunks = []
        for start in starts:
            states = np.arange(start, min(start + starts.step, mdp.n_states))
            chunks.append(_run_batch(policy, env, states, grid))
            tick()
        return np.concatenate(chunks) if chunks else np.zeros((0, len(policy.actions)))

    outputs = run_contained(compute, len(starts), policy.timeout, progress, _single_thread)
    if not np.isfinite(outputs).all():
        raise InputError(policy.path, "the policy outputs NaN or infinite values")
    if policy.output == "probs":
        negative = np.flatnonzero((outputs < 0).any(axis=1))
        zero = np.flatnonzero(outputs.sum(axis=1) == 0)
        if len(negative) or len(zero):
            state = int(negative[0] if len(negative) else zero[0])
            problem = "a negative probability" if len(negative) else "probability 0 everywhere"
            raise InputError(policy.path, f"state {mdp.state_description(state)}: {problem}")
    return outputs


def batch_states(policy: Policy, env: Environment) -> int:
    """States per batch: BATCH_STATES, fewer where observations are big (a grid of a
    301x301 maze is 6.9 MB), so that a batch of observations stays within BATCH_BYTES."""
    if policy.observation == "grid":
        if env.maze is None:
            raise InputError(policy.path, _GRID_NEEDS_MAZE)
        height, width = env.maze.shape
        per_state = len(GRID_CHANNELS) * height * width * 4
    else:
        per_state = env.mdp.valuations.shape[1] * 4
    return max(1, min(BATCH_STATES, BATCH_BYTES // max(per_state, 1)))


def _run_batch(
    policy: Policy, env: Environment, states: np.ndarray, grid: tuple[Maze, np.ndarray] | None
) -> np.ndarray:
    """float64 [len(states), n_actions]: the network's outputs on a batch of states (`grid`:
    the maze and its static planes, for the grid observation)."""
    if policy.run is None:
        raise ValueError(f"{policy.path}: a table policy has no network to run")
    if grid is not None:
        batch = grid_observations(grid[0], env.mdp, states, grid[1])
    elif policy.observation == "env":
        batch = env_observations(env, states)
    else:
        batch = valuation_observations(env.mdp, states)
    if isinstance(batch, dict):  # a dict observation: a dict of batches
        batch = {key: np.ascontiguousarray(value) for key, value in batch.items()}
        shape: dict[str, tuple[int, ...]] | tuple[int, ...] = {
            key: value.shape for key, value in batch.items()
        }
    else:
        batch = np.ascontiguousarray(batch)
        shape = batch.shape
    try:
        out = np.asarray(policy.run(batch))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            policy.path, f"running the policy on {shape} observations failed: {_failure(exc)}"
        ) from None
    if out.dtype.kind not in "iuf":
        raise InputError(
            policy.path,
            f"the policy outputs {_KIND_NAMES.get(out.dtype.kind, out.dtype)}; "
            "expected real-valued logits or probabilities",
        )
    if out.ndim != 2 or len(out) != len(states):
        raise InputError(policy.path, f"expected outputs [batch, n_actions], got {list(out.shape)}")
    return out.astype(np.float64)


def _single_thread() -> None:
    """In the child that runs a network: one torch thread (OpenMP does not survive fork)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _table_outputs(policy: Policy, table: np.ndarray, mdp: MDP) -> np.ndarray:
    if policy.keys == "state":
        if len(table) != mdp.n_states:
            raise InputError(
                policy.path, f"table has {len(table)} rows, the model {mdp.n_states} states"
            )
        return table
    keys = policy.valuations
    if keys is None:
        raise ValueError(f"{policy.path}: a table keyed by valuation without its valuations")
    if keys.shape[1] != mdp.valuations.shape[1]:
        raise InputError(
            policy.path,
            f"valuations have {keys.shape[1]} values, the model {mdp.valuations.shape[1]}",
        )
    index = {tuple(row): i for i, row in enumerate(keys.tolist())}
    rows = [index.get(tuple(v)) for v in mdp.valuations.tolist()]
    missing = [s for s, r in enumerate(rows) if r is None]
    if missing:
        raise InputError(policy.path, f"no row for state {mdp.state_description(missing[0])}")
    return table[np.array(rows)]


def induced_chain(mdp: MDP, decisions: Decisions) -> MDP:
    """The Markov chain of the MDP under the policy: P(s'|s) = sum_c prob(c) P(s'|c)."""
    states = mdp.choice_states()
    selection = sp.csr_matrix(
        (decisions.choice_probs, (states, np.arange(mdp.n_choices))),
        shape=(mdp.n_states, mdp.n_choices),
    )
    chain = (selection @ mdp.transitions).tocsr()
    chain.eliminate_zeros()
    chain.sort_indices()
    rewards = {name: selection @ values for name, values in mdp.rewards.items()}
    return MDP(
        transitions=chain,
        row_groups=np.arange(mdp.n_states + 1, dtype=np.int64),
        choice_actions=np.full(mdp.n_states, -1, dtype=np.int32),
        actions=(),
        labels=mdp.labels,
        initial_states=mdp.initial_states,
        variables=mdp.variables,
        valuations=mdp.valuations,
        rewards=rewards,
        kind="dtmc",
        name=mdp.name,
    )
