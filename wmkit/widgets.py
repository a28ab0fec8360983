"""Interactive explorers for the notebooks: sliders whose callbacks are plain library functions.

Every builder returns an `Explorer` (an `ipywidgets.VBox`) with its controls in `.controls`,
the last figure in `.figure` and a text summary in `.readout`. Setting a control's value from
code runs the callback at once, so a notebook cell or a test can do

    explorer = rollout_explorer(model, episode)
    explorer.controls["horizon"].value = 7
    explorer.figure  # redrawn

The drawing functions (`draw_step`, `draw_one_step`, `draw_rollout`, `draw_trials`) and the
work they show (`fit_small_model`, `diagnostics.planner_trial`) can be called without widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from . import viz
from .buffer import ReplayBuffer
from .diagnostics import (
    EpisodeData,
    _check_episode,
    episode_observations,
    first_transitions,
    longest_episode,
    open_loop,
    planner_trial,
)
from .models.mlp import MLPWorldModel
from .train import fit, one_step_error
from .utils import check_positive_int, seed_everything

__all__ = [
    "Explorer", "draw_one_step", "draw_rollout", "draw_step", "draw_trials", "episode_stepper",
    "fit_explorer", "fit_small_model", "planner_explorer", "rollout_explorer",
]

Render = Callable[..., tuple[Figure | None, str]]
"""control values as keywords -> (figure or None, readout HTML)."""


class Explorer(widgets.VBox):
    """Controls, a readout line and a figure, redrawn by `render` whenever a control changes.

    Attributes:
        controls: name -> widget (sliders, dropdowns, toggles); set `.value` to interact.
        readout: an HTML widget with the latest summary line.
        output: the Output widget the figure is displayed in.
        figure: the latest Figure (closed in pyplot, so it never shows twice; still readable).
        renders: how many times `render` ran (handy in tests).
        data: anything the explorer keeps between renders (e.g. the planner's trials).
    """

    def __init__(self, controls: dict[str, widgets.Widget], render: Render,
                 title: str = "", data: dict[str, Any] | None = None) -> None:
        self.controls = dict(controls)
        self.data = dict(data or {})
        self.readout = widgets.HTML()
        self.output = widgets.Output()
        self.figure: Figure | None = None
        self.renders = 0
        self._render = render
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        super().__init__([*header, widgets.HBox(list(self.controls.values())), self.readout,
                          self.output])
        for control in self.controls.values():
            control.observe(lambda _change: self.refresh(), names="value")
        self.refresh()

    @property
    def values(self) -> dict[str, Any]:
        """name -> current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self) -> None:
        """Run `render` with the current values and show its figure and readout."""
        try:
            figure, text = self._render(**self.values)
        except ValueError as error:  # a bad combination of values: say so, keep the last figure
            self.readout.value = f"<span style='color:#c0392b'>{error}</span>"
            return
        self.renders += 1
        self.readout.value = text
        if figure is None:
            return
        self.figure = figure
        plt.close(figure)  # shown below, never again by the inline backend at the cell's end
        if _in_notebook():  # outside a kernel (tests, scripts) there is nothing to show
            from IPython.display import display

            self.output.clear_output(wait=True)
            with self.output:
                display(figure)


