"""Dreaming in pixels: an RSSM that sees CartPole's frames, plans with MPC, and dreams frames.

Each seed follows one protocol (as benchmarks/rssm_pomdp.py, with pixels):

1. `--warmup` random steps on `make_env("CartPole-v1", pixels=True, size=--size)` (`--size
   64`: 64 x 64 frames; `--size 32x128`: height x width, the aspect of CartPole's band); a frame
   autoencoder trained on them (`--pretrain-epochs`) lends its convolutions to the pixel RSSM
   (`RSSMWorldModel.for_env`: convolutional encoder and decoder; `copy_convolutions`), which
   `wm.fit` then trains (`--epochs`);
2. rounds: `--round-steps` real steps with random-shooting MPC on the model's latent
   imagination (`model.latent_imagination()`: no frame is drawn while planning), refit
   (`--refit-epochs`, warm-started, at `--refit-lr`), then `--eval-episodes` evaluation
   episodes that add no data; stop once their mean reaches 475 or after `--steps` real steps.
   "solved at" is the real steps of data before the first evaluation reaching 475; why each
   evaluation episode ended (the pole fell, or the cart left the track) is counted;
3. what the model knows, on held-out episodes played on the state env and rendered by
   `wmkit.pixels.pixel_twin` (so the true states are at hand): a linear probe
   (`wmkit.analysis.fit_probe`, fitted on half the episodes, R^2 on the others) of all four
   state variables from the belief (h, z) and from the encoder's embedding of the single frame,
   on random play (as notebook 06: a balancing policy's states vary too little for R^2 to mean
   much); and the per-step error of decoded dreams against the real frames (`wmkit.pixels
   .dream_errors`, raw ink units) next to "the frame does not change", on the episodes of a
   noisy balancing rule (random episodes are too short to dream 20 steps along); and on the
   same episodes, how far the dream's pole strays from the real one (`dreamed_pole`: the
   belief's probe, fitted on all the random play, read on the open-loop dream by
   `wmkit.analysis.open_loop_probe`), next to "the pole does not move": the angle is what MPC
   must get right to balance.

Costs are reported per seed: CPU seconds of one training epoch (at the final buffer size, so
it grows with the data), of planning one real step, and of rendering one frame.

    python benchmarks/pixels.py --seeds 3                     # the goal: 3 seeds, 20,000 steps
    python benchmarks/pixels.py --seeds 1 --steps 3000        # a screening run
    python benchmarks/pixels.py --device cuda                 # models on a GPU
    python benchmarks/pixels.py --size 32x128                 # wide frames, as many pixels

CPU: torch uses one thread per run (`--threads`), runs go one by one unless Ray is installed
(wmkit.sweep); start it with `nice -n 10` on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import wmkit as wm
from wmkit.analysis import (
    LinearProbe,
    buffer_beliefs,
    fit_probe,
    open_loop_probe,
    open_loop_starts,
)
from wmkit.models.conv import FrameAutoencoder, copy_convolutions, fit_autoencoder
from wmkit.pixels import Size, check_size, dream_errors, pixel_twin
from wmkit.sweep import add_sweep_arguments, parse_sweep_args, run_sweep

NAMES = ("x", "x_dot", "theta", "theta_dot")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # gymnasium draws the frames off-screen


class EndCauses(gym.Wrapper):
    """Records why each CartPole episode terminates: "track" (the cart left it) or "pole" (it
    fell), read from the true state behind the frames; truncation at 500 records nothing."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.causes: list[str] = []

    def step(self, action: Any) -> tuple:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            x = self.env.unwrapped.state[0]
            self.causes.append("track" if abs(x) > self.env.unwrapped.x_threshold else "pole")
        return obs, reward, terminated, truncated, info


