"""What normalising inputs and predicting the *change* buy: small MLPs trained side by side.

`AblationMLP` is `MLPWorldModel` with both choices made switchable; `normalisation_ablation`
trains one per variant on the same data, with the same seed, width and epochs, and scores each
one step ahead and open loop (`compounding_error`) on held-out data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..buffer import NormStats, ReplayBuffer
from ..models.base import Policy, Rollout, TerminationFn, imagine_latent
from ..models.mlp import MLPWorldModel
from ..spaces import ActionSpec
from ..train import fit, one_step_error
from ..utils import seed_everything
from .episodes import _check_buffer
from .open_loop import compounding_error


class AblationMLP(MLPWorldModel):
    """`MLPWorldModel` with its two design choices made switchable, to see what each buys.

    Args:
        normalise: standardise inputs and targets with the buffer's statistics (wmkit's
            default); False feeds and predicts raw numbers.
        predict_delta: predict the change in observation (wmkit's default); False predicts the
            next observation itself, so "nothing changes" has to be learned as an identity map.

    Rewards and terminations are handled exactly as in `MLPWorldModel`: only the observation
    part differs.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, normalise: bool = True,
                 predict_delta: bool = True, **kwargs: Any) -> None:
        super().__init__(obs_dim, action_spec, **kwargs)
        self.normalise, self.predict_delta = bool(normalise), bool(predict_delta)

    def set_normalizer(self, stats: NormStats) -> None:
        super().set_normalizer(stats)
        if not self.normalise:  # identity statistics: raw numbers in, raw numbers out
            for name in ("obs_mean", "delta_mean"):
                getattr(self, name).zero_()
            for name in ("obs_std", "delta_std"):
                getattr(self, name).fill_(1.0)

    def obs_target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The change (wmkit's choice), or without predict_delta the next obs itself."""
        if self.predict_delta:
            return super().obs_target(obs, next_obs)
        return (next_obs - self.obs_mean) / self.obs_std

    def next_obs(self, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The inverse of `obs_target`."""
        if self.predict_delta:
            return super().next_obs(obs, out)
        return out * self.obs_std + self.obs_mean

    def imagine(self, state: torch.Tensor, actions: torch.Tensor | Policy,
                termination_fn: TerminationFn | None = None, *, horizon: int | None = None,
                check: bool = True) -> Rollout:
        """Steps `predict` through the one loop (`MLPWorldModel.imagine`'s folded fast path
        assumes predict_delta)."""
        return imagine_latent(self, state, actions, termination_fn, horizon, check)


ABLATION_VARIANTS: dict[str, dict[str, bool]] = {
    "raw → next obs": {"normalise": False, "predict_delta": False},
    "raw → change": {"normalise": False, "predict_delta": True},
    "normalised → next obs": {"normalise": True, "predict_delta": False},
    "normalised → change (wmkit)": {"normalise": True, "predict_delta": True},
}
"""label -> AblationMLP switches, from the plainest model to wmkit's."""


@dataclass
class AblationResult:
    """What `normalisation_ablation` measured, per variant label (see ABLATION_VARIANTS).

    one_step: held-out one-step error per variant; no_change: the "nothing changes" guess's
    error; compounding: (S, H) open-loop errors per variant; models: the trained variants.
    """

    one_step: dict[str, float]
    no_change: float
    compounding: dict[str, torch.Tensor] = field(default_factory=dict)
    models: dict[str, AblationMLP] = field(default_factory=dict)


def normalisation_ablation(buffer: ReplayBuffer, heldout: ReplayBuffer, epochs: int = 20,
                           hidden: int = 64, horizon: int = 10, seed: int = 0,
                           variants: dict[str, dict[str, bool]] | None = None,
                           progress: bool = False) -> AblationResult:
    """Train one small model per variant on `buffer` and score each on `heldout`.

    Every variant gets the same seed, data, width and epochs: only normalisation and the
    prediction target differ. With the defaults this takes a few seconds on one core.

    Args:
        buffer: training transitions. heldout: transitions to score on (not trained on).
        epochs, hidden: training length and width of every variant.
        horizon: H for the open-loop `compounding_error` of each variant.
        seed: seeds each variant's initialisation and batches.
        variants: label -> `AblationMLP` keyword switches; default `ABLATION_VARIANTS`.
        progress: show a progress bar over variants.
    """
    _check_buffer(buffer)
    _check_buffer(heldout, "heldout")
    variants = dict(ABLATION_VARIANTS if variants is None else variants)
    if not variants:
        raise ValueError("variants: expected at least one variant, got none")
    result = AblationResult(one_step={}, no_change=float("nan"))
    for label, switches in tqdm(variants.items(), desc="ablation", disable=not progress):
        seed_everything(seed)  # the same initial weights wherever the shapes agree
        model = AblationMLP(buffer.obs_dim, buffer.action_spec, hidden=hidden, device="cpu",
                            **switches)
        fit(model, buffer, epochs=epochs, seed=seed, progress=False)
        errors = one_step_error(model, heldout)
        result.one_step[label], result.no_change = errors["model"], errors["no_change"]
        result.compounding[label] = compounding_error(model, heldout, horizon)
        result.models[label] = model
    return result
