"""The model-based loop: random warm-up, fit, act with the planner, add the data, refit."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .train import History, check_fit_kwargs, fit
from .utils import check_positive_int, seed_everything


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


def _reset(agent: Any) -> None:
    if hasattr(agent, "reset"):
        agent.reset()


def evaluate(env: gym.Env, agent: Any, episodes: int = 5, seed: int = 1,
             progress: bool = False) -> Evaluation:
    """Run `agent` (a callable obs -> action, e.g. a planner) for whole episodes.

    Episode i starts from `env.reset(seed=seed + i)`, and a planner's sampling is reseeded
    with `seed`, so an evaluation is repeatable. Nothing is added to any buffer.
    """
    episodes = check_positive_int("episodes", episodes)
    if hasattr(agent, "reseed"):
        agent.reseed(seed)
    returns = []
    for i in tqdm(range(episodes), desc="evaluate", disable=not progress, leave=False):
        obs, _ = env.reset(seed=seed + i)
        _reset(agent)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return Evaluation(real_steps=0, returns=returns)


def learn(env: gym.Env, planner: Any, steps: int = 1_000, seed: int = 0, warmup: int = 200,
          refit_every: int = 100, epochs: int = 30, eval_episodes: int = 0,
          eval_every: int = 1, target_return: float | None = None,
          fit_kwargs: dict[str, Any] | None = None, progress: bool = True) -> LearnLog:
    """Train `planner.model` in place from `steps` real steps (warm-up included).

    The first `warmup` steps act at random; then the model is fitted and the planner acts.
    The model is refitted (warm-started) at every episode end and every `refit_every` steps.
    With `eval_episodes > 0`, a fit is followed by an evaluation on a copy of the env (never
    added to the data) once `eval_every` real steps have passed since the last one (1: after
    every fit); with `target_return`, learning stops once one reaches it. Evaluating never
    changes the training run: the planner is reseeded after every fit either way.
    One `seed` seeds torch, numpy, the env, its action space and the planner's sampling.
    """
    steps = check_positive_int("steps", steps)
    warmup = check_positive_int("warmup", warmup)
    refit_every = check_positive_int("refit_every", refit_every)
    eval_every = check_positive_int("eval_every", eval_every)
    if warmup > steps:
        raise ValueError(f"warmup: expected at most steps={steps}, got {warmup}")
    seed_everything(seed)
    planner.reseed(seed)
    env.action_space.seed(seed)
    eval_env = copy.deepcopy(env) if eval_episodes else None
    log = LearnLog(buffer=ReplayBuffer.for_env(env, capacity=steps))
    fit_args = {"epochs": epochs, "progress": False, **check_fit_kwargs(fit_kwargs)}
    obs, _ = env.reset(seed=seed)
    planner.reset()
    episode_return, since_fit, fitted, last_eval = 0.0, 0, False, -eval_every
    bar = tqdm(range(1, steps + 1), desc="learn", disable=not progress)
    for step in bar:
        action = planner(obs) if fitted else env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        log.buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
        obs, episode_return, since_fit = next_obs, episode_return + float(reward), since_fit + 1
        episode_over = terminated or truncated
        if episode_over:
            log.episodes.append(Episode(step, episode_return, "agent" if fitted else "warmup"))
            bar.set_postfix(episode_return=episode_return)
            obs, _ = env.reset()
            planner.reset()
            episode_return = 0.0
        if step >= warmup and (episode_over or since_fit >= refit_every or not fitted):
            log.histories.append(fit(planner.model, log.buffer, seed=seed + step, **fit_args))
            fitted, since_fit = True, 0
            if eval_env is not None and step - last_eval >= eval_every:
                result = evaluate(eval_env, planner, eval_episodes, seed=seed + 10_000)
                log.evals.append(Evaluation(step, result.returns))
                last_eval = step
                if target_return is not None and result.mean_return >= target_return:
                    break
            planner.reseed(seed + step)
            if not episode_over:
                # The belief was built before this refit; rebuild it from the current obs.
                planner.reset()
    return log
