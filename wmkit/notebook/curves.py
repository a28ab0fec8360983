"""Learning curves: losses per epoch, and returns against real environment steps.

The library's records (``History``, ``LearnLog``) are read by attribute. Every function returns
the Axes it drew on, accepts ``ax=``, and never calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from .common import new_axes, to_numpy


def plot_losses(history: Any, ax: Axes | None = None, log: bool = True) -> Axes:
    """Train (solid) and held-out (dashed) loss per component and epoch.

    Args:
        history: object with ``train`` and ``heldout``: dict[str, list[float]], one value per
            epoch, keys like "total", "delta", "reward", "done" ("total" is drawn thickest).
            ``heldout`` may be empty.
        ax: Axes to draw into; a new one if None.
        log: log y-axis. Losses that reach zero or below (a Gaussian NLL can) switch it to
            'symlog', which is linear near zero, so no point disappears.

    Returns:
        The Axes: one line per (component, split).
    """
    train, heldout = getattr(history, "train", None), getattr(history, "heldout", None)
    if not isinstance(train, Mapping) or not isinstance(heldout, Mapping) or not train:
        raise ValueError("history: expected an object with .train and .heldout dicts "
                         f"(name -> list of per-epoch losses), got {type(history).__name__}")
    ax = ax if ax is not None else new_axes((6, 3.6))
    names = sorted(set(train) | set(heldout), key=lambda k: (k != "total", k))
    all_values = []
    for i, name in enumerate(names):
        for split, curves, style in (("train", train, "-"), ("held-out", heldout, "--")):
            values = to_numpy(curves.get(name, [])).reshape(-1)
            if values.size == 0:
                continue
            all_values.append(values)
            ax.plot(np.arange(1, values.size + 1), values, ls=style, color=f"C{i}",
                    lw=2.2 if name == "total" else 1.4, label=f"{name} ({split})",
                    gid=f"{split}:{name}")
    values = np.concatenate(all_values) if all_values else np.ones(1)
    if log:
        if np.nanmin(values) > 0:
            ax.set_yscale("log")
        else:
            positive = np.abs(values[values != 0])
            ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    # Legend: colour = component, style = split (proxies, so ax.lines holds only the data).
    handles = [Line2D([], [], color=f"C{i}", lw=2, label=name) for i, name in enumerate(names)]
    handles += [Line2D([], [], color="0.3", ls="-", label="train")]
    if any(len(v) for v in heldout.values()):
        handles += [Line2D([], [], color="0.3", ls="--", label="held-out")]
    ax.legend(handles=handles, fontsize=8, ncols=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    return ax


def _as_log_groups(log_or_logs: Any) -> dict[str | None, list[Any]]:
    """{label: [LearnLog, ...]} from a LearnLog, a list of them, or a dict label -> either."""
    def is_log(obj: Any) -> bool:
        return hasattr(obj, "episodes")

    expected = ("log_or_logs: expected a LearnLog (with .episodes), a list of them, or a dict "
                "label -> LearnLog or list of LearnLogs")
    if is_log(log_or_logs):
        groups = {None: [log_or_logs]}
    elif isinstance(log_or_logs, Mapping):
        groups = {str(k): list(v) if isinstance(v, Sequence) else [v]
                  for k, v in log_or_logs.items()}
    elif isinstance(log_or_logs, Sequence) and not isinstance(log_or_logs, str):
        groups = {None: list(log_or_logs)}
    else:
        raise ValueError(f"{expected}, got {type(log_or_logs).__name__}")
    if not groups or any(not logs or not all(map(is_log, logs)) for logs in groups.values()):
        raise ValueError(f"{expected}; got an empty group or an item without .episodes")
    return groups


def _episode_curve(log: Any) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array([e.real_steps for e in log.episodes], dtype=float)
    returns = np.array([e.ret for e in log.episodes], dtype=float)
    return steps, returns


def _median_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Median over seeds of the (linearly interpolated) episode-return curves, on the range of
    real steps that every seed covers; empty if fewer than two seeds have episodes."""
    curves = [(s, r) for s, r in curves if s.size]
    if len(curves) < 2:
        return np.empty(0), np.empty(0)
    start, stop = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    if stop <= start:
        return np.empty(0), np.empty(0)
    grid = np.linspace(start, stop, 200)
    return grid, np.median([np.interp(grid, s, r) for s, r in curves], axis=0)


def plot_returns(log_or_logs: Any, ax: Axes | None = None, target: float | None = 475) -> Axes:
    """Episode return against real environment steps (the sample-efficiency picture).

    Args:
        log_or_logs: a LearnLog (``.episodes`` with ``real_steps``, ``ret``, ``phase``;
            ``.evals`` with ``real_steps``, ``mean_return``); a list of LearnLogs (one thin
            line per seed plus their median, thick); or a dict label -> LearnLog or list of
            LearnLogs, one colour per label, to compare agents.
        ax: Axes to draw into; a new one if None.
        target: a dotted horizontal line at this return (CartPole-v1 counts 475 as solved);
            None for none.

    Returns:
        The Axes. Grey shading marks the random warm-up (up to the last warm-up episode of
        any run); diamonds mark evaluations (mean return of the evaluation episodes).
    """
    groups = _as_log_groups(log_or_logs)
    ax = ax if ax is not None else new_axes((6.4, 3.6))
    warmup_end, eval_label = 0.0, "evaluation (mean)"
    for i, (label, logs) in enumerate(groups.items()):
        color = f"C{i}"
        single = len(logs) == 1
        curves = [_episode_curve(log) for log in logs]
        for seed, ((steps, returns), log) in enumerate(zip(curves, logs)):
            ax.plot(steps, returns, color=color, lw=1.5 if single else 0.8,
                    alpha=0.9 if single else 0.35, marker="." if single else None, ms=4,
                    label=(label or "episode return") if single else None,
                    gid=f"episodes:{label}:{seed}")
            warmup = [e.real_steps for e in log.episodes if e.phase == "warmup"]
            warmup_end = max([warmup_end, *warmup])
            evals = list(log.evals)
            if evals:
                ax.plot([e.real_steps for e in evals], [e.mean_return for e in evals],
                        ls="none", marker="D", ms=5 if single else 4, color=color,
                        markeredgecolor="white", markeredgewidth=0.6,
                        alpha=1.0 if single else 0.7, gid=f"evals:{label}:{seed}",
                        label=eval_label, zorder=4)
                eval_label = None  # one legend entry for all of them
        if not single:
            grid, median = _median_curve(curves)
            ax.plot(grid, median, color=color, lw=2.4,
                    label=f"{label + ': ' if label else ''}median of {len(logs)} seeds",
                    gid=f"median:{label}")
    if warmup_end > 0:
        ax.axvspan(0, warmup_end, color="0.5", alpha=0.15, lw=0, gid="warmup",
                   label="random warm-up", zorder=0)
    return finish_learning_axes(ax, "episode return", target)


def finish_learning_axes(ax: Axes, ylabel: str, target: float | None = None) -> Axes:
    """What every return-vs-real-steps figure ends with: the dotted target line (if any),
    the axis labels, a grid and the legend. Returns `ax`."""
    if target is not None:
        ax.axhline(target, color="0.2", ls=":", lw=1.2, gid="target", label=f"target {target:g}")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(ylabel)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return ax
