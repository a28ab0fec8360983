"""Which core world model serves each `TransitionBackend`: the service has no network of its own.

    MLP          wm.MLPWorldModel          hidden_dim x 2 layers
    ENSEMBLE     wm.EnsembleWorldModel     ensemble_size members of hidden_dim x 2 layers
    LSTM         wm.LSTMWorldModel         hidden_dim state, head hidden_dim x 2 layers
    TRANSFORMER  wm.TransformerWorldModel  window SEQUENCE_WINDOW, width hidden_dim, 1 block

All discrete actions in [0, action_dim); all predict the change in observation from inputs
normalised with the replay buffer's statistics, plus a reward and a termination logit.
"""

from __future__ import annotations

import math

import torch

from ..models.ensemble import EnsembleWorldModel
from ..models.lstm import LSTMWorldModel
from ..models.mlp import MLPWorldModel
from ..models.recurrent import RecurrentWorldModel
from ..models.transformer import TransformerWorldModel
from ..spaces import ActionSpec
from .types import TransitionBackend, WorldModelConfig

SEQUENCE_WINDOW = 8  # real steps an LSTM / TRANSFORMER reads: the current one and up to 7 before
MAX_PARAMETERS = 50_000_000  # a snapshot may not ask for a bigger network (200 MB of float32)

CoreModel = MLPWorldModel | EnsembleWorldModel | RecurrentWorldModel


def context_window(backend: TransitionBackend) -> int:
    """How many real steps the backend's belief reads: 1 (Markov), or SEQUENCE_WINDOW."""
    memory = (TransitionBackend.LSTM, TransitionBackend.TRANSFORMER)
    return SEQUENCE_WINDOW if backend in memory else 1


def build_core(config: WorldModelConfig, seed: int, device: str | torch.device | None
               ) -> CoreModel:
    """The core world model for `config`, its initial weights drawn from `seed` (torch's
    global generator is left as it was)."""
    spec = ActionSpec(discrete=True, n=int(config.action_dim))
    obs_dim, hidden = int(config.obs_dim), int(config.hidden_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.backend is TransitionBackend.MLP:
            return MLPWorldModel(obs_dim, spec, hidden=hidden, layers=2, device=device)
        if config.backend is TransitionBackend.ENSEMBLE:
            return EnsembleWorldModel(obs_dim, spec, int(config.ensemble_size), hidden=hidden,
                                      layers=2, seed=seed, device=device)
        if config.backend is TransitionBackend.LSTM:
            return LSTMWorldModel(obs_dim, spec, hidden=hidden, layers=2, device=device)
        heads = next(h for h in (4, 2, 1) if hidden % h == 0)
        return TransformerWorldModel(obs_dim, spec, window=SEQUENCE_WINDOW, hidden=hidden,
                                     heads=heads, blocks=1, layers=2, device=device)


def expected_shapes(config: WorldModelConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """The (shape, dtype name) of every tensor in the state of `config`'s model, found without
    allocating it (built on the `meta` device); ValueError if it exceeds MAX_PARAMETERS."""
    with torch.device("meta"):
        model = build_core(config, seed=0, device="meta")
    shapes = {name: (tuple(value.shape), str(value.dtype).removeprefix("torch."))
              for name, value in model.state_dict().items() if isinstance(value, torch.Tensor)}
    size = sum(math.prod(shape) for shape, _ in shapes.values())
    if size > MAX_PARAMETERS:
        raise ValueError(f"config: a {config.backend.name} network of obs_dim="
                         f"{config.obs_dim}, action_dim={config.action_dim}, hidden_dim="
                         f"{config.hidden_dim}, ensemble_size={config.ensemble_size} holds "
                         f"{size:.3g} numbers, more than the limit of {MAX_PARAMETERS:.3g}")
    return shapes
