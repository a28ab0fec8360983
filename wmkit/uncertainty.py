"""Uncertainty, measured: does an ensemble know what it does not know?

- `prediction_error` / `error_vs_disagreement`: real one-step errors next to the members'
  disagreement, and how well one ranks the other (`spearman`, no scipy needed);
- `shift_velocities`: off-distribution transitions with exact next states, to ask the same
  question away from the data;
- `calibration` / `reliability_curve` / `plot_reliability`: are predicted 50% / 90% intervals
  right 50% / 90% of the time?
- `SurpriseDetector` and `adapt_on_surprise`: notice that the world changed (prediction errors
  jump) and refit on the new data;
- `EnsembleSizeExplorer` and `RiskExplorer`: the widgets of notebook 04 (their callbacks are
  plain methods, so tests can drive them by setting `slider.value`).

Errors and disagreement are in the same units: the buffer's std of the one-step change of each
observation dimension (the units the networks predict in), averaged over dimensions. "1" means
"off by a typical one-step change".
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .models.ensemble import EnsembleWorldModel
from .models.true_cartpole import TrueCartPole
from .train import fit
from .utils import check_positive_int

Transitions = ReplayBuffer | dict[str, torch.Tensor]
"""A ReplayBuffer, or a dict with "obs" (B, D), "action" (B[, A]) and "next_obs" (B, D)."""


def _transitions(data: Transitions, device: torch.device, name: str = "data"
                 ) -> dict[str, torch.Tensor]:
    if isinstance(data, ReplayBuffer):
        if len(data) == 0:
            raise ValueError(f"{name}: is empty; collect some transitions first (wm.collect)")
        return data.tensors(device)
    if not isinstance(data, dict) or not {"obs", "action", "next_obs"} <= set(data):
        raise ValueError(f"{name}: expected a ReplayBuffer or a dict with 'obs', 'action' and "
                         f"'next_obs', got {type(data).__name__}")
    if not len(data["obs"]) == len(data["action"]) == len(data["next_obs"]) > 0:
        raise ValueError(f"{name}: 'obs', 'action' and 'next_obs' need the same non-zero length")
    return {key: torch.as_tensor(value).to(device) for key, value in data.items()}


def _check_model(model: Any, name: str = "model") -> None:
    if not hasattr(model, "predict") or not hasattr(model, "delta_std"):
        raise ValueError(f"{name}: expected a fitted world model (MLPWorldModel or "
                         f"EnsembleWorldModel), got {type(model).__name__}")


# ------------------------------------------------------------------ errors and disagreement


@torch.no_grad()
def prediction_error(model: Any, obs: torch.Tensor, action: torch.Tensor,
                     next_obs: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the model's one-step error on real transitions: obs (B, D), action (B[, A]),
    next_obs (B, D) -> root mean square over dims of (predicted - real) / scale.

    `scale` (D,) defaults to the model's delta_std. Pass a fixed one to compare errors across
    refits: each `fit` copies new statistics into the model, which changes its delta_std.
    For an ensemble the prediction is the members' mean.
    """
    _check_model(model)
    predicted, _, _ = model.predict(obs, action)
    scale = model.delta_std if scale is None else scale
    return (((predicted - next_obs) / scale) ** 2).mean(dim=-1).sqrt()


