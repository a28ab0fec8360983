"""Running mean and standard deviation (Welford), so raw CartPole magnitudes train well.

The online model sees one transition at a time, so it cannot compute dataset statistics up
front; Welford's update keeps them exact and numerically stable as data arrives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_STD = 1e-4  # a dimension that never moved would otherwise divide by zero


class RunningStats:
    """Mean and std of a stream of vectors of length `dim`, updated one vector at a time.

    Until two vectors are seen the statistics are the identity (mean 0, std 1).
    """

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)  # sum of squared deviations from the mean

    def add(self, x: np.ndarray) -> None:
        """Fold in one vector `x` of shape (dim,)."""
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    @property
    def std(self) -> np.ndarray:
        """Population std, shape (dim,); ones until two vectors are seen."""
        if self.count < 2:
            return np.ones_like(self.mean)
        return np.maximum(np.sqrt(self.m2 / self.count), MIN_STD)

    @property
    def center(self) -> np.ndarray:
        """Mean, shape (dim,); zeros until two vectors are seen (matches `std`)."""
        return self.mean.copy() if self.count >= 2 else np.zeros_like(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (Python floats round-trip exactly through JSON)."""
        return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    def load_dict(self, data: dict[str, Any]) -> None:
        """Inverse of `to_dict`."""
        mean = np.asarray(data["mean"], dtype=np.float64)
        if mean.shape != self.mean.shape:
            raise ValueError(f"snapshot: statistics of shape {mean.shape}, expected "
                             f"{self.mean.shape}")
        self.count = int(data["count"])
        self.mean = mean
        self.m2 = np.asarray(data["m2"], dtype=np.float64)
