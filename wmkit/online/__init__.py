"""wmkit.online: an async world-model service that learns one transition at a time.

    model = build_world_model(WorldModelConfig(backend=TransitionBackend.LSTM, obs_dim=4,
                                               action_dim=2, hidden_dim=64))
    out = await model.predict(ModelInput(obs, action))
    loss = await model.update(ModelInput(obs, action), next_obs, reward, terminated)
    if await model.surprise(ModelInput(obs, action), next_obs) > threshold: ...re-plan...
    action = await select_action(model, obs, candidate_actions=[0, 1])

Names fixed by DESIGN.md: TransitionBackend, PredictionTarget, ModelInput, ModelOutput,
DreamRollout, WorldModelConfig, WorldModel, build_world_model.

A thin adapter over the core world models (`wm.MLPWorldModel`, `wm.EnsembleWorldModel`,
`wm.LSTMWorldModel`, `wm.TransformerWorldModel`): see `model.py` for what it holds, the
numbers it reports (surprise, disagreement, a dream's expected surprise) and what changed on
purpose from its first version; `backends.py` for the models, `snapshot.py` for snapshots and
`metrics.py` for the labelled Prometheus metrics several models share.
"""

from .backends import SEQUENCE_WINDOW
from .metrics import INSTALL_HINT, METRIC_NAMES, new_registry, prometheus_available, read_metrics
from .model import OnlineWorldModel, build_world_model
from .planning import plan_actions, replan_steps, select_action
from .types import (
    DreamRollout,
    ModelInput,
    ModelOutput,
    PredictionTarget,
    TransitionBackend,
    WorldModel,
    WorldModelConfig,
)

__all__ = [
    "INSTALL_HINT",
    "METRIC_NAMES",
    "SEQUENCE_WINDOW",
    "DreamRollout",
    "ModelInput",
    "ModelOutput",
    "OnlineWorldModel",
    "PredictionTarget",
    "TransitionBackend",
    "WorldModel",
    "WorldModelConfig",
    "build_world_model",
    "new_registry",
    "plan_actions",
    "prometheus_available",
    "read_metrics",
    "replan_steps",
    "select_action",
]
