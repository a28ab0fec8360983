"""An LSTM world model: a memory (h, c) that reads one token per real step.

See `recurrent.py` for the tokens, the head, imagination and the loss. The features, the
belief a planner or a probe reads, are the LSTM's output h after the latest token.
"""

from __future__ import annotations

import torch
from torch import nn

from ..spaces import ActionSpec
from ..utils import default_device
from .recurrent import Memory, RecurrentWorldModel


class LSTMWorldModel(RecurrentWorldModel):
    """An LSTM cell folds each token into (h, c); a head predicts from (h, obs, action).

    Args:
        obs_dim, action_spec: as for `MLPWorldModel` (`for_env(env, device=)` sizes them).
        hidden: width of the LSTM's state and of the head's layers.
        layers: hidden layers of the head.
        device: where the weights live; default `wmkit.default_device()`.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, hidden: int = 128,
                 layers: int = 2, device: str | torch.device | None = None) -> None:
        super().__init__(obs_dim, action_spec, features=hidden, hidden=hidden, layers=layers)
        self.cell = nn.LSTMCell(self.token_dim, hidden)
        self.to(default_device(device))

    def _start(self, n: int) -> Memory:
        zeros = torch.zeros(n, self.hidden, device=self.device)
        return zeros, zeros

    def _advance(self, memory: Memory, tokens: torch.Tensor) -> tuple[Memory, torch.Tensor]:
        h, c = self.cell(tokens, memory)
        return (h, c), h

    def _sequence(self, tokens: torch.Tensor, starts: torch.Tensor
                  ) -> tuple[torch.Tensor, Memory]:
        """Tokens (B, L, T), starts (B, L) -> h at every row (B, L, hidden), last (h, c)."""
        h, c = self._start(tokens.shape[0])
        outputs = []
        for t in range(tokens.shape[1]):
            keep = (~starts[:, t, None]).float()  # an episode start empties the memory
            h, c = self.cell(tokens[:, t], (h * keep, c * keep))
            outputs.append(h)
        return torch.stack(outputs, 1), (h, c)
