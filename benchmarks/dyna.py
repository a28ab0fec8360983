"""Sample efficiency of Dyna on CartPole-v1: real steps until a greedy mean return >= 475.

Every agent is evaluated greedily on 3 separate episodes (never added to the data) every
`--eval-every` real steps (Dyna / DQN) or after every model fit (MPC, as `wm.learn` does); the
table gives the real env steps of training data, warm-up included, at the first evaluation
that scored a mean >= 475, per seed ("-" = not within the budget).

Variants:
  dqn            Double DQN, 1 update per real step (Dyna with k = 0)
  dqn+replay5    k = 0 plus 5 extra updates on replayed real minibatches per step
  dqn+replay20   k = 0 plus 20 extra replayed real updates: the same gradient steps as dyna20
  dyna5, dyna20  1 real + k imagined updates per real step (1-step branches from real states)
  dyna5-mve10, dyna20-mve10  1 real + k imagined updates whose targets are 10-step imagined
                 returns of the greedy policy from real states (value_expansion=10)
  mpc            random-shooting MPC, wm.learn + wm.RandomShooting(horizon=20, candidates=200)
  not run by default:
  dyna5-mve3, dyna5-mve5, dyna20-mve5  other expansion horizons
  dyna5-true-term, dyna20-true-term  (diagnostic) Dyna imagining with the learned dynamics but
                 CartPole's true termination rule, as MBPO does

    python benchmarks/dyna.py --seeds 5 --workers 2
    python benchmarks/dyna.py --seeds 10 --variants dqn+replay5,dyna5,dyna5-mve10
    python benchmarks/dyna.py --seeds 2 --variants dqn,dyna20 --budget 6000

The runs go through wmkit.sweep: Ray tasks on every core when Ray is installed (--workers N,
--address of a running cluster), else one after another; see --help.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import wmkit as wm
from wmkit.planners.dyna import Dyna, train_dyna
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

VARIANTS: dict[str, dict[str, Any]] = {  # name -> Dyna keyword arguments
    "dqn": {}, "dqn+replay5": {"replay_updates": 5}, "dqn+replay20": {"replay_updates": 20},
    "dyna5": {"planning_updates": 5}, "dyna20": {"planning_updates": 20},
    # Model-based value expansion: each imagined update regresses Q(s, a) of a real state on
    # an H-step imagined return under the greedy policy.
    "dyna5-mve5": {"planning_updates": 5, "value_expansion": 5},
    "dyna20-mve5": {"planning_updates": 20, "value_expansion": 5},
    "dyna5-mve10": {"planning_updates": 5, "value_expansion": 10},
    "dyna20-mve10": {"planning_updates": 20, "value_expansion": 10},
    "dyna5-mve3": {"planning_updates": 5, "value_expansion": 3},
    # Diagnostics, not in the default list: the learned dynamics with CartPole's true
    # termination rule (as MBPO does): how much of Dyna's gap is the termination head?
    "dyna5-true-term": {"planning_updates": 5, "termination_fn": "true"},
    "dyna20-true-term": {"planning_updates": 20, "termination_fn": "true"},
}


DEFAULT_VARIANTS = ("dqn", "dqn+replay5", "dqn+replay20", "dyna5", "dyna20", "dyna5-mve10",
                    "dyna20-mve10", "mpc")


def run(variant: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One (variant, seed) training run -> solved_at, the evaluation curve and wall seconds."""
    args = argparse.Namespace(**settings)  # the script's flags (wmkit.sweep sets the threads)
    wm.seed_everything(seed)
    env = wm.make_env("CartPole-v1", seed=seed)
    start = time.perf_counter()
    if variant == "mpc":
        model = wm.MLPWorldModel.for_env(env, device="cpu")
        planner = wm.RandomShooting(model, horizon=20, candidates=200, seed=seed)
        log = wm.learn(env, planner, steps=args.mpc_budget, seed=seed, eval_episodes=3,
                       target_return=475, progress=False)
    else:
        kwargs = dict(VARIANTS[variant])
        if kwargs.get("termination_fn") == "true":
            kwargs["termination_fn"] = wm.cartpole_termination
        k = kwargs.get("planning_updates", 0)
        model = wm.MLPWorldModel.for_env(env, device="cpu") if k else None
        agent = Dyna.for_env(env, model, seed=seed, device="cpu", **kwargs)
        budget = args.extra_budget if k or kwargs.get("replay_updates") else args.budget
        log = train_dyna(env, agent, steps=budget, seed=seed, eval_every=args.eval_every,
                         eval_episodes=3, target_return=475, progress=False)
    seconds = time.perf_counter() - start
    curve = [(e.real_steps, round(e.mean_return)) for e in log.evals]
    return {"variant": variant, "seed": seed, "solved_at": log.solved_at(), "seconds": seconds,
            "curve": curve}


def report(run: dict, result: dict[str, Any]) -> None:
    print(f"  {result['variant']:13s} seed {result['seed']}: solved at {result['solved_at']}  "
          f"({result['seconds']:.0f} s)  curve {result['curve']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=15_000,
                        help="real-step budget of plain DQN (1 update per step)")
    parser.add_argument("--extra-budget", type=int, default=5_000,
                        help="real-step budget of the runs with extra updates (replay, dyna): "
                             "the 3x goal needs them well under it, and each step costs k+1 "
                             "updates")
    parser.add_argument("--mpc-budget", type=int, default=2_000)
    parser.add_argument("--eval-every", type=int, default=100)
    add_sweep_arguments(parser, [*VARIANTS, "mpc"], default_variants=DEFAULT_VARIANTS)
    args = parse_sweep_args(parser)
    variants = args.variants
    print(f"CartPole-v1, seeds {args.seeds}, real-step budgets: dqn {args.budget}, replay/dyna "
          f"{args.extra_budget}, mpc {args.mpc_budget}; greedy evaluation (3 episodes) every "
          f"{args.eval_every} steps; {args.threads} thread(s) per run\n")
    runs = [{"variant": variant, "seed": seed, "settings": args.settings}
            for variant in variants for seed in args.seeds]
    start = time.perf_counter()
    results = run_sweep(run, runs, **args.sweep, on_result=report)
    total = time.perf_counter() - start
    baseline = [r["solved_at"] for r in results if r["variant"] == "dqn"]
    k0 = _median(baseline) if baseline else math.inf  # no "vs dqn" column without dqn runs
    print("\n| variant | real steps to >= 475, per seed | median | solved | vs dqn "
          "| wall s per run (median) |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant]
        solved = [r["solved_at"] for r in rows]
        median = _median(solved)
        ratio = f"{k0 / median:.1f}x fewer" if math.isfinite(median) and variant != "dqn" \
            and math.isfinite(k0) else ""
        per_seed = ", ".join("-" if s is None else str(s) for s in solved)
        found = sum(s is not None for s in solved)
        seconds = statistics.median(r["seconds"] for r in rows)
        print(f"| {variant} | {per_seed} | {_fmt(median)} | {found}/{len(rows)} | {ratio} "
              f"| {seconds:.0f} |")
    print(f"\ntotal wall time {total:.0f} s (shared CPU: timings are only comparable within "
          "one run of this script)")


def _median(solved: list[int | None]) -> float:
    """Median real steps, an unsolved run counting as infinitely many."""
    return statistics.median([s if s is not None else math.inf for s in solved])


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:g}"


if __name__ == "__main__":
    main()
