"""The online agent, drawn (notebook 07): a surprise trace and the steps that would re-plan.
The counting is a measurement of `wmkit.online` (`replan_steps`); this file only draws it."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.axes import Axes

from ..online.planning import replan_steps
from .common import new_axes
from .explorer import Explorer, View


def draw_replans(surprises: Sequence[float], threshold: float, ax: Axes | None = None) -> Axes:
    """A surprise trace (log scale), the threshold as a dashed line and a dot at every step
    whose surprise exceeds it (`wmkit.online.replan_steps`). Returns the Axes (three lines:
    trace, threshold, re-plans)."""
    ax = ax if ax is not None else new_axes((10, 3))
    steps = replan_steps(surprises, threshold)
    values = np.maximum(np.asarray(surprises, dtype=np.float64), 1e-12)
    ax.semilogy(values, lw=0.8, label="surprise (MSE)")
    ax.axhline(threshold, color="crimson", ls="--", label=f"threshold {threshold:.2g}")
    ax.plot(steps, values[steps], ".", color="crimson", ms=4,
            label=f"re-plans: {len(steps)} of {len(values)} steps")
    ax.set(xlabel="real step", ylabel="surprise")
    ax.legend(loc="upper right")
    return ax


def replan_explorer(surprises: Sequence[float], threshold: float = 1e-4) -> Explorer:
    """`draw_replans` with a threshold slider (log scale, 1e-7 .. 1e-1).

    Returns:
        An Explorer with controls {"threshold"}; `.data` holds "threshold", "replans" (how many
        steps exceed it) and "steps" (which).
    """
    def render(threshold: float) -> View:
        ax = draw_replans(surprises, threshold)
        steps = replan_steps(surprises, threshold)
        ax.set_title(f"threshold {threshold:.1e}: {len(steps)} re-plans triggered by surprise")
        return View(ax.figure, f"{len(steps)} of {len(surprises)} steps would re-plan",
                    {"threshold": threshold, "replans": len(steps), "steps": steps})

    slider = widgets.FloatLogSlider(value=threshold, base=10, min=-7, max=-1, step=0.25,
                                    description="threshold", continuous_update=False)
    return Explorer({"threshold": slider}, render, title="When would the agent re-plan?")
