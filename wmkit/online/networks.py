"""The four transition networks behind `TransitionBackend`.

Every network reads a window of W featurised (observation, action) pairs, the current pair
last, and answers for *the current pair* with one vector per ensemble member:

    forward(window: (B, W, F)) -> (M, B, obs_dim + 2)

F = obs_dim + action_dim + 1: normalised observation, one-hot action, and a 1/0 flag that
marks real pairs versus left padding. The output row is
[normalised change in observation (obs_dim), reward, done logit]. M is 1 for the single
networks and `ensemble_size` for the ensemble.

MLP and ENSEMBLE look only at the current pair (W = 1 suffices for them); LSTM and
TRANSFORMER also read the history before it. Both sequence networks end in the same head as
the MLP and feed it the current pair directly too (a skip connection), so history only has
to add what the current observation cannot tell.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .types import TransitionBackend, WorldModelConfig


def feature_dim(obs_dim: int, action_dim: int) -> int:
    """F, the width of one featurised (observation, action) pair."""
    return obs_dim + action_dim + 1


def output_dim(obs_dim: int) -> int:
    """Change in observation (obs_dim), then reward, then done logit."""
    return obs_dim + 2


def _head(in_dim: int, hidden_dim: int, obs_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.SiLU(),
                         nn.Linear(hidden_dim, output_dim(obs_dim)))


class MLPNet(nn.Module):
    """Two hidden layers on the current pair: (B, W, F) -> (1, B, obs_dim + 2)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        features = feature_dim(obs_dim, action_dim)
        self.body = nn.Sequential(nn.Linear(features, hidden_dim), nn.SiLU())
        self.head = _head(hidden_dim, hidden_dim, obs_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(window[:, -1]))[None]

    def done_bias(self) -> torch.Tensor:
        """A view of the done logit's bias, shape (1,) (tests force dones through it)."""
        return self.head[-1].bias[-1:]


class EnsembleNet(nn.Module):
    """`members` MLPs with stacked weights: one batched matmul per layer for all members.

    weights[i]: (M, in_i, out_i); biases[i]: (M, 1, out_i).
    (B, W, F) -> (M, B, obs_dim + 2). Members differ only by their random initialisation
    and see the same minibatches; their spread is the model's own doubt.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, members: int) -> None:
        super().__init__()
        self.members = members
        sizes = [feature_dim(obs_dim, action_dim), hidden_dim, hidden_dim, output_dim(obs_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)  # the same init as nn.Linear, member by member
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out)
                                             .uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, fan_out)
                                            .uniform_(-bound, bound)))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        x = window[:, -1].expand(self.members, -1, -1)  # (M, B, F), no copy
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)  # (M, B, out_i) = bias + x @ weight
            if i < last:
                x = nn.functional.silu(x)
        return x

    def done_bias(self) -> torch.Tensor:
        """A view of every member's done-logit bias, shape (M, 1, 1)."""
        return self.biases[-1][:, :, -1:]


class LSTMNet(nn.Module):
    """An LSTM over the window, its last state and the current pair into the MLP head.

    (B, W, F) -> (1, B, obs_dim + 2).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int) -> None:
        super().__init__()
        features = feature_dim(obs_dim, action_dim)
        self.lstm = nn.LSTM(features, hidden_dim, batch_first=True)
        self.head = _head(hidden_dim + features, hidden_dim, obs_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(window)  # (B, W, H)
        return self.head(torch.cat([states[:, -1], window[:, -1]], dim=-1))[None]

    def done_bias(self) -> torch.Tensor:
        """A view of the done logit's bias, shape (1,)."""
        return self.head[-1].bias[-1:]


class TransformerNet(nn.Module):
    """One pre-norm self-attention layer over the window (padding masked out), its output at
    the current pair and the pair itself into the MLP head.

    (B, W, F) -> (1, B, obs_dim + 2).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, window: int) -> None:
        super().__init__()
        features = feature_dim(obs_dim, action_dim)
        heads = next(h for h in (4, 2, 1) if hidden_dim % h == 0)
        self.embed = nn.Linear(features, hidden_dim)
        self.position = nn.Parameter(torch.randn(window, hidden_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden_dim, heads, dim_feedforward=2 * hidden_dim,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = _head(hidden_dim + features, hidden_dim, obs_dim)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        padding = window[..., -1] == 0  # (B, W): True where there is no real pair
        tokens = self.embed(window) + self.position[-window.shape[1]:]
        states = self.encoder(tokens, src_key_padding_mask=padding)  # (B, W, H)
        return self.head(torch.cat([states[:, -1], window[:, -1]], dim=-1))[None]

    def done_bias(self) -> torch.Tensor:
        """A view of the done logit's bias, shape (1,)."""
        return self.head[-1].bias[-1:]


SEQUENCE_WINDOW = 8  # pairs an LSTM / TRANSFORMER reads: the current one and up to 7 before


def context_window(backend: TransitionBackend) -> int:
    """How many (observation, action) pairs the backend reads: 1, or SEQUENCE_WINDOW."""
    sequence = (TransitionBackend.LSTM, TransitionBackend.TRANSFORMER)
    return SEQUENCE_WINDOW if backend in sequence else 1


def make_network(config: WorldModelConfig) -> nn.Module:
    """The network for `config.backend`, freshly initialised from torch's current RNG."""
    obs_dim, action_dim, hidden = config.obs_dim, config.action_dim, config.hidden_dim
    if config.backend is TransitionBackend.MLP:
        return MLPNet(obs_dim, action_dim, hidden)
    if config.backend is TransitionBackend.ENSEMBLE:
        return EnsembleNet(obs_dim, action_dim, hidden, config.ensemble_size)
    if config.backend is TransitionBackend.LSTM:
        return LSTMNet(obs_dim, action_dim, hidden)
    return TransformerNet(obs_dim, action_dim, hidden, context_window(config.backend))
