"""The kit's one definition of *surprise*: how far the real next observation is from the
model's prediction, and of the ensemble's *error ratio*.

- `surprise(predicted, actual)`: the mean over observation dimensions of the squared error
  between the predicted and the real next observation, in raw observation units. The online
  service's `surprise` is this number (its fixed meaning), and so is notebook 04's.
- Disagreement (`EnsembleWorldModel.disagreement`) is in the units the networks predict in:
  the buffer's std of the one-step change of each dimension. `error_ratio` divides the error
  measured in those same units by it: about 1 where the ensemble knows how wrong it is, much
  more than 1 where the world surprises it more than its members disagree.
"""

from __future__ import annotations

import torch


def surprise(predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """Predicted and real next observations (..., D) -> surprise (...): mean squared error
    over the D dimensions, in raw observation units."""
    if predicted.shape != actual.shape:
        raise ValueError(f"actual: expected shape {tuple(predicted.shape)} like the prediction, "
                         f"got {tuple(actual.shape)}")
    return (predicted - actual).square().mean(-1)
