"""What a planner is: the written-down interface, and the MPC base every search planner shares.

`Planner` is what `learn`, `evaluate`, `collect` and the notebooks rely on: an agent (called
with an observation, told when an episode starts, reseeded for repeatable evaluations) that
owns a world model. `learn` trains `planner.model` and then calls `planner.after_fit(buffer)`,
which a learned policy uses to train itself (an MPC planner has nothing to do there).

`MPCPlanner` is model-predictive control written once: at every real step it folds the
observation into the model's belief (`filter`), searches for a good action sequence from it
in imagination, does the first action, and keeps the rest of the plan to warm-start the next
search. A search planner subclasses it and writes only `search`: how it proposes candidates and
how it refines them, scoring every batch with `self.evaluate`, which imagines them in one
batched `imagine` and counts the imagined transitions against the planner's `budget`.

    class CEM(MPCPlanner):
        def search(self, state):
            mean, std = self.warm_start()           # the last plan, shifted one step
            for _ in range(self.iterations):
                actions = sample(mean, std)         # (N, H[, A]) proposals
                returns = self.evaluate(state, actions).returns
                mean, std = refit(actions, returns) # to the elites
            return self.decide(mean, ...)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..buffer import ReplayBuffer
from ..models.base import Rollout, TerminationFn, WorldModel, alive_before
from ..utils import check_positive_int


@runtime_checkable
class Planner(Protocol):
    """An agent that acts with a world model (see the module docstring)."""

    model: WorldModel
    explore: bool
    """True while `learn` collects training episodes (act to learn: sample, seek what the model
    does not know), False otherwise: `evaluate` always runs with it False."""

    def __call__(self, obs: Any) -> Any:
        """One real step: the action to take at observation `obs`."""

    def reset(self) -> None:
        """Forget the episode (a new one starts)."""

    def reseed(self, seed: int) -> None:
        """Restart the planner's sampling from `seed`."""

    def after_fit(self, buffer: ReplayBuffer, seed: int = 0) -> None:
        """`learn` has just refitted `model` on `buffer` (a learned policy trains here)."""


@dataclass
class Plan:
    """A planner's last decision, kept for notebooks to draw.

    action: what was done (as the env takes it); sequence: the plan it came from, (H,) long or
    (H, A) float; rollout and returns: the last batch the search imagined and its scores (N,);
    spent: imagined transitions this decision cost (at most the planner's `budget`).
    Random shooting also fills first_action_scores (n_actions,) (Discrete, "mean") and
    best_index (a 0-dim device tensor: `int()` it to read it; reading makes the host wait).
    """

    action: Any
    sequence: torch.Tensor
    rollout: Rollout
    returns: torch.Tensor
    spent: int
    first_action_scores: torch.Tensor | None = None
    best_index: torch.Tensor | None = None

    @property
    def candidate_actions(self) -> torch.Tensor:
        """(N, H[, A]) the last batch of candidate sequences."""
        return self.rollout.actions

    @property
    def candidate_returns(self) -> torch.Tensor:
        """(N,) their scores (imagined return less any risk penalty)."""
        return self.returns


