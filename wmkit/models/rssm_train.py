"""`fit_rssm`: train an RSSM on short windows sampled from a replay buffer.

A recurrent model learns from sequences, not single transitions: each update samples B windows
of L consecutive rows (`ReplayBuffer.sample_sequences`). Random CartPole episodes last ~20 steps,
so windows cross episode boundaries; the model resets its belief at every `is_first`.
Held-out *episodes* are masked out of the training loss (the belief resets at every episode
start, so nothing leaks from them into the training rows) and scored after each epoch.
Holding out whole episodes has a price once a planner plays long ones: one 500-step episode can
be a tenth of the data, and the most informative tenth. In benchmarks/rssm_pomdp.py (seed 1,
5,000 steps) the RSSM planner scored 241 with `holdout=0.1` and 500 with `holdout=0`: a single
comparison, but enough for the benchmark to train with 0.
How a fit *ends* matters for planning: at a constant lr of 1e-3 the last refit leaves the
weights jittering, and on full CartPole that jitter was a lean of the imagined pole of a few
milliradians, enough for the planner to drift the cart off the track (274, 353, 292 on seeds
0-2). Decaying the lr to 1e-4 within every fit (`final_lr`, now the default) gave 500, 500,
497, and on velocity-hidden CartPole 500, 500, 412 (constant lr: 500, 500, 374): see the
`RSSMWorldModel` docstring for the diagnosis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from ..buffer import ReplayBuffer
from ..train import History, check_final_lr, done_weight, run_epochs, split_indices
from ..utils import check_positive_int

if TYPE_CHECKING:
    from .rssm import RSSMWorldModel


def episode_ids(buffer: ReplayBuffer) -> torch.Tensor:
    """(N,) long: which episode each row belongs to (0, 1, ...), counted from `is_first`."""
    return buffer.tensors()["is_first"].long().cumsum(0) - 1


def fit_rssm(model: RSSMWorldModel, buffer: ReplayBuffer, epochs: int = 50,
             batch_size: int = 256, length: int = 32, lr: float = 1e-3,
             weight_decay: float = 0.0, holdout: float = 0.1, seed: int = 0,
             progress: bool = True, grad_clip: float = 100.0,
             final_lr: float | None = 1e-4) -> History:
    """Train `model` in place; the arguments mean what they mean for `wmkit.fit`.

    batch_size counts *rows* per update, as for the MLP: B = batch_size // length windows of
    `length` rows (at least 1). One epoch is as many updates as it takes to draw about as many
    rows as the training episodes hold. Gradients are clipped to norm `grad_clip` ([DV3] clips
    too). The learning rate falls linearly from `lr` to `final_lr` over the fit's updates
    (None, or a `final_lr` >= `lr`: constant; see the module docstring). History keys: total,
    recon, reward, cont, dyn, rep, kl (see `RSSMWorldModel.loss`).
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    length = check_positive_int("length", length)
    if len(buffer) == 0:
        raise ValueError("buffer: is empty; collect some transitions first (wm.collect)")
    if length > len(buffer):
        raise ValueError(f"length: expected at most len(buffer)={len(buffer)}, got {length}")
    check_final_lr(final_lr)
    generator = torch.Generator().manual_seed(seed)
    sample_generator = torch.Generator(device=model.device).manual_seed(seed)
    episodes = episode_ids(buffer)
    n_episodes = int(episodes.max()) + 1
    # wmkit.train's split, over whole episodes instead of rows (it checks `holdout` too).
    _, heldout_episodes = split_indices(n_episodes, holdout, generator)
    model.set_normalizer(buffer.stats())  # the first change to the model: arguments are checked
    weight = done_weight(buffer)
    heldout_episode = torch.zeros(n_episodes, dtype=torch.bool)
    heldout_episode[heldout_episodes] = True
    heldout_row = heldout_episode[episodes]
    windows = max(1, batch_size // length)
    train_rows = int((~heldout_row).sum())
    updates = max(1, math.ceil(train_rows / (windows * length)))
    # A fixed set of windows, each starting at a held-out episode's start, scores the
    # held-out episodes after every epoch.
    first = buffer.tensors()["is_first"] & heldout_row
    first[len(buffer) - length + 1:] = False
    heldout_starts = first.nonzero().flatten()[:16]
    heldout_batch = {**buffer[heldout_starts[:, None] + torch.arange(length)],
                     "index": heldout_starts[:, None] + torch.arange(length)}

    def train_batches() -> Iterator[tuple[dict[str, torch.Tensor], float]]:
        for _ in range(updates):
            batch = buffer.sample_sequences(windows, length, generator)
            mask = ~heldout_row[batch["index"]]
            yield model.loss(batch, weight, mask.to(model.device), sample_generator), 1.0

    def heldout_losses() -> dict[str, torch.Tensor]:
        mask = heldout_row[heldout_batch["index"]]
        eval_generator = torch.Generator(device=model.device).manual_seed(seed + 1)
        return model.loss(heldout_batch, weight, mask.to(model.device), eval_generator)

    return run_epochs(model, train_batches, heldout_losses if len(heldout_starts) else None,
                      epochs=epochs, updates=updates, lr=lr, weight_decay=weight_decay,
                      final_lr=final_lr, grad_clip=grad_clip, desc="fit rssm",
                      progress=progress)

