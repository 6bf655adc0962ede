"""The torch modules of a Stable-Baselines3 policy as verifier.policy.sb3_zip rebuilds it.

Two kinds of module: mirrors of SB3's own layer structure (`ActorCritic`, `DQN` and the
feature extractors), whose state dict has exactly SB3's keys so that `policy.pth` loads into
them strictly; and the scriptable network a policy check runs (`ArrayPolicy`,
`DictPolicy`), built from the mirror's loaded layers: SB3's preprocessing, the actor's
features extractor and head. Imported only by verifier.policy.sb3_zip, once torch is known to be
installed.
"""

import torch
from torch import nn


class NatureCNN(nn.Module):
    """SB3's NatureCNN (torch_layers.py): three convolutions, then a linear layer with ReLU.

    `height`, `width`: the channels-first image's size, which fixes the flattened width."""

    def __init__(self, channels: int, height: int, width: int, features: int):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4, padding=0),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=0),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(nature_cnn_width(height, width), features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(x))


def nature_cnn_width(height: int, width: int) -> int:
    """The width of NatureCNN's flattened convolution output on a height x width image
    (kernels 8, 4, 3; strides 4, 2, 1; no padding), 0 if the image is too small."""
    for kernel, stride in ((8, 4), (4, 2), (3, 1)):
        height = (height - kernel) // stride + 1
        width = (width - kernel) // stride + 1
    return 64 * height * width if height > 0 and width > 0 else 0


class Combined(nn.Module):
    """SB3's CombinedExtractor: one extractor per key of a dict observation (its state dict
    keys are `extractors.<key>...`)."""

    def __init__(self, extractors: dict[str, nn.Module]):
        super().__init__()
        self.extractors = nn.ModuleDict(extractors)


class MlpExtractor(nn.Module):
    """SB3's MlpExtractor: the actor's and the critic's hidden layers."""

    def __init__(self, policy_net: nn.Sequential, value_net: nn.Sequential):
        super().__init__()
        self.policy_net = policy_net
        self.value_net = value_net


class ActorCritic(nn.Module):
    """The layers of SB3's ActorCriticPolicy (PPO, A2C): every key of its state dict."""

    def __init__(
        self,
        extractors: tuple[nn.Module, nn.Module, nn.Module],
        mlp_extractor: MlpExtractor,
        action_net: nn.Linear,
        value_net: nn.Linear,
    ):
        super().__init__()
        self.features_extractor, self.pi_features_extractor, self.vf_features_extractor = extractors
        self.mlp_extractor = mlp_extractor
        self.action_net = action_net
        self.value_net = value_net


class QNetwork(nn.Module):
    """SB3's QNetwork: a features extractor and the Q-value MLP."""

    def __init__(self, features_extractor: nn.Module, q_net: nn.Sequential):
        super().__init__()
        self.features_extractor = features_extractor
        self.q_net = q_net


class DQN(nn.Module):
    """The layers of SB3's DQNPolicy: the online and the target Q-network."""

    def __init__(self, q_net: QNetwork, q_net_target: QNetwork):
        super().__init__()
        self.q_net = q_net
        self.q_net_target = q_net_target


class Preprocess(nn.Module):
    """SB3's `preprocess_obs` of one Box or Discrete observation, with `predict`'s transpose.

    Discrete (`classes` > 0): one-hot over 0..classes-1 (a value outside is an error, as
    `F.one_hot` makes it). Box: float; an image (`image`: SB3's `is_image_space`) that comes
    channels-last where the policy's space is channels-first is transposed (SB3's
    `maybe_transpose`), and scaled by 1/255 when `scale` (`normalize_images`)."""

    shape: list[int]

    def __init__(self, shape: list[int], classes: int, image: bool, scale: bool):
        super().__init__()
        self.shape = shape
        self.classes = classes
        self.image = image
        self.scale = scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.classes > 0:
            index = obs.long().reshape(-1)
            if bool((index < 0).any()) or bool((index >= self.classes).any()):
                raise ValueError("a Discrete observation outside 0..n-1")
            return (index.unsqueeze(1) == torch.arange(self.classes, device=obs.device)).float()
        if self.image and obs.dim() == 4:
            size = obs.shape
            given = [size[1], size[2], size[3]]
            if given != self.shape and [size[3], size[1], size[2]] == self.shape:
                obs = obs.permute(0, 3, 1, 2)
        x = obs.float()
        if self.scale:
            x = x / 255.0
        return x


class ArrayPolicy(nn.Module):
    """The policy's network on an array observation: preprocess, extract, head (the actor's
    hidden layers and action_net for PPO/A2C, the Q-network's MLP for DQN)."""

    def __init__(self, preprocess: Preprocess, extractor: nn.Module, head: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.extractor = extractor
        self.head = head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.extractor(self.preprocess(obs)))


class Entry(nn.Module):
    """One key of a dict observation: its preprocessing and its extractor."""

    def __init__(self, preprocess: Preprocess, extractor: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.extractor = extractor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.extractor(self.preprocess(obs))


class DictPolicy(nn.Module):
    """The policy's network on a dict observation: each key's entry in the space's key order,
    concatenated (CombinedExtractor), then the head."""

    def __init__(self, entries: dict[str, Entry], head: nn.Module):
        super().__init__()
        self.entries = nn.ModuleDict(entries)
        self.head = head

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for key, entry in self.entries.items():
            parts.append(entry(obs[key]))
        return self.head(torch.cat(parts, dim=1))