def _numpy(x: Any) -> np.ndarray:
    """A float numpy copy of a tensor (any device) or array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _slider(description: str, value: int, low: int, high: int, step: int = 1,
            continuous: bool = False) -> widgets.IntSlider:
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=description,
                             continuous_update=continuous,
                             style={"description_width": "initial"})


# --------------------------------------------------------------------------- 00: a real episode


def draw_step(observations: torch.Tensor | np.ndarray, t: int,
              actions: torch.Tensor | np.ndarray | None = None) -> Figure:
    """The cart-pole at step t of a trajectory, with its last few steps as fading ghosts.

    Args:
        observations: (T + 1, 4) or (T + 1, 2) real observations.
        t: which step, in [0, T].
        actions: (T,) the action taken at each step (0 = push left, 1 = push right), or None.

    Returns:
        A Figure with one cart-pole Axes; the title names the step and the action taken there.
    """
    states = _numpy(observations)
    if states.ndim != 2 or states.shape[1] not in (2, 4):
        raise ValueError(f"observations: expected shape (T + 1, 4) or (T + 1, 2), "
                         f"got {tuple(states.shape)}")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not (
            0 <= t < len(states)):
        raise ValueError(f"t: expected a step in [0, {len(states) - 1}], got {t!r}")
    fig, ax = plt.subplots(figsize=(6.4, 2.2), layout="constrained")
    trail = states[max(0, t - 4): t + 1]
    viz.draw_cartpoles(trail, ax=ax, min_alpha=0.1, alpha=1.0, max_ghosts=5)
    what = ""
    if actions is not None:
        taken = _numpy(actions).reshape(-1)
        if t < len(taken):
            what = f" — action {int(taken[t])}: push {'right' if taken[t] > 0.5 else 'left'}"
        else:
            what = " — the episode is over"
    ax.set_title(f"step {t} of {len(states) - 1}{what}", fontsize=10)
    return fig


def _describe_state(state: np.ndarray) -> str:
    if state.shape[0] == 4:
        x, x_dot, theta, theta_dot = state
        return (f"x = {x:+.3f} m, ẋ = {x_dot:+.3f} m/s, θ = {np.degrees(theta):+.2f}°, "
                f"θ̇ = {theta_dot:+.3f} rad/s")
    return f"x = {state[0]:+.3f} m, θ = {np.degrees(state[1]):+.2f}°"


def episode_stepper(episode: EpisodeData | torch.Tensor | np.ndarray,
                    actions: torch.Tensor | np.ndarray | None = None) -> Explorer:
    """A step slider through one real episode: the cart-pole and its numbers at each step.

    Args:
        episode: an episode from `diagnostics.split_episodes`, or (T + 1, D) observations.
        actions: (T,) actions when `episode` is an observation array (taken from the episode
            dict otherwise).

    Returns:
        An Explorer with controls {"step"}.
    """
    if isinstance(episode, dict):
        observations = episode_observations(_check_episode(episode))
        actions = episode["action"]
    else:
        observations = torch.as_tensor(_numpy(episode))
    states = _numpy(observations)
    if states.ndim != 2 or len(states) < 1:
        raise ValueError(f"episode: expected (T + 1, D) observations, got {tuple(states.shape)}")

    def render(step: int) -> tuple[Figure, str]:
        return draw_step(observations, step, actions), _describe_state(states[step])

    return Explorer({"step": _slider("step", 0, 0, len(states) - 1, continuous=True)}, render,
                    title="Step through a real episode")


# --------------------------------------------------------------------------- 01: how much data?


def fit_small_model(buffer: ReplayBuffer, n: int, updates: int = 300, hidden: int = 64,
                    seed: int = 0, batch_size: int = 256) -> MLPWorldModel:
    """A small MLP world model fitted on the first `n` transitions of `buffer` (~1 s on a core).

    It trains for about `updates` gradient steps whatever `n` is (more epochs on less data),
    so comparing sizes compares data, not training time. Seeded: the same arguments give the
    same model.
    """
    updates = check_positive_int("updates", updates)
    data = first_transitions(buffer, n)
    batches_per_epoch = -(-(n - int(0.1 * n)) // batch_size)  # fit holds out 10%
    seed_everything(seed)
    model = MLPWorldModel(buffer.obs_dim, buffer.action_spec, hidden=hidden, device="cpu")
    fit(model, data, epochs=-(-updates // batches_per_epoch), batch_size=batch_size, seed=seed,
        progress=False)
    return model


@torch.no_grad()
def draw_one_step(model: Any, heldout: ReplayBuffer, dim: int,
                  names: Sequence[str] | None = None) -> Figure:
    """Predicted vs real one-step change of observation dimension `dim` on held-out data.

    A perfect model puts every point on the diagonal; the "nothing changes" guess puts them all
    on the horizontal line at zero.

    Args:
        model: anything with `predict(obs (B, D), action (B,)) -> (next_obs (B, D), ...)`.
        heldout: real transitions the model was not trained on.
        dim: which observation dimension, in [0, D).
        names: D dimension names (CartPole's by default when D == 4).

    Returns:
        A Figure with one scatter Axes.
    """
    if len(heldout) == 0:
        raise ValueError("heldout: is empty; collect some transitions first (wm.collect)")
    d = heldout.obs_dim
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 <= dim < d:
        raise ValueError(f"dim: expected an int in [0, {d}), got {dim!r}")
    names = list(names) if names is not None else (
        list(viz.CARTPOLE_NAMES) if d == 4 else [f"obs[{i}]" for i in range(d)])
    data = heldout.tensors(getattr(model, "device", "cpu"))
    predicted, _, _ = model.predict(data["obs"], data["action"])
    real_change = (data["next_obs"] - data["obs"])[:, dim].cpu().numpy()
    predicted_change = (predicted - data["obs"])[:, dim].cpu().numpy()
    fig, ax = plt.subplots(figsize=(4.6, 3.8), layout="constrained")
    ax.scatter(real_change, predicted_change, s=6, alpha=0.5, color="C1", label="model")
    low, high = float(real_change.min()), float(real_change.max())
    ax.plot([low, high], [low, high], color="C0", lw=1.5, label="perfect")
    ax.axhline(0, color="0.3", ls=":", lw=1.2, label='"nothing changes"')
    ax.set_xlabel(f"real change in {names[dim]}")
    ax.set_ylabel(f"predicted change in {names[dim]}")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    return fig


def fit_explorer(buffer: ReplayBuffer, heldout: ReplayBuffer,
                 sizes: Sequence[int] = (50, 100, 200, 500, 1000, 2000), updates: int = 300,
                 hidden: int = 64, seed: int = 0) -> Explorer:
    """How much data does a world model need? A data-size slider and a dimension selector.

    Moving "transitions" refits a small model (`fit_small_model`, about `updates` gradient
    steps) on the first n transitions of `buffer` (cached, so going back is instant);
    "dimension" only redraws. The readout compares the held-out
    one-step error with the "nothing changes" guess.

    Returns:
        An Explorer with controls {"transitions", "dimension"}.
    """
    sizes = sorted({check_positive_int("sizes", n) for n in sizes})
    if not sizes or sizes[-1] > len(buffer):
        raise ValueError(f"sizes: expected sizes in [1, len(buffer) = {len(buffer)}], got {sizes}")
    names = list(viz.CARTPOLE_NAMES) if buffer.obs_dim == 4 else [
        f"obs[{i}]" for i in range(buffer.obs_dim)]
    models: dict[int, MLPWorldModel] = {}

    def render(transitions: int, dimension: int) -> tuple[Figure, str]:
        if transitions not in models:
            models[transitions] = fit_small_model(buffer, transitions, updates, hidden, seed)
        model = models[transitions]
        errors = one_step_error(model, heldout)
        ratio = errors["no_change"] / max(errors["model"], 1e-12)
        fig = draw_one_step(model, heldout, dimension, names)
        fig.axes[0].set_title(f"trained on {transitions} transitions", fontsize=10)
        text = (f"held-out one-step error: model {errors['model']:.2e}, "
                f"\"nothing changes\" {errors['no_change']:.2e} "
                f"(model is <b>{ratio:.0f}x</b> better)")
        return fig, text

    controls = {
        "transitions": widgets.SelectionSlider(
            options=sizes, value=sizes[len(sizes) // 2], description="transitions",
            continuous_update=False, style={"description_width": "initial"}),
        "dimension": widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)],
                                      value=0, description="dimension"),
    }
    return Explorer(controls, render, title="How much data does the model need?")


# --------------------------------------------------------------------------- 02: imagined rollouts


def draw_rollout(model: Any, episode: EpisodeData, start: int, horizon: int) -> Figure:
    """Real vs imagined trajectory from step `start` of `episode` under the same actions.

    If fewer than `horizon` real steps follow `start`, the horizon is shortened to what the
    episode has, so a slider can never ask for the impossible. The x axis counts steps of the
    episode, so moving the start visibly moves along it.

    Returns:
        The `viz.plot_trajectories` Figure (one Axes per observation dimension).
    """
    _check_episode(episode)
    horizon = check_positive_int("horizon", horizon)
    length = len(episode["obs"])
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not (
            0 <= start < length):
        raise ValueError(f"start: expected a step in [0, {length}) of the episode, got {start!r}")
    shown = min(horizon, length - start)
    real, imagined = open_loop(model, episode, start, shown)
    fig = viz.plot_trajectories(real, imagined)
    # Step numbers of the episode, so the start slider visibly moves along it.
    for line in (line for ax in fig.axes for line in ax.lines if line.get_gid() != "limit"):
        line.set_xdata(np.asarray(line.get_xdata()) + start)
    for ax in fig.axes:
        ax.relim()
        ax.autoscale_view()
        ax.set_xlabel("step of the episode")
    return fig


def rollout_explorer(model: Any, buffer_or_episode: ReplayBuffer | EpisodeData,
                     max_horizon: int = 60, horizon: int = 20) -> Explorer:
    """Open-loop imagination vs reality, with a start-state slider and a horizon slider.

    Args:
        model: a world model (`filter` and `imagine`).
        buffer_or_episode: one episode (from `diagnostics.split_episodes`), or a buffer whose
            longest episode is used.
        max_horizon: the horizon slider's maximum.
        horizon: its initial value.

    Returns:
        An Explorer with controls {"start", "horizon"}; the readout says how far the dream is
        from reality at its last step (for CartPole: cart position in metres, pole angle in
        degrees; otherwise the root mean square over dimensions).
    """
    if isinstance(buffer_or_episode, ReplayBuffer):
        episode = longest_episode(buffer_or_episode)
    else:
        episode = _check_episode(buffer_or_episode, "buffer_or_episode")
    max_horizon = check_positive_int("max_horizon", max_horizon)
    horizon = min(check_positive_int("horizon", horizon), max_horizon)
    length = len(episode["obs"])

    def render(start: int, horizon: int) -> tuple[Figure, str]:
        fig = draw_rollout(model, episode, start, horizon)
        shown = min(horizon, length - start)
        real, imagined = open_loop(model, episode, start, shown)
        gap = (imagined[-1] - real[-1]).abs()
        if len(gap) == 4:  # CartPole: say it in metres and degrees
            off = (f"the imagined cart is <b>{gap[0]:.3f} m</b> off and the imagined pole "
                   f"<b>{np.degrees(float(gap[2])):.1f}°</b> off")
        else:
            off = f"the dream is <b>{float(gap.pow(2).mean().sqrt()):.3g}</b> off (RMS)"
        note = "" if shown == horizon else f" (only {shown} real steps follow the start)"
        return fig, f"imagining {shown} steps from step {start}{note}: at the end {off}"

    controls = {
        "start": _slider("start step", 0, 0, length - 1),
        "horizon": _slider("horizon", horizon, 1, max_horizon),
    }
    return Explorer(controls, render, title="Imagination vs reality")


# --------------------------------------------------------------------------- 03: planning


def draw_trials(trials: Sequence[dict[str, Any]], max_steps: int | None = None) -> Figure:
    """Return against milliseconds per decision, one point per trial (the latest highlighted).

    Args:
        trials: dicts with "return", "ms_per_decision", "horizon", "candidates", "select".
        max_steps: draw the cap on the return as a dotted line (None: no line).

    Returns:
        A Figure with one Axes (log x).
    """
    if not trials:
        raise ValueError("trials: expected at least one trial, got none")
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    for select, marker in (("mean", "o"), ("best", "s")):
        mine = [t for t in trials if t.get("select", "mean") == select]
        if mine:
            ax.scatter([t["ms_per_decision"] for t in mine], [t["return"] for t in mine],
                       marker=marker, s=30, color="C0" if select == "mean" else "C1",
                       alpha=0.6, label=f'select="{select}"')
    for trial in trials:
        ax.annotate(f"H={trial['horizon']}, N={trial['candidates']}",
                    (trial["ms_per_decision"], trial["return"]), textcoords="offset points",
                    xytext=(4, 3), fontsize=7, color="0.35")
    latest = trials[-1]
    ax.scatter([latest["ms_per_decision"]], [latest["return"]], s=140, facecolors="none",
               edgecolors="k", lw=1.5, label="latest", zorder=5)
    if max_steps is not None:
        ax.axhline(max_steps, color="0.2", ls=":", lw=1.2, label=f"cap: {max_steps} steps")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("milliseconds per decision (log)")
    ax.set_ylabel("return")
    ax.set_ylim(bottom=0, top=1.12 * max([max_steps or 0, *(t["return"] for t in trials)]))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def planner_explorer(model: Any, env: gym.Env, horizon: int = 20, candidates: int = 100,
                     max_horizon: int = 40,
                     candidate_options: Sequence[int] = (5, 10, 20, 50, 100, 200, 500),
                     max_steps: int = 200, seed: int = 0) -> Explorer:
    """Random-shooting MPC with sliders for horizon and candidates and a mean/best toggle.

    Every change runs `diagnostics.planner_trial` (one episode capped at `max_steps`) and adds
    a point to a figure of return against thinking time, so the trade-off builds up as you
    explore.

    Returns:
        An Explorer with controls {"horizon", "candidates", "select"}; `.data["trials"]` holds every
        trial so far (dicts with return, ms_per_decision, horizon, candidates, select).
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
    trials: list[dict[str, Any]] = []

    def render(horizon: int, candidates: int, select: str) -> tuple[Figure, str]:
        result = planner_trial(model, env, horizon, candidates, seed, max_steps, select)
        trials.append({**result, "horizon": horizon, "candidates": candidates,
                       "select": select})
        text = (f"H = {horizon}, N = {candidates}, select = \"{select}\": return "
                f"<b>{result['return']:.0f}</b> of {max_steps} possible, "
                f"<b>{result['ms_per_decision']:.1f} ms</b> per decision")
        return draw_trials(trials, max_steps), text

    controls = {
        "horizon": _slider("horizon H", horizon, 1, max_horizon),
        "candidates": widgets.SelectionSlider(
            options=options, value=candidates, description="candidates N",
            continuous_update=False, style={"description_width": "initial"}),
        "select": widgets.ToggleButtons(options=["mean", "best"], value="mean",
                                        description="select", style={"button_width": "60px"}),
    }
    return Explorer(controls, render, title="Planning: how far and how many?",
                    data={"trials": trials})
