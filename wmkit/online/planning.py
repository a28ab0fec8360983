"""The model-based step of an online agent: dream ahead, pick an action, re-plan on surprise.

Continuation policy: a candidate is a *first* action; what follows it in the dream is
- "repeat" (default): the same action for the whole horizon, one dream per candidate
  (deterministic and cheap: "what if I keep pushing this way?"), or
- "random": `samples` dreams per candidate whose later actions are drawn uniformly from
  `candidate_actions` (random shooting grouped by first action; scores are averaged).
A candidate's score is its dreams' mean `total_imagined_reward`; ties go to the earlier
candidate. A dream that predicts done stops early and so scores less, which is what makes
CartPole's constant reward of 1 informative.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from .types import DreamRollout, WorldModel, as_action, as_observation


async def _dream_all(model: WorldModel, observation: tuple[float, ...],
                     sequences: list[list[int]]) -> list[DreamRollout]:
    batched = getattr(model, "dream_rollouts", None)
    if batched is not None:  # one network call per step for all sequences
        return await batched(observation, sequences)
    return list(await asyncio.gather(*(model.dream_rollout(observation, s) for s in sequences)))


async def plan_actions(model: WorldModel, observation: Sequence[float],
                       candidate_actions: Sequence[int], horizon: int | None = None, *,
                       continuation: str = "repeat", samples: int = 16,
                       rng: np.random.Generator | int | None = None) -> tuple[int, ...]:
    """The best dreamed action sequence (length `horizon`) from `observation`.

    horizon: default `model.config.rollout_horizon` (10 if the model has no config).
    continuation: "repeat" or "random" (see the module docstring); `samples` and `rng` (a
    numpy Generator or a seed) are used only by "random".
    Returns the highest-scoring dream's actions; its first action is the chosen candidate.
    """
    observation = as_observation("observation", observation)
    candidates = [as_action("candidate_actions", a) for a in candidate_actions]
    if not candidates:
        raise ValueError("candidate_actions: expected at least one action")
    if horizon is None:
        horizon = getattr(getattr(model, "config", None), "rollout_horizon", 10)
    horizon = as_action("horizon", horizon)
    if horizon <= 0:
        raise ValueError(f"horizon: expected a positive int, got {horizon}")
    if continuation == "repeat":
        samples = 1
        sequences = np.repeat(np.array(candidates)[:, None], horizon, axis=1)  # (C, H)
    elif continuation == "random":
        if as_action("samples", samples) <= 0:
            raise ValueError(f"samples: expected a positive int, got {samples}")
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        sequences = generator.choice(candidates, size=(len(candidates) * samples, horizon))
        sequences[:, 0] = np.repeat(candidates, samples)  # (C * samples, H), grouped by first
    else:
        raise ValueError(f"continuation: expected 'repeat' or 'random', got {continuation!r}")
    rollouts = await _dream_all(model, observation, sequences.tolist())
    returns = np.array([r.total_imagined_reward for r in rollouts]).reshape(len(candidates),
                                                                            samples)
    best = int(np.argmax(returns.mean(axis=1)))  # argmax keeps the first of equal scores
    best_dream = best * samples + int(np.argmax(returns[best]))
    return tuple(int(a) for a in sequences[best_dream])


async def select_action(model: WorldModel, observation: Sequence[float],
                        candidate_actions: Sequence[int], horizon: int | None = None,
                        **kwargs: Any) -> int:
    """The candidate first action whose dreams earn the most imagined reward (a coroutine).

    Same arguments as `plan_actions` (whose keyword arguments it passes on).
    """
    plan = await plan_actions(model, observation, candidate_actions, horizon, **kwargs)
    return plan[0]


def replan_steps(surprises: Sequence[float], threshold: float) -> list[int]:
    """Indices of the steps whose surprise exceeds `threshold`: where an agent re-plans
    (`wmkit.notebook.replan_explorer` draws them)."""
    values = np.asarray(surprises, dtype=np.float64)
    return np.flatnonzero(values > threshold).tolist()
