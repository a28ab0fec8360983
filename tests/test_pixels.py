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
import torch.nn.functional as F

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
    check_size,
    dream_against_reality,
    dream_errors,
    frame_shape,
    pixel_twin,
    render_states,
)

SIZE = 32  # small frames keep every test quick; 64 is the default
WIDE = (32, 128)  # height x width: the aspect of CartPole's band, as many pixels as 64 x 64


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
    assert frame_shape(env) == (SIZE, SIZE) and frame_shape(wm.make_env("CartPole-v1")) is None
    for _ in range(5):
        next_obs, *_ = env.step(1)  # pushed right five times: the cart moves
    assert next_obs.shape == (SIZE * SIZE,) and not np.array_equal(next_obs, obs)


def test_wide_frames_keep_the_band_as_it_is_drawn() -> None:
    """32 x 128 cells hold what 64 x 64 cells hold, but at the band's aspect: averaged over
    pairs of columns the wide frame is the square frame averaged over pairs of rows."""
    env = wm.make_env("CartPole-v1", seed=0, pixels=True, size=WIDE)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (4096,) and obs.shape == (4096,)
    assert env.observation_space.contains(obs) and frame_shape(env) == WIDE
    square = wm.make_env("CartPole-v1", pixels=True, size=64)
    # Upright in the middle, leaning right on the left, leaning left on the right.
    states = torch.tensor([[0.0, 0, 0, 0], [-1.5, 0, 0.15, 0], [1.5, 0, -0.15, 0]])
    wide = as_frames(render_states(env, states), WIDE)
    assert wide.shape == (3, 32, 128)
    # The cart: whole cells of ink in the bottom rows, in the middle, left, right third.
    cart = (wide[:, 25:31] == 1).all(1)  # (3, 128) columns the cart fills
    middles = [float(c.nonzero().float().mean()) for c in cart]
    assert 54 < middles[0] < 74 and middles[1] < 40 and middles[2] > 88, middles
    assert wide[:, :2].sum() == 0 and wide[0, 20, :48].sum() == 0  # paper above, beside the pole
    # The pole: twice as many columns as in a 64 x 64 frame (its tilt moves twice as many too).
    squares = as_frames(render_states(square, states), 64)
    assert (wide[:, 10].sum(-1) > 1.8 * squares[:, 20].sum(-1)).all()
    halved = F.avg_pool2d(wide[:, None], (1, 2))[:, 0]  # (3, 32, 64)
    squat = F.avg_pool2d(squares[:, None], (2, 1))[:, 0]  # (3, 32, 64)
    assert (halved - squat).abs().mean() < 0.01
    assert (halved[0] - squat[1]).abs().mean() > 0.03  # another state: far off


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


def test_a_size_is_a_side_or_a_pair() -> None:
    assert check_size(64) == (64, 64) and check_size(np.int64(48)) == (48, 48)
    assert check_size(WIDE) == WIDE and check_size([32, 128]) == WIDE  # a list, from JSON
    assert check_size((256, 16)) == (256, 16)
    assert wm.make_env("CartPole-v1", pixels=True, size=[32, 128]).observation_space.shape \
        == (4096,)


@pytest.mark.parametrize("size", [(32, 100), (0, 64), (32, 128, 1), 48.0, True, "64"],
                         ids=repr)
def test_bad_sizes_are_refused_wherever_a_size_is_given(size: object) -> None:
    places = {
        "check_size": lambda: check_size(size),
        "make_env": lambda: wm.make_env("CartPole-v1", pixels=True, size=size),
        "as_frames": lambda: as_frames(torch.zeros(4096), size),
        "ConvEncoder": lambda: ConvEncoder(size, 8),
        "ConvDecoder": lambda: ConvDecoder(8, size),
        "FrameAutoencoder": lambda: FrameAutoencoder(size, device="cpu"),
        "draw_frames": lambda: wm.notebook.draw_frames(torch.zeros(1, 4096), size),
    }
    for place, call in places.items():
        with pytest.raises(ValueError, match=r"^size: expected .* pair \(height, width\)"):
            call()
            pytest.fail(place)
    with pytest.raises(ValueError, match="^frame_size: expected"):
        wm.RSSMWorldModel(4096, wm.ActionSpec.from_space(gym.spaces.Discrete(2)),
                          frame_size=size)


def test_an_env_that_cannot_render_is_refused() -> None:
    gym.register("wmkit-test/NoRender-v0", entry_point=_NoRender)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="pixels: .*cannot render"):
        wm.make_env("wmkit-test/NoRender-v0", pixels=True)
    with pytest.raises(ValueError, match="env: expected RGB frames"):
        InkFrame(wm.make_env("CartPole-v1"))


@pytest.mark.parametrize("size", [SIZE, WIDE])
def test_pixel_twin_draws_what_the_pixel_env_observes(size: int | tuple[int, int]) -> None:
    state_env = wm.make_env("CartPole-v1", seed=3)
    pixel_env = wm.make_env("CartPole-v1", seed=3, pixels=True, size=size)
    states = wm.collect(state_env, steps=12, seed=3, policy=lambda obs: int(obs[2] > 0))
    actions = iter(states.tensors()["action"].tolist())
    pixels = wm.collect(pixel_env, steps=12, seed=3, policy=lambda _obs: next(actions))
    twin = pixel_twin(states, size=size)
    assert twin.obs_dim == pixel_env.observation_space.shape[0] and twin.pixels
    for key in ("obs", "next_obs", "action", "is_first"):
        assert torch.equal(twin.tensors()[key], pixels.tensors()[key]), key
    with pytest.raises(ValueError, match="env: expected a pixel env"):
        render_states(state_env, states.tensors()["obs"][:2])
    with pytest.raises(ValueError, match="states"):
        render_states(pixel_env, torch.zeros(2, 3))
    hidden = wm.collect(wm.make_env("CartPole-v1", seed=3, hide_velocities=True), steps=4, seed=3)
    with pytest.raises(ValueError, match="buffer: expected CartPole-v1 states of size 4, got 2"):
        pixel_twin(hidden, size=size)  # positions only: no state to draw from


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
        with pytest.raises(ValueError, match="^size"):
            ConvEncoder(bad, 8)


