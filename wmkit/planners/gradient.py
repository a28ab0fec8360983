"""Gradient-based planning: improve action sequences by backpropagating the imagined return.

A world model made of differentiable functions says not only how good a plan is but which way
to change it: d(return)/d(actions) flows back through every imagined step. The planner keeps
C candidate sequences (the previous plan shifted one step, and C - 1 uniformly random ones,
because the return is far from concave and gradients only find the nearest hill), and for
`steps` steps:

1. imagines all C in one batched call (gradients enabled) and scores them;
2. takes one Adam step on each sequence up its own return's gradient;
3. clips the actions back into the bounds (projected gradient ascent).

It acts on the best sequence any step scored. The number of steps is fixed and the budget buys
restarts, C = budget // (steps x H): a step is a sequential forward and backward pass, so a
bigger budget makes each step wider, not the decision longer. Adam works in units of half the
action range (actions are optimised as u in [-1, 1], a = low + (u + 1) / 2 x (high - low)), so
one learning rate suits any bounds. Box actions only: a Discrete action has no gradient.

The budget counts imagined transitions of the forward passes (steps x C x H); each backward
pass costs roughly two more forward passes of compute, which the milliseconds per decision
show. A learned termination head stops rewards with a hard threshold, which passes no
gradient: the gradient sees the rewards, not when an episode ends.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..models.base import Rollout, TerminationFn, WorldModel, frozen
from ..utils import check_positive_int
from .base import MPCPlanner, Plan, check_positive_float


class GradientPlanner(MPCPlanner):
    """MPC by gradient ascent on the imagined return (see the module docstring); Box only.

    Args:
        model: a `WorldModel` with Box actions whose `imagine` is differentiable.
        budget: imagined transitions per decision: it buys C = budget // (steps x horizon)
            sequences optimised side by side (restarts).
        horizon: H, imagined steps per sequence.
        steps: imagined forward passes per decision (an Adam step follows each but the last).
        lr: Adam's learning rate, in units of half the action range per step.
        termination_fn, risk, max_disagreement, seed, compile: see `MPCPlanner`.

    After each decision `step_returns` holds the scores (C,) at each step: what notebook 09
    draws.
    """

    def __init__(self, model: WorldModel, budget: int = 10_000, horizon: int = 20,
                 steps: int = 20, lr: float = 0.1,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        self.steps = check_positive_int("steps", steps)
        self.lr = check_positive_float("lr", lr)
        super().__init__(model, budget, horizon, termination_fn, risk, max_disagreement, seed,
                         compile)
        self.require_sequences(self.steps, "steps", "one sequence")
        if self.action_spec.discrete:
            raise ValueError(f"model: GradientPlanner needs Box (continuous) actions, which "
                             f"have a gradient; this model's are Discrete({self.action_spec.n})"
                             f": use CEM, MPPI or MCTS")
        self.candidates = self.budget // (self.steps * self.horizon)
        self.step_returns: list[torch.Tensor] = []

    def search(self, state: Any) -> Plan:
        """`steps` rounds of imagine, backpropagate, Adam step, clip; act on the best seen."""
        spec, shape = self.action_spec, (self.candidates, self.horizon, self.action_spec.n)
        low, high = spec.bounds(self.device)
        unit = torch.rand(shape, generator=self.generator, device=self.device) * 2 - 1
        previous = self.shifted()
        if previous is not None:
            unit[0] = (previous - low) / (high - low) * 2 - 1
        unit.requires_grad_(True)
        optimiser = torch.optim.Adam([unit], lr=self.lr)
        best_unit = unit.detach().clone()
        best_returns = torch.full((self.candidates,), float("-inf"), device=self.device)
        self.step_returns = []
        with torch.enable_grad(), frozen(self.model):
            for step in range(self.steps):
                rollout, returns = self.evaluate(state, low + (unit + 1) / 2 * (high - low))
                # Each candidate keeps the best version of itself so far (no host reads).
                better = returns.detach() > best_returns
                best_unit = torch.where(better[:, None, None], unit.detach(), best_unit)
                best_returns = torch.where(better, returns.detach(), best_returns)
                self.step_returns.append(returns.detach())
                if step == self.steps - 1:
                    break
                # The gradient of the summed returns gives each sequence its own return's
                # gradient (they do not interact); only the actions' gradients are computed.
                (unit.grad,) = torch.autograd.grad(-returns.sum(), unit)
                optimiser.step()
                with torch.no_grad():
                    unit.clamp_(-1, 1)
        best = best_returns.argmax()
        sequence = low + (best_unit.index_select(0, best.reshape(1))[0] + 1) / 2 * (high - low)
        return self.decide(sequence, detached(rollout), self.step_returns[-1])


def detached(rollout: Rollout) -> Rollout:
    """The rollout without its autograd graph (what a Plan keeps)."""
    fields = ("observations", "actions", "rewards", "dones", "disagreement", "features",
              "done_logits")
    return replace(rollout, **{name: None if getattr(rollout, name) is None
                               else getattr(rollout, name).detach() for name in fields})
