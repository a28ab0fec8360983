"""Prometheus metrics of one model, on a registry the caller passes in or a fresh one.

A fresh `CollectorRegistry` per model (instead of prometheus_client's global default) means
re-running a notebook cell that builds a model never fails on duplicate registration.
prometheus_client is optional (`pip install wmkit[online]`): without it metrics are off.
"""

from __future__ import annotations

import importlib
from typing import Any

INSTALL_HINT = ("prometheus_client is not installed, and world-model metrics need it: "
                "pip install 'wmkit[online]'  (or: pip install prometheus_client)")

METRIC_NAMES = ("wm_update_total", "wm_train_loss", "wm_surprise_score", "wm_buffer_size",
                "wm_rollout_steps_total")


def _prometheus() -> Any:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error


def prometheus_available() -> bool:
    """Whether prometheus_client can be imported (metrics are off without it)."""
    try:
        _prometheus()
    except ImportError:
        return False
    return True


def new_registry() -> Any:
    """A fresh `prometheus_client.CollectorRegistry`; ImportError with install hint if missing."""
    return _prometheus().CollectorRegistry()


class Metrics:
    """The five wm_* metrics on `registry` (a `prometheus_client.CollectorRegistry`)."""

    def __init__(self, registry: Any) -> None:
        prometheus = _prometheus()
        self.registry = registry
        self.updates = prometheus.Counter("wm_update_total", "Online gradient updates",
                                          registry=registry)
        self.train_loss = prometheus.Gauge("wm_train_loss", "Loss of the latest update",
                                           registry=registry)
        self.surprise = prometheus.Gauge("wm_surprise_score",
                                         "MSE of the latest surprise() check", registry=registry)
        self.buffer_size = prometheus.Gauge("wm_buffer_size", "Transitions in the replay buffer",
                                            registry=registry)
        self.rollout_steps = prometheus.Counter("wm_rollout_steps_total",
                                                "Imagined steps over all dream rollouts",
                                                registry=registry)

    def on_update(self, loss: float, buffer_size: int) -> None:
        self.updates.inc()
        self.train_loss.set(loss)
        self.buffer_size.set(buffer_size)

    def on_surprise(self, value: float) -> None:
        self.surprise.set(value)

    def on_rollout(self, steps: int) -> None:
        self.rollout_steps.inc(steps)


class NoMetrics:
    """Stands in for `Metrics` when prometheus_client is missing: every call does nothing."""

    registry = None

    def on_update(self, loss: float, buffer_size: int) -> None:
        pass

    def on_surprise(self, value: float) -> None:
        pass

    def on_rollout(self, steps: int) -> None:
        pass


def make_metrics(registry: Any | None) -> Metrics | NoMetrics:
    """Metrics on `registry`; on a fresh registry when None; off when prometheus_client is
    missing and no registry was asked for. Asking for one without it raises ImportError."""
    if registry is None:
        if not prometheus_available():
            return NoMetrics()
        registry = new_registry()
    return Metrics(registry)


def read_metrics(registry: Any | None) -> dict[str, float]:
    """Current value of each wm_* metric on `registry` ({} when metrics are off)."""
    if registry is None:
        return {}
    values = {name: registry.get_sample_value(name) for name in METRIC_NAMES}
    return {name: float(value) for name, value in values.items() if value is not None}
