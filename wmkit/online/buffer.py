"""A bounded replay buffer of raw transitions, each with the window of pairs that led to it."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np


class Transition(NamedTuple):
    """One real step, stored raw (the model normalises with its *current* statistics).

    window_obs: (W, obs_dim) observations of the window, the current one last, zeros as pad.
    window_actions: (W,) actions of the window, -1 marks padding.
    next_obs: (obs_dim,) the real next observation.
    """

    window_obs: np.ndarray
    window_actions: np.ndarray
    next_obs: np.ndarray
    reward: float
    done: bool


class Batch(NamedTuple):
    """Transitions stacked along a batch dimension B (shapes as in `Transition`, plus B)."""

    window_obs: np.ndarray      # (B, W, obs_dim)
    window_actions: np.ndarray  # (B, W)
    next_obs: np.ndarray        # (B, obs_dim)
    reward: np.ndarray          # (B,)
    done: np.ndarray            # (B,)


def stack(transitions: list[Transition]) -> Batch:
    """Stack a list of transitions into one `Batch`."""
    return Batch(
        np.stack([t.window_obs for t in transitions]),
        np.stack([t.window_actions for t in transitions]),
        np.stack([t.next_obs for t in transitions]),
        np.array([t.reward for t in transitions], dtype=np.float32),
        np.array([t.done for t in transitions], dtype=np.float32),
    )


class TransitionBuffer:
    """A ring buffer (a deque with `maxlen`): once full, each new transition evicts the oldest.

    Sampling is uniform with replacement from a seeded generator.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self._items: deque[Transition] = deque(maxlen=capacity)
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, transition: Transition) -> None:
        self._items.append(transition)

    def sample(self, n: int) -> list[Transition]:
        """`n` transitions drawn uniformly with replacement (fewer if the buffer is empty)."""
        if not self._items or n <= 0:
            return []
        indices = self._rng.integers(0, len(self._items), size=n)
        return [self._items[i] for i in indices]
