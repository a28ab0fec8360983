"""Planners: turn a world model into actions (the interface and the MPC base: `base`)."""

from .base import MPCPlanner, Plan, Planner
from .cem import CEM, cem_update
from .dyna import Dyna, train_dyna
from .gradient import GradientPlanner
from .mcts import MCTS
from .mppi import MPPI, mppi_update
from .shooting import RandomShooting

__all__ = ["CEM", "MCTS", "MPPI", "Dyna", "GradientPlanner", "MPCPlanner", "Plan", "Planner",
           "RandomShooting", "cem_update", "mppi_update", "train_dyna"]
