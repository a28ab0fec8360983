"""Random-shooting MPC: imagine many random action sequences, act, then plan again.

At every real step the planner (1) folds the observation into the model's belief with
`filter`, (2) imagines N random action sequences of H steps in one batched `imagine`,
(3) turns the N imagined returns into one action, and (4) throws the rest of the plan away.

How N returns become one action matters more than it seems. With the *true* CartPole
dynamics, taking the first action of the single best sequence ("best") reaches only ~200-360
at horizons 10-30, because with random continuations the best sequence is mostly luck.
Scoring each first action by the *mean* return of the sequences that start with it ("mean")
averages that luck away and reaches 500 even at 100 candidates x horizon 20. For Box actions
"mean" is the MPPI-style return-weighted average of first actions.

On a GPU a decision is H batched model steps plus a few reductions, all queued on the device:
the host waits for the device once, when it reads the chosen action at the very end (reading
a tensor's value, `int(t)`, `t.item()`, `t.cpu()`, or indexing with a tensor scalar, makes the
host wait; tests/test_device.py checks that nothing else does).

`compile=True` hands `imagine` to `torch.compile` (see `planners.base.compile_imagine`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..models.base import TerminationFn, WorldModel
from ..utils import check_positive_int
from .base import MPCPlanner, Plan, check_positive_float

Select = Literal["mean", "best"]


class RandomShooting(MPCPlanner):
    """MPC with uniformly random candidate sequences, scored by the world model.

    Args:
        model: a `WorldModel`.
        horizon: H, steps imagined per candidate.
        candidates: N, sequences scored per decision (all in one batched call per step).
        budget: imagined transitions per decision instead of `candidates` (N = budget // H),
            the knob every planner shares; give one of the two.
        select: "mean" (default) or "best"; see the module docstring.
        temperature: for Box actions with "mean": softmax temperature in units of the
            candidates' return std (smaller = closer to "best").
        termination_fn, risk, max_disagreement, seed, compile: see `MPCPlanner`.
    """

    def __init__(self, model: WorldModel, horizon: int = 20, candidates: int | None = None,
                 budget: int | None = None, select: Select = "mean", temperature: float = 0.5,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        horizon = check_positive_int("horizon", horizon)
        if candidates is not None and budget is not None:
            raise ValueError(f"candidates, budget: give one of them (budget = candidates x "
                             f"horizon), got candidates={candidates!r} and budget={budget!r}")
        if budget is None:
            budget = check_positive_int("candidates", 500 if candidates is None else candidates
                                        ) * horizon
        if select not in ("mean", "best"):
            raise ValueError(f"select: expected 'mean' or 'best', got {select!r}")
        self.select = select
        self.temperature = check_positive_float("temperature", temperature)
        super().__init__(model, budget, horizon, termination_fn, risk, max_disagreement, seed,
                         compile)
        self.candidates = self.budget // self.horizon

    def search(self, state: Any) -> Plan:
        """Score N random sequences from `state` and choose the action to take now."""
        actions = self.action_spec.sample((self.candidates, self.horizon), self.generator,
                                          self.device)
        rollout, returns = self.evaluate(state, actions)
        # Everything up to the action stays a tensor on the device: no value is read, so the
        # host never waits (`actions[best_index]` with a tensor index would read it).
        best_index = returns.argmax()
        best = actions.index_select(0, best_index.reshape(1))[0]  # (H[, A])
        first_actions = actions[:, 0]  # (N,) or (N, A)
        scores = None
        if self.select == "best":
            first = best[0]
        elif self.action_spec.discrete:
            scores = self.first_action_scores(first_actions, returns)
            first = scores.argmax()
        else:
            spread = returns.std().clamp_min(1e-6) * self.temperature
            weights = torch.softmax((returns - returns.max()) / spread, dim=0)
            first = (weights[:, None] * first_actions).sum(0)
        return self.decide(best, rollout, returns, first, first_action_scores=scores,
                           best_index=best_index)

    def first_action_scores(self, first_actions: torch.Tensor, returns: torch.Tensor
                            ) -> torch.Tensor:
        """(N,) first actions, (N,) returns -> (n_actions,) mean return per first action.

        A first action no candidate tried scores -inf.
        """
        n = self.action_spec.n
        totals = torch.zeros(n, device=returns.device).index_add_(0, first_actions, returns)
        # Counted by index_add_, not bincount: on CUDA bincount reads max(first_actions) first.
        counts = torch.zeros(n, device=returns.device).index_add_(
            0, first_actions, torch.ones_like(returns))
        return torch.where(counts > 0, totals / counts.clamp_min(1), float("-inf"))
