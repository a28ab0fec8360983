"""Planners: turn a world model into actions."""

from .shooting import Plan, RandomShooting

__all__ = ["Plan", "RandomShooting"]
