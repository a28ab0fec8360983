"""How much data does a world model need? Small models fitted on the first n transitions."""

from __future__ import annotations

from ..buffer import ReplayBuffer
from ..models.mlp import MLPWorldModel
from ..train import fit
from ..utils import check_positive_int, seed_everything
from .episodes import _check_buffer


def first_transitions(buffer: ReplayBuffer, n: int) -> ReplayBuffer:
    """A new buffer holding the first `n` transitions of `buffer` (to train on less data)."""
    _check_buffer(buffer)
    n = check_positive_int("n", n)
    if n > len(buffer):
        raise ValueError(f"n: expected at most len(buffer) = {len(buffer)}, got {n}")
    subset = ReplayBuffer(buffer.obs_dim, buffer.action_spec, capacity=n)
    rows = buffer[slice(0, n)]
    for i in range(n):
        subset.add(rows["obs"][i], rows["action"][i], float(rows["reward"][i]),
                   rows["next_obs"][i], bool(rows["terminated"][i]), bool(rows["truncated"][i]))
    return subset


def fit_small_model(buffer: ReplayBuffer, n: int, updates: int = 300, hidden: int = 64,
                    seed: int = 0, batch_size: int = 256) -> MLPWorldModel:
    """A small MLP world model fitted on the first `n` transitions of `buffer` (~1 s on a core).

    It trains for about `updates` gradient steps whatever `n` is (more epochs on less data),
    so comparing sizes compares data, not training time. Seeded: the same arguments give the
    same model.
    """
    updates = check_positive_int("updates", updates)
    data = first_transitions(buffer, n)
    batches_per_epoch = -(-(n - int(0.1 * n)) // batch_size)  # fit holds out 10%
    seed_everything(seed)
    model = MLPWorldModel(buffer.obs_dim, buffer.action_spec, hidden=hidden, device="cpu")
    fit(model, data, epochs=-(-updates // batches_per_epoch), batch_size=batch_size, seed=seed,
        progress=False)
    return model
