"""Model-predictive path integral (MPPI) control: perturb one plan, average the perturbations.

MPPI keeps one *nominal* action sequence and improves it in place:

1. perturb the nominal N times: add Gaussian noise, clipped to the bounds; the nominal
   itself is candidate 0, so a round never loses the plan it started from;
2. imagine them all in one batched call and score them;
3. weight each candidate by exp(return / temperature) (`mppi_weights`) and make the nominal
   their weighted average (`mppi_update`);
4. repeat for a few iterations, act on the nominal's first action, and shift the nominal one
   step to start the next decision with (`MPCPlanner.shifted`).

Discrete actions cannot be averaged, so there the nominal is a distribution: per step, the
probability of each action (H, n). Candidates are drawn from it, mixed with a share `noise`
of uniformly random actions (the perturbation), and the update makes it the candidates'
return-weighted action frequencies; the plan is the most likely action at each step (it is
candidate 0). This is CEM with soft weights instead of a hard cut at the elites.

Where CEM keeps the top K and forgets the rest, MPPI lets every candidate count, in proportion
to how good it is: a low temperature tends towards "the best one", a high one towards "all of
them equally". The temperature is in units of the candidates' return std (as in
`RandomShooting`'s "mean" rule), so one value suits CartPole's returns and Pendulum's alike.
The budget is split evenly: N = budget // (iterations x horizon). TD-MPC (Hansen et al.,
2022) plans this way.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.base import TerminationFn, WorldModel
from ..utils import check_positive_int
from .base import MPCPlanner, Plan, check_positive_float


def mppi_weights(returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N,) returns -> (N,) weights summing to 1, proportional to exp(return / (λ σ)).

    λ = temperature; σ = the returns' std (a floor of 1e-6 keeps equal returns finite).
    """
    spread = returns.std(correction=0).clamp_min(1e-6) * temperature
    return torch.softmax((returns - returns.max()) / spread, dim=0)


def mppi_update(candidates: torch.Tensor, returns: torch.Tensor, temperature: float,
                n_actions: int | None = None) -> torch.Tensor:
    """The MPPI update: the return-weighted average of the candidates, the new nominal.

    Args:
        candidates: N action sequences, (N, H, A) float (Box) or (N, H) long (Discrete).
        returns: (N,) their scores (higher is better).
        temperature: λ in `mppi_weights`.
        n_actions: the number of Discrete actions (needed for Discrete candidates only).

    Returns:
        Box: (H, A), the weighted mean of the candidates. Discrete: (H, n_actions), at each
        step the total weight of the candidates taking each action (a distribution).
    """
    if returns.dim() != 1 or returns.shape[0] != candidates.shape[0]:
        raise ValueError(f"returns: expected shape ({candidates.shape[0]},), "
                         f"got {tuple(returns.shape)}")
    weights = mppi_weights(returns, temperature)
    if candidates.is_floating_point():
        return torch.einsum("n,nha->ha", weights, candidates)
    if n_actions is None:
        raise ValueError("n_actions: needed for Discrete candidates, got None")
    one_hot = torch.nn.functional.one_hot(candidates, n_actions).float()  # (N, H, n)
    return torch.einsum("n,nha->ha", weights, one_hot)


class MPPI(MPCPlanner):
    """MPC with MPPI (see the module docstring); Box or Discrete actions.

    Args:
        model: a `WorldModel`.
        budget: imagined transitions per decision: N = budget // (iterations x horizon)
            candidates per iteration.
        horizon: H, imagined steps per sequence.
        iterations: perturb-and-update rounds per decision.
        temperature: λ, in units of the candidates' return std (> 0); the default 0.1 lets
            the best few candidates dominate (0.5 swung Pendulum up far more slowly).
        noise: Box: the perturbations' std as a fraction of half the action range;
            Discrete: the share of uniformly random actions mixed in, in (0, 1].
        termination_fn, risk, max_disagreement, seed, compile: see `MPCPlanner`.

    After each decision `nominals` holds the nominal before the first iteration and after
    each one (iterations + 1 of them: sequences (H, A) for Box, action probabilities (H, n)
    for Discrete): what notebook 09 draws.
    """

    def __init__(self, model: WorldModel, budget: int = 10_000, horizon: int = 20,
                 iterations: int = 3, temperature: float = 0.1, noise: float = 0.5,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        self.iterations = check_positive_int("iterations", iterations)
        self.temperature = check_positive_float("temperature", temperature)
        self.noise = check_positive_float("noise", noise)
        super().__init__(model, budget, horizon, termination_fn, risk, max_disagreement, seed,
                         compile)
        self.require_sequences(2 * self.iterations, "2 x iterations",
                               "the nominal and one perturbation per iteration")
        if self.action_spec.discrete and self.noise > 1:
            raise ValueError(f"noise: expected a share of random actions in (0, 1] for "
                             f"Discrete actions, got {noise!r}")
        self.population = self.budget // (self.iterations * self.horizon)
        self.nominals: list[torch.Tensor] = []

    def initial_nominal(self) -> torch.Tensor:
        """The previous plan shifted one step or, at an episode start, a neutral nominal: the
        middle of the bounds (Box), uniform probabilities (Discrete, (H, n))."""
        spec, previous = self.action_spec, self.shifted()
        if spec.discrete:
            if previous is None:
                return torch.full((self.horizon, spec.n), 1 / spec.n, device=self.device)
            return torch.nn.functional.one_hot(previous, spec.n).float()
        if previous is not None:
            return previous
        low, high = spec.bounds(self.device)
        return ((low + high) / 2).expand(self.horizon, spec.n).clone()

    def perturb(self, nominal: torch.Tensor) -> torch.Tensor:
        """The nominal -> (N, H[, A]) candidates; candidate 0 is the nominal plan itself."""
        spec, n = self.action_spec, self.population
        if spec.discrete:
            probs = torch.lerp(nominal, torch.full_like(nominal, 1 / spec.n), self.noise)
            candidates = torch.multinomial(probs, n, replacement=True, generator=self.generator)
            candidates[:, 0] = nominal.argmax(-1)
            return candidates.T
        low, high = spec.bounds(self.device)
        noise = torch.randn((n, self.horizon, spec.n), generator=self.generator,
                            device=self.device) * (self.noise * (high - low) / 2)
        noise[0] = 0
        return (nominal + noise).clamp(low, high)

    def search(self, state: Any) -> Plan:
        """`iterations` rounds of perturb, imagine, weighted update; act on the nominal."""
        nominal = self.initial_nominal()
        self.nominals = [nominal]
        n_actions = self.action_spec.n if self.action_spec.discrete else None
        for _ in range(self.iterations):
            candidates = self.perturb(nominal)
            rollout, returns = self.evaluate(state, candidates)
            nominal = mppi_update(candidates, returns, self.temperature, n_actions)
            self.nominals.append(nominal)
        sequence = nominal.argmax(-1) if self.action_spec.discrete else nominal
        return self.decide(sequence, rollout, returns)
