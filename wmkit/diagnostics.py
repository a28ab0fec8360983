"""Diagnostics: how good is a world model's imagination, and what makes it good?

- `split_episodes` / `longest_episode`: real episodes out of a buffer (via `is_first` and the
  terminated / truncated flags), so imagination can be compared with what really happened.
- `open_loop`: one real trajectory and the model's open-loop dream from the same start under
  the same actions.
- `compounding_error`: the same comparison from many starts at once (one batched `imagine`),
  as the error against the number of steps predicted ahead.
- `normalisation_ablation`: what normalising inputs and predicting the *change* buy, by
  training small variants of the MLP side by side.
- `planner_trial`: one short, capped episode of a planner, with its return and the time each
  decision took (what the planning sliders show).

Errors are mean squared errors per observation dimension in units of that dimension's std,
like `wmkit.one_step_error`, so horizon 1 of `compounding_error` is the one-step error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from matplotlib.figure import Figure

from .buffer import NormStats, ReplayBuffer
from .models.base import Rollout, TerminationFn, rollout_by_predict
from .models.mlp import MLPWorldModel
from .planners.shooting import RandomShooting, Select
from .spaces import ActionSpec
from .train import fit, one_step_error
from .utils import check_positive_int, seed_everything

EpisodeData = dict[str, torch.Tensor]
"""One real episode: the buffer's fields for its T transitions.

obs (T, D), action (T,) or (T, A), reward (T,), next_obs (T, D), terminated (T,),
truncated (T,), is_first (T,). Its T + 1 observations are `episode_observations(episode)`.
"""

__all__ = [
    "ABLATION_VARIANTS", "AblationMLP", "AblationResult", "EpisodeData", "compounding_error",
    "episode_observations", "first_transitions", "longest_episode", "normalisation_ablation",
    "open_loop", "plot_ablation", "planner_trial", "split_episodes", "valid_starts",
]


# --------------------------------------------------------------------------- real episodes


def _check_buffer(buffer: Any, name: str = "buffer") -> ReplayBuffer:
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"{name}: expected a ReplayBuffer, got {type(buffer).__name__}")
    if len(buffer) == 0:
        raise ValueError(f"{name}: is empty; collect some transitions first (wm.collect)")
    return buffer


def _episode_bounds(buffer: ReplayBuffer) -> list[tuple[int, int]]:
    """[(first, stop)] buffer indices of each episode, `stop` exclusive, in buffer order.

    An episode starts where `is_first` is set and runs up to the next start. The buffer already
    sets `is_first` after every terminated or truncated step, so both flags are respected.
    """
    firsts = buffer.tensors()["is_first"].nonzero().flatten().tolist()
    stops = firsts[1:] + [len(buffer)]
    return list(zip(firsts, stops, strict=True))


def split_episodes(buffer: ReplayBuffer) -> list[EpisodeData]:
    """The buffer cut into its episodes (the last one may be unfinished), in buffer order."""
    _check_buffer(buffer)
    data = buffer.tensors()
    return [{k: v[first:stop] for k, v in data.items()} for first, stop in _episode_bounds(buffer)]


def longest_episode(buffer: ReplayBuffer) -> EpisodeData:
    """The episode with the most transitions (the first of them on a tie)."""
    return max(split_episodes(buffer), key=lambda episode: len(episode["obs"]))


def episode_observations(episode: EpisodeData) -> torch.Tensor:
    """(T + 1, D): the T observations the actions were taken in, then the last next_obs."""
    _check_episode(episode)
    return torch.cat([episode["obs"], episode["next_obs"][-1:]])


def _check_episode(episode: Any, name: str = "episode") -> EpisodeData:
    needed = ("obs", "action", "next_obs")
    if not isinstance(episode, dict) or any(key not in episode for key in needed):
        raise ValueError(f"{name}: expected a ReplayBuffer or an episode dict with keys "
                         f"{needed} (see split_episodes), got {type(episode).__name__}")
    if len(episode["obs"]) == 0:
        raise ValueError(f"{name}: has no transitions")
    return episode


def first_transitions(buffer: ReplayBuffer, n: int) -> ReplayBuffer:
    """A new buffer holding the first `n` transitions of `buffer` (to train on less data)."""
    _check_buffer(buffer)
    n = check_positive_int("n", n)
    if n > len(buffer):
        raise ValueError(f"n: expected at most len(buffer) = {len(buffer)}, got {n}")
    subset = ReplayBuffer(buffer.obs_dim, buffer.action_spec, capacity=n)
    rows = buffer[slice(0, n)]
    for i in range(n):
        subset.add(rows["obs"][i], rows["action"][i], float(rows["reward"][i]),
                   rows["next_obs"][i], bool(rows["terminated"][i]), bool(rows["truncated"][i]))
    return subset


# --------------------------------------------------------------------------- open-loop imagination


def _model_device(model: Any) -> torch.device:
    return torch.device(getattr(model, "device", "cpu"))


@torch.no_grad()
def open_loop(model: Any, buffer_or_episode: ReplayBuffer | EpisodeData, start: int,
              horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reality and the model's open-loop dream from the same start under the same actions.

    The model folds in the real observations up to `start` with `filter` (for an MLP the
    belief is just the observation at `start`), then `imagine`s the next `horizon` real actions
    without seeing any further observation: "open loop".

    Args:
        model: a world model (`filter` and `imagine`).
        buffer_or_episode: a ReplayBuffer (then `start` is a buffer index) or one episode from
            `split_episodes` (then `start` is a step of that episode).
        start: where the dream starts; the `horizon` transitions after it must lie in the same
            real episode.
        horizon: H, the number of steps imagined.

    Returns:
        (real, imagined), both (H + 1, D) float tensors on the CPU; row 0 is the start state.
    """
    horizon = check_positive_int("horizon", horizon)
    if isinstance(buffer_or_episode, ReplayBuffer):
        buffer = _check_buffer(buffer_or_episode, "buffer_or_episode")
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
            raise ValueError(f"start: expected an int, got {start!r}")
        if not 0 <= start < len(buffer):
            raise ValueError(f"start: expected a buffer index in [0, {len(buffer)}), got {start}")
        first, stop = next((a, b) for a, b in _episode_bounds(buffer) if a <= start < b)
        episode: EpisodeData = {k: v[first:stop] for k, v in buffer.tensors().items()}
        start = int(start) - first
    else:
        episode = _check_episode(buffer_or_episode, "buffer_or_episode")
    length = len(episode["obs"])
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not (
            0 <= start < length):
        raise ValueError(f"start: expected a step in [0, {length}) of the episode, got {start!r}")
    if start + horizon > length:
        raise ValueError(f"horizon: only {length - start} real steps follow start={start} in "
                         f"this episode, got horizon={horizon}")
    device = _model_device(model)
    observations = episode_observations(episode)
    state, previous_action = None, None
    for t in range(start + 1):  # the belief after seeing the real observations 0..start
        state = model.filter(state, previous_action, observations[t].to(device))
        previous_action = episode["action"][t]
    actions = episode["action"][start:start + horizon].unsqueeze(0).to(device)  # (1, H[, A])
    rollout = model.imagine(state, actions)
    real = observations[start:start + horizon + 1].float()
    return real, rollout.observations[0].detach().float().cpu()


