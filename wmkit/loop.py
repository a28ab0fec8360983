"""The model-based loop: random warm-up, fit, act with the planner, add the data, refit."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
from tqdm.auto import tqdm

from .buffer import ReplayBuffer
from .runner import Episode, Evaluation, LearnLog, evaluate, run
from .train import check_fit_kwargs, fit
from .utils import check_nonnegative_int, check_positive_int, seed_everything


def learn(env: gym.Env, planner: Any, steps: int = 1_000, seed: int = 0, warmup: int = 200,
          refit_every: int = 100, epochs: int = 30, min_updates: int = 100,
          eval_episodes: int = 0, eval_every: int = 1, target_return: float | None = None,
          fit_kwargs: dict[str, Any] | None = None, progress: bool = True) -> LearnLog:
    """Train `planner.model` in place from `steps` real steps (warm-up included).

    The first `warmup` steps act at random; then the model is fitted and the planner acts.
    The model is refitted (warm-started) at every episode end and every `refit_every` steps,
    each fit `epochs` epochs but at least `min_updates` gradient updates: while the buffer
    holds a few hundred rows an epoch is one batch, and 30 updates leave the termination head
    undertrained (100 measured best; docs/RESULTS.md). `fit_kwargs`: any other `fit` argument.
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
    epochs = check_positive_int("epochs", epochs)
    min_updates = check_nonnegative_int("min_updates", min_updates)
    fit_kwargs = check_fit_kwargs(fit_kwargs)
    for name in ("epochs", "min_updates"):
        if name in fit_kwargs:
            raise ValueError(f"fit_kwargs: {name} is an argument of learn itself; pass "
                             f"learn(..., {name}=...)")
    if warmup > steps:
        raise ValueError(f"warmup: expected at most steps={steps}, got {warmup}")
    seed_everything(seed)
    planner.reseed(seed)
    planner.explore = True  # training episodes; every evaluation runs with it False
    eval_env = copy.deepcopy(env) if eval_episodes else None
    log = LearnLog(buffer=ReplayBuffer.for_env(env, capacity=steps))
    fit_args = {"epochs": epochs, "min_updates": min_updates, "progress": False, **fit_kwargs}
    since_fit, fitted, last_eval = 0, False, -eval_every
    bar = tqdm(run(env, planner, steps=steps, seed=seed, warmup=warmup), total=steps,
               desc="learn", disable=not progress)
    for real in bar:
        log.buffer.add(*real.transition)
        since_fit += 1
        if real.episode_over:
            log.episodes.append(Episode(real.index, real.episode_return,
                                        "warmup" if real.random else "agent"))
            bar.set_postfix(episode_return=real.episode_return)
        if real.index >= warmup and (real.episode_over or since_fit >= refit_every or not fitted):
            log.histories.append(fit(planner.model, log.buffer, seed=seed + real.index,
                                     **fit_args))
            planner.after_fit(log.buffer, seed=seed + real.index)
            fitted, since_fit = True, 0
            if eval_env is not None and real.index - last_eval >= eval_every:
                result = evaluate(eval_env, planner, eval_episodes, seed=seed + 10_000)
                log.evals.append(Evaluation(real.index, result.returns))
                last_eval = real.index
                if target_return is not None and result.mean_return >= target_return:
                    break
            planner.reseed(seed + real.index)
            if not real.episode_over:
                # The belief was built before this refit; rebuild it from the current obs.
                planner.reset()
    planner.explore = False
    return log