@torch.no_grad()
def surprise(model: Any, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor,
             floor: float = 0.01) -> torch.Tensor:
    """(B,) how much more wrong the model was than it expected to be, on real transitions.

    For an ensemble: prediction_error / (disagreement + floor). The raw error is larger in
    rare states (fast, near failure) even when nothing changed, but there the members also
    disagree more, so the ratio stays level until the world itself changes. `floor` (in
    delta-std units) keeps states where the members agree exactly from dividing by ~0.
    For a model without members this is the plain `prediction_error`.
    """
    if not floor > 0:
        raise ValueError(f"floor: expected a positive float, got {floor!r}")
    error = prediction_error(model, obs, action, next_obs)
    if not isinstance(model, EnsembleWorldModel):
        return error
    return error / (model.disagreement(obs, action) + floor)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of `values` (n,), ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, x in (("a", a), ("b", b)):
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        x = x.astype(float).reshape(-1)
        if not np.isfinite(x).all():
            raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
        arrays.append(x)
    if len(arrays[0]) != len(arrays[1]) or len(arrays[0]) < 2:
        raise ValueError(f"a, b: expected two sequences of the same length >= 2, got "
                         f"{len(arrays[0])} and {len(arrays[1])}")
    return arrays[0], arrays[1]


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equally long sequences (n,); NaN if one is constant."""
    x, y = _paired(a, b)
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / norm) if norm > 0 else float("nan")


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (n,), (n,) -> [-1, 1]: the Pearson correlation of the ranks.

    1 means "the larger a, the larger b", whatever the shape of the relation. Ties share their
    average rank (as scipy.stats.spearmanr does). NaN if one sequence is constant.
    """
    x, y = _paired(a, b)
    return pearson(_ranks(x), _ranks(y))


@dataclass
class ErrorCorrelation:
    """How well the members' disagreement predicts the real one-step error on some data."""

    spearman: float
    pearson: float
    mean_error: float
    mean_disagreement: float
    errors: torch.Tensor  # (B,)
    disagreements: torch.Tensor  # (B,)

    def __repr__(self) -> str:
        return (f"ErrorCorrelation(spearman={self.spearman:.3f}, pearson={self.pearson:.3f}, "
                f"mean_error={self.mean_error:.4f}, mean_disagreement={self.mean_disagreement:.4f}"
                f", n={len(self.errors)})")


@torch.no_grad()
def error_vs_disagreement(model: EnsembleWorldModel, data: Transitions) -> ErrorCorrelation:
    """Real one-step error and members' disagreement on every transition of `data` (B rows)."""
    if not isinstance(model, EnsembleWorldModel):
        raise ValueError(f"model: expected an EnsembleWorldModel, got {type(model).__name__}")
    d = _transitions(data, model.device)
    errors = prediction_error(model, d["obs"], d["action"], d["next_obs"]).cpu()
    disagreements = model.disagreement(d["obs"], d["action"]).cpu()
    return ErrorCorrelation(spearman(disagreements, errors), pearson(disagreements, errors),
                            float(errors.mean()), float(disagreements.mean()), errors,
                            disagreements)


def shift_velocities(data: Transitions, scale: float | tuple[float, float],
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """CartPole transitions moved off the data: velocities (dims 1 and 3) multiplied by `scale`.

    `scale` is one factor or a (low, high) range drawn uniformly per row. The next states are
    exact (gymnasium's equations, via `TrueCartPole`), so the model's error there is real.
    Returns a dict with "obs" (B, 4), "action" (B,), "next_obs" (B, 4) and "scale" (B,).
    """
    d = _transitions(data, torch.device("cpu"))
    if d["obs"].shape[-1] != 4:
        raise ValueError(f"data: expected CartPole observations (B, 4), got "
                         f"{tuple(d['obs'].shape)}")
    low, high = (scale, scale) if isinstance(scale, (int, float)) else scale
    if not 0 < low <= high:
        raise ValueError(f"scale: expected a positive factor or a (low, high) range, got {scale}")
    generator = torch.Generator().manual_seed(seed)
    factor = low + (high - low) * torch.rand(len(d["obs"]), generator=generator)
    obs = d["obs"].clone()
    obs[:, [1, 3]] *= factor[:, None]
    true = TrueCartPole(device="cpu")
    next_obs = true.step(obs.double(), d["action"]).float()
    return {"obs": obs, "action": d["action"], "next_obs": next_obs, "scale": factor}


def biased_policy(prob_right: float = 0.8, seed: int = 0) -> Callable[[Any], int]:
    """A CartPole policy unlike the random one: push right with probability `prob_right`.

    Its states have larger cart velocities than uniformly random play: off-policy data.
    """
    if not 0 <= prob_right <= 1:
        raise ValueError(f"prob_right: expected a probability in [0, 1], got {prob_right!r}")
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.random() < prob_right)


