"""wmkit: world models for model-based RL, small enough to read and fast enough to use.

    import wmkit as wm
    env = wm.make_env("CartPole-v1", seed=0)
    buf = wm.collect(env, steps=1_000, seed=0)
    model = wm.MLPWorldModel.for_env(env)
    wm.fit(model, buf, epochs=50)
    planner = wm.RandomShooting(model, horizon=20, candidates=500)
    wm.evaluate(env, planner, episodes=5, seed=1)
"""

from .buffer import NormStats, ReplayBuffer
from .envs import HideVelocities, collect, make_env
from .loop import Episode, Evaluation, LearnLog, evaluate, learn
from .models import (
    MLPWorldModel,
    Rollout,
    TrueCartPole,
    WorldModel,
    alive_before,
    cartpole_termination,
)
from .planners import Plan, RandomShooting
from .spaces import ActionSpec
from .train import History, done_weight, fit, one_step_error
from .utils import default_device, seed_everything

__all__ = [
    "ActionSpec", "Episode", "Evaluation", "History", "HideVelocities", "LearnLog",
    "MLPWorldModel", "NormStats", "Plan", "RandomShooting", "ReplayBuffer", "Rollout",
    "TrueCartPole", "WorldModel", "alive_before", "cartpole_termination", "collect",
    "default_device", "done_weight", "evaluate", "fit", "learn", "make_env", "one_step_error",
    "seed_everything",
]
