"""The notebooks in a real browser: JupyterLab in headless Chromium runs every cell, a slider is
moved as a learner would (a key press on its handle), and what depends on it must change, with
no error on the page and the kernel still alive. Screenshots go to tests/ui/screenshots/.

Each test notebook runs from a temporary copy: the repository's files are never modified.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import labdriver
import nbformat
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.ui

REPO = Path(__file__).resolve().parents[2]

# A slider, an Output widget with a matplotlib figure, and a readout that follows the slider:
# the smallest notebook with everything the real ones use, to debug the harness on.
FIXTURE_CELLS = [
    """\
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np""",
    """\
slider = widgets.IntSlider(value=2, min=1, max=10, description="frequency")
readout = widgets.Label()
out = widgets.Output()
x = np.linspace(0, 1, 200)


def draw(change=None):
    readout.value = f"peaks: {slider.value}"
    with out:
        out.clear_output(wait=True)
        fig, ax = plt.subplots(figsize=(5, 2.5))
        ax.plot(x, np.sin(2 * np.pi * slider.value * x))
        ax.set_title(f"frequency {slider.value}")
        plt.show()


slider.observe(draw, names="value")
draw()
widgets.VBox([slider, readout, out])""",
    "assert slider.value == 2",
]


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook with these code cells and the python3 kernelspec (so Lab starts a kernel
    without asking)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


@dataclass(frozen=True)
class SliderCase:
    """A notebook (relative to the server root, which mirrors the repository) and its sliders."""

    notebook: str
    sliders: tuple[str | None, ...]  # regexes on slider descriptions (None: the first slider)
    key: str = "ArrowRight"  # one step: cheap to redraw even where a redraw runs a planner
    run_timeout: float = 300.0  # whole notebook, in seconds; a real one runs in < ~2 min
    # A regex on a markdown cell: the browser runs the cells before it only (nbval runs them
    # all), for a notebook whose sliders come before a long, slider-free experiment.
    stop_before: str | None = None


def first_heading(notebook: nbformat.NotebookNode, stop_before: str) -> int | None:
    """The index of the first markdown cell matching the regex `stop_before`, or None."""
    pattern = re.compile(stop_before, re.MULTILINE)
    return next((i for i, cell in enumerate(notebook.cells)
                 if cell.cell_type == "markdown" and pattern.search(cell.source)), None)


def truncate_copy(path: Path, stop_before: str) -> None:
    """Drop every cell from the first markdown cell matching `stop_before` on, in place."""
    notebook = nbformat.read(path, as_version=4)
    cut = first_heading(notebook, stop_before)
    if cut is None:
        raise ValueError(f"stop_before: no markdown cell of {path.name} matches {stop_before!r}")
    notebook.cells = notebook.cells[:cut]
    nbformat.write(notebook, path)


def check_slider_notebook(page: Page, lab: labdriver.LabServer, file: Path, case: SliderCase,
                          screenshots: Path, page_errors: list[str]) -> None:
    """Run every cell, move each slider, and check that the page reacts and nothing broke."""
    stem = Path(case.notebook).stem
    opened = labdriver.open_notebook(page, lab, case.notebook, timeout=120)
    kernel_id = opened["kernel"]["id"]
    run_s = labdriver.run_all_cells(page, lab, case.notebook,
                                    labdriver.code_cells_to_run(file), timeout=case.run_timeout)
    page.screenshot(path=screenshots / f"{stem}-run.png")
    print(f"\n{case.notebook}: ran all cells in {run_s:.1f} s")

    for label in case.sliders:
        slider = labdriver.find_slider(page, label)
        description = slider.locator(".widget-label").inner_text()
        name = re.sub(r"\W+", "_", description).strip("_") or "slider"
        scope = labdriver.cell_of(slider)
        if not labdriver.dependent_state(scope, slider):
            # Slider and figure displayed from different cells: watch the whole notebook.
            scope = page.locator(labdriver.NOTEBOOK)
        move = labdriver.move_slider(page, slider, scope, case.key, timeout=120)
        scope.screenshot(path=screenshots / f"{stem}-{name}.png", timeout=30_000)
        print(f"  slider {name!r} {move.value_before} -> {move.value_after}: redrawn in "
              f"{move.seconds:.2f} s; changed {move.changed}")
        assert move.value_after != move.value_before, f"{case.key} did not move slider {name!r}"
        assert move.changed, f"slider {name!r} moved but nothing next to it changed"
        errors = labdriver.error_outputs(page)
        assert not errors, f"error outputs after moving {name!r}: {errors}\n{page_errors}"

    session = lab.wait_kernel_idle(case.notebook, timeout=120)
    assert session["kernel"]["id"] == kernel_id, "the kernel was restarted"


def test_fixture_notebook_slider_redraws_figure(
        page: Page, lab: labdriver.LabServer, screenshots: Path, page_errors: list[str]) -> None:
    path = write_notebook(lab.root / "ui_fixtures" / "slider.ipynb", FIXTURE_CELLS)
    case = SliderCase("ui_fixtures/slider.ipynb", ("frequency",), run_timeout=120)
    check_slider_notebook(page, lab, path, case, screenshots, page_errors)


def test_a_failing_cell_is_reported(page: Page, lab: labdriver.LabServer) -> None:
    """The harness can fail: an exception in a cell stops the run with its traceback."""
    path = write_notebook(lab.root / "ui_fixtures" / "broken.ipynb",
                          ["x = 1", "x / 0", "print('never runs')"])
    labdriver.open_notebook(page, lab, "ui_fixtures/broken.ipynb", timeout=120)
    with pytest.raises(labdriver.NotebookError, match="ZeroDivisionError"):
        labdriver.run_all_cells(page, lab, "ui_fixtures/broken.ipynb",
                                labdriver.code_cells_to_run(path), timeout=120)


def test_a_slider_that_redraws_nothing_is_reported(page: Page, lab: labdriver.LabServer) -> None:
    """The harness can fail: a figure that does not follow its slider is caught."""
    cells = [FIXTURE_CELLS[0], FIXTURE_CELLS[1].replace('slider.observe(draw, names="value")',
                                                        "# the callback is never attached")]
    path = write_notebook(lab.root / "ui_fixtures" / "unwired.ipynb", cells)
    labdriver.open_notebook(page, lab, "ui_fixtures/unwired.ipynb", timeout=120)
    labdriver.run_all_cells(page, lab, "ui_fixtures/unwired.ipynb",
                            labdriver.code_cells_to_run(path), timeout=120)
    slider = labdriver.find_slider(page, "frequency")
    with pytest.raises(labdriver.NotebookError, match="slider '2' -> '3'"):
        labdriver.move_slider(page, slider, labdriver.cell_of(slider), "ArrowRight", timeout=3)


# The notebooks whose figures follow a slider, checked on every run. A notebook that does not
# exist yet is skipped. Each costs a full run of the notebook (~15-60 s), so `make test` covers
# the two where the slider is the lesson; WMKIT_UI_ALL=1 adds every other notebook with a slider.
REAL_CASES = [
    SliderCase("notebooks/02_imagined_rollouts.ipynb", (r"^horizon", r"^start")),
    # Section 4 learns on three seeds (~1 min): nbval checks it; the sliders come before it.
    SliderCase("notebooks/03_planning.ipynb", (r"^horizon", r"^candidates"),
               stop_before=r"^## 4\. The whole loop"),
]
# A slider comes from an explorer of the notebook layer (`nb.rollout_explorer(...)`, the one
# widget idiom); raw ipywidgets sliders are matched too, for notebooks written by hand.
_HAS_SLIDER = re.compile(r"Slider|_explorer\(|episode_stepper\(")


def _all_slider_cases() -> list[SliderCase]:
    """REAL_CASES, plus (with WMKIT_UI_ALL=1) every other notebook that shows a slider."""
    cases = list(REAL_CASES)
    if os.environ.get("WMKIT_UI_ALL") == "1":
        listed = {case.notebook for case in cases}
        for path in sorted((REPO / "notebooks").glob("*.ipynb")):
            notebook = f"notebooks/{path.name}"
            if notebook not in listed and _HAS_SLIDER.search(path.read_text(encoding="utf-8")):
                cases.append(SliderCase(notebook, (None,)))
    return cases


@pytest.mark.parametrize("case", _all_slider_cases(), ids=lambda c: Path(c.notebook).stem)
def test_notebook_slider_in_browser(case: SliderCase, page: Page, lab: labdriver.LabServer,
                                    screenshots: Path, page_errors: list[str]) -> None:
    copy = lab.root / case.notebook
    if not (REPO / case.notebook).is_file() or not copy.is_file():
        pytest.skip(f"{case.notebook} does not exist yet")
    if case.stop_before is not None:
        truncate_copy(copy, case.stop_before)
    check_slider_notebook(page, lab, copy, case, screenshots, page_errors)


def test_every_real_case_names_a_notebook_with_a_slider() -> None:
    """Keep REAL_CASES honest: a listed notebook that exists must still have a slider."""
    for case in REAL_CASES:
        path = REPO / case.notebook
        if path.is_file():
            assert _HAS_SLIDER.search(path.read_text(encoding="utf-8")), (
                f"{case.notebook} has no slider any more: update REAL_CASES")


def test_truncate_copy_keeps_the_cells_before_the_heading(tmp_path: Path) -> None:
    """The cut is where the heading says, and a heading that is gone fails loudly (else the
    browser would quietly run the whole notebook again)."""
    path = tmp_path / "nb.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("a = 1"),
                      nbformat.v4.new_markdown_cell("## 4. Loop"),
                      nbformat.v4.new_code_cell("b = 2")]
    nbformat.write(notebook, path)
    truncate_copy(path, r"^## 4\.")
    assert [cell.source for cell in nbformat.read(path, as_version=4).cells] == ["a = 1"]
    with pytest.raises(ValueError, match="stop_before"):
        truncate_copy(path, r"^## 4\.")
    for case in REAL_CASES:
        if case.stop_before is not None and (REPO / case.notebook).is_file():
            source = nbformat.read(REPO / case.notebook, as_version=4)
            assert first_heading(source, case.stop_before) is not None, (
                f"{case.notebook}: stop_before matches nothing")
