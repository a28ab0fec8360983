"""Agents that learn a policy inside a world model's imagination (Dreamer-style).

- `returns`: the arithmetic of a dream's worth: `lambda_returns`, `continue_probabilities`
  (the calibrated termination head), `reach_weights`, `ReturnScale` (DreamerV3's percentiles);
- `networks`: `Actor` (a categorical or squashed-Gaussian policy) and `mlp` (the critic);
- `actor_critic`: `ActorCritic`, a `Planner` that `wm.learn` trains in imagination.
"""

from .actor_critic import ActorCritic, DreamScore, FeatureModel, TrainStats, never_ends
from .networks import Actor, mlp
from .returns import ReturnScale, continue_probabilities, lambda_returns, reach_weights

__all__ = [
    "Actor", "ActorCritic", "DreamScore", "FeatureModel", "ReturnScale", "TrainStats",
    "continue_probabilities", "lambda_returns", "mlp", "never_ends", "reach_weights",
]
