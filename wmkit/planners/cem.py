"""Cross-entropy method (CEM) MPC: sample sequences, keep the best, refit, sample again.

Random shooting samples every candidate from the same uniform distribution and keeps one
answer. CEM spends the same budget in a few rounds ("iterations") and learns from each one:

1. sample N action sequences from a per-step distribution (a Gaussian per step and action
   dimension for Box actions, clipped to the bounds; a categorical per step for Discrete);
2. imagine them all in one batched call and score them;
3. keep the top K ("elites", K = elite_fraction x N) and refit the distribution to them
   (`cem_update`), blending in a little of the old one (`momentum`) so it cannot collapse
   after one lucky batch;
4. repeat; act on the final distribution (its mean for Box, its most likely action for
   Discrete).

Between real steps the plan is kept and shifted one step (`MPCPlanner.shifted`): the next
search starts where the last one ended instead of from scratch. This is the planner of PETS
(Chua et al., 2018). The budget is split evenly: N = budget // (iterations x horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..models.base import TerminationFn, WorldModel
from ..spaces import ActionSpec
from ..utils import check_positive_int
from .base import MPCPlanner, Plan, check_positive_float

WARM_START_WEIGHT = 0.5  # Discrete: the shifted plan's share of each step's probability mass


@dataclass
class Gaussian:
    """A sampling distribution over Box action sequences: mean and std, each (H, A).

    Samples outside the bounds are clipped onto them (`sample`).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, n: int, generator: torch.Generator, spec: ActionSpec) -> torch.Tensor:
        """n sequences (n, H, A), clipped to the action bounds."""
        noise = torch.randn((n, *self.mean.shape), generator=generator,
                            device=self.mean.device)
        low, high = spec.bounds(self.mean.device)
        return (self.mean + self.std * noise).clamp(low, high)


@dataclass
class Categorical:
    """A sampling distribution over Discrete action sequences: probs (H, n_actions)."""

    probs: torch.Tensor

    def sample(self, n: int, generator: torch.Generator, spec: ActionSpec) -> torch.Tensor:
        """n sequences (n, H) long, each step drawn independently from its row of probs."""
        return torch.multinomial(self.probs, n, replacement=True, generator=generator).T

    @property
    def mode(self) -> torch.Tensor:
        """(H,) long: the most likely action at each step."""
        return self.probs.argmax(-1)


def elite_count(population: int, elite_fraction: float) -> int:
    """K, how many of `population` candidates are elites: round(fraction x N), at least 1."""
    return max(1, min(population, round(elite_fraction * population)))


def cem_update(candidates: torch.Tensor, scores: torch.Tensor, elite_fraction: float,
               n_actions: int | None = None) -> Gaussian | Categorical:
    """The CEM update: the distribution of the elites, the best-scoring candidates.

    Args:
        candidates: N action sequences, (N, H, A) float (Box) or (N, H) long (Discrete).
        scores: (N,) what each sequence is worth (higher is better).
        elite_fraction: the elites are the top K = max(1, round(elite_fraction x N)) by score.
        n_actions: the number of Discrete actions (needed for Discrete candidates only).

    Returns:
        Box: `Gaussian(mean, std)`, each (H, A), the elites' mean and (population) std per
        step and action dimension. Discrete: `Categorical(probs)`, (H, n_actions), how often
        the elites take each action at each step.
    """
    if scores.dim() != 1 or scores.shape[0] != candidates.shape[0]:
        raise ValueError(f"scores: expected shape ({candidates.shape[0]},), "
                         f"got {tuple(scores.shape)}")
    k = elite_count(len(scores), elite_fraction)
    elites = candidates.index_select(0, scores.topk(k).indices)  # (K, H[, A])
    if candidates.is_floating_point():
        return Gaussian(elites.mean(0), elites.std(0, correction=0))
    if n_actions is None:
        raise ValueError("n_actions: needed for Discrete candidates, got None")
    one_hot = torch.nn.functional.one_hot(elites, n_actions).float()  # (K, H, n)
    return Categorical(one_hot.mean(0))


