"""What every world model shares: the `Rollout` it imagines and the termination mask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

TerminationFn = Callable[[torch.Tensor], torch.Tensor]
"""next_obs (..., D) -> done (...,) bool: a known termination rule given to a planner."""


@dataclass
class Rollout:
    """N imagined trajectories of H steps from one start.

    observations: (N, H+1, D), [:, 0] is the start
    actions:      (N, H) long (Discrete) or (N, H, A) float (Box)
    rewards:      (N, H), zero after the first predicted termination
    dones:        (N, H) bool, True where the model predicts the episode ends at that step
    disagreement: (N, H) how much an ensemble's members disagree on each step, or None
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    disagreement: torch.Tensor | None = None

    @property
    def returns(self) -> torch.Tensor:
        """(N,) the undiscounted imagined return of each trajectory."""
        return self.rewards.sum(dim=1)

    @property
    def alive(self) -> torch.Tensor:
        """(N, H) bool: True where no termination happened before that step."""
        return alive_before(self.dones)

    def __len__(self) -> int:
        return self.rewards.shape[1]


def alive_before(dones: torch.Tensor) -> torch.Tensor:
    """(N, H) bool dones -> (N, H) bool: step t counts if no done at steps < t.

    The terminating step itself still counts (gymnasium pays CartPole's reward on it).
    """
    ended_before = torch.cumsum(dones.int(), dim=1) - dones.int()
    return ended_before == 0


@torch.no_grad()
def rollout_by_predict(model: Any, state: torch.Tensor, actions: torch.Tensor,
                       termination_fn: TerminationFn | None = None) -> Rollout:
    """Imagine by calling `model.predict(obs (N, D), action (N[, A]))` once per step.

    The plain reference a model's fast `imagine` must match, and the `imagine` of a one-step
    model without a fast path. predict returns (next obs (N, D), reward (N,), done logit (N,));
    a logit > 0 ends the trajectory unless `termination_fn` (next obs -> done) replaces it.
    state: (D,) or (N, D); actions: (N, H[, A]).
    """
    n, horizon = actions.shape[:2]
    obs = state.expand(n, state.shape[-1])
    observations, rewards, logits = [obs], [], []
    for t in range(horizon):
        obs, reward, logit = model.predict(obs, actions[:, t])
        observations.append(obs)
        rewards.append(reward)
        logits.append(logit)
    observations_t = torch.stack(observations, 1)
    if termination_fn is None:
        dones = torch.stack(logits, 1) > 0
    else:
        dones = termination_fn(observations_t[:, 1:])
    return Rollout(observations_t, actions, torch.stack(rewards, 1) * alive_before(dones), dones)


@runtime_checkable
class WorldModel(Protocol):
    """The two functions every planner needs (see docs/DESIGN.md)."""

    def filter(self, state: Any, action: Any, obs: Any) -> Any:
        """Fold a real observation (reached by `action` from `state`) into the belief."""

    def imagine(self, state: Any, actions: torch.Tensor,
                termination_fn: TerminationFn | None = None) -> Rollout:
        """Dream forward from `state` under N action sequences (N, H[, A])."""
