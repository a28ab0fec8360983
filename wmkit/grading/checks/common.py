"""Helpers the checks share: seeded random cases and comparisons with clear messages."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..core import CheckFailed, Submitted
from ..sandbox import Outcome, Probes

TRIALS = 3
"""Random cases per check: one lucky case cannot pass a check."""


def rngs(seed: int, trials: int = TRIALS) -> Iterator[random.Random]:
    """`trials` independent python RNGs derived from `seed` (one per random case)."""
    for trial in range(trials):
        yield random.Random(seed * 7919 + trial)


@contextlib.contextmanager
def torch_seed(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block only (for modules that initialise with it),
    leaving the learner's kernel RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def generator(rng: random.Random) -> torch.Generator:
    """A torch generator seeded from a python RNG."""
    return torch.Generator().manual_seed(rng.randrange(2**31))


def expect_tensor(value: Any, what: str, shape: tuple[int, ...] | None = None,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """`value` if it is a tensor of `shape` (and `dtype`), else CheckFailed saying what it is."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what}: expected a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(f"{what}: expected dtype {dtype}, got {value.dtype}")
    return value


def expect_close(actual: Any, expected: torch.Tensor, what: str, rtol: float = 1e-4,
                 atol: float = 1e-5, hint: str = "") -> None:
    """CheckFailed unless `actual` is a tensor equal to `expected` up to float tolerance."""
    actual = expect_tensor(actual, what, tuple(expected.shape))
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not torch.allclose(a, e, rtol=rtol, atol=atol, equal_nan=False):
        diff = (a - e).abs()
        diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
        where = int(diff.flatten().argmax())
        message = (f"{what}: expected {_fmt(e.flatten()[where])}, got {_fmt(a.flatten()[where])}"
                   + (f" at index {_index(where, tuple(e.shape))}" if e.dim() else ""))
        raise CheckFailed(message + (f"; {hint}" if hint else ""))


def expect_equal(actual: Any, expected: torch.Tensor, what: str, hint: str = "") -> None:
    """CheckFailed unless `actual` equals `expected` exactly (shape, dtype and values)."""
    actual = expect_tensor(actual, what, tuple(expected.shape), expected.dtype)
    if not torch.equal(actual.cpu(), expected.cpu()):
        rows = (actual.cpu() != expected.cpu()).reshape(len(expected), -1).any(1)
        row = int(rows.nonzero()[0]) if expected.dim() > 1 else None
        shown = (f"row {row}: expected {expected[row].tolist()}, got {actual[row].tolist()}"
                 if row is not None else f"expected {expected.tolist()}, got {actual.tolist()}")
        raise CheckFailed(f"{what}: {shown}" + (f"; {hint}" if hint else ""))


def get_key(value: Any, key: str, what: str) -> Any:
    """value[key] for a dict, else CheckFailed naming what was expected."""
    if not isinstance(value, dict):
        raise CheckFailed(f"{what}: expected a dict, got {type(value).__name__}")
    if key not in value:
        raise CheckFailed(f"{what}: no {key!r} key (keys: {sorted(map(str, value))})")
    return value[key]


def _fmt(x: torch.Tensor) -> str:
    return f"{float(x):.6g}"


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def observe_student(student: Submitted, *args: Any, grads_of: Sequence[Any] = (),
                    count_calls_of: str | None = None, no_grad: bool = False,
                    **kwargs: Any) -> Outcome:
    """Call the learner's function on these inputs (see `sandbox.Probes` for the options) and
    return the Outcome; the function's own exception is raised here. In the grader the call
    happens in the learner's kernel and only its results come back."""
    outcome = student.observe(args, kwargs, Probes(tuple(grads_of), count_calls_of, no_grad))
    if outcome.error is not None:
        raise outcome.error
    return outcome


def call_student(student: Submitted, *args: Any, **kwargs: Any) -> Any:
    """The learner's function's result on these inputs (its exception is raised here)."""
    return observe_student(student, *args, **kwargs).result
