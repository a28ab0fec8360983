"""How fast can a world model imagine? Imagined transitions per second, measured.

One *imagined transition* is one (state, action) -> next state step of one candidate. A planner
with N candidates and horizon H imagines N x H of them per decision, in H batched steps: each
step pushes all N states through the network at once, so for the MLP a step is a few
(N, hidden) x (hidden, hidden) matmuls. Small N leaves a CPU or a GPU idle between tiny
kernels; large N keeps it busy, until memory or compute runs out. `sweep` measures that curve,
`markdown_table` prints it and `wmkit.notebook.plot_throughput` draws it
(benchmarks/rollout_throughput.py and notebooks/08_gpu_scaling.ipynb both call these).

Timing: the median wall time of `reps` calls after `warmup` calls of the same size; on CUDA the
device is synchronised before and after each call (kernels run asynchronously: without it the
clock would stop before the GPU finishes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..envs import make_env
from ..models.base import WorldModel
from ..models.ensemble import EnsembleWorldModel
from ..models.mlp import MLPWorldModel
from ..models.rssm import RSSMWorldModel
from ..planners.shooting import RandomShooting
from ..utils import check_positive_int, seed_everything

MODELS = ("mlp", "ensemble", "rssm")
START_OBS = np.array([0.01, -0.2, 0.03, 0.25], dtype=np.float32)  # a CartPole observation


@dataclass
class Measurement:
    """One point of the curve: `imagine` of `candidates` x `horizon` on `device`.

    seconds: median seconds per call; transitions_per_s = candidates x horizon / seconds.
    skipped: None, or why it was not measured ("memory": the estimate exceeds the budget;
    "time": the previous size's rate predicts a call longer than the time limit).
    """

    model: str
    device: str
    candidates: int
    horizon: int
    seconds: float | None = None
    skipped: str | None = None

    @property
    def transitions_per_s(self) -> float | None:
        """Imagined transitions per second (None when skipped)."""
        return None if self.seconds is None else self.candidates * self.horizon / self.seconds


def build_models(device: str | torch.device, seed: int = 0,
                 names: Sequence[str] = MODELS) -> dict[str, Any]:
    """The kit's default models for CartPole, untrained (the work per step does not depend on
    the weights): "mlp" 2 x 200, "ensemble" 5 members of 2 x 200 with "mean" propagation,
    "rssm" the default sizes. Seeded: the same seed gives the same weights."""
    for name in names:
        if name not in MODELS:
            raise ValueError(f"names: expected some of {MODELS}, got {name!r}")
    env = make_env("CartPole-v1")
    builders: dict[str, Callable[[], Any]] = {
        "mlp": lambda: MLPWorldModel.for_env(env, device=device),
        "ensemble": lambda: EnsembleWorldModel.for_env(env, ensemble_size=5,
                                                       propagation="mean", device=device),
        "rssm": lambda: RSSMWorldModel.for_env(env, device=device),
    }
    models = {}
    for name in names:
        seed_everything(seed)
        models[name] = builders[name]().eval()
    return models


@torch.no_grad()
def start_state(model: WorldModel) -> Any:
    """A belief to imagine from: `filter` after two real observations (a model with memory
    has then taken one step; for a Markov model the belief is just the observation)."""
    return model.filter(model.filter(None, None, START_OBS), 1, START_OBS)


def imagine_bytes(model: Any, candidates: int, horizon: int) -> int:
    """An upper estimate of the memory one `imagine` call needs, from the shapes (bytes).

    Counts what a call holds at its peak: the per-step lists and their stacked copies
    (observations, outputs), the widest per-step activations and the int64 actions, x 1.5.
    """
    n, h = candidates, horizon
    if isinstance(model, RSSMWorldModel):
        features = model.deter + model.stoch
        width = model.decoder[0].out_features
        # h and z lists + stacked + features, then decoder / heads over all H+1 beliefs.
        floats = n * (h + 1) * (3 * features + 12 * width + model.obs_dim)
    elif isinstance(model, EnsembleWorldModel):
        d, e = model.obs_dim, model.ensemble_size
        floats = n * (2 * (h + 1) * d + 6 * h + 3 * e * model.hidden + e * (2 * d + 2))
    elif isinstance(model, MLPWorldModel):
        d = model.obs_dim
        hidden = model.net[0].out_features
        floats = n * (2 * (h + 1) * d + 2 * h * (d + 2) + 3 * hidden + 4 * h)
    else:
        raise ValueError(f"model: expected an MLP, ensemble or RSSM world model, got {model!r}")
    return int(1.5 * (4 * floats + 8 * n * h))


def memory_budget(device: str | torch.device) -> int:
    """Bytes a measurement may use: half the free GPU memory, or half the available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # blocks cached from earlier sizes count as used otherwise
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return 4 * 2**30  # no /proc (macOS, Windows): assume 8 GB free


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(call: Callable[[], Any], device: torch.device, reps: int, warmup: int,
                    max_total_s: float) -> float:
    """Median wall time of `call` over up to `reps` timed calls (at least one), after warm-up;
    stops early once the timed calls add up to `max_total_s`."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    while len(times) < reps and sum(times) < max_total_s:
        _synchronize(device)
        start = time.perf_counter()
        call()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_imagine(model: Any, name: str, candidates: int, horizon: int, reps: int = 5,
                    warmup: int = 1, seed: int = 0, budget: int | None = None,
                    max_total_s: float = 3.0) -> Measurement:
    """Imagined transitions per second of `model.imagine` for N=`candidates` x H=`horizon`.

    The actions are uniformly random (seeded), made on the model's device before timing.
    Sizes whose `imagine_bytes` exceed `budget` (default `memory_budget`) are skipped.
    """
    candidates = check_positive_int("candidates", candidates)
    horizon = check_positive_int("horizon", horizon)
    device = torch.device(model.device)
    row = Measurement(name, str(device), candidates, horizon)
    budget = memory_budget(device) if budget is None else budget
    if imagine_bytes(model, candidates, horizon) > budget:
        row.skipped = "memory"
        return row
    generator = torch.Generator(device=device).manual_seed(seed)
    actions = model.action_spec.sample((candidates, horizon), generator, device)
    state = start_state(model)
    with torch.inference_mode():
        row.seconds = _median_seconds(lambda: model.imagine(state, actions), device, reps,
                                      warmup, max_total_s)
    return row


def sweep(models: dict[str, Any], candidates: Iterable[int], horizons: Iterable[int],
          reps: int = 5, max_call_s: float = 5.0, seed: int = 0, progress: bool = True
          ) -> list[Measurement]:
    """`measure_imagine` for every model x horizon x candidates (ascending).

    A size the previous one's rate predicts to take longer than `max_call_s` per call is
    skipped ("time"), as are all larger ones, and so are sizes over the memory budget.
    """
    candidates, horizons = sorted(candidates), list(horizons)
    jobs = [(name, h, n) for name in models for h in horizons for n in candidates]
    rows, rate = [], {}
    for name, h, n in tqdm(jobs, desc="imagine", disable=not progress, leave=False):
        model = models[name]
        predicted = n * h / rate[name, h] if (name, h) in rate else 0.0
        if predicted > max_call_s:
            rows.append(Measurement(name, str(model.device), n, h, skipped="time"))
            continue
        row = measure_imagine(model, name, n, h, reps=reps, seed=seed)
        if row.transitions_per_s is not None:
            rate[name, h] = row.transitions_per_s
        rows.append(row)
    return rows


def measure_plan(model: Any, candidates: int, horizon: int, decisions: int = 3,
                 seed: int = 0, **planner_kwargs: Any) -> float:
    """Decisions per second of a full `RandomShooting.plan` (sample, imagine, score, choose,
    read the action), median over `decisions` after one warm-up decision."""
    planner = RandomShooting(model, horizon=horizon, candidates=candidates, seed=seed,
                             **planner_kwargs)
    state = start_state(model)
    seconds = _median_seconds(lambda: planner.plan(state), torch.device(model.device),
                              reps=decisions, warmup=1, max_total_s=float("inf"))
    return 1.0 / seconds


def markdown_table(rows: Sequence[Measurement]) -> str:
    """The measurements as a markdown table (one line per row, skipped ones say why)."""
    lines = ["| model | device | candidates | horizon | ms / imagine | transitions / s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r.skipped:
            timing = f"skipped ({r.skipped}) | -"
        else:
            timing = f"{1e3 * r.seconds:.3g} | {r.transitions_per_s:.3g}"
        lines.append(f"| {r.model} | {r.device} | {r.candidates} | {r.horizon} | {timing} |")
    return "\n".join(lines)
