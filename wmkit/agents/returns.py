"""What an imagined trajectory is worth: λ-returns, calibrated continuation, return scale.

These three pieces are the arithmetic of learning in a dream (Dreamer, Hafner et al.); the
actor-critic in `actor_critic.py` composes them, and exercise 08 asks for `lambda_returns`
with the same signature.

Indexing: an imagined trajectory visits states s_0 .. s_H. Step t is the transition
s_t -> s_{t+1}: its reward r_t and its continuation c_t (the probability that the episode
goes on after it) are predicted at s_{t+1}, as `Rollout.rewards[:, t]` and
`Rollout.done_logits[:, t]` are.
"""

from __future__ import annotations

import math

import torch


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   discount: float, lam: float) -> torch.Tensor:
    """The λ-return of every imagined state but the last.

    R_t = r_t + discount * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1}),   R_H = v_H.

    lam = 0 is the one-step TD target r_t + discount * c_t * v_{t+1}; lam = 1 is the
    discounted sum of every imagined reward plus the value at the horizon. In between, a
    weighted mix of all n-step returns: λ trades the critic's bias against the dream's variance.

    Args:
        rewards: (N, H) r_t, the reward of step t (s_t -> s_{t+1}).
        values: (N, H+1) v_t, the critic's value of s_t (v_H bootstraps past the horizon).
        continues: (N, H) c_t in [0, 1], the probability that the episode goes on after step t
            (1 - the calibrated termination probability).
        discount: γ in (0, 1].
        lam: λ in [0, 1].

    Returns:
        (N, H) R_0 .. R_{H-1}. Differentiable in every tensor argument.
    """
    if rewards.dim() != 2 or continues.shape != rewards.shape:
        raise ValueError(f"rewards, continues: expected the same shape (N, H), got "
                         f"{tuple(rewards.shape)} and {tuple(continues.shape)}")
    n, horizon = rewards.shape
    if values.shape != (n, horizon + 1):
        raise ValueError(f"values: expected shape ({n}, {horizon + 1}) (one more step than the "
                         f"rewards), got {tuple(values.shape)}")
    returns = []
    following = values[:, -1]  # R_H = v_H
    # Backwards in time: each return needs the next one. H is small (15); N is batched.
    for t in reversed(range(horizon)):
        bootstrap = (1 - lam) * values[:, t + 1] + lam * following
        following = rewards[:, t] + discount * continues[:, t] * bootstrap
        returns.append(following)
    return torch.stack(returns[::-1], dim=1)


def continue_probabilities(done_logits: torch.Tensor, done_weight: float) -> torch.Tensor:
    """(...) termination logits -> (...) calibrated probabilities that the episode goes on.

    The termination head is fitted with a weighted BCE (positive weight w = `done_weight`,
    see `wmkit.done_weight`), which lifts every logit by log w; sigmoid(logit - log w) is the
    calibrated probability of ending, so continuing is 1 minus that.
    """
    if not done_weight > 0:
        raise ValueError(f"done_weight: expected a float > 0, got {done_weight!r}")
    return torch.sigmoid(math.log(done_weight) - done_logits)


def reach_weights(continues: torch.Tensor) -> torch.Tensor:
    """(N, H) continuations -> (N, H) the probability that s_t is reached alive:
    prod_{k<t} c_k (1 at t = 0). Losses at s_t count with this weight."""
    ones = torch.ones_like(continues[:, :1])
    return torch.cumprod(torch.cat([ones, continues[:, :-1]], dim=1), dim=1)


class ReturnScale:
    """DreamerV3's return normalisation: divide advantages by max(1, S), where S is an
    exponential moving average of the spread of returns, P95 - P05 of each batch.

    Dividing by the spread makes one entropy scale work whatever the rewards' size; the floor
    of 1 keeps small, noisy returns (sparse rewards) from being blown up into big advantages.

    Args:
        decay: the EMA's decay per update (DreamerV3: 0.99); 0 keeps only the latest batch.
        low, high: the percentiles (DreamerV3: 5 and 95).
    """

    def __init__(self, decay: float = 0.99, low: float = 5.0, high: float = 95.0) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) \
                or not 0 <= decay < 1:
            raise ValueError(f"return_decay: expected a float in [0, 1), got {decay!r}")
        if not 0 <= low < high <= 100:
            raise ValueError(f"low, high: expected 0 <= low < high <= 100, got {low}, {high}")
        self.decay, self.low, self.high = float(decay), low / 100, high / 100
        self.spread: torch.Tensor | None = None  # S, a 0-dim tensor; None before any update

    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold a batch of returns (any shape) into S; returns the new scale max(1, S)."""
        flat = returns.detach().reshape(-1).float()
        spread = torch.quantile(flat, self.high) - torch.quantile(flat, self.low)
        # The first batch sets S (an EMA started at 0 would understate it for ~100 updates).
        self.spread = spread if self.spread is None else (
            self.decay * self.spread + (1 - self.decay) * spread)
        return self.scale

    @property
    def scale(self) -> torch.Tensor:
        """max(1, S), a 0-dim tensor (1 before any update)."""
        if self.spread is None:
            return torch.ones(())
        return self.spread.clamp_min(1.0)
