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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..models.base import Rollout, TerminationFn, alive_before
from ..utils import check_positive_int

Select = Literal["mean", "best"]


@dataclass
class Plan:
    """The planner's last decision, kept for notebooks to draw.

    candidate_actions: (N, H) or (N, H, A); candidate_returns: (N,) scores (imagined return
    less any risk penalty);
    first_action_scores: (n_actions,) mean return per first action (Discrete only, else None);
    best_index: the single best sequence; action: what was done; rollout: the imagination.
    """

    candidate_actions: torch.Tensor
    candidate_returns: torch.Tensor
    first_action_scores: torch.Tensor | None
    best_index: int
    action: Any
    rollout: Rollout


class RandomShooting:
    """MPC with uniformly random candidate sequences, scored by the world model.

    Args:
        model: anything with `filter(state, action, obs)` and `imagine(state, actions)`.
        horizon: H, steps imagined per candidate.
        candidates: N, sequences scored per decision (all in one batched call per step).
        select: "mean" (default) or "best"; see the module docstring.
        temperature: for Box actions with "mean": softmax temperature in units of the
            candidates' return std (smaller = closer to "best").
        termination_fn: a known termination rule replacing the model's termination head.
        risk: penalty per unit of summed member disagreement (needs a model whose rollouts
            report `disagreement`, e.g. an ensemble): score = return - risk * disagreement.
        max_disagreement: act only where members agree: an imagined step whose disagreement
            exceeds this counts as a termination (pessimism about the unknown).
        seed: seeds the candidate sampling.
    """

    def __init__(self, model: Any, horizon: int = 20, candidates: int = 500,
                 select: Select = "mean", temperature: float = 0.5,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0) -> None:
        self.model = model
        self.horizon = check_positive_int("horizon", horizon)
        self.candidates = check_positive_int("candidates", candidates)
        if select not in ("mean", "best"):
            raise ValueError(f"select: expected 'mean' or 'best', got {select!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected a positive float, got {temperature!r}")
        if not risk >= 0:
            raise ValueError(f"risk: expected a float >= 0, got {risk!r}")
        if max_disagreement is not None and not max_disagreement > 0:
            raise ValueError(
                f"max_disagreement: expected a positive float, got {max_disagreement!r}")
        self.select, self.temperature, self.termination_fn = select, temperature, termination_fn
        self.risk, self.max_disagreement = risk, max_disagreement
        self.action_spec = model.action_spec
        self.device = torch.device(model.device)
        self.generator = torch.Generator(device=self.device)
        self.reseed(seed)
        self.last_plan: Plan | None = None
        self.reset()

    def reseed(self, seed: int) -> None:
        """Restart candidate sampling from `seed` (`learn` and `evaluate` call this)."""
        self.generator.manual_seed(int(seed))

    def reset(self) -> None:
        """Forget the episode: call at each episode start (collect/learn/evaluate do)."""
        self.state: Any = None
        self.previous_action: Any = None

    def __call__(self, obs: Any) -> Any:
        """One real step: filter the observation into the belief, plan, return an action."""
        self.state = self.model.filter(self.state, self.previous_action, obs)
        self.previous_action = self.plan(self.state).action
        return self.previous_action

    @torch.inference_mode()
    def plan(self, state: Any) -> Plan:
        """Score N random sequences from `state` and choose the action to take now."""
        actions = self.action_spec.sample((self.candidates, self.horizon), self.generator,
                                          self.device)
        rollout = self.model.imagine(state, actions, self.termination_fn)
        returns = self.score(rollout)
        best_index = int(returns.argmax())
        scores = None
        if self.select == "best":
            first = actions[best_index, 0]
        elif self.action_spec.discrete:
            scores = self.first_action_scores(actions[:, 0], returns)
            first = scores.argmax()
        else:
            spread = returns.std().clamp_min(1e-6) * self.temperature
            weights = torch.softmax((returns - returns.max()) / spread, dim=0)
            first = (weights[:, None] * actions[:, 0]).sum(0)
        action = int(first) if self.action_spec.discrete else first.cpu().numpy().astype(np.float32)
        self.last_plan = Plan(actions, returns, scores, best_index, action, rollout)
        return self.last_plan

    def score(self, rollout: Rollout) -> torch.Tensor:
        """(N,) what each candidate is worth: its imagined return, less any risk penalty."""
        if not (self.risk or self.max_disagreement):
            return rollout.returns
        if rollout.disagreement is None:
            raise ValueError("risk/max_disagreement: the model's rollouts report no disagreement;"
                             " use a model that does, e.g. EnsembleWorldModel")
        alive = alive_before(rollout.dones)
        rewards = rollout.rewards
        if self.max_disagreement is not None:
            alive = alive & alive_before(rollout.disagreement > self.max_disagreement)
            rewards = rewards * alive
        return rewards.sum(1) - self.risk * (rollout.disagreement * alive).sum(1)

    def first_action_scores(self, first_actions: torch.Tensor, returns: torch.Tensor
                            ) -> torch.Tensor:
        """(N,) first actions, (N,) returns -> (n_actions,) mean return per first action.

        A first action no candidate tried scores -inf.
        """
        n = self.action_spec.n
        totals = torch.zeros(n, device=returns.device).index_add_(0, first_actions, returns)
        counts = torch.bincount(first_actions, minlength=n)
        return torch.where(counts > 0, totals / counts.clamp_min(1), float("-inf"))