def valid_starts(buffer: ReplayBuffer, horizon: int) -> torch.Tensor:
    """(S,) long: buffer indices followed by at least `horizon` transitions of the same episode."""
    _check_buffer(buffer)
    horizon = check_positive_int("horizon", horizon)
    ranges = [torch.arange(first, stop - horizon + 1) for first, stop in _episode_bounds(buffer)
              if stop - first >= horizon]
    return torch.cat(ranges) if ranges else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def compounding_error(model: Any, buffer: ReplayBuffer, horizon: int,
                      starts: torch.Tensor | list[int] | None = None) -> torch.Tensor:
    """Open-loop error at 1..H steps ahead, from many real start states at once.

    From each start the model imagines the real actions that followed (one batched `imagine`
    call with N = number of starts) and is compared with the real observations. Errors are
    mean squared errors over dimensions, each in units of the buffer's observation std, so
    column 0 is the one-step error of `wmkit.one_step_error` on those transitions.

    The start state is given to `imagine` as the observation itself, which is right for models
    whose belief is the observation (MLP, ensemble, TrueCartPole).

    Args:
        model: a world model whose `imagine` accepts a batch of start states (N, D).
        buffer: real transitions, e.g. held-out data the model was not trained on.
        horizon: H, the most steps predicted ahead.
        starts: (S,) buffer indices to start from, each followed by >= H transitions of its
            episode; default every such index (`valid_starts(buffer, horizon)`).

    Returns:
        (S, H) float tensor on the CPU: errors[s, h - 1] is the error h steps after start s.
    """
    _check_buffer(buffer)
    horizon = check_positive_int("horizon", horizon)
    allowed = valid_starts(buffer, horizon)
    if starts is None:
        starts_t = allowed
        if len(starts_t) == 0:
            raise ValueError(f"horizon: no episode in the buffer has {horizon} transitions; "
                             "use a shorter horizon or longer episodes")
    else:
        try:
            starts_t = torch.as_tensor(starts, dtype=torch.long).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"starts: expected buffer indices, got {starts!r}") from error
        if len(starts_t) == 0:
            raise ValueError("starts: expected at least one buffer index, got none")
        bad = starts_t[~torch.isin(starts_t, allowed)]
        if len(bad):
            raise ValueError(f"starts: index {int(bad[0])} is not followed by {horizon} "
                             "transitions of its episode (see valid_starts)")
    data = buffer.tensors()
    # Row s, column t is transition starts[s] + t: H real steps after each start.
    steps = starts_t[:, None] + torch.arange(horizon)[None, :]
    real = torch.cat([data["obs"][starts_t, None], data["next_obs"][steps]], dim=1)
    device = _model_device(model)
    rollout = model.imagine(data["obs"][starts_t].to(device), data["action"][steps].to(device))
    imagined = rollout.observations.detach().float().cpu()
    scale = data["obs"].std(0, correction=0).clamp_min(1e-6)
    return (((imagined[:, 1:] - real[:, 1:]) / scale) ** 2).mean(-1)


