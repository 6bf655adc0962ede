"""A corpus of ordinary policy networks: the layers of torch.nn, every torch.nn activation
and common tensor operators, each as a tiny network from a maze's valuation (a batch of 8
float32 values per state) to 4 action logits.

Every entry is built by `build(name)` with a fixed seed and in eval mode; `SCRIPTED_ONLY`
names the entries whose forward has data-dependent Python control flow or list outputs that
tracing cannot record (none at present: every entry is both scripted and traced).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OBS = 8
ACTIONS = 4


class Lifted(nn.Module):
    """obs [B, 8] -> Linear -> reshape to [B, *shape] -> body -> flatten -> Linear -> [B, 4]."""

    def __init__(self, body: nn.Module, shape: list[int]):
        super().__init__()
        self.shape = shape
        self.lift = nn.Linear(OBS, math.prod(shape))
        self.body = body
        with torch.no_grad():
            width = self.body(torch.zeros([2, *shape])).reshape(2, -1).shape[1]
        self.head = nn.Linear(width, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        x = self.lift(obs).reshape([obs.shape[0]] + self.shape)
        x = self.body(x)
        return self.head(x.reshape(obs.shape[0], -1))


class Indices(nn.Module):
    """A layer over integer indices: obs -> |obs| mod 10 as int64 -> body -> Linear."""

    def __init__(self, body: nn.Module, width: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        index = torch.remainder(obs.abs().long(), 10)
        x = self.body(index)
        return self.head(x.reshape(obs.shape[0], -1))


class Halves(nn.Module):
    """A layer of two inputs, the halves of the observation."""

    def __init__(self, body: nn.Module, width: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.body(obs[:, :4], obs[:, 4:]))


class Recurrent(nn.Module):
    """A sequence layer over the 8 values as a sequence of 4 steps of 2 features."""

    def __init__(self, body: nn.Module, width: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        out, _ = self.body(obs.reshape(obs.shape[0], 4, 2))
        return self.head(out[:, -1])


class Cell(nn.Module):
    """An RNN cell stepped over 4 steps of 2 features (LSTMCell keeps a (h, c) pair)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.rnn = nn.RNNCell(2, 6)
        self.gru = nn.GRUCell(2, 6)
        self.lstm = nn.LSTMCell(2, 6)
        self.head = nn.Linear(6, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        steps = obs.reshape(obs.shape[0], 4, 2)
        h = obs.new_zeros(obs.shape[0], 6)
        c = obs.new_zeros(obs.shape[0], 6)
        for t in range(4):
            if self.kind == "rnn":
                h = self.rnn(steps[:, t], h)
            elif self.kind == "gru":
                h = self.gru(steps[:, t], h)
            else:
                h, c = self.lstm(steps[:, t], (h, c))
        return self.head(h)


class Attention(nn.Module):
    """Self-attention over the 8 values as 4 tokens of 2 features, embedded to 8."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 8)
        self.attention = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)
        self.head = nn.Linear(8, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        tokens = self.embed(obs.reshape(obs.shape[0], 4, 2))
        out, _ = self.attention(tokens, tokens, tokens)
        return self.head(out.mean(1))


class Encoder(nn.Module):
    """A TransformerEncoder of two layers (dropout 0.1, off in eval) over 4 tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 8)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        out = self.encoder(self.embed(obs.reshape(obs.shape[0], 4, 2)))
        return self.head(out[:, 0])


class Bag(nn.Module):
    """EmbeddingBag over the 8 values as indices in bags of 4 (mean)."""

    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 5, mode="mean")
        self.head = nn.Linear(10, ACTIONS)

    def forward(self, obs: Tensor) -> Tensor:
        index = torch.remainder(obs.abs().long(), 10).reshape(-1, 4)
        return self.head(self.bag(index).reshape(obs.shape[0], -1))


