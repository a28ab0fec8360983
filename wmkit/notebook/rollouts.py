"""Open-loop dreams against reality, drawn (notebooks 02 and 06): per dimension, as ghost
cart-poles, and with start and horizon sliders. The numbers come from
`wmkit.analysis.open_loop`, the one open-loop measurement."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.episodes import episode_of, longest_episode
from ..analysis.open_loop import open_loop
from ..buffer import ReplayBuffer
from ..models.base import WorldModel
from ..utils import check_positive_int
from .cartpole import draw_cartpoles
from .explorer import Explorer, View, int_slider
from .trajectories import plot_trajectories


def _shown(buffer: ReplayBuffer, row: int, horizon: int) -> tuple[range, int]:
    """The episode holding `row`, and `horizon` shortened to the transitions it has left."""
    episode = episode_of(buffer, row)
    return episode, min(check_positive_int("horizon", horizon), episode.stop - row)


def draw_rollout(model: WorldModel, buffer: ReplayBuffer, row: int, horizon: int) -> Figure:
    """Real vs imagined trajectory from buffer row `row` under the same actions, one panel per
    observation dimension.

    If fewer than `horizon` real steps follow `row` in its episode, the horizon is shortened
    to what the episode has, so a slider can never ask for the impossible. The x axis counts
    steps of the episode, so moving the start visibly moves along it.
    """
    episode, shown = _shown(buffer, row, horizon)
    real, imagined = open_loop(model, buffer, row, shown)
    fig = plot_trajectories(real, imagined)
    offset = row - episode.start  # step numbers of the episode
    for line in (line for ax in fig.axes for line in ax.lines if line.get_gid() != "limit"):
        line.set_xdata(np.asarray(line.get_xdata()) + offset)
    for ax in fig.axes:
        ax.relim()
        ax.autoscale_view()
        ax.set_xlabel("step of the episode")
    return fig


def rollout_explorer(model: WorldModel, buffer: ReplayBuffer, rows: range | None = None,
                     max_horizon: int = 60, horizon: int = 20) -> Explorer:
    """Open-loop imagination vs reality along one episode, with start and horizon sliders.

    Args:
        model: any world model.
        buffer, rows: the real episode's buffer and rows (default: its longest episode).
        max_horizon: the horizon slider's maximum; horizon: its initial value.

    Returns:
        An Explorer with controls {"start", "horizon"} (start: a step of the episode). `.data`
        holds "start", "horizon" (as shown: shortened at the episode's end) and "gap" (D,):
        |imagined - real| at the last step (raw units; CartPole: metres, ..., radians).
    """
    rows = longest_episode(buffer) if rows is None else rows
    max_horizon = check_positive_int("max_horizon", max_horizon)
    horizon = min(check_positive_int("horizon", horizon), max_horizon)

    def render(start: int, horizon: int) -> View:
        row = rows.start + start
        _, shown = _shown(buffer, row, horizon)
        real, imagined = open_loop(model, buffer, row, shown)
        gap = (imagined[-1] - real[-1]).abs().numpy()
        if len(gap) == 4:  # CartPole: say it in metres and degrees
            off = (f"the imagined cart is <b>{gap[0]:.3f} m</b> off and the imagined pole "
                   f"<b>{np.degrees(gap[2]):.1f}°</b> off")
        else:
            off = f"the dream is <b>{float(np.sqrt((gap ** 2).mean())):.3g}</b> off (RMS)"
        note = "" if shown == horizon else f" (only {shown} real steps follow the start)"
        return View(draw_rollout(model, buffer, row, horizon),
                    f"imagining {shown} steps from step {start}{note}: at the end {off}",
                    {"start": start, "horizon": shown, "gap": gap})

    controls = {
        "start": int_slider("start step", 0, 0, len(rows) - 1),
        "horizon": int_slider("horizon", horizon, 1, max_horizon),
    }
    return Explorer(controls, render, title="Imagination vs reality")


def draw_dream(model: WorldModel, buffer: ReplayBuffer, row: int, horizon: int,
               ax: Axes | None = None) -> Axes:
    """Real (grey) and imagined (blue) cart-poles as ghosts, from buffer row `row` (the belief
    right after observing it) for `horizon` steps, shortened at the episode's end."""
    _, shown = _shown(buffer, row, horizon)
    real, imagined = open_loop(model, buffer, row, shown)
    ax = draw_cartpoles(real, ax=ax, color="0.5", label="real")
    draw_cartpoles(imagined, ax=ax, color="C0", label=f"imagined, {shown} steps")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def dream_explorer(model: WorldModel, buffer: ReplayBuffer, row: int, max_horizon: int = 60,
                   horizon: int = 10) -> Explorer:
    """`draw_dream` from buffer row `row` with a horizon slider.

    Returns:
        An Explorer with controls {"horizon"}; `.data` holds "horizon" (as shown) and "gap"
        (D,): |imagined - real| at the last step, raw units.
    """
    max_horizon = check_positive_int("max_horizon", max_horizon)

    def render(horizon: int) -> View:
        _, shown = _shown(buffer, row, horizon)
        real, imagined = open_loop(model, buffer, row, shown)
        fig, ax = plt.subplots(figsize=(7, 2.2), layout="constrained")
        draw_dream(model, buffer, row, horizon, ax=ax)
        gap = (imagined[-1] - real[-1]).abs().numpy()
        return View(fig, f"{shown} imagined steps: the last is off by "
                         f"{', '.join(f'{g:.3g}' for g in gap)}",
                    {"horizon": shown, "gap": gap})

    return Explorer({"horizon": int_slider("horizon", min(horizon, max_horizon), 1,
                                           max_horizon)},
                    render, title="A dream, drawn")