# ----------------------------------------------------------------------- what normalisation buys


class AblationMLP(MLPWorldModel):
    """`MLPWorldModel` with its two design choices made switchable, to see what each buys.

    Args:
        normalise: standardise inputs and targets with the buffer's statistics (wmkit's
            default); False feeds and predicts raw numbers.
        predict_delta: predict the change in observation (wmkit's default); False predicts the
            next observation itself, so "nothing changes" has to be learned as an identity map.

    Rewards and terminations are handled exactly as in `MLPWorldModel`: only the observation
    part differs.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, normalise: bool = True,
                 predict_delta: bool = True, **kwargs: Any) -> None:
        super().__init__(obs_dim, action_spec, **kwargs)
        self.normalise, self.predict_delta = bool(normalise), bool(predict_delta)

    def set_normalizer(self, stats: NormStats) -> None:
        super().set_normalizer(stats)
        if not self.normalise:  # identity statistics: raw numbers in, raw numbers out
            for name in ("obs_mean", "delta_mean"):
                getattr(self, name).zero_()
            for name in ("obs_std", "delta_std"):
                getattr(self, name).fill_(1.0)

    def obs_target(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The change (wmkit's choice), or without predict_delta the next obs itself."""
        if self.predict_delta:
            return super().obs_target(obs, next_obs)
        return (next_obs - self.obs_mean) / self.obs_std

    def next_obs(self, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The inverse of `obs_target`."""
        if self.predict_delta:
            return super().next_obs(obs, out)
        return out * self.obs_std + self.obs_mean

    def imagine(self, state: torch.Tensor, actions: torch.Tensor,
                termination_fn: TerminationFn | None = None) -> Rollout:
        """Steps `predict` (`MLPWorldModel.imagine`'s folded fast path assumes predict_delta)."""
        return rollout_by_predict(self, state, actions, termination_fn)


ABLATION_VARIANTS: dict[str, dict[str, bool]] = {
    "raw → next obs": {"normalise": False, "predict_delta": False},
    "raw → change": {"normalise": False, "predict_delta": True},
    "normalised → next obs": {"normalise": True, "predict_delta": False},
    "normalised → change (wmkit)": {"normalise": True, "predict_delta": True},
}
"""label -> AblationMLP switches, from the plainest model to wmkit's."""


@dataclass
class AblationResult:
    """What `normalisation_ablation` measured, per variant label (see ABLATION_VARIANTS).

    one_step: held-out one-step error per variant; no_change: the "nothing changes" guess's
    error; compounding: (S, H) open-loop errors per variant; models: the trained variants.
    """

    one_step: dict[str, float]
    no_change: float
    compounding: dict[str, torch.Tensor] = field(default_factory=dict)
    models: dict[str, AblationMLP] = field(default_factory=dict)


def normalisation_ablation(buffer: ReplayBuffer, heldout: ReplayBuffer, epochs: int = 20,
                           hidden: int = 64, horizon: int = 10, seed: int = 0,
                           variants: dict[str, dict[str, bool]] | None = None,
                           progress: bool = False) -> AblationResult:
    """Train one small model per variant on `buffer` and score each on `heldout`.

    Every variant gets the same seed, data, width and epochs: only normalisation and the
    prediction target differ. With the defaults this takes a few seconds on one core.

    Args:
        buffer: training transitions. heldout: transitions to score on (not trained on).
        epochs, hidden: training length and width of every variant.
        horizon: H for the open-loop `compounding_error` of each variant.
        seed: seeds each variant's initialisation and batches.
        variants: label -> `AblationMLP` keyword switches; default `ABLATION_VARIANTS`.
        progress: show a progress bar over variants.

    Returns:
        An AblationResult (one_step errors, the no-change error, (S, H) compounding errors).
    """
    from tqdm.auto import tqdm

    _check_buffer(buffer)
    _check_buffer(heldout, "heldout")
    variants = dict(ABLATION_VARIANTS if variants is None else variants)
    if not variants:
        raise ValueError("variants: expected at least one variant, got none")
    result = AblationResult(one_step={}, no_change=float("nan"))
    for label, switches in tqdm(variants.items(), desc="ablation", disable=not progress):
        seed_everything(seed)  # the same initial weights wherever the shapes agree
        model = AblationMLP(buffer.obs_dim, buffer.action_spec, hidden=hidden, device="cpu",
                            **switches)
        fit(model, buffer, epochs=epochs, seed=seed, progress=False)
        errors = one_step_error(model, heldout)
        result.one_step[label], result.no_change = errors["model"], errors["no_change"]
        result.compounding[label] = compounding_error(model, heldout, horizon)
        result.models[label] = model
    return result


def plot_ablation(result: AblationResult, fig: Figure | None = None) -> Figure:
    """Left: held-out one-step error per variant vs "nothing changes". Right: error vs horizon.

    Args:
        result: from `normalisation_ablation`.
        fig: Figure to draw into (cleared first); a new 11 x 3.6 in one if None.

    Returns:
        The Figure with two Axes.
    """
    from . import viz  # matplotlib-heavy; only needed when drawing

    if not isinstance(result, AblationResult) or not result.one_step:
        raise ValueError("result: expected an AblationResult from normalisation_ablation")
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 3.6), layout="constrained")
    else:
        fig.clear()
    bars_ax, curve_ax = fig.subplots(1, 2, width_ratios=[1, 1])
    labels = list(result.one_step)
    values = [result.one_step[label] for label in labels]
    colors = [f"C{i}" for i in range(len(labels))]
    positions = np.arange(len(labels))
    bars_ax.barh(positions, values, color=colors, alpha=0.8)
    for y, value in zip(positions, values, strict=True):
        bars_ax.text(value * 1.15, y, f"{value:.1e}", va="center", fontsize=8)
    bars_ax.axvline(result.no_change, color="0.2", ls=":", lw=1.5,
                    label=f'"nothing changes": {result.no_change:.1e}')
    bars_ax.set_yticks(positions, labels)
    bars_ax.invert_yaxis()  # first variant on top, reading order
    bars_ax.set_xscale("log")
    low = min([*values, result.no_change])
    bars_ax.set_xlim(low / 3, max([*values, result.no_change]) * 8)
    bars_ax.set_xlabel("held-out one-step error (log; lower is better)")
    bars_ax.legend(fontsize=8, loc="lower right")
    bars_ax.grid(True, axis="x", which="major", alpha=0.3)
    if result.compounding:
        viz.plot_compounding_error(result.compounding, ax=curve_ax,
                                   ylabel="open-loop error (log)")
        curve_ax.set_title("imagining further ahead", fontsize=10)
    else:
        curve_ax.set_visible(False)
    bars_ax.set_title("one step ahead", fontsize=10)
    return fig


