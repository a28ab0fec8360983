"""Seeding, devices and argument checks shared by the whole kit."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

_announced_devices: set[str] = set()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so the same seed gives the same numbers on the CPU."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: `device` if given, else CUDA when present, else the CPU.

    The first time a device is chosen it is printed, so a learner always knows where the
    numbers come from.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if str(chosen) not in _announced_devices:
        _announced_devices.add(str(chosen))
        print(f"wmkit: using device {chosen}")
    return chosen


def check_positive_int(name: str, value: Any) -> int:
    """`value` as an int >= 1, or a ValueError naming `name`."""
    return _check_int(name, value, 1, "a positive int")


def check_nonnegative_int(name: str, value: Any) -> int:
    """`value` as an int >= 0, or a ValueError naming `name`."""
    return _check_int(name, value, 0, "an int >= 0")


def _check_int(name: str, value: Any, minimum: int, expected: str) -> int:
    # bool is an int subclass, but `epochs=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def as_float_tensor(
    name: str, value: Any, shape: tuple[int, ...] | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """`value` as a finite float32 tensor (of trailing shape `shape`) on `device`, or a
    ValueError naming it.

    Host values (numpy arrays, lists, CPU tensors) are checked on the host and then moved:
    checking on a GPU would make the host wait for it (the planner calls this every step).
    """
    on_host = not (isinstance(value, torch.Tensor) and value.device.type != "cpu")
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32, device="cpu" if on_host else None)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name}: expected numbers, got {value!r}") from error
    if shape is not None and tuple(tensor.shape[-len(shape):]) != shape:
        raise ValueError(f"{name}: expected trailing shape {shape}, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name}: contains non-finite values (NaN or inf)")
    return tensor if device is None else tensor.to(device)
