"""Export a trained Stable-Baselines3 policy (PPO, A2C or DQN; MlpPolicy, CnnPolicy or
MultiInputPolicy) for `verify`, in one call from a training script.

`verify` reads SB3's own `.zip` without unpickling it (verifier.policy.sb3_zip), but only for the
policies SB3 ships; this export covers everything else the training script can run (custom
policy classes and features extractors, VecNormalize statistics). It writes the network as
TorchScript (`.pt`) or ONNX (`.onnx`), with `verifier.json` metadata: `"observation":
"env"`, the action names, `"output": "logits"`, and the interface `verify` checks against
each model before any verdict: the observation's shape and dtype (one per key of a dict
observation) and the env's observation wrappers, inner to outer. The exported module takes a
batch of observations exactly as the environment and its wrappers return them and does what
SB3 does to them: VecNormalize's normalisation when given, HWC -> CHW where SB3 transposed
images (VecTransposeImage), then the policy's own preprocessing (/255 for images, one-hot for
Discrete). PPO's and A2C's output is their action logits, DQN's its Q-values (the argmax is
the greedy action in all three). SB3 and torch are imported only when called.

Examples
--------
>>> model = PPO("MlpPolicy", env).learn(100_000)                     # doctest: +SKIP
>>> export_sb3(model, "policy.pt", env, actions=["left", "right", "forward"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from verifier.policy.load import METADATA


def export_sb3(
    model, path: str | Path, env, actions: list[str] | None = None, normalize=None
) -> Path:
    """Write `model`'s deterministic policy to `path` (.pt TorchScript or .onnx) with metadata.

    `env` is the environment with the wrappers used in training (its observation space
    fixes the input layout, and must be the model's: ValueError naming both otherwise);
    `actions` names the policy's outputs in order (default: the environment's first n action
    names: MiniGrid's, FrozenLake's, ..., else `a0, a1, ...`); `normalize` is the
    VecNormalize the model was trained under, whose observation statistics the exported
    network then applies.
    """
    import numpy as np
    import torch
    from gymnasium import spaces

    path = Path(path)
    space = env.observation_space
    _check_spaces(model.observation_space, space)
    if not isinstance(model.action_space, spaces.Discrete):
        raise ValueError(f"the model's actions are {model.action_space}, not Discrete")
    network = _policy_network(model, space, normalize)
    n_actions = int(model.action_space.n)
    names = list(actions) if actions is not None else _action_names(env, n_actions)
    if len(names) != n_actions:
        raise ValueError(f"{len(names)} action names for a policy with {n_actions} actions")
    shape, dtype = _observation(space)
    metadata = json.dumps(
        {
            "observation": "env",
            "actions": names,
            "output": "logits",
            "observation_shape": shape,
            "observation_dtype": dtype,
            "wrappers": _wrappers(env),
        }
    )
    samples = [space.sample() for _ in range(2)]
    example: dict[str, torch.Tensor] | torch.Tensor
    if isinstance(space, spaces.Dict):
        example = {
            key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in space.spaces
        }
    else:
        example = torch.as_tensor(np.stack(samples))
    network.eval()
    if path.suffix.lower() == ".onnx":
        _write_onnx(network, example, path, metadata)
    else:
        with torch.no_grad():
            traced = torch.jit.trace(network, (example,), check_trace=False, strict=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA: metadata})
    return path


def _check_spaces(trained, given) -> None:
    if not _same_space(trained, given):
        raise ValueError(
            f"the env's observation space {given} is not the model's {trained}: pass the env "
            "with the wrappers the model was trained with"
        )


def _same_space(trained, given) -> bool:
    """Whether `given` (the env's) is the space `trained` was trained on, up to SB3's
    HWC -> CHW transpose of images."""
    from gymnasium import spaces

    if isinstance(trained, spaces.Dict) or isinstance(given, spaces.Dict):
        return (
            isinstance(trained, spaces.Dict)
            and isinstance(given, spaces.Dict)
            and set(trained.spaces) == set(given.spaces)
            and all(_same_space(trained[k], given[k]) for k in trained.spaces)
        )
    return trained == given or _transposed(trained, given)


def _transposed(trained, given) -> bool:
    """Whether SB3 stored `given`, an image, channels-first as `trained` (VecTransposeImage)."""
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    return (
        isinstance(trained, spaces.Box)
        and isinstance(given, spaces.Box)
        and is_image_space(trained)
        and len(given.shape) == 3
        and trained.shape == (given.shape[2], *given.shape[:2])
        and trained.shape != given.shape
        and trained.dtype == given.dtype
    )


def _observation(space) -> tuple:
    """(shape, dtype name) of one observation, or dicts of them for a dict observation."""
    import numpy as np
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        parts = {key: _observation(sub) for key, sub in space.spaces.items()}
        return {k: p[0] for k, p in parts.items()}, {k: p[1] for k, p in parts.items()}
    return list(space.shape or ()), np.dtype(space.dtype).name


def _base_env(env):
    """The gymnasium env inside a VecEnv (its first), VecNormalize or other VecEnv wrapper."""
    while hasattr(env, "venv"):
        env = env.venv
    envs = getattr(env, "envs", None)
    return envs[0] if envs else env


def _wrappers(env) -> list[str]:
    """The class names of `env`'s observation wrappers, inner to outer."""
    import gymnasium

    env = _base_env(env)
    names = []
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, gymnasium.ObservationWrapper):
            names.append(type(env).__name__)
        env = env.env
    return names[::-1]


