"""Stable-Baselines3 `.zip` agents, read without unpickling.

`model.save` writes a zip archive (SB3's save_util.py): `data`, a JSON object of the
algorithm's attributes, in which every attribute JSON cannot hold is a cloudpickle payload
(":serialized:", base64) beside readable copies of its first-level fields (a class's
`__module__` and its functions' names, a space's `_shape`, `dtype`, `low`, `high`, a dict's
items as text); `policy.pth`, the policy's state dict (torch.save); and
`policy.optimizer.pth`, `pytorch_variables.pth`, `_stable_baselines3_version`,
`system_info.txt`. SB3's own `load` unpickles the payloads, which can run any code.

Here nothing is unpickled. The policy class, its keyword arguments and the observation and
action spaces are read from the readable fields only; `policy.pth` is read with
`torch.load(weights_only=True)`; each member is read up to a size cap. The network is
rebuilt as SB3 builds it (PPO and A2C: ActorCriticPolicy, ActorCriticCnnPolicy,
MultiInputActorCriticPolicy; DQN: DQNPolicy, CnnPolicy, MultiInputPolicy, with SB3's
FlattenExtractor, NatureCNN or CombinedExtractor), and the weights must load into it with a
strict `load_state_dict`. The rebuilt network takes the environment's own observations and
does SB3's preprocessing (`preprocess_obs`: images scaled by 1/255, Discrete one-hot, a dict
per key; channels-last images transposed as `predict` does); it returns PPO's and A2C's
action logits or DQN's Q-values, so that its argmax is `model.predict(obs,
deterministic=True)`. It is scripted (TorchScript) and then checked and run as a `.pt`
policy is.

What these fields do not fix for certain is refused (InputError naming the entry, with the
export command `EXPORT`): a policy class or features extractor that SB3 does not ship, an
activation or keyword argument that is not readable or not known here, spaces other than
Box, Discrete and a Dict of them with a Discrete action space, image bounds that the file
prints only in part when they decide the scaling, and VecNormalize statistics
(`vecnormalize.pkl`, a pickle) beside the agent.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from pathlib import Path

from verifier.errors import InputError
from verifier.policy.sb3_data import EXPORT, OBSERVATION_ENTRY, Agent, Array, read_agent

MAX_DATA_BYTES = 16 * 2**20  # the `data` JSON
MAX_WEIGHTS_BYTES = 512 * 2**20  # policy.pth


def read_sb3_zip(path: Path, content: bytes | None = None):
    """(TorchScript module, metadata) of the SB3 agent saved at `path` (whose bytes are
    `content` where the caller has read them); InputError (naming the entry) for what
    cannot be rebuilt for certain.

    The metadata is the policy's `verifier.json`: the `env` observation, logits, the number
    of actions (named by the environment) and the observation the network takes."""
    import torch

    from verifier.policy import sb3_network

    version = re.match(r"(\d+)\.(\d+)", torch.__version__)
    if version is None or (int(version[1]), int(version[2])) < (2, 6):
        raise InputError(
            str(path),
            f"reading an SB3 zip needs torch 2.6 or later (this is {torch.__version__}, whose "
            "weights-only loading can run code a file carries, CVE-2025-32434)",
        )
    _refuse_vecnormalize(path)
    data_text, weights = _members(path, content)
    agent = read_agent(path, data_text)
    _check_weights_archive(path, weights)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            str(path), f"not a weights-only state dict ({_first_line(exc)}); {EXPORT}", "policy.pth"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(str(path), f"not a state dict of named tensors; {EXPORT}", "policy.pth")
    mirror, network = _rebuild(path, agent, torch, sb3_network)
    _load_strictly(path, agent, mirror, state)
    network.eval()
    module = torch.jit.script(network)
    return module, _metadata(agent)


def _refuse_vecnormalize(path: Path) -> None:
    """VecNormalize statistics beside the agent (`vecnormalize.pkl` as RL Zoo names them,
    `vec_normalize.pkl` as SB3's examples do) mean its observations were normalised."""
    try:
        siblings = [sibling.name for sibling in path.parent.iterdir()]
    except OSError as exc:
        raise InputError(
            str(path),
            f"cannot list its directory to look for VecNormalize statistics ({_first_line(exc)})",
        ) from None
    for name in siblings:
        if re.sub(r"[-_]", "", name.lower()).endswith("vecnormalize.pkl"):
            raise InputError(
                str(path),
                f"{ascii(name)} beside the agent holds VecNormalize statistics, a pickle "
                "that is never loaded, and without them the observations the network was "
                "trained on are unknown; export it in its training script with them: "
                "export_sb3(model, 'policy.pt', env, normalize=VecNormalize.load(PATH, venv))",
            )


def _members(path: Path, content: bytes | None = None) -> tuple[str, bytes]:
    """The `data` text and the `policy.pth` bytes, each read up to its cap."""
    try:
        with zipfile.ZipFile(path if content is None else io.BytesIO(content)) as archive:
            names = archive.namelist()
            for name in ("data", "policy.pth"):
                if names.count(name) != 1:
                    problem = "is missing" if name not in names else "appears more than once"
                    raise InputError(
                        str(path), f"{name} {problem}: not a Stable-Baselines3 agent as saved"
                    )
            data = _read(path, archive, "data", MAX_DATA_BYTES)
            weights = _read(path, archive, "policy.pth", MAX_WEIGHTS_BYTES)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(str(path), f"not a readable zip archive ({_first_line(exc)})") from None
    try:
        return data.decode("utf-8"), weights
    except UnicodeDecodeError:
        raise InputError(str(path), "not UTF-8 text", "data") from None


def _read(path: Path, archive: zipfile.ZipFile, name: str, cap: int) -> bytes:
    with archive.open(name) as member:
        content = member.read(cap + 1)
    if len(content) > cap:
        raise InputError(
            str(path), f"larger than {cap // 2**20} MiB, more than an agent needs", name
        )
    return content


def _check_weights_archive(path: Path, weights: bytes) -> None:
    """policy.pth is itself a zip (torch.save's format), whose records torch allocates at
    their declared sizes: together they must stay within the cap."""
    if not zipfile.is_zipfile(io.BytesIO(weights)):
        return  # torch's legacy format reads its tensors from the bytes themselves
    try:
        with zipfile.ZipFile(io.BytesIO(weights)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except Exception as exc:
        raise InputError(
            str(path), f"not a readable archive ({_first_line(exc)})", "policy.pth"
        ) from None
    if declared > MAX_WEIGHTS_BYTES:
        raise InputError(
            str(path),
            f"declares {declared // 2**20} MiB of tensors, more than "
            f"{MAX_WEIGHTS_BYTES // 2**20} MiB",
            "policy.pth",
        )


def _rebuild(path: Path, agent: Agent, torch, modules):
    """(the mirror of SB3's policy, whose state dict has SB3's keys; the network a check
    runs, sharing the mirror's layers)."""
    nn = torch.nn
    source = str(path)
    extractors, features = _extractors(source, agent, modules)
    activation = getattr(nn, agent.activation)

    def mlp(width: int, hidden: tuple[int, ...], out: int = 0):
        """SB3's create_mlp: Linear and activation per hidden layer, then the output Linear."""
        layers: list = []
        for size in hidden:
            layers += [nn.Linear(width, size), activation()]
            width = size
        if out:
            layers.append(nn.Linear(width, out))
        return nn.Sequential(*layers)

    if agent.family == "actor-critic":
        arch = agent.hidden
        pi, vf = mlp(features, arch["pi"]), mlp(features, arch["vf"])
        latent_pi = arch["pi"][-1] if arch["pi"] else features
        latent_vf = arch["vf"][-1] if arch["vf"] else features
        action_net = nn.Linear(latent_pi, agent.actions)
        mirror = modules.ActorCritic(
            (extractors(), extractors(), extractors()),
            modules.MlpExtractor(pi, vf),
            action_net,
            nn.Linear(latent_vf, 1),
        )
        extractor, head = mirror.pi_features_extractor, nn.Sequential(pi, action_net)
    else:
        online = modules.QNetwork(extractors(), mlp(features, agent.hidden["q"], agent.actions))
        target = modules.QNetwork(extractors(), mlp(features, agent.hidden["q"], agent.actions))
        mirror = modules.DQN(online, target)
        extractor, head = online.features_extractor, online.q_net
    scale = agent.normalize_images
    preprocess = {
        key: modules.Preprocess(list(a.shape), a.classes, bool(a.image), scale and bool(a.image))
        for key, a in agent.observation.items()
    }
    if agent.is_dict:
        network = modules.DictPolicy(
            {
                key: modules.Entry(preprocess[key], extractor.extractors[key])
                for key in agent.observation
            },
            head,
        )
    else:
        network = modules.ArrayPolicy(preprocess[""], extractor, head)
    return mirror, network


def _extractors(source: str, agent: Agent, modules):
    """(a factory of the features extractor as SB3 builds it for the observation space,
    its output width)."""
    import torch

    nn = torch.nn
    kwargs = agent.extractor_kwargs
    if agent.extractor == "CombinedExtractor":
        normalized = kwargs["normalized_image"]
        cnn = {
            key: (normalized and len(a.shape) == 3 and not a.classes) or bool(a.image)
            for key, a in agent.observation.items()
        }
        for key, a in agent.observation.items():
            if cnn[key] and not modules.nature_cnn_width(*a.shape[1:]):
                raise InputError(
                    source, f"{ascii(key)}: too small for NatureCNN; {EXPORT}", OBSERVATION_ENTRY
                )
        width = sum(
            kwargs["cnn_output_dim"] if cnn[key] else _flat_width(a)
            for key, a in agent.observation.items()
        )

        def combined():
            return modules.Combined(
                {
                    key: modules.NatureCNN(*a.shape, kwargs["cnn_output_dim"])
                    if cnn[key]
                    else nn.Flatten()
                    for key, a in agent.observation.items()
                }
            )

        return combined, width
    array = agent.observation[""]
    if agent.extractor == "FlattenExtractor":
        return nn.Flatten, _flat_width(array)
    if not modules.nature_cnn_width(*array.shape[1:]):
        raise InputError(
            source, f"the image is too small for NatureCNN; {EXPORT}", OBSERVATION_ENTRY
        )
    features = kwargs["features_dim"]
    return (lambda: modules.NatureCNN(*array.shape, features)), features


def _flat_width(array: Array) -> int:
    return array.classes or math.prod(array.shape)


def _load_strictly(path: Path, agent: Agent, mirror, state: dict) -> None:
    """policy.pth into the mirror with a strict load_state_dict; the first difference named."""
    expected = {k: tuple(v.shape) for k, v in mirror.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    resized = [k for k in expected if k in given and given[k] != expected[k]]
    problems = [
        *(f"{ascii(k)} is not a layer of the rebuilt network" for k in unexpected[:1]),
        *(f"{ascii(k)} is missing" for k in missing[:1]),
        *(
            f"{ascii(k)} has shape {list(given[k])}, the rebuilt layer {list(expected[k])}"
            for k in resized[:1]
        ),
    ]
    if problems:
        more = len(missing) + len(unexpected) + len(resized) - len(problems)
        raise InputError(
            str(path),
            f"the weights do not fit {agent.policy_class} as its data describes it: "
            f"{'; '.join(problems)}{f' (and {more} more)' if more else ''}; {EXPORT}",
            "policy.pth",
        )
    mirror.load_state_dict(state, strict=True)


def _metadata(agent: Agent) -> dict:
    """The verifier.json of the rebuilt network (README, "Writing a policy for verify")."""
    shapes = {key: list(a.shape) for key, a in agent.observation.items()}
    dtypes = {key: a.dtype for key, a in agent.observation.items()}
    return {
        "observation": "env",
        "output": "logits",
        "action_count": agent.actions,
        "observation_shape": shapes if agent.is_dict else shapes[""],
        "observation_dtype": dtypes if agent.is_dict else dtypes[""],
        "channels_first_images": [key for key, a in agent.observation.items() if a.image],
    }


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return ascii(text[0])[1:-1] if text else type(exc).__name__
