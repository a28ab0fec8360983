"""Environments: `make_env` (numbers or pixels), `collect` and a wrapper that hides velocities
(a POMDP)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from .buffer import ReplayBuffer
from .pixels import DEFAULT_SIZE, Size, check_size, pixel_env
from .runner import run
from .utils import check_positive_int

Policy = Callable[[np.ndarray], Any]

# SDL (pygame draws gymnasium's classic-control frames) installs a SIGTERM handler that turns
# `kill` into a quit event nobody reads: a benchmark, a sweep worker or a kernel that has
# rendered a frame would ignore SIGTERM. The hint, read when pygame starts, keeps the default.
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")


# Which observation entries are *not* velocities, for the envs whose layout is known.
POSITIONS = {
    "CartPole": (0, 2),             # x, (x_dot), theta, (theta_dot)
    "Pendulum": (0, 1),             # cos theta, sin theta, (theta_dot)
    "MountainCar": (0,),            # position, (velocity)
    "MountainCarContinuous": (0,),  # position, (velocity)
    "Acrobot": (0, 1, 2, 3),        # cos/sin of both joints, (both angular velocities)
}


def make_env(name: str = "CartPole-v1", seed: int = 0, hide_velocities: bool = False,
             pixels: bool = False, size: Size | None = None, **kwargs: Any) -> gym.Env:
    """A gymnasium env with a flat Box observation, seeded (env and action space) by `seed`.

    `hide_velocities=True` keeps only the positions (see `HideVelocities`); it is refused for
    envs whose velocity entries are not known (`POSITIONS`).

    `pixels=True` observes frames instead of numbers (`wmkit.pixels`): the env's own rendering
    (envs that cannot render "rgb_array" frames are refused), cropped to where things move
    (CartPole: the cart's band), drawn as ink on paper (background 0, cart and pole 1) and
    averaged down to height x width cells and flattened: observations of height * width
    floats in [0, 1]. `size` is n for n x n cells (default 64) or a pair (height, width), e.g.
    (32, 128) to keep the aspect of CartPole's band; each side a multiple of 16 from 16 to 256.
    """
    family = name.split("/")[-1].split("-v")[0]
    if size is not None and not pixels:
        raise ValueError(f"size: the frame size applies only with pixels=True, got {size!r}")
    if pixels:
        size = check_size(DEFAULT_SIZE if size is None else size)
        if hide_velocities:
            raise ValueError("hide_velocities: a frame shows no velocities already; use "
                             "pixels=True alone")
        if "render_mode" in kwargs:
            raise ValueError(f"render_mode: pixels=True renders 'rgb_array' frames itself, "
                             f"got render_mode={kwargs['render_mode']!r}")
        kwargs["render_mode"] = "rgb_array"
    if hide_velocities:
        if family not in POSITIONS:
            raise ValueError(f"hide_velocities: the velocity entries of {name!r} are not known; "
                             f"supported: {', '.join(sorted(POSITIONS))}")
    try:
        env = gym.make(name, **kwargs)
    except gym.error.Error as error:
        raise ValueError(f"name: {name!r} is not a gymnasium environment ({error})") from error
    if hide_velocities:
        env = HideVelocities(env, POSITIONS[family])
    if pixels:
        env = pixel_env(env, family, size)
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"name: {name!r} has observation space {space}; expected a flat Box")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def collect(env: gym.Env, steps: int, policy: Policy | None = None, seed: int = 0,
            buffer: ReplayBuffer | None = None) -> ReplayBuffer:
    """Run `policy` (uniformly random by default) for `steps` real steps into a buffer.

    `policy` is any callable obs -> action, a planner included (its `reset()` is called at each
    episode start). Episodes are reset as they end; the env is reset with `seed` first, so the
    same seed gives the same data.
    """
    steps = check_positive_int("steps", steps)
    buffer = buffer if buffer is not None else ReplayBuffer.for_env(env, capacity=steps)
    for step in run(env, policy, steps=steps, seed=seed):
        buffer.add(*step.transition)
    return buffer


class HideVelocities(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """An env observing only the entries `keep` (CartPole: cart position and pole angle), so
    velocities must be inferred.

    Two stacked frames are not enough (the velocity change depends on the previous action);
    a model with memory (an RSSM) has to build its own belief.
    """

    def __init__(self, env: gym.Env, keep: tuple[int, ...] = (0, 2)) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, keep=tuple(keep))
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or not keep or \
                not all(0 <= i < space.shape[0] for i in keep):
            raise ValueError(f"keep: expected indices into a flat Box observation of size "
                             f"{space.shape}, got {keep}")
        self.keep = np.array(keep)
        self.observation_space = gym.spaces.Box(space.low[self.keep], space.high[self.keep],
                                                dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)[self.keep]
