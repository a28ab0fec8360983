"""Exercise 02: open-loop imagination with termination masking (`alive_before`, `imagine`)."""

from __future__ import annotations

import random
from typing import Any

import torch

from ...models.base import alive_before as _library_alive_before
from ...models.mlp import MLPWorldModel
from ...spaces import ActionSpec
from ..core import CheckFailed, Submitted, exercise
from ..sandbox import ThresholdTermination
from .common import (
    call_student,
    expect_close,
    expect_equal,
    expect_tensor,
    generator,
    observe_student,
    rngs,
    torch_seed,
)

EX = exercise("02_rollout", "Imagining forward, and stopping at the end")

# References captured at import, before any learner code can patch the library.
_reference_alive_before = _library_alive_before
_reference_imagine = MLPWorldModel.imagine
EX.counterparts("alive_before", _library_alive_before)
EX.counterparts("imagine", MLPWorldModel.imagine)


# -- part (a): alive_before ----------------------------------------------------------------------


def random_dones(rng: random.Random, max_dones_per_row: int) -> torch.Tensor:
    """(N, H) bool with 0..max_dones_per_row dones per row at random steps."""
    n, horizon = rng.randint(4, 9), rng.randint(5, 12)
    dones = torch.zeros(n, horizon, dtype=torch.bool)
    for row in range(n):
        for _ in range(rng.randint(0, max_dones_per_row)):
            dones[row, rng.randrange(horizon)] = True
    dones[0] = False  # a row that never ends: every step counts
    dones[1, rng.randrange(horizon)] = True  # a row that does end
    return dones


