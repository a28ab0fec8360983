"""A CartPole whose dynamics change mid-run: the pole length jumps at a given real step.

A world model fitted before the change is now wrong, and nothing in the observation says so;
only the model's prediction errors do (see `wmkit.uncertainty.SurpriseDetector`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .utils import check_positive_int


class ChangePoleLength(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """CartPole whose pole half-length becomes `length` at real step `at_step`.

    Steps are counted across episodes from the moment of wrapping (resets do not count), so
    the change happens mid-run, possibly mid-episode, exactly once. Gymnasium's CartPole reads
    `length` and `polemass_length` (= masspole * length) on every step, so both are updated.

    Attributes:
        steps: real steps taken so far.
        changed: whether the change has happened.
        original_length: the pole half-length before the change (0.5 in CartPole-v1).
    """

    def __init__(self, env: gym.Env, at_step: int, length: float = 1.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, at_step=at_step, length=length)
        super().__init__(env)
        core = env.unwrapped
        if not hasattr(core, "polemass_length"):
            raise ValueError(f"env: expected a CartPole env, got {core!r}")
        self.at_step = check_positive_int("at_step", at_step)
        if not (isinstance(length, (int, float)) and length > 0):
            raise ValueError(f"length: expected a positive float, got {length!r}")
        self.length = float(length)
        self.original_length = float(core.length)
        self.steps = 0
        self.changed = False

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.steps == self.at_step and not self.changed:
            core = self.env.unwrapped
            core.length = self.length
            core.polemass_length = core.masspole * self.length
            self.changed = True
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "dynamics_changed": self.changed}
        return obs, reward, terminated, truncated, info
