"""Fitting a world model, drawn (notebook 01): one-step predictions, how much data a small
model needs (a slider), and what normalising and predicting the change buy."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..analysis.ablation import AblationResult
from ..analysis.data_size import fit_small_model
from ..buffer import ReplayBuffer
from ..models.ensemble import EnsembleWorldModel
from ..models.mlp import MLPWorldModel
from ..train import one_step_error
from ..utils import check_positive_int
from .common import dimension_names
from .explorer import Explorer, View, choice_slider
from .trajectories import plot_compounding_error


@torch.no_grad()
def draw_one_step(model: MLPWorldModel | EnsembleWorldModel, heldout: ReplayBuffer, dim: int,
                  names: Sequence[str] | None = None) -> Figure:
    """Predicted vs real one-step change of observation dimension `dim` on held-out data.

    A perfect model puts every point on the diagonal; the "nothing changes" guess puts them all
    on the horizontal line at zero.

    Args:
        model: a fitted MLP or ensemble world model (its `predict`).
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
    names = list(names) if names is not None else dimension_names(d)
    data = heldout.tensors(model.device)
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

    Moving "transitions" refits a small model (`wmkit.analysis.fit_small_model`, about
    `updates` gradient steps) on the first n transitions of `buffer` (cached, so going back is
    instant); "dimension" only redraws.

    Returns:
        An Explorer with controls {"transitions", "dimension"}; `.data` holds "transitions",
        "model_error" and "no_change_error" (held-out one-step errors, `wm.one_step_error`).
    """
    sizes = sorted({check_positive_int("sizes", n) for n in sizes})
    if not sizes or sizes[-1] > len(buffer):
        raise ValueError(f"sizes: expected sizes in [1, len(buffer) = {len(buffer)}], got {sizes}")
    names = dimension_names(buffer.obs_dim)
    models: dict[int, MLPWorldModel] = {}

    def render(transitions: int, dimension: int) -> View:
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
        return View(fig, text, {"transitions": transitions, "model_error": errors["model"],
                                "no_change_error": errors["no_change"]})

    controls = {
        "transitions": choice_slider("transitions", sizes, sizes[len(sizes) // 2]),
        "dimension": widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)],
                                      value=0, description="dimension"),
    }
    return Explorer(controls, render, title="How much data does the model need?")


def plot_ablation(result: AblationResult, fig: Figure | None = None) -> Figure:
    """Left: held-out one-step error per variant vs "nothing changes". Right: error vs horizon.

    Args:
        result: from `wmkit.analysis.normalisation_ablation`.
        fig: Figure to draw into (cleared first); a new 11 x 3.6 in one if None.

    Returns:
        The Figure with two Axes.
    """
    if not isinstance(result, AblationResult) or not result.one_step:
        raise ValueError("result: expected an AblationResult from normalisation_ablation")
    if fig is None:
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
        plot_compounding_error(result.compounding, ax=curve_ax, ylabel="open-loop error (log)")
        curve_ax.set_title("imagining further ahead", fontsize=10)
    else:
        curve_ax.set_visible(False)
    bars_ax.set_title("one step ahead", fontsize=10)
    return fig
