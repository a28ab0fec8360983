"""World models: each one a `filter` and an `imagine` (see docs/DESIGN.md)."""

from .base import Imagined, Policy, Rollout, TerminationFn, TrainableModel, WorldModel, alive_before
from .ensemble import EnsembleWorldModel
from .lstm import LSTMWorldModel
from .mlp import MLPWorldModel
from .recurrent import MemoryState
from .rssm import RSSMWorldModel
from .transformer import TransformerWorldModel
from .true_cartpole import TrueCartPole, cartpole_termination

__all__ = [
    "EnsembleWorldModel", "Imagined", "LSTMWorldModel", "MLPWorldModel", "MemoryState", "Policy",
    "RSSMWorldModel", "Rollout", "TerminationFn", "TrainableModel", "TransformerWorldModel",
    "TrueCartPole", "WorldModel", "alive_before",
    "cartpole_termination",
]
