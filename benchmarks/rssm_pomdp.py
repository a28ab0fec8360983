"""An RSSM on velocity-hidden CartPole: does memory make model-based planning work?

CartPole with only (x, theta) observed is a POMDP. A world model that maps one observation to
the next cannot know the velocities, so its plans fail; an RSSM builds a belief from the past.

Every agent follows the same protocol with the same real-step budget and seeds: a random
warm-up and a fit, then rounds of (act with random-shooting MPC for a while, refit), then
evaluation episodes that add no data. The planner is the same everywhere and uses each model's
learned reward and termination heads. Rows:

- "RSSM" on (x, theta);
- "LSTM" and "Transformer" on (x, theta): plain memory models (`wm.LSTMWorldModel`, the
  windowed `wm.TransformerWorldModel`, 8 steps), one-step prediction, no latent variable;
- "MLP, 1 frame": the MLP world model on (x, theta);
- "MLP, 2 frames": the MLP on the last two frames (not Markov: CartPole integrates with
  explicit Euler, so the velocity change between frames depends on the previous action);
- "MLP, 2 frames + previous action": Markov again, the honest hand-made baseline;
- the same RSSM and MLP on full CartPole (velocities observed), for reference.

The sequence models (RSSM, LSTM, Transformer) train alike: `wm.fit` on windows of 32 rows,
`--batch` rows per update, lr 1e-3 decayed linearly to `--final-lr` within every fit,
weight decay 1e-5. (At a constant lr the full-CartPole RSSM drifted the cart off the track:
see docs/RESULTS.md.)

The probe column: ridge regression from a memory model's belief features
(`model.features(model.beliefs(...))`: (h, z) for the RSSM, h for the LSTM, the newest
token's output for the Transformer) to the true hidden velocities, fitted on half of 2,000
fresh random steps and scored (R^2) on the other half's episodes.

    python benchmarks/rssm_pomdp.py --seeds 3 --steps 5000 --rounds 8   # the defaults
    python benchmarks/rssm_pomdp.py --variants rssm,mlp2a              # a subset

The runs go through wmkit.sweep: Ray tasks on every core when Ray is installed (--workers N,
--address of a running cluster), else one after another; see --help.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import wmkit as wm
from wmkit.analysis.probe import fit_probe, hidden_twin
from wmkit.models.rssm import RSSMWorldModel
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep


class FrameStack(gym.Wrapper):
    """Observe the last `frames` observations (newest first), optionally plus the previous
    action as a force sign (+1 right, -1 left, 0 before the first action)."""

    def __init__(self, env: gym.Env, frames: int = 2, previous_action: bool = False) -> None:
        super().__init__(env)
        self.frames, self.previous_action = frames, previous_action
        space = env.observation_space
        low, high = [space.low] * frames, [space.high] * frames
        if previous_action:
            low, high = low + [np.array([-1.0])], high + [np.array([1.0])]
        self.observation_space = gym.spaces.Box(np.concatenate(low).astype(np.float32),
                                                np.concatenate(high).astype(np.float32))

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self._stack, self._force = [obs] * self.frames, 0.0  # no motion seen yet
        return self._observation(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._stack = [obs, *self._stack[:-1]]
        self._force = 2.0 * float(action) - 1.0
        return self._observation(), reward, terminated, truncated, info

    def _observation(self) -> np.ndarray:
        parts = [*self._stack, [self._force]] if self.previous_action else self._stack
        return np.concatenate(parts).astype(np.float32)


def make(hidden: bool, seed: int, frames: int = 1, previous_action: bool = False) -> gym.Env:
    env = wm.make_env("CartPole-v1", seed=seed, hide_velocities=hidden)
    if frames > 1 or previous_action:
        env = FrameStack(env, frames, previous_action)
        env.reset(seed=seed)
    return env


def run(seed: int, args: argparse.Namespace, model_name: str, hidden: bool, frames: int = 1,
        previous_action: bool = False) -> dict[str, Any]:
    """One agent, the same protocol for every model: a random warm-up and a fit, then rounds
    of (collect with the planner, refit), then evaluation episodes that add no data."""
    wm.seed_everything(seed)
    env = make(hidden, seed, frames, previous_action)
    model = MODELS[model_name](env, args)
    planner = wm.RandomShooting(model, horizon=args.horizon, candidates=args.candidates,
                                seed=seed)
    buffer = wm.collect(env, steps=args.warmup, seed=seed)  # random warm-up
    fit_args: dict[str, Any] = {"holdout": args.holdout, "progress": False}
    if model.batches == "sequences":
        # Windows of 32 rows, `--batch` rows per update, lr 1e-3 decayed to --final-lr.
        fit_args.update(batch_size=args.batch, lr=1e-3, weight_decay=1e-5,
                        final_lr=args.final_lr or None, length=32)
    fit = functools.partial(wm.fit, model)
    fit(buffer, epochs=args.epochs, seed=seed, **fit_args)
    per_round = (args.steps - args.warmup) // max(args.rounds, 1)
    curve = []
    for r in range(args.rounds):
        wm.collect(env, steps=per_round, policy=planner, seed=seed + 100 * (r + 1), buffer=buffer)
        curve.append(round(float(np.mean(buffer.episode_returns()[-3:] or [0]))))
        fit(buffer, epochs=args.refit_epochs, seed=seed + r + 1, **fit_args)
    returns = wm.evaluate(env, planner, episodes=args.eval_episodes, seed=10_000 + seed).returns
    result: dict[str, Any] = {"returns": returns, "curve": curve}
    if model.batches == "sequences" and hidden:
        result["probe"] = probe_r2(model, seed)
    return result


def probe_r2(model: Any, seed: int) -> list[float]:
    """R^2 of (x_dot, theta_dot) read linearly off the belief, on held-out random episodes."""
    full = wm.collect(wm.make_env("CartPole-v1", seed=seed + 500), steps=2_000, seed=seed + 500)
    hidden = hidden_twin(full)
    d = full.tensors()
    features = model.features(model.beliefs(hidden, torch.arange(len(hidden)))).cpu()
    velocities = d["obs"][:, [1, 3]]
    starts = d["is_first"].nonzero().flatten()
    split = int(starts[len(starts) // 2])  # whole episodes on each side
    probe = fit_probe(features[:split], velocities[:split])
    return probe.score(features[split:], velocities[split:]).tolist()


def rssm_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"deter": args.deter, "stoch": args.stoch, "hidden": args.hidden,
            "free_nats": args.free_nats}


MODELS = {  # name: (env, args) -> a world model for env; the memory models at their defaults
    "rssm": lambda env, args: RSSMWorldModel.for_env(env, device="cpu", **rssm_kwargs(args)),
    "lstm": lambda env, args: wm.LSTMWorldModel.for_env(env, device="cpu"),
    "transformer": lambda env, args: wm.TransformerWorldModel.for_env(env, device="cpu"),
    "mlp": lambda env, args: wm.MLPWorldModel.for_env(env, device="cpu"),
}

VARIANTS = {  # name: (observed, model, run keyword arguments)
    "rssm": ("(x, theta)", "RSSM", {"model_name": "rssm", "hidden": True}),
    "lstm": ("(x, theta)", "LSTM", {"model_name": "lstm", "hidden": True}),
    "transformer": ("(x, theta)", "Transformer (8 steps)",
                    {"model_name": "transformer", "hidden": True}),
    "mlp1": ("(x, theta)", "MLP, 1 frame", {"model_name": "mlp", "hidden": True}),
    "mlp2": ("(x, theta)", "MLP, 2 frames", {"model_name": "mlp", "hidden": True, "frames": 2}),
    "mlp2a": ("(x, theta)", "MLP, 2 frames + previous action",
              {"model_name": "mlp", "hidden": True, "frames": 2, "previous_action": True}),
    "rssm-full": ("full", "RSSM", {"model_name": "rssm", "hidden": False}),
    "mlp-full": ("full", "MLP", {"model_name": "mlp", "hidden": False}),
}


def one_run(variant: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One run of the sweep: `run` for one row of VARIANTS, with the script's other flags."""
    start = time.perf_counter()
    result = run(seed, argparse.Namespace(**settings), **VARIANTS[variant][2])
    return {**result, "seconds": time.perf_counter() - start}