# --------------------------------------------------------------------------- planning, timed


def planner_trial(model: Any, env: gym.Env, horizon: int = 20, candidates: int = 100,
                  seed: int = 0, max_steps: int = 200, select: Select = "mean"
                  ) -> dict[str, float]:
    """One episode of random-shooting MPC with `model`, stopped after `max_steps` real steps.

    Short and capped so that a slider move answers in a second or two. The env is reset with
    `seed` and the planner's sampling is seeded with it, so a trial is repeatable (the timing
    is not: it depends on the machine and on what else runs).

    Returns:
        {"return": total reward, "steps": real steps taken, "ms_per_decision": mean wall-clock
        milliseconds per planner call, "ended": 1.0 if the episode ended (pole fell or time
        limit) before max_steps, else 0.0}.
    """
    max_steps = check_positive_int("max_steps", max_steps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    planner = RandomShooting(model, horizon=horizon, candidates=candidates, select=select,
                             seed=int(seed))
    obs, _ = env.reset(seed=int(seed))
    total, thinking, steps, ended = 0.0, 0.0, 0, False
    while steps < max_steps and not ended:
        tic = time.perf_counter()
        action = planner(obs)
        thinking += time.perf_counter() - tic
        obs, reward, terminated, truncated, _ = env.step(action)
        total, steps, ended = total + float(reward), steps + 1, terminated or truncated
    return {"return": total, "steps": float(steps), "ms_per_decision": 1000 * thinking / steps,
            "ended": float(ended)}
