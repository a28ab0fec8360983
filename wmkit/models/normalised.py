"""What every trained world model shares: the buffer's normalisation statistics.

Models learn from standardised inputs and targets. The statistics belong to the data (the
`ReplayBuffer` computes them, `fit` copies them in), but they must travel with the weights, so
a model keeps them in registered buffers: they are saved in `state_dict()` and follow `.to()`.

A network never reads an observation outside the box of the data it was fitted on: `inputs`
clamps each dimension to the data's range first. Why: CartPole's dynamics do not depend on the
cart's position, but an MLP fitted on carts that stayed within 0.2 of the centre gives a cart at
0.5 whatever its weights extrapolate to, and planning through those imagined states drove the
cart off the track. Clamped, a state beyond the data reads as the nearest state inside it (the
change it predicts is still added to the true, unclamped state; docs/RESULTS.md measures what
it buys). The ensemble is the exception: it reads states off the data unclamped, because its
members' disagreement there is what it is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

import gymnasium as gym
import torch

from ..buffer import NormStats
from ..spaces import ActionSpec

OBS_STATS = ("obs_mean", "obs_std", "obs_low", "obs_high")
DELTA_STATS = ("delta_mean", "delta_std")
REWARD_STATS = ("reward_mean", "reward_std")

Model = TypeVar("Model", bound="Normalised")


class Normalised:
    """Mixin for an `nn.Module` world model built as `cls(obs_dim, action_spec, **kwargs)`.

    Call `register_norm_buffers(obs_dim)` in `__init__` (after `super().__init__()`); then the
    model has `obs_mean`, `obs_std`, `obs_low`, `obs_high` (D,), optionally `delta_mean`,
    `delta_std` (D,), and `reward_mean`, `reward_std` (), plus `set_normalizer`, `standardise`,
    `inputs`, `device` and `for_env`.
    """

    _norm_names: tuple[str, ...]
    action_spec: ActionSpec
    # What `wmkit.fit` feeds `loss` (see `TrainableModel`), and this model's own defaults for
    # the fit arguments left at None: none here, the kit's (`wmkit.train.FIT_DEFAULTS`).
    batches: ClassVar[Literal["transitions", "sequences"]] = "transitions"
    fit_defaults: ClassVar[Mapping[str, Any]] = {}

    def register_norm_buffers(self, obs_dim: int, deltas: bool = True) -> None:
        """Identity statistics (mean 0, std 1, an unbounded range) until `set_normalizer`
        copies the data's in.

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
        # The widest finite range (a saved model must hold finite numbers): no clamping yet.
        widest = torch.finfo(torch.float32).max
        self.register_buffer("obs_low", torch.full((obs_dim,), -widest))
        self.register_buffer("obs_high", torch.full((obs_dim,), widest))
        spec = self.action_spec
        self.register_buffer("action_space", torch.tensor(
            [float(spec.discrete), float(spec.n), *spec.low, *spec.high], dtype=torch.float64))
        self._norm_names = OBS_STATS + (DELTA_STATS if deltas else ()) + REWARD_STATS

    def set_normalizer(self, stats: NormStats) -> None:
        """Copy the buffer's statistics into the model (done by `fit` before training)."""
        for name in self._norm_names:
            getattr(self, name).copy_(getattr(stats, name))

    def standardise(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., D) -> standardised observations (..., D), unclamped."""
        return (obs - self.obs_mean) / self.obs_std

    def inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., D) -> what the network reads (..., D): clamped to the data's
        range (`obs_low`, `obs_high`), then normalised. See the module docstring for why."""
        return self.standardise(torch.clamp(obs, self.obs_low, self.obs_high))

    # The action space travels in `state_dict()` (as the `action_space` buffer: discrete flag,
    # n, low, high), so weights trained for one action space never load silently into a model
    # built for another whose layers happen to have the same shapes.

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """`nn.Module.load_state_dict`, refusing another action space before any weight moves."""
        saved = state_dict.get("action_space")
        mine = self.action_space
        if saved is not None and (saved.shape != mine.shape or not torch.equal(
                saved.to(mine.device, mine.dtype), mine)):
            raise ValueError(f"state_dict: saved for action space {_describe(saved)}, but this "
                             f"model acts in {_describe(mine)}; build it for the same env")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]

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


def _describe(code: torch.Tensor) -> str:
    """The `action_space` buffer as words: "Discrete(2)" or "Box(n=1, low=(-2.0,), ...)"."""
    values = code.tolist()
    if values[0] == 1.0:
        return f"Discrete({int(values[1])})"
    n = int(values[1])
    return f"Box(n={n}, low={tuple(values[2:2 + n])}, high={tuple(values[2 + n:])})"
