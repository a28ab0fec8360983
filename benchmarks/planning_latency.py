"""Planning latency: ms per decision of random-shooting MPC vs the network's own matmuls.

For each (candidates, horizon) the planner makes full decisions (sampling, H batched model
steps, scoring, choosing) with a 2x200 MLP world model; in the same run, interleaved rep by
rep so machine noise hits both alike, we time just the three `addmm`s per step of the same
network on the same batch: the floor any implementation of this planner has to pay.
The ratio says how much the loop, sampling and scoring add.

    python benchmarks/planning_latency.py [--threads 2] [--reps 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import wmkit as wm


def matmul_floor(model: wm.MLPWorldModel, candidates: int, horizon: int) -> callable:
    """A function doing only the network's matmuls (+bias) for `horizon` steps of N rows."""
    layers = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(candidates, layer.in_features) for layer in layers]

    def run() -> None:
        for _ in range(horizon):
            for layer, x in zip(layers, inputs, strict=True):
                torch.addmm(layer.bias, x, layer.weight.t())
    return run


def median_ms(fn: callable, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--candidates", default="100,500,2000")
    parser.add_argument("--horizons", default="10,20,40")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wm.seed_everything(0)
    env = wm.make_env("CartPole-v1", seed=0)
    model = wm.MLPWorldModel.for_env(env, hidden=200, layers=2, device="cpu")
    wm.fit(model, wm.collect(env, steps=500, seed=0), epochs=5, progress=False)
    state = torch.tensor([0.0, 0.1, 0.02, -0.1])
    print(f"CPU, {args.threads} threads, torch {torch.__version__}, 2x200 MLP, median of "
          f"{args.reps} decisions\n")
    print("| candidates | horizon | ms / decision | ms matmuls only | ratio | GFLOP/s (matmuls) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in map(int, args.candidates.split(",")):
        for h in map(int, args.horizons.split(",")):
            planner = wm.RandomShooting(model, horizon=h, candidates=n, seed=0)
            floor = matmul_floor(model, n, h)
            for _ in range(3):  # warm up allocator and kernels
                planner.plan(state)
                floor()
            plan_times, floor_times = [], []
            for _ in range(args.reps):  # interleaved, so noise hits both alike
                plan_times.append(median_ms(lambda p=planner: p.plan(state), 1))
                floor_times.append(median_ms(floor, 1))
            plan_ms, floor_ms = statistics.median(plan_times), statistics.median(floor_times)
            flops = 2 * n * h * sum(m.in_features * m.out_features
                                    for m in model.net if isinstance(m, torch.nn.Linear))
            print(f"| {n} | {h} | {plan_ms:.2f} | {floor_ms:.2f} | {plan_ms / floor_ms:.2f} | "
                  f"{flops / floor_ms / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
