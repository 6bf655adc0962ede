"""Export a trained Stable-Baselines3 policy (PPO or DQN; MlpPolicy or CnnPolicy) for
`verify`, in one call from a training script.

SB3's own `.zip` holds cloudpickled objects, which `verify` never loads. This writes the
network instead, as TorchScript (`.pt`) or ONNX (`.onnx`), with `verifier.json` metadata
(`"observation": "env"`, the action names, `"output": "logits"`). The exported module takes
a batch of observations exactly as the environment and its wrappers return them and does
SB3's own preprocessing inside: HWC -> CHW where SB3 transposed images (VecTransposeImage),
/255 for images, one-hot for Discrete. PPO's output is its action logits, DQN's its Q-values
(the argmax is the greedy action in both). SB3 and torch are imported only when called.

Examples
--------
>>> model = PPO("MlpPolicy", env).learn(100_000)                     # doctest: +SKIP
>>> export_sb3(model, "policy.pt", env, actions=["left", "right", "forward"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from verifier.policy.load import METADATA


def export_sb3(model, path: str | Path, env, actions: list[str] | None = None) -> Path:
    """Write `model`'s deterministic policy to `path` (.pt TorchScript or .onnx) with metadata.

    `env` is the environment with the wrappers used in training (its observation space
    fixes the input layout); `actions` names the policy's outputs in order (default: the
    first n action names of a MiniGrid env, else `a0, a1, ...`).
    """
    import numpy as np
    import torch

    path = Path(path)
    network = _policy_network(model, env.observation_space)
    n_actions = int(model.action_space.n)
    names = list(actions) if actions is not None else _action_names(env, n_actions)
    if len(names) != n_actions:
        raise ValueError(f"{len(names)} action names for a policy with {n_actions} actions")
    metadata = json.dumps({"observation": "env", "actions": names, "output": "logits"})
    sample = np.stack([env.observation_space.sample() for _ in range(2)])
    example = torch.as_tensor(sample)
    network.eval()
    if path.suffix.lower() == ".onnx":
        _write_onnx(network, example, path, metadata)
    else:
        with torch.no_grad():
            traced = torch.jit.trace(network, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA: metadata})
    return path


def _action_names(env, n_actions: int) -> list[str]:
    actions = getattr(env.unwrapped, "actions", None)
    if actions is not None:
        return [a.name for a in actions][:n_actions]
    return [f"a{i}" for i in range(n_actions)]


def _write_onnx(network, example, path: Path, metadata: str) -> None:
    import onnx
    import torch

    torch.onnx.export(
        network,
        (example,),
        str(path),
        input_names=["obs"],
        output_names=["logits"],
        dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, metadata
    onnx.save(proto, str(path))


def _policy_network(model, observation_space):
    """A torch module: raw env observations -> PPO logits or DQN Q-values, with SB3's
    preprocessing (and its image transpose) inside."""
    import torch
    from stable_baselines3.common.preprocessing import is_image_space

    policy = model.policy
    policy.set_training_mode(False)
    trained = model.observation_space
    transpose = (
        is_image_space(trained)
        and len(observation_space.shape) == 3
        and trained.shape == (observation_space.shape[2], *observation_space.shape[:2])
        and trained.shape != observation_space.shape
    )
    q_net = getattr(policy, "q_net", None)

    class PolicyNetwork(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.policy = policy

        def forward(self, obs):
            if transpose:
                obs = obs.permute(0, 3, 1, 2)
            if q_net is not None:
                return q_net(obs)
            return self.policy.get_distribution(obs).distribution.logits

    return PolicyNetwork()
