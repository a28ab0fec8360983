"""`fit`: train a world model on a replay buffer, with a held-out split and a History."""

from __future__ import annotations

import copy
import inspect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .models.base import TrainableModel
from .utils import check_nonnegative_int, check_positive_int


@dataclass
class History:
    """Per-epoch mean of each loss component ("total", "delta", "reward", "done", ...), and
    the learning rate at the end of each epoch (`lr`)."""

    train: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    heldout: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lr: list[float] = field(default_factory=list)

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


FIT_DEFAULTS: dict[str, Any] = {"weight_decay": 1e-5, "final_lr": None, "grad_clip": None,
                                "length": 32}
"""The kit's defaults for `fit`'s arguments left at None; a model's `fit_defaults` override
them (the RSSM: final_lr 1e-4, weight_decay 0, grad_clip 100). final_lr None: a constant lr."""


def fit_settings(model: Any, **given: Any) -> dict[str, Any]:
    """The arguments a fit of `model` uses: `given` where not None, else the model's
    `fit_defaults`, else `FIT_DEFAULTS`. Checked, so a bad one fails before any change."""
    defaults = {**FIT_DEFAULTS, **type(model).fit_defaults}
    settings = {k: defaults[k] if v is None and k in defaults else v for k, v in given.items()}
    for name in ("lr", "weight_decay"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not (value > 0 if name == "lr" else value >= 0):
            expected = "a finite float > 0" if name == "lr" else "a finite float >= 0"
            raise ValueError(f"{name}: expected {expected}, got {value!r}")
    check_final_lr(settings["final_lr"])
    if settings["grad_clip"] is not None:
        clip = settings["grad_clip"]
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
            raise ValueError(f"grad_clip: expected a float > 0 or None, got {clip!r}")
    settings["length"] = check_positive_int("length", settings["length"])
    return settings


def check_final_lr(final_lr: float | None) -> None:
    """A fit's `final_lr` must be None or a finite float > 0."""
    if final_lr is not None and (isinstance(final_lr, bool) or not isinstance(
            final_lr, (int, float)) or not math.isfinite(final_lr) or not final_lr > 0):
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
    if "min_updates" in kwargs:
        check_nonnegative_int("min_updates", kwargs["min_updates"])
    return kwargs


def split_indices(n: int, holdout: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, held-out) index tensors."""
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) \
            or not 0 <= holdout < 1:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {holdout!r}")
    order = torch.randperm(n, generator=generator)
    n_heldout = int(n * holdout) if n >= 10 else 0
    return order[n_heldout:], order[:n_heldout]


def check_buffer_fits(model: TrainableModel, buffer: ReplayBuffer) -> None:
    """The buffer's observations and actions must be the model's (ValueError otherwise)."""
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"buffer: expected a ReplayBuffer, got {type(buffer).__name__}")
    if len(buffer) == 0:
        raise ValueError("buffer: is empty; collect some transitions first (wm.collect)")
    if buffer.obs_dim != model.obs_dim:
        raise ValueError(f"buffer: holds observations of size {buffer.obs_dim}, the model "
                         f"expects {model.obs_dim}")
    if buffer.action_spec != model.action_spec:
        raise ValueError(f"buffer: holds actions of {buffer.action_spec}, the model acts in "
                         f"{model.action_spec}")


def fit(model: TrainableModel, buffer: ReplayBuffer, epochs: int = 50, batch_size: int = 256,
        lr: float = 1e-3, weight_decay: float | None = None, holdout: float = 0.1,
        seed: int = 0, progress: bool = True, final_lr: float | None = None,
        grad_clip: float | None = None, length: int | None = None, min_updates: int = 0
        ) -> History:
    """Train any world model in place on `buffer`: the one fit of the kit.

    The model takes the buffer's normalisation statistics first, so it sees the same scales at
    training and acting time. A transition model (`model.batches == "transitions"`) trains on
    minibatches of `batch_size` rows, a sequence model (the RSSM, the LSTM) on
    `batch_size // length` windows of `length` consecutive rows, with whole episodes held out.
    After each epoch the held-out loss is recorded.

    weight_decay, final_lr, grad_clip, length: None means the model's default
    (`type(model).fit_defaults`, else `FIT_DEFAULTS`: 1e-5, None, None, 32). final_lr: decay
    the lr linearly from `lr` to this over the fit (None, or >= lr: constant). grad_clip: clip
    the gradient norm (None: never). min_updates: run more than `epochs` epochs if needed so
    the fit makes at least this many gradient updates: a buffer of a few hundred rows is one
    batch per epoch, so 30 epochs would be only 30 updates (`learn(...,
    fit_kwargs={"min_updates": 300})`; docs/RESULTS.md). Every argument, and the
    buffer's observation size and action space, are checked before the model changes; if the
    loss turns non-finite the model is restored to what it was before the fit and a
    FloatingPointError says so.
    """
    if not isinstance(model, TrainableModel):
        raise ValueError(f"model: expected a trainable world model (loss, set_normalizer), "
                         f"got {type(model).__name__}")
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    min_updates = check_nonnegative_int("min_updates", min_updates)
    settings = fit_settings(model, lr=lr, weight_decay=weight_decay, final_lr=final_lr,
                            grad_clip=grad_clip, length=length)
    check_buffer_fits(model, buffer)
    if model.batches == "sequences" and settings["length"] > len(buffer):
        raise ValueError(f"length: expected at most len(buffer)={len(buffer)}, "
                         f"got {settings['length']}")
    generator = torch.Generator().manual_seed(seed)
    plan = (_sequence_epochs if model.batches == "sequences" else _transition_epochs)(
        model, buffer, batch_size, settings["length"], holdout, seed, generator)
    epochs = max(epochs, math.ceil(min_updates / plan.updates))
    before = copy.deepcopy(model.state_dict())  # restored if the fit blows up
    model.set_normalizer(buffer.stats())  # the first change to the model: all checks are done
    try:
        return run_epochs(model, plan.train_batches, plan.heldout_losses, epochs=epochs,
                          updates=plan.updates, lr=settings["lr"],
                          weight_decay=settings["weight_decay"], final_lr=settings["final_lr"],
                          grad_clip=settings["grad_clip"], desc=f"fit {type(model).__name__}",
                          progress=progress)
    except FloatingPointError as error:
        model.load_state_dict(before)
        raise FloatingPointError(f"{error}; the model was restored to its state before this "
                                 "fit") from None


@dataclass
class EpochPlan:
    """What one epoch of a fit is: its training batches, the held-out score, updates/epoch."""

    train_batches: Callable[[], Iterable[tuple[dict[str, torch.Tensor], float]]]
    heldout_losses: Callable[[], dict[str, torch.Tensor]] | None
    updates: int


def _transition_epochs(model: TrainableModel, buffer: ReplayBuffer, batch_size: int,
                       length: int, holdout: float, seed: int, generator: torch.Generator
                       ) -> EpochPlan:
    """Shuffled minibatches of rows; a random tenth (`holdout`) of the rows held out."""
    train_idx, heldout_idx = split_indices(len(buffer), holdout, generator)
    weight = done_weight(buffer)
    data = buffer.tensors(model.device)

    def train_batches() -> Iterator[tuple[dict[str, torch.Tensor], int]]:
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for batch_idx in order.split(batch_size):
            yield model.loss({k: v[batch_idx] for k, v in data.items()}, weight), len(batch_idx)

    def heldout_losses() -> dict[str, torch.Tensor]:
        return model.loss({k: v[heldout_idx] for k, v in data.items()}, weight)

    return EpochPlan(train_batches, heldout_losses if len(heldout_idx) else None,
                     math.ceil(len(train_idx) / batch_size))


def _sequence_epochs(model: TrainableModel, buffer: ReplayBuffer, batch_size: int, length: int,
                     holdout: float, seed: int, generator: torch.Generator) -> EpochPlan:
    """Windows of `length` rows; whole episodes held out (masked out of the training loss).

    B = batch_size // length windows per update (at least 1); an epoch draws about as many
    rows as the training episodes hold. Windows may cross episode starts: the model resets its
    belief at every `is_first`, so nothing leaks from a held-out episode into training rows.
    A fixed set of windows, each at a held-out episode's start, scores them after each epoch.
    """
    sample_generator = torch.Generator(device=model.device).manual_seed(seed)
    episodes = buffer.episode_ids()
    n_episodes = int(episodes.max()) + 1
    _, heldout_episodes = split_indices(n_episodes, holdout, generator)
    weight = done_weight(buffer)
    heldout_episode = torch.zeros(n_episodes, dtype=torch.bool)
    heldout_episode[heldout_episodes] = True
    heldout_row = heldout_episode[episodes]
    windows = max(1, batch_size // length)
    train_rows = int((~heldout_row).sum())
    first = buffer.tensors()["is_first"] & heldout_row
    first[len(buffer) - length + 1:] = False
    heldout_index = first.nonzero().flatten()[:16, None] + torch.arange(length)
    heldout_batch = {**buffer[heldout_index],
                     "mask": heldout_row[heldout_index].to(model.device)}

    def train_batches() -> Iterator[tuple[dict[str, torch.Tensor], float]]:
        for _ in range(max(1, math.ceil(train_rows / (windows * length)))):
            batch = buffer.sample_sequences(windows, length, generator)
            batch["mask"] = (~heldout_row[batch["index"]]).to(model.device)
            yield model.loss(batch, weight, sample_generator), 1.0

    def heldout_losses() -> dict[str, torch.Tensor]:
        eval_generator = torch.Generator(device=model.device).manual_seed(seed + 1)
        return model.loss(heldout_batch, weight, eval_generator)

    return EpochPlan(train_batches, heldout_losses if len(heldout_index) else None,
                     max(1, math.ceil(train_rows / (windows * length))))


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
        history.lr.append(optimizer.param_groups[0]["lr"])
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
