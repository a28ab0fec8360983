"""The one widget idiom of the notebooks: an `Explorer`, controls whose callback is a library
function that returns a `View` (a figure, a readout line and the numbers behind them).

    explorer = nb.rollout_explorer(model, buffer)
    explorer                                   # shows the controls, the readout and the figure
    explorer.controls["horizon"].value = 7     # from code: the callback runs at once
    explorer.data["gap"]                       # the numbers the readout shows, as numbers
    explorer.figure                            # the figure it drew

A notebook or a test reads `.data`, never the readout's HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


class View(NamedTuple):
    """What a render callback returns: the figure (None: keep the last one), a readout line
    (HTML) and the numbers behind it (merged into `Explorer.data`)."""

    figure: Figure | None
    readout: str = ""
    data: Mapping[str, Any] = {}


Render = Callable[..., View]
"""control values as keywords -> View."""


class Explorer(widgets.VBox):
    """Controls, a readout line and a figure, redrawn by `render` whenever a control changes.

    Attributes:
        controls: name -> widget (sliders, dropdowns, toggles); set `.value` to interact.
        data: the numbers of the latest render (`View.data`), plus whatever the explorer keeps
            between renders (e.g. every planner trial so far).
        figure: the latest Figure (closed in pyplot, so it never shows twice; still readable).
        readout: an HTML widget with the latest summary line.
        output: the Output widget the figure is displayed in.
        renders: how many times `render` ran.
    """

    def __init__(self, controls: Mapping[str, widgets.Widget], render: Render,
                 title: str = "", data: dict[str, Any] | None = None) -> None:
        if not controls:
            raise ValueError("controls: expected at least one control, got none")
        self.controls = dict(controls)
        self.data: dict[str, Any] = {} if data is None else data
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
        """Run `render` with the current values; show its figure and readout, keep its data."""
        try:
            view = View(*self._render(**self.values))
        except ValueError as error:  # a bad combination of values: say so, keep the last figure
            self.readout.value = f"<span style='color:#c0392b'>{error}</span>"
            return
        self.renders += 1
        self.readout.value = view.readout
        self.data.update(view.data)
        if view.figure is None:
            return
        self.figure = view.figure
        plt.close(view.figure)  # shown below, never again by the inline backend at the cell's end
        if _in_notebook():  # outside a kernel (tests, scripts) there is nothing to show
            from IPython.display import display

            self.output.clear_output(wait=True)
            with self.output:
                display(view.figure)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def int_slider(description: str, value: int, low: int, high: int, step: int = 1,
               continuous: bool = False) -> widgets.IntSlider:
    """An integer slider that calls back on release (unless `continuous`)."""
    return widgets.IntSlider(value=value, min=low, max=high, step=step, description=description,
                             continuous_update=continuous,
                             style={"description_width": "initial"})


def float_slider(description: str, value: float, low: float, high: float,
                 step: float) -> widgets.FloatSlider:
    """A float slider that calls back on release."""
    return widgets.FloatSlider(value=value, min=low, max=high, step=step,
                               description=description, continuous_update=False,
                               style={"description_width": "initial"})


def choice_slider(description: str, options: Sequence[Any], value: Any
                  ) -> widgets.SelectionSlider:
    """A slider over given options (e.g. data sizes), calling back on release."""
    return widgets.SelectionSlider(options=list(options), value=value, description=description,
                                   continuous_update=False,
                                   style={"description_width": "initial"})
