"""Transitions away from the training data, to test a model where it has not been: CartPole
states with faster velocities (exact next states) and a policy unlike the random one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..models.true_cartpole import TrueCartPole
from .disagreement import Transitions, transitions


def shift_velocities(data: Transitions, scale: float | tuple[float, float],
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """CartPole transitions moved off the data: velocities (dims 1 and 3) multiplied by `scale`.

    `scale` is one factor or a (low, high) range drawn uniformly per row. The next states are
    exact (gymnasium's equations, via `TrueCartPole`), so the model's error there is real.
    Returns a dict with "obs" (B, 4), "action" (B,), "next_obs" (B, 4) and "scale" (B,).
    """
    d = transitions(data, torch.device("cpu"))
    if d["obs"].shape[-1] != 4:
        raise ValueError(f"data: expected CartPole observations (B, 4), got "
                         f"{tuple(d['obs'].shape)}")
    low, high = (scale, scale) if isinstance(scale, (int, float)) else scale
    if not 0 < low <= high:
        raise ValueError(f"scale: expected a positive factor or a (low, high) range, got {scale}")
    generator = torch.Generator().manual_seed(seed)
    factor = low + (high - low) * torch.rand(len(d["obs"]), generator=generator)
    obs = d["obs"].clone()
    obs[:, [1, 3]] *= factor[:, None]
    true = TrueCartPole(device="cpu")
    next_obs = true.next_state(obs.double(), d["action"]).float()
    return {"obs": obs, "action": d["action"], "next_obs": next_obs, "scale": factor}


def biased_policy(prob_right: float = 0.8, seed: int = 0) -> Callable[[Any], int]:
    """A CartPole policy unlike the random one: push right with probability `prob_right`.

    Its states have larger cart velocities than uniformly random play: off-policy data.
    """
    if not 0 <= prob_right <= 1:
        raise ValueError(f"prob_right: expected a probability in [0, 1], got {prob_right!r}")
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.random() < prob_right)
