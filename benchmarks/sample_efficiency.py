"""Sample efficiency of model-based MPC on CartPole-v1: real steps until a mean return >= 475.

For each seed the agent learns (random warm-up, fit, act, refit); after every fit it is
evaluated on 3 separate episodes that are not added to the data. The table gives the real
env steps in the training data (warm-up included) at the first evaluation that scored >= 475.

The agent is the kit's default: `wm.RandomShooting(model)` (500 x 20, "mean") and
`wm.learn(env, planner, steps=..., seed=s)` with its defaults (30 epochs a fit, at least 100
gradient updates). Variants: the learned termination head ("learned"), the same loop with
fits of at least 300 updates ("more-updates", `learn(min_updates=300)`) or just the 30 epochs
("fewer-updates", `learn(min_updates=0)`: 30 updates while the buffer is one batch), the
same planner given CartPole's true termination rule beside the learned
dynamics ("true-termination", as mbrl-lib's PETS tutorial runs), a 5-member ensemble of the
same MLP with its learned termination head ("ensemble", "mean" propagation; about 5x the
compute per decision), and the planner with the true dynamics ("perfect model": no learning).

Compute beside each number: fit ms per real step (seconds spent fitting / real steps used)
and plan ms per agent step (the training episodes' planning / their steps); evaluation time
is the benchmark's own cost and is left out of both.

    python benchmarks/sample_efficiency.py --seeds 5 --steps 1500
    python benchmarks/sample_efficiency.py --variants ensemble     # ~8 min a seed on 1 thread
    python benchmarks/sample_efficiency.py --seeds 0-9 --out results.jsonl  # resumable

The runs go through wmkit.sweep: Ray tasks on every core when Ray is installed (--workers N,
--address of a running cluster), else one after another; see --help.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import wmkit as wm
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

VARIANTS = ("learned", "more-updates", "fewer-updates", "true-termination", "ensemble")
MIN_UPDATES = {"more-updates": 300, "fewer-updates": 0}  # the others: learn's default


class TimedShooting(wm.RandomShooting):
    """RandomShooting that adds up its thinking time, training episodes and evaluations apart
    (`learn` sets `explore` in training episodes; `evaluate` turns it off). CPU seconds of
    this process, so that other work on a shared machine does not count."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = {"train": 0.0, "eval": 0.0, "train_steps": 0}

    def __call__(self, obs):
        start = time.process_time()
        action = super().__call__(obs)
        key = "train" if self.explore else "eval"
        self.seconds[key] += time.process_time() - start
        self.seconds["train_steps"] += int(self.explore)
        return action


def run(variant: str, seed: int, args: argparse.Namespace) -> dict:
    wm.seed_everything(seed)
    env = wm.make_env("CartPole-v1", seed=seed)
    if variant == "ensemble":
        model = wm.EnsembleWorldModel.for_env(env, device="cpu", seed=seed)
    else:
        model = wm.MLPWorldModel.for_env(env, device="cpu")
    termination = wm.cartpole_termination if variant == "true-termination" else None
    shape = {} if args.candidates is None else {"candidates": args.candidates}
    planner = TimedShooting(model, horizon=args.horizon, termination_fn=termination,
                            seed=seed, **shape)
    updates = {"min_updates": MIN_UPDATES[variant]} if variant in MIN_UPDATES else {}
    start, cpu_start = time.perf_counter(), time.process_time()
    log = wm.learn(env, planner, steps=args.steps, seed=seed, eval_episodes=3,
                   target_return=475, progress=False, **updates)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    clock = planner.seconds
    real_steps = len(log.buffer)
    return {"solved_at": log.solved_at(), "seconds": seconds,
            "curve": [(e.real_steps, round(e.mean_return)) for e in log.evals],
            "fit_ms_per_step": 1000 * (cpu - clock["train"] - clock["eval"]) / real_steps,
            "plan_ms_per_step": 1000 * clock["train"] / max(1, clock["train_steps"])}


def one_run(variant: str, seed: int, settings: dict) -> dict:
    """One run of the sweep: `run` with the script's other flags, as JSON values."""
    return run(variant, seed, argparse.Namespace(**settings))


def report(run: dict, result: dict) -> None:
    print(f"  {run['variant']:17s} seed {run['seed']}: solved at {result['solved_at']}  "
          f"({result['seconds']:.0f} s; fit {result['fit_ms_per_step']:.1f} ms/real step, plan "
          f"{result['plan_ms_per_step']:.1f} ms/agent step)  curve {result['curve']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=None,
                        help="candidates per decision (default: RandomShooting's, 500)")
    add_sweep_arguments(parser, VARIANTS, default_variants=("learned", "true-termination"))
    args = parse_sweep_args(parser)
    torch.set_num_threads(args.threads)
    candidates = args.candidates or wm.RandomShooting(wm.TrueCartPole(device="cpu")).candidates
    print(f"CartPole-v1, MPC {candidates} candidates x horizon {args.horizon}, "
          f"budget {args.steps} real steps, seeds {args.seeds}\n")
    runs = [{"variant": variant, "seed": seed, "settings": args.settings}
            for variant in args.variants for seed in args.seeds]
    start = time.perf_counter()
    results = run_sweep(one_run, runs, **args.sweep, on_result=report)
    wall = time.perf_counter() - start
    rows = []
    for variant in args.variants:
        mine = [result for run, result in zip(runs, results) if run["variant"] == variant]
        solved = [result["solved_at"] for result in mine]
        by_1000 = sum(s is not None and s <= 1000 for s in solved)
        median = statistics.median([s if s is not None else float("inf") for s in solved])
        fit_ms = statistics.mean(result["fit_ms_per_step"] for result in mine)
        plan_ms = statistics.mean(result["plan_ms_per_step"] for result in mine)
        rows.append((variant, solved, median, by_1000, fit_ms, plan_ms))
    env = wm.make_env("CartPole-v1", seed=0)
    perfect = wm.RandomShooting(wm.TrueCartPole(device="cpu"), horizon=args.horizon,
                                candidates=candidates)
    perfect_mean = wm.evaluate(env, perfect, episodes=3, seed=10_000).mean_return
    print("\n| variant | real steps to >= 475, per seed | median | solved by 1,000 "
          "| fit ms / real step | plan ms / agent step |")
    print("|---|---|---|---|---|---|")
    for variant, solved, median, by_1000, fit_ms, plan_ms in rows:
        per_seed = ", ".join("-" if s is None else str(s) for s in solved)
        print(f"| {variant} | {per_seed} | {median} | {by_1000}/{len(solved)} | {fit_ms:.1f} "
              f"| {plan_ms:.1f} |")
    print(f"| perfect model (true dynamics) | 0 (mean return {perfect_mean:.0f}) | 0 | - | - "
          "| - |")
    print(f"\nsweep wall time {wall:.0f} s for {len(runs)} runs")


if __name__ == "__main__":
    main()
