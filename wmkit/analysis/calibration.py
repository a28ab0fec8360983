"""Calibration: are an ensemble's predicted 50% / 90% intervals right 50% / 90% of the time?

The members form a mixture; its predictive Gaussian of the normalised one-step change has the
mean of the members' means and, as variance, the mean of their variances (aleatoric, 0 without
Gaussian heads) plus the variance of their means (epistemic: the disagreement).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.ensemble import EnsembleWorldModel
from .disagreement import Transitions, _check_ensemble, transitions


@torch.no_grad()
def predictive_distribution(model: EnsembleWorldModel, obs: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensemble's Gaussian prediction of the normalised change in obs: mean, var (B, D)."""
    members = _check_ensemble(model).predict_members(obs, action)
    mean = members.delta.mean(0)
    var = members.delta.var(0, correction=0)
    if members.delta_logvar is not None:
        var = var + members.delta_logvar.exp().mean(0)
    return mean, var


@dataclass
class Calibration:
    """Gaussian NLL per dimension (normalised units) and the coverage of central intervals:
    coverage[p] is the fraction of real changes inside the predicted central p-interval."""

    nll: float
    coverage: dict[float, float]


def _standardised(model: EnsembleWorldModel, data: Transitions
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, var): real changes in units of the predicted std, and the predicted variances."""
    d = transitions(data, _check_ensemble(model).device)
    mean, var = predictive_distribution(model, d["obs"], d["action"])
    target = (d["next_obs"] - d["obs"] - model.delta_mean) / model.delta_std
    var = var.clamp_min(1e-8)  # a deterministic ensemble of one member has zero variance
    return (target - mean) / var.sqrt(), var


def _check_levels(levels: Sequence[float]) -> torch.Tensor:
    levels_t = torch.as_tensor(list(levels), dtype=torch.float64)
    if levels_t.dim() != 1 or len(levels_t) == 0 or not ((levels_t > 0) & (levels_t < 1)).all():
        raise ValueError(f"levels: expected probabilities strictly between 0 and 1, got {levels}")
    return levels_t


def coverage(z: torch.Tensor, levels: torch.Tensor) -> list[float]:
    """Fraction of standardised errors z (any shape) inside each central interval (L,)."""
    # A central p-interval is |z| <= Phi^-1((1 + p) / 2).
    half_widths = torch.special.ndtri((1 + levels) / 2).to(z.device)
    inside = z.abs().double().unsqueeze(-1) <= half_widths
    return inside.float().mean(dim=tuple(range(z.dim()))).tolist()


def calibration(model: EnsembleWorldModel, data: Transitions,
                levels: Sequence[float] = (0.5, 0.9)) -> Calibration:
    """NLL and interval coverage of the ensemble's predictive Gaussian on `data`.

    A calibrated model has coverage[p] close to p; below p means over-confident (intervals
    too narrow), above p under-confident. Without Gaussian heads only the members' spread is
    left, which is usually far too narrow on the data it was trained on.
    """
    levels_t = _check_levels(levels)
    z, var = _standardised(model, data)
    nll = 0.5 * (torch.log(2 * math.pi * var) + z**2)
    pairs = zip(levels_t.tolist(), coverage(z, levels_t), strict=True)
    return Calibration(float(nll.mean()), {float(p): c for p, c in pairs})


def reliability_curve(model: EnsembleWorldModel, data: Transitions,
                      levels: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed): for each nominal level p (L,), the observed coverage (L,) of the
    predicted central p-interval, over all rows and dimensions of `data`."""
    levels_t = _check_levels(np.linspace(0.05, 0.95, 19) if levels is None else levels)
    z, _ = _standardised(model, data)
    return levels_t.numpy(), np.array(coverage(z, levels_t))
