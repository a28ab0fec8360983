"""Pixel observations: an env's own rendering, drawn as ink on paper, height x width cells.

`make_env("CartPole-v1", pixels=True, size=64)` (64 x 64; `size=(32, 128)`: 32 rows of 128)
stacks two wrappers on the env:

1. gymnasium's `AddRenderObservation`: the observation becomes the rendered RGB frame
   (CartPole: 400 x 600 x 3, about 10 ms a frame on one core);
2. `InkFrame` (ours): keep the rows where things move (CartPole: the cart's band), mark every
   pixel that is not paper as ink (1) and the paper as 0, average the ink over height x width
   cells, and flatten: an observation of height * width floats in [0, 1], in steps of 1/255
   (so a `ReplayBuffer` can keep them as bytes without losing anything).

Frames need not be square: CartPole's band is 160 x 600 pixels, which 64 x 64 cells squeeze to
a pole ~1 cell wide; 32 x 128 cells (as many) keep the band's aspect, and the pole ~2 cells
wide.

Why ink on paper: on white paper the cart and pole cover ~5% of the frame, and an autoencoder
trained on the raw grey levels learned nothing (every code the same; issue 20's measurement)
until the frame was drawn as ink (background 0, cart and pole 1). Why not gymnasium's
`GrayscaleObservation` and `ResizeObservation`: the first takes ~33 ms a frame (float64 over the
whole frame, 3x the rendering) for grey levels that ink throws away, and the second needs opencv,
which the kit does not depend on; `InkFrame`'s average over cells is what `ResizeObservation`'s
`INTER_AREA` computes.

`pixel_twin(buffer)` renders the frames of a buffer of CartPole *states*, so the true states
stay at hand as probe targets (as `hidden_twin` does for notebook 06), and
`dream_against_reality` compares a world model's decoded dreams with the real frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .utils import check_positive_int

if TYPE_CHECKING:  # buffer.py imports this module (`frame_shape`)
    from .buffer import ReplayBuffer

SIZES = range(16, 257, 16)
"""Frame sides `make_env(pixels=True, size=...)` accepts, for the height and the width alike: a
multiple of 16 (the convolutional encoder halves the frame four times), from 16 to 256."""

DEFAULT_SIZE = 64
"""64 x 64 frames."""

Size = int | tuple[int, int]
"""A frame size as callers give it: n (n x n) or (height, width); `check_size` normalises it."""

BANDS = {"CartPole": (0.4, 0.8)}
"""Rows of the rendered frame to keep, as fractions of its height, by env family (the rest of
the frame: all of it). CartPole's cart runs along row 300 of 400 and its upright pole reaches
row 172: rows 160 to 320 hold everything that moves."""

PAPER = 240
"""A pixel whose darkest channel is below this is ink (classic-control envs draw on white)."""


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """A frame size as (height, width): an int n is n x n, a pair (height, width) stays as it
    is; every side in `SIZES`. A ValueError naming the argument `name` otherwise."""
    sides = (size, size) if _is_side(size) else size
    if not isinstance(sides, (tuple, list)) or len(sides) != 2 \
            or not all(_is_side(side) and int(side) in SIZES for side in sides):
        raise ValueError(f"{name}: expected a multiple of 16 from 16 to 256 (e.g. 64), or a "
                         f"pair (height, width) of them (e.g. (32, 128)), got {size!r}")
    return int(sides[0]), int(sides[1])


def _is_side(side: Any) -> bool:
    """An int (numpy's too), not a bool: `size=True` is a mistake, not 1."""
    return isinstance(side, (int, np.integer)) and not isinstance(side, (bool, np.bool_))


class InkFrame(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """An RGB frame (H, W, 3) uint8 -> an ink frame, flat: (height * width,) float32 in [0, 1].

    size: n (n x n cells) or (height, width); `frame_shape` holds it as (height, width).
    rows: (top, bottom), the band of rows to keep as fractions of the frame's height.
    Each output cell is the fraction of its area covered by ink, rounded to 1/255.
    """

    def __init__(self, env: gym.Env, size: Size = DEFAULT_SIZE,
                 rows: tuple[float, float] = (0.0, 1.0)) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, size=size, rows=tuple(rows))
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8 \
                or len(space.shape) != 3 or space.shape[-1] != 3:
            raise ValueError(f"env: expected RGB frames (H, W, 3) uint8 as observations "
                             f"(wrap it in AddRenderObservation), got {space}")
        top, bottom = rows
        if not 0 <= top < bottom <= 1:
            raise ValueError(f"rows: expected (top, bottom) with 0 <= top < bottom <= 1, "
                             f"got {rows!r}")
        self.frame_shape = check_size(size)
        rendered = space.shape[0]
        self.rows = slice(round(top * rendered), round(bottom * rendered))
        height, width = self.frame_shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, (height * width,), dtype=np.float32)

    def observation(self, frame: np.ndarray) -> np.ndarray:
        band = frame[self.rows]
        # Ink: any channel darker than the paper (three compares: 15x faster than .min(-1)).
        ink = torch.from_numpy((band[..., 0] < PAPER) | (band[..., 1] < PAPER)
                               | (band[..., 2] < PAPER))
        # The mean of the ink over each cell: OpenCV's INTER_AREA, as a torch pooling.
        cover = F.adaptive_avg_pool2d(ink[None].float(), self.frame_shape)
        return (torch.round(cover * 255).flatten().numpy() / np.float32(255)).astype(np.float32)


