"""Exercise 01: the one-step loss of the MLP world model (`MLPWorldModel.loss`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from ...models.mlp import MLPWorldModel
from ...spaces import ActionSpec
from ..core import CheckFailed, Submitted, exercise
from .common import (
    call_student,
    expect_close,
    expect_tensor,
    generator,
    get_key,
    observe_student,
    rngs,
    torch_seed,
)

EX = exercise("01_model_loss", "The one-step loss of a world model")
PART = "one_step_loss"

# Captured at import, before any learner code runs: patching the class later (a natural way
# to try a solution as a drop-in) cannot turn the reference into the learner's own code.
_reference_loss = MLPWorldModel.loss
EX.counterparts(PART, MLPWorldModel.loss)


def random_case(rng: random.Random) -> tuple[MLPWorldModel, dict[str, torch.Tensor], float]:
    """A small random model with random normalisation statistics, and a random batch."""
    obs_dim, batch_size = rng.randint(2, 5), rng.randint(6, 40)
    spec = (ActionSpec(True, rng.randint(2, 4)) if rng.random() < 0.75
            else ActionSpec(False, 2, (-1.0, -2.0), (1.0, 2.0)))
    with torch_seed(rng.randrange(2**31)):
        model = MLPWorldModel(obs_dim, spec, hidden=16, layers=2, device="cpu")
    g = generator(rng)
    with torch.no_grad():
        model.obs_mean.copy_(torch.randn(obs_dim, generator=g))
        model.obs_std.copy_(torch.rand(obs_dim, generator=g) + 0.5)
        model.delta_mean.copy_(torch.randn(obs_dim, generator=g) * 0.1)
        model.delta_std.copy_(torch.rand(obs_dim, generator=g) + 0.2)
        model.reward_mean.fill_(float(torch.randn((), generator=g)))
        model.reward_std.fill_(float(torch.rand((), generator=g)) + 0.5)
    obs = torch.randn(batch_size, obs_dim, generator=g) * 2
    if spec.discrete:
        action = torch.randint(spec.n, (batch_size,), generator=g)
    else:
        action = spec.sample((batch_size,), g, torch.device("cpu"))
    terminated = torch.rand(batch_size, generator=g) < 0.3
    terminated[0], terminated[1] = True, False  # both classes present
    batch = {
        "obs": obs,
        "action": action,
        # Rewards far from the mean as well, where Huber and MSE differ.
        "reward": torch.randn(batch_size, generator=g) * 3,
        "next_obs": obs + torch.randn(batch_size, obs_dim, generator=g) * 0.3,
        "terminated": terminated,
        "truncated": torch.zeros(batch_size, dtype=torch.bool),
    }
    return model, batch, rng.uniform(2.0, 20.0)


def _component(key: str, hint: str, weighted: bool = True) -> Callable[[Any, int], None]:
    """A check comparing one loss component with the library's on random cases."""

    def run(student: Submitted, seed: int) -> None:
        for rng in rngs(seed):
            model, batch, done_weight = random_case(rng)
            done_weight = done_weight if weighted else 1.0
            expected = _reference_loss(model, batch, done_weight)[key]
            losses = call_student(student, model, batch, done_weight)
            actual = get_key(losses, key, f"one_step_loss(...)[{key!r}]")
            expect_close(actual, expected, f"loss {key!r}", hint=hint)

    return run


@EX.check(PART, 1, "returns a dict of scalar tensors: delta, reward, done, total")
def returns_four_scalars(student: Submitted, seed: int) -> None:
    model, batch, done_weight = random_case(next(rngs(seed)))
    losses = call_student(student, model, batch, done_weight)
    if not isinstance(losses, dict):
        raise CheckFailed(f"expected a dict of losses, got {type(losses).__name__}")
    for key in ("delta", "reward", "done", "total"):
        expect_tensor(get_key(losses, key, "the returned dict"), f"loss {key!r}", ())


EX.check(PART, 2, "delta: MSE of the normalised change in observation")(_component(
    "delta", "predict the change next_obs - obs, normalised with delta_mean and delta_std, "
    "and compare with the first obs_dim outputs of model(obs, action)"))
EX.check(PART, 1, "reward: Huber loss of the normalised reward")(_component(
    "reward", "normalise the reward with reward_mean and reward_std and use F.huber_loss"))
EX.check(PART, 1, "done: BCE with logits on the termination head")(_component(
    "done", "use F.binary_cross_entropy_with_logits on the last output and terminated",
    weighted=False))
EX.check(PART, 1, "done: terminations weighted by done_weight (pos_weight)")(_component(
    "done", "pass pos_weight=torch.tensor(done_weight) to binary_cross_entropy_with_logits"))


@EX.check(PART, 1, "total = delta + reward + done")
def total_is_the_sum(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        model, batch, done_weight = random_case(rng)
        losses = call_student(student, model, batch, done_weight)
        parts = [get_key(losses, k, "the returned dict") for k in ("delta", "reward", "done")]
        expected = sum(expect_tensor(p, "a loss component").detach() for p in parts)
        expect_close(get_key(losses, "total", "the returned dict"), expected, "loss 'total'",
                     hint="total is the plain sum of the three components")


@EX.check(PART, 1, "total is differentiable: gradients reach every layer")
def total_has_gradients(student: Submitted, seed: int) -> None:
    model, batch, done_weight = random_case(next(rngs(seed)))
    called = observe_student(student, model, batch, done_weight, grads_of=["total"])
    expect_tensor(get_key(called.result, "total", "the returned dict"), "loss 'total'", ())
    grads = called.grads["total"]
    if grads is None:
        raise CheckFailed("loss 'total' has no gradient: keep it a tensor (no .item(), "
                          ".detach() or torch.no_grad())")
    for name, _ in model.net.named_parameters():
        grad = grads.get(f"0.net.{name}")
        if grad is None or not torch.isfinite(grad).all() or not grad.any():
            raise CheckFailed(f"no useful gradient reaches model.net.{name}: compute the loss "
                              "from model(obs, action)")
