"""What every trained world model shares: the buffer's normalisation statistics.

Models learn from standardised inputs and targets. The statistics belong to the data (the
`ReplayBuffer` computes them, `fit` copies them in), but they must travel with the weights, so
a model keeps them in registered buffers: they are saved in `state_dict()` and follow `.to()`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import gymnasium as gym
import torch

from ..buffer import NormStats
from ..spaces import ActionSpec

OBS_STATS = ("obs_mean", "obs_std")
DELTA_STATS = ("delta_mean", "delta_std")
REWARD_STATS = ("reward_mean", "reward_std")

Model = TypeVar("Model", bound="Normalised")


class Normalised:
    """Mixin for an `nn.Module` world model built as `cls(obs_dim, action_spec, **kwargs)`.

    Call `register_norm_buffers(obs_dim)` in `__init__` (after `super().__init__()`); then the
    model has `obs_mean`, `obs_std` (D,), optionally `delta_mean`, `delta_std` (D,), and
    `reward_mean`, `reward_std` (), plus `set_normalizer`, `device` and `for_env`.
    """

    _norm_names: tuple[str, ...]

    def register_norm_buffers(self, obs_dim: int, deltas: bool = True) -> None:
        """Identity statistics (mean 0, std 1) until `set_normalizer` copies the data's in.

        deltas: also keep statistics of the change in observation (models that predict it).
        The registration order fixes the `state_dict` order: means first, then stds.
        """
        means = ("obs_mean", "delta_mean") if deltas else ("obs_mean",)
        stds = ("obs_std", "delta_std") if deltas else ("obs_std",)
        for name in means:
            self.register_buffer(name, torch.zeros(obs_dim))
        for name in stds:
            self.register_buffer(name, torch.ones(obs_dim))
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))
        self._norm_names = OBS_STATS + (DELTA_STATS if deltas else ()) + REWARD_STATS

    def set_normalizer(self, stats: NormStats) -> None:
        """Copy the buffer's statistics into the model (done by `fit` before training)."""
        for name in self._norm_names:
            getattr(self, name).copy_(getattr(stats, name))

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (and where `imagine` returns its tensors)."""
        return self.obs_mean.device

    @classmethod
    def for_env(cls: type[Model], env: gym.Env, **kwargs: Any) -> Model:
        """A model sized for `env`'s observation and action spaces (a flat Box observation)."""
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env: expected a flat Box observation space, got {space}")
        return cls(space.shape[0], ActionSpec.from_space(env.action_space), **kwargs)
