"""Snapshots of an online model: a JSON-ready dict, read back only after every field is checked.

    {"format": "wmkit.online/2", "config": {...}, "seed": 0, "step_count": 15,
     "buffer_size": 15,
     "weights": {name: {"shape": [...], "dtype": "float32", "data": base64}, ...},
     "buffer": {field: {"shape", "dtype", "data"}, ...},     # the replay buffer's rows
     "history": [[obs, action], ...], "last_next_obs": obs | None,
     "ground_truth": [[obs, action, next_obs], ...]}

The weights are the core model's `state_dict()`, its normalisation statistics included. The
replay buffer travels too (the statistics come from it), so a restored model predicts *and*
trains on as the original would; only the optimiser's moments start afresh.

`read_snapshot` checks everything before anything is built or changed: the format, the config
(and the size of the network it asks for, on the `meta` device, without allocating it), the
name, shape, dtype and byte length of every tensor against that config, finite weights,
positive standard deviations, the buffer's rows, the history and the ground truths. Only then
does it decode: a snapshot refused for any field leaves the model as it was.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .backends import context_window, expected_shapes
from .types import ModelInput, WorldModelConfig, check_action, check_observation

SNAPSHOT_FORMAT = "wmkit.online/2"
REQUIRED_KEYS = ("format", "config", "step_count", "buffer_size", "weights", "buffer",
                 "history", "last_next_obs", "ground_truth")
BUFFER_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
DTYPES = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}


@dataclass
class Snapshot:
    """A checked snapshot, decoded: what `OnlineWorldModel` loads."""

    config: WorldModelConfig
    seed: int
    step_count: int
    weights: dict[str, torch.Tensor]
    buffer: dict[str, torch.Tensor]  # BUFFER_FIELDS, N rows each
    history: list[tuple[tuple[float, ...], int]]
    last_next_obs: tuple[float, ...] | None
    ground_truth: OrderedDict[ModelInput, tuple[float, ...]]


def encode(tensor: torch.Tensor) -> dict[str, Any]:
    """A tensor as {"shape", "dtype", "data"}: its bytes in base64 (exact, JSON-ready)."""
    array = tensor.detach().cpu().contiguous().numpy()
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def decode(name: str, entry: Any, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """An `encode`d tensor, checked to have `shape` and `dtype` before it is decoded."""
    if not isinstance(entry, dict) or not {"shape", "dtype", "data"} <= set(entry):
        raise ValueError(f"snapshot: {name} must be a dict with shape, dtype and data")
    if entry["shape"] != list(shape) or entry["dtype"] != dtype:
        raise ValueError(f"snapshot: {name} has shape {entry['shape']} and dtype "
                         f"{entry['dtype']!r}, expected {list(shape)} and {dtype!r}")
    data = entry["data"]
    itemsize = np.dtype(dtype).itemsize
    if not isinstance(data, str) or len(data) != 4 * math.ceil(math.prod(shape) * itemsize / 3):
        raise ValueError(f"snapshot: {name} holds the wrong number of bytes for {list(shape)}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"snapshot: {name} is not valid base64") from error
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return torch.from_numpy(array)


def _count(name: str, value: Any, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (
            maximum is not None and value > maximum):
        bound = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(f"snapshot: {name} must be an int >= 0{bound}, got {value!r}")
    return value


def _list(name: str, value: Any, maximum: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > maximum:
        raise ValueError(f"snapshot: {name} must be a list of at most {maximum} entries")
    return value


def _finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"snapshot: {name} holds NaN or inf values")


def read_snapshot(snapshot: Any) -> Snapshot:
    """Check every field of `snapshot` (see the module docstring), then decode it."""
    if not isinstance(snapshot, dict):
        raise ValueError(f"snapshot: expected a dict, got {type(snapshot).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in snapshot]
    if missing:
        raise ValueError(f"snapshot: missing keys {missing}")
    if snapshot["format"] != SNAPSHOT_FORMAT:
        raise ValueError(f"snapshot: format {snapshot['format']!r}, expected "
                         f"{SNAPSHOT_FORMAT!r} (older snapshots hold other networks)")
    config = WorldModelConfig.from_dict(snapshot["config"])
    shapes = expected_shapes(config)  # refuses a network too big to build
    d, actions = int(config.obs_dim), int(config.action_dim)

    weights_in = snapshot["weights"]
    if not isinstance(weights_in, dict) or set(weights_in) != set(shapes):
        names = sorted(weights_in) if isinstance(weights_in, dict) else weights_in
        raise ValueError(f"snapshot: weights must be exactly {sorted(shapes)}, got {names}")
    weights = {}
    for name, (shape, dtype) in shapes.items():
        weights[name] = decode(f"weight {name!r}", weights_in[name], shape, dtype)
        _finite(f"weight {name!r}", weights[name])
        if name.endswith("_std") and not bool((weights[name] > 0).all()):
            raise ValueError(f"snapshot: statistic {name!r} must be > 0")

    size = _count("buffer_size", snapshot["buffer_size"], int(config.max_buffer_size))
    buffer_in = snapshot["buffer"]
    if not isinstance(buffer_in, dict) or set(buffer_in) != set(BUFFER_FIELDS):
        raise ValueError(f"snapshot: buffer must hold exactly {list(BUFFER_FIELDS)}")
    layout = {"obs": ((size, d), "float32"), "action": ((size,), "int64"),
              "reward": ((size,), "float32"), "next_obs": ((size, d), "float32"),
              "terminated": ((size,), "bool"), "truncated": ((size,), "bool")}
    buffer = {}
    for name, (shape, dtype) in layout.items():
        buffer[name] = decode(f"buffer {name!r}", buffer_in[name], shape, dtype)
        _finite(f"buffer {name!r}", buffer[name])
    if size and not bool(((buffer["action"] >= 0) & (buffer["action"] < actions)).all()):
        raise ValueError(f"snapshot: buffer actions must be in [0, {actions})")

    # The history keeps the last window - 1 real steps (none for the Markov backends).
    history = [(check_observation("snapshot: history", obs, d),
                check_action("snapshot: history", action, actions))
               for obs, action in _pairs("history", snapshot["history"],
                                         int(config.max_buffer_size), 2)]
    history = history[max(0, len(history) - context_window(config.backend) + 1):]
    last = snapshot["last_next_obs"]
    last_next_obs = None if last is None else check_observation("snapshot: last_next_obs",
                                                                 last, d)
    ground_truth = OrderedDict(
        (ModelInput(check_observation("snapshot: ground_truth", obs, d),
                    check_action("snapshot: ground_truth", action, actions)),
         check_observation("snapshot: ground_truth", next_obs, d))
        for obs, action, next_obs in _pairs("ground_truth", snapshot["ground_truth"],
                                            int(config.max_buffer_size), 3))
    seed = snapshot.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"snapshot: seed must be an int, got {seed!r}")
    return Snapshot(config, seed, _count("step_count", snapshot["step_count"]), weights,
                    buffer, history, last_next_obs, ground_truth)


def _pairs(name: str, value: Any, maximum: int, width: int) -> list[list[Any]]:
    """A list of at most `maximum` lists of `width` items each."""
    entries = _list(name, value, maximum)
    if any(not isinstance(entry, list) or len(entry) != width for entry in entries):
        raise ValueError(f"snapshot: every entry of {name} must be a list of {width} items")
    return entries
