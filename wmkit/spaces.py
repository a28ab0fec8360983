"""Action spaces as the models and planners see them: Discrete or Box, encoded as floats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch


@dataclass(frozen=True)
class ActionSpec:
    """What a model needs to know about actions.

    Discrete(n) actions are ints in [0, n) and enter a network one-hot; Box actions are float
    vectors in [low, high] and enter rescaled to [-1, 1].
    """

    discrete: bool
    n: int  # number of actions (Discrete) or action dimension (Box)
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    # (low, high) tensors per device, made once: a fresh host-to-device copy on every encode
    # would put a copy (on CUDA, possibly a wait) into every imagined step.
    _bounds: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_space(cls, space: gym.Space) -> ActionSpec:
        if isinstance(space, gym.spaces.Discrete):
            if int(space.start) != 0:
                raise ValueError(f"action_space: Discrete must start at 0, got start={space.start}")
            return cls(discrete=True, n=int(space.n))
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                raise ValueError("action_space: Box bounds must be finite to sample actions")
            return cls(False, int(space.shape[0]), tuple(map(float, space.low)),
                       tuple(map(float, space.high)))
        raise ValueError(f"action_space: expected Discrete or a 1-d Box, got {space}")

    @property
    def encoded_dim(self) -> int:
        """Width of an encoded action: n for one-hot, the action dimension for Box."""
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one action: () for Discrete, (n,) for Box."""
        return () if self.discrete else (self.n,)

    def bounds(self, device: torch.device | str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) as float tensors (n,) on `device` (None: torch's default device)."""
        if device is None:
            return torch.tensor(self.low), torch.tensor(self.high)
        device = torch.device(device)
        if device not in self._bounds:
            # Made outside inference mode, so that training may use what planning cached.
            with torch.inference_mode(False):
                self._bounds[device] = (torch.tensor(self.low, device=device),
                                        torch.tensor(self.high, device=device))
        return self._bounds[device]

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions (...,) long or (..., n) float -> network input (..., encoded_dim) float."""
        if self.discrete:
            # A comparison, not F.one_hot: one_hot checks the values' range, which reads them
            # (the host would wait for a GPU at every imagined step). `check_sequences` checks.
            classes = torch.arange(self.n, device=actions.device)
            return (actions.long().unsqueeze(-1) == classes).float()
        low, high = self.bounds(actions.device)
        return (actions - low) / (high - low) * 2 - 1

    def sample(self, shape: tuple[int, ...], generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
        """Uniformly random actions of batch shape `shape` (plus the action shape)."""
        if self.discrete:
            return torch.randint(self.n, shape, generator=generator, device=device)
        low, high = self.bounds(device)
        unit = torch.rand((*shape, self.n), generator=generator, device=device)
        return low + unit * (high - low)

    def check_sequences(self, actions: Any, values: bool = True, name: str = "actions"
                        ) -> torch.Tensor:
        """`actions` as N action sequences for `imagine`: (N, H) long or (N, H, n) float.

        The shape and dtype are always checked; with `values`, also that every action is one
        the env accepts (reading values makes the host wait for a GPU: planners that sample
        valid actions themselves skip it). A ValueError names `name` otherwise.
        """
        shape = "(N, H)" if self.discrete else f"(N, H, {self.n})"
        if not isinstance(actions, torch.Tensor):
            raise ValueError(f"{name}: expected a tensor of shape {shape}, got {type(actions)}")
        good_shape = actions.dim() == 2 if self.discrete else (
            actions.dim() == 3 and actions.shape[-1] == self.n)
        if not good_shape or actions.shape[1] < 1:
            raise ValueError(f"{name}: expected shape {shape} with H >= 1, "
                             f"got {tuple(actions.shape)}")
        if self.discrete and (actions.is_floating_point() or actions.dtype == torch.bool):
            raise ValueError(f"{name}: expected integer actions in [0, {self.n}), got dtype "
                             f"{actions.dtype} (a float action is not rounded for you)")
        if not self.discrete and not actions.is_floating_point():
            raise ValueError(f"{name}: expected float actions, got dtype {actions.dtype}")
        if values and actions.numel():
            if self.discrete:
                bad = bool(((actions < 0) | (actions >= self.n)).any())
                expected = f"ints in [0, {self.n})"
            else:
                low, high = self.bounds(actions.device)
                bad = bool((~torch.isfinite(actions) | (actions < low - 1e-5)
                            | (actions > high + 1e-5)).any())
                expected = f"finite values in [{self.low}, {self.high}]"
            if bad:
                raise ValueError(f"{name}: expected {expected}, got values outside")
        return actions

    def check(self, action: Any, name: str = "action") -> Any:
        """`action` as the env expects it (int or float array), or a ValueError naming it."""
        if self.discrete:
            value = action
            if hasattr(action, "item"):  # numpy or torch scalars
                try:
                    value = action.item()
                except (ValueError, RuntimeError) as error:
                    raise ValueError(f"{name}: expected one int, got {action!r}") from error
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ValueError(f"{name}: expected an int in [0, {self.n}), got {action!r}")
            if not 0 <= value < self.n:
                raise ValueError(f"{name}: expected an int in [0, {self.n}), got {value}")
            return int(value)
        array = np.asarray(action, dtype=np.float32).reshape(-1)
        if array.shape != (self.n,) or not np.isfinite(array).all():
            raise ValueError(f"{name}: expected {self.n} finite floats, got {action!r}")
        if (array < np.array(self.low) - 1e-6).any() or (array > np.array(self.high) + 1e-6).any():
            raise ValueError(f"{name}: expected values in [{self.low}, {self.high}], got {array}")
        return array
