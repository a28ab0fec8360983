"""Exercise 08: the λ-return of imagined trajectories (`wmkit.agents.lambda_returns`)."""

from __future__ import annotations

import random
from typing import Any

import torch

from ...agents.returns import lambda_returns
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, expect_tensor, generator, observe_student, rngs

EX = exercise("08_lambda_return", "The λ-return")
PART = "lambda_returns"

_reference = lambda_returns  # captured before learner code runs
EX.counterparts(PART, lambda_returns)

Case = tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]


def random_case(rng: random.Random, lam: float | None = None, min_horizon: int = 1) -> Case:
    """rewards (N, H), values (N, H+1), continues (N, H) in [0, 1], discount, lam.

    The continuations mix certain steps (exactly 1), certain ends (exactly 0) and soft
    probabilities, so a return that ignores them, or applies them one step off, is caught.
    """
    n, horizon = rng.randint(1, 7), rng.randint(min_horizon, 12)
    g = generator(rng)
    rewards = torch.randn(n, horizon, generator=g) * rng.uniform(0.5, 3.0)
    values = torch.randn(n, horizon + 1, generator=g) * rng.uniform(1.0, 10.0)
    draw = torch.rand(n, horizon, generator=g)
    continues = torch.where(draw < 0.5, torch.ones(()), torch.rand(n, horizon, generator=g))
    continues = torch.where(draw > 0.9, torch.zeros(()), continues)
    discount = rng.choice([1.0, rng.uniform(0.8, 0.999)])
    lam = rng.uniform(0.2, 0.95) if lam is None else lam
    return rewards, values, continues, discount, lam


def _returns(student: Submitted, case: Case) -> Any:
    rewards, values, continues, discount, lam = case
    return call_student(student, rewards.clone(), values.clone(), continues.clone(),
                        discount, lam)


def _expected(case: Case) -> torch.Tensor:
    return _reference(*case)


@EX.check(PART, 1, "returns one value per imagined step but the last: (N, H)")
def shape(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng)
        # One return per reward, R_0 .. R_{H-1} (values has one more column than rewards).
        expect_tensor(_returns(student, case), "lambda_returns(...)", tuple(case[0].shape))


@EX.check(PART, 1, "the last step bootstraps from the value at the horizon")
def last_step(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng)
        rewards, values, continues, discount, _ = case
        expected = rewards[:, -1] + discount * continues[:, -1] * values[:, -1]
        actual = expect_tensor(_returns(student, case), "lambda_returns(...)",
                               tuple(rewards.shape))
        expect_close(actual[:, -1], expected, "R_{H-1}",
                     hint="start from R_H = v_H (values[:, -1]): then "
                          "R_{H-1} = r_{H-1} + discount * c_{H-1} * v_H whatever lam is")


@EX.check(PART, 1, "lam = 0: the one-step TD targets")
def one_step(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng, lam=0.0)
        rewards, values, continues, discount, _ = case
        expect_close(_returns(student, case), rewards + discount * continues * values[:, 1:],
                     "lambda_returns(..., lam=0)",
                     hint="with lam = 0, R_t = r_t + discount * c_t * v_{t+1}: the value of the "
                          "NEXT state, values[:, t + 1]")


@EX.check(PART, 1, "lam = 1: every imagined reward, then the value at the horizon")
def whole_dream(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng, lam=1.0)
        expect_close(_returns(student, case), _expected(case), "lambda_returns(..., lam=1)",
                     hint="with lam = 1, R_t = r_t + discount * c_t * R_{t+1}: the discounted "
                          "rewards, each step multiplied by its continuation")


@EX.check(PART, 2, "any lam: the recursive mix of n-step returns")
def any_lam(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng)
        expect_close(_returns(student, case), _expected(case), "lambda_returns(...)",
                     hint="go backwards from R_H = v_H: R_t = r_t + discount * c_t * "
                          "((1 - lam) * v_{t+1} + lam * R_{t+1})")


@EX.check(PART, 1, "a dream that ends (c_t = 0) counts nothing after it")
def ended_dreams(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        rewards, values, continues, discount, lam = random_case(rng, min_horizon=2)
        end = rng.randrange(rewards.shape[1] - 1)  # an end with a later step to hide
        continues = continues.clone()
        continues[:, end] = 0.0
        later_values, later_rewards = values.clone(), rewards.clone()
        later_values[:, end + 1:] += 100.0  # what lies after the end changes ...
        later_rewards[:, end + 1:] -= 100.0
        shape = tuple(rewards.shape)
        base = expect_tensor(_returns(student, (rewards, values, continues, discount, lam)),
                             "lambda_returns(...)", shape)
        moved = expect_tensor(_returns(student, (later_rewards, later_values, continues,
                                                 discount, lam)), "lambda_returns(...)", shape)
        expect_close(moved[:, :end + 1], base[:, :end + 1],  # ... the returns up to it do not
                     f"R_0 .. R_{end} with c_{end} = 0",
                     hint="multiply everything after step t by c_t (discount * c_t * ...), "
                          "the bootstrap value included")


@EX.check(PART, 1, "differentiable: gradients reach rewards, values and continues")
def differentiable(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        case = random_case(rng)
        inputs = [tensor.clone().requires_grad_() for tensor in case[:3]]
        # Of the first dream's returns, R[0] (the grader takes a row of the result by index).
        called = observe_student(student, *inputs, *case[3:], grads_of=[0])
        expect_tensor(called.result, "lambda_returns(...)", tuple(case[0].shape))
        grads = called.grads.get(0)
        if grads is None:
            raise CheckFailed("lambda_returns(...) carries no gradient: keep every step a "
                              "tensor operation (no .item(), .detach(), numpy or torch.no_grad)")
        leaves = [tensor.clone().requires_grad_() for tensor in case[:3]]
        expected = torch.autograd.grad(_reference(*leaves, *case[3:])[0].sum(), leaves)
        for label, name, want in zip("012", ("rewards", "values", "continues"), expected):
            expect_close(grads[label], want, f"d sum(R[0]) / d {name}",
                         hint="build the returns out of the inputs without in-place writes "
                              "into them (collect the R_t in a list and torch.stack them)")
