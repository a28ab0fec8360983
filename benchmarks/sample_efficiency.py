"""Sample efficiency of model-based MPC on CartPole-v1: real steps until a mean return >= 475.

For each seed the agent learns (random warm-up, fit, act, refit); after every fit it is
evaluated on 3 separate episodes that are not added to the data. The table gives the real
env steps in the training data (warm-up included) at the first evaluation that scored >= 475.

Variants: the learned termination head ("learned"), the same planner given CartPole's true
termination rule beside the learned dynamics ("true-termination", as mbrl-lib's PETS tutorial
runs), a 5-member ensemble of the same MLP with its learned termination head ("ensemble",
"mean" propagation; about 5x the compute per decision), and the planner with the true
dynamics ("perfect model": no learning at all).

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

VARIANTS = ("learned", "true-termination", "ensemble")


def run(variant: str, seed: int, args: argparse.Namespace) -> tuple[int | None, list, float]:
    wm.seed_everything(seed)
    env = wm.make_env("CartPole-v1", seed=seed)
    if variant == "ensemble":
        model = wm.EnsembleWorldModel.for_env(env, device="cpu", seed=seed)
    else:
        model = wm.MLPWorldModel.for_env(env, device="cpu")
    termination = wm.cartpole_termination if variant == "true-termination" else None
    planner = wm.RandomShooting(model, horizon=args.horizon, candidates=args.candidates,
                                termination_fn=termination, seed=seed)
    start = time.perf_counter()
    log = wm.learn(env, planner, steps=args.steps, seed=seed, eval_episodes=3,
                   target_return=475, progress=False)
    curve = [(e.real_steps, round(e.mean_return)) for e in log.evals]
    return log.solved_at(), curve, time.perf_counter() - start


def one_run(variant: str, seed: int, settings: dict) -> dict:
    """One run of the sweep: `run` with the script's other flags, as JSON values."""
    solved_at, curve, seconds = run(variant, seed, argparse.Namespace(**settings))
    return {"solved_at": solved_at, "curve": curve, "seconds": seconds}


def report(run: dict, result: dict) -> None:
    print(f"  {run['variant']:17s} seed {run['seed']}: solved at {result['solved_at']}  "
          f"({result['seconds']:.0f} s)  curve {result['curve']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=200)
    add_sweep_arguments(parser, VARIANTS, default_variants=("learned", "true-termination"))
    args = parse_sweep_args(parser)
    torch.set_num_threads(args.threads)
    print(f"CartPole-v1, MPC {args.candidates} candidates x horizon {args.horizon}, "
          f"budget {args.steps} real steps, seeds {args.seeds}\n")
    runs = [{"variant": variant, "seed": seed, "settings": args.settings}
            for variant in args.variants for seed in args.seeds]
    start = time.perf_counter()
    results = run_sweep(one_run, runs, **args.sweep, on_result=report)
    wall = time.perf_counter() - start
    rows = []
    for variant in args.variants:
        solved = [result["solved_at"] for run, result in zip(runs, results)
                  if run["variant"] == variant]
        found = sorted(s for s in solved if s is not None)
        median = statistics.median([s if s is not None else float("inf") for s in solved])
        rows.append((variant, solved, median, len(found)))
    env = wm.make_env("CartPole-v1", seed=0)
    perfect = wm.RandomShooting(wm.TrueCartPole(device="cpu"), horizon=args.horizon,
                                candidates=args.candidates)
    perfect_mean = wm.evaluate(env, perfect, episodes=3, seed=10_000).mean_return
    print("\n| variant | real steps to >= 475, per seed | median | solved |")
    print("|---|---|---|---|")
    for variant, solved, median, n in rows:
        per_seed = ", ".join("-" if s is None else str(s) for s in solved)
        print(f"| {variant} | {per_seed} | {median} | {n}/{len(solved)} |")
    print(f"| perfect model (true dynamics) | 0 (mean return {perfect_mean:.0f}) | 0 | - |")
    print(f"\nsweep wall time {wall:.0f} s for {len(runs)} runs")


if __name__ == "__main__":
    main()
