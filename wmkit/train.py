"""`fit`: train a world model on a replay buffer, with a held-out split and a History."""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .utils import check_positive_int


@dataclass
class History:
    """Per-epoch mean of each loss component ("total", "delta", "reward", "done", ...)."""

    train: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    heldout: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.heldout.items() if v}
        return f"History(epochs={len(self.train.get('total', []))}, heldout={last})"

    def record(self, split: str, values: dict[str, float], epoch: int) -> None:
        """Append one epoch's losses to `split` ("train" or "heldout"); a non-finite loss
        stops training with a FloatingPointError that says what to try."""
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"fit: non-finite loss ({', '.join(bad)}) at epoch {epoch}; try a lower lr or "
                "check the buffer for extreme values")
        log = getattr(self, split)
        for key, value in values.items():
            log[key].append(value)


def done_weight(buffer: ReplayBuffer, cap: float = 100.0) -> float:
    """Positive-class weight for the termination BCE: #non-terminal / #terminal, capped.

    Random CartPole ends ~1 step in 20; unweighted, "never ends" is a cheap 95% answer.
    """
    fraction = buffer.stats().done_fraction
    return 1.0 if fraction == 0 else min(cap, (1 - fraction) / fraction)


def check_final_lr(final_lr: float | None) -> None:
    """A fit's `final_lr` must be None or a float > 0 (checked before the fit touches the model)."""
    if final_lr is not None and not final_lr > 0:
        raise ValueError(f"final_lr: expected a float > 0 or None, got {final_lr!r}")


def check_fit_kwargs(fit_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Extra `fit` arguments for a training loop, checked before the loop collects any data:
    a misspelt name or a bad `final_lr` fails now, not at the first fit after the warm-up."""
    kwargs = dict(fit_kwargs or {})
    try:
        inspect.signature(fit).bind(None, None, **kwargs)
    except TypeError as error:
        raise ValueError(f"fit_kwargs: {error}; see wmkit.fit for the arguments") from None
    check_final_lr(kwargs.get("final_lr"))
    return kwargs


def split_indices(n: int, holdout: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, held-out) index tensors."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {holdout}")
    order = torch.randperm(n, generator=generator)
    n_heldout = int(n * holdout) if n >= 10 else 0
    return order[n_heldout:], order[:n_heldout]


def fit(model: torch.nn.Module, buffer: ReplayBuffer, epochs: int = 50, batch_size: int = 256,
        lr: float = 1e-3, weight_decay: float = 1e-5, holdout: float = 0.1, seed: int = 0,
        progress: bool = True, final_lr: float | None = None) -> History:
    """Train `model` in place on `buffer` for `epochs` passes over its training split.

    The model takes the buffer's normalisation statistics first, so it sees the same scales at
    training and acting time. After each epoch the held-out loss is recorded, and a non-finite
    loss stops training with a FloatingPointError that says which component went bad.
    final_lr: decay the learning rate linearly from `lr` to this over the fit (None: constant;
    for a sequence model, its own default: `fit_rssm` decays to 1e-4).
    """
    check_final_lr(final_lr)
    if hasattr(model, "fit_sequences"):  # sequence models (the RSSM) train on windows
        kwargs = {} if final_lr is None else {"final_lr": final_lr}
        return model.fit_sequences(buffer, epochs=epochs, batch_size=batch_size, lr=lr,
                                   weight_decay=weight_decay, holdout=holdout, seed=seed,
                                   progress=progress, **kwargs)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    if len(buffer) == 0:
        raise ValueError("buffer: is empty; collect some transitions first (wm.collect)")
    generator = torch.Generator().manual_seed(seed)
    train_idx, heldout_idx = split_indices(len(buffer), holdout, generator)  # checks holdout
    model.set_normalizer(buffer.stats())  # the first change to the model: arguments are checked
    weight = done_weight(buffer)
    data = buffer.tensors(model.device)

    def train_batches() -> Iterator[tuple[dict[str, torch.Tensor], int]]:
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for batch_idx in order.split(batch_size):
            yield model.loss({k: v[batch_idx] for k, v in data.items()}, weight), len(batch_idx)

    def heldout_losses() -> dict[str, torch.Tensor]:
        return model.loss({k: v[heldout_idx] for k, v in data.items()}, weight)

    return run_epochs(model, train_batches, heldout_losses if len(heldout_idx) else None,
                      epochs=epochs, updates=math.ceil(len(train_idx) / batch_size), lr=lr,
                      weight_decay=weight_decay, final_lr=final_lr, desc="fit",
                      progress=progress)


def run_epochs(model: torch.nn.Module,
               train_batches: Callable[[], Iterable[tuple[dict[str, torch.Tensor], float]]],
               heldout_losses: Callable[[], dict[str, torch.Tensor]] | None, epochs: int,
               updates: int, lr: float, weight_decay: float, final_lr: float | None = None,
               grad_clip: float | None = None, desc: str = "fit", progress: bool = True
               ) -> History:
    """The epoch loop every model's fit shares: Adam, an optional linear lr decay, a History.

    train_batches(): one epoch's updates, each as (loss components with a "total", weight);
    the epoch's train record is the weighted mean (weight = rows in the batch, or 1 each).
    heldout_losses(): the held-out loss components, scored without gradients after each epoch
    (None: no held-out split). updates: updates per epoch, which fixes the decay's length.
    final_lr: the lr falls linearly from `lr` to `final_lr` over all updates (None, or a
    `final_lr` >= `lr`: constant). grad_clip: clip the gradient norm to this (None: never).
    """
    check_final_lr(final_lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = None if final_lr is None or final_lr >= lr else torch.optim.lr_scheduler.LinearLR(
        optimizer, 1.0, final_lr / lr, total_iters=max(1, epochs * updates - 1))
    history = History()
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        total_weight = 0.0
        for losses, weight in train_batches():
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            for key, value in losses.items():
                sums[key] += value.item() * weight
            total_weight += weight
        history.record("train", {k: v / total_weight for k, v in sums.items()}, epoch)
        if heldout_losses is not None:
            model.eval()
            with torch.no_grad():
                losses = heldout_losses()
            history.record("heldout", {k: v.item() for k, v in losses.items()}, epoch)
    model.eval()
    return history


@torch.no_grad()
def one_step_error(model: torch.nn.Module, buffer: ReplayBuffer) -> dict[str, float]:
    """Mean squared one-step error of the model vs the "nothing changes" guess.

    Errors are measured per dimension in units of the buffer's observation std, so no
    dimension dominates just because its numbers are bigger.
    """
    data = buffer.tensors(model.device)
    scale = data["obs"].std(0, correction=0).clamp_min(1e-6)
    predicted, _, _ = model.predict(data["obs"], data["action"])
    return {
        "model": float((((predicted - data["next_obs"]) / scale) ** 2).mean()),
        "no_change": float((((data["obs"] - data["next_obs"]) / scale) ** 2).mean()),
    }
