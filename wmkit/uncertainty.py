"""Transitional: the ensemble's measurements moved to `wmkit.analysis` (disagreement,
calibration, off_data, change) and their figures and widgets to `wmkit.notebook` (remove once
tests/test_ensemble.py and benchmarks/ensemble.py import from `wmkit.analysis`)."""

from .analysis.calibration import Calibration, calibration, reliability_curve
from .analysis.disagreement import (
    ErrorCorrelation,
    disagreement_grid,
    error_ratio,
    error_vs_disagreement,
    prediction_error,
)
from .analysis.off_data import biased_policy, shift_velocities

__all__ = ["Calibration", "ErrorCorrelation", "biased_policy", "calibration",
           "disagreement_grid", "error_ratio", "error_vs_disagreement", "prediction_error",
           "reliability_curve", "shift_velocities"]
