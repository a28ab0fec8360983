"""Pendulum's true dynamics as a batched "world model": the perfect-model reference for Box actions.

Planning with it measures the planner alone (as `TrueCartPole` does for CartPole). The equations
are gymnasium's `PendulumEnv.step` vectorised over candidates: the observation is
(cos θ, sin θ, θ̇), the reward -(θ² + 0.1 θ̇² + 0.001 u²) is paid for the state *before* the
step (θ wrapped to [-π, π)), the torque u is clipped to ±max_torque and θ̇ to ±max_speed, and the
pendulum never terminates (the 200-step limit is a truncation, not an end).

The imagined state is the angle and its velocity (θ, θ̇) in float64, as gymnasium integrates; it
is recovered from an observation with atan2, so a plan from a real observation is exact up to the
observation's float32 rounding. Every operation is differentiable (the clips pass no gradient
where they bind), so gradient-based planning can backpropagate through it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from ..spaces import ActionSpec
from ..utils import default_device
from .base import (
    Imagines,
    ObservedState,
    Policy,
    Rollout,
    TerminationFn,
    alive_before,
    imagine_latent,
    observation_state,
)

NEVER_ENDS = float("-inf")  # the termination logit of a pendulum: it never ends


class TruePendulum(ObservedState, Imagines):
    """Exact Pendulum-v1 dynamics with the `WorldModel` interface (a Markov belief: the obs)."""

    obs_dim = 3

    def __init__(self, g: float = 10.0, m: float = 1.0, length: float = 1.0, dt: float = 0.05,
                 max_speed: float = 8.0, max_torque: float = 2.0,
                 device: str | torch.device | None = None) -> None:
        self.g, self.m, self.length, self.dt = g, m, length, dt
        self.max_speed, self.max_torque = max_speed, max_torque
        self.action_spec = ActionSpec(False, 1, (-max_torque,), (max_torque,))
        self.device = default_device(device)

    @classmethod
    def for_env(cls, env: gym.Env, device: str | torch.device | None = None) -> TruePendulum:
        """The dynamics of this very env (its gravity, mass, length, limits)."""
        core = env.unwrapped
        if not hasattr(core, "max_torque") or not hasattr(core, "max_speed"):
            raise ValueError(f"env: expected a Pendulum env, got {core!r}")
        return cls(core.g, core.m, core.l, core.dt, core.max_speed, core.max_torque, device)

    # -- the physics ----------------------------------------------------------------------------

    def reward(self, angle: torch.Tensor, speed: torch.Tensor, torque: torch.Tensor
               ) -> torch.Tensor:
        """Gymnasium's reward for (θ, θ̇) and the clipped torque u, any shape (elementwise)."""
        wrapped = torch.remainder(angle + torch.pi, 2 * torch.pi) - torch.pi
        return -(wrapped**2 + 0.1 * speed**2 + 0.001 * torque**2)

    def next_state(self, angle: torch.Tensor, speed: torch.Tensor, torque: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(θ, θ̇, clipped u), each (N,) -> (next θ, next θ̇): one gymnasium step's physics."""
        acceleration = 3 * self.g / (2 * self.length) * torch.sin(angle) \
            + 3.0 / (self.m * self.length**2) * torque
        next_speed = torch.clamp(speed + acceleration * self.dt, -self.max_speed, self.max_speed)
        return angle + next_speed * self.dt, next_speed

    # -- the two functions every planner uses ---------------------------------------------------
    # `filter` and `beliefs` come from `ObservedState`: the belief is the observation.

    def imagine(self, state: Any, actions: torch.Tensor | Policy,
                termination_fn: TerminationFn | None = None, *, horizon: int | None = None,
                check: bool = True) -> Rollout:
        """Exact rollouts of actions (N, H, 1) (or a policy) from state (3,) or (N, 3).

        Rewards are gymnasium's; nothing ends unless `termination_fn` says so. Sequences take
        a short loop over (θ, θ̇) alone, decoded once at the end (a policy needs the generic
        loop, `imagine_latent`, which decodes every step for the policy to read).
        """
        if not isinstance(actions, torch.Tensor):
            return imagine_latent(self, state, actions, termination_fn, horizon, check)
        actions = self.action_spec.check_sequences(actions, values=check)
        n, horizon = actions.shape[:2]
        angle, speed = self.initial(state, n).unbind(-1)
        torques = actions[..., 0].to(angle.dtype).clamp(-self.max_torque, self.max_torque)
        angles, speeds = [angle], [speed]
        for t in range(horizon):  # the physics alone; the rewards after, all steps at once
            angle, speed = self.next_state(angle, speed, torques[:, t])
            angles.append(angle)
            speeds.append(speed)
        angles_t, speeds_t = torch.stack(angles, 1), torch.stack(speeds, 1)  # (N, H + 1)
        observations = self.decode(torch.stack([angles_t, speeds_t], -1))
        rewards_t = self.reward(angles_t[:, :-1], speeds_t[:, :-1], torques).float()
        done_logits = torch.full_like(rewards_t, NEVER_ENDS)
        dones = done_logits > 0 if termination_fn is None else termination_fn(observations[:, 1:])
        return Rollout(observations, actions, rewards_t * alive_before(dones), dones,
                       features=observations, done_logits=done_logits)

    # -- LatentDynamics: the imagined state is (θ, θ̇) in float64 ----------------------------------

    def initial(self, state: Any, n: int) -> torch.Tensor:
        """Observations (3,) or (n, 3) -> n states (n, 2): θ = atan2(sin, cos), θ̇."""
        obs = observation_state(state, 3, self.device).reshape(-1, 3).double()
        if obs.shape[0] not in (1, n):
            raise ValueError(f"state: expected shape (3,) or ({n}, 3), got {tuple(obs.shape)}")
        return torch.stack([torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]], -1).expand(n, 2)

    def step(self, latent: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        """States (n, 2), torques (n, 1) -> (next states, reward (n,), logit -inf (n,), None)."""
        angle, speed = latent[:, 0], latent[:, 1]
        torque = actions[:, 0].to(latent.dtype).clamp(-self.max_torque, self.max_torque)
        reward = self.reward(angle, speed, torque).float()
        angle, speed = self.next_state(angle, speed, torque)
        return torch.stack([angle, speed], -1), reward, torch.full_like(reward, NEVER_ENDS), None

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """States (..., 2) -> observations (..., 3) float32: (cos θ, sin θ, θ̇)."""
        angle, speed = latent[..., 0], latent[..., 1]
        return torch.stack([torch.cos(angle), torch.sin(angle), speed], -1).float()

    def features(self, latent: torch.Tensor) -> torch.Tensor:
        """What a policy reads: the observation (n, 3)."""
        return self.decode(latent)
