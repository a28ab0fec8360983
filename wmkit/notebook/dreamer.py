"""Plan or learn a policy? (notebook 10): the actor's dreams drawn as cart-poles, what the
critic and the λ-return make of them, a horizon slider, and the cost of a decision.

The numbers come from the agent (`ActorCritic.dream`, `ActorCritic.score`); this module only
draws them. Every function returns the Axes or Figure it drew on and never calls `plt.show()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..agents.actor_critic import ActorCritic, DreamScore
from ..buffer import ReplayBuffer
from ..models.base import Rollout
from ..utils import check_positive_int
from .cartpole import draw_cartpoles
from .common import to_numpy
from .explorer import Explorer, View, int_slider


def _rows(buffer: ReplayBuffer, rows: Sequence[int]) -> list[int]:
    """`rows` as a checked list of buffer rows (ValueError naming `rows`)."""
    chosen = [int(row) for row in rows]
    if not chosen or any(not 0 <= row < len(buffer) for row in chosen):
        raise ValueError(f"rows: expected 1 or more rows in [0, {len(buffer)}), got {chosen}")
    return chosen


def draw_actor_dreams(rollout: Rollout, score: DreamScore, fig: Figure | None = None,
                max_dreams: int = 4) -> Figure:
    """Up to `max_dreams` imagined trajectories as fading cart-poles, one row each, drawn up to
    the step where the chance of still going falls below a half (the rest is the model's
    guess about a fallen pole, which the returns hardly weigh).

    Args:
        rollout: the agent's dreams (`ActorCritic.dream`), observations (N, H+1, D).
        score: `ActorCritic.score(rollout)`.
    """
    observations = to_numpy(rollout.observations)
    alive = to_numpy(score.alive)
    shown = min(check_positive_int("max_dreams", max_dreams), len(observations))
    fig = fig if fig is not None else plt.figure(figsize=(7, 1.5 * shown), layout="constrained")
    axes = fig.subplots(shown, 1, squeeze=False)[:, 0]
    for i, ax in enumerate(axes):
        going = alive[i] >= 0.5
        stop = len(going) if going.all() else int(np.argmin(going)) + 1  # the fall included
        draw_cartpoles(observations[i, :stop], ax=ax, color=f"C{i}", max_ghosts=10)
        ended = "" if going.all() else f", likely over by step {stop - 1}"
        ax.set_title(f"dream {i}: expects {float(score.expected_return[i]):.1f} reward in "
                     f"{observations.shape[1] - 1} steps{ended}", fontsize=8, loc="left")
    return fig


def plot_dream_values(score: DreamScore, discount: float, index: int = 0,
                      ax: Axes | None = None) -> Axes:
    """Along one dream: the critic's value v(s_t), the λ-return R_t it is trained on, and the
    chance that s_t is reached (right axis)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6), layout="constrained")
    values, returns = to_numpy(score.values[index]), to_numpy(score.returns[index])
    ax.plot(np.arange(len(values)), values, color="C0", marker=".", label="critic v(s_t)")
    ax.plot(np.arange(len(returns)), returns, color="C1", marker=".",
            label=f"λ-return R_t (γ = {discount:g})")
    ax.set_xlabel("imagined step t")
    ax.set_ylabel("value")
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    right.plot(to_numpy(score.alive[index]), color="0.4", ls="--", label="P(s_t reached)")
    right.set_ylim(-0.02, 1.05)
    right.set_ylabel("P(reached)")
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="lower left")
    return ax


def actor_dream_explorer(agent: ActorCritic, buffer: ReplayBuffer, rows: Sequence[int],
                   max_horizon: int = 100, horizon: int = 15) -> Explorer:
    """The actor's greedy dreams from real beliefs (buffer `rows`), with a horizon slider.

    Each render dreams `horizon` steps from every row, draws them as cart-poles and plots the
    first dream's values. Lengthening the horizon shows what the critic is for: the imagined
    reward grows with H, while the λ-return at the start (the critic's own target) should
    barely move once the critic has learned what lies beyond the horizon.

    Returns:
        An Explorer with controls {"horizon"}; `.data` holds "horizon", "expected_return" (N,)
        (imagined reward, calibrated), "start_return" (N,) (λ-return R_0) and "start_value"
        (N,) (critic's v(s_0)).
    """
    chosen = _rows(buffer, rows)
    max_horizon = check_positive_int("max_horizon", max_horizon)
    horizon = check_positive_int("horizon", horizon)
    if horizon > max_horizon:
        raise ValueError(f"horizon: expected at most max_horizon = {max_horizon}, got {horizon}")

    def render(horizon: int) -> View:
        rollout = agent.dream(buffer, chosen, horizon=horizon)
        score = agent.score(rollout)
        fig = plt.figure(figsize=(7, 1.5 * min(len(chosen), 4) + 2.4), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.5 * min(len(chosen), 4), 2.4])
        draw_actor_dreams(rollout, score, fig=top)
        plot_dream_values(score, agent.discount, ax=bottom.subplots())
        expected = to_numpy(score.expected_return)
        start_return, start_value = to_numpy(score.returns[:, 0]), to_numpy(score.values[:, 0])
        text = (f"H = {horizon}: the dreams expect <b>{expected.mean():.1f}</b> reward on "
                f"average; λ-return at the start <b>{start_return.mean():.1f}</b>, critic "
                f"<b>{start_value.mean():.1f}</b>")
        return View(fig, text, {"horizon": horizon, "expected_return": expected,
                                "start_return": start_return, "start_value": start_value})

    return Explorer({"horizon": int_slider("imagination horizon H", horizon, 1, max_horizon)},
                    render, title="The actor's dreams")


def plot_decision_cost(ms_per_decision: Mapping[str, float], ax: Axes | None = None) -> Axes:
    """Milliseconds per real decision, one bar per agent (log scale), labelled."""
    if not ms_per_decision:
        raise ValueError("ms_per_decision: expected at least one agent, got none")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.5 + 0.6 * len(ms_per_decision)),
                             layout="constrained")
    names = list(ms_per_decision)
    costs = [float(ms_per_decision[name]) for name in names]
    if any(not cost > 0 for cost in costs):
        raise ValueError(f"ms_per_decision: expected positive times, got {costs}")
    ax.barh(names, costs, color=[f"C{i}" for i in range(len(names))])
    for i, cost in enumerate(costs):
        ax.annotate(f"{cost:.3g} ms", (cost, i), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(min(costs) / 3, max(costs) * 8)
    ax.set_xlabel("milliseconds per decision (log)")
    ax.invert_yaxis()
    return ax