# ----------------------------------------------------------------------------- calibration


@torch.no_grad()
def predictive_distribution(model: EnsembleWorldModel, obs: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensemble's Gaussian prediction of the normalised change in obs: mean, var (B, D).

    The members form a mixture; its mean is the mean of the members' means and its variance
    is the mean of their variances (aleatoric, 0 without Gaussian heads) plus the variance of
    their means (epistemic: the disagreement).
    """
    members = model.predict_members(obs, action)
    mean = members.delta.mean(0)
    var = members.delta.var(0, correction=0)
    if members.delta_logvar is not None:
        var = var + members.delta_logvar.exp().mean(0)
    return mean, var


@dataclass
class Calibration:
    """Gaussian NLL per dimension (normalised units) and the coverage of central intervals:
    coverage[p] is the fraction of real changes inside the predicted central p-interval."""

    nll: float
    coverage: dict[float, float]


def _standardised(model: EnsembleWorldModel, data: Transitions
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(model, EnsembleWorldModel):
        raise ValueError(f"model: expected an EnsembleWorldModel, got {type(model).__name__}")
    d = _transitions(data, model.device)
    mean, var = predictive_distribution(model, d["obs"], d["action"])
    target = (d["next_obs"] - d["obs"] - model.delta_mean) / model.delta_std
    var = var.clamp_min(1e-8)  # a deterministic ensemble of one member has zero variance
    return (target - mean) / var.sqrt(), var


def _check_levels(levels: Sequence[float]) -> torch.Tensor:
    levels_t = torch.as_tensor(list(levels), dtype=torch.float64)
    if levels_t.dim() != 1 or len(levels_t) == 0 or not ((levels_t > 0) & (levels_t < 1)).all():
        raise ValueError(f"levels: expected probabilities strictly between 0 and 1, got {levels}")
    return levels_t


def calibration(model: EnsembleWorldModel, data: Transitions,
                levels: Sequence[float] = (0.5, 0.9)) -> Calibration:
    """NLL and interval coverage of the ensemble's predictive Gaussian on `data`.

    A calibrated model has coverage[p] close to p; below p means over-confident (intervals
    too narrow), above p under-confident. Without Gaussian heads only the members' spread is
    left, which is usually far too narrow on the data it was trained on.
    """
    levels_t = _check_levels(levels)
    z, var = _standardised(model, data)
    nll = 0.5 * (torch.log(2 * math.pi * var) + z**2)
    coverage = zip(levels_t.tolist(), _coverage(z, levels_t), strict=True)
    return Calibration(float(nll.mean()), {float(p): c for p, c in coverage})


def _coverage(z: torch.Tensor, levels: torch.Tensor) -> list[float]:
    # A central p-interval is |z| <= Phi^-1((1 + p) / 2).
    half_widths = torch.special.ndtri((1 + levels) / 2).to(z.device)
    inside = z.abs().double().unsqueeze(-1) <= half_widths
    return inside.float().mean(dim=tuple(range(z.dim()))).tolist()


def reliability_curve(model: EnsembleWorldModel, data: Transitions,
                      levels: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed): for each nominal level p (L,), the observed coverage (L,) of the
    predicted central p-interval, over all rows and dimensions of `data`."""
    levels_t = _check_levels(np.linspace(0.05, 0.95, 19) if levels is None else levels)
    z, _ = _standardised(model, data)
    return levels_t.numpy(), np.array(_coverage(z, levels_t))


def plot_reliability(expected: Any, observed: Any, ax: Axes | None = None,
                     label: str | None = None) -> Axes:
    """Reliability diagram: observed vs expected coverage; the diagonal is perfect calibration.

    Below the diagonal: over-confident. Returns the Axes (never calls plt.show()).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    if "calibrated" not in [line.get_label() for line in ax.lines]:  # one diagonal per Axes
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    ax.plot(np.asarray(expected), np.asarray(observed), marker="o", label=label)
    ax.set(xlabel="predicted interval (nominal coverage)", ylabel="observed coverage",
           xlim=(0, 1), ylim=(0, 1), aspect="equal")
    ax.legend(loc="upper left")
    return ax


# ---------------------------------------------------------------------------------- surprise


class SurpriseDetector:
    """Flags a change in the dynamics from a stream of per-step surprises (or errors).

    Each new value gets a z-score against a running window of the last `window` unsurprising
    values: z = (value - mean) / (std + min_std). After `warmup` values, `patience` consecutive
    z-scores above `threshold` fire the detector. Surprising values are kept out of the window,
    so a lasting change cannot quietly become the new normal. Call `reset()` after a refit:
    the refitted model's values make a new normal.

    Feed it `surprise(...)` rather than the raw error: raw one-step errors come in bursts in
    rare states (near failure), which look like changes; errors relative to the ensemble's
    disagreement do not. Measured on CartPole (5 Gaussian members of 2 x 64 fitted on 2,000
    random steps, random play, pole half-length 0.5 -> 1.0 at step 300, seeds 10-21): with the
    defaults, the surprise fired 1 step after the change on 11 of 12 seeds (23 steps on the
    12th) and never before it; the raw error missed the change on 3 seeds and fired early on 1.

    Args:
        window: how many past errors define "normal".
        threshold: z-score above which an error is surprising.
        patience: consecutive surprising errors needed to fire (1 = fire at once); a single
            odd transition (e.g. a rare state) then does not trigger a refit.
        warmup: errors to see before the detector may fire.
        min_std: floor on the window's std, so a very regular stream cannot make tiny
            deviations look huge.
    """

    def __init__(self, window: int = 100, threshold: float = 6.0, patience: int = 2,
                 warmup: int = 30, min_std: float = 1e-3) -> None:
        self.window = check_positive_int("window", window)
        if not threshold > 0:
            raise ValueError(f"threshold: expected a positive float, got {threshold!r}")
        self.threshold = float(threshold)
        self.patience = check_positive_int("patience", patience)
        self.warmup = check_positive_int("warmup", warmup)
        if not min_std > 0:
            raise ValueError(f"min_std: expected a positive float, got {min_std!r}")
        self.min_std = float(min_std)
        self.steps = 0
        self.fired_at: list[int] = []
        self.reset()

    def reset(self) -> None:
        """Forget what normal looks like (call after refitting the model)."""
        self._normal: deque[float] = deque(maxlen=self.window)
        self._streak = 0

    def score(self, value: float) -> float:
        """z-score of `value` against the window (0 while fewer than `warmup` values seen)."""
        if len(self._normal) < self.warmup:
            return 0.0
        normal = np.fromiter(self._normal, float)
        return float((value - normal.mean()) / (normal.std() + self.min_std))

    def update(self, value: float) -> bool:
        """Feed one step's surprise (or error); True when the detector fires."""
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"value: expected a finite float >= 0, got {value!r}")
        z = self.score(value)
        self.steps += 1
        if z > self.threshold:
            self._streak += 1
        else:
            self._streak = 0
            self._normal.append(value)
        if self._streak >= self.patience:
            self.fired_at.append(self.steps - 1)
            self._streak = 0
            return True
        return False