def report(run: dict[str, Any], result: dict[str, Any]) -> None:
    extra = {k: v for k, v in result.items() if k not in ("returns", "seconds")}
    print(f"  {run['variant']:10s} seed {run['seed']}: returns {result['returns']} {extra} "
          f"({result['seconds']:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="real steps per agent")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps first")
    parser.add_argument("--rounds", type=int, default=8, help="act-then-refit rounds")
    parser.add_argument("--epochs", type=int, default=150, help="epochs on the warm-up")
    parser.add_argument("--refit-epochs", type=int, default=30, help="epochs per round")
    parser.add_argument("--batch", type=int, default=512, help="memory models: rows per update")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="fraction held out of each fit (monitoring only: costs data)")
    parser.add_argument("--deter", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--stoch", type=int, default=16)
    parser.add_argument("--free-nats", type=float, default=1.0)
    parser.add_argument("--final-lr", type=float, default=1e-4,
                        help="memory models: decay the lr 1e-3 linearly to this within each fit "
                             "(0: constant)")
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=3)
    add_sweep_arguments(parser, VARIANTS, default_seeds=3)
    args = parse_sweep_args(parser)
    torch.set_num_threads(args.threads)
    seeds = args.seeds
    print(f"CartPole-v1, MPC {args.candidates} candidates x horizon {args.horizon}, "
          f"{args.steps} real steps per agent, {args.eval_episodes} evaluation episodes, "
          f"seeds {seeds}; RSSM lr 1e-3 decayed within each fit to "
          f"{args.final_lr or 'nothing (constant)'}\n", flush=True)
    runs = [{"variant": variant, "seed": seed, "settings": args.settings}
            for variant in args.variants for seed in seeds]
    every = run_sweep(one_run, runs, **args.sweep, on_result=report)
    rows = []
    for variant in args.variants:
        observed, name, _ = VARIANTS[variant]
        results = [result for run, result in zip(runs, every) if run["variant"] == variant]
        rows.append((observed, name, results))
    print("\n| observed | model | mean return per seed | mean | velocity probe R^2 "
          "(x_dot, theta_dot) |")
    print("|---|---|---|---|---|")
    for observed, name, results in rows:
        means = [statistics.mean(r["returns"]) for r in results]
        probe = [r["probe"] for r in results if "probe" in r]
        probe_text = ", ".join(f"({a:.3f}, {b:.3f})" for a, b in probe) if probe else "-"
        print(f"| {observed} | {name} | {', '.join(f'{m:.0f}' for m in means)} | "
              f"{statistics.mean(means):.0f} | {probe_text} |")


if __name__ == "__main__":
    main()
