"""Rollout throughput: imagined transitions per second vs candidates x horizon, per device.

For the MLP (2 x 200), the ensemble (5 members, "mean" propagation) and the RSSM (default
sizes, from a filtered belief), `imagine` is timed at N = 10^2 .. 10^6 candidates (decades) and
the given horizons, on the CPU and, when present, the GPU (wmkit.analysis.throughput does the
work; wmkit.notebook draws the plot).
Sizes over the memory budget (estimated from the shapes) print "skipped (memory)"; sizes the
previous one's rate predicts to exceed --max-call-s print "skipped (time)". Then one line of
full decisions per second of RandomShooting.plan with the MLP at --plan-candidates.

    python benchmarks/rollout_throughput.py [--threads 1] [--quick] [--plot PATH] [--tf32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, never a window
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from wmkit import notebook  # noqa: E402
from wmkit.analysis import throughput  # noqa: E402

DEFAULT_PLOT = Path(__file__).resolve().parent / "results" / "rollout_throughput.png"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true",
                        help="N = 10^2..10^4, horizon 10, 3 reps, plan at 10^4 on the CPU")
    parser.add_argument("--candidates", help="comma-separated N (default: decades 10^2..10^6)")
    parser.add_argument("--horizons", help="comma-separated H (default 10,30)")
    parser.add_argument("--models", default=",".join(throughput.MODELS))
    parser.add_argument("--devices", help="comma-separated (default: cpu, and cuda if present)")
    parser.add_argument("--reps", type=int, help="timed calls per size (default 5, quick 3)")
    parser.add_argument("--max-call-s", type=float, default=5.0,
                        help="skip sizes predicted to take longer per call (default 5 s)")
    parser.add_argument("--plan-candidates", type=int,
                        help="N of the plan line (default 10^5; quick: 10^4 on the CPU)")
    parser.add_argument("--plan-horizon", type=int, default=30)
    parser.add_argument("--tf32", action="store_true",
                        help="allow TF32 matmuls on CUDA (faster, ~1e-3 relative error)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where to save the png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    quick = args.quick
    candidates = ([int(n) for n in args.candidates.split(",")] if args.candidates
                  else [10**k for k in range(2, 5 if quick else 7)])
    horizons = ([int(h) for h in args.horizons.split(",")] if args.horizons
                else [10] if quick else [10, 30])
    reps = args.reps or (3 if quick else 5)
    devices = (args.devices.split(",") if args.devices
               else ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    names = args.models.split(",")

    gpu = f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s){gpu}, TF32 "
          f"{'on' if args.tf32 else 'off'}, seed {args.seed}, median of up to {reps} calls "
          "after 1 warm-up; untrained models (the work does not depend on the weights)\n")
    rows, plan_lines = [], []
    for device in devices:
        models = throughput.build_models(device, seed=args.seed, names=names)
        rows += throughput.sweep(models, candidates, horizons, reps=reps,
                                 max_call_s=args.max_call_s, seed=args.seed)
        plan_n = args.plan_candidates or (10**4 if quick and device == "cpu" else 10**5)
        mlp = models.get("mlp") or throughput.build_models(device, args.seed, ["mlp"])["mlp"]
        rate = throughput.measure_plan(mlp, plan_n, args.plan_horizon, seed=args.seed)
        plan_lines.append(f"plan with {plan_n} candidates x horizon {args.plan_horizon} (MLP, "
                          f"{device}): {rate:.3g} decisions/s ({1e3 / rate:.3g} ms each, "
                          f"{rate * plan_n * args.plan_horizon:.3g} transitions/s)")
        del models, mlp
    print(throughput.markdown_table(rows))
    print()
    print("\n".join(plan_lines))

    measured_horizons = sorted({r.horizon for r in rows if r.transitions_per_s})
    fig, axes = plt.subplots(1, len(measured_horizons), squeeze=False,
                             figsize=(5.5 * len(measured_horizons), 4))
    for ax, horizon in zip(axes[0], measured_horizons):
        notebook.plot_throughput(rows, horizon=horizon, ax=ax)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    plt.close(fig)
    print(f"\nplot: {args.plot}; wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
