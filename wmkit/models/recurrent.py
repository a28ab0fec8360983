"""World models with memory made of a sequence network: what the LSTM and the Transformer share.

One *token* per real step enters the memory:

    x_t = [obs_t normalised (D), a_{t-1} encoded (A), 1 if an episode starts at t]

(the previous action is zero at a start). The memory folds the tokens into *features* f_t
(F numbers) that summarise everything seen up to and including obs_t: the belief. The LSTM
keeps (h, c) and reads one token at a time (`lstm.py`); the Transformer keeps the last W
tokens and attends over them (`transformer.py`). Everything else is shared and written here:

- a head reads (f_t, obs_t normalised, a_t encoded) and predicts what the MLP world model
  predicts from (obs_t, a_t): the change in observation in units of the buffer's delta std,
  the reward in units of its reward std, and a termination logit;
- `imagine` feeds the prediction back: next obs = obs + change, then the token
  (next obs, a_t) enters the memory and the next step reads the new features;
- training (`batches = "sequences"`) is one-step prediction on windows of consecutive real
  rows: the memory reads the real observations (teacher forcing), resetting at every episode
  start and at position 0 of each window; the loss is the MLP's (squared error of the change,
  Huber of the reward, weighted BCE of the termination), averaged over the rows `mask` keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..buffer import ReplayBuffer
from ..spaces import ActionSpec
from ..utils import as_float_tensor, check_positive_int
from .base import Imagines
from .normalised import Normalised

Memory = tuple[torch.Tensor, ...]
"""A model's memory: tensors whose leading dimension is the batch (LSTM: (h, c);
Transformer: the last W tokens and which of them are real)."""


@dataclass
class MemoryState:
    """n beliefs: the current observation (n, D), the memory and its features (n, F)."""

    obs: torch.Tensor
    memory: Memory
    features: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def __getitem__(self, index: Any) -> MemoryState:
        return MemoryState(self.obs[index], tuple(m[index] for m in self.memory),
                           self.features[index])

    def expand(self, n: int) -> MemoryState:
        """A batch of 1 repeated n times (views, no copies)."""
        return MemoryState(self.obs.expand(n, *self.obs.shape[1:]),
                           tuple(m.expand(n, *m.shape[1:]) for m in self.memory),
                           self.features.expand(n, *self.features.shape[1:]))


def mlp(fan_in: int, hidden: int, fan_out: int, layers: int) -> nn.Sequential:
    """`layers` Linear-SiLU blocks of width `hidden`, then a linear output."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(fan_in if i == 0 else hidden, hidden), nn.SiLU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, fan_out))


