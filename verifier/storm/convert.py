"""Our MDP to and from Storm's sparse models.

Routes measured in benchmarks/: an MDP goes into Storm as a UMB archive written with numpy
(Storm's own CSR layout, a bulk copy), and a Storm model comes back through its UMB export.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import stormpy
import stormpy.models

from verifier.errors import InputError
from verifier.mdp import MDP, csr
from verifier.progress import stage
from verifier.storm.core import instance, numpy_mask

# The marker variable Storm adds for out-of-bounds detection (not a model variable).
OUT_OF_BOUNDS_VARIABLE = "_OutOfBoundsBit"


@stage("handing the model to Storm")
def to_storm(mdp: MDP):
    """Our MDP as a Storm sparse MDP (or DTMC), with labels, `init`, choice labels, rewards.

    Written as a UMB archive with numpy and read by Storm's UMB importer: the arrays are
    Storm's own layout, so this is a bulk copy (measured in benchmarks/compile_scaling.py:
    about 5x faster than SparseMatrixBuilder.add_next_values, which converts element by
    element).
    """
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.umb"
        _write_umb(mdp, archive)
        options = stormpy.io.UmbImportOptions()
        options.build_choice_labeling = True
        options.build_state_valuations = False
        return stormpy.build_model_from_umb(str(archive), options=options)


def _write_umb(mdp: MDP, path: Path) -> None:
    """The MDP as an uncompressed UMB archive (Storm's unified binary model format)."""
    matrix = mdp.transitions
    dtmc = mdp.kind == "dtmc"
    files = {
        "state-is-initial.bin": _bits(_initial_mask(mdp)),
        "choice-to-branches.bin": matrix.indptr.astype(np.uint64).tobytes(),
        "branch-to-target.bin": matrix.indices.astype(np.uint64).tobytes(),
        "branch-to-probability.bin": matrix.data.astype(np.float64).tobytes(),
    }
    annotations: dict = {"aps": {}, "rewards": {}}
    for name, mask in mdp.labels.items():
        annotations["aps"][name] = {
            "alias": name,
            "applies-to": ["states"],
            "type": {"size": 1, "type": "bool"},
        }
        files[f"annotations/aps/{name}/states/values.bin"] = _bits(mask)
    for name, values in mdp.rewards.items():
        annotations["rewards"][name] = {
            "alias": name,
            "applies-to": ["choices"],
            "type": {"size": 64, "type": "double"},
        }
        files[f"annotations/rewards/{name}/choices/values.bin"] = values.astype(
            np.float64
        ).tobytes()
    n_actions = 0
    if not dtmc:
        files["state-to-choices.bin"] = mdp.row_groups.astype(np.uint64).tobytes()
        if mdp.actions:
            names = ["", *mdp.actions]  # index 0: unlabelled choices
            encoded = [name.encode() for name in names]
            offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])])
            files["actions/choices/values.bin"] = (
                (mdp.choice_actions + 1).astype(np.uint32).tobytes()
            )
            files["actions/choices/string-mapping.bin"] = offsets.astype(np.uint64).tobytes()
            files["actions/choices/strings.bin"] = b"".join(encoded)
            n_actions = len(names)
    index = {
        "format-version": 1,
        "format-revision": 0,
        "file-data": {"tool": "verifier"},
        "transition-system": {
            "time": "discrete",
            "#players": 0 if dtmc else 1,
            "#states": mdp.n_states,
            "#initial-states": len(mdp.initial_states),
            "#choices": mdp.n_choices,
            "#choice-actions": n_actions,
            "#branches": int(matrix.nnz),
            "#branch-actions": 0,
            "#observations": 0,
            "branch-probability-type": {"size": 64, "type": "double"},
        },
        "annotations": {kind: entries for kind, entries in annotations.items() if entries},
    }
    with tarfile.open(path, "w") as tar:
        _add_to_tar(tar, "index.json", json.dumps(index).encode())
        for name, data in files.items():
            _add_to_tar(tar, name, data)


