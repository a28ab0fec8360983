"""wmkit: world models for model-based RL, small enough to read and fast enough to use.

    import wmkit as wm
    env = wm.make_env("CartPole-v1", seed=0)
    buf = wm.collect(env, steps=1_000, seed=0)
    model = wm.MLPWorldModel.for_env(env)
    wm.fit(model, buf, epochs=50)
    planner = wm.RandomShooting(model, horizon=20, candidates=500)
    wm.evaluate(env, planner, episodes=5, seed=1)
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .agents import ActorCritic
from .buffer import NormStats, ReplayBuffer
from .envs import HideVelocities, collect, make_env
from .envs_shift import ChangePoleLength
from .loop import learn
from .models import (
    EnsembleWorldModel,
    LSTMWorldModel,
    MLPWorldModel,
    Rollout,
    RSSMWorldModel,
    TrainableModel,
    TransformerWorldModel,
    TrueCartPole,
    WorldModel,
    alive_before,
    cartpole_termination,
)
from .models.conv import FrameAutoencoder, copy_convolutions, fit_autoencoder
from .models.true_pendulum import TruePendulum
from .planners import (
    CEM,
    MCTS,
    MPPI,
    Dyna,
    GradientPlanner,
    MPCPlanner,
    Plan,
    Planner,
    RandomShooting,
    train_dyna,
)
from .runner import Agent, Episode, Evaluation, LearnLog, RealStep, evaluate, run
from .spaces import ActionSpec
from .train import History, done_weight, fit, one_step_error
from .utils import default_device, seed_everything

__all__ = [
    "ActionSpec", "ActorCritic", "Agent", "CEM", "ChangePoleLength", "Dyna",
    "EnsembleWorldModel", "Episode",
    "Evaluation", "GradientPlanner", "HideVelocities", "History", "LSTMWorldModel", "LearnLog",
    "MCTS", "MLPWorldModel", "MPCPlanner", "MPPI", "NormStats", "Plan", "Planner",
    "RSSMWorldModel", "RandomShooting", "RealStep", "ReplayBuffer", "Rollout", "TrainableModel",
    "TransformerWorldModel", "TrueCartPole",
    "WorldModel", "alive_before", "analysis", "cartpole_termination", "collect",
    "default_device", "done_weight", "evaluate", "fit", "learn", "make_env", "notebook",
    "one_step_error", "run", "seed_everything", "train_dyna",
    "TruePendulum", "FrameAutoencoder", "copy_convolutions", "fit_autoencoder",
]

# Three parts load on first use (`wm.notebook`, `wm.analysis`, `wm.sweep`, or `from wmkit
# import ...`): the notebook layer, the only place that imports matplotlib and ipywidgets (~1 s;
# a test keeps it so), the measurements, and the sweep runner (Ray, when installed), so a script
# that only trains and plans stays light.
_LAZY_SUBPACKAGES = ("analysis", "notebook", "sweep")


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'wmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
