"""Shared fixtures: small seeded CartPole data, one thread so timings of others stay sane."""

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
torch.set_num_threads(1)

import wmkit as wm  # noqa: E402


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """Import a script of benchmarks/ by its name ("pixels"): they are scripts, not a package.
    Registered in sys.modules first, so the script's dataclasses can find their module."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def cartpole_buffer() -> wm.ReplayBuffer:
    """2,000 random CartPole transitions, seed 0."""
    return wm.collect(wm.make_env("CartPole-v1", seed=0), steps=2_000, seed=0)


@pytest.fixture(scope="session")
def heldout_buffer() -> wm.ReplayBuffer:
    """500 random CartPole transitions, seed 3: data the models above never trained on."""
    return wm.collect(wm.make_env("CartPole-v1", seed=3), steps=500, seed=3)


@pytest.fixture(scope="session")
def trained_mlp(cartpole_buffer: wm.ReplayBuffer) -> wm.MLPWorldModel:
    """An MLP fitted on `cartpole_buffer` (seeded), shared by tests that only read it."""
    wm.seed_everything(0)
    model = wm.MLPWorldModel.for_env(wm.make_env("CartPole-v1"), device="cpu")
    wm.fit(model, cartpole_buffer, epochs=40, seed=0, progress=False)
    return model