def _bits(mask: np.ndarray) -> bytes:
    """A bool array as UMB bit vector: little-endian bits in 64-bit words."""
    padded = np.zeros(-(-len(mask) // 64) * 64, dtype=bool)
    padded[: len(mask)] = mask
    return np.packbits(padded, bitorder="little").tobytes()


def _add_to_tar(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _initial_mask(mdp: MDP) -> np.ndarray:
    mask = np.zeros(mdp.n_states, dtype=bool)
    mask[mdp.initial_states] = True
    return mask


def from_storm(
    model,
    name: str = "model",
    variables: Iterable[str] | None = None,
    actions: Iterable[str] | None = None,
) -> MDP:
    """Read a Storm sparse MDP or DTMC into our type (via Storm's UMB export: bulk arrays).

    `variables` orders the valuation columns and `actions` the action names (a PRISM
    program's declaration order); names not given come after, sorted.
    """
    arrays = exported_arrays(model)
    n_states, n_choices = model.nr_states, model.nr_choices
    if "state-to-choices.bin" in arrays:
        row_groups = arrays["state-to-choices.bin"].astype(np.int64)
    else:  # a DTMC: one choice per state
        row_groups = np.arange(n_states + 1, dtype=np.int64)
    branch_start = arrays["choice-to-branches.bin"].astype(np.int64)
    rows = np.repeat(np.arange(n_choices, dtype=np.int64), np.diff(branch_start))
    transitions = csr(
        rows,
        arrays["branch-to-target.bin"].astype(np.int64),
        arrays["branch-to-probability.bin"],
        (n_choices, n_states),
    )

    names: list[str] = []
    choice_actions = np.full(n_choices, -1, dtype=np.int32)
    if model.has_choice_labeling():
        labels = model.choice_labeling.get_labels()
        given = [a for a in (actions or ()) if a in labels]
        for action in given + sorted(set(labels) - set(given)):
            choice_actions[numpy_mask(model.choice_labeling.get_choices(action), n_choices)] = len(
                names
            )
            names.append(action)

    labels = {
        label: numpy_mask(model.labeling.get_states(label), n_states)
        for label in model.labeling.get_labels()
        if label not in ("init", "deadlock", "out_of_bounds")
    }
    variables, valuations = state_valuations(model, variables)
    choice_states = np.repeat(np.arange(n_states), np.diff(row_groups))
    rewards = {}
    for reward_name, reward_model in model.reward_models.items():
        total = np.zeros(n_choices)
        if reward_model.has_state_rewards:
            total += np.asarray(reward_model.state_rewards)[choice_states]
        if reward_model.has_state_action_rewards:
            total += np.asarray(reward_model.state_action_rewards)
        if reward_model.has_transition_rewards:
            raise InputError(
                name,
                f"reward structure {reward_name!r} has transition rewards, which are not supported",
            )
        rewards[reward_name] = total
    return MDP(
        transitions=transitions,
        row_groups=row_groups,
        choice_actions=choice_actions,
        actions=tuple(names),
        labels=labels,
        initial_states=np.array(sorted(model.initial_states), dtype=np.int64),
        variables=variables,
        valuations=valuations,
        rewards=rewards,
        kind="mdp" if model.is_nondeterministic_model else "dtmc",
        name=name,
    )


def exported_arrays(model) -> dict[str, np.ndarray]:
    """A Storm model's transition arrays, through its uncompressed UMB export."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.umb"
        options = stormpy.io.UmbExportOptions()
        options.compression = type(options.compression).NO_COMPRESSION
        stormpy.io.export_to_umb(model, str(archive), options=options)
        return _read_umb_arrays(archive)


def _read_umb_arrays(archive: Path) -> dict[str, np.ndarray]:
    dtypes = {
        "state-to-choices.bin": np.uint64,
        "choice-to-branches.bin": np.uint64,
        "branch-to-target.bin": np.uint64,
        "branch-to-probability.bin": np.float64,
    }
    with tarfile.open(archive) as tar:

        def member(name: str) -> bytes:
            file = tar.extractfile(name)
            if file is None:
                raise InputError(str(archive), f"{name} is not a regular file")
            return file.read()

        index = json.loads(member("index.json"))
        probability_type = index["transition-system"].get("branch-probability-type", {})
        if probability_type.get("type") != "double":
            raise InputError(str(archive), f"unsupported probability type {probability_type}")
        present = set(tar.getnames())
        return {
            name: np.frombuffer(member(name), dtype=dtype)
            for name, dtype in dtypes.items()
            if name in present
        }


def state_valuations(model, order: Iterable[str] | None) -> tuple[tuple[str, ...], np.ndarray]:
    """Variables (in `order` if given) and their int64 values (booleans as 0/1)."""
    if not model.has_state_valuations():
        return (), np.zeros((model.nr_states, 0), dtype=np.int64)
    valuations = model.state_valuations
    variables = sorted(valuations.get_all_variables(), key=lambda v: v.index)
    variables = [v for v in variables if v.name != OUT_OF_BOUNDS_VARIABLE]
    if order is not None:
        rank = {name: i for i, name in enumerate(order)}
        variables.sort(key=lambda v: rank.get(v.name, len(rank)))
    columns = []
    for variable in variables:
        if variable.has_boolean_type():
            columns.append(numpy_mask(valuations.get_boolean_values(variable), model.nr_states))
        elif variable.has_integer_type():
            columns.append(np.asarray(valuations.get_int64_values(variable), dtype=np.int64))
        else:
            raise InputError(
                "PRISM model", f"variable {variable.name!r} is neither integer nor boolean"
            )
    values = (
        np.column_stack(columns).astype(np.int64) if columns else np.zeros((model.nr_states, 0))
    )
    return tuple(v.name for v in variables), values


def with_rewards(model, rewards: Mapping[str, np.ndarray]):
    """A Storm MDP with the transition matrix and labels of `model` and these state-action
    reward structures (float64 [n_choices] each): a copy in memory, not a conversion."""
    reward_models = {
        name: instance(stormpy.models.SparseRewardModel)(
            optional_state_action_reward_vector=np.asarray(values, dtype=np.float64).tolist()
        )
        for name, values in rewards.items()
    }
    components = instance(stormpy.models.SparseModelComponents)(
        transition_matrix=model.transition_matrix,
        state_labeling=model.labeling,
        reward_models=reward_models,
    )
    kind = (
        stormpy.models.SparseMdp if model.is_nondeterministic_model else stormpy.models.SparseDtmc
    )
    return instance(kind)(components)
