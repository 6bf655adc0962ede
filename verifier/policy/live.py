"""Policies in memory: a Stable-Baselines3 model or a torch module, verified as they are now.

A live object is the caller's own code, so it runs in this process: no file, no child
process, no inspection of its graph (a policy *file* is untrusted input and gets all three,
verifier.policy.safety). A Stable-Baselines3 model (PPO, DQN, ...; MlpPolicy or CnnPolicy)
is wrapped as `export_sb3` wraps it for a file (verifier.policy.export: SB3's preprocessing
inside, PPO's logits or DQN's Q-values out) and observes what the environment and its
wrappers return (`env`); a torch module takes observations as a policy file's metadata says
(`observation`, `actions`, `output`). torch and SB3 are imported only for such an object.

Examples
--------
>>> model = PPO("MlpPolicy", env).learn(10_000)                     # doctest: +SKIP
>>> policy = live_policy(model)                                     # doctest: +SKIP
>>> policy.observation, policy.run is not None                     # doctest: +SKIP
('env', True)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from verifier.errors import DependencyMissing, InputError
from verifier.policy.load import OBSERVATIONS, OUTPUTS, Policy


def is_live(policy: object) -> bool:
    """Whether `policy` is a Stable-Baselines3 model or a torch module (without importing
    either: an object of theirs exists only when they are imported)."""
    return _is_sb3(policy) or _is_module(policy)


def live_policy(
    policy: object,
    observation: str | None = None,
    actions: Sequence[str] | None = None,
    output: str | None = None,
    name: str | None = None,
) -> Policy:
    """A Policy that runs `policy` (an SB3 model or a torch.nn.Module) in this process.

    For an SB3 model, `actions` names its outputs in order (default: the first n action
    names of its environment, as `export_sb3` writes them, else `a0, a1, ...`); the
    observation is `env` and the output logits (DQN: Q-values, whose argmax is the greedy
    action). For a torch module, `actions` is required and `observation` (default
    `valuation`) and `output` (default `logits`) say what it takes and gives, as a policy
    file's metadata does. `name` is what reports call the policy (default: its class, "in
    memory").
    """
    name = name or f"{type(policy).__name__} (in memory)"
    if _is_sb3(policy):
        if observation not in (None, "env") or output not in (None, "logits"):
            raise InputError(name, "a Stable-Baselines3 model observes `env` and outputs logits")
        return _sb3_policy(policy, actions, name)
    if not _is_module(policy):
        raise InputError(
            name,
            f"a {type(policy).__name__} is not a policy: give a policy file, a Policy, a "
            "Stable-Baselines3 model or a torch.nn.Module",
        )
    observation = observation or "valuation"
    output = output or "logits"
    if observation not in OBSERVATIONS:
        raise InputError(name, f"observation {observation!r}; known: {', '.join(OBSERVATIONS)}")
    if output not in OUTPUTS:
        raise InputError(name, f"output {output!r}; known: {', '.join(OUTPUTS)}")
    if not actions:
        raise InputError(name, "a torch module needs the names of its outputs: actions=[...]")
    names = _names(name, actions)
    return Policy(name, "module", observation, names, output, run=_runner(policy, None))


def _sb3_policy(model, actions: Sequence[str] | None, name: str) -> Policy:
    from verifier.policy.export import _policy_network

    network = _policy_network(model, _observation_space(model))
    n_actions = int(model.action_space.n)
    names = _names(name, actions) if actions else _sb3_action_names(model, n_actions)
    if len(names) != n_actions:
        raise InputError(name, f"{len(names)} action names for a policy with {n_actions} outputs")
    return Policy(name, "sb3", "env", names, "logits", run=_runner(network, model.device))


def _runner(network, device):
    """numpy batch (or dict of batches) -> numpy outputs, without gradients."""
    torch = _torch()

    def run(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(batch, dict):
            inputs = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
        else:
            inputs = torch.as_tensor(batch, device=device)
        with torch.no_grad():
            return network(inputs).detach().cpu().numpy()

    return run


def _observation_space(model):
    """The space of the observations the environment and its wrappers return: SB3 wraps an
    image environment in VecTransposeImage (HWC -> CHW), which the exported network undoes."""
    env = model.get_env()
    if env is not None and type(env).__name__ == "VecTransposeImage":
        return env.venv.observation_space
    return env.observation_space if env is not None else model.observation_space


def _sb3_action_names(model, n_actions: int) -> tuple[str, ...]:
    """The names `export_sb3` writes: the first `n_actions` of the environment's (MiniGrid's
    `Actions`, FrozenLake's left, down, right, up, ...), else a0, a1, ..."""
    from verifier.policy.export import _action_names

    env = model.get_env()
    if env is None:
        return tuple(f"a{i}" for i in range(n_actions))
    return tuple(_action_names(env, n_actions))


def _names(name: str, actions: Sequence[str]) -> tuple[str, ...]:
    names = tuple(actions)
    if not all(isinstance(a, str) for a in names) or len(set(names)) != len(names):
        raise InputError(name, f"actions must be distinct names, got {list(names)}")
    return names


def _is_sb3(policy: object) -> bool:
    return any(
        cls.__name__ == "BaseAlgorithm" and cls.__module__.startswith("stable_baselines3")
        for cls in type(policy).__mro__
    )


def _is_module(policy: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(policy, torch.nn.Module)


def _torch():
    try:
        import torch
    except ImportError:
        raise DependencyMissing("running a policy in memory", "torch", "torch") from None
    return torch
