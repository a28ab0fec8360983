"""The one episode runner: an agent acts in a real environment, one step at a time.

Every loop in the kit that touches a real env is a `for step in run(...)` over this generator:
`collect` adds each step to a buffer, `evaluate` sums whole episodes, `learn` refits the model
between steps, `train_dyna` updates its Q-network, `adapt_on_surprise` scores each transition.
The runner owns what they all share: seeding and resetting the env, telling the agent that an
episode starts (`agent.reset()`), a random warm-up, and the bookkeeping of episode returns.

    for step in wm.run(env, planner, steps=500, seed=0, warmup=100):
        buffer.add(*step.transition)
        if step.episode_over:
            print(step.episode, step.episode_return)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .train import History
from .utils import check_nonnegative_int, check_positive_int


@runtime_checkable
class Agent(Protocol):
    """Anything that acts: `agent(obs) -> action`, told by `reset()` that an episode starts
    and by `reseed(seed)` where to restart its random numbers (a planner's sampling).

    Planners and learned policies are agents; a plain callable becomes one with `as_agent`.
    """

    def __call__(self, obs: Any) -> Any: ...

    def reset(self) -> None: ...

    def reseed(self, seed: int) -> None:
        """Restart any sampling the agent does from `seed` (evaluations are repeatable)."""


class _Callable:
    """A plain `obs -> action` callable as an `Agent` (nothing to forget between episodes)."""

    def __init__(self, policy: Callable[[Any], Any]) -> None:
        self.policy = policy

    def __call__(self, obs: Any) -> Any:
        return self.policy(obs)

    def reset(self) -> None:
        pass

    def reseed(self, seed: int) -> None:
        pass


def as_agent(policy: Agent | Callable[[Any], Any]) -> Agent:
    """`policy` as an `Agent`: agents pass through, plain callables get no-op `reset`/`reseed`."""
    if isinstance(policy, Agent):
        return policy
    if not callable(policy):
        raise ValueError(f"agent: expected a callable obs -> action, got {policy!r}")
    return _Callable(policy)


@dataclass(frozen=True)
class RealStep:
    """One real transition, as the runner saw it.

    index: real steps taken in this run so far, this one included (1, 2, ...);
    episode: which episode of the run this step belongs to (0, 1, ...);
    episode_return: the episode's return so far, this step's reward included;
    random: True if the action was a warm-up action (uniformly random);
    seconds: wall-clock time the agent took to choose the action (0 for random actions).
    """

    index: int
    obs: Any
    action: Any
    reward: float
    next_obs: Any
    terminated: bool
    truncated: bool
    episode: int
    episode_return: float
    random: bool
    seconds: float

    @property
    def episode_over(self) -> bool:
        return self.terminated or self.truncated

    @property
    def transition(self) -> tuple[Any, Any, float, Any, bool, bool]:
        """(obs, action, reward, next_obs, terminated, truncated): `ReplayBuffer.add`'s order."""
        return (self.obs, self.action, self.reward, self.next_obs, self.terminated,
                self.truncated)


def run(env: gym.Env, agent: Agent | Callable[[Any], Any] | None = None, *,
        steps: int | None = None, episodes: int | None = None, seed: int | None = None,
        seed_episodes: bool = False, warmup: int = 0) -> Iterator[RealStep]:
    """Act in `env` and yield every real step, until `steps` steps or `episodes` episodes.

    agent: acts from step `warmup + 1` on (None: uniformly random throughout); its `reset()`
        is called at every episode start.
    steps / episodes: stop after this many real steps (possibly mid-episode) or this many
        finished episodes; give one or both.
    seed: reset the env with it first and seed its action space (the warm-up's randomness);
        None continues from the env's current random state.
    seed_episodes: reset episode i with `seed + i` instead (evaluation: each episode repeatable
        on its own, whatever happened before it).
    warmup: the first `warmup` steps act uniformly at random.
    The caller may stop early (`break`); the env is left where it stopped.
    """
    if steps is None and episodes is None:
        raise ValueError("steps, episodes: give at least one of them")
    if steps is not None:
        steps = check_positive_int("steps", steps)
    if episodes is not None:
        episodes = check_positive_int("episodes", episodes)
    warmup = check_nonnegative_int("warmup", warmup)
    if seed_episodes and seed is None:
        raise ValueError("seed: seed_episodes=True needs a seed")
    acting = None if agent is None else as_agent(agent)
    if seed is not None:
        env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    episode, episode_return, index = 0, 0.0, 0
    if acting is not None:
        acting.reset()
    while (steps is None or index < steps) and (episodes is None or episode < episodes):
        index += 1
        random = acting is None or index <= warmup
        tic = time.perf_counter()
        action = env.action_space.sample() if random else acting(obs)
        seconds = 0.0 if random else time.perf_counter() - tic
        next_obs, reward, terminated, truncated, _ = env.step(action)
        episode_return += float(reward)
        yield RealStep(index, obs, action, float(reward), next_obs, bool(terminated),
                       bool(truncated), episode, episode_return, random, seconds)
        obs = next_obs
        if terminated or truncated:
            episode, episode_return = episode + 1, 0.0
            if episodes is not None and episode >= episodes:
                break
            obs, _ = env.reset(seed=seed + episode if seed_episodes else None)
            if acting is not None:
                acting.reset()


# ------------------------------------------------------------------ what runs leave behind


@dataclass
class Episode:
    """One real training episode: where it ended (cumulative real steps) and its return."""

    real_steps: int
    ret: float
    phase: str  # "warmup" (random actions) or "agent"


@dataclass
class Evaluation:
    """Returns of separate evaluation episodes, run after `real_steps` of training data."""

    real_steps: int
    returns: list[float]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))


@dataclass
class LearnLog:
    """What `learn` did: training episodes, evaluations, fit histories and the data."""

    episodes: list[Episode] = field(default_factory=list)
    evals: list[Evaluation] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    buffer: ReplayBuffer | None = None

    def solved_at(self, target: float = 475.0) -> int | None:
        """Real steps of data after which an evaluation first scored >= target, else None."""
        return next((e.real_steps for e in self.evals if e.mean_return >= target), None)


def evaluate(env: gym.Env, agent: Any, episodes: int = 5, seed: int = 1,
             progress: bool = False) -> Evaluation:
    """Run `agent` (a callable obs -> action, e.g. a planner) for whole episodes.

    Episode i starts from `env.reset(seed=seed + i)`, and a planner's sampling is reseeded
    with `seed`, so an evaluation is repeatable. Nothing is added to any buffer.
    """
    episodes = check_positive_int("episodes", episodes)
    agent = as_agent(agent)
    agent.reseed(seed)
    # A planner that explores while it learns is judged on what it does when it does not.
    from .planners.base import Planner  # here: planners import this module

    was_exploring = isinstance(agent, Planner) and agent.explore
    if was_exploring:
        agent.explore = False
    try:
        returns = [step.episode_return
                   for step in tqdm(run(env, agent, episodes=episodes, seed=seed,
                                        seed_episodes=True),
                                    desc="evaluate", disable=not progress, leave=False)
                   if step.episode_over]
    finally:
        if was_exploring:
            agent.explore = True
    return Evaluation(real_steps=0, returns=returns)