def noisy_balancer(seed: int, noise: float = 0.5) -> Any:
    """A state policy that mostly balances (push towards where the pole falls), with a
    `noise` share of random actions: long episodes over varied states, for held-out data."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> int:
        if rng.random() < noise:
            return int(rng.integers(2))
        return int(obs[2] + 0.5 * obs[3] > 0)

    return policy


def held_out(seed: int, steps: int, size: Size, policy: Any = None
             ) -> tuple[wm.ReplayBuffer, wm.ReplayBuffer]:
    """(states, frames) of the same `steps` held-out transitions (never trained on) of
    `policy` (None: random)."""
    env = wm.make_env("CartPole-v1", seed=seed)
    states = wm.collect(env, steps=steps, policy=policy, seed=seed)
    return states, pixel_twin(states, size)


def episode_split(buffer: wm.ReplayBuffer) -> int:
    """The first row of the episode nearest the buffer's middle: whole episodes each side."""
    starts = buffer.tensors()["is_first"].nonzero().flatten()[1:]
    if len(starts) == 0:
        raise ValueError("probe-steps: the held-out data hold one episode; collect more steps")
    return int(starts[(starts - len(buffer) // 2).abs().argmin()])


def probe_scores(features: torch.Tensor, states: torch.Tensor, split: int) -> list[float]:
    probe = fit_probe(features[:split], states[:split])
    return [round(float(r), 3) for r in probe.score(features[split:], states[split:])]


def dreamed_pole(model: wm.RSSMWorldModel, probe: LinearProbe, states: wm.ReplayBuffer,
                 frames: wm.ReplayBuffer, horizon: int, seed: int, max_starts: int = 200
                 ) -> dict[str, list[float]]:
    """How far the dream's pole strays from the real one: RMS error in milliradians of the pole
    angle that `probe` (fitted on the beliefs of held-out random play) reads from the belief
    (step 0) and from the open-loop dream (steps 1..H) on the episodes `frames` (of a noisy
    balancing rule: the states where balancing happens), beside "the pole does not move".
    """
    starts = open_loop_starts(frames, horizon, burn_in=5)
    chosen = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed))
    with model.latent_imagination():  # the probe reads the features; no frame is drawn
        real, probed = open_loop_probe(model, frames, states, probe, horizon, burn_in=5,
                                       starts=starts[chosen[:max_starts].sort().values])
    theta = real[..., 2]

    def rms_mrad(error: torch.Tensor) -> list[float]:
        return [round(1000 * float(e), 1) for e in error.pow(2).mean(0).sqrt()]

    return {"dream": rms_mrad(probed[..., 2] - theta), "still": rms_mrad(theta[:, :1] - theta)}


def fit_timed(model: wm.RSSMWorldModel, buffer: wm.ReplayBuffer, epochs: int, lr: float,
              seed: int, args: argparse.Namespace) -> float:
    """Fit; return CPU seconds per epoch (wall seconds on a GPU)."""
    clock = time.perf_counter if args.device == "cuda" else time.process_time
    start = clock()
    wm.fit(model, buffer, epochs=epochs, batch_size=args.batch, lr=lr, holdout=0.0,
           seed=seed, progress=False, length=args.length)
    return (clock() - start) / epochs


def one_run(seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    args = argparse.Namespace(**settings)
    wall = time.perf_counter()
    wm.seed_everything(seed)
    env = EndCauses(wm.make_env("CartPole-v1", seed=seed, pixels=True, size=args.size))
    model = wm.RSSMWorldModel.for_env(env, device=args.device, deter=args.deter,
                                      free_nats=args.free_nats)
    planner = wm.RandomShooting(model, horizon=args.horizon, candidates=args.candidates,
                                seed=seed)
    clock = time.process_time()
    buffer = wm.collect(env, steps=args.warmup, seed=seed)
    render_s = (time.process_time() - clock) / args.warmup  # random steps: rendering only
    if args.pretrain_epochs:
        autoencoder = FrameAutoencoder(args.size, device=args.device)
        fit_autoencoder(autoencoder, buffer.tensors()["obs"], epochs=args.pretrain_epochs,
                        batch_size=32, lr=args.lr, seed=seed, progress=False)
        copy_convolutions(autoencoder, model.encoder, model.decoder)
    epoch_s = fit_timed(model, buffer, args.epochs, args.lr, seed, args)
    curve, solved_at, plan_s, ends = [], None, [], []
    with model.latent_imagination():  # planning reads rewards and ends only
        for r in range(max(0, (args.steps - args.warmup) // args.round_steps)):
            clock = time.process_time()
            wm.collect(env, steps=args.round_steps, policy=planner, seed=seed + 100 * (r + 1),
                       buffer=buffer)
            plan_s.append((time.process_time() - clock) / args.round_steps - render_s)
            epoch_s = fit_timed(model, buffer, args.refit_epochs, args.refit_lr, seed + r + 1,
                                args)
            env.causes.clear()
            returns = wm.evaluate(env, planner, episodes=args.eval_episodes,
                                  seed=10_000 + seed).returns
            curve.append((len(buffer), round(float(np.mean(returns)), 1)))
            ends.extend(env.causes)
            print(f"seed {seed}: {len(buffer)} steps, eval {returns} (ends: {env.causes}), "
                  f"epoch {epoch_s:.1f} s, {time.perf_counter() - wall:.0f} s", flush=True)
            if np.mean(returns) >= 475:
                solved_at = len(buffer)
                break
    states, frames = held_out(20_000 + seed, args.probe_steps, args.size)
    long_states, long_frames = held_out(30_000 + seed, args.probe_steps, args.size,
                                        noisy_balancer(30_000 + seed))
    targets = states.tensors()["obs"]
    split = episode_split(frames)
    with torch.no_grad():
        beliefs = model.features(buffer_beliefs(model, frames)).cpu()
        single = model.encoder(frames.tensors(model.device)["obs"]).cpu()
    errors = dream_errors(model, long_frames, horizon=args.dream_horizon, burn_in=5,
                          max_starts=50, seed=seed)
    pole = dreamed_pole(model, fit_probe(beliefs, targets), long_states, long_frames,
                        args.dream_horizon, seed)
    return {
        "solved_at": solved_at, "curve": curve, "real_steps": len(buffer),
        "ends": {cause: ends.count(cause) for cause in ("pole", "track")},
        "probe_belief": probe_scores(beliefs, targets, split),
        "probe_frame": probe_scores(single, targets, split),
        "pole_dream_mrad": pole["dream"], "pole_still_mrad": pole["still"],
        "dream": [round(float(e), 5) for e in errors["dream"]],
        "still": [round(float(e), 5) for e in errors["still"]],
        "epoch_s": round(epoch_s, 2), "plan_ms": round(1000 * statistics.mean(plan_s), 1)
        if plan_s else None, "render_ms": round(1000 * render_s, 1),
        "wall_s": round(time.perf_counter() - wall),
    }


def dream_beats_still(dream: list[float], still: list[float]) -> str:
    """The steps ahead at which the decoded dream is closer to reality than the start frame,
    as "first-last" (or a list when they are not consecutive), or "never"."""
    steps = [h for h, (d, s) in enumerate(zip(dream, still), start=1) if d < s]
    if not steps:
        return "never"
    if steps == list(range(steps[0], steps[-1] + 1)):
        return f"steps {steps[0]}-{steps[-1]} of {len(dream)}"
    return f"steps {steps} of {len(dream)}"


def pole_errors(dream: list[float], still: list[float]) -> str:
    """ "belief; dream at 5, 10, 20 (still pole at the same steps)", for the steps there are."""
    steps = [h for h in (5, 10, 20) if h < len(dream)]
    return (f"{dream[0]}; " + ", ".join(str(dream[h]) for h in steps)
            + " (" + ", ".join(str(still[h]) for h in steps) + ")")


def parse_size(text: str) -> Size:
    """--size: "64" (64 x 64) or "32x128" (height x width), checked as `make_env` would."""
    try:
        sides = tuple(int(side) for side in text.lower().split("x"))
        size = sides[0] if len(sides) == 1 else sides
        check_size(size)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a side like 64 or height x width like "
                                         f"32x128, each a multiple of 16 from 16 to 256, got "
                                         f"{text!r}") from error
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20_000, help="real steps at most")
    parser.add_argument("--warmup", type=int, default=1_000, help="random steps first")
    parser.add_argument("--round-steps", type=int, default=1_000, help="planner steps a round")
    parser.add_argument("--pretrain-epochs", type=int, default=12,
                        help="frame autoencoder epochs on the warm-up (0: none)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs on the warm-up")
    parser.add_argument("--refit-epochs", type=int, default=15, help="epochs per round")
    parser.add_argument("--batch", type=int, default=128, help="rows per update")
    parser.add_argument("--length", type=int, default=32, help="rows per window")
    parser.add_argument("--lr", type=float, default=3e-3, help="decayed to a tenth in a fit")
    parser.add_argument("--refit-lr", type=float, default=1e-3, help="the same, for refits")
    parser.add_argument("--size", type=parse_size, default=64,
                        help="frame size in cells: 64 (64 x 64) or 32x128 (height x width)")
    parser.add_argument("--deter", type=int, default=64)
    parser.add_argument("--free-nats", type=float, default=1.0,
                        help="KL below this trains neither prior nor posterior (free bits)")
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--probe-steps", type=int, default=1_500, help="held-out steps")
    parser.add_argument("--dream-horizon", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    add_sweep_arguments(parser, variants=("pixels",), default_seeds=3)
    args = parse_sweep_args(parser)
    runs = [{"seed": s, "settings": args.settings} for s in args.seeds]
    results = run_sweep(one_run, runs, **args.sweep)
    print("\n| seed | solved at (real steps) | last evals (steps: mean) | evaluation episodes "
          f"ended by: pole / track | probe R^2 belief ({', '.join(NAMES)}) | probe R^2 one "
          "frame | dream beats the still frame at | pole angle error, mrad: belief; dream at "
          "5, 10, 20 (still pole) | epoch s | plan ms/step | render ms/frame | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run, result in zip(runs, results):
        last = ", ".join(f"{steps}: {mean}" for steps, mean in result["curve"][-3:])
        print(f"| {run['seed']} | {result['solved_at'] or 'not within ' + str(args.steps)} | "
              f"{last} | {result['ends']['pole']} / {result['ends']['track']} | "
              f"{result['probe_belief']} | {result['probe_frame']} | "
              f"{dream_beats_still(result['dream'], result['still'])} | "
              f"{pole_errors(result['pole_dream_mrad'], result['pole_still_mrad'])} | "
              f"{result['epoch_s']} | {result['plan_ms']} | {result['render_ms']} | "
              f"{result['wall_s']} |")
    for run, result in zip(runs, results):
        print(f"\nseed {run['seed']} dream error by step: {result['dream']}\n"
              f"seed {run['seed']} still frame error:  {result['still']}\n"
              f"seed {run['seed']} dreamed pole angle error by step, mrad: "
              f"{result['pole_dream_mrad']}\n"
              f"seed {run['seed']} still pole angle error, mrad:  {result['pole_still_mrad']}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
