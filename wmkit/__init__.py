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

from .buffer import NormStats, ReplayBuffer
from .envs import HideVelocities, collect, make_env
from .envs_shift import ChangePoleLength
from .loop import Episode, Evaluation, LearnLog, evaluate, learn
from .models import (
    EnsembleWorldModel,
    MLPWorldModel,
    Rollout,
    RSSMWorldModel,
    TrueCartPole,
    WorldModel,
    alive_before,
    cartpole_termination,
)
from .planners import Dyna, Plan, RandomShooting, train_dyna
from .spaces import ActionSpec
from .train import History, done_weight, fit, one_step_error
from .utils import default_device, seed_everything

__all__ = [
    "ActionSpec", "ChangePoleLength", "Dyna", "EnsembleWorldModel", "Episode", "Evaluation",
    "HideVelocities", "History", "LearnLog", "MLPWorldModel", "NormStats", "Plan",
    "RSSMWorldModel", "RandomShooting", "ReplayBuffer", "Rollout", "TrueCartPole", "WorldModel",
    "alive_before", "cartpole_termination", "collect", "default_device", "diagnostics",
    "done_weight", "evaluate", "fit", "learn", "make_env", "one_step_error", "seed_everything",
    "train_dyna", "uncertainty",
]

# The figure and widget modules pull in matplotlib and ipywidgets (~1 s): load them on first
# use (`wm.viz`, `from wmkit import widgets`), so a script that only trains and plans stays light.
_LAZY_MODULES = ("diagnostics", "dyna_figures", "uncertainty", "viz", "widgets", "probe",
                 "throughput")


def __getattr__(name: str) -> ModuleType:
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'wmkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES))