@EX.check("alive_before", 1, "returns a bool tensor shaped like dones")
def alive_shape(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        dones = random_dones(rng, 2)
        expect_tensor(call_student(student, dones.clone()), "alive_before(dones)",
                      tuple(dones.shape), torch.bool)


@EX.check("alive_before", 1, "the terminating step counts, later steps do not")
def alive_single_done(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        dones = random_dones(rng, 1)
        expect_equal(call_student(student, dones.clone()), _reference_alive_before(dones),
                     "alive_before(dones)",
                     hint="step t counts when no done happened at steps < t (t itself included)")


@EX.check("alive_before", 1, "only the first done matters")
def alive_many_dones(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        dones = random_dones(rng, 4)
        expect_equal(call_student(student, dones.clone()), _reference_alive_before(dones),
                     "alive_before(dones)",
                     hint="after the first done nothing counts, whatever follows")


# -- part (b): imagine ---------------------------------------------------------------------------


def random_model(rng: random.Random) -> MLPWorldModel:
    """A small random MLP world model: its termination logits fall on both sides of 0."""
    obs_dim = rng.randint(2, 5)
    spec = (ActionSpec(True, rng.randint(2, 3)) if rng.random() < 0.75
            else ActionSpec(False, 1, (-2.0,), (2.0,)))
    with torch_seed(rng.randrange(2**31)):
        model = MLPWorldModel(obs_dim, spec, hidden=16, layers=2, device="cpu")
    g = generator(rng)
    with torch.no_grad():
        model.delta_std.copy_(torch.rand(obs_dim, generator=g) * 0.2 + 0.05)
        model.reward_mean.fill_(1.0)
    return model.eval()


def random_actions(model: MLPWorldModel, rng: random.Random) -> torch.Tensor:
    n, horizon = rng.randint(3, 8), rng.randint(4, 10)
    return model.action_spec.sample((n, horizon), generator(rng), torch.device("cpu"))


def random_start(model: MLPWorldModel, rng: random.Random) -> torch.Tensor:
    return torch.randn(model.obs_dim, generator=generator(rng)) * 0.5


def threshold_termination(model: MLPWorldModel, start: torch.Tensor, actions: torch.Tensor
                          ) -> ThresholdTermination:
    """A known termination rule that ends some imagined trajectories part-way: the first obs
    dimension above a threshold near its median over the imagined steps. The threshold sits in
    the middle of the widest gap between neighbouring values, so float rounding (the library
    folds the normalisation into the weights) cannot flip a decision."""
    with torch.no_grad():
        observations = _reference_imagine(model, start, actions).observations
    values = observations[:, 1:, 0].flatten().sort().values
    middle = values[len(values) // 4: 3 * len(values) // 4 + 1]
    gaps = middle[1:] - middle[:-1]
    i = int(gaps.argmax())
    threshold = float(middle[i] + middle[i + 1]) / 2
    return ThresholdTermination(0, threshold)


def clear_logits(model: MLPWorldModel, start: torch.Tensor, actions: torch.Tensor) -> bool:
    """Whether every termination logit along the reference rollout is clearly away from 0."""
    with torch.no_grad():
        observations = _reference_imagine(model, start, actions).observations
        logits = torch.stack([model.predict(observations[:, t], actions[:, t])[2]
                              for t in range(actions.shape[1])], 1)
    return bool(logits.abs().min() > 1e-3)


def rollout_field(rollout: Any, name: str) -> Any:
    if not hasattr(rollout, name):
        raise CheckFailed(f"imagine(...) returned a {type(rollout).__name__} without "
                          f".{name}; return wm.Rollout(observations, actions, rewards, dones)")
    return getattr(rollout, name)


def _imagine(student: Submitted, model: MLPWorldModel, start: torch.Tensor,
             actions: torch.Tensor, termination_fn: Any = None) -> Any:
    return call_student(student, model, start.clone(), actions.clone(), termination_fn,
                        no_grad=True)


@EX.check("imagine", 2, "observations (N, H+1, D): the start, then one predicted step per action")
def imagine_observations(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        model = random_model(rng)
        start, actions = random_start(model, rng), random_actions(model, rng)
        expected = _reference_imagine(model, start, actions).observations
        actual = rollout_field(_imagine(student, model, start, actions), "observations")
        expect_close(actual, expected, "rollout.observations",
                     hint="observations[:, 0] is the start; step t+1 is model.predict(obs_t, "
                          "actions[:, t])[0]")


@EX.check("imagine", 1, "one batched model call per imagined step")
def imagine_is_batched(student: Submitted, seed: int) -> None:
    rng = next(rngs(seed))
    model = random_model(rng)
    start, actions = random_start(model, rng), random_actions(model, rng)
    batch_sizes = observe_student(student, model, start.clone(), actions.clone(), None,
                                  no_grad=True, count_calls_of="0.net").batches or []
    n, horizon = actions.shape[:2]
    if batch_sizes != [n] * horizon:
        raise CheckFailed(f"expected {horizon} calls of the network, each on all {n} candidates "
                          f"at once; got {len(batch_sizes)} calls on batches of "
                          f"{sorted(set(batch_sizes))}: no Python loop over candidates")


@EX.check("imagine", 1, "dones: the termination head's logit > 0")
def imagine_learned_dones(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        for _ in range(20):  # a case whose logits are not within rounding of 0
            model = random_model(rng)
            start, actions = random_start(model, rng), random_actions(model, rng)
            if clear_logits(model, start, actions):
                break
        expected = _reference_imagine(model, start, actions).dones
        actual = rollout_field(_imagine(student, model, start, actions), "dones")
        expect_equal(actual, expected, "rollout.dones",
                     hint="without termination_fn, done is the third output of predict > 0")


def _compare_with_rule(student: Submitted, seed: int, field: str,
                       compare: Any, hint: str) -> None:
    """Imagine with a termination rule that fires mid-rollout; compare one Rollout field."""
    for rng in rngs(seed):
        model = random_model(rng)
        start, actions = random_start(model, rng), random_actions(model, rng)
        rule = threshold_termination(model, start, actions)
        expected = getattr(_reference_imagine(model, start, actions, rule), field)
        actual = rollout_field(_imagine(student, model, start, actions, rule), field)
        compare(actual, expected, f"rollout.{field}", hint=hint)


@EX.check("imagine", 1, "dones: termination_fn, when given, replaces the head")
def imagine_rule_dones(student: Submitted, seed: int) -> None:
    _compare_with_rule(student, seed, "dones", expect_equal,
                       hint="termination_fn(next observations (N, H, D)) -> (N, H) bool")


@EX.check("imagine", 1, "rewards: predicted until the first done, zero after it")
def imagine_masked_rewards(student: Submitted, seed: int) -> None:
    _compare_with_rule(student, seed, "rewards", expect_close,
                       hint="multiply the predicted rewards by alive_before(dones)")
