"""Transitional: the measurements moved to `wmkit.analysis.throughput`, the figures to
`wmkit.notebook` (remove once tests/test_device.py and benchmarks/ import from there)."""

from typing import Any

from .analysis.throughput import (
    MODELS,
    START_OBS,
    Measurement,
    build_models,
    imagine_bytes,
    markdown_table,
    measure_imagine,
    measure_plan,
    memory_budget,
    start_state,
    sweep,
)

QUANTITIES = {"transitions/s": "imagined transitions / s", "ms/call": "ms per imagine call"}


def plot_throughput(*args: Any, **kwargs: Any) -> Any:
    """Transitional: `wmkit.notebook.plot_throughput` (loads the notebook layer)."""
    from .notebook import plot_throughput as plot

    return plot(*args, **kwargs)


def draw_throughput(*args: Any, **kwargs: Any) -> tuple[Any, str]:
    """Transitional: (figure, readout) of `wmkit.notebook.draw_throughput` (whose `View` also
    carries the numbers; loads the notebook layer)."""
    from .notebook import draw_throughput as draw

    view = draw(*args, **kwargs)
    return view.figure, view.readout


__all__ = ["MODELS", "QUANTITIES", "START_OBS", "Measurement", "build_models",
           "draw_throughput", "imagine_bytes", "markdown_table", "measure_imagine",
           "measure_plan", "memory_budget", "plot_throughput", "start_state", "sweep"]
