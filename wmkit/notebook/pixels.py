"""Frames, drawn (notebook 11): ink frames in a grid, what a probe reads, dreams against reality
as pictures, as an error curve, as a video, and with a horizon slider.

The numbers come from `wmkit.pixels.dream_against_reality` and `dream_errors` (on
`wmkit.analysis.open_loop`, the one open-loop measurement); frames are flat
(..., height * width) ink in [0, 1] (0: paper), and every `size` is n (n x n frames) or
(height, width), as `make_env(pixels=True, size=...)` takes it. Frames are drawn at their true
aspect (a 32 x 128 frame four times as wide as tall).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..buffer import ReplayBuffer
from ..models.base import WorldModel
from ..pixels import Size, check_size, dream_against_reality
from ..utils import check_positive_int
from .common import CARTPOLE_NAMES, ArrayLike, new_axes, to_numpy
from .explorer import Explorer, View, int_slider
from .rollouts import _shown

INK = {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
"""Ink on paper: 0 white, 1 black."""


def _grid(frames: ArrayLike, size: Size) -> np.ndarray:
    """(C, D) or (R, C, D) flat frames -> (R, C, height, width) clipped to [0, 1]."""
    height, width = check_size(size)
    array = to_numpy(frames)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] != height * width:
        raise ValueError(f"frames: expected (C, {height * width}) or (R, C, {height * width}) "
                         f"for {height} x {width} frames, got {array.shape}")
    return np.clip(array.reshape(*array.shape[:2], height, width), 0, 1)


def _panel(height: int, width: int, side: float = 1.3) -> tuple[float, float]:
    """(width, height) in inches of one frame's panel: about the area of a `side` x `side`
    square at the frame's aspect, so a wide frame is drawn wide, not shrunk into a square's
    width. A wide frame's panel is 0.3 inch taller: a short row leaves its titles no room."""
    stretch = (width / height) ** 0.5
    return side * stretch, side / stretch + (0.3 if width > height else 0.0)


def draw_frames(frames: ArrayLike, size: Size, row_titles: Sequence[str] | None = None,
                column_titles: Sequence[str] | None = None, fig: Figure | None = None
                ) -> Figure:
    """Frames in a grid: (C, height * width) as one row, or (R, C, height * width) as R rows.

    Rows are titled on the left (e.g. "real", "dreamed"), columns on top (e.g. "t = 5").
    """
    grid = _grid(frames, size)
    rows, columns = grid.shape[:2]
    panel_width, panel_height = _panel(*grid.shape[2:])
    fig = fig if fig is not None else plt.figure(
        figsize=(panel_width * columns + 0.6, panel_height * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for r in range(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(grid[r, c], **INK)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and column_titles is not None:
                ax.set_title(column_titles[c], fontsize=8)
            if c == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=9)
    return fig


def plot_probe(scores: Mapping[str, ArrayLike], names: Sequence[str] = CARTPOLE_NAMES,
               ax: Axes | None = None) -> Axes:
    """Held-out R^2 of a linear probe per state variable, one group of bars per feature set.

    scores: feature set name (e.g. "one frame's code", "RSSM belief") -> (K,) R^2.
    Bars below 0 (worse than guessing the mean) are cut at -0.2 so the rest stays readable.
    """
    if not scores:
        raise ValueError("scores: expected at least one feature set, got none")
    ax = ax if ax is not None else new_axes((6.5, 2.8))
    width = 0.8 / len(scores)
    for i, (label, values) in enumerate(scores.items()):
        r2 = to_numpy(values).reshape(-1)
        if len(r2) != len(names):
            raise ValueError(f"scores: {label!r} has {len(r2)} values for {len(names)} names")
        ax.bar(np.arange(len(r2)) + (i - (len(scores) - 1) / 2) * width, np.maximum(r2, -0.2),
               width, label=label, color=f"C{i}")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set(ylabel="held-out R²", ylim=(-0.2, 1.05))
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_dream_errors(dream: ArrayLike, still: ArrayLike, ax: Axes | None = None) -> Axes:
    """Per-step error of decoded dreams against real frames, and of "the frame does not change".

    dream, still: (H,) mean squared error per pixel at 1..H steps ahead (`dream_errors`).
    """
    dream_np, still_np = to_numpy(dream).reshape(-1), to_numpy(still).reshape(-1)
    if dream_np.shape != still_np.shape:
        raise ValueError(f"still: expected {dream_np.shape} like dream, got {still_np.shape}")
    ax = ax if ax is not None else new_axes((5, 3))
    steps = np.arange(1, len(dream_np) + 1)
    ax.plot(steps, dream_np, "o-", ms=3, label="dream, decoded")
    ax.plot(steps, still_np, "s--", ms=3, color="0.5", label="the frame does not change")
    ax.set(xlabel="steps ahead", ylabel="squared error per pixel")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def animate_dream(real: ArrayLike, imagined: ArrayLike, size: Size, interval: int = 120,
                  titles: tuple[str, str] = ("real", "dreamed")) -> FuncAnimation:
    """Real and dreamed frames side by side (wide frames: one above the other), one video frame
    per step.

    real, imagined: (T, height * width) from the same start under the same actions (e.g.
    `wmkit.analysis.open_loop`). Show it with `to_html(anim)` (wmkit.notebook).
    """
    real_np, imagined_np = _grid(real, size)[0], _grid(imagined, size)[0]
    if real_np.shape != imagined_np.shape:
        raise ValueError(f"imagined: expected {real_np.shape[0]} frames like real, got "
                         f"{imagined_np.shape[0]}")
    height, width = real_np.shape[1:]
    if width > height:  # e.g. 32 x 128: side by side they would be thin strips
        fig, axes = plt.subplots(2, 1, figsize=(4.2, 2 * (3.8 * height / width + 0.35) + 0.2),
                                 dpi=72)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.3), dpi=72)
    images = []
    for ax, frames, title in zip(axes, (real_np, imagined_np), titles):
        images.append(ax.imshow(frames[0], **INK))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    clock = fig.text(0.5, 0.03, "", ha="center", fontsize=8, color="0.3")

    def update(t: int) -> list:
        images[0].set_data(real_np[t])
        images[1].set_data(imagined_np[t])
        clock.set_text(f"t = {t}")
        return []

    update(0)
    return FuncAnimation(fig, update, frames=len(real_np), interval=interval, blit=False)


