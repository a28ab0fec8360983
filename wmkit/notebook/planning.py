"""Planning, drawn: a planner's candidates by first action, and return against thinking time.

`planner_explorer` (notebook 03) runs `wmkit.analysis.planner_trial` at every change of its
horizon, candidates and select controls and keeps every trial in `.data["trials"]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..analysis.planner_trial import Trial, planner_trial
from ..models.base import WorldModel
from ..utils import check_positive_int
from .common import new_axes, to_numpy
from .explorer import Explorer, View, choice_slider, int_slider


def _first_action_scores(scores: Any, actions: np.ndarray) -> dict[int, float]:
    if scores is None:
        return {}
    if isinstance(scores, Mapping):
        return {int(to_numpy(a)): float(to_numpy(s)) for a, s in scores.items()}
    values = to_numpy(scores).reshape(-1)
    return {a: float(values[a]) for a in actions if a < values.size}


def plot_plan(plan: Any, ax: Axes | None = None) -> Axes:
    """Histogram of the imagined returns of a planner's candidates, split by first action.

    Random shooting can act on the first action of the best single sequence, or on the
    first action whose candidates do best on average. The two often disagree: one lucky
    sequence is not a good action. This figure shows both.

    Args:
        plan: a `Plan` (or anything with its attributes): ``candidate_returns`` (N,),
            ``candidate_actions`` (N, H) integer (discrete) or (N, H, A) float (continuous:
            one histogram, no split), ``best_index``, ``first_action_scores`` ((n_actions,)
            or a dict action -> score; None: the mean return per first action) and
            ``action`` (None: the first action with the best score).
        ax: Axes to draw into; a new one if None.

    Returns:
        The Axes (legend to its right): one filled histogram per first action (the chosen one
        strong), one dashed line per first action at its score, one solid black line at the
        best single sequence's return.
    """
    try:
        returns = to_numpy(plan.candidate_returns).reshape(-1)
        actions = to_numpy(plan.candidate_actions)
        best = int(plan.best_index)
        scores_given, chosen = plan.first_action_scores, plan.action
    except (AttributeError, TypeError) as err:
        raise ValueError("plan: expected a Plan with candidate_returns, candidate_actions, "
                         f"best_index, first_action_scores and action ({err})") from None
    if actions.ndim not in (2, 3) or actions.shape[0] != returns.size or returns.size == 0:
        raise ValueError(f"plan: candidate_actions {tuple(actions.shape)} should be (N, H) or "
                         f"(N, H, A) with N = len(candidate_returns) = {returns.size} > 0")
    if not 0 <= best < returns.size:
        raise ValueError(f"plan: best_index {best} out of range for {returns.size} candidates")
    ax = ax if ax is not None else new_axes((7.5, 3.4))
    finite = returns[np.isfinite(returns)]
    n_bins = min(30, max(5, int(np.sqrt(finite.size)) + 1))
    bins = np.histogram_bin_edges(finite if finite.size else [0.0], bins=n_bins)

    def histogram(values: np.ndarray, color: str, label: str, strong: bool) -> None:
        ax.hist(values, bins=bins, histtype="stepfilled", facecolor=color,
                alpha=0.55 if strong else 0.25, label=label, gid="hist")
        ax.hist(values, bins=bins, histtype="step", color=color, lw=1.6 if strong else 0.9,
                gid="hist_edge")

    if actions.ndim == 3:  # continuous actions: no split by first action
        histogram(finite, "C0", "candidates", strong=True)
    else:
        first = actions[:, 0].round().astype(int)
        values = sorted(set(first.tolist()))
        scores = _first_action_scores(scores_given, np.array(values))
        for a in values:
            scores.setdefault(a, float(np.mean(returns[first == a])))
        if chosen is not None:
            chosen = int(to_numpy(chosen).reshape(-1)[0])
        else:
            chosen = max(values, key=lambda a: scores[a])
        for a in values:
            is_chosen = a == chosen
            count = int((first == a).sum())
            histogram(returns[first == a], f"C{a}", f"first action {a} ({count} candidates)",
                      strong=is_chosen)
            ax.axvline(scores[a], color=f"C{a}", ls="--", lw=2.4 if is_chosen else 1.2,
                       gid=f"action_score:{a}",
                       label=f"score of action {a}: {scores[a]:.3g}" + ("  ← chosen" * is_chosen))
    first_of_best = "" if actions.ndim == 3 else f" (first action {int(first[best])})"
    ax.axvline(returns[best], color="k", lw=1.5, gid="best_sequence",
               label=f"best sequence: {returns[best]:.3g}{first_of_best}")
    pad = 0.05 * (bins[-1] - bins[0])
    ax.set_xlim(bins[0] - pad, bins[-1] + pad)
    ax.set_xlabel("imagined return over the horizon")
    ax.set_ylabel("candidates")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


def draw_trials(trials: Sequence[Trial], max_steps: int | None = None) -> Figure:
    """Return against milliseconds per decision, one point per trial (the latest circled).

    Args:
        trials: `Trial`s from `wmkit.analysis.planner_trial`.
        max_steps: draw the cap on the return as a dotted line (None: no line).

    Returns:
        A Figure with one Axes (log x): one scatter per select rule, "mean" first.
    """
    if not trials:
        raise ValueError("trials: expected at least one trial, got none")
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    for select, marker in (("mean", "o"), ("best", "s")):
        mine = [t for t in trials if t.select == select]
        if mine:
            ax.scatter([t.ms_per_decision for t in mine], [t.episode_return for t in mine],
                       marker=marker, s=30, color="C0" if select == "mean" else "C1",
                       alpha=0.6, label=f'select="{select}"', gid=f"trials:{select}")
    for trial in trials:
        ax.annotate(f"H={trial.horizon}, N={trial.candidates}",
                    (trial.ms_per_decision, trial.episode_return), textcoords="offset points",
                    xytext=(4, 3), fontsize=7, color="0.35")
    latest = trials[-1]
    ax.scatter([latest.ms_per_decision], [latest.episode_return], s=140, facecolors="none",
               edgecolors="k", lw=1.5, label="latest", zorder=5, gid="latest")
    if max_steps is not None:
        ax.axhline(max_steps, color="0.2", ls=":", lw=1.2, label=f"cap: {max_steps} steps")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("milliseconds per decision (log)")
    ax.set_ylabel("return")
    ax.set_ylim(bottom=0, top=1.12 * max([max_steps or 0, *(t.episode_return for t in trials)]))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def planner_explorer(model: WorldModel, env: gym.Env, horizon: int = 20, candidates: int = 100,
                     max_horizon: int = 40,
                     candidate_options: Sequence[int] = (5, 10, 20, 50, 100, 200, 500),
                     max_steps: int = 200, seed: int = 0) -> Explorer:
    """Random-shooting MPC with sliders for horizon and candidates and a mean/best toggle.

    Every change runs `wmkit.analysis.planner_trial` (one episode capped at `max_steps`) and
    adds a point to a figure of return against thinking time, so the trade-off builds up as
    you explore.

    Returns:
        An Explorer with controls {"horizon", "candidates", "select"}; `.data["trials"]` holds
        every `Trial` so far, `.data["trial"]` the latest.
    """
    max_steps = check_positive_int("max_steps", max_steps)
    options = sorted({check_positive_int("candidate_options", n) for n in candidate_options})
    candidates = check_positive_int("candidates", candidates)
    if candidates not in options:
        raise ValueError(f"candidates: expected one of candidate_options {options}, "
                         f"got {candidates}")
    max_horizon = check_positive_int("max_horizon", max_horizon)
    horizon = check_positive_int("horizon", horizon)
    if horizon > max_horizon:
        raise ValueError(f"horizon: expected at most max_horizon = {max_horizon}, got {horizon}")
    trials: list[Trial] = []

    def render(horizon: int, candidates: int, select: str) -> View:
        trial = planner_trial(model, env, horizon, candidates, seed, max_steps, select)
        trials.append(trial)
        text = (f"H = {horizon}, N = {candidates}, select = \"{select}\": return "
                f"<b>{trial.episode_return:.0f}</b> of {max_steps} possible, "
                f"<b>{trial.ms_per_decision:.1f} ms</b> per decision")
        return View(draw_trials(trials, max_steps), text, {"trial": trial})

    controls = {
        "horizon": int_slider("horizon H", horizon, 1, max_horizon),
        "candidates": choice_slider("candidates N", options, candidates),
        "select": widgets.ToggleButtons(options=["mean", "best"], value="mean",
                                        description="select", style={"button_width": "60px"}),
    }
    return Explorer(controls, render, title="Planning: how far and how many?",
                    data={"trials": trials})
