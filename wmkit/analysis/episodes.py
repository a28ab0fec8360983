"""Real episodes in a replay buffer, as ranges of its rows.

The buffer alone knows where episodes start (`ReplayBuffer.episode_bounds`, from `is_first`);
these helpers only name rows, so every measurement keeps working on `(buffer, rows)`:

    rows = longest_episode(buffer)                 # range(first, stop) of buffer rows
    states = episode_observations(buffer, rows)    # (T + 1, D): every state, the last included
    real, imagined = open_loop(model, buffer, rows[0], horizon=len(rows))
"""

from __future__ import annotations

import numpy as np
import torch

from ..buffer import ReplayBuffer
from ..utils import check_nonnegative_int


def _check_buffer(buffer: ReplayBuffer, name: str = "buffer") -> ReplayBuffer:
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"{name}: expected a ReplayBuffer, got {type(buffer).__name__}")
    if len(buffer) == 0:
        raise ValueError(f"{name}: is empty; collect some transitions first (wm.collect)")
    return buffer


def episode_rows(buffer: ReplayBuffer, episode: int) -> range:
    """The buffer rows of episode number `episode` (0 = the first in the buffer)."""
    bounds = _check_buffer(buffer).episode_bounds()
    episode = check_nonnegative_int("episode", episode)
    if episode >= len(bounds):
        raise ValueError(f"episode: expected one of the buffer's {len(bounds)} episodes "
                         f"[0, {len(bounds)}), got {episode}")
    return range(*bounds[episode])


def longest_episode(buffer: ReplayBuffer) -> range:
    """The buffer rows of the episode with the most transitions (the first on a tie)."""
    first, stop = max(_check_buffer(buffer).episode_bounds(), key=lambda b: b[1] - b[0])
    return range(first, stop)


def episode_of(buffer: ReplayBuffer, row: int) -> range:
    """The buffer rows of the episode that holds `row` (so `episode.stop - row` transitions
    follow from `row` on, itself included)."""
    _check_buffer(buffer)
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)) \
            or not 0 <= row < len(buffer):
        raise ValueError(f"row: expected a buffer row in [0, {len(buffer)}), got {row!r}")
    return next(range(first, stop) for first, stop in buffer.episode_bounds()
                if first <= row < stop)


def episode_observations(buffer: ReplayBuffer, rows: range) -> torch.Tensor:
    """(T + 1, D) the T observations the actions of `rows` were taken in, then the last
    next_obs: every state of the (part of an) episode, for drawings and animations."""
    _check_buffer(buffer)
    if not isinstance(rows, range) or len(rows) == 0 or rows.step != 1 \
            or not 0 <= rows.start < rows.stop <= len(buffer):
        raise ValueError(f"rows: expected a non-empty range of consecutive buffer rows within "
                         f"[0, {len(buffer)}), e.g. longest_episode(buffer), got {rows!r}")
    data = buffer[slice(rows.start, rows.stop)]
    return torch.cat([data["obs"], data["next_obs"][-1:]])
