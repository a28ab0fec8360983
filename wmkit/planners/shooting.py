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

`compile=True` hands `imagine` to `torch.compile` (see `compile_imagine`). It is off by
default: on a 2-core CPU (one thread, shared, noisy) it saved 0-30% per call at 500 x 20 and
10^4 x 30 in two runs, after 10-20 s of compiling per (N, H): at 20 ms a decision, a 1,000-step
run saves less than the compile costs (inductor also needs a C compiler there). On CUDA it
uses CUDA graphs ("reduce-overhead": the H steps' kernels launched as one graph); that path
is written but unmeasured until a GPU session measures it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    best_index: the single best sequence, a 0-dim long tensor on the model's device (`int()`
    it to read it: the planner does not, since reading makes the host wait for the device);
    action: what was done; rollout: the imagination.
    """

    candidate_actions: torch.Tensor
    candidate_returns: torch.Tensor
    first_action_scores: torch.Tensor | None
    best_index: torch.Tensor | int
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
        compile: compile the model's `imagine` with `compile_imagine` (opt-in, see the module
            docstring). The planner always runs on the model's device (`model.device`).
    """

    def __init__(self, model: Any, horizon: int = 20, candidates: int = 500,
                 select: Select = "mean", temperature: float = 0.5,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
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
        self.compiled = bool(compile)
        self._imagine = compile_imagine(model) if self.compiled else model.imagine
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
        rollout = self._imagine(state, actions, self.termination_fn)
        if self.compiled:  # CUDA graphs reuse their output memory on the next call: keep a copy
            rollout = _copy_rollout(rollout, actions)
        returns = self.score(rollout)
        # Everything up to the action stays a tensor on the device: no value is read, so the
        # host never waits (`actions[best_index]` with a tensor index would read it).
        best_index = returns.argmax()
        first_actions = actions[:, 0]  # (N,) or (N, A)
        scores = None
        if self.select == "best":
            first = first_actions.index_select(0, best_index.reshape(1))[0]
        elif self.action_spec.discrete:
            scores = self.first_action_scores(first_actions, returns)
            first = scores.argmax()
        else:
            spread = returns.std().clamp_min(1e-6) * self.temperature
            weights = torch.softmax((returns - returns.max()) / spread, dim=0)
            first = (weights[:, None] * first_actions).sum(0)
        # The one wait of a decision: the env needs the action on the host.
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
        # Counted by index_add_, not bincount: on CUDA bincount reads max(first_actions) first.
        counts = torch.zeros(n, device=returns.device).index_add_(
            0, first_actions, torch.ones_like(returns))
        return torch.where(counts > 0, totals / counts.clamp_min(1), float("-inf"))


def compile_imagine(model: Any, mode: str | None = None, backend: str = "inductor"
                    ) -> Callable[..., Rollout]:
    """`model.imagine`, compiled by `torch.compile` for a fixed (N, H) (compiles on first call).

    mode: None picks "reduce-overhead" on CUDA (CUDA graphs: the H steps' many small kernels
    become one launch) and "default" elsewhere. A new (N, H) compiles again (15-20 s on a 2-core
    CPU), so this pays only for a planner that makes many decisions with the same sizes.
    backend: torch.compile's backend ("eager" only traces: the tests use it, it is quick).
    """
    if mode is None:
        mode = "reduce-overhead" if torch.device(model.device).type == "cuda" else "default"
    return torch.compile(model.imagine, mode=mode, backend=backend, dynamic=False)


def _copy_rollout(rollout: Rollout, actions: torch.Tensor) -> Rollout:
    """A rollout whose tensors the caller owns (`actions`: the planner's own input)."""
    fields = ("observations", "rewards", "dones", "disagreement")
    owned = {name: None if getattr(rollout, name) is None else getattr(rollout, name).clone()
             for name in fields}
    return replace(rollout, actions=actions, **owned)