def _action_names(env, n_actions: int) -> list[str]:
    from verifier.inputs.gym import action_names

    names = action_names(_base_env(env))
    if len(names) >= n_actions:
        return list(names[:n_actions])
    return [f"a{i}" for i in range(n_actions)]


def _write_onnx(network, example, path: Path, metadata: str) -> None:
    """ONNX with a dynamic batch axis; a dict observation becomes one input per key, named
    after it."""
    import onnx
    import torch

    if isinstance(example, dict):
        keys = list(example)

        class Positional(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.network = network

            def forward(self, *tensors):
                return self.network(dict(zip(keys, tensors, strict=True)))

        module, args, names = Positional(), tuple(example[k] for k in keys), keys
    else:
        module, args, names = network, (example,), ["obs"]
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={name: {0: "batch"} for name in (*names, "logits")},
        dynamo=False,
    )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, metadata
    onnx.save(proto, str(path))


def _policy_network(model, observation_space, normalize=None):
    """A torch module: raw env observations -> PPO/A2C logits or DQN Q-values, with
    VecNormalize's normalisation (`normalize`), SB3's image transpose and the policy's own
    preprocessing inside."""
    import torch
    from gymnasium import spaces

    policy = model.policy
    policy.set_training_mode(False)
    trained = model.observation_space
    if isinstance(observation_space, spaces.Dict):
        transposed = {k for k in trained.spaces if _transposed(trained[k], observation_space[k])}
    else:
        transposed = {""} if _transposed(trained, observation_space) else set()
    statistics = _statistics(normalize)
    q_net = getattr(policy, "q_net", None)

    def normalized(key, obs):
        """VecNormalize's normalize_obs: clip((obs - mean) / sqrt(var + eps)) as float32,
        computed in float64 as numpy does."""
        if key not in statistics:
            return obs
        mean, std, clip = statistics[key]
        return ((obs.double() - mean) / std).clamp(-clip, clip).float()

    def prepared(key, obs):
        obs = normalized(key, obs)
        return obs.permute(0, 3, 1, 2) if key in transposed else obs

    class PolicyNetwork(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.policy = policy

        def forward(self, obs):
            if isinstance(obs, dict):
                obs = {key: prepared(key, value) for key, value in obs.items()}
            else:
                obs = prepared("", obs)
            if q_net is not None:
                return q_net(obs)
            return self.policy.get_distribution(obs).distribution.logits

    return PolicyNetwork()


def _statistics(normalize) -> dict:
    """Per entry ("" for an array observation) the float64 mean, standard deviation and clip
    of a VecNormalize's observation statistics (none when it does not normalise them)."""
    import torch

    if normalize is None or not normalize.norm_obs:
        return {}

    def entry(rms):
        mean = torch.as_tensor(rms.mean, dtype=torch.float64)
        std = torch.sqrt(torch.as_tensor(rms.var, dtype=torch.float64) + normalize.epsilon)
        return mean, std, float(normalize.clip_obs)

    if isinstance(normalize.obs_rms, dict):
        return {key: entry(normalize.obs_rms[key]) for key in normalize.norm_obs_keys}
    return {"": entry(normalize.obs_rms)}
