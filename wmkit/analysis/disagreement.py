"""Does an ensemble know what it does not know? Real one-step errors next to disagreement.

Units: errors and disagreement are both in the model's delta-std units (the buffer's std of the
one-step change of each observation dimension, the units the networks predict in), averaged
over dimensions: "1" means "off by a typical one-step change". `EnsembleWorldModel.disagreement`
is the members' spread in these units; `prediction_error` measures the real error in them, and
`error_ratio` divides one by the other. (The kit's *surprise*, `wmkit.analysis.surprise`, is
another number: the squared error in raw observation units.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..buffer import ReplayBuffer
from ..models.ensemble import EnsembleWorldModel
from ..models.mlp import MLPWorldModel
from ..utils import check_positive_int
from .correlation import pearson, spearman

Transitions = ReplayBuffer | dict[str, torch.Tensor]
"""A ReplayBuffer, or a dict with "obs" (B, D), "action" (B[, A]) and "next_obs" (B, D)."""


def transitions(data: Transitions, device: torch.device | str, name: str = "data"
                ) -> dict[str, torch.Tensor]:
    """`data` as a dict of tensors on `device` (a buffer's copies), checked."""
    if isinstance(data, ReplayBuffer):
        if len(data) == 0:
            raise ValueError(f"{name}: is empty; collect some transitions first (wm.collect)")
        return data.tensors(device)
    if not isinstance(data, dict) or not {"obs", "action", "next_obs"} <= set(data):
        raise ValueError(f"{name}: expected a ReplayBuffer or a dict with 'obs', 'action' and "
                         f"'next_obs', got {type(data).__name__}")
    if not len(data["obs"]) == len(data["action"]) == len(data["next_obs"]) > 0:
        raise ValueError(f"{name}: 'obs', 'action' and 'next_obs' need the same non-zero length")
    return {key: torch.as_tensor(value).to(device) for key, value in data.items()}


def _check_ensemble(model: EnsembleWorldModel) -> EnsembleWorldModel:
    if not isinstance(model, EnsembleWorldModel):
        raise ValueError(f"model: expected an EnsembleWorldModel, got {type(model).__name__}")
    return model


@torch.no_grad()
def prediction_error(model: MLPWorldModel | EnsembleWorldModel, obs: torch.Tensor,
                     action: torch.Tensor, next_obs: torch.Tensor,
                     scale: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the model's one-step error on real transitions: obs (B, D), action (B[, A]),
    next_obs (B, D) -> root mean square over dims of (predicted - real) / scale.

    `scale` (D,) defaults to the model's delta_std. Pass a fixed one to compare errors across
    refits: each `fit` copies new statistics into the model, which changes its delta_std.
    For an ensemble the prediction is the members' mean.
    """
    if not isinstance(model, (MLPWorldModel, EnsembleWorldModel)):
        raise ValueError(f"model: expected a fitted MLPWorldModel or EnsembleWorldModel, got "
                         f"{type(model).__name__}")
    predicted, _, _ = model.predict(obs, action)
    scale = model.delta_std if scale is None else scale
    return (((predicted - next_obs) / scale) ** 2).mean(dim=-1).sqrt()


@torch.no_grad()
def error_ratio(model: EnsembleWorldModel, obs: torch.Tensor, action: torch.Tensor,
                next_obs: torch.Tensor, floor: float = 0.01) -> torch.Tensor:
    """(B,) how much more wrong the ensemble was than its members expected, on real transitions:
    prediction_error / (disagreement + floor), both in delta-std units.

    The raw error is larger in rare states (fast, near failure) even when nothing changed, but
    there the members also disagree more, so the ratio stays level until the world itself
    changes. `floor` (delta-std units) keeps states where the members agree exactly from
    dividing by ~0.
    """
    _check_ensemble(model)
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not floor > 0:
        raise ValueError(f"floor: expected a positive float, got {floor!r}")
    error = prediction_error(model, obs, action, next_obs)
    return error / (model.disagreement(obs, action) + floor)


@dataclass
class ErrorCorrelation:
    """How well the members' disagreement predicts the real one-step error on some data."""

    spearman: float
    pearson: float
    mean_error: float
    mean_disagreement: float
    errors: torch.Tensor  # (B,)
    disagreements: torch.Tensor  # (B,)

    def __repr__(self) -> str:
        return (f"ErrorCorrelation(spearman={self.spearman:.3f}, pearson={self.pearson:.3f}, "
                f"mean_error={self.mean_error:.4f}, mean_disagreement={self.mean_disagreement:.4f}"
                f", n={len(self.errors)})")


@torch.no_grad()
def error_vs_disagreement(model: EnsembleWorldModel, data: Transitions) -> ErrorCorrelation:
    """Real one-step error and members' disagreement on every transition of `data` (B rows)."""
    d = transitions(data, _check_ensemble(model).device)
    errors = prediction_error(model, d["obs"], d["action"], d["next_obs"]).cpu()
    disagreements = model.disagreement(d["obs"], d["action"]).cpu()
    return ErrorCorrelation(spearman(disagreements, errors), pearson(disagreements, errors),
                            float(errors.mean()), float(disagreements.mean()), errors,
                            disagreements)


@torch.no_grad()
def disagreement_grid(model: EnsembleWorldModel, x_dim: int = 2, y_dim: int = 3,
                      x_range: tuple[float, float] = (-0.6, 0.6),
                      y_range: tuple[float, float] = (-6.0, 6.0), resolution: int = 41,
                      action: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members' disagreement on a grid over two observation dims, the others held at 0.

    Returns xs (R,), ys (R,) and disagreement (R, R) indexed [y, x].
    """
    _check_ensemble(model)
    for name, dim in (("x_dim", x_dim), ("y_dim", y_dim)):
        if not 0 <= dim < model.obs_dim:
            raise ValueError(f"{name}: expected a dimension in [0, {model.obs_dim}), got {dim}")
    resolution = check_positive_int("resolution", resolution)
    xs, ys = torch.linspace(*x_range, resolution), torch.linspace(*y_range, resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    obs = torch.zeros(resolution * resolution, model.obs_dim)
    obs[:, x_dim], obs[:, y_dim] = grid_x.reshape(-1), grid_y.reshape(-1)
    actions = torch.full((len(obs),), action, dtype=torch.long)
    values = model.disagreement(obs.to(model.device), actions.to(model.device))
    return xs.numpy(), ys.numpy(), values.reshape(resolution, resolution).cpu().numpy()
