"""Measurements of world models and agents: torch and numpy only, no figures or widgets.

Each module is one question (the notebook layer, `wmkit.notebook`, draws the answers):

- `episodes`: real episodes in a buffer, as ranges of its rows;
- `open_loop`: imagination against reality, open loop, for any world model (compounding error;
  a probe read on the dream);
- `surprise`: the kit's one definition of *surprise*;
- `disagreement`, `correlation`, `off_data`, `calibration`: does an ensemble know what it does
  not know (error vs disagreement, the error ratio, calibrated intervals);
- `change`: noticing that the world changed, and refitting;
- `risk`: what a risk-aware planner trades;
- `ablation`, `data_size`: what normalisation, predicting the change and more data buy;
- `planner_trial`, `budget_trial`: one capped, timed episode of random-shooting MPC, or of
  any planner;
- `beliefs`, `probe`: what an RSSM's belief holds;
- `throughput`: imagined transitions per second.
"""

from .ablation import ABLATION_VARIANTS, AblationMLP, AblationResult, normalisation_ablation
from .beliefs import buffer_beliefs, kl_per_step, reconstructions
from .calibration import Calibration, calibration, predictive_distribution, reliability_curve
from .change import ChangeDetector, ChangeLog, adapt_on_change
from .correlation import pearson, spearman
from .data_size import first_transitions, fit_small_model
from .disagreement import (
    ErrorCorrelation,
    Transitions,
    disagreement_grid,
    error_ratio,
    error_vs_disagreement,
    prediction_error,
)
from .episodes import episode_observations, episode_of, episode_rows, longest_episode
from .off_data import biased_policy, shift_velocities
from .open_loop import (
    compounding_error,
    open_loop,
    open_loop_bias,
    open_loop_probe,
    open_loop_starts,
)
from .planner_trial import BudgetTrial, Trial, budget_trial, planner_trial
from .probe import LinearProbe, fit_probe, hidden_twin, r2_score
from .risk import RiskTradeoff, risk_tradeoff
from .surprise import surprise
from .throughput import Measurement, markdown_table, measure_imagine, measure_plan, sweep

__all__ = [
    "ABLATION_VARIANTS", "AblationMLP", "AblationResult", "Calibration", "ChangeDetector",
    "ChangeLog", "ErrorCorrelation", "LinearProbe", "Measurement", "RiskTradeoff", "Transitions",
    "BudgetTrial", "Trial", "adapt_on_change", "budget_trial", "biased_policy", "buffer_beliefs",
    "calibration",
    "compounding_error", "disagreement_grid", "episode_observations", "episode_of", "episode_rows",
    "error_ratio", "error_vs_disagreement", "first_transitions", "fit_probe", "fit_small_model",
    "hidden_twin", "kl_per_step", "longest_episode", "markdown_table", "measure_imagine",
    "measure_plan", "normalisation_ablation", "open_loop", "open_loop_bias", "open_loop_probe",
    "open_loop_starts",
    "pearson", "planner_trial", "predictive_distribution", "prediction_error", "r2_score",
    "reconstructions", "reliability_curve", "risk_tradeoff", "shift_velocities", "spearman",
    "surprise", "sweep",
]
