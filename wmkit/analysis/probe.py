"""A linear probe: does a model's belief hold a quantity it was never told about?

Fit ridge regression from belief features to the quantity (e.g. CartPole's hidden velocities)
on some episodes, then score R^2 on others. A high held-out R^2 means the quantity can be read
off the belief with one matrix: the model has inferred it. Closed form, no training loop:

    W = (X^T X + l2 * n * I)^-1 X^T Y     (X standardised, Y centred; Hoerl & Kennard 1970)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..buffer import ReplayBuffer
from ..utils import as_float_tensor


@dataclass
class LinearProbe:
    """y = ((x - mean) / std) @ weight + bias; weight (F, K), bias (K,), mean and std (F,)."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def predict(self, features: Any) -> torch.Tensor:
        """features (N, F) -> predictions (N, K)."""
        x = _matrix("features", features, self.mean.shape[0])
        return ((x.to(self.mean) - self.mean) / self.std) @ self.weight + self.bias

    def score(self, features: Any, targets: Any) -> torch.Tensor:
        """(K,) R^2 of each target column on (features (N, F), targets (N, K))."""
        y = _matrix("targets", targets, self.weight.shape[1])
        return r2_score(self.predict(features), y.to(self.weight))


def _matrix(name: str, value: Any, columns: int | None = None) -> torch.Tensor:
    tensor = as_float_tensor(name, value).double()
    if tensor.ndim == 1:
        tensor = tensor[:, None]
    if tensor.ndim != 2 or tensor.shape[0] < 1:
        raise ValueError(f"{name}: expected shape (N, F) with N >= 1, got {tuple(tensor.shape)}")
    if columns is not None and tensor.shape[1] != columns:
        raise ValueError(f"{name}: expected {columns} columns, got {tensor.shape[1]}")
    return tensor


def fit_probe(features: Any, targets: Any, l2: float = 1e-3) -> LinearProbe:
    """Ridge regression of targets (N, K) on features (N, F), in closed form (float64).

    Features are standardised first, so `l2` means the same whatever their scale; a constant
    feature (std 0) is left at zero weight.
    """
    x = _matrix("features", features)
    y = _matrix("targets", targets)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"targets: expected {x.shape[0]} rows like features, got {y.shape[0]}")
    if not l2 >= 0:
        raise ValueError(f"l2: expected a float >= 0, got {l2!r}")
    mean, std = x.mean(0), x.std(0, correction=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    xs = (x - mean) / std
    y_mean = y.mean(0)
    gram = xs.T @ xs + l2 * len(xs) * torch.eye(xs.shape[1], dtype=xs.dtype)
    # lstsq rather than solve: with l2 = 0 and collinear features the Gram matrix is singular.
    weight = torch.linalg.lstsq(gram, xs.T @ (y - y_mean)).solution
    return LinearProbe(weight, y_mean, mean, std)


def r2_score(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K,) coefficient of determination 1 - SS_res / SS_tot per column of (N, K) inputs."""
    if predicted.shape != targets.shape:
        raise ValueError(f"predicted: shape {tuple(predicted.shape)} != targets "
                         f"{tuple(targets.shape)}")
    residual = ((targets - predicted) ** 2).sum(0)
    total = ((targets - targets.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return 1 - residual / total


def hidden_twin(buffer: ReplayBuffer, keep: tuple[int, ...] = (0, 2)) -> ReplayBuffer:
    """The same transitions observing only dimensions `keep` (default CartPole's x, theta).

    Collect on the full env, give the model the twin, and the full buffer still holds what the
    model never saw (e.g. `buffer.tensors()["obs"][:, [1, 3]]`, the velocities): probe targets.
    """
    if not keep or any(not 0 <= k < buffer.obs_dim for k in keep):
        raise ValueError(f"keep: expected indices in [0, {buffer.obs_dim}), got {keep!r}")
    twin = ReplayBuffer(len(keep), buffer.action_spec, capacity=max(len(buffer), 1))
    data, columns = buffer.tensors(), list(keep)
    for i in range(len(buffer)):
        twin.add(data["obs"][i, columns], data["action"][i], float(data["reward"][i]),
                 data["next_obs"][i, columns], bool(data["terminated"][i]),
                 bool(data["truncated"][i]))
    return twin
