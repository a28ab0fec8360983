"""Planners at equal compute: episode return against budget (imagined transitions per decision).

Random shooting, CEM, MPPI, MCTS and gradient planning, each given the same budget of imagined
transitions per decision (10^3 to 10^5), on CartPole-v1 (Discrete: random shooting, CEM, MPPI
with a categorical nominal, MCTS) and Pendulum-v1 (Box: random shooting, CEM, MPPI, gradient),
each with the perfect model (`TrueCartPole`, `TruePendulum`) and with an MLP world model
(2 x 200) learned from real data:

- CartPole-v1: 500 uniformly random steps, then 1,500 steps acting with CEM (budget 10^4),
  refitted (30 epochs, warm-started) at every episode end and every 250 steps: 2,000 real steps.
- Pendulum-v1: 1,000 uniformly random steps (5 episodes), then 2,000 steps (10 episodes) acting
  with CEM (budget 10^4), refitted (30 epochs) after every 200-step episode: 3,000 real steps.

One run is one (variant, planner, seed): the model is learned (seeded; saved under
--models, so the other planners of that seed reuse it), then the planner plays `--episodes`
evaluation episodes at every budget, episode i from env.reset(seed=1000 + 10 x seed + i): the
same starts for every planner and budget. Every planner uses horizon 20 and its other
defaults. The table gives each seed's mean return, their mean, and the median ms per decision
(one torch thread; it depends on the machine and on what else runs).

    python benchmarks/planners.py --quick                       # a smoke run, ~3 min
    python benchmarks/planners.py --out benchmarks/results/planners.jsonl \\
        --figure benchmarks/results/planners.png                # everything: see the docstring
    python benchmarks/planners.py --report benchmarks/results/planners.jsonl --figure f.png
    python benchmarks/planners.py --latency [--compile]         # overhead over the matmuls
    python benchmarks/planners.py --latency --planners mcts,gradient --budgets 1e4,1e5

`--latency` times each planner's decision (at 10^4 imagined transitions, or at each of
`--budgets`; only `--planners`) on a 2 x 200 MLP (CartPole for the Discrete planners, Pendulum
for the Box ones) against the network's own matmuls for the same batch shapes, interleaved rep
by rep, as planning_latency.py does (the gradient planner's floor counts its backward pass,
which needs no weight gradients, as a second set of matmuls). With `--compile` the planners
and the "imagine only" baseline run `compile=True` (torch.compile of the model's `imagine`;
each planner's shapes compile first, 15-20 s each on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wmkit as wm
from wmkit.models.base import frozen
from wmkit.models.true_pendulum import TruePendulum
from wmkit.planners.base import compile_imagine
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

sys.path.insert(0, str(Path(__file__).parent))
from planning_latency import matmul_floor, median_ms  # noqa: E402

VARIANTS = ("cartpole-perfect", "cartpole-learned", "pendulum-perfect", "pendulum-learned")
PLANNERS = {"random": wm.RandomShooting, "cem": wm.CEM, "mppi": wm.MPPI, "mcts": wm.MCTS,
            "gradient": wm.GradientPlanner}
FOR_ENV = {"CartPole-v1": ("random", "cem", "mppi", "mcts"),
           "Pendulum-v1": ("random", "cem", "mppi", "gradient")}
BUDGETS = (1_000, 3_000, 10_000, 30_000, 100_000)
# How the learned models get their data: (real steps, of which random, refit every).
DATA = {"CartPole-v1": (2_000, 500, 250), "Pendulum-v1": (3_000, 1_000, 200)}
COLLECTOR_BUDGET = 10_000


def env_name(variant: str) -> str:
    return "CartPole-v1" if variant.startswith("cartpole") else "Pendulum-v1"


def make_model(variant: str, seed: int, quick: bool, models: Path) -> tuple[Any, str]:
    """The variant's world model (learned ones trained here, seeded, or read back from the
    file an earlier run of the same seed saved in `models`) and how it was made."""
    name = env_name(variant)
    env = wm.make_env(name, seed=seed)
    if variant.endswith("perfect"):
        perfect = wm.TrueCartPole if name == "CartPole-v1" else TruePendulum
        return perfect.for_env(env, device="cpu"), "the true equations"
    steps, random_steps, refit_every = DATA[name]
    if quick:
        steps, random_steps = steps // 5, random_steps // 5
    wm.seed_everything(seed)
    model = wm.MLPWorldModel.for_env(env, device="cpu")
    path = models / f"{variant}-seed{seed}-{steps}steps.pt"
    if path.exists():
        saved = torch.load(path)
        model.load_state_dict(saved["model"])
        return model, saved["data"]
    collector = wm.CEM(model, budget=COLLECTOR_BUDGET, seed=seed)
    log = wm.learn(env, collector, steps=steps, seed=seed, warmup=random_steps,
                   refit_every=refit_every, epochs=30, progress=False)
    returns = [round(e.ret) for e in log.episodes]
    data = (f"{random_steps} random + {steps - random_steps} CEM steps; training episode "
            f"returns {returns}")
    models.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    torch.save({"model": model.state_dict(), "data": data}, partial)
    partial.replace(path)  # whole or absent, even if two runs write it at once
    return model, data


def evaluate_timed(env: Any, planner: Any, episodes: int, seed: int, max_steps: int | None
                   ) -> tuple[list[float], float]:
    """Episodes i = 0.. from env.reset(seed + i): their returns and ms per decision."""
    planner.reseed(seed)
    returns, thinking, decisions = [], 0.0, 0
    for i in range(episodes):
        for step in wm.run(env, planner, episodes=1, steps=max_steps, seed=seed + i):
            thinking += step.seconds
            decisions += 1
        returns.append(step.episode_return)
    return returns, 1000 * thinking / decisions


def one_run(variant: str, planner: str, seed: int, settings: dict) -> dict:
    """One (variant, planner, seed): get the model, then the planner at every budget."""
    start = time.perf_counter()
    model, data = make_model(variant, seed, settings["quick"], Path(settings["models"]))
    env = wm.make_env(env_name(variant), seed=seed)
    points = []
    for budget in settings["budgets"]:
        agent = PLANNERS[planner](model, budget=budget, seed=seed)
        returns, ms = evaluate_timed(env, agent, settings["episodes"], 1000 + 10 * seed,
                                     settings["max_steps"])
        points.append({"budget": budget, "returns": returns, "ms_per_decision": round(ms, 2),
                       "spent": agent.spent})
    return {"data": data, "points": points, "seconds": round(time.perf_counter() - start)}


def report_one(run: dict, result: dict) -> None:
    means = [round(float(np.mean(p["returns"]))) for p in result["points"]]
    print(f"  {run['variant']:17s} {run['planner']:8s} seed {run['seed']}: {means}  "
          f"({result['seconds']} s)", flush=True)


# ------------------------------------------------------------------------------ reporting


def collect_points(runs: list[dict], results: list[dict]) -> dict[str, list[dict]]:
    """variant -> points for `draw_budget_curve`: planner, budget, returns (one mean per
    seed), ms_per_decision (median over seeds), per_seed (seed -> mean return)."""
    table: dict[str, dict[tuple[str, int], dict]] = {}
    for run, result in zip(runs, results):
        planner = run["planner"]
        for p in result["points"]:
            row = table.setdefault(run["variant"], {}).setdefault(
                (planner, p["budget"]), {"planner": planner, "budget": p["budget"],
                                         "per_seed": {}, "ms": [], "all": []})
            row["per_seed"][run["seed"]] = float(np.mean(p["returns"]))
            row["ms"].append(p["ms_per_decision"])
            row["all"].extend(p["returns"])
    return {variant: [{**row, "returns": list(row["per_seed"].values()),
                       "ms_per_decision": statistics.median(row["ms"])}
                      for row in rows.values()]
            for variant, rows in table.items()}


def tables(runs: list[dict], results: list[dict]) -> None:
    points = collect_points(runs, results)
    for variant in (v for v in VARIANTS if v in points):
        rows = points[variant]
        seeds = sorted({s for row in rows for s in row["per_seed"]})
        print(f"\n### {variant} (mean return per seed; ms per decision, median over seeds)\n")
        print("| planner | budget | " + " | ".join(f"seed {s}" for s in seeds)
              + " | mean | ms / decision |")
        print("|---|---:|" + "---:|" * len(seeds) + "---:|---:|")
        for row in sorted(rows, key=lambda r: (list(PLANNERS).index(r["planner"]),
                                               r["budget"])):
            cells = " | ".join(f"{row['per_seed'][s]:.0f}" if s in row["per_seed"] else "-"
                               for s in seeds)
            partial = "" if len(row["per_seed"]) == len(seeds) else \
                f" ({len(row['per_seed'])} of {len(seeds)} seeds)"
            print(f"| {row['planner']} | {row['budget']:,} | {cells} | "
                  f"{np.mean(row['returns']):.1f}{partial} | {row['ms_per_decision']:.1f} |")
        summary(variant, rows)


def summary(variant: str, rows: list[dict]) -> None:
    by = {(row["planner"], row["budget"]): row for row in rows}
    planners = sorted({row["planner"] for row in rows}, key=list(PLANNERS).index)
    budgets = sorted({row["budget"] for row in rows})
    if variant.startswith("cartpole"):
        print("\nsmallest budget at which every seed's every episode scored 500:")
        for planner in planners:
            holding = [b for b in budgets if (planner, b) in by
                       and min(by[planner, b]["all"]) >= 500]
            print(f"- {planner}: {f'{holding[0]:,}' if holding else 'none in ' + str(budgets)}")
        return
    # Only planners run on every seed compete: a mean over the easy seeds alone is no mean.
    seeds = max(len(row["per_seed"]) for row in rows)
    best = max((row for row in rows if row["budget"] <= 10_000
                and len(row["per_seed"]) == seeds), key=lambda row: np.mean(row["returns"]),
               default=None)  # None: only budgets above 10^4 were run
    if best is not None:
        print(f"\nbest at <= 10^4 (over all {seeds} seeds): {best['planner']} at "
              f"{best['budget']:,}: mean {np.mean(best['returns']):.1f}")
    for planner in ("cem", "mppi"):
        for budget in budgets:
            mine, random = by.get((planner, budget)), by.get(("random", budget))
            if mine and random:
                ok = np.mean(mine["returns"]) >= np.mean(random["returns"])
                print(f"- {planner} vs random at {budget:,}: {np.mean(mine['returns']):.1f} vs "
                      f"{np.mean(random['returns']):.1f} {'ok' if ok else 'BELOW'}")


def figure(runs: list[dict], results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wmkit.notebook.planners import draw_budget_curve

    points = collect_points(runs, results)
    variants = [v for v in VARIANTS if v in points]
    fig, axes = plt.subplots(1, len(variants), figsize=(5.2 * len(variants), 4),
                             layout="constrained", squeeze=False)
    for ax, variant in zip(axes[0], variants):
        # Points run on fewer seeds than the rest are left out: their mean is not comparable.
        seeds = max(len(row["per_seed"]) for row in points[variant])
        draw_budget_curve([row for row in points[variant] if len(row["per_seed"]) == seeds],
                          ax=ax, title=f"{variant} ({seeds} seeds)")
    fig.savefig(path, dpi=120)
    print(f"\nfigure: {path}")


# ------------------------------------------------------------------------------ latency


class Recorder:
    """A world model that records the (N, H) of every imagine call and whether grad was on."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, []
        self.obs_dim, self.action_spec, self.device = model.obs_dim, model.action_spec, "cpu"

    def filter(self, *args: Any) -> Any:
        return self.model.filter(*args)

    def beliefs(self, *args: Any) -> Any:
        return self.model.beliefs(*args)

    def imagine(self, state: Any, actions: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((actions.shape[0], actions.shape[1], torch.is_grad_enabled()))
        return self.model.imagine(state, actions, *args, **kwargs)


def model_calls(model: Any, state: torch.Tensor, calls: list[tuple[int, int, bool]],
                compile: bool = False) -> Any:
    """A function making just the planner's `imagine` calls (same shapes; with a backward
    pass where the planner had gradients on), on fixed random actions: the model's share
    (through `torch.compile`, as the planner's, with `compile`)."""
    imagine = compile_imagine(model) if compile else model.imagine
    spec, generator = model.action_spec, torch.Generator().manual_seed(0)
    inputs = [(spec.sample((n, h), generator, torch.device("cpu")), grad) for n, h, grad in calls]

    def run() -> None:
        for actions, grad in inputs:
            if grad:  # as the gradient planner does: d(returns)/d(actions), weights frozen
                actions = actions.clone().requires_grad_(True)
                with torch.enable_grad(), frozen(model):
                    returns = imagine(state, actions, check=False).returns
                    torch.autograd.grad(returns.sum(), actions)
            else:
                with torch.no_grad():
                    imagine(state, actions, check=False)
    return run


def latency(reps: int, budgets: list[int], planners: list[str], compile: bool = False) -> None:
    print(f"\nCPU, {torch.get_num_threads()} thread(s), 2 x 200 MLP, "
          f"{'torch.compile' if compile else 'eager'}, median "
          f"of {reps} decisions; 'imagine only': the same imagine calls without the planner; "
          f"'matmuls only': the network's matmuls for them (x2 with a backward pass)\n")
    print("| planner | env | budget | imagine calls | ms / decision | ms imagine only "
          "| ms matmuls only | ratio to imagine | ratio to matmuls |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, names in FOR_ENV.items():
        env = wm.make_env(name, seed=0)
        wm.seed_everything(0)
        model = wm.MLPWorldModel.for_env(env, device="cpu")
        wm.fit(model, wm.collect(env, steps=500, seed=0), epochs=5, progress=False)
        obs, _ = env.reset(seed=0)
        state = model.filter(None, None, obs)
        for planner_name, budget in ((p, b) for p in names if p in planners for b in budgets):
            recorder = Recorder(model)
            PLANNERS[planner_name](recorder, budget=budget, seed=0).plan(state)
            if compile:  # each planner compiles its own shapes, within dynamo's recompile limit
                torch.compiler.reset()
            planner = PLANNERS[planner_name](model, budget=budget, seed=0, compile=compile)
            imagine_only = model_calls(model, state, recorder.calls, compile)
            floors = [(matmul_floor(model, n, h), 2 if grad else 1)
                      for n, h, grad in recorder.calls]

            def floor(floors: list = floors) -> None:
                for run, times in floors:
                    for _ in range(times):
                        run()

            timed = {"plan": lambda p=planner, s=state: p.plan(s), "imagine": imagine_only,
                     "floor": floor}
            for _ in range(3):  # warm up allocator and kernels
                for fn in timed.values():
                    fn()
            times: dict[str, list[float]] = {key: [] for key in timed}
            for _ in range(reps):  # interleaved, so noise hits all three alike
                for key, fn in timed.items():
                    times[key].append(median_ms(fn, 1))
            ms = {key: statistics.median(values) for key, values in times.items()}
            print(f"| {planner_name} | {name} | {budget:,} | {len(recorder.calls)} | "
                  f"{ms['plan']:.2f} | "
                  f"{ms['imagine']:.2f} | {ms['floor']:.2f} | {ms['plan'] / ms['imagine']:.2f} "
                  f"| {ms['plan'] / ms['floor']:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: budgets 10^3 and 10^4, 1 seed, 1 episode of at most "
                             "60 steps, learned models from a fifth of the data")
    parser.add_argument("--budgets", type=lambda s: [int(float(b)) for b in s.split(",")],
                        default=None, help=f"default {','.join(map(str, BUDGETS))}; "
                                           f"with --latency, 10000")
    parser.add_argument("--planners", type=lambda s: s.split(","), default=list(PLANNERS))
    parser.add_argument("--episodes", type=int, default=1,
                        help="evaluation episodes per planner, budget and seed")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap on the steps of an evaluation episode (default: none)")
    parser.add_argument("--models", default="benchmarks/results/planner_models",
                        help="where learned models are saved for the other planners' runs")
    parser.add_argument("--report", default=None,
                        help="only print the tables (and --figure) of these results files "
                             "(comma-separated: e.g. one per budget range)")
    parser.add_argument("--figure", default=None, help="save the curves to this image")
    parser.add_argument("--latency", action="store_true",
                        help="only time each planner against the model's matmuls")
    parser.add_argument("--reps", type=int, default=20, help="decisions timed (--latency)")
    parser.add_argument("--compile", action="store_true",
                        help="--latency with the planners' compile=True (torch.compile)")
    add_sweep_arguments(parser, VARIANTS, default_seeds=5)
    args = parse_sweep_args(parser)
    torch.set_num_threads(args.threads)
    if args.latency:
        latency(args.reps, args.budgets or [10_000], args.planners, compile=args.compile)
        return
    if args.report is not None:
        lines = [json.loads(line) for path in args.report.split(",")
                 for line in Path(path).read_text().splitlines()]
        runs, results = [line["run"] for line in lines], [line["result"] for line in lines]
    else:
        if args.quick:
            args.budgets, args.seeds, args.episodes = [1_000, 10_000], args.seeds[:1], 1
            args.max_steps = 60
        args.budgets = args.budgets or list(BUDGETS)
        settings = {"quick": args.quick, "budgets": args.budgets, "episodes": args.episodes,
                    "max_steps": args.max_steps, "models": args.models}
        runs = [{"variant": variant, "planner": planner, "seed": seed, "settings": settings}
                for variant in args.variants for seed in args.seeds
                for planner in FOR_ENV[env_name(variant)] if planner in args.planners]
        results = run_sweep(one_run, runs, **args.sweep, on_result=report_one)
    tables(runs, results)
    if args.figure:
        figure(runs, results, args.figure)


if __name__ == "__main__":
    main()
