"""Smarter search, drawn (notebook 09): return against budget, and what each planner did inside.

- `draw_budget_curve` + `budget_explorer`: pick a planner and a budget, run one short
  episode (`wm.analysis.budget_trial`), and watch the return/compute curve fill in (ms per
  decision beside each point). `benchmarks/planners.py` draws its results with
  `draw_budget_curve` too.
- `draw_cem_iterations`: CEM's sampling distribution at each iteration of one decision;
- `draw_mppi_nominals`: MPPI's nominal sequence after each iteration;
- `search_explorer`: an iteration slider over either of them;
- `draw_gradient_steps`: the gradient planner's candidates' returns, step by step;
- `draw_tree`: the MCTS tree of one decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from ..analysis.planner_trial import BudgetTrial, budget_trial
from ..models.base import WorldModel
from ..planners.base import MPCPlanner
from ..planners.cem import CEM, Categorical
from ..planners.gradient import GradientPlanner
from ..planners.mcts import MCTS, Tree
from ..planners.mppi import MPPI
from ..planners.shooting import RandomShooting
from ..utils import check_positive_int
from .common import new_axes, to_numpy
from .explorer import Explorer, View, choice_slider, int_slider

PLANNER_COLORS = {"RandomShooting": "C7", "CEM": "C0", "MPPI": "C1", "MCTS": "C2",
                  "GradientPlanner": "C3",
                  # benchmarks/planners.py's names for the same planners
                  "random": "C7", "cem": "C0", "mppi": "C1", "mcts": "C2", "gradient": "C3"}


# ------------------------------------------------------------------ return against budget


def draw_budget_curve(points: Sequence[BudgetTrial | Mapping[str, Any]], ax: Axes | None = None,
                      title: str = "") -> Axes:
    """Return against budget (log x), one line per planner, ms per decision beside each point.

    Args:
        points: `BudgetTrial`s, or mappings with "planner", "budget", "returns" (a list: one
            per seed or episode; the line joins their means, the bar spans min to max) and
            "ms_per_decision".
        ax: Axes to draw into; a new one if None.
        title: the Axes' title.

    Returns:
        The Axes; each planner's line (through the means) has gid "planner:<name>".
    """
    rows = [_as_row(point) for point in points]
    if not rows:
        raise ValueError("points: expected at least one point, got none")
    ax = ax if ax is not None else new_axes((7.0, 3.8))
    for name in dict.fromkeys(row["planner"] for row in rows):
        mine = sorted((row for row in rows if row["planner"] == name), key=lambda r: r["budget"])
        budgets = np.array([row["budget"] for row in mine], dtype=float)
        means = np.array([np.mean(row["returns"]) for row in mine])
        low = means - np.array([np.min(row["returns"]) for row in mine])
        high = np.array([np.max(row["returns"]) for row in mine]) - means
        color = PLANNER_COLORS.get(name, None)
        bars = ax.errorbar(budgets, means, yerr=[low, high], marker="o", ms=4, capsize=2,
                           lw=1.4, color=color, label=name)
        bars.lines[0].set_gid(f"planner:{name}")
        for budget, mean, row in zip(budgets, means, mine):
            ax.annotate(f"{row['ms_per_decision']:.0f} ms", (budget, mean), fontsize=6.5,
                        textcoords="offset points", xytext=(4, -9), color=color or "0.3")
    ax.set_xscale("log")
    ax.set_xlabel("budget: imagined transitions per decision (log)")
    ax.set_ylabel("episode return")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _as_row(point: BudgetTrial | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(point, BudgetTrial):
        return {"planner": point.planner, "budget": point.budget,
                "returns": [point.episode_return], "ms_per_decision": point.ms_per_decision}
    try:
        row = {key: point[key] for key in ("planner", "budget", "returns", "ms_per_decision")}
    except (KeyError, TypeError) as error:
        raise ValueError(f"points: expected BudgetTrials or mappings with planner, budget, "
                         f"returns and ms_per_decision, got {point!r}") from error
    if not len(row["returns"]):
        raise ValueError(f"points: {row['planner']} at budget {row['budget']} has no returns")
    return row


def budget_explorer(model: WorldModel, env: gym.Env,
                    planners: Sequence[type[MPCPlanner]] = (RandomShooting, CEM, MPPI),
                    budgets: Sequence[int] = (1_000, 3_000, 10_000, 30_000),
                    budget: int = 1_000, seed: int = 0, max_steps: int = 100) -> Explorer:
    """Choose a planner and a budget; each choice runs one `budget_trial` (cached) and adds
    its point to the return/compute curve.

    Returns:
        An Explorer with controls {"planner", "budget"}; `.data["trials"]` maps
        (planner name, budget) -> `BudgetTrial`, `.data["last"]` is the latest one.
    """
    if not planners:
        raise ValueError("planners: expected at least one planner class, got none")
    options = sorted({check_positive_int("budgets", b) for b in budgets})
    if budget not in options:
        raise ValueError(f"budget: expected one of budgets {options}, got {budget!r}")
    max_steps = check_positive_int("max_steps", max_steps)
    by_name = {cls.__name__: cls for cls in planners}
    trials: dict[tuple[str, int], BudgetTrial] = {}

    def render(planner: str, budget: int) -> View:
        key = (planner, budget)
        if key not in trials:
            trials[key] = budget_trial(by_name[planner](model, budget=budget, seed=seed), env,
                                       seed, max_steps)
        trial = trials[key]
        ax = draw_budget_curve(list(trials.values()),
                               title=f"{max_steps}-step episodes from one start (seed {seed})")
        ax.scatter([trial.budget], [trial.episode_return], s=140, facecolors="none",
                   edgecolors="k", lw=1.5, zorder=5, gid="latest")
        text = (f"{planner} at {budget:,} imagined transitions per decision: return "
                f"<b>{trial.episode_return:.0f}</b> over {trial.steps} steps, "
                f"<b>{trial.ms_per_decision:.1f} ms</b> per decision")
        return View(ax.figure, text, {"last": trial})

    controls = {
        "planner": widgets.Dropdown(options=list(by_name), value=next(iter(by_name)),
                                    description="planner"),
        "budget": choice_slider("budget", options, budget),
    }
    return Explorer(controls, render, title="Smarter search: return against compute",
                    data={"trials": trials})


# ------------------------------------------------------------------ inside one decision


def _last_iteration(iterations: Sequence[Any], upto: int | None) -> int:
    """The last iteration to draw (None: the last one); ValueError before any planning or
    for an iteration the decision did not have."""
    if not iterations:
        raise ValueError("planner: has not planned yet; call planner.plan(state) first")
    upto = len(iterations) - 1 if upto is None else upto
    if not 0 <= upto < len(iterations):
        raise ValueError(f"upto: expected an iteration in [0, {len(iterations) - 1}], "
                         f"got {upto!r}")
    return upto


def draw_cem_iterations(planner: CEM, upto: int | None = None, dim: int = 0,
                        ax: Axes | None = None) -> Axes:
    """CEM's sampling distribution over the horizon at iterations 0..`upto` of its last
    decision (the latest strong, earlier ones faded).

    Box: each iteration's mean of action dimension `dim` with a ±1 std band. Discrete: the
    probability of action `dim` at each step.

    Returns:
        The Axes; iteration i's line has gid "iteration:i".
    """
    distributions = planner.distributions
    upto = _last_iteration(distributions, upto)
    ax = ax if ax is not None else new_axes((7.0, 3.4))
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(distributions)))
    for i, distribution in enumerate(distributions[: upto + 1]):
        strong = i == upto
        alpha = 1.0 if strong else 0.25 + 0.5 * i / max(upto, 1)
        label = "start" if i == 0 else f"after iteration {i}"
        if isinstance(distribution, Categorical):
            probs = to_numpy(distribution.probs)[:, dim]
            steps = np.arange(len(probs))
            ax.plot(steps, probs, color=colors[i], alpha=alpha, lw=2.2 if strong else 1.2,
                    marker="o", ms=3, label=label, gid=f"iteration:{i}")
            ax.set_ylabel(f"P(action {dim})")
            ax.set_ylim(-0.05, 1.05)
        else:
            mean = to_numpy(distribution.mean)[:, dim]
            std = to_numpy(distribution.std)[:, dim]
            steps = np.arange(len(mean))
            ax.plot(steps, mean, color=colors[i], alpha=alpha, lw=2.2 if strong else 1.2,
                    label=label, gid=f"iteration:{i}")
            ax.fill_between(steps, mean - std, mean + std, color=colors[i],
                            alpha=0.25 if strong else 0.06)
            low, high = planner.action_spec.low[dim], planner.action_spec.high[dim]
            ax.axhline(low, color="0.4", ls=":", lw=1)
            ax.axhline(high, color="0.4", ls=":", lw=1)
            ax.set_ylabel(f"action[{dim}]: mean ± std")
    ax.set_xlabel("imagined step")
    elites = f"{planner.elites} elite" + ("s" if planner.elites > 1 else "")
    ax.set_title(f"CEM: {planner.population} samples x {planner.iterations} iterations, "
                 f"{elites} each", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, alpha=0.3)
    return ax


def draw_mppi_nominals(planner: MPPI, upto: int | None = None, dim: int = 0,
                       ax: Axes | None = None) -> Axes:
    """MPPI's nominal over the horizon before and after each iteration (0..`upto`) of its
    last decision. Box: action dimension `dim`; Discrete: the probability of action `dim`.

    Returns:
        The Axes; iteration i's line has gid "iteration:i".
    """
    nominals = planner.nominals
    upto = _last_iteration(nominals, upto)
    ax = ax if ax is not None else new_axes((7.0, 3.4))
    colors = plt.get_cmap("plasma")(np.linspace(0.1, 0.85, len(nominals)))
    for i, nominal in enumerate(nominals[: upto + 1]):
        values = to_numpy(nominal)[:, dim]
        strong = i == upto
        ax.plot(np.arange(len(values)), values, color=colors[i], lw=2.2 if strong else 1.2,
                alpha=1.0 if strong else 0.35, marker="o", ms=3,
                label="start" if i == 0 else f"after iteration {i}",
                gid=f"iteration:{i}")
    if planner.action_spec.discrete:
        ax.set_ylabel(f"P(action {dim})")
    else:
        ax.set_ylabel(f"nominal action[{dim}]")
        for bound in (planner.action_spec.low[dim], planner.action_spec.high[dim]):
            ax.axhline(bound, color="0.4", ls=":", lw=1)
    ax.set_xlabel("imagined step")
    ax.set_title(f"MPPI: {planner.population} perturbations x {planner.iterations} "
                 f"iterations, temperature {planner.temperature:g}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, alpha=0.3)
    return ax


def search_explorer(planner: CEM | MPPI) -> Explorer:
    """An iteration slider over the last decision of a CEM or MPPI planner.

    Returns:
        An Explorer with controls {"iteration"}; `.data["spread"]` is the mean std of CEM's
        distribution (Box) at that iteration, `.data["nominal"]` MPPI's nominal (numpy).
    """
    if isinstance(planner, CEM):
        steps = planner.distributions
    elif isinstance(planner, MPPI):
        steps = planner.nominals
    else:
        raise ValueError(f"planner: expected a CEM or MPPI planner, got {type(planner).__name__}")
    if not steps:
        raise ValueError("planner: has not planned yet; call planner.plan(state) first")

    def render(iteration: int) -> View:
        if isinstance(planner, CEM):
            ax = draw_cem_iterations(planner, iteration)
            distribution = planner.distributions[iteration]
            if isinstance(distribution, Categorical):
                probs = to_numpy(distribution.probs)
                data = {"spread": float(np.mean(1 - probs.max(-1)))}
                text = f"iteration {iteration}: mean P(not the likeliest action) "
            else:
                data = {"spread": float(to_numpy(distribution.std).mean())}
                text = f"iteration {iteration}: mean std "
            return View(ax.figure, text + f"<b>{data['spread']:.3f}</b>", data)
        ax = draw_mppi_nominals(planner, iteration)
        nominal = to_numpy(planner.nominals[iteration])
        return View(ax.figure, f"iteration {iteration}: first action of the nominal "
                    f"<b>{nominal[0].round(3).tolist()}</b>", {"nominal": nominal})

    return Explorer({"iteration": int_slider("iteration", len(steps) - 1, 0, len(steps) - 1)},
                    render, title=f"Inside one {type(planner).__name__} decision")


def draw_gradient_steps(planner: GradientPlanner, ax: Axes | None = None) -> Axes:
    """Each candidate's imagined return at every gradient step of the last decision.

    Returns:
        The Axes; candidate c's line has gid "candidate:c" (candidate 0 starts from the
        previous plan, shifted, when there is one).
    """
    if not planner.step_returns:
        raise ValueError("planner: has not planned yet; call planner.plan(state) first")
    returns = np.stack([to_numpy(r) for r in planner.step_returns])  # (steps, C)
    ax = ax if ax is not None else new_axes((7.0, 3.4))
    for c in range(returns.shape[1]):
        ax.plot(returns[:, c], color="C3" if c == 0 else "0.5", lw=2 if c == 0 else 0.8,
                alpha=1.0 if c == 0 else 0.6, gid=f"candidate:{c}",
                label="candidate 0 (the previous plan, shifted, if any)" if c == 0 else (
                    "random restarts" if c == 1 else None))
    ax.set_xlabel("Adam step")
    ax.set_ylabel("imagined return")
    ax.set_title(f"gradient planning: {planner.candidates} sequences, lr {planner.lr:g}",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, alpha=0.3)
    return ax


def draw_tree(tree: Tree | MCTS, max_depth: int = 6, ax: Axes | None = None) -> Axes:
    """The MCTS tree of one decision, root on top: node area ~ visits, colour = mean value,
    edge colour = action; nodes deeper than `max_depth` are left out.

    Returns:
        The Axes; node circles are one scatter with gid "nodes".
    """
    if isinstance(tree, MCTS):
        if tree.tree is None:
            raise ValueError("tree: the planner has not planned yet; call planner.plan(state)")
        tree = tree.tree
    if not isinstance(tree, Tree) or len(tree) == 0:
        raise ValueError(f"tree: expected an MCTS planner or its Tree, got {tree!r}")
    max_depth = check_positive_int("max_depth", max_depth)
    shown = np.flatnonzero(tree.depth <= max_depth)
    # x: leaves in depth-first order get 0, 1, 2, ...; a parent sits above its children.
    x = np.zeros(len(tree))
    next_leaf = [0.0]

    def place(node: int) -> float:
        kids = [k for k in tree.children(node) if tree.depth[k] <= max_depth]
        if not kids:
            x[node] = next_leaf[0]
            next_leaf[0] += 1
        else:
            x[node] = np.mean([place(k) for k in kids])
        return x[node]

    place(0)
    ax = ax if ax is not None else new_axes((8.0, 4.0))
    for node in shown[1:]:
        parent = tree.parent[node]
        ax.plot([x[parent], x[node]], [-tree.depth[parent], -tree.depth[node]],
                color=f"C{int(tree.action[node])}", lw=0.6 + 2.5 * np.sqrt(
                    tree.visits[node] / tree.visits[0]), alpha=0.7, zorder=1)
    sizes = 10 + 300 * tree.visits[shown] / tree.visits[0]
    nodes = ax.scatter(x[shown], -tree.depth[shown], s=sizes, c=tree.value[shown],
                       cmap="viridis", edgecolors=np.where(tree.exact[shown], "r", "k"),
                       linewidths=0.6, zorder=2, gid="nodes")
    ax.figure.colorbar(nodes, ax=ax, label="mean imagined return", shrink=0.8)
    for action in sorted(set(tree.action[1:].tolist())):
        ax.plot([], [], color=f"C{action}", lw=2, label=f"action {action}")
    ax.set_yticks(-np.arange(min(max_depth, tree.depth.max()) + 1))
    ax.set_yticklabels(np.arange(min(max_depth, tree.depth.max()) + 1))
    ax.set_ylabel("depth (imagined steps)")
    ax.set_xticks([])
    ax.set_title(f"MCTS: {len(tree)} nodes, {int(tree.visits[0])} rollouts "
                 f"(red rim: exact, episode over)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return ax

