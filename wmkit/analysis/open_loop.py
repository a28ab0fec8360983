"""Open-loop imagination against reality: the kit's one compounding-error measurement.

From a real row of a buffer the model takes its belief (`model.beliefs`: the observation for a
Markov model, the filtered memory for a recurrent one), then imagines the real actions that
followed, never shown another observation ("open loop"), and is compared with what really
happened. It works for every `WorldModel` (MLP, ensemble, RSSM, LSTM, the true dynamics), all
starts in one batched `imagine`, so curves of different models sit side by side.

Burn-in: a model with memory needs a few real observations before its belief holds the
velocities. `burn_in=k` keeps only starts with k - 1 earlier rows of the same episode, so every
belief has seen at least k observations (1, the default, is right for Markov models).

Errors are mean squared errors over dimensions in units of the buffer's observation std, like
`wmkit.one_step_error`: horizon 1 of `compounding_error` is the one-step error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..buffer import ReplayBuffer
from ..models.base import Rollout, WorldModel
from ..utils import check_positive_int
from .episodes import _check_buffer
from .probe import LinearProbe

Starts = int | Sequence[int] | torch.Tensor
"""One buffer row (int), or several (S,)."""


def _check_model(model: WorldModel) -> WorldModel:
    if not isinstance(model, WorldModel):
        raise ValueError(f"model: expected a world model (filter, beliefs, imagine, "
                         f"action_spec, device), got {type(model).__name__}")
    return model


def open_loop_starts(buffer: ReplayBuffer, horizon: int, burn_in: int = 1) -> torch.Tensor:
    """(S,) long: every row with `burn_in - 1` earlier rows of its episode and `horizon` real
    transitions from it (itself included) in the same episode, in buffer order."""
    _check_buffer(buffer)
    horizon = check_positive_int("horizon", horizon)
    burn_in = check_positive_int("burn_in", burn_in)
    length = burn_in + horizon - 1
    if length > len(buffer):
        return torch.zeros(0, dtype=torch.long)
    return buffer.window_starts(length) + burn_in - 1


def _check_starts(buffer: ReplayBuffer, starts: Starts, horizon: int, burn_in: int
                  ) -> torch.Tensor:
    """`starts` as (S,) long, each one a row of `open_loop_starts(buffer, horizon, burn_in)`."""
    if isinstance(starts, bool) or isinstance(starts, float):
        raise ValueError(f"starts: expected buffer rows (ints), got {starts!r}")
    try:
        rows = torch.as_tensor(starts).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"starts: expected buffer rows (ints), got {starts!r}") from error
    if len(rows) == 0 or rows.is_floating_point() or rows.dtype == torch.bool:
        raise ValueError(f"starts: expected at least one buffer row (ints), got {starts!r}")
    rows = rows.long()
    bad = rows[~torch.isin(rows, open_loop_starts(buffer, horizon, burn_in))]
    if len(bad):
        raise ValueError(
            f"starts: row {int(bad[0])} is not followed by horizon={horizon} transitions of its "
            f"episode" + (f" after {burn_in - 1} rows of burn-in" if burn_in > 1 else "")
            + " (see open_loop_starts)")
    return rows


@torch.no_grad()
def open_loop(model: WorldModel, buffer: ReplayBuffer, starts: Starts, horizon: int,
              burn_in: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Reality and the model's open-loop dream from the same rows, under the same actions.

    Args:
        model: any world model.
        buffer: real transitions (e.g. held-out episodes the model never trained on).
        starts: a buffer row, or S of them (see `open_loop_starts`): the belief is the one right
            after observing that row, and the `horizon` actions from it are imagined.
        horizon: H, imagined steps; the H transitions from each start must be in its episode.
        burn_in: see the module docstring (checked against `starts`).

    Returns:
        (real, imagined): (H + 1, D) each for one start, (S, H + 1, D) for several; float CPU
        tensors. Row 0 is the start: the real observation, and the model's decoded belief.
    """
    _check_model(model)
    _check_buffer(buffer)
    horizon = check_positive_int("horizon", horizon)
    burn_in = check_positive_int("burn_in", burn_in)
    one = isinstance(starts, (int, np.integer)) and not isinstance(starts, bool)
    rows = _check_starts(buffer, starts, horizon, burn_in)
    real, rollout = _dream(model, buffer, rows, horizon)
    imagined = rollout.observations.detach().float().cpu()
    return (real[0], imagined[0]) if one else (real, imagined)