@dataclass
class SurpriseLog:
    """What `adapt_on_surprise` saw, step by step (step i = the i-th real transition).

    errors: one-step prediction error of each real transition (in units of the model's delta
    std at the start, so they compare across refits); surprises: what the detector
    was fed (`surprise`); scores: the detector's z-score; fired: steps at which the detector
    fired and new data started; refits: steps after which the model was refitted;
    returns: (step at which an episode ended, its return).
    """

    errors: list[float] = field(default_factory=list)
    surprises: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)
    refits: list[int] = field(default_factory=list)
    returns: list[tuple[int, float]] = field(default_factory=list)


def adapt_on_surprise(env: gym.Env, model: Any, steps: int, detector: SurpriseDetector,
                      agent: Callable[[Any], Any] | None = None, refit_after: int = 100,
                      refits: int = 2, epochs: int = 30, seed: int = 0,
                      progress: bool = True) -> SurpriseLog:
    """Act for `steps` real steps; when the detector fires, refit the model on new data.

    At each step the model's `surprise` at the real transition goes to `detector`. When it
    fires, a fresh buffer starts (data from before the change describes a world that is gone);
    each time it has grown by `refit_after` transitions the model is refitted on all of it
    (warm-started, `epochs` epochs) and the detector is reset, `refits` times in all. Then the
    model is left alone until the detector fires again. `agent` (obs -> action, e.g. a
    RandomShooting planner on `model`) acts; None acts at random.
    """
    steps = check_positive_int("steps", steps)
    refit_after = check_positive_int("refit_after", refit_after)
    refits = check_positive_int("refits", refits)
    if not isinstance(detector, SurpriseDetector):
        raise ValueError(f"detector: expected a SurpriseDetector, got {type(detector).__name__}")
    _check_model(model)
    log = SurpriseLog()
    scale = model.delta_std.clone()  # fixed units: a refit changes the model's statistics
    new_data: ReplayBuffer | None = None
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    _reset(agent)
    episode_return = 0.0
    for step in tqdm(range(steps), desc="adapt", disable=not progress, leave=False):
        action = env.action_space.sample() if agent is None else agent(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        row = [torch.as_tensor(x, device=model.device)[None] for x in (obs, action, next_obs)]
        log.errors.append(float(prediction_error(model, *row, scale=scale)[0]))
        log.surprises.append(float(surprise(model, *row)[0]))
        log.scores.append(detector.score(log.surprises[-1]))
        if detector.update(log.surprises[-1]) and new_data is None:
            log.fired.append(step)
            new_data = ReplayBuffer.for_env(env, capacity=refit_after * refits)
        if new_data is not None:
            new_data.add(obs, action, float(reward), next_obs, terminated, truncated)
            if len(new_data) % refit_after == 0:
                fit(model, new_data, epochs=epochs, seed=seed + step, progress=False)
                log.refits.append(step)
                detector.reset()
                _reset(agent)  # the planner's belief came from the old model
                if len(new_data) >= refit_after * refits:
                    new_data = None
        obs, episode_return = next_obs, episode_return + float(reward)
        if terminated or truncated:
            log.returns.append((step, episode_return))
            obs, _ = env.reset()
            _reset(agent)
            episode_return = 0.0
    return log


def _reset(agent: Any) -> None:
    if agent is not None and hasattr(agent, "reset"):
        agent.reset()


def plot_surprise(log: SurpriseLog, change_at: int | None = None) -> Figure:
    """Two panels over real steps: the one-step error, and the surprise the detector sees,
    with the dynamics change, the detections and the refits marked. Returns the Figure."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True, layout="constrained")
    top.semilogy(np.maximum(log.errors, 1e-6), linewidth=0.8)
    top.set(ylabel="one-step error")
    bottom.semilogy(np.maximum(log.surprises, 1e-6), linewidth=0.8, color="tab:purple")
    bottom.set(xlabel="real step", ylabel="surprise")
    for ax in (top, bottom):
        if change_at is not None:
            ax.axvline(change_at, color="black", linestyle="--", label="dynamics change")
        for i, step in enumerate(log.fired):
            ax.axvline(step, color="tab:red", label="detector fires" if i == 0 else None)
        for i, step in enumerate(log.refits):
            ax.axvline(step, color="tab:green", label="refit" if i == 0 else None)
    top.legend(loc="upper left", fontsize="small")
    return fig


# ------------------------------------------------------------------------ figures and widgets


@torch.no_grad()
def disagreement_grid(model: EnsembleWorldModel, x_dim: int = 2, y_dim: int = 3,
                      x_range: tuple[float, float] = (-0.6, 0.6),
                      y_range: tuple[float, float] = (-6.0, 6.0), resolution: int = 41,
                      action: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members' disagreement on a grid over two observation dims, the others held at 0.

    Returns xs (R,), ys (R,) and disagreement (R, R) indexed [y, x].
    """
    if not isinstance(model, EnsembleWorldModel):
        raise ValueError(f"model: expected an EnsembleWorldModel, got {type(model).__name__}")
    for name, dim in (("x_dim", x_dim), ("y_dim", y_dim)):
        if not 0 <= dim < model.obs_dim:
            raise ValueError(f"{name}: expected a dimension in [0, {model.obs_dim}), got {dim}")
    resolution = check_positive_int("resolution", resolution)
    xs, ys = torch.linspace(*x_range, resolution), torch.linspace(*y_range, resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    obs = torch.zeros(resolution * resolution, model.obs_dim)
    obs[:, x_dim], obs[:, y_dim] = grid_x.reshape(-1), grid_y.reshape(-1)
    actions = torch.full((len(obs),), action, dtype=torch.long)
    values = model.disagreement(obs.to(model.device), actions.to(model.device))
    return xs.numpy(), ys.numpy(), values.reshape(resolution, resolution).cpu().numpy()


def plot_disagreement_grid(xs: np.ndarray, ys: np.ndarray, values: np.ndarray,
                           data: Transitions | None = None, x_dim: int = 2, y_dim: int = 3,
                           ax: Axes | None = None, vmax: float | None = None) -> Axes:
    """Heat map of `disagreement_grid`'s output, with the training states on top (if given)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4), layout="constrained")
    mesh = ax.pcolormesh(xs, ys, values, shading="auto", cmap="magma", vmin=0, vmax=vmax)
    ax.figure.colorbar(mesh, ax=ax, label="disagreement")
    if data is not None:
        obs = _transitions(data, torch.device("cpu"))["obs"]
        ax.scatter(obs[:, x_dim], obs[:, y_dim], s=2, color="cyan", alpha=0.4,
                   label="training states")
        ax.legend(loc="upper right", fontsize="small")
    names = ("x", "x_dot", "theta", "theta_dot")  # CartPole's; other envs get numbers
    label = [names[i] if i < len(names) else f"obs[{i}]" for i in (x_dim, y_dim)]
    ax.set(xlabel=label[0], ylabel=label[1], xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
    return ax


class EnsembleSizeExplorer:
    """A slider for the number of members: redraws the disagreement map of the first k.

    `result` holds the last drawing's numbers ({"size", "grid", "mean_on_data",
    "mean_off_data"}); `update(size)` is the slider's callback, callable directly.
    """

    def __init__(self, model: EnsembleWorldModel, data: Transitions, off_data: Transitions,
                 resolution: int = 31) -> None:
        if not isinstance(model, EnsembleWorldModel) or model.ensemble_size < 2:
            raise ValueError("model: expected an EnsembleWorldModel with at least 2 members")
        self.model, self.data, self.off_data = model, data, off_data
        self.resolution = check_positive_int("resolution", resolution)
        self.slider = widgets.IntSlider(value=model.ensemble_size, min=2,
                                        max=model.ensemble_size, description="members")
        self.output = widgets.Output()
        self.result: dict[str, Any] = {}
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.update(self.slider.value)

    def update(self, size: int) -> dict[str, Any]:
        """Measure and draw the first `size` members; returns (and keeps) the numbers."""
        members = self.model.subset(size)
        xs, ys, grid = disagreement_grid(members, resolution=self.resolution)
        on = error_vs_disagreement(members, self.data)
        off = error_vs_disagreement(members, self.off_data)
        self.result = {"size": size, "grid": grid, "mean_on_data": on.mean_disagreement,
                       "mean_off_data": off.mean_disagreement, "spearman_off_data": off.spearman}
        self.output.clear_output(wait=True)
        with self.output:
            fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
            plot_disagreement_grid(xs, ys, grid, self.data, ax=ax)
            ax.set_title(f"{size} members: disagreement on data {on.mean_disagreement:.3f}, "
                         f"off data {off.mean_disagreement:.3f}", fontsize="small")
            plt.show()
        return self.result

    def widget(self) -> widgets.Widget:
        """The slider above its figure, ready to display."""
        return widgets.VBox([self.slider, self.output])


class RiskExplorer:
    """A slider for the planner's risk weight: how the chosen plans trade return for agreement.

    From `state`, the planner scores each candidate as imagined return - risk * its summed
    disagreement (summed over the imagined steps it is alive). `result` holds "risk", "action",
    "first_action_scores" and, for the 10% best-scored candidates, "top_return" (imagined
    return), "top_disagreement" (summed, what the penalty sees) and "top_step_disagreement"
    (per alive step). Watch what a large risk does: a candidate that dies early in imagination
    also stops accumulating disagreement, so pessimism can prefer imagined failure.
    """

    def __init__(self, planner: Any, state: Any, max_risk: float = 10.0) -> None:
        if not hasattr(planner, "risk") or not hasattr(planner, "plan"):
            raise ValueError(f"planner: expected a RandomShooting planner, got {planner!r}")
        self.planner = planner
        self.state = planner.model.filter(None, None, state)
        self.slider = widgets.FloatSlider(value=planner.risk, min=0.0, max=float(max_risk),
                                          step=0.1, description="risk")
        self.output = widgets.Output()
        self.result: dict[str, Any] = {}
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.update(self.slider.value)

    def update(self, risk: float) -> dict[str, Any]:
        """Plan from `state` with risk weight `risk` (same candidates every time); draw it."""
        if not risk >= 0:
            raise ValueError(f"risk: expected a float >= 0, got {risk!r}")
        self.planner.risk = float(risk)
        self.planner.reseed(0)  # same candidates: only the scoring changes
        plan = self.planner.plan(self.state)
        rollout = plan.rollout
        alive = rollout.alive.float()
        summed = (rollout.disagreement * alive).sum(1)
        top = plan.candidate_returns.topk(max(1, len(summed) // 10)).indices
        scores = plan.first_action_scores
        self.result = {
            "risk": float(risk), "action": plan.action,
            "first_action_scores": None if scores is None else scores.cpu().numpy(),
            "top_return": float(rollout.returns[top].mean()),
            "top_disagreement": float(summed[top].mean()),
            "top_step_disagreement": float((summed[top] / alive[top].sum(1)).mean()),
        }
        self.output.clear_output(wait=True)
        with self.output:
            fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
            theta = rollout.observations[:, :, 2].cpu().numpy()
            ax.plot(theta.T, color="lightgrey", linewidth=0.5)
            ax.plot(theta[top.cpu().numpy()].T, color="tab:blue", linewidth=0.8)
            ax.set(xlabel="imagined step", ylabel="pole angle (rad)",
                   title=f"risk {risk:.1f}, action {plan.action}: best 10% imagine return "
                         f"{self.result['top_return']:.1f}, disagreement "
                         f"{self.result['top_disagreement']:.2f}")
            ax.title.set_fontsize("small")
            plt.show()
        return self.result

    def widget(self) -> widgets.Widget:
        """The slider above its figure, ready to display."""
        return widgets.VBox([self.slider, self.output])
