"""Exercise 07: the CEM update, from the elites to the next sampling distribution."""

from __future__ import annotations

import random
from typing import Any

import torch

from ...planners.cem import cem_update, elite_count
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, expect_tensor, generator, rngs

EX = exercise("07_cem_update", "The CEM update: from elites to a new distribution")
PART = "cem_update"

_reference_update = cem_update  # captured before learner code runs
EX.counterparts(PART, cem_update, elite_count)


def box_case(rng: random.Random, fraction: float | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Candidates (N, H, A) float, distinct scores (N,) and an elite fraction."""
    n, horizon, dims = rng.randint(6, 40), rng.randint(1, 6), rng.randint(1, 3)
    g = generator(rng)
    candidates = torch.randn(n, horizon, dims, generator=g) * rng.uniform(0.5, 2.0)
    scores = torch.randn(n, generator=g) * rng.uniform(1, 50)
    return candidates, scores, rng.uniform(0.1, 0.6) if fraction is None else fraction


def discrete_case(rng: random.Random) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Candidates (N, H) long of n_actions actions, distinct scores (N,), a fraction."""
    n, horizon, n_actions = rng.randint(6, 40), rng.randint(1, 6), rng.randint(2, 5)
    g = generator(rng)
    candidates = torch.randint(n_actions, (n, horizon), generator=g)
    scores = torch.randn(n, generator=g) * rng.uniform(1, 50)
    return candidates, scores, rng.uniform(0.1, 0.6), n_actions


def _update(student: Submitted, candidates: torch.Tensor, scores: torch.Tensor,
            fraction: float, n_actions: int | None = None) -> Any:
    return call_student(student, candidates.clone(), scores.clone(), fraction, n_actions)


def _field(result: Any, name: str, kind: str) -> Any:
    """result.<name>, or CheckFailed saying which distribution was expected."""
    if not hasattr(result, name):
        raise CheckFailed(f"cem_update(...): expected a {kind} with .{name}, got "
                          f"{type(result).__name__}; return {kind}(...)")
    return getattr(result, name)


@EX.check(PART, 1, "Box: returns a Gaussian, mean and std each (H, A)")
def box_shapes(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        candidates, scores, fraction = box_case(rng)
        result = _update(student, candidates, scores, fraction)
        for name in ("mean", "std"):
            expect_tensor(_field(result, name, "Gaussian"), f"cem_update(...).{name}",
                          tuple(candidates.shape[1:]))


@EX.check(PART, 2, "Box: the mean of the top K = round(fraction x N) candidates by score")
def box_mean(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        candidates, scores, fraction = box_case(rng)
        expected = _reference_update(candidates, scores, fraction)
        actual = _field(_update(student, candidates, scores, fraction), "mean", "Gaussian")
        expect_close(actual, expected.mean, "cem_update(...).mean",
                     hint="keep the K highest scores (scores.topk(K)) and average those "
                          "candidates over the population axis (dim 0)")


@EX.check(PART, 1, "Box: the std of the elites (population std, per step and dimension)")
def box_std(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        candidates, scores, fraction = box_case(rng)
        expected = _reference_update(candidates, scores, fraction)
        actual = _field(_update(student, candidates, scores, fraction), "std", "Gaussian")
        expect_close(actual, expected.std, "cem_update(...).std",
                     hint="the elites' std over dim 0 with correction=0 (divide by K, not K-1)")


@EX.check(PART, 1, "at least one elite, however small the fraction")
def at_least_one_elite(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        candidates, scores, _ = box_case(rng)
        fraction = rng.uniform(0.001, 0.4 / len(scores))  # round(fraction x N) == 0
        best = candidates[scores.argmax()]
        result = _update(student, candidates, scores, fraction)
        expect_close(_field(result, "mean", "Gaussian"), best, "cem_update(...).mean",
                     hint="K = max(1, round(fraction x N)): with one elite the mean is the best "
                          "candidate")
        expect_close(_field(result, "std", "Gaussian"), torch.zeros_like(best),
                     "cem_update(...).std", hint="one elite has a std of 0")


@EX.check(PART, 2, "Discrete: a Categorical, probs (H, n_actions): the elites' action shares")
def discrete_probs(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        candidates, scores, fraction, n_actions = discrete_case(rng)
        expected = _reference_update(candidates, scores, fraction, n_actions)
        actual = _field(_update(student, candidates, scores, fraction, n_actions), "probs",
                        "Categorical")
        actual = expect_tensor(actual, "cem_update(...).probs", tuple(expected.probs.shape))
        if not actual.is_floating_point():
            raise CheckFailed(f"cem_update(...).probs: expected float probabilities, got "
                              f"{actual.dtype}")
        expect_close(actual, expected.probs, "cem_update(...).probs",
                     hint="probs[t, a] = the share of the elites whose action at step t is a "
                          "(one_hot(elites, n_actions).float().mean(0))")


@EX.check(PART, 1, "scores of the wrong shape raise a ValueError that names scores")
def refuses_bad_scores(student: Submitted, seed: int) -> None:
    candidates, scores, fraction = box_case(next(rngs(seed)))
    try:
        _update(student, candidates, scores[:-1], fraction)
    except ValueError as error:
        if "scores" not in str(error):
            raise CheckFailed(f"the ValueError should name the argument scores; got {error!r}"
                              ) from None
        return
    raise CheckFailed(f"cem_update(...) with {len(candidates)} candidates and "
                      f"{len(scores) - 1} scores did not raise a ValueError")

