"""A windowed causal Transformer world model: attention over the last W tokens.

See `recurrent.py` for the tokens, the head, imagination and the loss. Every token attends
to itself and the real tokens of the last W steps of its episode (causal, sliding-window
attention, as in Mistral), through a stack of pre-norm blocks (nanoGPT's: attention, then an
MLP, each added to a residual stream). Where a key sits is told by a learned bias per head
and *age* (0 for the token itself, up to W-1), added to the attention logits.

Because a token never looks forward and positions are ages, a token's keys and values never
change once computed. The memory of a belief is therefore each block's keys and values of
the last W tokens (a KV cache): an imagined step computes the newest token alone and attends
over the cache, W times less work than re-reading the window; training reads whole windows
of rows at once with a banded causal mask. Both compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import ActionSpec
from ..utils import check_positive_int, default_device
from .recurrent import Memory, RecurrentWorldModel


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)), for x (n, Q, width)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.project = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(),
                                 nn.Linear(2 * width, width))

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (n, Q, width) -> queries, keys, values, each (n, heads, Q, width / heads)."""
        n, length, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).split(width, -1)
        return tuple(t.reshape(n, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))

    def attend(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               logit_bias: torch.Tensor) -> torch.Tensor:
        """The block's output (n, Q, width) for inputs x (n, Q, width), their queries q, the
        keys and values (n, heads, K, .) they see, and logit_bias (n, heads, Q, K) (-inf where
        a query may not look)."""
        n, length, width = x.shape
        logits = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + logit_bias  # (n, heads, Q, K)
        y = logits.softmax(-1) @ v  # (n, heads, Q, width / heads)
        x = x + self.project(y.transpose(1, 2).reshape(n, length, width))
        return x + self.mlp(self.mlp_norm(x))


class TransformerWorldModel(RecurrentWorldModel):
    """Sliding-window causal attention over the last `window` tokens; a head predicts from
    the newest token's output.

    Args:
        obs_dim, action_spec: as for `MLPWorldModel` (`for_env(env, device=)` sizes them).
        window: W, how many real steps a token sees, itself included.
        hidden: width of the Transformer and of the head's layers.
        heads: attention heads (must divide `hidden`).
        blocks: Transformer blocks.
        layers: hidden layers of the head.
        device: where the weights live; default `wmkit.default_device()`.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, window: int = 8,
                 hidden: int = 64, heads: int = 4, blocks: int = 1, layers: int = 2,
                 device: str | torch.device | None = None) -> None:
        super().__init__(obs_dim, action_spec, features=hidden, hidden=hidden, layers=layers)
        self.window = check_positive_int("window", window)
        self.heads = check_positive_int("heads", heads)
        if hidden % heads:
            raise ValueError(f"heads: expected a divisor of hidden={hidden}, got {heads}")
        n_blocks = check_positive_int("blocks", blocks)
        # A token's output at block b depends on b * (W - 1) earlier rows; one row more gives
        # the oldest of them its previous action (a window's first row counts as a start).
        self.burn_in = n_blocks * (self.window - 1) + 2
        self.embed = nn.Linear(self.token_dim, hidden)
        self.age_bias = nn.Parameter(torch.zeros(heads, self.window))
        self.blocks = nn.ModuleList(Block(hidden, heads) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(hidden)
        self.to(default_device(device))

    def _start(self, n: int) -> Memory:
        """Empty caches: keys and values (n, blocks, heads, W, hidden / heads), real (n, W)."""
        shape = (n, len(self.blocks), self.heads, self.window, self.hidden // self.heads)
        return (torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device),
                torch.zeros(n, self.window, dtype=torch.bool, device=self.device))

    def _advance(self, memory: Memory, tokens: torch.Tensor) -> tuple[Memory, torch.Tensor]:
        """Read one token each (n, T): the oldest cached step leaves, the newest enters."""
        keys, values, real = memory
        real = torch.cat([real[:, 1:], torch.ones_like(real[:, :1])], 1)
        # Slot s holds the step of age W-1-s; empty slots are never looked at.
        ages = self.age_bias.flip(1)  # (heads, W): bias by slot
        logit_bias = torch.where(real[:, None, None, :], ages[None, :, None, :], -torch.inf)
        x = self.embed(tokens)[:, None]  # (n, 1, hidden)
        new_keys, new_values = [], []
        for i, block in enumerate(self.blocks):
            q, k, v = block.keys_values(x)
            new_keys.append(torch.cat([keys[:, i, :, 1:], k], 2))
            new_values.append(torch.cat([values[:, i, :, 1:], v], 2))
            x = block.attend(x, q, new_keys[-1], new_values[-1], logit_bias)
        memory = (torch.stack(new_keys, 1), torch.stack(new_values, 1), real)
        return memory, self.norm(x[:, 0])

    def _sequence(self, tokens: torch.Tensor, starts: torch.Tensor
                  ) -> tuple[torch.Tensor, Memory]:
        """Tokens (B, L, T), starts (B, L) -> features (B, L, hidden), the caches after row L-1.

        Row i looks at rows j with i - W < j <= i in its own episode: a banded causal mask.
        """
        b, length = starts.shape
        w = self.window
        episode = starts.long().cumsum(1)
        rows = torch.arange(length, device=tokens.device)
        age = rows[:, None] - rows[None, :]  # (L, L): i - j
        allowed = ((age >= 0) & (age < w))[None] & (episode[:, :, None] == episode[:, None, :])
        bias = self.age_bias[:, age.clamp(0, w - 1)]  # (heads, L, L)
        logit_bias = torch.where(allowed[:, None], bias[None], -torch.inf)  # (B, heads, L, L)
        x = self.embed(tokens)
        keys, values = [], []
        for block in self.blocks:
            q, k, v = block.keys_values(x)
            keys.append(k)
            values.append(v)
            x = block.attend(x, q, k, v, logit_bias)
        # The caches after the last row: its window's keys and values, left-padded when the
        # window is shorter than W, real where a row is in the last row's episode.
        pad = max(0, w - length)
        real = F.pad(episode[:, -w:] == episode[:, -1:], (pad, 0))
        keys_t = F.pad(torch.stack(keys, 1)[..., -w:, :], (0, 0, pad, 0))
        values_t = F.pad(torch.stack(values, 1)[..., -w:, :], (0, 0, pad, 0))
        return self.norm(x), (keys_t, values_t, real)
