"""Noticing that the world changed, and adapting: a change detector on the ensemble's error
ratio, and a loop that refits the model on new data when it fires.

Which number to watch was measured (docs/RESULTS.md): raw one-step errors come in bursts in
rare states (near failure), which look like changes, and so does the kit's *surprise* (squared
error in raw units, dominated by the velocities); the *error ratio* (error / disagreement,
`error_ratio`) stays level in rare states, because the members disagree there too, and jumps
when the dynamics change. So `adapt_on_change` feeds the detector the error ratio, and logs
the one-step error and the surprise beside it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from ..buffer import ReplayBuffer
from ..models.ensemble import EnsembleWorldModel
from ..runner import Agent, as_agent, run
from ..train import fit
from ..utils import check_positive_int
from .disagreement import _check_ensemble, error_ratio, prediction_error
from .surprise import surprise


class ChangeDetector:
    """Flags a change in the dynamics from a stream of per-step values (error ratios).

    Each new value gets a z-score against a running window of the last `window` unsurprising
    values: z = (value - mean) / (std + min_std). After `warmup` values, `patience` consecutive
    z-scores above `threshold` fire the detector. Values above the threshold are kept out of
    the window, so a lasting change cannot quietly become the new normal. Call `reset()` after
    a refit: the refitted model's values make a new normal.

    Args:
        window: how many past values define "normal".
        threshold: z-score above which a value is out of the ordinary.
        patience: consecutive such values needed to fire (1 = fire at once); a single odd
            transition (e.g. a rare state) then does not trigger a refit.
        warmup: values to see before the detector may fire.
        min_std: floor on the window's std, so a very regular stream cannot make tiny
            deviations look huge.
    """

    def __init__(self, window: int = 100, threshold: float = 6.0, patience: int = 2,
                 warmup: int = 30, min_std: float = 1e-3) -> None:
        self.window = check_positive_int("window", window)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not threshold > 0:
            raise ValueError(f"threshold: expected a positive float, got {threshold!r}")
        self.threshold = float(threshold)
        self.patience = check_positive_int("patience", patience)
        self.warmup = check_positive_int("warmup", warmup)
        if isinstance(min_std, bool) or not isinstance(min_std, (int, float)) or not min_std > 0:
            raise ValueError(f"min_std: expected a positive float, got {min_std!r}")
        self.min_std = float(min_std)
        self.steps = 0
        self.fired_at: list[int] = []
        self.reset()

    def reset(self) -> None:
        """Forget what normal looks like (call after refitting the model)."""
        self._normal: deque[float] = deque(maxlen=self.window)
        self._streak = 0

    def score(self, value: float) -> float:
        """z-score of `value` against the window (0 while fewer than `warmup` values seen)."""
        if len(self._normal) < self.warmup:
            return 0.0
        normal = np.fromiter(self._normal, float)
        return float((value - normal.mean()) / (normal.std() + self.min_std))

    def update(self, value: float) -> bool:
        """Feed one step's value; True when the detector fires."""
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"value: expected a finite float >= 0, got {value!r}")
        z = self.score(value)
        self.steps += 1
        if z > self.threshold:
            self._streak += 1
        else:
            self._streak = 0
            self._normal.append(value)
        if self._streak >= self.patience:
            self.fired_at.append(self.steps - 1)
            self._streak = 0
            return True
        return False


@dataclass
class ChangeLog:
    """What `adapt_on_change` saw, step by step (step i = the i-th real transition).

    errors: one-step prediction error of each real transition, in units of the model's delta
    std at the start (so they compare across refits); error_ratios: what the detector was fed
    (`error_ratio`); surprises: the kit's surprise (squared error, raw units); scores: the
    detector's z-score; fired: steps at which the detector fired and new data started; refits:
    steps after which the model was refitted; returns: (step at which an episode ended, return).
    """

    errors: list[float] = field(default_factory=list)
    error_ratios: list[float] = field(default_factory=list)
    surprises: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)
    refits: list[int] = field(default_factory=list)
    returns: list[tuple[int, float]] = field(default_factory=list)


def adapt_on_change(env: gym.Env, model: EnsembleWorldModel, steps: int,
                    detector: ChangeDetector, agent: Agent | Any | None = None,
                    refit_after: int = 100, refits: int = 2, epochs: int = 30, seed: int = 0,
                    progress: bool = True) -> ChangeLog:
    """Act for `steps` real steps (`wmkit.run`); when the detector fires, refit on new data.

    At each step the model's error ratio at the real transition goes to `detector`. When it
    fires, a fresh buffer starts (data from before the change describes a world that is gone);
    each time it has grown by `refit_after` transitions the model is refitted on all of it
    (warm-started, `epochs` epochs) and the detector is reset, `refits` times in all. Then the
    model is left alone until the detector fires again. `agent` (obs -> action, e.g. a
    RandomShooting planner on `model`) acts; None acts at random. `seed` seeds the env.
    """
    _check_ensemble(model)
    steps = check_positive_int("steps", steps)
    refit_after = check_positive_int("refit_after", refit_after)
    refits = check_positive_int("refits", refits)
    epochs = check_positive_int("epochs", epochs)
    if not isinstance(detector, ChangeDetector):
        raise ValueError(f"detector: expected a ChangeDetector, got {type(detector).__name__}")
    acting = None if agent is None else as_agent(agent)
    log = ChangeLog()
    scale = model.delta_std.clone()  # fixed units: a refit changes the model's statistics
    new_data: ReplayBuffer | None = None
    for real in tqdm(run(env, acting, steps=steps, seed=seed), total=steps, desc="adapt",
                     disable=not progress, leave=False):
        step = real.index - 1
        obs, action, next_obs = (torch.as_tensor(np.asarray(x), device=model.device)[None]
                                 for x in (real.obs, real.action, real.next_obs))
        with torch.no_grad():
            predicted = model.predict(obs, action)[0]
        log.errors.append(float(prediction_error(model, obs, action, next_obs, scale)[0]))
        log.error_ratios.append(float(error_ratio(model, obs, action, next_obs)[0]))
        log.surprises.append(float(surprise(predicted, next_obs)[0]))
        log.scores.append(detector.score(log.error_ratios[-1]))
        if detector.update(log.error_ratios[-1]) and new_data is None:
            log.fired.append(step)
            new_data = ReplayBuffer.for_env(env, capacity=refit_after * refits)
        if new_data is not None:
            new_data.add(*real.transition)
            if len(new_data) % refit_after == 0:
                fit(model, new_data, epochs=epochs, seed=seed + step, progress=False)
                log.refits.append(step)
                detector.reset()
                if acting is not None:
                    acting.reset()  # its belief came from the model before the refit
                if len(new_data) >= refit_after * refits:
                    new_data = None
        if real.episode_over:
            log.returns.append((step, real.episode_return))
    return log
