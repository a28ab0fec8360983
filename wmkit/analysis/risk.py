"""What a risk-aware planner trades: imagined return against the members' disagreement.

`MPCPlanner(risk=λ)` scores a candidate as imagined return - λ x its disagreement summed over
the imagined steps it is alive. A candidate that dies early in imagination also stops
accumulating disagreement, so a large λ can prefer imagined failure: `risk_tradeoff` measures
what the best-scored candidates look like at a given λ, from the same candidates every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..planners.base import MPCPlanner, Plan


@dataclass
class RiskTradeoff:
    """One plan at risk weight `risk`, summarised over its best-scored 10% of candidates.

    action: what the planner chose; first_action_scores: (n_actions,) score per first action
    (None for "best" or Box actions); top: (K,) indices of the best-scored candidates;
    top_return: their mean imagined return; top_disagreement: their mean summed disagreement
    (what the penalty sees); top_step_disagreement: the same per alive step; plan: the Plan.
    """

    risk: float
    action: Any
    first_action_scores: torch.Tensor | None
    top: torch.Tensor
    top_return: float
    top_disagreement: float
    top_step_disagreement: float
    plan: Plan


@torch.no_grad()
def risk_tradeoff(planner: MPCPlanner, belief: Any, risk: float, seed: int = 0) -> RiskTradeoff:
    """Plan once from `belief` with risk weight `risk`, reseeded with `seed` (so every risk
    scores the same candidates). Leaves `planner.risk` at `risk`."""
    if not isinstance(planner, MPCPlanner):
        raise ValueError(f"planner: expected an MPC planner (e.g. RandomShooting), "
                         f"got {type(planner).__name__}")
    if isinstance(risk, bool) or not isinstance(risk, (int, float)) or not risk >= 0:
        raise ValueError(f"risk: expected a float >= 0, got {risk!r}")
    planner.risk = float(risk)
    planner.reseed(seed)
    plan = planner.plan(belief)
    rollout = plan.rollout
    if rollout.disagreement is None:
        raise ValueError("planner: its model reports no disagreement; use an ensemble")
    alive = rollout.alive.float()
    summed = (rollout.disagreement * alive).sum(1)
    top = plan.returns.topk(max(1, len(summed) // 10)).indices
    return RiskTradeoff(
        risk=float(risk), action=plan.action, first_action_scores=plan.first_action_scores,
        top=top.cpu(), top_return=float(rollout.returns[top].mean()),
        top_disagreement=float(summed[top].mean()),
        top_step_disagreement=float((summed[top] / alive[top].sum(1)).mean()), plan=plan)
