"""Ensemble world model on CartPole-v1: planning speed, sample efficiency, risk-aware planning.

Three sections, each printing a markdown table (choose with --sections):

- speed: ms per planning decision (RandomShooting, 500 candidates x horizon 20) of one MLP,
  of 5 x that MLP's time, and of a 5-member ensemble of the same members, batched (one
  `torch.baddbmm` per layer) and as a Python loop over members. Goal: batched <= 1.1 x (5 x MLP).
- sample: real steps until a mean return >= 475 on 3 evaluation episodes (`wm.learn(...,
  eval_episodes=3, target_return=475)`, `log.solved_at()`), ensemble vs single MLP, per seed.
- risk: a model fitted on a fixed number of random steps, then evaluated with plain planning,
  with a disagreement penalty (`risk=`) and with a disagreement cut-off (`max_disagreement=`):
  real return, and the members' disagreement and the real one-step error on the states the
  agent visited (does pessimism keep the agent where the model is right?).

    python benchmarks/ensemble.py                       # everything, 5 seeds (slow)
    python benchmarks/ensemble.py --sections speed --repeats 20
    python benchmarks/ensemble.py --sections sample --seeds 2 --steps 1000

The sample and risk runs go through wmkit.sweep: Ray tasks on every core when Ray is
installed (--workers N, --address of a running cluster), else one after another; see --help.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import wmkit as wm
from wmkit.analysis import prediction_error
from wmkit.models.ensemble import EnsembleWorldModel
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

MODELS = ("mlp", "ensemble")  # the sample section's variants


class LoopEnsemble(EnsembleWorldModel):
    """The same ensemble, evaluated with a Python loop over members (for the speed table)."""

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        return self._network_loop(x)


def _median_ms(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each function; rounds interleave them so load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up: first calls allocate
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def speed(args: argparse.Namespace) -> None:
    env = wm.make_env("CartPole-v1", seed=0)
    state = torch.tensor([0.0, 0.1, 0.02, -0.1])
    print(f"\n### Planning speed: ms per decision, {args.candidates} candidates x horizon "
          f"{args.horizon}, {args.threads} thread(s), median of {args.repeats}\n")
    print("| member | MLP | 5 x MLP | ensemble-5 batched | ratio | ensemble-5 loop | ratio |")
    print("|---|---|---|---|---|---|---|")
    for hidden in args.hiddens:
        wm.seed_everything(0)
        models = {
            "mlp": wm.MLPWorldModel.for_env(env, hidden=hidden, device="cpu"),
            "batched": EnsembleWorldModel.for_env(env, hidden=hidden, seed=0, device="cpu"),
            "loop": LoopEnsemble.for_env(env, hidden=hidden, seed=0, device="cpu"),
        }
        planners = {name: wm.RandomShooting(model.eval(), horizon=args.horizon,
                                            candidates=args.candidates, seed=0)
                    for name, model in models.items()}
        ms = _median_ms({name: (lambda p=p: p.plan(state)) for name, p in planners.items()},
                        args.repeats)
        five = 5 * ms["mlp"]
        print(f"| 2 x {hidden} | {ms['mlp']:.1f} | {five:.1f} | {ms['batched']:.1f} | "
              f"{ms['batched'] / five:.2f} | {ms['loop']:.1f} | {ms['loop'] / five:.2f} |",
              flush=True)


def _model(kind: str, env: Any, hidden: int, seed: int) -> torch.nn.Module:
    if kind == "mlp":
        return wm.MLPWorldModel.for_env(env, hidden=hidden, device="cpu")
    return EnsembleWorldModel.for_env(env, hidden=hidden, seed=seed, device="cpu")


def sample_run(variant: str, seed: int, settings: dict) -> dict:
    """One sample-efficiency run: real steps to >= 475 of one model kind and seed."""
    args = argparse.Namespace(**settings)
    wm.seed_everything(seed)
    env = wm.make_env("CartPole-v1", seed=seed)
    planner = wm.RandomShooting(_model(variant, env, args.learn_hidden, seed),
                                horizon=args.horizon, candidates=args.learn_candidates,
                                seed=seed)
    start = time.perf_counter()
    log = wm.learn(env, planner, steps=args.steps, seed=seed, eval_episodes=3,
                   target_return=475, progress=False)
    curve = [(e.real_steps, round(e.mean_return)) for e in log.evals]
    return {"solved_at": log.solved_at(), "curve": curve,
            "seconds": time.perf_counter() - start}


def sample(args: argparse.Namespace) -> None:
    print(f"\n### Sample efficiency: real steps to a mean return >= 475 (3 evaluation "
          f"episodes), budget {args.steps}, MPC {args.learn_candidates} x {args.horizon}, "
          f"members 2 x {args.learn_hidden}\n")
    runs = [{"variant": kind, "seed": seed, "settings": args.settings}
            for kind in args.variants for seed in args.seeds]

    def report(run: dict, result: dict) -> None:
        print(f"  {run['variant']} seed {run['seed']}: solved at {result['solved_at']} "
              f"({result['seconds']:.0f} s) curve {result['curve']}", flush=True)

    results = run_sweep(sample_run, runs, **args.sweep, on_result=report)
    print("\n| model | real steps to >= 475, per seed | median | solved |")
    print("|---|---|---|---|")
    for kind in args.variants:
        solved = [result["solved_at"] for run, result in zip(runs, results)
                  if run["variant"] == kind]
        median = statistics.median([s if s is not None else float("inf") for s in solved])
        per_seed = ", ".join("-" if s is None else str(s) for s in solved)
        print(f"| {kind} | {per_seed} | {median} | {sum(s is not None for s in solved)}/"
              f"{len(solved)} |")


@torch.no_grad()
def _episode(planner: wm.RandomShooting, env: Any, seed: int) -> tuple[float, float, float]:
    """One real episode: its return, and the mean disagreement and real one-step error of the
    model on the transitions the agent made."""
    obs, _ = env.reset(seed=seed)
    planner.reset()
    total, disagreements, errors = 0.0, [], []
    model = planner.model
    while True:
        action = planner(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        row = [torch.as_tensor(x)[None] for x in (obs, action, next_obs)]
        disagreements.append(float(model.disagreement(row[0], row[1])[0]))
        errors.append(float(prediction_error(model, *row)[0]))
        total, obs = total + float(reward), next_obs
        if terminated or truncated:
            return total, float(np.mean(disagreements)), float(np.mean(errors))


def _risk_variants(args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    variants: list[tuple[str, dict[str, float]]] = [("plain", {})]
    variants += [(f"risk={r:g}", {"risk": r}) for r in args.risks]
    variants += [(f"max_disagreement={m:g}", {"max_disagreement": m})
                 for m in args.max_disagreements]
    return variants


def risk_run(seed: int, settings: dict) -> dict[str, list[tuple[float, float, float]]]:
    """One seed of the risk section: fit once, then every planner variant's episodes."""
    args = argparse.Namespace(**settings)
    env = wm.make_env("CartPole-v1", seed=seed)
    data = wm.collect(env, steps=args.risk_data, seed=seed)
    wm.seed_everything(seed)
    model = EnsembleWorldModel.for_env(env, hidden=args.learn_hidden, seed=seed, device="cpu")
    wm.fit(model, data, epochs=50, seed=seed, progress=False)
    results: dict[str, list[tuple[float, float, float]]] = {}
    for name, kwargs in _risk_variants(args):
        planner = wm.RandomShooting(model, horizon=args.horizon,
                                    candidates=args.learn_candidates, seed=seed, **kwargs)
        results[name] = []
        for episode in range(args.episodes):
            planner.reseed(seed * 100 + episode)
            results[name].append(_episode(planner, env, 10_000 + seed * 100 + episode))
    return results


