"""How fast a world model imagines, drawn (notebook 08): throughput curves from
`wmkit.analysis.throughput`, and an explorer that switches what they show."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from ..analysis.throughput import MODELS, Measurement
from .explorer import Explorer, View

QUANTITIES = {"transitions/s": "imagined transitions / s", "ms/call": "ms per imagine call"}


def _measured(rows: Sequence[Measurement], horizon: int | None, quantity: str
              ) -> tuple[list[Measurement], int]:
    """The measured (not skipped) rows and the horizon to draw (default the largest), checked."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity: expected one of {tuple(QUANTITIES)}, got {quantity!r}")
    measured = [r for r in rows if r.transitions_per_s is not None]
    if not measured:
        raise ValueError("rows: expected at least one measured (not skipped) row")
    horizons = sorted({r.horizon for r in measured})
    horizon = horizons[-1] if horizon is None else horizon
    if horizon not in horizons:
        raise ValueError(f"horizon: expected one of {horizons}, got {horizon!r}")
    return measured, horizon


def plot_throughput(rows: Sequence[Measurement], horizon: int | None = None,
                    quantity: str = "transitions/s", ax: Axes | None = None) -> Axes:
    """Log-log curves against candidates, one per model and device (dashed: CPU).

    horizon: which horizon to draw (default: the largest measured). quantity: "transitions/s"
    (throughput: flat once the device is saturated) or "ms/call" (time per `imagine`: flat
    while the device idles between small kernels, then linear in N). Returns the axes.
    """
    measured, horizon = _measured(rows, horizon, quantity)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colours = {name: f"C{i}" for i, name in enumerate(MODELS)}
    curves = sorted({(r.model, r.device) for r in measured if r.horizon == horizon})
    for model, device in curves:
        points = sorted((r.candidates, r.transitions_per_s if quantity == "transitions/s"
                         else 1e3 * r.seconds) for r in measured
                        if (r.model, r.device, r.horizon) == (model, device, horizon))
        x, y = zip(*points)
        style = "--" if device == "cpu" else "-"
        ax.plot(x, y, style, marker="o", color=colours.get(model, "k"),
                label=f"{model}, {device}")
    ax.set(xscale="log", yscale="log", xlabel="candidates N (batch per step)",
           ylabel=QUANTITIES[quantity], title=f"imagination speed, horizon {horizon}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def draw_throughput(rows: Sequence[Measurement], horizon: int | None = None,
                    quantity: str = "transitions/s") -> View:
    """`plot_throughput` on a new figure, a readout of each curve's best rate, and those rates
    as numbers ("best": (model, device) -> transitions/s): the explorer's callback."""
    measured, horizon = _measured(rows, horizon, quantity)
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    plot_throughput(rows, horizon, quantity, ax=ax)
    best: dict[tuple[str, str], Measurement] = {}
    for r in measured:
        if r.horizon == horizon:
            key = (r.model, r.device)
            if key not in best or r.transitions_per_s > best[key].transitions_per_s:
                best[key] = r
    readout = "; ".join(f"{m} on {d}: best {b.transitions_per_s:.2g} transitions/s at "
                        f"N={b.candidates}" for (m, d), b in sorted(best.items()))
    return View(fig, readout, {"best": {key: b.transitions_per_s for key, b in best.items()}})


def throughput_explorer(rows: Sequence[Measurement], horizon: int | None = None,
                        title: str = "imagination speed") -> Explorer:
    """`draw_throughput` with a toggle between transitions/s and ms per call.

    Returns:
        An Explorer with controls {"quantity"}; `.data["best"]` as in `draw_throughput`.
    """
    _measured(rows, horizon, "transitions/s")  # bad rows or horizon: fail here, not in a widget
    toggle = widgets.ToggleButtons(options=list(QUANTITIES), description="show")
    return Explorer({"quantity": toggle},
                    lambda quantity: draw_throughput(rows, horizon, quantity), title=title)