def _reality(buffer: ReplayBuffer, rows: torch.Tensor, horizon: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The real observations (S, H + 1, D) from `rows` (S,) on, and the H actions taken."""
    data = buffer[rows[:, None] + torch.arange(horizon)]  # (S, H): the transitions that followed
    return torch.cat([data["obs"][:, :1], data["next_obs"]], dim=1), data["action"]


def _dream(model: WorldModel, buffer: ReplayBuffer, rows: torch.Tensor, horizon: int
           ) -> tuple[torch.Tensor, Rollout]:
    """Reality (S, H + 1, D) from `rows` on, and the model's rollout of the same actions."""
    real, actions = _reality(buffer, rows, horizon)
    return real, model.imagine(model.beliefs(buffer, rows), actions.to(model.device))


def _sampled_starts(buffer: ReplayBuffer, horizon: int, burn_in: int, starts: Starts | None,
                    max_starts: int | None, seed: int) -> torch.Tensor:
    """The given starts, or every valid one (at most `max_starts`, drawn with `seed`)."""
    if starts is not None:
        return _check_starts(buffer, starts, horizon, burn_in)
    rows = open_loop_starts(buffer, horizon, burn_in)
    if len(rows) == 0:
        raise ValueError(f"horizon: no episode in the buffer has {burn_in + horizon - 1} "
                         f"transitions for burn_in + horizon - 1; use a shorter horizon or "
                         "longer episodes")
    if max_starts is not None and len(rows) > check_positive_int("max_starts", max_starts):
        chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
        rows = rows[chosen[:max_starts].sort().values]
    return rows


def compounding_error(model: WorldModel, buffer: ReplayBuffer, horizon: int, burn_in: int = 1,
                      max_starts: int | None = None, seed: int = 0,
                      starts: Starts | None = None) -> torch.Tensor:
    """(S, H) open-loop squared error at 1..H steps ahead, from S starts, in obs-std units.

    errors[s, h - 1] is the mean over dimensions of ((imagined - real) / std)^2, h steps after
    start s, where std is the buffer's observation std. Starts: `starts` if given, else every
    row of `open_loop_starts(buffer, horizon, burn_in)`, or `max_starts` of them drawn with
    `seed` (in buffer order). Column 0 on every row of a buffer is `wmkit.one_step_error`.
    """
    _check_buffer(buffer)
    rows = _sampled_starts(buffer, horizon, burn_in, starts, max_starts, seed)
    real, imagined = open_loop(model, buffer, rows, horizon, burn_in)
    scale = buffer.tensors()["obs"].std(0, correction=0).clamp_min(1e-6)
    return (((imagined[:, 1:] - real[:, 1:]) / scale) ** 2).mean(-1)


def open_loop_bias(model: WorldModel, buffer: ReplayBuffer, horizon: int, burn_in: int = 1,
                   max_starts: int | None = None, seed: int = 0,
                   starts: Starts | None = None) -> torch.Tensor:
    """(H, D) the mean *signed* open-loop error (imagined - real) h steps ahead, raw units.

    The same starts as `compounding_error` with the same arguments. A small squared error can
    hide a steady lean: on CartPole an imagined pole that sits a few milliradians off the real
    one makes a planner hold the real pole tilted, and the cart drift.
    """
    _check_buffer(buffer)
    rows = _sampled_starts(buffer, horizon, burn_in, starts, max_starts, seed)
    real, imagined = open_loop(model, buffer, rows, horizon, burn_in)
    return (imagined[:, 1:] - real[:, 1:]).mean(0)


@torch.no_grad()
def open_loop_probe(model: WorldModel, buffer: ReplayBuffer, truth: ReplayBuffer,
                    probe: LinearProbe, horizon: int, burn_in: int = 1,
                    max_starts: int | None = None, seed: int = 0, starts: Starts | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the dream still knows h steps ahead: a linear probe read on imagined features.

    `compounding_error` compares decoded observations; for a pixel model those are frames, and
    a frame's error does not say whether the imagined pole leans the right way. Here `probe`
    (fitted on filtered beliefs, e.g. `fit_probe(model.features(buffer_beliefs(model, frames)),
    states)`, targets: everything `truth` observes) reads them from every imagined state's
    `Rollout.features`, from the same starts as `compounding_error` with the same arguments.

    Args:
        buffer: what the model observes (e.g. frames from `wmkit.pixels.pixel_twin`).
        truth: the same transitions observing the probe's targets (e.g. the CartPole states
            the frames were drawn from): the same rows and episodes as `buffer`.

    Returns:
        (real, probed): (S, H + 1, K) each, float CPU; step 0 is the start's filtered belief,
        steps 1..H the open-loop dream under the real actions.
    """
    _check_model(model)
    _check_buffer(buffer)
    _check_buffer(truth, "truth")
    if len(truth) != len(buffer) or not torch.equal(truth.tensors()["is_first"],
                                                   buffer.tensors()["is_first"]):
        raise ValueError(f"truth: expected the same transitions as buffer ({len(buffer)} rows, "
                         f"the same episode starts), got {len(truth)} rows")
    if not isinstance(probe, LinearProbe) or probe.weight.shape[1] != truth.obs_dim:
        raise ValueError(f"probe: expected a LinearProbe (fit_probe) of the {truth.obs_dim} "
                         f"quantities truth observes, got {probe!r:.80}")
    rows = _sampled_starts(buffer, horizon, burn_in, starts, max_starts, seed)
    _, rollout = _dream(model, buffer, rows, horizon)
    real, _ = _reality(truth, rows, horizon)
    if rollout.features is None or rollout.features.shape[-1] != probe.weight.shape[0]:
        raise ValueError(f"probe: expected a probe of the model's features "
                         f"({None if rollout.features is None else rollout.features.shape[-1]}"
                         f" of them), fitted on {probe.weight.shape[0]}")
    features = rollout.features.detach().float().cpu()
    probed = probe.predict(features.flatten(0, 1)).float().reshape(*features.shape[:2], -1)
    return real, probed
