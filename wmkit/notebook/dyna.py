"""Dyna, drawn (notebook 05): the Dyna loop as a diagram, sample-efficiency curves, and a
slider over k, the imagined updates per real step."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from ..runner import LearnLog
from ..utils import check_nonnegative_int
from .curves import finish_learning_axes
from .explorer import Explorer, View, choice_slider


def plot_sample_efficiency(logs: Mapping[str, LearnLog], highlight: str | None = None,
                           target: float | None = 475.0, ax: Axes | None = None) -> Axes:
    """Greedy-evaluation mean return against real env steps: one line per labelled log.

    `logs` maps a label (e.g. "Dyna k=5") to a `LearnLog` / `DynaLog` with `.evals`. The run
    named `highlight` is drawn bold and the others faint (the notebook's k slider calls this).
    Returns the Axes; never calls `plt.show()`.
    """
    if highlight is not None and highlight not in logs:
        raise ValueError(f"highlight: expected one of {list(logs)}, got {highlight!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (label, log) in enumerate(logs.items()):
        strong = highlight is None or label == highlight
        solved = log.solved_at(target) if target is not None else None
        ax.plot([e.real_steps for e in log.evals], [e.mean_return for e in log.evals],
                color=f"C{i}", marker="o", ms=3, lw=2.2 if strong else 1.0,
                alpha=1.0 if strong else 0.3,
                label=f"{label}" + (f" (solved at {solved})" if solved else ""))
    return finish_learning_axes(ax, "greedy evaluation, mean return", target)


def draw_dyna_loop(ax: Axes | None = None) -> Axes:
    """The Dyna loop as a diagram: acting -> real experience -> (direct RL | model learning ->
    planning) -> value/policy -> acting. Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.2))
    boxes = {  # name: (x, y, text, colour)
        "act": (0.5, 0.9, "acting\n(epsilon-greedy in the real env)", "#d5e8d4"),
        "real": (0.15, 0.55, "real experience\n(ReplayBuffer)", "#dae8fc"),
        "model": (0.15, 0.12, "model learning\n(wm.fit, warm-started)", "#ffe6cc"),
        "plan": (0.85, 0.12, "planning\nk updates on imagined\ntransitions", "#ffe6cc"),
        "value": (0.85, 0.55, "value / policy\nQ(s, a), greedy", "#e1d5e7"),
    }
    for x, y, text, colour in boxes.values():
        ax.text(x, y, text, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.5", "fc": colour, "ec": "0.3"})
    arrows = [  # (start, end, label, curvature): ends placed by hand at the box edges
        ((0.27, 0.9), (0.15, 0.63), "", 0.25), ((0.15, 0.47), (0.15, 0.2), "", 0.0),
        ((0.31, 0.12), (0.69, 0.12),
         "imagine from real states:\n1-step branches or H-step returns", 0.0),
        ((0.85, 0.22), (0.85, 0.48), "", 0.0),
        ((0.27, 0.55), (0.73, 0.55), "direct RL: 1 real update", 0.0),
        ((0.85, 0.63), (0.73, 0.9), "", 0.25),
    ]
    for (x0, y0), (x1, y1), label, curve in arrows:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "-|>", "lw": 1.5, "color": "0.25",
                                "shrinkA": 0, "shrinkB": 0,
                                "connectionstyle": f"arc3,rad={curve}"})
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.03, label, ha="center", va="bottom",
                    fontsize=8, color="0.25")
    ax.text(0.5, 0.33, "k = 0: no model,\nplain DQN", ha="center", fontsize=8, color="0.45",
            style="italic")
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.05, 1.02)
    ax.axis("off")
    ax.set_title("Dyna: one real step feeds two learners")
    return ax


def dyna_explorer(runs: Mapping[int, LearnLog], others: Mapping[str, LearnLog] | None = None,
                  target: float = 475.0) -> Explorer:
    """A slider over k that redraws `plot_sample_efficiency` with the run for that k in bold.

    `runs` maps k to a finished run (e.g. `train_dyna` logs); `others` (e.g. {"MPC": log}) are
    drawn too. The runs are computed beforehand, so moving the slider costs only a redraw.

    Returns:
        An Explorer with controls {"k"}; `.data` holds "k", "solved_at" (real steps, or None)
        and "best_evaluation" (the best mean evaluation return of that run).
    """
    if not runs:
        raise ValueError("runs: expected at least one k -> log")
    ks = sorted(check_nonnegative_int("runs (a key k)", k) for k in runs)
    labels = {k: f"Dyna k={k}" + (" (model-free)" if k == 0 else "") for k in ks}
    logs = {labels[k]: runs[k] for k in ks} | dict(others or {})

    def render(k: int) -> View:
        ax = plot_sample_efficiency(logs, highlight=labels[k], target=target)
        ax.set_title(f"updates per real step: 1 real + {k} imagined", fontsize=10)
        log = runs[k]
        solved = log.solved_at(target)
        best = max((e.mean_return for e in log.evals), default=float("nan"))
        text = (f"k = {k}: " + (f"solved at <b>{solved}</b> real steps" if solved else
                                f"not solved; best evaluation <b>{best:.0f}</b>"))
        return View(ax.figure, text, {"k": k, "solved_at": solved, "best_evaluation": best})

    return Explorer({"k": choice_slider("k", ks, ks[-1])}, render,
                    title="Dyna: imagined updates per real step")
