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
from ..utils import default_device
from .base import Imagines, ObservedState, observation_state

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360


def cartpole_termination(obs: torch.Tensor) -> torch.Tensor:
    """CartPole's termination rule: obs (..., 4) -> (...,) bool (cart off track or pole down)."""
    return (obs[..., 0].abs() > X_THRESHOLD) | (obs[..., 2].abs() > THETA_THRESHOLD)


class TrueCartPole(ObservedState, Imagines):
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

    def next_state(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
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

    # -- LatentDynamics (for `Imagines.imagine`): the latent is the state, in float64 ---------

    def initial(self, state: Any, n: int) -> torch.Tensor:
        """A state (4,) or (n, 4) -> n states (n, 4) in float64, as gymnasium integrates."""
        state = observation_state(state, 4, self.device)
        return state.reshape(-1, 4).expand(n, 4).double()

    def step(self, obs: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        """Exact next states; reward 1 per step; a +-20 logit from the termination rule."""
        next_obs = self.next_state(obs, actions)
        ends = cartpole_termination(next_obs)
        reward = torch.ones(len(obs), device=obs.device)
        return next_obs, reward, torch.where(ends, 20.0, -20.0), None

    def decode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.float()