def blend(new: Gaussian | Categorical, old: Gaussian | Categorical, momentum: float
          ) -> Gaussian | Categorical:
    """(1 - momentum) x new + momentum x old, parameter by parameter."""
    if isinstance(new, Gaussian):
        return Gaussian(torch.lerp(new.mean, old.mean, momentum),
                        torch.lerp(new.std, old.std, momentum))
    return Categorical(torch.lerp(new.probs, old.probs, momentum))


class CEM(MPCPlanner):
    """MPC with the cross-entropy method (see the module docstring).

    Args:
        model: a `WorldModel` (Discrete or Box actions).
        budget: imagined transitions per decision, split over the iterations:
            population N = budget // (iterations x horizon) sequences per iteration.
        horizon: H, imagined steps per sequence.
        iterations: sample-and-refit rounds per decision.
        elite_fraction: the share of each population refitted to, in (0, 1].
        momentum: the share of the previous distribution kept at each refit, in [0, 1).
        initial_std: Box: the starting std per step, as a fraction of half the action range.
        termination_fn, risk, max_disagreement, seed, compile: see `MPCPlanner`.

    After each decision `distributions` holds the distribution sampled at each iteration and
    the final one (iterations + 1 of them) and `iteration_returns` the scores (N,) of each
    iteration's population: what notebook 09 draws.
    """

    # The refit rule, a class attribute so that a subclass can swap in its own (exercise 07
    # plugs the learner's `cem_update` in this way).
    update = staticmethod(cem_update)

    def __init__(self, model: WorldModel, budget: int = 10_000, horizon: int = 20,
                 iterations: int = 5, elite_fraction: float = 0.1, momentum: float = 0.1,
                 initial_std: float = 1.0, termination_fn: TerminationFn | None = None,
                 risk: float = 0.0, max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        self.iterations = check_positive_int("iterations", iterations)
        self.elite_fraction = check_positive_float("elite_fraction", elite_fraction)
        if self.elite_fraction > 1:
            raise ValueError(f"elite_fraction: expected a share of the population in (0, 1] "
                             f"(elites cannot outnumber it), got {elite_fraction!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 <= momentum < 1:
            raise ValueError(f"momentum: expected a float in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.initial_std = check_positive_float("initial_std", initial_std)
        super().__init__(model, budget, horizon, termination_fn, risk, max_disagreement, seed,
                         compile)
        self.require_sequences(self.iterations, "iterations", "one sequence per iteration")
        self.population = self.budget // (self.iterations * self.horizon)
        self.elites = elite_count(self.population, self.elite_fraction)
        self.distributions: list[Gaussian | Categorical] = []
        self.iteration_returns: list[torch.Tensor] = []

    def initial_distribution(self) -> Gaussian | Categorical:
        """Where a search starts: around the previous plan shifted one step, if there is one."""
        spec, previous = self.action_spec, self.shifted()
        if spec.discrete:
            uniform = torch.full((self.horizon, spec.n), 1 / spec.n, device=self.device)
            if previous is None:
                return Categorical(uniform)
            one_hot = torch.nn.functional.one_hot(previous, spec.n).float()
            return Categorical(torch.lerp(uniform, one_hot, WARM_START_WEIGHT))
        low, high = spec.bounds(self.device)
        mean = ((low + high) / 2).expand(self.horizon, spec.n) if previous is None else previous
        std = (self.initial_std * (high - low) / 2).expand(self.horizon, spec.n)
        return Gaussian(mean.clone(), std.clone())

    def search(self, state: Any) -> Plan:
        """`iterations` rounds of sample, imagine, refit to the elites; act on the result."""
        distribution = self.initial_distribution()
        self.distributions, self.iteration_returns = [distribution], []
        n_actions = self.action_spec.n if self.action_spec.discrete else None
        for _ in range(self.iterations):
            actions = distribution.sample(self.population, self.generator, self.action_spec)
            rollout, returns = self.evaluate(state, actions)
            refit = self.update(actions, returns, self.elite_fraction, n_actions)
            distribution = blend(refit, distribution, self.momentum)
            self.distributions.append(distribution)
            self.iteration_returns.append(returns)
        if isinstance(distribution, Categorical):
            sequence = distribution.mode
        else:
            sequence = distribution.mean
        return self.decide(sequence, rollout, returns)
