"""Shared fixtures: small seeded CartPole data, one thread so timings of others stay sane."""

import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
torch.set_num_threads(1)

import wmkit as wm  # noqa: E402


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
