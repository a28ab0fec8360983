"""Exercise 05: one Dyna (Double-DQN) update, the step real and imagined data both feed."""

from __future__ import annotations

import random
from typing import Any

import torch

from ...planners.dyna import Dyna
from ...spaces import ActionSpec
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, generator, rngs, torch_seed

# The first Adam step imports torch._dynamo (seconds, twice that under the watch): done
# before the learner's cells, not inside their first timed call.
EX = exercise("05_dyna", "One Dyna update", kernel_setup="import torch._dynamo")
PART = "dyna_update"

_reference_update = Dyna.update  # captured before learner code can patch the class
EX.counterparts(PART, Dyna.update)


def random_agents(rng: random.Random, target_shift: float = 0.0
                  ) -> tuple[Dyna, Dyna, dict[str, torch.Tensor]]:
    """Two identical random agents (one for the library, one for the learner) whose target
    nets differ from their online nets, and a random minibatch. `target_shift` is added to
    the target net's output biases: large enough, every Bellman target needs clipping."""
    obs_dim, n_actions, batch = rng.randint(2, 5), rng.randint(2, 4), rng.randint(5, 24)
    settings = {"hidden": 16, "batch_size": batch, "lr": rng.uniform(1e-3, 1e-2),
                "gamma": rng.uniform(0.8, 0.99), "target_tau": rng.uniform(0.05, 0.5),
                "seed": rng.randrange(2**31), "device": "cpu"}
    agents = []
    noise_seed = rng.randrange(2**31)
    for _ in range(2):
        agent = Dyna(obs_dim, ActionSpec(True, n_actions), **settings)
        with torch.no_grad(), torch_seed(noise_seed):
            for param in agent.target.parameters():
                param.add_(torch.randn_like(param) * 0.3)
            agent.target[-1].bias.add_(target_shift)
        agents.append(agent)
    g = generator(rng)
    terminated: torch.Tensor = torch.rand(batch, generator=g)
    # Imagined data carry termination probabilities; real data carry bools. Both must work.
    terminated = terminated if rng.random() < 0.5 else terminated < 0.3
    data = {"obs": torch.randn(batch, obs_dim, generator=g),
            "action": torch.randint(n_actions, (batch,), generator=g),
            "reward": torch.randn(batch, generator=g) * 2,
            "next_obs": torch.randn(batch, obs_dim, generator=g),
            "terminated": terminated}
    return agents[0], agents[1], data


def _both(student: Submitted, rng: random.Random, target_shift: float = 0.0
          ) -> tuple[Dyna, Dyna, float, Any, list[torch.Tensor]]:
    """(library agent, learner's agent, library loss, learner's return, target before)."""
    reference, mine, batch = random_agents(rng, target_shift)
    target_before = [p.detach().clone() for p in mine.target.parameters()]
    expected = _reference_update(reference, {k: v.clone() for k, v in batch.items()})
    actual = call_student(student, mine, {k: v.clone() for k, v in batch.items()})
    return reference, mine, expected, actual, target_before


@EX.check(PART, 1, "returns the loss as a Python float")
def returns_float(student: Submitted, seed: int) -> None:
    *_, actual, _ = _both(student, next(rngs(seed)))
    if isinstance(actual, bool) or not isinstance(actual, float):
        raise CheckFailed(f"dyna_update(...): expected a float, got {type(actual).__name__}; "
                          "use loss.item()")


@EX.check(PART, 2, "loss: Huber between Q(s, a) and the Double-DQN target")
def loss_matches(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        _, _, expected, actual, _ = _both(student, rng)
        try:
            value = float(actual)
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"dyna_update(...): expected a number, got "
                              f"{type(actual).__name__}") from None
        expect_close(torch.tensor(value), torch.tensor(expected), "the returned loss",
                     hint="target = reward + gamma * (1 - terminated) * Q_target(s', a*), "
                          "a* = argmax of the ONLINE net at s', no gradient through the target")


@EX.check(PART, 2, "one gradient step: the online net moves as the library's does")
def online_step(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        reference, mine, *_ = _both(student, rng)
        for (name, expected), actual in zip(reference.q.named_parameters(), mine.q.parameters(),
                                            strict=True):
            expect_close(actual, expected, f"agent.q.{name} after the update", rtol=1e-4,
                         atol=1e-6, hint="zero the gradients, backward the loss, then "
                                         "agent.optimizer.step()")


@EX.check(PART, 1, "the target net moves toward the online net by target_tau")
def target_follows(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        _, mine, _, _, before = _both(student, rng)
        for (name, target), online, old in zip(mine.target.named_parameters(),
                                               mine.q.parameters(), before, strict=True):
            expected = old + mine.target_tau * (online.detach() - old)
            expect_close(target, expected, f"agent.target.{name} after the update",
                         rtol=1e-4, atol=1e-6,
                         hint="after the step: target <- target + tau * (online - target)")


@EX.check(PART, 1, "targets clipped to max|r| / (1 - gamma)")
def targets_clipped(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        # A target net that says every next state is worth ~1,000: far above any return.
        _, _, expected, actual, _ = _both(student, rng, target_shift=1_000.0)
        try:
            value = float(actual)
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"dyna_update(...): expected a number, got "
                              f"{type(actual).__name__}") from None
        expect_close(torch.tensor(value), torch.tensor(expected),
                     "the loss when the target net values every state at ~1,000",
                     hint='clip the target: target = agent.clip_target(target, batch["reward"])')
