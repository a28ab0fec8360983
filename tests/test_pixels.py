"""Pixels: ink frames from gymnasium's rendering, their buffer, the conv encoder and decoder, the
pixel RSSM (filter a frame, imagine frames, fit, plan) and the frame autoencoder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.models.conv import (
    ConvDecoder,
    ConvEncoder,
    FrameAutoencoder,
    copy_convolutions,
    fit_autoencoder,
    from_patches,
    to_patches,
)
from wmkit.pixels import (
    InkFrame,
    as_frames,
    dream_against_reality,
    dream_errors,
    frame_size,
    pixel_twin,
    render_states,
)

SIZE = 32  # small frames keep every test quick; 64 is the default


@pytest.fixture(scope="module")
def frames() -> tuple[wm.ReplayBuffer, wm.ReplayBuffer]:
    """(states, frames): 120 random CartPole transitions and their ink frames."""
    states = wm.collect(wm.make_env("CartPole-v1", seed=0), steps=120, seed=0)
    return states, pixel_twin(states, SIZE)


@pytest.fixture(scope="module")
def trained(frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]
            ) -> tuple[wm.RSSMWorldModel, float, float]:
    """A pixel RSSM before and after a short fit: (model, recon before, recon after)."""
    _, pixels = frames
    wm.seed_everything(0)
    model = wm.RSSMWorldModel(SIZE * SIZE, pixels.action_spec, deter=32, stoch=8, hidden=32,
                              frame_size=SIZE, device="cpu")
    batch = pixels.sample_sequences(4, 16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = float(model.loss(batch, generator=torch.Generator().manual_seed(2))["recon"])
    wm.fit(model, pixels, epochs=12, batch_size=64, length=16, lr=3e-3, seed=0, progress=False)
    with torch.no_grad():
        after = float(model.loss(batch, generator=torch.Generator().manual_seed(2))["recon"])
    return model, before, after


# -- the env -------------------------------------------------------------------------------


def test_pixel_env_observes_flat_ink_frames() -> None:
    env = wm.make_env("CartPole-v1", seed=0, pixels=True, size=SIZE)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (SIZE * SIZE,) and obs.shape == (SIZE * SIZE,)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    frame = as_frames(obs, SIZE)
    # Ink on paper: the paper is exactly 0, cells inside the cart exactly 1, edges in between,
    # in steps of 1/255 (what a byte keeps).
    assert frame[:4, :4].sum() == 0  # the top left corner: paper (the track runs below)
    assert frame.max() == 1.0
    assert torch.equal(torch.round(frame * 255) / 255, frame)
    assert 0.01 < float((frame > 0).float().mean()) < 0.2  # a cart and a pole, mostly paper
    assert frame_size(env) == SIZE and frame_size(wm.make_env("CartPole-v1")) is None
    for _ in range(5):
        next_obs, *_ = env.step(1)  # pushed right five times: the cart moves
    assert next_obs.shape == (SIZE * SIZE,) and not np.array_equal(next_obs, obs)


def test_default_size_and_other_envs() -> None:
    assert wm.make_env("CartPole-v1", pixels=True).observation_space.shape == (64 * 64,)
    pendulum = wm.make_env("Pendulum-v1", pixels=True, size=16)  # no band: the whole frame
    obs, _ = pendulum.reset(seed=0)
    assert obs.shape == (256,) and obs.max() > 0


class _NoRender(gym.Env):
    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN202
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):  # noqa: ANN001, ANN202
        return np.zeros(2, np.float32), 1.0, False, False, {}


@pytest.mark.parametrize("kwargs, name", [
    ({"pixels": True, "size": 20}, "size"),
    ({"pixels": True, "size": 512}, "size"),
    ({"pixels": True, "size": 64.0}, "size"),
    ({"size": 64}, "size"),
    ({"pixels": True, "hide_velocities": True}, "hide_velocities"),
    ({"pixels": True, "render_mode": "human"}, "render_mode"),
])
def test_bad_pixel_arguments_are_refused(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        wm.make_env("CartPole-v1", **kwargs)


def test_an_env_that_cannot_render_is_refused() -> None:
    gym.register("wmkit-test/NoRender-v0", entry_point=_NoRender)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="pixels: .*cannot render"):
        wm.make_env("wmkit-test/NoRender-v0", pixels=True)
    with pytest.raises(ValueError, match="env: expected RGB frames"):
        InkFrame(wm.make_env("CartPole-v1"))


def test_pixel_twin_draws_what_the_pixel_env_observes() -> None:
    state_env = wm.make_env("CartPole-v1", seed=3)
    pixel_env = wm.make_env("CartPole-v1", seed=3, pixels=True, size=SIZE)
    states = wm.collect(state_env, steps=12, seed=3, policy=lambda obs: int(obs[2] > 0))
    actions = iter(states.tensors()["action"].tolist())
    pixels = wm.collect(pixel_env, steps=12, seed=3, policy=lambda _obs: next(actions))
    twin = pixel_twin(states, SIZE)
    for key in ("obs", "next_obs", "action", "is_first"):
        assert torch.equal(twin.tensors()[key], pixels.tensors()[key]), key
    with pytest.raises(ValueError, match="env: expected a pixel env"):
        render_states(state_env, states.tensors()["obs"][:2])
    with pytest.raises(ValueError, match="states"):
        render_states(pixel_env, torch.zeros(2, 3))


# -- the buffer ---------------------------------------------------------------------------


def test_a_pixel_buffer_keeps_bytes_and_gives_back_the_frames(
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    _, pixels = frames
    assert pixels.pixels and pixels._data["obs"].dtype == torch.uint8
    assert wm.ReplayBuffer.for_env(wm.make_env("CartPole-v1", pixels=True, size=SIZE)).pixels
    assert not wm.ReplayBuffer.for_env(wm.make_env("CartPole-v1")).pixels
    env = wm.make_env("CartPole-v1", seed=1, pixels=True, size=SIZE)
    obs, _ = env.reset(seed=1)
    buffer = wm.ReplayBuffer(SIZE * SIZE, pixels.action_spec, capacity=2, pixels=True)
    next_obs, *_ = env.step(0)
    buffer.add(obs, 0, 1.0, next_obs, False)
    row = buffer[0]
    assert row["obs"].dtype == torch.float32
    assert torch.equal(row["obs"], torch.from_numpy(obs))  # exactly what the env gave
    assert torch.equal(buffer.tensors()["next_obs"][0], torch.from_numpy(next_obs))
    row["obs"][:] = 0.5  # a copy: the buffer is unchanged
    assert torch.equal(buffer[0]["obs"], torch.from_numpy(obs))
    with pytest.raises(ValueError, match="obs: expected a frame with values in"):
        buffer.add(obs * 2, 0, 1.0, next_obs, False)
    assert len(buffer) == 1
    copy = wm.ReplayBuffer(SIZE * SIZE, pixels.action_spec, pixels=True)
    copy.extend(pixels)
    assert torch.equal(copy.tensors()["obs"], pixels.tensors()["obs"])
    assert torch.equal(copy.tensors()["is_first"], pixels.tensors()["is_first"])


# -- encoder and decoder ------------------------------------------------------------------


def test_conv_encoder_and_decoder_shapes() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 5, 64 * 64)
    assert ConvEncoder(64, 24)(x).shape == (3, 5, 24)
    assert ConvDecoder(40, 64)(torch.randn(3, 5, 40)).shape == (3, 5, 64 * 64)
    assert ConvDecoder(40, 16)(torch.randn(7, 40)).shape == (7, 256)
    image = torch.arange(64 * 64.0).reshape(1, 64 * 64)
    patches = to_patches(image, 64)
    assert torch.equal(patches[0, 2, 5].reshape(4, 4), image.reshape(64, 64)[8:12, 20:24])
    assert torch.equal(from_patches(patches, 64), image)
    for bad in (8, 24, 64.0, True):
        with pytest.raises(ValueError, match="frame_size"):
            ConvEncoder(bad, 8)


# -- the pixel RSSM -----------------------------------------------------------------------


def test_pixel_rssm_is_built_for_a_pixel_env() -> None:
    env = wm.make_env("CartPole-v1", pixels=True, size=SIZE)
    model = wm.RSSMWorldModel.for_env(env, device="cpu")
    assert model.frame_size == SIZE and isinstance(model.encoder, ConvEncoder)
    assert isinstance(model.decoder, ConvDecoder)
    assert wm.RSSMWorldModel.for_env(wm.make_env("CartPole-v1"), device="cpu").frame_size is None
    with pytest.raises(ValueError, match="frame_size"):
        wm.RSSMWorldModel(100, model.action_spec, frame_size=SIZE)


def test_a_few_fit_steps_reduce_the_reconstruction_loss(
        trained: tuple[wm.RSSMWorldModel, float, float]) -> None:
    _, before, after = trained
    assert after < 0.7 * before, (before, after)


def test_pixel_rssm_filters_a_frame_and_imagines_frames(
        trained: tuple[wm.RSSMWorldModel, float, float],
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    model, _, _ = trained
    _, pixels = frames
    state = model.filter(None, None, pixels[0]["obs"])
    state = model.filter(state, int(pixels[0]["action"]), pixels[0]["next_obs"])
    assert state.h.shape == (1, 32) and state.z.shape == (1, 8)
    with pytest.raises(ValueError, match="obs"):
        model.filter(None, None, torch.zeros(SIZE))
    actions = torch.randint(0, 2, (3, 6), generator=torch.Generator().manual_seed(0))
    rollout = model.imagine(state, actions)
    assert rollout.observations.shape == (3, 7, SIZE * SIZE)
    assert rollout.rewards.shape == (3, 6) and rollout.features.shape == (3, 7, 40)
    with model.latent_imagination():
        latent = model.imagine(state, actions)
    assert latent.observations.shape == (3, 7, 0)  # no frame drawn
    assert torch.allclose(latent.rewards, rollout.rewards)
    assert torch.allclose(latent.features, rollout.features)
    assert model.imagine(state, actions).observations.shape == (3, 7, SIZE * SIZE)  # restored
    with torch.no_grad():
        assert model.decode(state).shape == (1, SIZE * SIZE)  # the belief, drawn as a frame


def test_pixel_rssm_plans_one_step(trained: tuple[wm.RSSMWorldModel, float, float]) -> None:
    model, _, _ = trained
    env = wm.make_env("CartPole-v1", seed=0, pixels=True, size=SIZE)
    obs, _ = env.reset(seed=0)
    planner = wm.RandomShooting(model, horizon=5, candidates=16, seed=0)
    with model.latent_imagination():
        action = planner(obs)
    assert action in (0, 1) and planner.last_plan.rollout.observations.shape[-1] == 0
    assert planner(env.step(action)[0]) in (0, 1)  # with frames drawn, too


def test_dream_errors_compare_dreams_with_the_still_frame(
        trained: tuple[wm.RSSMWorldModel, float, float],
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    model, _, _ = trained
    _, pixels = frames
    errors = dream_errors(model, pixels, horizon=4, burn_in=2, max_starts=5)
    assert errors["dream"].shape == (4,) and errors["still"].shape == (4,)
    assert (errors["still"][1:] > errors["still"][:-1]).all()  # frames drift from the start
    with pytest.raises(ValueError, match="horizon"):
        dream_errors(model, pixels, horizon=500)


def test_dream_against_reality_is_one_start_or_many(
        trained: tuple[wm.RSSMWorldModel, float, float],
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    """The explorer's one start and `dream_errors`' many get the same numbers per start."""
    model, _, _ = trained
    _, pixels = frames
    rows = wm.analysis.open_loop_starts(pixels, horizon=4)[:3]
    many = dream_against_reality(model, pixels, rows, horizon=4)
    one = dream_against_reality(model, pixels, int(rows[1]), horizon=4)
    assert many["real"].shape == (3, 5, SIZE * SIZE) and many["dream"].shape == (3, 4)
    assert one["dream"].shape == (4,) and one["still"].shape == (4,)
    assert torch.allclose(one["dream"], many["dream"][1], atol=1e-6)
    assert torch.allclose(one["still"], many["still"][1])
    assert 0 <= float(one["dreamed"].min()) and float(one["dreamed"].max()) <= 1


# -- the frame autoencoder ----------------------------------------------------------------


def test_frame_autoencoder_learns_to_redraw_frames(
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    _, pixels = frames
    wm.seed_everything(0)
    autoencoder = FrameAutoencoder(SIZE, code=8, device="cpu")
    data = pixels.tensors()["obs"]
    history = fit_autoencoder(autoencoder, data, epochs=8, batch_size=16, lr=3e-3,
                              progress=False)
    assert history.heldout["recon"][-1] < 0.5 * history.heldout["recon"][0]
    assert autoencoder.encode(data[:5]).shape == (5, 8)
    assert autoencoder(data[:5]).shape == (5, SIZE * SIZE)
    with pytest.raises(ValueError, match="frames"):
        autoencoder.encode(torch.zeros(2, 10))
    # A pixel RSSM starts from the trained convolutions; the layers at the code stay its own.
    rssm = wm.RSSMWorldModel(SIZE * SIZE, pixels.action_spec, frame_size=SIZE, device="cpu")
    own = rssm.encoder.out.weight.clone()
    copy_convolutions(autoencoder, rssm.encoder, rssm.decoder)
    assert torch.equal(rssm.encoder.convs[1].weight, autoencoder.encoder.convs[1].weight)
    assert torch.equal(rssm.decoder.head.weight, autoencoder.decoder.head.weight)
    assert torch.equal(rssm.encoder.out.weight, own)
    with pytest.raises(ValueError, match="encoder"):
        copy_convolutions(autoencoder, ConvEncoder(SIZE, 8, depth=4), rssm.decoder)


# -- the notebook layer (notebook 11's drawings and explorer) -----------------------------


def test_dream_explorer_moves_with_its_slider(
        trained: tuple[wm.RSSMWorldModel, float, float],
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    import matplotlib.pyplot as plt

    model, _, _ = trained
    nb = wm.notebook
    _, pixels = frames
    row = int(wm.analysis.longest_episode(pixels).start) + 2
    explorer = nb.frame_dream_explorer(model, pixels, row=row, size=SIZE, max_horizon=30, horizon=3)
    assert explorer.data["horizon"] == 3 and explorer.data["dreamed"].shape == (4, SIZE * SIZE)
    explorer.controls["horizon"].value = 6
    assert explorer.renders == 2 and explorer.data["horizon"] == 6
    assert explorer.data["error"].shape == (6,) and explorer.data["still"].shape == (6,)
    real, dreamed = explorer.data["real"], explorer.data["dreamed"]
    assert torch.equal(real[0], pixels[row]["obs"]) and dreamed.min() >= 0
    explorer.controls["horizon"].value = 30  # past the episode's end: shortened, not an error
    left = wm.analysis.episode_of(pixels, row).stop - row
    assert left < 30 and explorer.data["horizon"] == left
    anim = nb.animate_dream(real, dreamed, SIZE)
    assert len(list(anim.new_frame_seq())) == 7
    assert "<img" in anim.to_jshtml()  # it plays (and is drawn, so matplotlib keeps quiet)
    with pytest.raises(ValueError, match="imagined"):
        nb.animate_dream(real, dreamed[:3], SIZE)
    plt.close("all")


def test_frame_and_probe_drawings() -> None:
    import matplotlib.pyplot as plt

    nb = wm.notebook
    fig = nb.draw_frames(torch.rand(2, 3, 16 * 16), 16, row_titles=("a", "b"),
                          column_titles=("1", "2", "3"))
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "1"
    with pytest.raises(ValueError, match="frames"):
        nb.draw_frames(torch.rand(3, 100), 16)
    ax = nb.plot_probe({"frame": [0.9, 0.1, 0.8, -3.0], "belief": [0.99, 0.95, 0.9, 0.9]})
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert len(ax.patches) == 8 and heights[0] == -0.2  # very negative R^2 is cut at -0.2
    with pytest.raises(ValueError, match="scores"):
        nb.plot_probe({"frame": [0.9, 0.1]})
    ax = nb.plot_dream_errors(torch.tensor([0.1, 0.2]), torch.tensor([0.05, 0.3]))
    assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="still"):
        nb.plot_dream_errors([0.1, 0.2], [0.1])
    plt.close("all")


# -- the benchmark's record of why evaluation episodes end -----------------------------------

def test_the_pixel_benchmark_says_whether_the_pole_fell_or_the_cart_left(load_benchmark):
    env = load_benchmark("pixels").EndCauses(wm.make_env("CartPole-v1", seed=0))
    env.reset(seed=0)
    terminated = False
    while not terminated:  # always pushing right: the pole falls long before the cart leaves
        terminated = env.step(1)[2]
    env.reset(seed=0)
    env.unwrapped.state = np.array([2.39, 1.0, 0.0, 0.0])  # upright, about to cross the edge
    assert env.step(1)[2]
    assert env.causes == ["pole", "track"]


def test_a_process_that_rendered_frames_still_stops_on_sigterm():
    """pygame's SDL would swallow SIGTERM (`kill`, timeouts, a kernel's shutdown) once a frame
    was drawn; importing wmkit tells SDL to leave the signals alone."""
    code = ("import os, signal, time, wmkit as wm\n"
            "env = wm.make_env('CartPole-v1', pixels=True, size=16)\n"
            "env.reset(seed=0)\n"
            "env.step(0)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n")
    env = {k: v for k, v in os.environ.items() if k != "SDL_NO_SIGNAL_HANDLERS"}
    env["SDL_VIDEODRIVER"] = "dummy"
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=120)
    assert done.returncode == -signal.SIGTERM