def pixel_env(env: gym.Env, family: str, size: Size = DEFAULT_SIZE) -> gym.Env:
    """`env` (made with render_mode="rgb_array") observing ink frames (see the module doc)."""
    size = check_size(size)
    modes = env.metadata.get("render_modes") or []
    if "rgb_array" not in modes or env.render_mode != "rgb_array":
        raise ValueError(f"pixels: {env.spec.id if env.spec else env!r} cannot render frames "
                         f"(render modes {list(modes)}; pixels=True needs 'rgb_array')")
    env = gym.wrappers.AddRenderObservation(env, render_only=True)
    return InkFrame(env, size, BANDS.get(family, (0.0, 1.0)))


def frame_shape(env: gym.Env) -> tuple[int, int] | None:
    """(height, width) of `env`'s frames if it observes ink frames (`InkFrame` among its
    wrappers), else None."""
    ink = _find_ink(env)
    return None if ink is None else ink.frame_shape


def _find_ink(env: gym.Env) -> InkFrame | None:
    """The `InkFrame` among `env`'s wrappers, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, InkFrame):
            return env
        env = env.env
    return None


def as_frames(obs: Any, size: Size) -> torch.Tensor:
    """Flat observations (..., height * width) -> frames (..., height, width), a float CPU
    tensor; `size` is n (n x n) or (height, width)."""
    height, width = check_size(size)
    obs = torch.as_tensor(obs).detach().float().cpu()
    if obs.shape[-1:] != (height * width,):
        raise ValueError(f"obs: expected (..., {height * width}) for {height} x {width} "
                         f"frames, got {tuple(obs.shape)}")
    return obs.reshape(*obs.shape[:-1], height, width)


# -- frames of known states ------------------------------------------------------------------


def render_states(env: gym.Env, states: Any) -> torch.Tensor:
    """Ink frames (N, height * width) of CartPole states (N, 4), drawn by the pixel env `env`.

    For envs whose observation is their state (CartPole): the state is set, the env renders.
    The env's own state is put back afterwards.
    """
    ink = _find_ink(env)
    if ink is None:
        raise ValueError("env: expected a pixel env (make_env(..., pixels=True))")
    states = np.asarray(torch.as_tensor(states).double().cpu(), dtype=np.float64)
    if states.ndim != 2 or states.shape[1] != np.asarray(env.unwrapped.state).shape[-1]:
        raise ValueError(f"states: expected (N, {np.asarray(env.unwrapped.state).shape[-1]}), "
                         f"got {states.shape}")
    saved = env.unwrapped.state
    height, width = ink.frame_shape
    frames = np.empty((len(states), height * width), dtype=np.float32)
    try:
        for i, state in enumerate(states):
            env.unwrapped.state = state
            frames[i] = ink.observation(env.unwrapped.render())
    finally:
        env.unwrapped.state = saved
    return torch.from_numpy(frames)


def pixel_twin(buffer: ReplayBuffer, size: Size = DEFAULT_SIZE, name: str = "CartPole-v1"
               ) -> ReplayBuffer:
    """The same transitions as `buffer` (CartPole states), observing ink frames instead
    (`size`: n for n x n, or (height, width); frames of height * width floats).

    Collect on the state env, give a model the twin, and `buffer` still holds the true states
    (`buffer.tensors()["obs"]`): targets for a linear probe. Each state is rendered once
    (next_obs of a row is obs of the next row within an episode).
    """
    if len(buffer) == 0:
        raise ValueError("buffer: is empty; collect some transitions first (wm.collect)")
    from .buffer import ReplayBuffer
    from .envs import make_env

    height, width = check_size(size)
    env = make_env(name, pixels=True, size=(height, width))
    if buffer.obs_dim != np.asarray(env.unwrapped.state).shape[-1]:
        raise ValueError(f"buffer: expected {name} states of size "
                         f"{np.asarray(env.unwrapped.state).shape[-1]}, got {buffer.obs_dim}")
    data = buffer.tensors()
    starts = data["is_first"]
    # Every row's next state, and the first state of each episode.
    frames_next = render_states(env, data["next_obs"])
    frames_obs = frames_next.roll(1, 0)
    frames_obs[starts] = render_states(env, data["obs"][starts])
    env.close()
    twin = ReplayBuffer(height * width, buffer.action_spec, capacity=len(buffer), pixels=True)
    for i in range(len(buffer)):
        twin.add(frames_obs[i], data["action"][i], float(data["reward"][i]), frames_next[i],
                 bool(data["terminated"][i]), bool(data["truncated"][i]))
    return twin


# -- measurements ------------------------------------------------------------------------------


@torch.no_grad()
def dream_against_reality(model: Any, buffer: ReplayBuffer, starts: Any, horizon: int,
                          burn_in: int = 1) -> dict[str, torch.Tensor]:
    """A world model's decoded dreams beside the real frames, from buffer rows `starts`.

    From each start (one int or S rows, as `wmkit.analysis.open_loop` takes them) the model
    imagines the real actions that followed. Returns "real" and "dreamed" frames
    ((S,) H + 1, D; dreams clamped to the ink range [0, 1]), and per-step squared errors
    (mean over pixels) at 1..H steps ahead ((S,) H): "dream", and "still" for the guess "the
    frame does not change" (the start frame), the bar a dream must beat to say anything about
    motion. Raw ink units: per-pixel standardising, as `compounding_error` does, would divide
    by ~0 on the paper.
    """
    from .analysis.open_loop import open_loop

    real, imagined = open_loop(model, buffer, starts, horizon, burn_in)
    dreamed = imagined.clamp(0, 1)
    return {"real": real, "dreamed": dreamed,
            "dream": ((dreamed[..., 1:, :] - real[..., 1:, :]) ** 2).mean(-1),
            "still": ((real[..., :1, :] - real[..., 1:, :]) ** 2).mean(-1)}


def dream_errors(model: Any, buffer: ReplayBuffer, horizon: int = 15, burn_in: int = 5,
                 max_starts: int = 50, seed: int = 0) -> dict[str, torch.Tensor]:
    """`dream_against_reality`'s "dream" and "still" errors (H,), averaged over up to
    `max_starts` rows chosen at random (each after `burn_in` - 1 real rows of its episode and
    followed by `horizon` real steps; see `wmkit.analysis.open_loop`)."""
    from .analysis.open_loop import open_loop_starts

    horizon = check_positive_int("horizon", horizon)
    rows = open_loop_starts(buffer, horizon, burn_in)
    if len(rows) == 0:
        raise ValueError(f"horizon: no episode of the buffer has burn_in + horizon - 1 = "
                         f"{burn_in + horizon - 1} steps")
    chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    rows = rows[chosen[:check_positive_int("max_starts", max_starts)].sort().values]
    dreams = dream_against_reality(model, buffer, rows, horizon, burn_in)
    return {"dream": dreams["dream"].mean(0), "still": dreams["still"].mean(0)}