class Operator(nn.Module):
    """A tensor operator between two Linear layers: obs -> Linear(8, 8) -> op -> Linear."""

    def __init__(self, op: str, width: int = 8):
        super().__init__()
        self.op = op
        self.lift = nn.Linear(OBS, 8)
        self.head = nn.Linear(width, ACTIONS)
        self.register_buffer("edges", torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0]))

    def forward(self, obs: Tensor) -> Tensor:
        x = self.lift(obs)
        op = self.op
        if op == "one_hot":
            y = F.one_hot(torch.remainder(obs[:, 1].long(), 4), 4).to(x.dtype)
            y = torch.cat([y, x[:, :4]], 1)
        elif op == "bucketize":
            y = torch.bucketize(x, self.edges).to(x.dtype)
        elif op == "searchsorted":
            y = torch.searchsorted(self.edges, x.contiguous()).to(x.dtype)
        elif op == "scatter":
            index = torch.remainder(obs.abs().long(), 8)
            y = torch.zeros_like(x).scatter(1, index, x)
        elif op == "scatter_reduce":
            index = torch.remainder(obs.abs().long(), 8)
            y = torch.zeros_like(x).scatter_reduce(1, index, x, reduce="amax", include_self=False)
        elif op == "index_put":
            y = x.clone()
            y[:, torch.tensor([0, 2])] = torch.tensor([1.0, -1.0])
            y[y < -0.5] = 0.0
        elif op == "gather":
            y = torch.gather(x, 1, torch.argsort(x, 1))
        elif op == "where":
            y = torch.where(x > 0, x, 0.1 * x)
        elif op == "masked_fill":
            y = x.masked_fill(x < 0, -1.0)
        elif op == "normalize":
            y = F.normalize(x, dim=1)
        elif op == "einsum":
            y = torch.einsum("bi,bj->bij", x, x).reshape(x.shape[0], 64)[:, :8]
        elif op == "topk":
            y = torch.topk(x, 4, 1).values
        elif op == "sort":
            y = torch.sort(x, 1, descending=True).values
        elif op == "cumsum":
            y = torch.cumsum(x, 1)
        else:  # argmax
            y = F.one_hot(torch.argmax(x, 1), 8).to(x.dtype) + x
        return self.head(y)


WIDTHS = {"one_hot": 8, "topk": 4}


def _activations(*modules: nn.Module) -> nn.Module:
    """Linear layers of width 8 with one activation after each."""
    layers: list[nn.Module] = []
    for module in modules:
        layers += [nn.Linear(OBS, OBS), module]
    return nn.Sequential(*layers, nn.Linear(OBS, ACTIONS))


def _glu() -> nn.Module:
    return nn.Sequential(nn.Linear(OBS, 16), nn.GLU(), nn.Linear(OBS, ACTIONS))


def _softmax2d() -> nn.Module:
    return Lifted(nn.Softmax2d(), [2, 2, 2])


