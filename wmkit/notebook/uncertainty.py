"""An ensemble's uncertainty, drawn (notebook 04): disagreement maps, reliability diagrams, a
change in the world, and sliders for the number of members and the planner's risk weight.
The numbers come from `wmkit.analysis` (disagreement, calibration, change, risk)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.change import ChangeLog
from ..analysis.disagreement import (
    Transitions,
    disagreement_grid,
    error_vs_disagreement,
    transitions,
)
from ..analysis.risk import risk_tradeoff
from ..models.ensemble import EnsembleWorldModel
from ..planners.base import MPCPlanner
from ..utils import check_positive_int
from .common import new_axes
from .explorer import Explorer, View, float_slider, int_slider


def plot_disagreement_grid(xs: np.ndarray, ys: np.ndarray, values: np.ndarray,
                           data: Transitions | None = None, x_dim: int = 2, y_dim: int = 3,
                           ax: Axes | None = None, vmax: float | None = None) -> Axes:
    """Heat map of `wmkit.analysis.disagreement_grid`'s output (delta-std units), with the
    training states on top (if `data` is given). Returns the Axes."""
    ax = ax if ax is not None else new_axes((5, 4))
    mesh = ax.pcolormesh(xs, ys, values, shading="auto", cmap="magma", vmin=0, vmax=vmax)
    ax.figure.colorbar(mesh, ax=ax, label="disagreement (delta-std units)")
    if data is not None:
        obs = transitions(data, torch.device("cpu"))["obs"]
        ax.scatter(obs[:, x_dim], obs[:, y_dim], s=2, color="cyan", alpha=0.4,
                   label="training states")
        ax.legend(loc="upper right", fontsize="small")
    names = ("x", "x_dot", "theta", "theta_dot")  # CartPole's; other envs get numbers
    label = [names[i] if i < len(names) else f"obs[{i}]" for i in (x_dim, y_dim)]
    ax.set(xlabel=label[0], ylabel=label[1], xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
    return ax


def plot_reliability(expected: Any, observed: Any, ax: Axes | None = None,
                     label: str | None = None) -> Axes:
    """Reliability diagram: observed vs expected coverage (`wmkit.analysis.reliability_curve`);
    the diagonal is perfect calibration, below it over-confident. Returns the Axes."""
    ax = ax if ax is not None else new_axes((4, 4))
    if "calibrated" not in [line.get_label() for line in ax.lines]:  # one diagonal per Axes
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    ax.plot(np.asarray(expected), np.asarray(observed), marker="o", label=label)
    ax.set(xlabel="predicted interval (nominal coverage)", ylabel="observed coverage",
           xlim=(0, 1), ylim=(0, 1), aspect="equal")
    ax.legend(loc="upper left")
    return ax


def plot_change(log: ChangeLog, change_at: int | None = None) -> Figure:
    """Three panels over real steps from `wmkit.analysis.adapt_on_change`: the one-step error,
    the surprise (raw units) and the error ratio the detector watches, with the dynamics
    change, the detections and the refits marked. Returns the Figure."""
    if not isinstance(log, ChangeLog) or not log.errors:
        raise ValueError("log: expected a ChangeLog with at least one step (adapt_on_change)")
    fig, axes = plt.subplots(3, 1, figsize=(8, 5.6), sharex=True, layout="constrained")
    series = [(log.errors, "one-step error\n(delta-std units)", "C0"),
              (log.surprises, "surprise\n(squared error, raw)", "C1"),
              (log.error_ratios, "error ratio\n(the detector's input)", "tab:purple")]
    for ax, (values, name, color) in zip(axes, series, strict=True):
        ax.semilogy(np.maximum(values, 1e-8), linewidth=0.8, color=color, gid=name)
        ax.set_ylabel(name, fontsize=8)
        if change_at is not None:
            ax.axvline(change_at, color="black", linestyle="--", label="dynamics change")
        for i, step in enumerate(log.fired):
            ax.axvline(step, color="tab:red", label="detector fires" if i == 0 else None)
        for i, step in enumerate(log.refits):
            ax.axvline(step, color="tab:green", label="refit" if i == 0 else None)
    axes[0].legend(loc="upper left", fontsize="small")
    axes[-1].set_xlabel("real step")
    return fig


def ensemble_size_explorer(model: EnsembleWorldModel, data: Transitions,
                           off_data: Transitions, resolution: int = 31) -> Explorer:
    """A slider for the number of members: the disagreement map of the first k members (no
    retraining), and their mean disagreement on `data` and on `off_data`.

    Returns:
        An Explorer with controls {"members"}; `.data` holds "members", "grid" (R, R),
        "mean_on_data", "mean_off_data" and "spearman_off_data".
    """
    if not isinstance(model, EnsembleWorldModel) or model.ensemble_size < 2:
        raise ValueError("model: expected an EnsembleWorldModel with at least 2 members")
    resolution = check_positive_int("resolution", resolution)

    def render(members: int) -> View:
        subset = model.subset(members)
        xs, ys, grid = disagreement_grid(subset, resolution=resolution)
        on = error_vs_disagreement(subset, data)
        off = error_vs_disagreement(subset, off_data)
        fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
        plot_disagreement_grid(xs, ys, grid, data, ax=ax)
        text = (f"{members} members: mean disagreement on held-out data "
                f"<b>{on.mean_disagreement:.3f}</b>, off the data "
                f"<b>{off.mean_disagreement:.3f}</b>")
        return View(fig, text, {"members": members, "grid": grid,
                                "mean_on_data": on.mean_disagreement,
                                "mean_off_data": off.mean_disagreement,
                                "spearman_off_data": off.spearman})

    slider = int_slider("members", model.ensemble_size, 2, model.ensemble_size)
    return Explorer({"members": slider}, render, title="How many members?")


def risk_explorer(planner: MPCPlanner, obs: Any, max_risk: float = 10.0) -> Explorer:
    """A slider for the planner's risk weight, planning from `obs` with the same candidates
    every time (`wmkit.analysis.risk_tradeoff`): the imagined pole angles of all candidates
    (grey) and of the best-scored 10% (blue).

    Returns:
        An Explorer with controls {"risk"}; `.data` holds the latest `RiskTradeoff`'s numbers:
        "risk", "action", "first_action_scores", "top_return", "top_disagreement",
        "top_step_disagreement".
    """
    if not isinstance(planner, MPCPlanner):
        raise ValueError(f"planner: expected an MPC planner (e.g. RandomShooting), "
                         f"got {type(planner).__name__}")
    belief = planner.model.filter(None, None, obs)

    def render(risk: float) -> View:
        result = risk_tradeoff(planner, belief, risk)
        theta = result.plan.rollout.observations[:, :, 2].cpu().numpy()
        fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
        ax.plot(theta.T, color="lightgrey", linewidth=0.5)
        ax.plot(theta[result.top.numpy()].T, color="tab:blue", linewidth=0.8)
        ax.set(xlabel="imagined step", ylabel="pole angle (rad)")
        text = (f"risk {risk:.1f}, action {result.action}: the best 10% imagine a return of "
                f"<b>{result.top_return:.1f}</b> with summed disagreement "
                f"<b>{result.top_disagreement:.2f}</b>")
        scores = result.first_action_scores
        return View(fig, text, {
            "risk": result.risk, "action": result.action,
            "first_action_scores": None if scores is None else scores.cpu().numpy(),
            "top_return": result.top_return, "top_disagreement": result.top_disagreement,
            "top_step_disagreement": result.top_step_disagreement})

    slider = float_slider("risk", planner.risk, 0.0, float(max_risk), 0.1)
    return Explorer({"risk": slider}, render, title="Risk-aware planning")
