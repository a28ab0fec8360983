"""What every drawing shares: array inputs, a new Axes, CartPole's names and its red."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

ArrayLike = Any
"""A numpy array, a torch tensor (any device), or anything ``np.asarray`` accepts."""

CARTPOLE_NAMES = ("cart position", "cart velocity", "pole angle", "pole angular velocity")
OUT_OF_BOUNDS_COLOR = "#c0392b"


def to_numpy(x: ArrayLike) -> np.ndarray:
    """A float numpy copy of a torch tensor (any device, any float dtype) or array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()  # bfloat16 / float16 have no (or a lossy) numpy counterpart
        x = x.numpy()
    return np.asarray(x, dtype=float)


def new_axes(figsize: tuple[float, float]) -> Axes:
    """One Axes on a new figure with the constrained layout."""
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def dimension_names(obs_dim: int) -> list[str]:
    """CartPole's names for D == 4, else "obs[i]"."""
    return list(CARTPOLE_NAMES) if obs_dim == 4 else [f"obs[{i}]" for i in range(obs_dim)]
