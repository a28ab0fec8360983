"""Imagined against real trajectories: one per dimension, and the error against the horizon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .common import CARTPOLE_NAMES, OUT_OF_BOUNDS_COLOR, ArrayLike, new_axes, to_numpy


def plot_trajectories(
    real: ArrayLike,
    imagined: ArrayLike,
    names: Sequence[str] | None = None,
    fig: Figure | None = None,
    *,
    limits: bool = True,
) -> Figure:
    """Real vs imagined trajectory from the same start, one subplot per observation dimension.

    Args:
        real: (T+1, D) observations from the environment.
        imagined: (T+1, D) one imagined trajectory, or (K, T+1, D) several (ensemble members,
            samples), drawn as a fan of thin lines around their median.
        names: D dimension names; CartPole's when D == 4, "obs[i]" otherwise.
        fig: Figure to draw into; it is cleared first (handy for redrawing from a widget) and
            given the constrained layout.
        limits: when D == 4, dotted lines at CartPole's termination bounds (±2.4 on position,
            ±12° on angle): an imagined line crossing them is an imagined episode end.

    Returns:
        The Figure, with D data axes.
    """
    real_np, imagined_np = to_numpy(real), to_numpy(imagined)
    if real_np.ndim != 2 or real_np.shape[0] < 1:
        raise ValueError(f"real: expected shape (T+1, D), got {tuple(real_np.shape)}")
    if imagined_np.ndim == 2:
        imagined_np = imagined_np[None]
    if imagined_np.ndim != 3 or imagined_np.shape[1:] != real_np.shape:
        steps, dims = real_np.shape
        raise ValueError(f"imagined: expected shape ({steps}, {dims}) or (K, {steps}, {dims}) "
                         f"to match real, got {tuple(to_numpy(imagined).shape)}")
    dims = real_np.shape[1]
    if names is None:
        names = CARTPOLE_NAMES if dims == 4 else [f"obs[{i}]" for i in range(dims)]
    if len(names) != dims:
        raise ValueError(f"names: expected {dims} names (one per dimension), got {len(names)}")

    ncols = 1 if dims == 1 else 2
    nrows = -(-dims // ncols)
    if fig is None:
        fig = plt.figure(figsize=(4.2 * ncols, 2.4 * nrows + 0.4), layout="constrained")
    else:
        fig.clear()
        fig.set_layout_engine("constrained")  # the legend sits outside the axes, above them
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    steps = np.arange(real_np.shape[0])
    n_members = imagined_np.shape[0]
    bounds = {0: 2.4, 2: np.radians(12)} if (dims == 4 and limits) else {}
    for d, ax in enumerate(axes[:dims]):
        ax.plot(steps, real_np[:, d], color="C0", lw=2, gid="real", label="real", zorder=3)
        if n_members == 1:
            ax.plot(steps, imagined_np[0, :, d], color="C1", lw=1.8, ls="--", gid="imagined",
                    label="imagined")
        else:
            ax.plot(steps, imagined_np[:, :, d].T, color="C1", lw=0.8, alpha=0.35, gid="imagined",
                    label=f"imagined ({n_members} samples)")  # one line per sample
            ax.plot(steps, np.median(imagined_np[:, :, d], axis=0), color="C1", lw=1.8, ls="--",
                    gid="imagined_median", label="imagined median")
        # A limit far outside the data would squash it: draw it only where the data come close.
        low, high = ax.get_ylim()
        margin = 0.25 * (high - low)
        for sign in (-1, 1) if d in bounds else ():
            if low - margin <= sign * bounds[d] <= high + margin:
                ax.axhline(sign * bounds[d], color=OUT_OF_BOUNDS_COLOR, lw=0.9, ls=":",
                           gid="limit", label="episode ends")
        ax.set_title(names[d], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelbottom=True)  # sharex would hide the labels above a hidden axis
        if d + ncols >= dims:  # lowest visible axis of its column
            ax.set_xlabel("step")
    for ax in axes[dims:]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[:dims]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside upper center",
               ncols=len(handles), fontsize=8, frameon=False)
    return fig


def plot_compounding_error(
    errors: ArrayLike | Mapping[str, ArrayLike],
    ax: Axes | None = None,
    *,
    ylabel: str = "prediction error",
) -> Axes:
    """Error of imagined vs real states against how many steps ahead the model predicted.

    Args:
        errors: (H,) error at horizons 1..H; or (S, H) over S start states, drawn as the mean
            with a band from the 10th to the 90th percentile (errors are skewed, so a ±std band
            would dip below zero on a log axis); or a dict label -> either, one line each.
        ax: Axes to draw into; a new one if None.
        ylabel: y-axis label.

    Returns:
        The Axes (log y): one line per curve, one band per (S, H) curve.
    """
    raw = dict(errors) if isinstance(errors, Mapping) else {None: errors}
    if not raw:
        raise ValueError("errors: expected an (H,) or (S, H) array or a non-empty dict of them")
    curves = {label: to_numpy(curve) for label, curve in raw.items()}
    for label, values in curves.items():
        where = "errors" if label is None else f"errors[{label!r}]"
        if values.ndim not in (1, 2) or values.shape[-1] < 1:
            raise ValueError(f"{where}: expected shape (H,) or (S, H), got {tuple(values.shape)}")
    ax = ax if ax is not None else new_axes((5, 3.4))
    for i, (label, values) in enumerate(curves.items()):
        horizons = np.arange(1, values.shape[-1] + 1)
        mean = values if values.ndim == 1 else values.mean(axis=0)
        ax.plot(horizons, mean, color=f"C{i}", lw=2, marker="o" if horizons.size <= 20 else None,
                ms=3, label=label, gid="error")
        if values.ndim == 2 and values.shape[0] > 1:
            low, high = np.percentile(values, [10, 90], axis=0)
            ax.fill_between(horizons, low, high, color=f"C{i}", alpha=0.2, lw=0, gid="band")
    ax.set_yscale("log")
    ax.set_xlabel("horizon (steps predicted ahead)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    if any(label is not None for label in curves):
        ax.legend(fontsize=8)
    return ax
