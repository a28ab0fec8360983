"""What an RSSM's belief holds, drawn (notebook 06): its KL per epoch and per step of an episode.
The numbers come from `wmkit.analysis.kl_per_step` and the fit's `History`."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from .common import to_numpy


def plot_kl(history: Any, kl_steps: Any, free_nats: float,
            axes: tuple[Axes, Axes] | None = None) -> tuple[Axes, Axes]:
    """Left: the KL per epoch (train and held-out, `history.train["kl"]`/`heldout["kl"]`) with
    the free bits as a dotted line; right: `kl_steps` (S,) as bars by steps since the episode
    start. Returns both Axes."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
    left, right = axes
    left.plot(history.train["kl"], label="KL (train)")
    if history.heldout.get("kl"):
        left.plot(history.heldout["kl"], label="KL (held-out episodes)")
    left.axhline(free_nats, color="0.5", ls=":", label="free bits")
    left.set(xlabel="epoch", ylabel="nats")
    left.legend(fontsize=8)
    values = to_numpy(kl_steps)
    right.bar(range(len(values)), values)
    right.set(xlabel="steps since episode start", ylabel="KL (nats)")
    return left, right
