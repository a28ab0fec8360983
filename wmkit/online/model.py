"""`OnlineWorldModel`: the async service that learns one transition at a time.

How the history window is built (LSTM and TRANSFORMER read W = 8 pairs; MLP and ENSEMBLE
read only the current pair, W = 1):

- The model remembers the real trajectory it is being trained on: the last W - 1
  (observation, action) pairs passed to `update`, and the `actual_next_obs` of the latest one.
- A query *continues* that trajectory when its observation equals that remembered next
  observation (exactly: it is the same floats the caller got from the environment). Then the
  window is the remembered pairs followed by the query's pair; otherwise (a new episode, or
  a "what if" about some other state) the window is the query's pair alone, left-padded.
- `predict` and `surprise` build the window this way and change nothing.
- `update` builds the same window for the new transition (so training sees exactly what
  prediction saw), stores it in the replay buffer, then appends the pair to the remembered
  trajectory; an `actual_done` ends the trajectory (the next query starts a fresh window).
- `dream_rollout` starts from that window (when `initial_obs` continues the trajectory) and
  slides it forward over its own imagined pairs; the remembered trajectory is left untouched.

Every method takes the model's asyncio lock, so concurrent calls are serialised.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .buffer import Transition, TransitionBuffer, stack
from .metrics import make_metrics
from .networks import context_window, make_network
from .normalise import RunningStats
from .types import (
    DreamRollout,
    ModelInput,
    ModelOutput,
    WorldModelConfig,
    as_action,
    as_float,
    as_observation,
)

BATCH_SIZE = 32          # the new transition + 31 replayed ones per gradient step
MAX_DONE_WEIGHT = 10.0   # cap on the BCE weight of a done (dones are rare: ~1 in 20 steps)
GRAD_CLIP = 10.0         # one odd transition must not wreck an online learner
SNAPSHOT_FORMAT = "wmkit.online/1"


def _mse(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
                         ** 2))


def _default_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device if device is not None else
                        ("cuda" if torch.cuda.is_available() else "cpu"))


class OnlineWorldModel:
    """A world model trained online, one real transition per `update`, served asynchronously.

    Predicts the *change* in observation in units of its running (Welford) statistics, plus
    a reward and a done logit. Implements the `WorldModel` protocol; build it with
    `build_world_model`.

    Attributes a caller reads: `config`, `step_count` (updates so far), `buffer_size`,
    `replan_needed` (set by `surprise` above `config.surprise_threshold`; clear it yourself
    after re-planning), `last_surprise`, `registry` (the prometheus registry, or None when
    metrics are off) and `network`.
    """

    def __init__(self, config: WorldModelConfig | None = None, *, registry: Any | None = None,
                 seed: int = 0, device: str | torch.device | None = None) -> None:
        config = config if config is not None else WorldModelConfig()
        if not isinstance(config, WorldModelConfig):
            raise ValueError(f"config: expected a WorldModelConfig, got {type(config).__name__}")
        self.config = config
        self.seed = as_action("seed", seed)
        self.device = _default_device(device)
        self.window = context_window(config.backend)
        with torch.random.fork_rng(devices=[]):  # seed the init without touching global RNG
            torch.manual_seed(self.seed)
            self.network = make_network(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate)
        self.obs_stats = RunningStats(config.obs_dim)
        self.delta_stats = RunningStats(config.obs_dim)
        self.buffer = TransitionBuffer(config.max_buffer_size, seed=self.seed)
        self.step_count = 0
        self.done_count = 0
        self.replan_needed = False
        self.last_surprise = 0.0
        # The real trajectory being learned (see the module docstring).
        self._history: deque[tuple[tuple[float, ...], int]] = deque(maxlen=self.window - 1)
        self._last_next_obs: tuple[float, ...] | None = None
        # Last ground truth seen in `update` for each input (bounded like the buffer).
        self._ground_truth: OrderedDict[ModelInput, tuple[float, ...]] = OrderedDict()
        self._metrics = make_metrics(registry)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ small helpers

    @property
    def registry(self) -> Any | None:
        """The prometheus `CollectorRegistry` holding this model's metrics (None when off)."""
        return self._metrics.registry

    @property
    def buffer_size(self) -> int:
        return len(self.buffer)

    def _locked(self) -> asyncio.Lock:
        # One lock per model. An asyncio.Lock belongs to one event loop, so it is re-made if
        # the model is later used from another loop (e.g. successive asyncio.run calls).
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _check_input(self, inp: Any) -> ModelInput:
        if not isinstance(inp, ModelInput):
            raise ValueError(f"inp: expected a ModelInput, got {type(inp).__name__}")
        self._check_obs("observation", inp.observation)
        self._check_act("action", inp.action)
        return inp

    def _check_obs(self, name: str, value: Any) -> tuple[float, ...]:
        obs = as_observation(name, value)
        if len(obs) != self.config.obs_dim:
            raise ValueError(f"{name}: expected length obs_dim={self.config.obs_dim}, "
                             f"got {len(obs)}")
        return obs

    def _check_act(self, name: str, value: Any) -> int:
        action = as_action(name, value)
        if not 0 <= action < self.config.action_dim:
            raise ValueError(f"{name}: expected an int in [0, {self.config.action_dim}), "
                             f"got {action}")
        return action

    def _past_for(self, obs: tuple[float, ...]) -> list[tuple[tuple[float, ...], int]]:
        """The remembered pairs before `obs` if it continues the real trajectory, else []."""
        if self.window > 1 and self._last_next_obs is not None and obs == self._last_next_obs:
            return list(self._history)
        return []

    def _raw_window(self, past: list[tuple[tuple[float, ...], int]], obs: tuple[float, ...],
                    action: int) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded raw window: observations (W, obs_dim), actions (W,) with -1 as pad."""
        pairs = (past + [(obs, action)])[-self.window:]
        window_obs = np.zeros((self.window, self.config.obs_dim), dtype=np.float32)
        window_actions = np.full(self.window, -1, dtype=np.int64)
        start = self.window - len(pairs)
        window_obs[start:] = [o for o, _ in pairs]
        window_actions[start:] = [a for _, a in pairs]
        return window_obs, window_actions

    def _normalisers(self) -> dict[str, torch.Tensor]:
        """The running statistics as float32 tensors, each (obs_dim,): read once per call."""
        def as_tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, dtype=torch.float32, device=self.device)
        return {"obs_mean": as_tensor(self.obs_stats.center),
                "obs_std": as_tensor(self.obs_stats.std),
                "delta_mean": as_tensor(self.delta_stats.center),
                "delta_std": as_tensor(self.delta_stats.std)}

    def _featurise(self, window_obs: torch.Tensor, window_actions: torch.Tensor,
                   norm: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw windows -> network input.

        window_obs: (B, W, obs_dim) float; window_actions: (B, W) long, -1 for padding.
        Returns (B, W, F): normalised obs, one-hot action, real-pair flag; zeros at padding.
        """
        mean, std = norm["obs_mean"], norm["obs_std"]
        real = (window_actions >= 0).unsqueeze(-1).float()  # (B, W, 1)
        one_hot = F.one_hot(window_actions.clamp(min=0), self.config.action_dim).float()
        features = torch.cat([(window_obs - mean) / std, one_hot, torch.ones_like(real)], -1)
        return features * real

    def _decode(self, raw: torch.Tensor, obs: torch.Tensor,
                norm: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Network output (M, B, obs_dim + 2) at current observations `obs` (B, obs_dim) ->
        next_obs (B, obs_dim) (member mean), reward (B,), done_prob (B,) and
        disagreement (B,) (std across members of next_obs, averaged over dimensions)."""
        d = self.config.obs_dim
        members_next = obs + raw[..., :d] * norm["delta_std"] + norm["delta_mean"]  # (M, B, d)
        disagreement = (members_next.std(0, unbiased=False).mean(-1) if raw.shape[0] > 1
                        else torch.zeros(raw.shape[1], device=self.device))
        return {
            "next_obs": members_next.mean(0),
            "reward": raw[..., d].mean(0),
            "done_prob": torch.sigmoid(raw[..., d + 1]).mean(0),
            "disagreement": disagreement,
        }

    @torch.no_grad()
    def _predict_one(self, inp: ModelInput) -> tuple[ModelOutput, float]:
        """The prediction for `inp` and the ensemble disagreement behind it."""
        window_obs, window_actions = self._raw_window(self._past_for(inp.observation),
                                                      inp.observation, inp.action)
        obs_t = torch.as_tensor(window_obs[None], device=self.device)
        act_t = torch.as_tensor(window_actions[None], device=self.device)
        norm = self._normalisers()
        out = self._decode(self.network(self._featurise(obs_t, act_t, norm)), obs_t[:, -1], norm)
        next_obs = tuple(out["next_obs"][0].double().cpu().tolist())
        truth = self._ground_truth.get(inp)
        output = ModelOutput(
            next_observation=next_obs,
            predicted_reward=float(out["reward"][0]),
            predicted_done=bool(out["done_prob"][0] > 0.5),
            prediction_error=_mse(next_obs, truth) if truth is not None else 0.0,
        )
        return output, float(out["disagreement"][0])

    # ------------------------------------------------------------------ the service

    async def predict(self, inp: ModelInput) -> ModelOutput:
        """One imagined step for `inp`; see `ModelOutput` for `prediction_error`."""
        inp = self._check_input(inp)
        async with self._locked():
            return self._predict_one(inp)[0]

    async def disagreement(self, inp: ModelInput) -> float:
        """Std across ensemble members of the predicted next observation, averaged over its
        dimensions (raw units); 0.0 for the single-network backends."""
        inp = self._check_input(inp)
        async with self._locked():
            return self._predict_one(inp)[1]

    async def surprise(self, inp: ModelInput, actual_next_obs: Sequence[float]) -> float:
        """MSE between the predicted and the real next observation (raw units).

        Above `config.surprise_threshold` it sets `replan_needed`, which stays set until the
        caller clears it. Also sets the `wm_surprise_score` gauge.
        """
        inp = self._check_input(inp)
        actual = self._check_obs("actual_next_obs", actual_next_obs)
        async with self._locked():
            predicted = self._predict_one(inp)[0].next_observation
            value = _mse(predicted, actual)
            self.last_surprise = value
            if value > self.config.surprise_threshold:
                self.replan_needed = True
            self._metrics.on_surprise(value)
            return value

    async def dream_rollout(self, initial_obs: Sequence[float],
                            action_sequence: Sequence[int]) -> DreamRollout:
        """Imagine taking `action_sequence` from `initial_obs`, without touching the world.

        The horizon is `len(action_sequence)`; the dream stops at the first predicted done
        (that step included), so it has min(horizon, first done) steps.
        `surprise_score` is the mean ensemble disagreement over the kept steps (0.0 for
        single networks). An ensemble dreams one trajectory: each step feeds the members'
        mean prediction back in.
        """
        return (await self.dream_rollouts(initial_obs, [action_sequence]))[0]

    async def dream_rollouts(self, initial_obs: Sequence[float],
                             action_sequences: Sequence[Sequence[int]]) -> list[DreamRollout]:
        """`dream_rollout` for N action sequences of the same length H at once: one network
        call per imagined step for all of them (batched, no loop over sequences)."""
        obs = self._check_obs("initial_obs", initial_obs)
        sequences = [[self._check_act("action_sequence", a) for a in self._as_list(seq)]
                     for seq in self._as_list(action_sequences, "action_sequences")]
        lengths = {len(seq) for seq in sequences}
        if not sequences or 0 in lengths or len(lengths) != 1:
            raise ValueError("action_sequence: expected one or more actions, and action "
                             f"sequences of a single length, got lengths {sorted(lengths)}")
        async with self._locked():
            rollouts = self._imagine(obs, torch.tensor(sequences, device=self.device))
            self._metrics.on_rollout(sum(len(r.steps) for r in rollouts))
            return rollouts

    @staticmethod
    def _as_list(value: Any, name: str = "action_sequence") -> list[Any]:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError(f"{name}: expected a sequence, got {type(value).__name__}")
        return list(value)

    @torch.no_grad()
    def _imagine(self, obs: tuple[float, ...], actions: torch.Tensor) -> list[DreamRollout]:
        """Dream N sequences `actions` (N, H) from `obs`; all H steps are computed (batched),
        then each dream is cut after its first predicted done."""
        n, horizon = actions.shape
        window_obs, window_actions = self._raw_window(self._past_for(obs), obs, 0)
        # (N, W, ...) windows; the last slot is overwritten with each step's (obs, action)
        w_obs = torch.as_tensor(window_obs, device=self.device).expand(n, -1, -1).clone()
        w_act = torch.as_tensor(window_actions, device=self.device).expand(n, -1).clone()
        current = w_obs[:, -1]  # (N, obs_dim)
        norm = self._normalisers()
        steps: list[dict[str, torch.Tensor]] = []
        for t in range(horizon):
            w_act[:, -1] = actions[:, t]
            out = self._decode(self.network(self._featurise(w_obs, w_act, norm)), current, norm)
            steps.append(out)
            current = out["next_obs"]
            # slide: drop the oldest pair, the imagined next observation becomes current
            w_obs = torch.cat([w_obs[:, 1:], current[:, None]], 1)
            w_act = torch.cat([w_act[:, 1:], torch.zeros_like(w_act[:, :1])], 1)
        next_obs = torch.stack([s["next_obs"] for s in steps], 1).double().cpu()  # (N, H, d)
        reward = torch.stack([s["reward"] for s in steps], 1).double().cpu()      # (N, H)
        done = torch.stack([s["done_prob"] for s in steps], 1).cpu() > 0.5        # (N, H)
        doubt = torch.stack([s["disagreement"] for s in steps], 1).double().cpu()  # (N, H)
        rollouts = []
        for i in range(n):  # only packaging into dataclasses loops over sequences
            dones = torch.nonzero(done[i]).flatten()
            length = int(dones[0]) + 1 if len(dones) else horizon
            outputs = tuple(
                ModelOutput(tuple(next_obs[i, t].tolist()), float(reward[i, t]),
                            bool(done[i, t]), 0.0)
                for t in range(length)
            )
            rollouts.append(DreamRollout(
                steps=outputs,
                total_imagined_reward=float(sum(step.predicted_reward for step in outputs)),
                surprise_score=float(doubt[i, :length].mean()),
            ))
        return rollouts

    async def update(self, inp: ModelInput, actual_next_obs: Sequence[float],
                     actual_reward: float, actual_done: bool) -> float:
        """Learn from one real transition: one gradient step on it plus a replayed minibatch.

        Returns the loss of that step (before the step): MSE of the normalised change in
        observation + MSE of the reward + BCE of the done logit, weighted by
        sqrt(not-done count / done count) so that rare dones still matter. (The full ratio
        balances the classes but makes the model cry "done" too early, and a planner then
        sees every dream end at once; the square root is a common compromise.)
        """
        inp = self._check_input(inp)
        next_obs = self._check_obs("actual_next_obs", actual_next_obs)
        reward = as_float("actual_reward", actual_reward)
        if not isinstance(actual_done, (bool, np.bool_)):
            raise ValueError(f"actual_done: expected a bool, got {actual_done!r}")
        done = bool(actual_done)
        async with self._locked():
            window_obs, window_actions = self._raw_window(
                self._past_for(inp.observation), inp.observation, inp.action)
            new = Transition(window_obs, window_actions, np.asarray(next_obs, np.float32),
                             reward, done)
            obs_arr = np.asarray(inp.observation, dtype=np.float64)
            self.obs_stats.add(obs_arr)
            self.delta_stats.add(np.asarray(next_obs, dtype=np.float64) - obs_arr)
            self.done_count += int(done)
            loss = self._train_step([new] + self.buffer.sample(BATCH_SIZE - 1))
            self.buffer.add(new)
            self.step_count += 1
            self._remember(inp, next_obs, done)
            self._metrics.on_update(loss, len(self.buffer))
            return loss

    def _remember(self, inp: ModelInput, next_obs: tuple[float, ...], done: bool) -> None:
        if not self._past_for(inp.observation):
            self._history.clear()  # not a continuation: a new trajectory starts here
        if self.window > 1:
            self._history.append((inp.observation, inp.action))
        self._last_next_obs = None if done else next_obs
        self._ground_truth[inp] = next_obs
        self._ground_truth.move_to_end(inp)
        while len(self._ground_truth) > self.config.max_buffer_size:
            self._ground_truth.popitem(last=False)

    def _train_step(self, transitions: list[Transition]) -> float:
        batch = stack(transitions)
        d = self.config.obs_dim
        w_obs = torch.as_tensor(batch.window_obs, device=self.device)        # (B, W, d)
        w_act = torch.as_tensor(batch.window_actions, device=self.device)    # (B, W)
        next_obs = torch.as_tensor(batch.next_obs, device=self.device)       # (B, d)
        reward = torch.as_tensor(batch.reward, device=self.device)           # (B,)
        done = torch.as_tensor(batch.done, device=self.device)               # (B,)
        norm = self._normalisers()
        target = (next_obs - w_obs[:, -1] - norm["delta_mean"]) / norm["delta_std"]  # (B, d)
        raw = self.network(self._featurise(w_obs, w_act, norm))              # (M, B, d + 2)
        not_done = self.step_count + 1 - self.done_count
        done_weight = min(max(math.sqrt(not_done / max(self.done_count, 1)), 1.0),
                          MAX_DONE_WEIGHT)
        loss = (
            F.mse_loss(raw[..., :d], target.expand_as(raw[..., :d]))
            + F.mse_loss(raw[..., d], reward.expand_as(raw[..., d]))
            + F.binary_cross_entropy_with_logits(
                raw[..., d + 1], done.expand_as(raw[..., d + 1]),
                pos_weight=torch.tensor(done_weight, device=self.device))
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), GRAD_CLIP)
        self.optimizer.step()
        return float(loss.detach())

    # ------------------------------------------------------------------ snapshots

    async def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable dict of everything predictions depend on.

        Keys: format, config (backend by name), seed, step_count, buffer_size, done_count,
        weights ({name: {shape, dtype, data (base64 of float32 bytes)}}), obs_stats,
        delta_stats, history, last_next_obs, ground_truth ([[obs, action, next_obs], ...]).
        The replay buffer's contents and the optimiser's moments are not included: a restored
        model predicts exactly as the original but trains on from an empty buffer.
        """
        async with self._locked():
            weights = {}
            for name, tensor in self.network.state_dict().items():
                array = tensor.detach().cpu().contiguous().numpy()
                weights[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                                 "data": base64.b64encode(array.tobytes()).decode("ascii")}
            return {
                "format": SNAPSHOT_FORMAT,
                "config": self.config.to_dict(),
                "seed": self.seed,
                "step_count": self.step_count,
                "buffer_size": len(self.buffer),
                "done_count": self.done_count,
                "weights": weights,
                "obs_stats": self.obs_stats.to_dict(),
                "delta_stats": self.delta_stats.to_dict(),
                "history": [[list(obs), action] for obs, action in self._history],
                "last_next_obs": (list(self._last_next_obs) if self._last_next_obs is not None
                                  else None),
                "ground_truth": [[list(k.observation), k.action, list(v)]
                                 for k, v in self._ground_truth.items()],
            }

    async def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a `snapshot()` of a model with an equal config; ValueError otherwise."""
        async with self._locked():
            self._load(snapshot)

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any], *, registry: Any | None = None,
                      device: str | torch.device | None = None) -> OnlineWorldModel:
        """A new model built from the snapshot's own config, with its state loaded."""
        _require_keys(snapshot)
        config = WorldModelConfig.from_dict(snapshot["config"])
        model = cls(config, registry=registry, seed=int(snapshot.get("seed", 0)), device=device)
        model._load(snapshot)
        return model

    def _load(self, snapshot: dict[str, Any]) -> None:
        _require_keys(snapshot)
        theirs = WorldModelConfig.from_dict(snapshot["config"])
        if theirs != self.config:
            diffs = [f"{key}: {value!r} != {mine!r}" for (key, value), mine
                     in zip(theirs.to_dict().items(), self.config.to_dict().values())
                     if value != mine]
            raise ValueError("snapshot: its config does not match this model's "
                             f"(snapshot vs model: {'; '.join(diffs)})")
        own = self.network.state_dict()
        state = {}
        for name, entry in snapshot["weights"].items():
            if name not in own:
                raise ValueError(f"snapshot: unexpected weight {name!r}")
            array = np.frombuffer(base64.b64decode(entry["data"]), dtype=entry["dtype"])
            state[name] = torch.as_tensor(array.reshape(entry["shape"]).copy())
            if state[name].shape != own[name].shape:
                raise ValueError(f"snapshot: weight {name!r} has shape "
                                 f"{tuple(state[name].shape)}, expected {tuple(own[name].shape)}")
        missing = set(own) - set(state)
        if missing:
            raise ValueError(f"snapshot: missing weights {sorted(missing)}")
        self.network.load_state_dict(state)
        self.obs_stats.load_dict(snapshot["obs_stats"])
        self.delta_stats.load_dict(snapshot["delta_stats"])
        self.step_count = int(snapshot["step_count"])
        self.done_count = int(snapshot.get("done_count", 0))
        self._history.clear()
        self._history.extend((tuple(obs), int(action)) for obs, action in snapshot["history"])
        last = snapshot["last_next_obs"]
        self._last_next_obs = tuple(last) if last is not None else None
        self._ground_truth = OrderedDict(
            (ModelInput(tuple(obs), int(action)), tuple(next_obs))
            for obs, action, next_obs in snapshot["ground_truth"])


_SNAPSHOT_KEYS = ("config", "step_count", "buffer_size", "weights", "obs_stats", "delta_stats",
                  "history", "last_next_obs", "ground_truth")


def _require_keys(snapshot: Any) -> None:
    if not isinstance(snapshot, dict):
        raise ValueError(f"snapshot: expected a dict, got {type(snapshot).__name__}")
    missing = [key for key in _SNAPSHOT_KEYS if key not in snapshot]
    if missing:
        raise ValueError(f"snapshot: missing keys {missing}")


def build_world_model(config: WorldModelConfig | None = None, *, registry: Any | None = None,
                      seed: int = 0, device: str | torch.device | None = None
                      ) -> OnlineWorldModel:
    """A fresh online world model for `config` (default `WorldModelConfig()`).

    registry: a `prometheus_client.CollectorRegistry` for the wm_* metrics; None gives a fresh
    one per model (metrics off if prometheus_client is missing; asking for a registry without
    it raises ImportError). seed: fixes the initial weights and replay sampling.
    device: default CUDA when present, else the CPU.
    """
    return OnlineWorldModel(config, registry=registry, seed=seed, device=device)
