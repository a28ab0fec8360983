"""Exercise 04: ensemble disagreement, and planning that is wary of it."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import torch

from ...models.base import Rollout
from ...models.ensemble import EnsembleWorldModel, MemberPrediction
from ...planners.shooting import RandomShooting
from ...spaces import ActionSpec
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, expect_tensor, generator, rngs

EX = exercise("04_ensemble", "Ensemble disagreement")

# References captured at import, before any learner code can patch the library.
_reference_disagreement = EnsembleWorldModel.disagreement
_reference_score = RandomShooting.score
EX.counterparts("disagreement", EnsembleWorldModel.disagreement,
                MemberPrediction.__dict__["disagreement"])
EX.counterparts("risk_adjusted_returns", RandomShooting.score)


def random_ensemble(rng: random.Random, identical: bool = False
                    ) -> tuple[EnsembleWorldModel, torch.Tensor, torch.Tensor]:
    """A small random ensemble (members identical if asked) and a random batch (obs, action)."""
    obs_dim, members, batch = rng.randint(2, 5), rng.randint(2, 6), rng.randint(3, 20)
    spec = ActionSpec(True, rng.randint(2, 3))
    model = EnsembleWorldModel(obs_dim, spec, ensemble_size=members, hidden=16, layers=2,
                               seed=rng.randrange(2**31), device="cpu").eval()
    g = generator(rng)
    with torch.no_grad():
        model.obs_mean.copy_(torch.randn(obs_dim, generator=g))
        model.obs_std.copy_(torch.rand(obs_dim, generator=g) + 0.5)
        model.delta_std.copy_(torch.rand(obs_dim, generator=g) + 0.2)
        if identical:
            for layer in model.net:
                layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
                layer.bias.copy_(layer.bias[:1].expand_as(layer.bias))
    obs = torch.randn(batch, obs_dim, generator=g) * 2
    action = torch.randint(spec.n, (batch,), generator=g)
    return model, obs, action


# -- part (a): disagreement -------------------------------------------------------------------

PART_A = "disagreement"


def _disagreement(student: Submitted, model: EnsembleWorldModel, obs: torch.Tensor,
                  action: torch.Tensor) -> Any:
    return call_student(student, model, obs.clone(), action.clone(), no_grad=True)


@EX.check(PART_A, 1, "returns (B,) non-negative numbers")
def disagreement_shape(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        model, obs, action = random_ensemble(rng)
        value = expect_tensor(_disagreement(student, model, obs, action),
                              "disagreement(model, obs, action)", (len(obs),))
        if not value.is_floating_point() or (value < 0).any():
            raise CheckFailed(f"disagreement(...): expected non-negative floats, got "
                              f"{value.tolist()}")


@EX.check(PART_A, 1, "zero when every member predicts the same")
def disagreement_zero_when_identical(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        model, obs, action = random_ensemble(rng, identical=True)
        expect_close(_disagreement(student, model, obs, action), torch.zeros(len(obs)),
                     "disagreement(...) of identical members", atol=1e-5,
                     hint="measure the spread of the members around their own mean")


@EX.check(PART_A, 2, "std over members of the normalised change, averaged over dimensions")
def disagreement_matches(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        model, obs, action = random_ensemble(rng)
        with torch.no_grad():
            expected = _reference_disagreement(model, obs, action)
        expect_close(_disagreement(student, model, obs, action), expected, "disagreement(...)",
                     hint="model(obs, action)[..., :D] is each member's normalised change "
                          "(E, B, D): population std over members (correction=0), then the "
                          "mean over the D dimensions")


# -- part (b): risk_adjusted_returns ------------------------------------------------------------

PART_B = "risk_adjusted_returns"


def random_rollout(rng: random.Random) -> Rollout:
    """A rollout with rewards already zero after the first done, and positive disagreement."""
    n, horizon = rng.randint(4, 12), rng.randint(3, 10)
    g = generator(rng)
    dones = torch.rand(n, horizon, generator=g) < 0.15
    dones[0] = False
    dones[1, rng.randrange(horizon - 1)] = True
    alive = (torch.cumsum(dones.int(), 1) - dones.int()) == 0
    rewards = (torch.rand(n, horizon, generator=g) + 0.5) * alive
    disagreement = torch.rand(n, horizon, generator=g) * rng.uniform(0.1, 2.0)
    return Rollout(torch.zeros(n, horizon + 1, 2), torch.zeros(n, horizon, dtype=torch.long),
                   rewards, dones, disagreement)


def reference_adjusted(rollout: Rollout, risk: float) -> torch.Tensor:
    planner = SimpleNamespace(risk=risk, max_disagreement=None)
    return _reference_score(planner, rollout)  # type: ignore[arg-type]


def _adjusted(student: Submitted, rollout: Rollout, risk: float) -> Any:
    copy = Rollout(rollout.observations.clone(), rollout.actions.clone(),
                   rollout.rewards.clone(), rollout.dones.clone(),
                   None if rollout.disagreement is None else rollout.disagreement.clone())
    return call_student(student, copy, risk)


@EX.check(PART_B, 1, "risk = 0: the imagined return")
def risk_zero(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        rollout = random_rollout(rng)
        expect_close(_adjusted(student, rollout, 0.0), rollout.returns,
                     "risk_adjusted_returns(rollout, 0.0)")


@EX.check(PART_B, 1, "subtracts risk x the disagreement summed over the steps")
def risk_subtracts(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        rollout = random_rollout(rng)
        rollout.dones[:] = False  # no termination here: only the penalty is tested
        rollout.rewards = rollout.rewards.clamp_min(0.5)
        risk = rng.uniform(0.1, 3.0)
        expect_close(_adjusted(student, rollout, risk), reference_adjusted(rollout, risk),
                     f"risk_adjusted_returns(rollout, {risk:.3f})",
                     hint="returns - risk * disagreement.sum(1)")


@EX.check(PART_B, 1, "disagreement after the first done does not count")
def risk_masked(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        rollout = random_rollout(rng)
        risk = rng.uniform(0.1, 3.0)
        expect_close(_adjusted(student, rollout, risk), reference_adjusted(rollout, risk),
                     f"risk_adjusted_returns(rollout, {risk:.3f})",
                     hint="multiply the disagreement by rollout.alive before summing: the "
                          "model's doubts about a world after the episode ended cost nothing")
