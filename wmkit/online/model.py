"""`OnlineWorldModel`: the async service, a thin adapter over a core world model.

The service owns no network, buffer, normalisation or loss of its own. It holds

- a core world model (`backends.py`: `wm.MLPWorldModel`, `wm.EnsembleWorldModel`,
  `wm.LSTMWorldModel` or `wm.TransformerWorldModel`), asked through `filter` and `imagine`;
- one `wm.ReplayBuffer` of the real transitions (`max_size=config.max_buffer_size`: a ring);
- the buffer's statistics as the model's normalisation (`set_normalizer(buffer.stats())`
  after every stored transition from the second one on; once the buffer holds more than
  1,000 rows, after every len(buffer) // 1,000-th, since a full pass over 100,000 rows costs
  more than the gradient step and the statistics of so many rows barely move);
- an Adam optimiser stepping on the core model's own `loss`, with `wm.done_weight(buffer)`
  (refreshed with the statistics).

`update` takes one gradient step on the new transition plus replayed ones (31 rows for the
Markov backends; for the LSTM and the Transformer, the new row's window of the last 8 rows plus
3 windows of 8 drawn from the buffer), then stores it.

How a belief is built (the LSTM and the Transformer read the last W = 8 real steps; the MLP
and the ensemble only the current observation):

- The service remembers the real trajectory it is trained on: the last W - 1 (observation,
  action) pairs passed to `update`, and the `actual_next_obs` of the latest one.
- A query *continues* that trajectory when its observation equals that remembered next
  observation (exactly: the same floats the caller got from the environment). Then the belief
  is `filter`ed through the remembered pairs and the query's observation; otherwise (a new
  episode, or a "what if" about some other state) from the query's observation alone.
- `predict` and `surprise` build the belief this way and change nothing; `update` appends the
  pair to the remembered trajectory; an `actual_done` ends it.
- `dream_rollout` imagines from that belief; the remembered trajectory is left untouched.

The numbers it reports, in one vocabulary with the rest of the kit:

- `surprise(inp, actual_next_obs)`: the mean squared error between the predicted and the real
  next observation, raw units: `wmkit.analysis.surprise.surprise`, the number notebook 04 calls
  surprise. NaN counts as surprised.
- `disagreement(inp)`: the ensemble's `EnsembleWorldModel.disagreement`, the members' std of
  the predicted change in units of the buffer's delta std (0.0 for single networks).
- `DreamRollout.surprise_score`: the surprise the model *expects* on its dream: the mean over
  the dream's steps of the members' variance of the predicted next observation, averaged over
  its dimensions, raw units. If the world moved like one member picked at random, that is the
  mean `surprise` the dream would meet, so it compares with `surprise` and the threshold.
  A single network has no measure of its own doubt: 0.0.
- `ModelOutput.predicted_done`: the termination logit > 0 (the ensemble: the members' mean
  logit), as `imagine`'s `dones`.

Changed on purpose from the service's first version (its own networks): disagreement was a std
of the next observation in raw units and `surprise_score` its mean over the dream; dones were
weighted by sqrt(#alive / #done) capped at 10 (now `wm.done_weight`: #alive / #done, capped
at 100); the reward loss was a squared error in raw units (now the models' Huber in units of
the buffer's reward std); statistics were running (Welford) ones, not the buffer's.

Reliability: every method does its model work under one `threading.Lock`, so the service is
safe from several threads, each with its own event loop. A value beyond float32's range is
refused with a ValueError; an update whose loss is not finite is skipped (nothing changes,
the transition is not stored, a RuntimeWarning says so); `restore` checks the whole snapshot
before it changes anything (`snapshot.py`).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..analysis.surprise import surprise as surprise_of
from ..buffer import ReplayBuffer
from ..models.ensemble import EnsembleWorldModel
from ..train import done_weight
from .backends import SEQUENCE_WINDOW, build_core, context_window
from .metrics import make_metrics
from .snapshot import SNAPSHOT_FORMAT, Snapshot, encode, read_snapshot
from .types import (
    DreamRollout,
    ModelInput,
    ModelOutput,
    WorldModelConfig,
    as_action,
    as_float,
    check_action,
    check_float32,
    check_observation,
)

BATCH_ROWS = 32  # rows per gradient step: the new transition and replayed ones
REFRESH_ROWS = 1_000  # statistics are refreshed every len(buffer) // REFRESH_ROWS updates
GRAD_CLIP = 10.0  # one odd transition must not wreck an online learner


def _mse(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """The kit's surprise of two observations, in float64 (exact for the service's floats)."""
    as_tensor = torch.tensor
    return float(surprise_of(as_tensor(predicted, dtype=torch.float64),
                             as_tensor(actual, dtype=torch.float64)))


class OnlineWorldModel:
    """A world model trained online, one real transition per `update`, served asynchronously.

    Implements the `WorldModel` protocol of `wmkit.online`; build it with `build_world_model`.
    Attributes a caller reads: `config`, `name` (its metrics label), `step_count` (updates so
    far), `buffer_size`, `replan_needed` (set by `surprise` above `config.surprise_threshold`,
    or NaN; clear it yourself after re-planning), `last_surprise`, `registry` (prometheus, or
    None when metrics are off), `world_model` (the core model) and `buffer`.
    """

    def __init__(self, config: WorldModelConfig | None = None, *, registry: Any | None = None,
                 seed: int = 0, device: str | torch.device | None = None,
                 name: str | None = None) -> None:
        config = config if config is not None else WorldModelConfig()
        if not isinstance(config, WorldModelConfig):
            raise ValueError(f"config: expected a WorldModelConfig, got {type(config).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name: expected a non-empty str, got {name!r}")
        self.config = config
        self.seed = as_action("seed", seed)
        self.name = name or config.backend.name.lower()
        self.window = context_window(config.backend)
        self.world_model = build_core(config, self.seed, device)
        self.world_model.eval()
        self._lock = threading.Lock()
        self._metrics = make_metrics(registry, self.name)
        self._reset_state()

    def _reset_state(self) -> None:
        """An empty buffer, a fresh optimiser and no memory of the trajectory."""
        spec = self.world_model.action_spec
        self.buffer = ReplayBuffer(self.config.obs_dim, spec, capacity=256,
                                   max_size=self.config.max_buffer_size)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._optimizer = torch.optim.Adam(self.world_model.parameters(),
                                           lr=self.config.learning_rate)
        self.step_count = 0
        self._done_weight = 1.0  # wm.done_weight of the buffer at the last refresh
        self.replan_needed = False
        self.last_surprise = 0.0
        self._history: deque[tuple[tuple[float, ...], int]] = deque(maxlen=self.window - 1)
        self._last_next_obs: tuple[float, ...] | None = None
        # The last ground truth seen in `update` for each input (bounded like the buffer).
        self._ground_truth: OrderedDict[ModelInput, tuple[float, ...]] = OrderedDict()

    # ------------------------------------------------------------------ small helpers

    @property
    def registry(self) -> Any | None:
        """The prometheus `CollectorRegistry` holding this model's metrics (None when off)."""
        return self._metrics.registry

    @property
    def buffer_size(self) -> int:
        return len(self.buffer)

    @property
    def device(self) -> torch.device:
        return self.world_model.device

    def _check_input(self, inp: Any) -> ModelInput:
        if not isinstance(inp, ModelInput):
            raise ValueError(f"inp: expected a ModelInput, got {type(inp).__name__}")
        check_observation("observation", inp.observation, self.config.obs_dim)
        check_action("action", inp.action, self.config.action_dim)
        return inp

    def _past_for(self, obs: tuple[float, ...]) -> list[tuple[tuple[float, ...], int]]:
        """The remembered pairs before `obs` if it continues the real trajectory, else []."""
        if self._last_next_obs is not None and obs == self._last_next_obs:
            return list(self._history)
        return []

    def _belief(self, obs: tuple[float, ...]) -> Any:
        """The core model's belief after `obs` (and the remembered pairs it continues)."""
        state, previous = None, None
        for past_obs, action in self._past_for(obs):
            state = self.world_model.filter(state, previous, past_obs)
            previous = action
        return self.world_model.filter(state, previous, obs)

    @torch.no_grad()
    def _imagine(self, obs: tuple[float, ...], actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Dream N sequences `actions` (N, H) from `obs`: next_obs (N, H, D), reward (N, H),
        done (N, H) and expected surprise (N, H), all float64/bool on the CPU."""
        model = self.world_model
        rollout = model.imagine(self._belief(obs), actions.to(model.device), check=False)
        expected = torch.zeros(rollout.rewards.shape, dtype=torch.float64)
        if isinstance(model, EnsembleWorldModel):
            n, horizon = actions.shape
            members = model.predict_members(
                rollout.observations[:, :-1].reshape(n * horizon, -1),
                rollout.actions.reshape(n * horizon))
            variance = members.next_obs.double().var(0, correction=0).mean(-1)
            expected = variance.reshape(n, horizon).cpu()
        return {"next_obs": rollout.observations[:, 1:].double().cpu(),
                "reward": rollout.rewards.double().cpu(), "done": rollout.dones.cpu(),
                "expected": expected}

    def _predict_one(self, inp: ModelInput) -> ModelOutput:
        dream = self._imagine(inp.observation, torch.tensor([[inp.action]]))
        next_obs = tuple(dream["next_obs"][0, 0].tolist())
        truth = self._ground_truth.get(inp)
        return ModelOutput(
            next_observation=next_obs,
            predicted_reward=float(dream["reward"][0, 0]),
            predicted_done=bool(dream["done"][0, 0]),
            prediction_error=_mse(next_obs, truth) if truth is not None else 0.0,
        )

    # ------------------------------------------------------------------ the service

    async def predict(self, inp: ModelInput) -> ModelOutput:
        """One imagined step for `inp`; see `ModelOutput` for `prediction_error`."""
        inp = self._check_input(inp)
        with self._lock:
            return self._predict_one(inp)

    async def disagreement(self, inp: ModelInput) -> float:
        """How much the ensemble's members disagree on the next observation after `inp`:
        `EnsembleWorldModel.disagreement`, in units of the buffer's delta std (the same
        number notebook 04 shows); 0.0 for the single-network backends."""
        inp = self._check_input(inp)
        model = self.world_model
        if not isinstance(model, EnsembleWorldModel):
            return 0.0
        with self._lock, torch.no_grad():
            obs = torch.tensor([inp.observation], device=model.device)
            return float(model.disagreement(obs, torch.tensor([inp.action], device=obs.device)))

    async def surprise(self, inp: ModelInput, actual_next_obs: Sequence[float]) -> float:
        """The surprise of the real next observation: the MSE between prediction and
        `actual_next_obs`, raw units (`wmkit.analysis.surprise.surprise`).

        Above `config.surprise_threshold`, or NaN, it sets `replan_needed`, which stays set
        until the caller clears it. Also sets the `wm_surprise_score` gauge.
        """
        inp = self._check_input(inp)
        actual = check_observation("actual_next_obs", actual_next_obs, self.config.obs_dim)
        with self._lock:
            value = _mse(self._predict_one(inp).next_observation, actual)
            self.last_surprise = value
            if not value <= self.config.surprise_threshold:  # NaN is a surprise too
                self.replan_needed = True
            self._metrics.on_surprise(value)
            return value

    async def dream_rollout(self, initial_obs: Sequence[float],
                            action_sequence: Sequence[int]) -> DreamRollout:
        """Imagine taking `action_sequence` from `initial_obs`, without touching the world.

        The horizon is `len(action_sequence)`; the dream stops at the first predicted done
        (that step included), so it has min(horizon, first done) steps. `surprise_score` is
        the surprise the model expects on the kept steps (see the module docstring).
        """
        return (await self.dream_rollouts(initial_obs, [action_sequence]))[0]

    async def dream_rollouts(self, initial_obs: Sequence[float],
                             action_sequences: Sequence[Sequence[int]]) -> list[DreamRollout]:
        """`dream_rollout` for N action sequences of the same length H at once: one batched
        `imagine` of the core model (no loop over sequences)."""
        obs = check_observation("initial_obs", initial_obs, self.config.obs_dim)
        sequences = [[check_action("action_sequence", a, self.config.action_dim)
                      for a in _as_list(seq)]
                     for seq in _as_list(action_sequences, "action_sequences")]
        lengths = {len(seq) for seq in sequences}
        if not sequences or 0 in lengths or len(lengths) != 1:
            raise ValueError("action_sequence: expected one or more actions, and action "
                             f"sequences of a single length, got lengths {sorted(lengths)}")
        with self._lock:
            dream = self._imagine(obs, torch.tensor(sequences))
            rollouts = [_cut(dream, i) for i in range(len(sequences))]
            self._metrics.on_rollout(sum(len(r.steps) for r in rollouts))
            return rollouts

    async def update(self, inp: ModelInput, actual_next_obs: Sequence[float],
                     actual_reward: float, actual_done: bool) -> float:
        """Learn from one real transition: one gradient step of the core model's own `loss`
        on it and replayed rows, then store it. Returns that loss (before the step).

        A loss that is not finite skips the step: nothing changes, the transition is not
        stored, and a RuntimeWarning says so (the non-finite loss is returned).
        """
        inp = self._check_input(inp)
        next_obs = check_observation("actual_next_obs", actual_next_obs, self.config.obs_dim)
        reward = as_float("actual_reward", actual_reward)
        check_float32("actual_reward", [reward])
        if not isinstance(actual_done, (bool, np.bool_)):
            raise ValueError(f"actual_done: expected a bool, got {actual_done!r}")
        done = bool(actual_done)
        with self._lock:
            continues = self._last_next_obs is not None and inp.observation == self._last_next_obs
            row = self._row(inp, next_obs, reward, done, first=not continues)
            model = self.world_model
            model.train()
            try:
                losses = model.loss(self._batch(row), self._done_weight)
                loss = losses["total"].item()
                if math.isfinite(loss):
                    self._optimizer.zero_grad(set_to_none=True)
                    losses["total"].backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                    self._optimizer.step()
            finally:
                model.eval()
            if not math.isfinite(loss):
                warnings.warn(f"update: the loss is {loss} on this transition; the step was "
                              "skipped and the transition not stored", RuntimeWarning,
                              stacklevel=2)
                return loss
            self.buffer.add(inp.observation, inp.action, reward, next_obs, done)
            self.step_count += 1
            if self.step_count % max(1, len(self.buffer) // REFRESH_ROWS) == 0:
                self._refresh_statistics()
            self._remember(inp, next_obs, done)
            self._metrics.on_update(loss, len(self.buffer))
            return loss

    def _row(self, inp: ModelInput, next_obs: tuple[float, ...], reward: float, done: bool,
             first: bool) -> dict[str, torch.Tensor]:
        """The new transition as one buffer row (fields as `ReplayBuffer` gives them)."""
        return {"obs": torch.tensor([inp.observation]), "action": torch.tensor([inp.action]),
                "reward": torch.tensor([reward]), "next_obs": torch.tensor([next_obs]),
                "terminated": torch.tensor([done]), "truncated": torch.tensor([False]),
                "is_first": torch.tensor([first])}

    def _batch(self, row: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The new row and replayed ones, shaped for the core model's `loss`: rows (B, ...)
        for the Markov models; windows (B, L, ...) for the memory models, the first one the
        new row's (its last L - 1 predecessors in the buffer, then the row itself)."""
        n = len(self.buffer)
        if self.world_model.batches == "transitions":
            parts = [row]
            if n:
                parts.append(self.buffer.sample(BATCH_ROWS - 1, self._generator))
        else:
            length = min(SEQUENCE_WINDOW, n + 1)
            newest = {key: torch.cat([self.buffer[n - length + 1: n][key], value])[None]
                      for key, value in row.items()}
            parts = [newest]
            windows = BATCH_ROWS // SEQUENCE_WINDOW - 1
            if n >= length:
                drawn = self.buffer.sample_sequences(windows, length, self._generator)
                parts.append({key: drawn[key] for key in row})
        device = self.world_model.device
        return {key: torch.cat([part[key] for part in parts]).to(device) for key in row}

    def _refresh_statistics(self) -> None:
        """The buffer's statistics into the model, and its done weight (one row has no
        spread: until two, the identity statistics and a weight of 1 stay)."""
        if len(self.buffer) >= 2:
            self.world_model.set_normalizer(self.buffer.stats())
            self._done_weight = done_weight(self.buffer)

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

    # ------------------------------------------------------------------ snapshots

    async def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable dict of everything predictions and training depend on (the
        optimiser's moments aside): see `wmkit.online.snapshot` for the keys."""
        with self._lock:
            state = self.world_model.state_dict()
            rows = self.buffer.tensors()
            return {
                "format": SNAPSHOT_FORMAT,
                "config": self.config.to_dict(),
                "seed": self.seed,
                "step_count": self.step_count,
                "buffer_size": len(self.buffer),
                "weights": {name: encode(value) for name, value in state.items()
                            if isinstance(value, torch.Tensor)},
                "buffer": {name: encode(rows[name]) for name in
                           ("obs", "action", "reward", "next_obs", "terminated", "truncated")},
                "history": [[list(obs), action] for obs, action in self._history],
                "last_next_obs": (list(self._last_next_obs) if self._last_next_obs is not None
                                  else None),
                "ground_truth": [[list(k.observation), k.action, list(v)]
                                 for k, v in self._ground_truth.items()],
            }

    async def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a `snapshot()` of a model with an equal config. Every field is checked first:
        a ValueError leaves this model exactly as it was."""
        checked = read_snapshot(snapshot)
        if checked.config != self.config:
            diffs = [f"{key}: {value!r} != {mine!r}" for (key, value), mine
                     in zip(checked.config.to_dict().items(), self.config.to_dict().values())
                     if value != mine]
            raise ValueError("snapshot: its config does not match this model's "
                             f"(snapshot vs model: {'; '.join(diffs)})")
        buffer = self._buffer_from(checked)
        with self._lock:
            self._load(checked, buffer)

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any], *, registry: Any | None = None,
                      device: str | torch.device | None = None, name: str | None = None
                      ) -> OnlineWorldModel:
        """A new model built from the snapshot's own config, once every field is checked
        (the network's size is checked before it is built)."""
        checked = read_snapshot(snapshot)
        model = cls(checked.config, registry=registry, seed=checked.seed, device=device,
                    name=name)
        model._load(checked, model._buffer_from(checked))
        return model

    def _buffer_from(self, checked: Snapshot) -> ReplayBuffer:
        """The snapshot's replay buffer, rebuilt row by row (its episode starts re-inferred)."""
        buffer = ReplayBuffer(self.config.obs_dim, self.world_model.action_spec,
                              capacity=max(1, len(checked.buffer["obs"])),
                              max_size=self.config.max_buffer_size)
        rows = checked.buffer
        for i in range(len(rows["obs"])):
            buffer.add(rows["obs"][i], int(rows["action"][i]), float(rows["reward"][i]),
                       rows["next_obs"][i], bool(rows["terminated"][i]),
                       bool(rows["truncated"][i]))
        return buffer

    def _load(self, checked: Snapshot, buffer: ReplayBuffer) -> None:
        """Swap a checked snapshot in (nothing here can fail on the snapshot's contents)."""
        own = self.world_model.state_dict()
        self.world_model.load_state_dict({**own, **checked.weights})
        self._reset_state()
        self.buffer = buffer
        if len(buffer) >= 2:  # the statistics came with the weights; the weight from the rows
            self._done_weight = done_weight(buffer)
        self.step_count = checked.step_count
        self._history.extend(checked.history)
        self._last_next_obs = checked.last_next_obs
        self._ground_truth = checked.ground_truth


def _as_list(value: Any, name: str = "action_sequence") -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: expected a sequence, got {type(value).__name__}")
    return list(value)


def _cut(dream: dict[str, torch.Tensor], i: int) -> DreamRollout:
    """Dream `i` of a batch, cut after its first predicted done, as a `DreamRollout`."""
    done = dream["done"][i]
    ends = torch.nonzero(done).flatten()
    length = int(ends[0]) + 1 if len(ends) else len(done)
    steps = tuple(ModelOutput(tuple(dream["next_obs"][i, t].tolist()),
                              float(dream["reward"][i, t]), bool(done[t]), 0.0)
                  for t in range(length))
    return DreamRollout(steps=steps,
                        total_imagined_reward=float(sum(step.predicted_reward for step in steps)),
                        surprise_score=float(dream["expected"][i, :length].mean()))


def build_world_model(config: WorldModelConfig | None = None, *, registry: Any | None = None,
                      seed: int = 0, device: str | torch.device | None = None,
                      name: str | None = None) -> OnlineWorldModel:
    """A fresh online world model for `config` (default `WorldModelConfig()`).

    registry: a `prometheus_client.CollectorRegistry` for the wm_* metrics, shared by as many
    models as you like; None gives a fresh one per model (metrics off if prometheus_client is
    missing; asking for a registry without it raises ImportError). name: the model's `model`
    label on the registry (default the backend's name in lower case, e.g. "lstm").
    seed: fixes the initial weights and replay sampling. device: default CUDA when present.
    """
    return OnlineWorldModel(config, registry=registry, seed=seed, device=device, name=name)
