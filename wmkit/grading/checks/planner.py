"""Exercise 03: how random shooting turns N imagined returns into one action."""

from __future__ import annotations

import numbers
import random
from types import SimpleNamespace
from typing import Any

import torch

from ...planners.shooting import RandomShooting
from ...spaces import ActionSpec
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, expect_tensor, generator, rngs

EX = exercise("03_planner", "From imagined returns to an action")

_reference_scores = RandomShooting.first_action_scores  # captured before learner code runs
EX.counterparts("first_action_scores", RandomShooting.first_action_scores)
EX.counterparts("select_action", RandomShooting.first_action_scores, RandomShooting.plan)


def reference_scores(first_actions: torch.Tensor, returns: torch.Tensor, n_actions: int
                     ) -> torch.Tensor:
    """The library's method, called without building a planner around it."""
    fake_planner = SimpleNamespace(action_spec=ActionSpec(True, n_actions))
    return _reference_scores(fake_planner, first_actions, returns)  # type: ignore[arg-type]


def random_candidates(rng: random.Random, all_tried: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Candidate action sequences (N, H), continuous returns (no ties) and n_actions."""
    n_actions, n, horizon = rng.randint(2, 5), rng.randint(8, 30), rng.randint(1, 6)
    g = generator(rng)
    actions = torch.randint(n_actions, (n, horizon), generator=g)
    if all_tried:
        actions[:n_actions, 0] = torch.arange(n_actions)
    else:  # one action (not the last) never comes first
        unused = rng.randrange(n_actions - 1)
        actions[:, 0] = torch.where(actions[:, 0] == unused, n_actions - 1, actions[:, 0])
    returns = torch.rand(n, generator=g) * rng.uniform(1, 50) - rng.uniform(0, 10)
    return actions, returns, n_actions


def _scores(student: Submitted, actions: torch.Tensor, returns: torch.Tensor,
            n_actions: int) -> Any:
    return call_student(student, actions[:, 0].clone(), returns.clone(), n_actions)


def _select(student: Submitted, actions: torch.Tensor, returns: torch.Tensor,
            n_actions: int, select: str) -> Any:
    return call_student(student, actions.clone(), returns.clone(), n_actions, select)


# -- part (a): first_action_scores --------------------------------------------------------------

SCORES = "first_action_scores"


@EX.check(SCORES, 1, "returns (n_actions,) float scores")
def scores_shape(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        actions, returns, n_actions = random_candidates(rng)
        scores = expect_tensor(_scores(student, actions, returns, n_actions),
                               "first_action_scores(...)", (n_actions,))
        if not scores.is_floating_point():
            raise CheckFailed(f"first_action_scores(...): expected float scores, got "
                              f"{scores.dtype}")


@EX.check(SCORES, 2, "each action scores the mean return of the candidates starting with it")
def scores_are_means(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        actions, returns, n_actions = random_candidates(rng)
        expected = reference_scores(actions[:, 0], returns, n_actions)
        actual = _scores(student, actions, returns, n_actions)
        expect_close(actual, expected, "first_action_scores(...)",
                     hint="score[a] = mean of returns[first_actions == a]")


@EX.check(SCORES, 1, "an action no candidate tried scores -inf")
def untried_is_minus_inf(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        actions, returns, n_actions = random_candidates(rng, all_tried=False)
        expected = reference_scores(actions[:, 0], returns, n_actions)
        actual = expect_tensor(_scores(student, actions, returns, n_actions),
                               "first_action_scores(...)", (n_actions,))
        untried = torch.isinf(expected)
        if not (torch.isinf(actual[untried]) & (actual[untried] < 0)).all():
            raise CheckFailed(f"actions {untried.nonzero().flatten().tolist()} were never tried "
                              f"first: expected -inf, got {actual[untried].tolist()}")


# -- part (b): select_action -------------------------------------------------------------------

SELECT = "select_action"


def _expect_int(value: Any, what: str) -> int:
    # numpy integers are Integral too; a tensor is not: gymnasium's Discrete refuses it.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CheckFailed(f"{what}: expected a Python int (the env takes it), got "
                          f"{type(value).__name__}; use int(...)")
    return int(value)


@EX.check(SELECT, 1, '"best": the first action of the highest-return candidate')
def select_best(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        actions, returns, n_actions = random_candidates(rng)
        expected = int(actions[returns.argmax(), 0])
        actual = _expect_int(_select(student, actions, returns, n_actions, "best"),
                             'select_action(..., select="best")')
        if actual != expected:
            raise CheckFailed(f'select_action(..., select="best"): expected {expected}, got '
                              f"{actual}")


@EX.check(SELECT, 1, '"mean": the first action with the highest mean return')
def select_mean(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        actions, returns, n_actions = random_candidates(rng, all_tried=rng.random() < 0.5)
        scores = reference_scores(actions[:, 0], returns, n_actions)
        expected = int(scores.argmax())
        actual = _expect_int(_select(student, actions, returns, n_actions, "mean"),
                             'select_action(..., select="mean")')
        if actual != expected:
            raise CheckFailed(f'select_action(..., select="mean"): expected {expected} (mean '
                              f"returns {[round(s, 3) for s in scores.tolist()]}), got {actual}")


@EX.check(SELECT, 1, "an unknown select raises a ValueError that names select")
def select_rejects_unknown(student: Submitted, seed: int) -> None:
    actions, returns, n_actions = random_candidates(next(rngs(seed)))
    try:
        _select(student, actions, returns, n_actions, "median")
    except ValueError as error:
        if "select" not in str(error):
            raise CheckFailed(f"the ValueError should name the argument select; got {error!r}"
                              ) from None
        return
    raise CheckFailed('select_action(..., select="median") did not raise a ValueError')

