"""CartPole's true dynamics as a batched "world model": the perfect-model reference.

Planning with it measures the planner alone, so a benchmark can split the gap to a perfect
score into model error and planner error. This is the one CartPole-specific model in the kit;
its equations are gymnasium's `CartPoleEnv.step` (explicit Euler), vectorised over candidates.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch

from ..spaces import ActionSpec
from ..utils import as_float_tensor, default_device
from .base import Rollout, TerminationFn, alive_before

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


def cartpole_termination(obs: torch.Tensor) -> torch.Tensor:
    """CartPole's termination rule: obs (..., 4) -> (...,) bool (cart off track or pole down)."""
    return (obs[..., 0].abs() > X_THRESHOLD) | (obs[..., 2].abs() > THETA_THRESHOLD)


class TrueCartPole:
    """Exact CartPole-v1 dynamics with the `filter` / `imagine` interface of a world model."""

    action_spec = ActionSpec(discrete=True, n=2)
    obs_dim = 4

    def __init__(self, gravity: float = 9.8, masscart: float = 1.0, masspole: float = 0.1,
                 length: float = 0.5, force_mag: float = 10.0, tau: float = 0.02,
                 device: str | torch.device | None = None) -> None:
        self.gravity, self.masspole, self.length = gravity, masspole, length
        self.total_mass = masspole + masscart
        self.force_mag, self.tau = force_mag, tau
        self.device = default_device(device)

    @classmethod
    def for_env(cls, env: gym.Env, device: str | torch.device | None = None) -> TrueCartPole:
        """The dynamics of this very env (so a changed pole length is taken into account)."""
        core = env.unwrapped
        if not hasattr(core, "polemass_length"):
            raise ValueError(f"env: expected a CartPole env, got {core!r}")
        return cls(core.gravity, core.masscart, core.masspole, core.length, core.force_mag,
                   core.tau, device)

    def step(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (N, 4), action (N,) in {0, 1} -> next obs (N, 4)."""
        x, x_dot, theta, theta_dot = obs.unbind(-1)
        force = (action.to(obs.dtype) * 2 - 1) * self.force_mag
        cos, sin = torch.cos(theta), torch.sin(theta)
        polemass_length = self.masspole * self.length
        temp = (force + polemass_length * theta_dot**2 * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / self.total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / self.total_mass
        return torch.stack([x + self.tau * x_dot, x_dot + self.tau * x_acc,
                            theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc], -1)

    def filter(self, state: Any, action: Any, obs: Any) -> torch.Tensor:
        return as_float_tensor("obs", obs, (4,), self.device).reshape(4)

    def imagine(self, state: torch.Tensor, actions: torch.Tensor,
                termination_fn: TerminationFn | None = None) -> Rollout:
        """Exact rollouts of actions (N, H) from state (4,): reward 1 per step until the end."""
        n, horizon = actions.shape
        obs = state.expand(n, 4).double()  # float64, as gymnasium integrates
        observations = [obs]
        for t in range(horizon):
            obs = self.step(obs, actions[:, t])
            observations.append(obs)
        observations_t = torch.stack(observations, dim=1).float()
        dones = (termination_fn or cartpole_termination)(observations_t[:, 1:])
        rewards = alive_before(dones).float()
        return Rollout(observations_t, actions, rewards, dones)
