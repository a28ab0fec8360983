"""Prometheus metrics of the online models, on a registry the caller passes in or a fresh one.

The Prometheus convention: one metric family per name, the models told apart by a label. The
five wm_* families carry one label, `model` (a name the caller gives, default the backend's
name in lower case, e.g. "lstm"), so several models share one registry and one /metrics
endpoint serves them all:

    wm_update_total{model="lstm"} 150.0
    wm_update_total{model="mlp"} 150.0

A family is made once per registry and reused by every model built on it. A model built with
the name of an earlier one on the same registry takes its series over, starting again from 0
(re-running a notebook cell that rebuilds a model never fails); give models that live side by
side different names. prometheus_client is optional (`pip install wmkit[online]`): without it
metrics are off.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from typing import Any

INSTALL_HINT = ("prometheus_client is not installed, and world-model metrics need it: "
                "pip install 'wmkit[online]'  (or: pip install prometheus_client)")

METRIC_NAMES = ("wm_update_total", "wm_train_loss", "wm_surprise_score", "wm_buffer_size",
                "wm_rollout_steps_total")
LABEL = "model"

# (kind, documentation) of each family.
_FAMILIES = {
    "wm_update_total": ("Counter", "Online gradient updates"),
    "wm_train_loss": ("Gauge", "Loss of the latest update"),
    "wm_surprise_score": ("Gauge", "Surprise (MSE) of the latest surprise() check"),
    "wm_buffer_size": ("Gauge", "Transitions in the replay buffer"),
    "wm_rollout_steps_total": ("Counter", "Imagined steps over all dream rollouts"),
}
_registered: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_registering = threading.Lock()


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


def families(registry: Any) -> dict[str, Any]:
    """The five labelled wm_* families on `registry`, made the first time they are asked for."""
    prometheus = _prometheus()
    with _registering:
        if registry not in _registered:
            _registered[registry] = {
                name: getattr(prometheus, kind)(name, text, labelnames=(LABEL,),
                                                registry=registry)
                for name, (kind, text) in _FAMILIES.items()}
        return _registered[registry]


class Metrics:
    """One model's series of the wm_* families on `registry`, labelled model=`name`."""

    def __init__(self, registry: Any, name: str) -> None:
        self.registry, self.name = registry, name
        series = {}
        for metric, family in families(registry).items():
            try:  # a rebuilt model with the same name starts its series again
                family.remove(name)
            except KeyError:
                pass
            series[metric] = family.labels(name)
        self._series = series

    def on_update(self, loss: float, buffer_size: int) -> None:
        self._series["wm_update_total"].inc()
        self._series["wm_train_loss"].set(loss)
        self._series["wm_buffer_size"].set(buffer_size)

    def on_surprise(self, value: float) -> None:
        self._series["wm_surprise_score"].set(value)

    def on_rollout(self, steps: int) -> None:
        self._series["wm_rollout_steps_total"].inc(steps)


class NoMetrics:
    """Stands in for `Metrics` when prometheus_client is missing: every call does nothing."""

    registry = None

    def on_update(self, loss: float, buffer_size: int) -> None:
        pass

    def on_surprise(self, value: float) -> None:
        pass

    def on_rollout(self, steps: int) -> None:
        pass


def make_metrics(registry: Any | None, name: str) -> Metrics | NoMetrics:
    """Metrics labelled `name` on `registry`; on a fresh registry when None; off when
    prometheus_client is missing and no registry was asked for (asking for one without it
    raises ImportError)."""
    if registry is None:
        if not prometheus_available():
            return NoMetrics()
        registry = new_registry()
    return Metrics(registry, name)


def read_metrics(registry: Any | None, model: str | None = None) -> dict[str, float]:
    """The current value of each wm_* metric of `model` on `registry` ({} when metrics are
    off). `model` may be left out when the registry holds one model's metrics."""
    if registry is None:
        return {}
    names = sorted({sample.labels[LABEL] for family in registry.collect()
                    for sample in family.samples
                    if sample.name in METRIC_NAMES and LABEL in sample.labels})
    if model is None:
        if len(names) > 1:
            raise ValueError(f"model: the registry holds the metrics of {names}; name one")
        model = names[0] if names else ""
    values = {name: registry.get_sample_value(name, {LABEL: model}) for name in METRIC_NAMES}
    return {name: float(value) for name, value in values.items() if value is not None}
