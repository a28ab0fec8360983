"""One short, capped, timed episode of a planner: what the planning sliders show.

`budget_trial(planner, env)` runs any MPC planner (notebook 09's budget curve);
`planner_trial(model, env, horizon, candidates)` builds the random-shooting planner of
notebook 03's sliders and runs it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..models.base import WorldModel
from ..planners.base import MPCPlanner
from ..planners.shooting import RandomShooting, Select
from ..runner import run
from ..utils import check_positive_int


@dataclass(frozen=True)
class BudgetTrial:
    """One capped, timed episode of one planner at one budget.

    planner: the planner's class name; budget: imagined transitions per decision it was
    allowed; spent: what its last decision used; episode_return, steps: what the episode gave;
    ms_per_decision: mean wall-clock milliseconds per decision (depends on the machine);
    ended: the episode ended (pole fell, or the env's time limit) before `max_steps`.
    """

    planner: str
    budget: int
    spent: int
    episode_return: float
    steps: int
    ms_per_decision: float
    ended: bool


def budget_trial(planner: MPCPlanner, env: gym.Env, seed: int = 0, max_steps: int = 100
                 ) -> BudgetTrial:
    """Run `planner` for one episode of `env` (reset with `seed`), at most `max_steps` steps.

    The planner is reseeded with `seed` first, so the return is repeatable (the time is not).
    """
    max_steps = check_positive_int("max_steps", max_steps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    planner.reseed(int(seed))
    steps = list(run(env, planner, steps=max_steps, episodes=1, seed=int(seed)))
    thinking = sum(step.seconds for step in steps)
    return BudgetTrial(type(planner).__name__, planner.budget, planner.spent,
                       steps[-1].episode_return, len(steps), 1000 * thinking / len(steps),
                       steps[-1].episode_over)


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
    planner = RandomShooting(model, horizon=horizon, candidates=candidates, select=select,
                             seed=0)
    trial = budget_trial(planner, env, seed, max_steps)
    return Trial(horizon, candidates, select, trial.episode_return, trial.steps,
                 trial.ms_per_decision, trial.ended)