def check_positive_float(name: str, value: Any) -> float:
    """`value` as a finite float > 0, or a ValueError naming `name` (NaN is refused too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite float > 0, got {value!r}")
    return float(value)


class MPCPlanner:
    """Model-predictive control on a world model: filter, search, act, repeat.

    Args:
        model: a `WorldModel` (filter, imagine, action_spec, device).
        budget: imagined transitions per decision (N sequences x H steps, over all of the
            search's iterations); the same knob on every planner, so they compare at equal
            compute. `self.spent` says what the last decision used.
        horizon: H, imagined steps per candidate sequence.
        termination_fn: a known termination rule replacing the model's termination head.
        risk: penalty per unit of summed member disagreement (needs an ensemble):
            score = return - risk * disagreement.
        max_disagreement: an imagined step whose members disagree more counts as an end.
        seed: seeds the search's sampling.
        compile: hand the model's `imagine` to `torch.compile` (`compile_imagine`; opt-in: it
            pays only for many decisions of the same sizes, see docs/RESULTS.md).
    """

    def __init__(self, model: WorldModel, budget: int = 10_000, horizon: int = 20,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        if not isinstance(model, WorldModel):
            raise ValueError(f"model: expected a world model (filter, imagine, action_spec, "
                             f"device), got {type(model).__name__}")
        self.horizon = check_positive_int("horizon", horizon)
        self.budget = check_positive_int("budget", budget)
        if self.budget < self.horizon:
            raise ValueError(f"budget: expected at least horizon={self.horizon} imagined "
                             f"transitions (one sequence), got {budget}")
        if isinstance(risk, bool) or not isinstance(risk, (int, float)) or not risk >= 0:
            raise ValueError(f"risk: expected a float >= 0, got {risk!r}")
        if max_disagreement is not None:
            max_disagreement = check_positive_float("max_disagreement", max_disagreement)
        self.model = model
        self.termination_fn = termination_fn
        self.risk, self.max_disagreement = float(risk), max_disagreement
        self.action_spec = model.action_spec
        self.device = torch.device(model.device)
        self.generator = torch.Generator(device=self.device)
        self.compiled = bool(compile)
        self._imagine = compile_imagine(model) if self.compiled else model.imagine
        # CUDA graphs reuse their output memory on the next call: a planner keeps a copy of
        # each rollout there. Elsewhere the outputs are the caller's and a copy only costs.
        self._copies_rollouts = self.compiled and compile_mode(self.device) == CUDA_GRAPHS
        self.spent = 0
        self.last_plan: Plan | None = None
        self.explore = False  # `learn` sets it for training episodes; search may read it
        self.reseed(seed)
        self.reset()

    def require_sequences(self, count: int, counted: str, why: str) -> None:
        """A ValueError unless the budget pays for `count` sequences of the horizon.

        A planner that imagines in rounds calls this after `__init__`: `counted` names `count`
        in the message ("iterations"), `why` says what the sequences are for.
        """
        if self.budget < count * self.horizon:
            raise ValueError(f"budget: expected at least {counted} x horizon = "
                             f"{count * self.horizon} imagined transitions ({why}), "
                             f"got {self.budget}")

    # -- the Planner interface -----------------------------------------------------------------

    def reseed(self, seed: int) -> None:
        """Restart the search's sampling from `seed` (`learn` and `evaluate` call this)."""
        self.generator.manual_seed(int(seed))

    def reset(self) -> None:
        """Forget the episode: the belief, the last action and the plan to warm-start from."""
        self.state: Any = None
        self.previous_action: Any = None
        self.previous_sequence: torch.Tensor | None = None

    def after_fit(self, buffer: ReplayBuffer, seed: int = 0) -> None:
        """Nothing to learn: an MPC planner reads the refitted model at its next decision."""

    def __call__(self, obs: Any) -> Any:
        """One real step: filter the observation into the belief, plan, return an action."""
        self.state = self.model.filter(self.state, self.previous_action, obs)
        self.previous_action = self.plan(self.state).action
        return self.previous_action

    def plan(self, state: Any) -> Plan:
        """Search from the belief `state` and choose the action to take now."""
        self.spent = 0
        with torch.no_grad():
            plan = self.search(state)
        self.previous_sequence = plan.sequence
        self.last_plan = plan
        return plan

    # -- what a search planner writes ------------------------------------------------------------

    def search(self, state: Any) -> Plan:
        """Propose and score action sequences with `evaluate` within the budget; return a Plan
        (usually via `decide`). Runs without gradients (enable them inside if needed)."""
        raise NotImplementedError

    # -- what a search planner uses --------------------------------------------------------------

    def evaluate(self, state: Any, actions: torch.Tensor) -> tuple[Rollout, torch.Tensor]:
        """Imagine N sequences (N, H[, A]) from `state` in one batched call and score them.

        Returns the rollout and the scores (N,) (`score`). Counts N x H towards `spent`.
        """
        rollout = self._imagine(state, actions, self.termination_fn, check=False)
        if self._copies_rollouts:
            rollout = copy_rollout(rollout, actions)
        self.spent += actions.shape[0] * actions.shape[1]
        return rollout, self.score(rollout)

    def score(self, rollout: Rollout) -> torch.Tensor:
        """(N,) what each imagined sequence is worth: its return, less any risk penalty."""
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

    def shifted(self) -> torch.Tensor | None:
        """The previous decision's sequence moved one step on, (H[, A]) (the step just done
        dropped, the last step repeated), or None at an episode start: a warm start."""
        previous = self.previous_sequence
        if previous is None or previous.shape[0] != self.horizon:
            return None
        return torch.cat([previous[1:], previous[-1:]])

    def decide(self, sequence: torch.Tensor, rollout: Rollout, returns: torch.Tensor,
               first: torch.Tensor | None = None, **extra: Any) -> Plan:
        """The Plan that does `first` (default: the first action of `sequence` (H[, A])).

        Reads the action's value: the one moment of a decision the host waits for a GPU.
        """
        first = sequence[0] if first is None else first
        if self.action_spec.discrete:
            action: Any = int(first)
        else:
            low, high = self.action_spec.bounds(first.device)
            action = first.clamp(low, high).cpu().numpy().astype(np.float32)
        return Plan(action, sequence, rollout, returns, self.spent, **extra)


CUDA_GRAPHS = "reduce-overhead"
"""torch.compile's mode that records CUDA graphs: the H steps' many small kernels become one
launch, and each call's outputs live in memory the next call reuses."""


def compile_mode(device: torch.device | str) -> str:
    """The torch.compile mode a planner uses on `device`: CUDA graphs on CUDA, else "default"."""
    return CUDA_GRAPHS if torch.device(device).type == "cuda" else "default"


def compile_imagine(model: WorldModel, mode: str | None = None, backend: str = "inductor"
                    ) -> Callable[..., Rollout]:
    """`model.imagine`, compiled by `torch.compile` for a fixed (N, H) (compiles on first call).

    mode: None picks `compile_mode(model.device)`. A new (N, H) compiles again (15-20 s on a
    2-core CPU), so this pays only for a planner that makes many decisions with the same sizes.
    backend: torch.compile's backend ("eager" only traces: the tests use it, it is quick).
    """
    return torch.compile(model.imagine, mode=mode or compile_mode(model.device),
                         backend=backend, dynamic=False)


def copy_rollout(rollout: Rollout, actions: torch.Tensor) -> Rollout:
    """A rollout whose tensors the caller owns (`actions`: the planner's own input).

    CUDA graphs (`compile=True` on CUDA: `compile_mode`) reuse their output memory on the
    next call.
    """
    fields = ("observations", "rewards", "dones", "disagreement", "features", "done_logits")
    owned = {name: None if getattr(rollout, name) is None else getattr(rollout, name).clone()
             for name in fields}
    return replace(rollout, actions=actions, **owned)
