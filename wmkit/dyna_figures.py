"""Transitional: Dyna's figures moved to `wmkit.notebook` (`draw_dyna_loop`, `dyna_explorer`,
`plot_sample_efficiency`); remove once tests/test_dyna.py imports them from there. Loads the
notebook layer only when one of them is asked for."""

from typing import Any

_MOVED = ("draw_dyna_loop", "dyna_explorer", "plot_sample_efficiency")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from . import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'wmkit.dyna_figures' has no attribute {name!r}")
