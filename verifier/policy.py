"""Learned policies: load a file safely, run it on every state, induce the Markov chain.

Formats (DESIGN.md, "Policies"): TorchScript `.pt` and torch.export `.pt2` (torch is an
optional extra), `.onnx` (onnxruntime), tabular `.npz` / `.json`. Metadata `verifier.json`
({"observation", "actions", "output"}) travels inside the file; flags override it. Nothing
is ever unpickled with arbitrary code execution: TorchScript and torch.export archives are
read by their restricted loaders, `.npz` with allow_pickle=False; a plain pickle is refused.

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

from verifier.environment import Environment
from verifier.errors import InputError
from verifier.mdp import MDP
from verifier.observation import grid_observations, static_planes, valuation_observations

OBSERVATIONS = ("valuation", "grid")
OUTPUTS = ("logits", "probs")
METADATA = "verifier.json"
BATCH_STATES = 4096


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


def load_policy(
    path: str | Path,
    observation: str | None = None,
    actions: tuple[str, ...] | None = None,
    output: str | None = None,
) -> Policy:
    """Load a policy file; flags (`observation`, `actions`, `output`) override its metadata."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such policy file")
    suffix = path.suffix.lower()
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
    if not names or not all(isinstance(a, str) for a in names):
        raise InputError(
            str(path), f'no action names: put "actions" in {METADATA} or pass --actions up,down,...'
        )
    keys, valuations = "state", None
    if table is not None:
        keys, valuations, table = table
    return Policy(str(path), fmt, observation, tuple(names), output, run, table, keys, valuations)


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
    extra = {METADATA: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise InputError(str(path), f"{_NOT_TORCHSCRIPT} ({_first_line(exc)})") from None
    module.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).detach().cpu().numpy()

    return "torchscript", run, _metadata(path, extra[METADATA]), None


_NOT_TORCHSCRIPT = (
    "not a TorchScript archive (save with torch.jit.save; plain pickles from torch.save are "
    "refused because loading them can run arbitrary code)"
)


def _load_exported(path: Path):
    torch = _torch(path)
    extra = {METADATA: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:
        raise InputError(str(path), f"not a torch.export archive ({_first_line(exc)})") from None
    module = program.module()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).detach().cpu().numpy()

    return "torch.export", run, _metadata(path, extra[METADATA]), None


def _load_onnx(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise InputError(
            str(path), "reading .onnx policies needs onnxruntime: pip install onnxruntime"
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputError(str(path), f"not a readable ONNX model ({_first_line(exc)})") from None
    name = session.get_inputs()[0].name
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA, "")

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch})[0])

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
        meta["actions"] = [str(a) for a in arrays["actions"].tolist()]
    return "table", None, meta, _table(path, arrays["probs"], arrays.get("valuations"))


def _load_json(path: Path):
    """{"actions": [...], "probs": [[...], ...], optional "valuations": [[...], ...]}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(str(path), f"not a readable JSON policy ({_first_line(exc)})") from None
    if not isinstance(doc, dict) or "probs" not in doc:
        raise InputError(str(path), 'expected {"actions": [...], "probs": [[...], ...]}')
    try:
        probs = np.asarray(doc["probs"], dtype=np.float64)
        valuations = np.asarray(doc["valuations"], dtype=np.int64) if "valuations" in doc else None
    except (TypeError, ValueError) as exc:
        raise InputError(str(path), f"probs/valuations must be numeric tables ({exc})") from None
    meta = {k: doc[k] for k in ("actions", "observation", "output") if k in doc}
    return "table", None, meta, _table(path, probs, valuations)


def _table(path: Path, probs: np.ndarray, valuations: np.ndarray | None):
    if probs.ndim != 2 or not np.isfinite(probs).all() or (probs < 0).any():
        raise InputError(
            str(path), "probs must be a finite, non-negative [n_states, n_actions] table"
        )
    if valuations is not None and (valuations.ndim != 2 or len(valuations) != len(probs)):
        raise InputError(str(path), "valuations must be [n_states, n_vars], one row per probs row")
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
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"{METADATA}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(str(path), f"{METADATA}: must be a JSON object")
    return meta


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
    if (
        not (enabled | single[states]).all()
        and not np.logical_or.reduceat(enabled, mdp.row_groups[:-1]).all()
    ):
        bad = int(
            np.flatnonzero(~np.logical_or.reduceat(enabled, mdp.row_groups[:-1]) & ~single)[0]
        )
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
    """Renormalised distribution over enabled choices (softmax for logits)."""
    finite = np.isfinite(scores)
    if policy.output == "logits":
        shift = np.maximum.reduceat(np.where(finite, scores, -np.inf), mdp.row_groups[:-1])
        weights = np.where(finite, np.exp(scores - shift[states]), 0.0)
    else:
        weights = np.where(finite, scores, 0.0)
    totals = np.add.reduceat(weights, mdp.row_groups[:-1])
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
        return _table_outputs(policy, mdp)
    if policy.observation == "grid" and env.maze is None:
        raise InputError(policy.path, "the grid observation exists for mazes only; use valuation")
    planes = static_planes(env.maze) if policy.observation == "grid" else None
    chunks = []
    starts = range(0, mdp.n_states, BATCH_STATES)
    for start in progress(starts) if progress else starts:
        states = np.arange(start, min(start + BATCH_STATES, mdp.n_states))
        if planes is not None:
            batch = grid_observations(env.maze, mdp, states, planes)
        else:
            batch = valuation_observations(mdp, states)
        try:
            out = np.asarray(policy.run(np.ascontiguousarray(batch)), dtype=np.float64)
        except Exception as exc:
            raise InputError(
                policy.path,
                f"running the policy on {batch.shape} observations failed: {_first_line(exc)}",
            ) from None
        if out.ndim != 2 or len(out) != len(states):
            raise InputError(
                policy.path, f"expected outputs [batch, n_actions], got {list(out.shape)}"
            )
        chunks.append(out)
    outputs = np.concatenate(chunks) if chunks else np.zeros((0, len(policy.actions)))
    if not np.isfinite(outputs).all():
        raise InputError(policy.path, "the policy outputs NaN or infinite values")
    return outputs


def _table_outputs(policy: Policy, mdp: MDP) -> np.ndarray:
    table = policy.table
    if policy.keys == "state":
        if len(table) != mdp.n_states:
            raise InputError(
                policy.path, f"table has {len(table)} rows, the model {mdp.n_states} states"
            )
        return table
    keys = policy.valuations
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
