"""A deterministic MLP world model: (obs, action) -> change in obs, reward, termination."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import ActionSpec
from ..utils import check_positive_int, default_device
from .base import (
    ObservedState,
    Policy,
    Rollout,
    TerminationFn,
    alive_before,
    imagine_latent,
    observation_state,
)
from .normalised import Normalised


class MLPWorldModel(ObservedState, Normalised, nn.Module):
    """One network predicts, from normalised (obs, action), three things at once:

    - the change in observation, normalised by the buffer's delta statistics (predicting the
      change rather than the next observation makes "stay the same" the easy default);
    - the reward, normalised by the buffer's reward statistics;
    - a termination logit (trained with a weighted BCE: terminations are rare).

    The normalisation statistics live in buffers, so they travel in `state_dict()` (see
    `Normalised`, which also gives `set_normalizer`, `device` and `for_env`).
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, hidden: int = 200, layers: int = 2,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.action_spec = action_spec
        check_positive_int("hidden", hidden)
        check_positive_int("layers", layers)
        sizes = [obs_dim + action_spec.encoded_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            blocks += [nn.Linear(fan_in, fan_out), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, obs_dim + 2))
        self.register_norm_buffers(obs_dim)
        self.to(default_device(device))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Raw obs (B, D) and actions (B,) or (B, A) -> normalised outputs (B, D + 2):
        [delta (D), reward (1), termination logit (1)]. The network reads `inputs(obs)`:
        clamped to the data's range, then normalised (see `Normalised`)."""
        return self.net(torch.cat([self.inputs(obs), self.action_spec.encode(action)], dim=-1))

    def predict(self, obs: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw obs (B, D), actions (B[, A]) -> next obs (B, D), reward (B,), done logit (B,)."""
        out = self(obs, action)
        reward = out[:, self.obs_dim] * self.reward_std + self.reward_mean
        return self.next_obs(obs, out[:, : self.obs_dim]), reward, out[:, self.obs_dim + 1]

    def obs_target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """What the first D outputs learn (B, D): the change in observation, normalised."""
        return (next_obs - obs - self.delta_mean) / self.delta_std

    def next_obs(self, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The inverse of `obs_target`: obs (B, D) and the first D outputs -> next obs (B, D)."""
        return obs + out * self.delta_std + self.delta_mean

    def loss(self, batch: dict[str, torch.Tensor], done_weight: float = 1.0
             ) -> dict[str, torch.Tensor]:
        """Loss components on a batch of real transitions, all in normalised units."""
        out = self(batch["obs"], batch["action"])
        target_delta = self.obs_target(batch["obs"], batch["next_obs"])
        target_reward = (batch["reward"] - self.reward_mean) / self.reward_std
        losses = {
            "delta": F.mse_loss(out[:, : self.obs_dim], target_delta),
            "reward": F.huber_loss(out[:, self.obs_dim], target_reward),
            "done": F.binary_cross_entropy_with_logits(
                out[:, self.obs_dim + 1], batch["terminated"].float(),
                pos_weight=torch.tensor(done_weight, device=out.device)),
        }
        losses["total"] = losses["delta"] + losses["reward"] + losses["done"]
        return losses

    # -- the two functions every planner uses -------------------------------------------------
    # `filter` and `beliefs` come from `ObservedState`: the belief is the observation.

    def imagine(self, state: torch.Tensor, actions: torch.Tensor | Policy,
                termination_fn: TerminationFn | None = None, *, horizon: int | None = None,
                check: bool = True) -> Rollout:
        """Roll N action sequences (N, H[, A]) forward from `state` (D,) or (N, D).

        The same numbers as calling `predict` H times, but faster: the normalisation is folded
        into the first and last layers (`_folded_layers`), so each step is just the clamp to
        the data's range, the network's matmuls, its activations and one add.
        `termination_fn`, if given, replaces the learned termination head (e.g. a known rule,
        as mbrl-lib's PETS does). With a policy instead of sequences, the generic loop
        `imagine_latent` runs `predict` step by step.
        """
        if not isinstance(actions, torch.Tensor):
            return imagine_latent(self, state, actions, termination_fn, horizon, check)
        actions = self.action_spec.check_sequences(actions, values=check)
        n, horizon = actions.shape[:2]
        d = self.obs_dim
        obs = self.initial(state, n)
        first, hidden, last = self._folded_layers()
        # The actions as the network reads them (one-hot for Discrete), (N, H, A'), encoded
        # once (as many floats as a rollout's observations, and one op instead of one a step);
        # each step's are concatenated to the observation: layer 1 is one `addmm`. (A lookup
        # of W_a's row per action costs more than the matmul it saves: index_select copies
        # (N, hidden).)
        # In place when nothing needs gradients (planning): one (N, hidden) buffer less.
        inplace = not torch.is_grad_enabled()
        encoded = self.action_spec.encode(actions).to(obs.dtype)
        observations, outputs = [obs], []
        for t in range(horizon):
            seen = torch.clamp(obs, self.obs_low, self.obs_high)  # `inputs`, unnormalised
            h = torch.addmm(first[1], torch.cat([seen, encoded[:, t]], 1), first[0])
            for weight, bias in hidden:
                h = torch.addmm(bias, F.silu(h, inplace=inplace), weight)
            out = torch.addmm(last[1], F.silu(h, inplace=inplace), last[0])  # (N, D + 2), raw
            obs = obs + out[:, :d]
            observations.append(obs)
            outputs.append(out)
        observations_t, outputs_t = torch.stack(observations, 1), torch.stack(outputs, 1)
        done_logits = outputs_t[..., d + 1]
        if termination_fn is None:
            dones = done_logits > 0
        else:
            dones = termination_fn(observations_t[:, 1:])
        rewards = outputs_t[..., d] * alive_before(dones)
        return Rollout(observations_t, actions, rewards, dones,
                       features=self.features(observations_t), done_logits=done_logits)

    # -- LatentDynamics: the latent of a Markov model is the observation itself ---------------

    def initial(self, state: Any, n: int) -> torch.Tensor:
        """A belief (D,) or (n, D) -> n observations (n, D)."""
        state = observation_state(state, self.obs_dim, self.device)
        if state.dim() == 1 or state.shape[0] == 1:
            return state.reshape(1, self.obs_dim).expand(n, self.obs_dim)
        if state.dim() != 2 or state.shape[0] != n:
            raise ValueError(f"state: expected shape ({self.obs_dim},) or ({n}, {self.obs_dim})"
                             f", got {tuple(state.shape)}")
        return state

    def step(self, obs: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        """One `predict`: (next obs (n, D), reward (n,), termination logit (n,), None)."""
        return (*self.predict(obs, actions), None)

    def decode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., D) -> normalised observations (..., D): what a policy reads."""
        return self.standardise(obs)

    def _folded_layers(self) -> tuple[tuple, list, tuple]:
        """The network's (weight (in, out), bias) pairs, for `addmm`, normalisation folded in.

        Input side: W [(obs - mean) / std, a] + b = [W_obs / std, W_a] [obs, a] + b', with
        b' = b - (W_obs / std) mean.
        Output side: scaling the last layer's rows by the delta/reward std and adding their
        means to its bias gives raw-unit outputs directly.
        Returns (first layer, [hidden layers], last layer).
        """
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        first, last = linears[0], linears[-1]
        d = self.obs_dim
        w_obs = first.weight[:, :d] / self.obs_std
        first_folded = (torch.cat([w_obs, first.weight[:, d:]], 1).t(),
                        first.bias - w_obs @ self.obs_mean)
        one = torch.ones(1, device=self.device)
        scale = torch.cat([self.delta_std, self.reward_std.reshape(1), one])
        shift = torch.cat([self.delta_mean, self.reward_mean.reshape(1), 0 * one])
        hidden = [(m.weight.t(), m.bias) for m in linears[1:-1]]
        last_folded = ((last.weight * scale[:, None]).t(), last.bias * scale + shift)
        return first_folded, hidden, last_folded