class RecurrentWorldModel(Imagines, Normalised, nn.Module):
    """The shared part of a memory world model (see the module docstring).

    A subclass builds its memory network in `__init__` (after calling this one's) and writes
    three methods on tokens (..., T), T = `token_dim`:

    - `_start(n) -> memory`: the empty memory of n beliefs;
    - `_advance(memory, tokens (n, T)) -> (memory, features (n, F))`: read one token each;
    - `_sequence(tokens (B, L, T), starts (B, L) bool) -> (features (B, L, F), memory after
      the last token)`: read whole windows, resetting where `starts` is True; row t's
      features must equal what `_advance` gives after the same tokens.
    """

    batches: ClassVar = "sequences"
    fit_defaults: ClassVar = {"grad_clip": 100.0}
    burn_in: int = 16  # rows `beliefs` filters before each asked-for row

    def __init__(self, obs_dim: int, action_spec: ActionSpec, features: int, hidden: int,
                 layers: int) -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        if not isinstance(action_spec, ActionSpec):
            raise ValueError(f"action_spec: expected an ActionSpec, got {action_spec!r}")
        self.action_spec = action_spec
        self.hidden = check_positive_int("hidden", hidden)
        self.layers = check_positive_int("layers", layers)
        self.token_dim = obs_dim + action_spec.encoded_dim + 1
        self.head = mlp(features + obs_dim + action_spec.encoded_dim, hidden, obs_dim + 2,
                        layers)
        self.register_norm_buffers(obs_dim)  # set_normalizer, device, for_env: see Normalised

    # -- what a subclass writes -----------------------------------------------------------------

    def _start(self, n: int) -> Memory:
        raise NotImplementedError

    def _advance(self, memory: Memory, tokens: torch.Tensor) -> tuple[Memory, torch.Tensor]:
        raise NotImplementedError

    def _sequence(self, tokens: torch.Tensor, starts: torch.Tensor
                  ) -> tuple[torch.Tensor, Memory]:
        raise NotImplementedError

    # -- tokens and the head --------------------------------------------------------------------

    def _tokens(self, obs: torch.Tensor, previous: torch.Tensor, first: torch.Tensor
                ) -> torch.Tensor:
        """obs (..., D), previous action encoded (..., A), first (...) bool -> (..., T)."""
        first = first[..., None].float()
        return torch.cat([self.inputs(obs), previous * (1 - first), first], -1)

    def _outputs(self, features: torch.Tensor, obs: torch.Tensor, encoded_action: torch.Tensor
                 ) -> torch.Tensor:
        """(..., F), (..., D), (..., A) -> normalised [change (D), reward, done logit]."""
        return self.head(torch.cat([features, self.inputs(obs), encoded_action], -1))

    def _check_sequences(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a batch of windows (B, L, ...) to the device; ValueError if a field is bad."""
        if not isinstance(batch, dict):
            raise ValueError(f"batch: expected a dict of tensors, got {type(batch).__name__}")
        missing = {"obs", "action", "reward", "next_obs", "terminated", "is_first"} - set(batch)
        if missing:
            raise ValueError(f"batch: missing fields {sorted(missing)}")
        obs = batch["obs"]
        if not isinstance(obs, torch.Tensor) or obs.ndim != 3 or obs.shape[-1] != self.obs_dim \
                or obs.shape[1] < 1:
            raise ValueError(f"batch: expected obs of shape (B, L, {self.obs_dim}) with L >= 1, "
                             f"got {getattr(obs, 'shape', obs)!r}")
        rows = obs.shape[:2]
        batch = {k: v.to(self.device) for k, v in batch.items()}
        for key in ("obs", "next_obs"):
            if batch[key].shape != obs.shape or not torch.isfinite(batch[key]).all():
                raise ValueError(f"batch: {key} must be finite with shape {tuple(obs.shape)}")
        for key in ("reward", "terminated", "is_first") + (("mask",) if "mask" in batch else ()):
            if batch[key].shape != rows:
                raise ValueError(f"batch: {key} must have shape {tuple(rows)}, "
                                 f"got {tuple(batch[key].shape)}")
        if batch["action"].shape[:2] != rows:
            raise ValueError(f"batch: action must start with shape {tuple(rows)}, "
                             f"got {tuple(batch['action'].shape)}")
        return batch

    def _sequence_tokens(self, batch: dict[str, torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A checked batch -> tokens (B, L, T), starts (B, L) bool, actions encoded (B, L, A).

        Position 0 of a window starts one: what came before it is not in the window.
        """
        starts = batch["is_first"].bool().clone()
        starts[:, 0] = True
        actions = self.action_spec.encode(batch["action"])
        previous = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
        return self._tokens(batch["obs"], previous, starts), starts, actions

    # -- training -------------------------------------------------------------------------------

    def loss(self, batch: dict[str, torch.Tensor], done_weight: float = 1.0,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss components on B windows of L rows, in normalised units (as the MLP's).

        batch: obs, next_obs (B, L, D), action (B, L[, A]), reward, terminated, is_first
        (B, L), optionally mask (B, L) (1 where a row counts). Returns "delta", "reward",
        "done" and their sum "total". `generator` is unused (nothing random here).
        """
        batch = self._check_sequences(batch)
        tokens, starts, actions = self._sequence_tokens(batch)
        features, _ = self._sequence(tokens, starts)
        out = self._outputs(features, batch["obs"], actions)
        d = self.obs_dim
        target_delta = (batch["next_obs"] - batch["obs"] - self.delta_mean) / self.delta_std
        target_reward = (batch["reward"] - self.reward_mean) / self.reward_std
        mask = batch["mask"].float() if "mask" in batch else torch.ones_like(target_reward)

        def mean(values: torch.Tensor) -> torch.Tensor:
            return (values * mask).sum() / mask.sum().clamp_min(1.0)

        losses = {
            "delta": mean((out[..., :d] - target_delta).square().mean(-1)),
            "reward": mean(F.huber_loss(out[..., d], target_reward, reduction="none")),
            "done": mean(F.binary_cross_entropy_with_logits(
                out[..., d + 1], batch["terminated"].float(), reduction="none",
                pos_weight=torch.tensor(done_weight, device=self.device))),
        }
        losses["total"] = losses["delta"] + losses["reward"] + losses["done"]
        return losses

    # -- the two functions every planner uses ---------------------------------------------------

    @torch.no_grad()
    def filter(self, state: MemoryState | None, action: Any, obs: Any) -> MemoryState:
        """Fold a real observation into the belief (batch of 1); None starts an episode.

        `action` is the action taken from `state` (ignored when `state` is None).
        """
        obs_t = as_float_tensor("obs", obs, (self.obs_dim,), self.device)
        if obs_t.numel() != self.obs_dim:
            raise ValueError(f"obs: expected shape ({self.obs_dim},), got {tuple(obs_t.shape)}")
        obs_t = obs_t.reshape(1, self.obs_dim)
        if state is None:
            memory = self._start(1)
            previous = torch.zeros(1, self.action_spec.encoded_dim, device=self.device)
        else:
            if not isinstance(state, MemoryState) or len(state) != 1:
                raise ValueError(f"state: expected one MemoryState (from filter) or None, "
                                 f"got {type(state).__name__}")
            if action is None:
                raise ValueError("action: expected the action taken from `state`, got None")
            checked = torch.as_tensor(self.action_spec.check(action), device=self.device)
            previous = self.action_spec.encode(checked.reshape(1, *self.action_spec.shape))
            memory = state.memory
        first = torch.full((1,), state is None, device=self.device)
        memory, features = self._advance(memory, self._tokens(obs_t, previous, first))
        return MemoryState(obs_t, memory, features)

    @torch.no_grad()
    def beliefs(self, buffer: ReplayBuffer, index: torch.Tensor) -> MemoryState:
        """The beliefs (N, ...) right after rows `index` (N,) of `buffer` were observed.

        Each is filtered from the `burn_in` rows up to it (fewer at an episode start, where
        the memory resets as `filter` does), all N windows in one batch.
        """
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
        if len(index) == 0 or not bool(((index >= 0) & (index < len(buffer))).all()):
            raise ValueError(f"index: expected rows in [0, {len(buffer)}), got {index.tolist()}")
        rows = index[:, None] + torch.arange(-self.burn_in + 1, 1)  # (N, burn_in)
        clipped = rows < 0
        window = buffer[rows.clamp_min(0)]
        # Rows before the buffer's start repeat row 0, which starts an episode: resetting at
        # every clipped position leaves the belief of row 0 onwards, as it should be.
        window["is_first"] = window["is_first"] | clipped
        tokens, starts, _ = self._sequence_tokens(self._check_sequences(window))
        features, memory = self._sequence(tokens, starts)
        return MemoryState(window["obs"][:, -1].to(self.device), memory, features[:, -1])

    # -- LatentDynamics: what `Imagines.imagine` steps ------------------------------------------

    def initial(self, state: MemoryState, n: int) -> MemoryState:
        """A belief (1 or n) from `filter` or `beliefs` -> n latents."""
        if not isinstance(state, MemoryState):
            raise ValueError(f"state: expected a MemoryState (from filter), got {type(state)}")
        if len(state) not in (1, n):
            raise ValueError(f"state: batch of {len(state)} fits neither 1 nor N={n}")
        return state.expand(n) if len(state) == 1 else state

    def step(self, latent: MemoryState, actions: torch.Tensor
             ) -> tuple[MemoryState, torch.Tensor, torch.Tensor, None]:
        """Predict from (features, obs, action), then read the predicted obs into the memory."""
        encoded = self.action_spec.encode(actions)
        out = self._outputs(latent.features, latent.obs, encoded)
        d = self.obs_dim
        next_obs = latent.obs + out[:, :d] * self.delta_std + self.delta_mean
        reward = out[:, d] * self.reward_std + self.reward_mean
        first = torch.zeros(len(next_obs), dtype=torch.bool, device=next_obs.device)
        memory, features = self._advance(latent.memory, self._tokens(next_obs, encoded, first))
        return MemoryState(next_obs, memory, features), reward, out[:, d + 1], None

    def decode(self, latent: MemoryState) -> torch.Tensor:
        """n latents -> their observations (n, D), raw units."""
        return latent.obs

    def features(self, latent: MemoryState) -> torch.Tensor:
        """n latents -> the memory's features (n, F): what a policy or a probe reads."""
        return latent.features