def test_conv_encoder_and_decoder_on_wide_frames() -> None:
    torch.manual_seed(0)
    encoder, decoder = ConvEncoder(WIDE, 24), ConvDecoder(40, WIDE)
    assert encoder.frame_shape == decoder.frame_shape == WIDE
    assert encoder.out.in_features == 4 * 8 * 2 * 8  # 32 x 128 -> 2 x 8 cells of 4 depth
    assert encoder(torch.rand(3, 5, 4096)).shape == (3, 5, 24)
    assert decoder(torch.randn(3, 5, 40)).shape == (3, 5, 4096)
    image = torch.arange(32 * 128.0).reshape(1, 32 * 128)
    patches = to_patches(image, WIDE)
    assert patches.shape == (1, 8, 32, 16)  # rows of patches, then columns
    assert torch.equal(patches[0, 2, 25].reshape(4, 4), image.reshape(32, 128)[8:12, 100:104])
    assert torch.equal(from_patches(patches, WIDE), image)
    autoencoder = FrameAutoencoder(WIDE, code=8, device="cpu")
    frames = torch.rand(5, 4096)
    assert autoencoder.encode(frames).shape == (5, 8) and autoencoder(frames).shape == (5, 4096)
    with pytest.raises(ValueError, match="frames: expected \\(N, 4096\\) flat 32 x 128"):
        autoencoder.encode(torch.rand(5, 1024))
    # 64 x 64 has as many pixels, but not the same layers: refused, not copied.
    with pytest.raises(ValueError, match="encoder: expected frames of .* \\(32, 128\\)"):
        copy_convolutions(autoencoder, ConvEncoder(64, 8), ConvDecoder(8, 64))
    copy_convolutions(autoencoder, ConvEncoder(WIDE, 4), ConvDecoder(6, WIDE))


# -- the pixel RSSM -----------------------------------------------------------------------


def test_pixel_rssm_is_built_for_a_pixel_env() -> None:
    env = wm.make_env("CartPole-v1", pixels=True, size=SIZE)
    model = wm.RSSMWorldModel.for_env(env, device="cpu")
    assert model.frame_shape == (SIZE, SIZE) and isinstance(model.encoder, ConvEncoder)
    assert isinstance(model.decoder, ConvDecoder)
    assert wm.RSSMWorldModel.for_env(wm.make_env("CartPole-v1"), device="cpu").frame_shape is None
    with pytest.raises(ValueError, match="frame_size"):
        wm.RSSMWorldModel(100, model.action_spec, frame_size=SIZE)
    with pytest.raises(ValueError, match="frame_size: 32 x 128 frames have 4096 pixels, but "
                                         "obs_dim is 1024"):
        wm.RSSMWorldModel(1024, model.action_spec, frame_size=WIDE)


def test_a_pixel_rssm_fits_and_dreams_wide_frames(
        frames: tuple[wm.ReplayBuffer, wm.ReplayBuffer]) -> None:
    import matplotlib.pyplot as plt

    states, _ = frames
    wide = pixel_twin(states, size=WIDE)
    assert wide.obs_dim == 4096 and wide.pixels
    wm.seed_everything(0)
    model = wm.RSSMWorldModel.for_env(wm.make_env("CartPole-v1", pixels=True, size=WIDE),
                                      deter=16, stoch=4, hidden=16, device="cpu")
    assert model.frame_shape == model.encoder.frame_shape == model.decoder.frame_shape == WIDE
    history = wm.fit(model, wide, epochs=1, batch_size=16, length=8, seed=0, progress=False)
    assert np.isfinite(history.train["total"][-1])
    state = model.filter(None, None, wide[0]["obs"])
    rollout = model.imagine(state, torch.zeros(2, 3, dtype=torch.long))
    assert rollout.observations.shape == (2, 4, 4096)
    with torch.no_grad():
        assert model.decode(state).shape == (1, 4096)
    explorer = wm.notebook.frame_dream_explorer(model, wide, row=2, size=WIDE, horizon=2)
    assert explorer.data["dreamed"].shape == (3, 4096)
    assert explorer.figure.axes[0].images[0].get_array().shape == WIDE
    plt.close("all")


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
    # Wide frames are drawn wide: panels at the frames' aspect, 4 : 1, as large as square ones.
    boxes = []
    for size in (64, WIDE):
        fig = nb.draw_frames(torch.rand(2, 3, 4096), size)
        fig.canvas.draw()
        boxes.append(fig.axes[0].get_window_extent())
    assert fig.axes[0].images[0].get_array().shape == WIDE
    assert boxes[1].width / boxes[1].height == pytest.approx(4, rel=0.05)
    assert boxes[1].width * boxes[1].height > 0.9 * boxes[0].width * boxes[0].height
    anim = nb.animate_dream(torch.rand(3, 4096), torch.rand(3, 4096), WIDE)
    real, dreamed = anim._fig.axes[:2]  # one above the other
    assert real.images[0].get_array().shape == WIDE
    assert real.get_position().y0 > dreamed.get_position().y1
    assert len(list(anim.new_frame_seq())) == 3 and "<img" in anim.to_jshtml()
    with pytest.raises(ValueError, match="frames: expected .* for 32 x 128 frames"):
        nb.draw_frames(torch.rand(3, 1024), WIDE)
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
