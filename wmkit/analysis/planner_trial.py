"""One short, capped, timed episode of random-shooting MPC: what the planning sliders show."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..models.base import WorldModel
from ..planners.shooting import RandomShooting, Select
from ..runner import run
from ..utils import check_positive_int


@dataclass(frozen=True)
class Trial:
    """One `planner_trial`: the planner's settings and what the episode gave.

    episode_return: total reward; steps: real steps taken; ms_per_decision: mean wall-clock
    milliseconds per planner call (depends on the machine and on what else runs); ended: the
    episode ended (pole fell, or the env's time limit) before `max_steps`.
    """

    horizon: int
    candidates: int
    select: str
    episode_return: float
    steps: int
    ms_per_decision: float
    ended: bool


def planner_trial(model: WorldModel, env: gym.Env, horizon: int = 20, candidates: int = 100,
                  seed: int = 0, max_steps: int = 200, select: Select = "mean") -> Trial:
    """One episode of `RandomShooting(model, horizon, candidates, select)`, stopped after
    `max_steps` real steps (short, so that a slider move answers in a second or two).

    The env is reset with `seed` and the planner's sampling is seeded with it, so the return is
    repeatable (the timing is not).
    """
    max_steps = check_positive_int("max_steps", max_steps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    planner = RandomShooting(model, horizon=horizon, candidates=candidates, select=select,
                             seed=int(seed))
    steps = list(run(env, planner, steps=max_steps, episodes=1, seed=int(seed)))
    last = steps[-1]
    thinking = sum(step.seconds for step in steps)
    return Trial(horizon, candidates, select, last.episode_return, len(steps),
                 1000 * thinking / len(steps), last.episode_over)
