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
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import wmkit as wm

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--variants", default="learned,true-termination",
                        help="comma-separated: learned, true-termination, ensemble")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: expected some of {', '.join(VARIANTS)}, got {sorted(unknown)}")
    torch.set_num_threads(args.threads)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"CartPole-v1, MPC {args.candidates} candidates x horizon {args.horizon}, "
          f"budget {args.steps} real steps, seeds {list(seeds)}\n")
    rows = []
    for variant in args.variants.split(","):
        solved = []
        for seed in seeds:
            steps, curve, seconds = run(variant, seed, args)
            solved.append(steps)
            print(f"  {variant:17s} seed {seed}: solved at {steps}  ({seconds:.0f} s)  "
                  f"curve {curve}", flush=True)
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


if __name__ == "__main__":
    main()