def frame_dream_explorer(model: WorldModel, buffer: ReplayBuffer, row: int, size: Size,
                   max_horizon: int = 40, horizon: int = 15, columns: int = 6) -> Explorer:
    """A pixel model's dream from buffer row `row` against the real frames, horizon slider.

    The figure shows `columns` steps from 0 to the horizon, reality above the dream; `size`:
    the model's frames, n (n x n) or (height, width).

    Returns:
        An Explorer with controls {"horizon"}; `.data` holds "horizon" (as shown: shortened at
        the episode's end), "real" and "dreamed" ((horizon + 1, D) frames: feed them to
        `animate_dream`), and "error" and "still" ((horizon,) squared error per pixel of the
        dream and of "the frame does not change" at 1..horizon steps).
    """
    max_horizon = check_positive_int("max_horizon", max_horizon)
    columns = check_positive_int("columns", columns)

    def render(horizon: int) -> View:
        _, shown = _shown(buffer, row, horizon)
        dreams = dream_against_reality(model, buffer, row, shown)
        real, dreamed, error, still = (dreams[key] for key in ("real", "dreamed", "dream",
                                                               "still"))
        steps = np.unique(np.linspace(0, shown, min(columns, shown + 1)).round().astype(int))
        fig = draw_frames(torch.stack([real[steps], dreamed[steps]]), size,
                          row_titles=("real", "dreamed"),
                          column_titles=[f"t = {t}" for t in steps])
        note = "" if shown == horizon else f" (only {shown} real steps follow)"
        verdict = "closer than" if error[-1] < still[-1] else "further than"
        return View(fig, f"{shown} dreamed steps{note}: the last dreamed frame is "
                         f"<b>{verdict}</b> the start frame to reality (squared error per pixel "
                         f"{float(error[-1]):.4f} vs {float(still[-1]):.4f})",
                    {"horizon": shown, "real": real, "dreamed": dreamed, "error": error,
                     "still": still})

    return Explorer({"horizon": int_slider("horizon", min(horizon, max_horizon), 1,
                                           max_horizon)},
                    render, title="A dream in pixels")
