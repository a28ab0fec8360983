"""Rank and linear correlation of two equally long sequences (no scipy needed)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of `values` (n,), ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, x in (("a", a), ("b", b)):
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        x = x.astype(float).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
        arrays.append(x)
    if len(arrays[0]) != len(arrays[1]) or len(arrays[0]) < 2:
        raise ValueError(f"a, b: expected two sequences of the same length >= 2, got "
                         f"{len(arrays[0])} and {len(arrays[1])}")
    return arrays[0], arrays[1]


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equally long sequences (n,); NaN if one is constant."""
    x, y = _paired(a, b)
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / norm) if norm > 0 else float("nan")


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (n,), (n,) -> [-1, 1]: the Pearson correlation of the ranks.

    1 means "the larger a, the larger b", whatever the shape of the relation. Ties share their
    average rank (as scipy.stats.spearmanr does). NaN if one sequence is constant.
    """
    x, y = _paired(a, b)
    return pearson(_ranks(x), _ranks(y))
