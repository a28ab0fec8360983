"""The fixed vocabulary of the online service: enums, frozen dataclasses and the protocol.

These names are **fixed** (see DESIGN.md, "The online service interface"): agents, notebooks
and held-out tests rely on them. The inputs check themselves on construction, so a bad
observation fails where it is written, not deep inside a network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class TransitionBackend(Enum):
    """Which network learns the transition (obs, action) -> (next obs, reward, done)."""

    MLP = "MLP"                  # one feed-forward net on the current (obs, action)
    LSTM = "LSTM"                # recurrent net over a window of recent (obs, action) pairs
    TRANSFORMER = "TRANSFORMER"  # self-attention over the same window
    ENSEMBLE = "ENSEMBLE"        # N feed-forward members batched in one matmul per layer


class PredictionTarget(Enum):
    """What a prediction is about; ALL means the three heads together."""

    NEXT_OBS = "NEXT_OBS"
    REWARD = "REWARD"
    DONE = "DONE"
    ALL = "ALL"


def as_observation(name: str, value: Any) -> tuple[float, ...]:
    """`value` (tuple, list, numpy array or tensor of numbers) as a tuple of finite floats.

    Raises a ValueError naming `name` for anything that is not a flat sequence of finite
    real numbers.
    """
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: expected a sequence of floats, got {type(value).__name__}")
    values = [as_float(name, item) for item in value]
    return tuple(values)


def as_action(name: str, value: Any) -> int:
    """`value` as a Python int, or a ValueError naming `name` (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    return int(value)


def as_float(name: str, value: Any) -> float:
    """`value` as a finite Python float, or a ValueError naming `name` (bools are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ) or not math.isfinite(float(value)):
        raise ValueError(f"{name}: expected a finite float, got {value!r}")
    return float(value)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32(name: str, values: Sequence[float]) -> None:
    """The models compute in float32: a finite float beyond its range (1e300) would become
    inf inside them. ValueError naming `name` for such a value."""
    big = [v for v in values if abs(v) > FLOAT32_MAX]
    if big:
        raise ValueError(f"{name}: expected values within float32's range "
                         f"(|x| <= {FLOAT32_MAX:.3g}), got {big[0]!r}")


def check_observation(name: str, value: Any, obs_dim: int) -> tuple[float, ...]:
    """`value` as an observation of `obs_dim` finite floats within float32's range."""
    obs = as_observation(name, value)
    if len(obs) != obs_dim:
        raise ValueError(f"{name}: expected length obs_dim={obs_dim}, got {len(obs)}")
    check_float32(name, obs)
    return obs


def check_action(name: str, value: Any, action_dim: int) -> int:
    """`value` as an int action in [0, action_dim)."""
    action = as_action(name, value)
    if not 0 <= action < action_dim:
        raise ValueError(f"{name}: expected an int in [0, {action_dim}), got {action}")
    return action


@dataclass(frozen=True)
class ModelInput:
    """One question to the model: "what happens if I take `action` in `observation`?".

    Hashable (it keys the model's memory of ground truths), so `observation` is stored as a
    tuple of floats whatever sequence it was given as.
    """

    observation: tuple[float, ...]
    action: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "observation", as_observation("observation", self.observation))
        object.__setattr__(self, "action", as_action("action", self.action))


@dataclass(frozen=True)
class ModelOutput:
    """The model's answer for one step.

    `prediction_error` is the MSE between `next_observation` and the last ground truth the
    model was trained on for this very input, or 0.0 when it has never seen one.
    """

    next_observation: tuple[float, ...]
    predicted_reward: float
    predicted_done: bool
    prediction_error: float


@dataclass(frozen=True)
class DreamRollout:
    """An imagined trajectory: one `ModelOutput` per step, stopped at the first predicted done.

    `surprise_score` is the surprise the model *expects* on this dream: the mean over its steps
    of the ensemble members' variance of the predicted next observation (averaged over
    dimensions, raw units). If the world moved like a member picked at random, that would be
    the mean `surprise` (MSE) met along the dream, so it reads in the same units as `surprise`
    and `surprise_threshold`. 0.0 for the single-network backends, which cannot measure their
    own doubt.
    """

    steps: tuple[ModelOutput, ...]
    total_imagined_reward: float
    surprise_score: float


@dataclass(frozen=True)
class WorldModelConfig:
    """Everything that fixes a model's shape and training; two models with equal configs
    can exchange snapshots."""

    backend: TransitionBackend = TransitionBackend.MLP
    obs_dim: int = 64
    action_dim: int = 8
    hidden_dim: int = 256
    ensemble_size: int = 5
    rollout_horizon: int = 10
    learning_rate: float = 3e-4
    surprise_threshold: float = 0.05
    max_buffer_size: int = 100_000

    def __post_init__(self) -> None:
        if not isinstance(self.backend, TransitionBackend):
            raise ValueError(f"backend: expected a TransitionBackend, got {self.backend!r}")
        for name in ("obs_dim", "action_dim", "hidden_dim", "ensemble_size", "rollout_horizon",
                     "max_buffer_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        for name in ("learning_rate", "surprise_threshold"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0 or (
                name == "learning_rate" and value == 0
            ):
                raise ValueError(f"{name}: expected a positive finite float, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the backend is written by name (e.g. "LSTM")."""
        return {
            "backend": self.backend.name,
            "obs_dim": int(self.obs_dim),
            "action_dim": int(self.action_dim),
            "hidden_dim": int(self.hidden_dim),
            "ensemble_size": int(self.ensemble_size),
            "rollout_horizon": int(self.rollout_horizon),
            "learning_rate": float(self.learning_rate),
            "surprise_threshold": float(self.surprise_threshold),
            "max_buffer_size": int(self.max_buffer_size),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldModelConfig:
        """Inverse of `to_dict`; a ValueError names what is missing or wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"config: expected a dict, got {type(data).__name__}")
        fields = dict(data)
        try:
            fields["backend"] = TransitionBackend[str(fields.get("backend", "MLP"))]
        except KeyError as error:
            names = [b.name for b in TransitionBackend]
            raise ValueError(f"config: backend {data.get('backend')!r} is not one of "
                             f"{names}") from error
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(f"config: {error}") from error


@runtime_checkable
class WorldModel(Protocol):
    """An online world model service: ask "what if", dream ahead, learn one transition at a
    time. All methods are coroutines; a model serialises its work with one lock (safe from
    several threads and event loops)."""

    async def predict(self, inp: ModelInput) -> ModelOutput: ...

    async def dream_rollout(self, initial_obs: Sequence[float],
                            action_sequence: Sequence[int]) -> DreamRollout: ...

    async def update(self, inp: ModelInput, actual_next_obs: Sequence[float],
                     actual_reward: float, actual_done: bool) -> float: ...

    async def surprise(self, inp: ModelInput, actual_next_obs: Sequence[float]) -> float: ...

    async def snapshot(self) -> dict[str, Any]: ...
