"""Transitional: the linear probe moved to `wmkit.analysis.probe` (remove once tests/test_rssm.py
and benchmarks/rssm_pomdp.py import it from there)."""

from .analysis.probe import LinearProbe, fit_probe, hidden_twin, r2_score

__all__ = ["LinearProbe", "fit_probe", "hidden_twin", "r2_score"]
