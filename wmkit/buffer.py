"""ReplayBuffer: real transitions, seeded sampling and the normalisation statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from .pixels import frame_shape
from .spaces import ActionSpec
from .utils import as_float_tensor, check_positive_int

FRAME_FIELDS = ("obs", "next_obs")


@dataclass(frozen=True)
class NormStats:
    """Per-dimension statistics the models normalise with (all shapes (D,) except reward ()).

    obs_low, obs_high: the smallest and largest observation (obs or next_obs) in the data, per
    dimension: the box a model has seen, which it clamps its inputs to (`Normalised.inputs`).
    """

    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    delta_mean: torch.Tensor
    delta_std: torch.Tensor
    reward_mean: torch.Tensor
    reward_std: torch.Tensor
    done_fraction: float
    obs_low: torch.Tensor
    obs_high: torch.Tensor


class ReplayBuffer:
    """Transitions (obs, action, reward, next_obs, terminated, truncated), stored as tensors.

    Storage grows by doubling, so `add` is O(1) amortised and `sample` is one gather.
    `is_first[i]` marks the first step of an episode; it is inferred (the previous
    transition ended, or its next_obs is not this obs), so callers never track it.

    capacity: rows allocated at first (storage grows past it). max_size: None keeps every
    row; an int makes a ring buffer: once it holds `max_size` rows, each new row evicts the
    oldest, and the new oldest row counts as an episode start (what came before it is gone).
    Row 0 is always the oldest row kept.

    pixels: observations are frames with values in [0, 1] (`make_env(pixels=True)`): they are
    kept as bytes (rounded to 1/255, which ink frames already are: nothing is lost), a quarter
    of the memory, and read back as float32.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, capacity: int = 1024,
                 max_size: int | None = None, pixels: bool = False) -> None:
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.action_spec = action_spec
        self.pixels = bool(pixels)
        self.max_size = None if max_size is None else check_positive_int("max_size", max_size)
        self._size = 0
        self._start = 0  # storage row of row 0: rows before it were evicted
        self._alloc(check_positive_int("capacity", capacity))

    @classmethod
    def for_env(cls, env: gym.Env, capacity: int = 1024, max_size: int | None = None
                ) -> ReplayBuffer:
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env: expected a flat Box observation space, got {space}")
        return cls(space.shape[0], ActionSpec.from_space(env.action_space), capacity, max_size,
                   pixels=frame_shape(env) is not None)

    def _rows(self) -> dict[str, torch.Tensor]:
        """Views of the kept rows of every field (row 0 the oldest)."""
        return {key: tensor[self._start: self._start + self._size]
                for key, tensor in self._data.items()}

    def _make_room(self, n: int) -> None:
        """Make sure `n` more rows fit after the last one: move the kept rows to the front
        when half the storage is free, else grow it (O(1) amortised per row either way)."""
        capacity = len(self._data["obs"])
        if self._start + self._size + n > capacity:
            needed = self._size + n
            self._alloc(capacity if 2 * needed <= capacity else max(2 * capacity, needed))

    def _evict(self) -> None:
        """Drop the oldest rows beyond `max_size`; the new oldest row starts an episode."""
        if self.max_size is not None and self._size > self.max_size:
            self._start += self._size - self.max_size
            self._size = self.max_size
            self._data["is_first"][self._start] = True

    def _alloc(self, capacity: int) -> None:
        old = getattr(self, "_data", None)
        kept = self._rows() if old is not None else {}
        action_dtype = torch.long if self.action_spec.discrete else torch.float32
        obs_dtype = torch.uint8 if self.pixels else torch.float32
        self._data = {
            "obs": torch.zeros(capacity, self.obs_dim, dtype=obs_dtype),
            "action": torch.zeros((capacity, *self.action_spec.shape), dtype=action_dtype),
            "reward": torch.zeros(capacity),
            "next_obs": torch.zeros(capacity, self.obs_dim, dtype=obs_dtype),
            "terminated": torch.zeros(capacity, dtype=torch.bool),
            "truncated": torch.zeros(capacity, dtype=torch.bool),
            "is_first": torch.zeros(capacity, dtype=torch.bool),
        }
        for key, tensor in kept.items():
            self._data[key][: self._size] = tensor
        self._start = 0

    def __len__(self) -> int:
        return self._size

    def _stored(self, name: str, obs: torch.Tensor) -> torch.Tensor:
        """Float observations as stored: unchanged, or frames as bytes (ValueError outside
        [0, 1])."""
        if not self.pixels:
            return obs
        if not ((obs >= 0) & (obs <= 1)).all():
            raise ValueError(f"{name}: expected a frame with values in [0, 1] (pixels=True)")
        return torch.round(obs * 255).to(torch.uint8)

    def _loaded(self, key: str, tensor: torch.Tensor,
                device: torch.device | str | None = None) -> torch.Tensor:
        """A stored field as the caller sees it, always a copy: frames back to float32."""
        if self.pixels and key in FRAME_FIELDS:
            return tensor.to(device).float() / 255
        return tensor.to(device, copy=True)

    def add(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool,
            truncated: bool = False) -> None:
        """Append one real transition. Non-finite observations are refused, not stored."""
        shape = (self.obs_dim,)
        obs_t = self._stored("obs", as_float_tensor("obs", obs, shape).reshape(shape))
        next_t = self._stored("next_obs", as_float_tensor("next_obs", next_obs, shape
                                                          ).reshape(shape))
        reward_t = as_float_tensor("reward", reward).reshape(())
        action = self.action_spec.check(action)
        self._make_room(1)
        i, d = self._start + self._size, self._data  # the storage row to write
        previous_ended = self._size == 0 or bool(d["terminated"][i - 1] or d["truncated"][i - 1])
        d["is_first"][i] = previous_ended or not torch.equal(d["next_obs"][i - 1], obs_t)
        d["obs"][i], d["next_obs"][i], d["reward"][i] = obs_t, next_t, reward_t
        d["action"][i] = torch.as_tensor(action)
        d["terminated"][i], d["truncated"][i] = bool(terminated), bool(truncated)
        self._size += 1
        self._evict()

    def extend(self, other: ReplayBuffer) -> None:
        """Append every transition of `other` (same observation size and action space)."""
        if other.obs_dim != self.obs_dim or other.action_spec != self.action_spec:
            raise ValueError("other: buffers differ in observation size or action space")
        n = len(other)
        if n == 0:
            return
        self._make_room(n)
        i = self._start + self._size  # the storage row of `other`'s first row
        for key, tensor in other.tensors().items():
            self._data[key][i: i + n] = self._stored(key, tensor) if key in FRAME_FIELDS \
                else tensor
        # `other`'s first row starts an episode here unless it continues our last one (the
        # same rule as `add`); its other rows keep the starts `other` inferred.
        d = self._data
        continues = self._size > 0 and not bool(d["terminated"][i - 1] or d["truncated"][i - 1]) \
            and torch.equal(d["next_obs"][i - 1], d["obs"][i])
        d["is_first"][i] = not continues
        self._size += n
        self._evict()

    def __getitem__(self, index: Any) -> dict[str, torch.Tensor]:
        """Rows `index` (an int, slice or index tensor) of every field, as copies: writing into
        them never changes the buffer."""
        if isinstance(index, int) and not -self._size <= index < self._size:
            raise IndexError(f"index {index} out of range for a buffer of {self._size}")
        return {key: self._loaded(key, tensor[index]) for key, tensor in self._rows().items()}

    def tensors(self, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Every stored field as tensors of length len(self), on `device`, as copies: writing
        into them never changes the buffer."""
        return {key: self._loaded(key, tensor, device) for key, tensor in self._rows().items()}

    def episode_ids(self) -> torch.Tensor:
        """(N,) long: which episode each row belongs to (0, 1, ...), counted from `is_first`."""
        return self._rows()["is_first"].long().cumsum(0) - 1

    def episode_bounds(self) -> list[tuple[int, int]]:
        """(first row, one past the last row) of every episode in the buffer, in order."""
        firsts = self._rows()["is_first"].nonzero().flatten().tolist()
        return list(zip(firsts, firsts[1:] + [self._size]))

    def window_starts(self, length: int) -> torch.Tensor:
        """(S,) the first rows of every window of `length` consecutive rows inside one episode
        (no episode starts after the window's first row)."""
        length = check_positive_int("length", length)
        if length > self._size:
            raise ValueError(f"length: expected at most len(buffer)={self._size}, got {length}")
        # Starts inside [s+1, s+length-1] are forbidden: a running count answers it in O(n).
        counts = torch.cat([torch.zeros(1, dtype=torch.long),
                            self._rows()["is_first"].long().cumsum(0)])
        begin = torch.arange(self._size - length + 1)
        return begin[counts[begin + length] - counts[begin + 1] == 0]

    def sample(self, batch_size: int, generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
        """A batch of `batch_size` transitions drawn uniformly with replacement."""
        batch_size = check_positive_int("batch_size", batch_size)
        self._check_not_empty()
        index = torch.randint(self._size, (batch_size,), generator=generator)
        return self[index]

    def stats(self) -> NormStats:
        """Mean and std of observations, of their one-step change and of rewards; the range of
        the observations."""
        self._check_not_empty()
        d = self.tensors()
        delta = d["next_obs"] - d["obs"]
        # A floor on the std keeps constant dimensions (e.g. CartPole's reward) finite.
        return NormStats(
            obs_mean=d["obs"].mean(0), obs_std=d["obs"].std(0, correction=0).clamp_min(1e-3),
            delta_mean=delta.mean(0), delta_std=delta.std(0, correction=0).clamp_min(1e-3),
            reward_mean=d["reward"].mean(),
            reward_std=d["reward"].std(correction=0).clamp_min(1e-3),
            done_fraction=float(d["terminated"].float().mean()),
            # Every observation the data holds, the last next_obs of an episode included.
            obs_low=torch.minimum(d["obs"].amin(0), d["next_obs"].amin(0)),
            obs_high=torch.maximum(d["obs"].amax(0), d["next_obs"].amax(0)),
        )

    def episode_returns(self) -> list[float]:
        """Returns of the episodes in the buffer that ended (terminated or truncated)."""
        d = self.tensors()
        if self._size == 0:
            return []
        episode = self.episode_ids()
        totals = torch.zeros(int(episode[-1]) + 1).index_add_(0, episode, d["reward"])
        ends = (d["terminated"] | d["truncated"]).nonzero().flatten()
        return totals[episode[ends]].tolist()

    def _check_not_empty(self) -> None:
        if self._size == 0:
            raise ValueError("buffer: is empty; collect some transitions first (wm.collect)")

    def sample_sequences(self, batch_size: int, length: int,
                         generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """`batch_size` windows of `length` consecutive rows: every field as (B, L, ...).

        Windows start uniformly at random and may cross episode boundaries: `is_first` marks
        where a new episode begins, so a sequence model resets its state there (and treats
        position 0 of a window as a start too: what came before it is not in the window).
        The extra field `index` (B, L) gives the buffer rows, e.g. to mask held-out episodes.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        length = check_positive_int("length", length)
        self._check_not_empty()
        if length > self._size:
            raise ValueError(f"length: expected at most len(buffer)={self._size}, got {length}")
        starts = torch.randint(self._size - length + 1, (batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(length)
        return {**self[index], "index": index}
