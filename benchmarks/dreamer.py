"""Learning a policy in the dream: how many real steps, how much compute, how cheap a decision.

Every run learns with the kit's one loop, `wm.learn` (random warm-up, fit, act, refit at every
episode end and every 100 steps), and after a fit, once 100 real steps have passed since the
last, is evaluated on 3 separate episodes that add no data; it stops at the first evaluation
whose mean is >= 475 and reports the real steps of data then (warm-up included). Variants:

  actor        CartPole-v1, the MLP world model, `ActorCritic` (256 imagined starts x 15
               steps, --updates-per-step imagined updates per real step), sampling its actor
               in training episodes (`wm.learn` sets `explore`) and acting greedily with the
               actor alone in evaluations
  actor-rssm   velocity-hidden CartPole (x, theta), the RSSM, the same actor-critic reading
               the belief (h, z) (--rssm-updates-per-step); the RSSM is refitted for
               --rssm-epochs every --rssm-refit-every steps (its fits are costly)
  mpc          CartPole-v1, the MLP, random-shooting MPC at --candidates x --horizon (the
               setting of benchmarks/sample_efficiency.py), for the curves
  dyna         CartPole-v1, Dyna k=5 with value expansion H=10 (`train_dyna`, its own loop;
               evaluated every 100 steps too), for the curves

Each run also records, at every evaluation, the wall-clock and CPU seconds spent so far, so
returns can be drawn against real steps and against compute (--figure). The "actor" runs end
by timing decisions side by side on their trained model: the actor alone vs random-shooting
MPC at --candidates x --horizon, one 200-step episode each, in the same process.

    python benchmarks/dreamer.py --seeds 3 --variants actor          # screen first
    python benchmarks/dreamer.py --seeds 10 --variants actor --out dreamer.jsonl
    python benchmarks/dreamer.py --seeds 5 --variants actor-rssm --out dreamer.jsonl
    python benchmarks/dreamer.py --seeds 3 --variants mpc,dyna --out dreamer.jsonl
    python benchmarks/dreamer.py --report dreamer.jsonl --figure dreamer.png  # tables, curves

CPU seconds (`time.process_time`) are reported beside wall seconds: on a shared machine the
wall clock mostly measures the neighbours. The runs go through wmkit.sweep: Ray tasks on every
core when Ray is installed (--workers N, --address of a running cluster), else one after
another; see --help.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wmkit as wm
from wmkit.agents import ActorCritic
from wmkit.planners.dyna import Dyna, train_dyna
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

VARIANTS = ("actor", "actor-rssm", "mpc", "dyna")
EVAL_SEED_OFFSET = 10_000  # learn and train_dyna evaluate with seed + 10_000


class Clock:
    """Wall and CPU seconds since the start, stamped whenever an evaluation begins.

    Both loops evaluate with `evaluate(..., seed=seed + 10_000)`, which first calls
    `agent.reseed(seed + 10_000)`: that call is the stamp. (Dyna has no `reset`/`reseed`, so
    `evaluate` would wrap it; it gets no-op ones here, which makes it an `Agent` as it is.)
    """

    def __init__(self, agent: Any, eval_seed: int) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.stamps: list[tuple[float, float]] = []
        if isinstance(agent, Dyna):
            agent.reset = lambda: None
            agent.reseed = lambda seed: None
        reseed: Callable[[int], None] = agent.reseed

        def stamped(seed: int) -> None:
            if seed == eval_seed:
                self.stamps.append(self.now())
            reseed(seed)

        agent.reseed = stamped

    def now(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


class CPUTimed:
    """An agent whose decisions are also timed in CPU seconds (`time.process_time`): on a
    shared machine the wall clock of a 0.1 ms decision mostly measures the neighbours."""

    def __init__(self, agent: Any) -> None:
        self.agent, self.cpu_seconds = agent, 0.0

    def __call__(self, obs: Any) -> Any:
        start = time.process_time()
        action = self.agent(obs)
        self.cpu_seconds += time.process_time() - start
        return action

    def reset(self) -> None:
        self.agent.reset()

    def reseed(self, seed: int) -> None:
        self.agent.reseed(seed)


def decision_cost(env: Any, agent: Any, seed: int, steps: int = 200) -> dict[str, float]:
    """Milliseconds per decision (CPU and wall) and the return, over one episode of at most
    `steps` real steps from `seed`."""
    timed = CPUTimed(agent)
    timed.reseed(seed)
    taken = list(wm.run(env, timed, steps=steps, episodes=1, seed=seed))
    return {"cpu_ms": 1000 * timed.cpu_seconds / len(taken),
            "wall_ms": 1000 * float(np.mean([step.seconds for step in taken])),
            "return": taken[-1].episode_return}


def learn_run(variant: str, seed: int, s: argparse.Namespace) -> dict[str, Any]:
    wm.seed_everything(seed)
    hidden = variant == "actor-rssm"
    env = wm.make_env("CartPole-v1", seed=seed, hide_velocities=hidden)
    if hidden:
        model: Any = wm.RSSMWorldModel.for_env(env, device="cpu")
    else:
        model = wm.MLPWorldModel.for_env(env, device="cpu")
    if variant == "mpc":
        agent: Any = wm.RandomShooting(model, horizon=s.horizon, candidates=s.candidates,
                                       seed=seed)
    else:
        agent = ActorCritic(model, updates_per_step=s.rssm_updates_per_step if hidden
                            else s.updates_per_step, seed=seed, progress=False)
    # The RSSM's fits cost ~0.7 CPU s per epoch per 1,000 rows: fewer, shorter refits.
    schedule = {"epochs": s.rssm_epochs, "refit_every": s.rssm_refit_every} if hidden else {}
    clock = Clock(agent, seed + EVAL_SEED_OFFSET)
    log = wm.learn(env, agent, steps=s.rssm_steps if hidden else s.steps, seed=seed,
                   warmup=s.warmup, eval_episodes=3, eval_every=100, target_return=475,
                   progress=False, **schedule)
    wall, cpu = clock.now()
    result = {"solved_at": log.solved_at(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "curve": [(e.real_steps, round(e.mean_return, 1), round(w, 1), round(c, 1))
                        for e, (w, c) in zip(log.evals, clock.stamps)]}
    if variant.startswith("actor"):
        result["updates"] = agent.updates
        result["real_steps"] = len(log.buffer)
        agent.reseed = type(agent).reseed.__get__(agent)  # the clock's stamps are done
        mpc = wm.RandomShooting(model, horizon=s.horizon, candidates=s.candidates, seed=seed)
        result["decision"] = {name: {key: round(value, 4) for key, value in
                                     decision_cost(env, who, seed + 20_000).items()}
                              for name, who in (("actor", agent), ("mpc", mpc))}
    return result


def dyna_run(seed: int, s: argparse.Namespace) -> dict[str, Any]:
    wm.seed_everything(seed)
    env = wm.make_env("CartPole-v1", seed=seed)
    model = wm.MLPWorldModel.for_env(env, device="cpu")
    agent = Dyna.for_env(env, model, planning_updates=5, value_expansion=10, seed=seed,
                         device="cpu")
    clock = Clock(agent, seed + EVAL_SEED_OFFSET)
    log = train_dyna(env, agent, steps=s.steps, seed=seed, eval_every=100, eval_episodes=3,
                     target_return=475, progress=False)
    wall, cpu = clock.now()
    return {"solved_at": log.solved_at(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "curve": [(e.real_steps, round(e.mean_return, 1), round(w, 1), round(c, 1))
                      for e, (w, c) in zip(log.evals, clock.stamps)]}


def one_run(variant: str, seed: int, settings: dict) -> dict[str, Any]:
    """One run of the sweep, as JSON values (see the module docstring)."""
    s = argparse.Namespace(**settings)
    return dyna_run(seed, s) if variant == "dyna" else learn_run(variant, seed, s)


def report_one(run: dict, result: dict) -> None:
    extra = ""
    if "decision" in result:
        actor, mpc = result["decision"]["actor"], result["decision"]["mpc"]
        extra = (f", {result['updates'] / result['real_steps']:.2f} updates/real step, "
                 f"decision {actor['cpu_ms']:.3f} ms CPU (MPC {mpc['cpu_ms']:.1f} ms)")
    print(f"  {run['variant']:10s} seed {run['seed']}: solved at {result['solved_at']} "
          f"({result['wall_s']:.0f} s wall, {result['cpu_s']:.0f} s CPU{extra})", flush=True)


def tables(runs: list[dict], results: list[dict]) -> None:
    """The per-seed table, then the decision costs, in Markdown."""
    print("\n| variant | seeds | real steps to >= 475, per seed | median | solved | "
          "updates / real step | CPU s (median) | wall s (median) |")
    print("|---|---|---|---|---|---|---|---|")
    variants = sorted({run["variant"] for run in runs}, key=VARIANTS.index)
    for variant in variants:
        mine = [(run, result) for run, result in zip(runs, results)
                if run["variant"] == variant]
        solved = [result["solved_at"] for _, result in mine]
        median = statistics.median([s if s is not None else float("inf") for s in solved])
        median = "-" if median == float("inf") else median
        per_seed = " ".join("-" if s is None else str(s) for s in solved)
        ratio = "-"
        if "updates" in mine[0][1]:
            ratio = f"{statistics.median(r['updates'] / r['real_steps'] for _, r in mine):.2f}"
        seeds = ",".join(str(run["seed"]) for run, _ in mine)
        print(f"| {variant} | {seeds} | {per_seed} | {median} | "
              f"{sum(s is not None for s in solved)}/{len(solved)} | {ratio} | "
              f"{statistics.median(r['cpu_s'] for _, r in mine):.0f} | "
              f"{statistics.median(r['wall_s'] for _, r in mine):.0f} |")
    costs = [(run, result["decision"]) for run, result in zip(runs, results)
             if "decision" in result]
    if costs:
        print("\n| variant | seed | actor ms / decision (CPU, wall) | MPC ms / decision "
              "(CPU, wall) | MPC / actor (CPU) | returns (200-step cap): actor, MPC |")
        print("|---|---|---|---|---|---|")
        for run, d in costs:
            actor, mpc = d["actor"], d["mpc"]
            print(f"| {run['variant']} | {run['seed']} | {actor['cpu_ms']:.3f}, "
                  f"{actor['wall_ms']:.3f} | {mpc['cpu_ms']:.2f}, {mpc['wall_ms']:.2f} | "
                  f"{mpc['cpu_ms'] / actor['cpu_ms']:.0f}x | "
                  f"{actor['return']:.0f}, {mpc['return']:.0f} |")


def figure(runs: list[dict], results: list[dict], path: str) -> None:
    """Mean evaluation return against real steps and against CPU seconds, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_steps, by_cpu) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    variants = sorted({run["variant"] for run in runs}, key=VARIANTS.index)
    for i, variant in enumerate(variants):
        mine = [result for run, result in zip(runs, results) if run["variant"] == variant]
        for j, result in enumerate(mine):
            curve = np.array(result["curve"], dtype=float).reshape(-1, 4)
            label = variant if j == 0 else None
            by_steps.plot(curve[:, 0], curve[:, 1], color=f"C{i}", alpha=0.6, lw=1, label=label)
            by_cpu.plot(curve[:, 3], curve[:, 1], color=f"C{i}", alpha=0.6, lw=1, label=label)
    for ax, xlabel in ((by_steps, "real steps (warm-up included)"),
                       (by_cpu, "CPU seconds (one thread)")):
        ax.axhline(475, color="0.3", ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation, mean of 3 episodes")
        ax.grid(True, alpha=0.3)
    by_cpu.set_xscale("log")
    by_steps.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    print(f"\nfigure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="real steps (CartPole-v1)")
    parser.add_argument("--rssm-steps", type=int, default=10_000,
                        help="real steps (velocity-hidden CartPole)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--updates-per-step", type=float, default=2.0)
    parser.add_argument("--rssm-updates-per-step", type=float, default=0.5)
    parser.add_argument("--rssm-epochs", type=int, default=10,
                        help="epochs per refit of the RSSM (learn's default: 30)")
    parser.add_argument("--rssm-refit-every", type=int, default=250,
                        help="refit the RSSM every this many steps, and at episode ends")
    parser.add_argument("--horizon", type=int, default=20, help="MPC's horizon")
    parser.add_argument("--candidates", type=int, default=200, help="MPC's candidates")
    parser.add_argument("--report", default=None,
                        help="only print the tables (and --figure) of this results file")
    parser.add_argument("--figure", default=None, help="save the curves to this image")
    add_sweep_arguments(parser, VARIANTS, default_variants=("actor",), default_seeds=3)
    args = parse_sweep_args(parser)
    if args.report is not None:
        lines = [json.loads(line) for line in Path(args.report).read_text().splitlines()]
        runs, results = [line["run"] for line in lines], [line["result"] for line in lines]
    else:
        torch.set_num_threads(args.threads)
        # What to print is no experiment setting: a results file resumes whatever is drawn.
        settings = {k: v for k, v in args.settings.items() if k not in ("report", "figure")}
        runs = [{"variant": variant, "seed": seed, "settings": settings}
                for variant in args.variants for seed in args.seeds]
        results = run_sweep(one_run, runs, **args.sweep, on_result=report_one)
    tables(runs, results)
    if args.figure:
        figure(runs, results, args.figure)


if __name__ == "__main__":
    main()
