"""World models: each one a `filter` and an `imagine` (see docs/DESIGN.md)."""

from .base import Rollout, TerminationFn, WorldModel, alive_before
from .ensemble import EnsembleWorldModel
from .mlp import MLPWorldModel
from .rssm import RSSMWorldModel
from .true_cartpole import TrueCartPole, cartpole_termination

__all__ = [
    "EnsembleWorldModel", "MLPWorldModel", "RSSMWorldModel", "Rollout", "TerminationFn",
    "TrueCartPole", "WorldModel", "alive_before", "cartpole_termination",
]
