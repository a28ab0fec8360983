"""The notebook layer: every figure and widget of the kit, and the only part of wmkit that
imports matplotlib or ipywidgets (a test checks it). Measurements live in `wmkit.analysis`.

    import wmkit as wm
    from wmkit import notebook as nb        # or wm.notebook, loaded on first use

One widget idiom: an `Explorer` (an ipywidgets VBox) whose callback is a library function
returning a `View` (figure, readout, numbers); `.controls`, `.figure` and `.data` let a cell or
a test move a control and read what changed. Every plotting function returns the Axes (or
Figure) it drew on, accepts `ax=` (or `fig=`), and never calls `plt.show()`.

- `cartpole`, `animation`: cart-poles, as ghosts and as videos;
- `curves`: losses per epoch, returns against real steps;
- `trajectories`: imagined vs real per dimension, error against the horizon;
- `episode` (00), `fitting` (01), `rollouts` (02, 06), `planning` (03), `uncertainty` (04),
  `dyna` (05), `beliefs` (06), `online` (07), `throughput` (08), `planners` (09), `dreamer`
  (10), `pixels` (11): each notebook's drawings and explorers.
"""

from .animation import animate_rollouts, to_html
from .beliefs import plot_kl
from .cartpole import draw_cartpole, draw_cartpoles
from .common import CARTPOLE_NAMES, to_numpy
from .curves import finish_learning_axes, plot_losses, plot_returns
from .dreamer import actor_dream_explorer, draw_actor_dreams, plot_decision_cost, plot_dream_values
from .dyna import draw_dyna_loop, dyna_explorer, plot_sample_efficiency
from .episode import describe_state, draw_step, episode_stepper
from .explorer import Explorer, View, choice_slider, float_slider, int_slider
from .fitting import draw_one_step, fit_explorer, plot_ablation
from .online import draw_replans, replan_explorer
from .pixels import animate_dream, draw_frames, frame_dream_explorer, plot_dream_errors, plot_probe
from .planners import (
    budget_explorer,
    draw_budget_curve,
    draw_cem_iterations,
    draw_gradient_steps,
    draw_mppi_nominals,
    draw_tree,
    search_explorer,
)
from .planning import draw_trials, planner_explorer, plot_plan
from .rollouts import draw_dream, draw_rollout, dream_explorer, rollout_explorer
from .throughput import QUANTITIES, draw_throughput, plot_throughput, throughput_explorer
from .trajectories import plot_compounding_error, plot_trajectories
from .uncertainty import (
    ensemble_size_explorer,
    plot_change,
    plot_disagreement_grid,
    plot_reliability,
    risk_explorer,
)

__all__ = [
    "CARTPOLE_NAMES", "QUANTITIES", "Explorer", "View", "animate_rollouts", "choice_slider",
    "describe_state", "draw_cartpole", "draw_cartpoles", "draw_dream", "draw_dyna_loop",
    "draw_one_step", "draw_replans", "draw_rollout", "draw_step", "draw_throughput", "draw_trials",
    "dream_explorer", "dyna_explorer", "ensemble_size_explorer", "episode_stepper",
    "finish_learning_axes", "fit_explorer", "float_slider", "int_slider", "plot_ablation",
    "plot_change", "plot_compounding_error", "plot_kl", "plot_disagreement_grid", "plot_losses",
    "plot_plan", "plot_reliability", "plot_returns", "plot_sample_efficiency",
    "plot_throughput", "plot_trajectories", "planner_explorer", "risk_explorer",
    "replan_explorer", "rollout_explorer", "throughput_explorer", "to_html", "to_numpy",
    "animate_dream", "draw_frames", "frame_dream_explorer", "plot_dream_errors", "plot_probe",
    "budget_explorer", "draw_budget_curve", "draw_cem_iterations", "draw_gradient_steps",
    "draw_mppi_nominals", "draw_tree", "search_explorer",
    "actor_dream_explorer", "draw_actor_dreams", "plot_decision_cost", "plot_dream_values",
]
