"""Step through a real episode (notebook 00): the cart-pole and its numbers at each step."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..analysis.episodes import episode_observations, longest_episode
from ..buffer import ReplayBuffer
from .cartpole import draw_cartpoles
from .common import ArrayLike, to_numpy
from .explorer import Explorer, View, int_slider


def draw_step(observations: ArrayLike, t: int, actions: ArrayLike | None = None) -> Figure:
    """The cart-pole at step t of a trajectory, with its last few steps as fading ghosts.

    Args:
        observations: (T + 1, 4) or (T + 1, 2) real observations.
        t: which step, in [0, T].
        actions: (T,) the action taken at each step (0 = push left, 1 = push right), or None.

    Returns:
        A Figure with one cart-pole Axes; the title names the step and the action taken there.
    """
    states = to_numpy(observations)
    if states.ndim != 2 or states.shape[1] not in (2, 4):
        raise ValueError(f"observations: expected shape (T + 1, 4) or (T + 1, 2), "
                         f"got {tuple(states.shape)}")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not (
            0 <= t < len(states)):
        raise ValueError(f"t: expected a step in [0, {len(states) - 1}], got {t!r}")
    fig, ax = plt.subplots(figsize=(6.4, 2.2), layout="constrained")
    draw_cartpoles(states[max(0, t - 4): t + 1], ax=ax, min_alpha=0.1, alpha=1.0, max_ghosts=5)
    what = ""
    if actions is not None:
        taken = to_numpy(actions).reshape(-1)
        if t < len(taken):
            what = f" — action {int(taken[t])}: push {'right' if taken[t] > 0.5 else 'left'}"
        else:
            what = " — the episode is over"
    ax.set_title(f"step {t} of {len(states) - 1}{what}", fontsize=10)
    return fig


def describe_state(state: np.ndarray) -> str:
    """A CartPole state (4,) or (2,) in words: metres, degrees and their rates."""
    if state.shape[0] == 4:
        x, x_dot, theta, theta_dot = state
        return (f"x = {x:+.3f} m, ẋ = {x_dot:+.3f} m/s, θ = {np.degrees(theta):+.2f}°, "
                f"θ̇ = {theta_dot:+.3f} rad/s")
    return f"x = {state[0]:+.3f} m, θ = {np.degrees(state[1]):+.2f}°"


def episode_stepper(buffer: ReplayBuffer, rows: range | None = None) -> Explorer:
    """A step slider through one real episode of `buffer` (`rows`; default the longest).

    Returns:
        An Explorer with controls {"step"}; `.data` holds "step" and "observation" (D,).
    """
    rows = longest_episode(buffer) if rows is None else rows
    observations = to_numpy(episode_observations(buffer, rows))
    actions = buffer[slice(rows.start, rows.stop)]["action"]

    def render(step: int) -> View:
        return View(draw_step(observations, step, actions), describe_state(observations[step]),
                    {"step": step, "observation": observations[step]})

    return Explorer({"step": int_slider("step", 0, 0, len(observations) - 1, continuous=True)},
                    render, title="Step through a real episode")