def risk(args: argparse.Namespace) -> None:
    variants = _risk_variants(args)
    print(f"\n### Risk-aware planning: ensemble 5 x 2 x {args.learn_hidden} fitted on "
          f"{args.risk_data} random steps (50 epochs), MPC {args.learn_candidates} x "
          f"{args.horizon}, {args.episodes} episodes per seed, seeds {args.seeds}\n")

    def report(run: dict, result: dict) -> None:
        for name, _ in variants:
            mean = np.mean(result[name], axis=0)
            print(f"  seed {run['seed']} {name}: return {mean[0]:.0f}, disagreement "
                  f"{mean[1]:.3f}, error {mean[2]:.3f}", flush=True)

    per_seed = run_sweep(risk_run, [{"seed": seed, "settings": args.settings}
                                    for seed in args.seeds], **args.sweep, on_result=report)
    results = {name: [row for seed_result in per_seed for row in seed_result[name]]
               for name, _ in variants}
    print("\n| planner | mean real return | median | disagreement on visited states | "
          "real one-step error there |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        array = np.array(rows)
        print(f"| {name} | {array[:, 0].mean():.0f} | {np.median(array[:, 0]):.0f} | "
              f"{array[:, 1].mean():.3f} | {array[:, 2].mean():.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="speed,sample,risk")
    parser.add_argument("--horizon", type=int, default=20)
    # speed
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--hiddens", type=int, nargs="+", default=[200, 64])
    parser.add_argument("--repeats", type=int, default=10)
    # sample efficiency and risk
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--learn-candidates", type=int, default=200)
    parser.add_argument("--learn-hidden", type=int, default=200)
    parser.add_argument("--risk-data", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--risks", type=float, nargs="*", default=[0.3, 1.0, 3.0])
    parser.add_argument("--max-disagreements", type=float, nargs="*", default=[0.1, 0.3])
    # --variants: the sample section's models; --threads: the speed section's too.
    add_sweep_arguments(parser, MODELS)
    args = parse_sweep_args(parser)
    torch.set_num_threads(args.threads)
    sections = {"speed": speed, "sample": sample, "risk": risk}
    for name in args.sections.split(","):
        if name not in sections:
            parser.error(f"--sections: unknown section {name!r}; choose from {list(sections)}")
    for name in args.sections.split(","):
        sections[name](args)


if __name__ == "__main__":
    main()
