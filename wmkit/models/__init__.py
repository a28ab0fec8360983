"""World models: each one a `filter` and an `imagine` (see docs/DESIGN.md)."""

from .base import Rollout, TerminationFn, WorldModel, alive_before
from .mlp import MLPWorldModel
from .true_cartpole import TrueCartPole, cartpole_termination

__all__ = ["MLPWorldModel", "Rollout", "TerminationFn", "TrueCartPole", "WorldModel",
           "alive_before", "cartpole_termination"]