LAYERS = {
    "linear": lambda: nn.Sequential(nn.Linear(OBS, 16), nn.ReLU(), nn.Linear(16, ACTIONS)),
    "bilinear": lambda: Halves(nn.Bilinear(4, 4, 6), 6),
    "conv1d": lambda: Lifted(nn.Conv1d(2, 3, 3, padding=1), [2, 4]),
    "conv2d": lambda: Lifted(nn.Conv2d(1, 4, 3, padding=1), [1, 4, 4]),
    "conv3d": lambda: Lifted(nn.Conv3d(1, 2, 2), [1, 3, 3, 3]),
    "conv_transpose2d": lambda: Lifted(nn.ConvTranspose2d(1, 2, 2), [1, 3, 3]),
    "max_pool1d": lambda: Lifted(nn.MaxPool1d(2), [2, 4]),
    "max_pool2d": lambda: Lifted(nn.MaxPool2d(2), [1, 4, 4]),
    "avg_pool2d": lambda: Lifted(nn.AvgPool2d(2), [1, 4, 4]),
    "adaptive_avg_pool2d": lambda: Lifted(nn.AdaptiveAvgPool2d(2), [1, 5, 5]),
    "adaptive_max_pool1d": lambda: Lifted(nn.AdaptiveMaxPool1d(3), [2, 5]),
    "batch_norm1d": lambda: Lifted(nn.BatchNorm1d(8), [8]),
    "batch_norm2d": lambda: Lifted(nn.BatchNorm2d(2), [2, 2, 2]),
    "layer_norm": lambda: Lifted(nn.LayerNorm(8), [8]),
    "group_norm": lambda: Lifted(nn.GroupNorm(2, 4), [4, 3]),
    "instance_norm1d": lambda: Lifted(nn.InstanceNorm1d(2, affine=True), [2, 4]),
    "embedding": lambda: Indices(nn.Embedding(10, 3), 24),
    "embedding_bag": Bag,
    "rnn": lambda: Recurrent(nn.RNN(2, 6, batch_first=True), 6),
    "gru": lambda: Recurrent(nn.GRU(2, 6, num_layers=2, dropout=0.2, batch_first=True), 6),
    "lstm": lambda: Recurrent(
        nn.LSTM(2, 3, num_layers=2, dropout=0.2, batch_first=True, bidirectional=True), 6
    ),
    "rnn_cell": lambda: Cell("rnn"),
    "gru_cell": lambda: Cell("gru"),
    "lstm_cell": lambda: Cell("lstm"),
    "multihead_attention": Attention,
    "transformer_encoder": Encoder,
    "flatten_unflatten": lambda: Lifted(
        nn.Sequential(nn.Flatten(), nn.Unflatten(1, (2, 4)), nn.Flatten()), [2, 4]
    ),
    "dropout": lambda: _activations(nn.Dropout(0.5), nn.AlphaDropout(0.5)),
    "dropout2d": lambda: Lifted(nn.Dropout2d(0.5), [2, 2, 2]),
    "pixel_shuffle_upsample": lambda: Lifted(
        nn.Sequential(nn.PixelShuffle(2), nn.Upsample(scale_factor=2.0)), [4, 1, 2]
    ),
}

ACTIVATIONS = {
    "activations_relu_family": lambda: _activations(
        nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(0.1), nn.PReLU(), nn.RReLU(), nn.ELU(), nn.CELU()
    ),
    "activations_smooth": lambda: _activations(
        nn.SELU(), nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Mish(), nn.Softplus(), nn.Sigmoid()
    ),
    "activations_hard": lambda: _activations(
        nn.Hardtanh(),
        nn.Hardsigmoid(),
        nn.Hardswish(),
        nn.Hardshrink(),
        nn.Softshrink(),
        nn.Threshold(0.1, -1.0),
        nn.Tanh(),
    ),  # fmt: skip
    "activations_other": lambda: _activations(
        nn.Tanhshrink(),
        nn.Softsign(),
        nn.LogSigmoid(),
        nn.Softmax(1),
        nn.Softmin(1),
        nn.LogSoftmax(1),
    ),  # fmt: skip
    "glu": _glu,
    "softmax2d": _softmax2d,
}

OPERATORS = {
    f"op_{op}": (lambda op=op: Operator(op, WIDTHS.get(op, 8)))
    for op in (
        "one_hot", "bucketize", "searchsorted", "scatter", "scatter_reduce", "index_put",
        "gather", "where", "masked_fill", "normalize", "einsum", "topk", "sort", "cumsum",
        "argmax",
    )
}  # fmt: skip

CORPUS = {**LAYERS, **ACTIVATIONS, **OPERATORS}


def build(name: str) -> nn.Module:
    """The corpus network `name`, seeded, with its batch-norm statistics set, in eval mode."""
    torch.manual_seed(sum(map(ord, name)))
    net = CORPUS[name]()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()
