"""Planners: turn a world model into actions."""

from .dyna import Dyna, train_dyna
from .shooting import Plan, RandomShooting

__all__ = ["Dyna", "Plan", "RandomShooting", "train_dyna"]
