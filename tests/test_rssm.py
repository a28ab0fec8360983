"""The RSSM world model, sequence sampling, its diagnostics and the linear probe."""

import matplotlib

matplotlib.use("Agg")


import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import wmkit as wm  # noqa: E402
from wmkit import notebook as nb  # noqa: E402
from wmkit.analysis import (  # noqa: E402
    buffer_beliefs,
    compounding_error,
    fit_probe,
    hidden_twin,
    kl_per_step,
    open_loop,
    open_loop_bias,
    r2_score,
    reconstructions,
)
from wmkit.models.rssm import RSSMState, RSSMWorldModel  # noqa: E402

SMALL = {"deter": 32, "hidden": 32, "stoch": 8, "device": "cpu"}


def small_model(**kwargs) -> RSSMWorldModel:
    torch.manual_seed(0)
    env = wm.make_env("CartPole-v1", hide_velocities=True)
    return RSSMWorldModel.for_env(env, **{**SMALL, **kwargs})


@pytest.fixture(scope="module")
def hidden_pair() -> tuple[wm.ReplayBuffer, wm.ReplayBuffer]:
    """600 random steps of CartPole (seed 0): the full buffer and its velocity-hidden twin."""
    full = wm.collect(wm.make_env("CartPole-v1", seed=0), steps=600, seed=0)
    return full, hidden_twin(full)


# -- sequences from the buffer ------------------------------------------------------------------


def test_sample_sequences_are_seeded_consecutive_windows(hidden_pair):
    _, buffer = hidden_pair
    a = buffer.sample_sequences(5, 12, torch.Generator().manual_seed(1))
    b = buffer.sample_sequences(5, 12, torch.Generator().manual_seed(1))
    assert a["obs"].shape == (5, 12, 2) and a["is_first"].shape == (5, 12)
    assert a["action"].shape == (5, 12) and torch.equal(a["obs"], b["obs"])
    assert torch.equal(a["index"][:, 1:] - a["index"][:, :-1], torch.ones(5, 11, dtype=torch.long))
    # Inside an episode, next_obs of one row is obs of the next.
    same = ~a["is_first"][:, 1:]
    assert torch.equal(a["next_obs"][:, :-1][same], a["obs"][:, 1:][same])
    # Random episodes last ~20 steps: many windows of 12 cross a boundary.
    many = buffer.sample_sequences(64, 12, torch.Generator().manual_seed(2))
    assert many["is_first"][:, 1:].any(1).float().mean() > 0.2


@pytest.mark.parametrize("length", [0, -1, 601])
def test_sample_sequences_bad_length(hidden_pair, length):
    with pytest.raises(ValueError, match="length"):
        hidden_pair[1].sample_sequences(4, length)


# -- shapes and the planner interface -----------------------------------------------------------


def test_filter_imagine_and_observe_shapes(hidden_pair):
    model = small_model()
    state = model.filter(None, None, np.array([0.01, -0.02], dtype=np.float32))
    assert isinstance(state, RSSMState) and state.h.shape == (1, 32) and state.z.shape == (1, 8)
    state = model.filter(state, 1, [0.02, -0.03])
    rollout = model.imagine(state, torch.randint(2, (7, 5)))
    assert rollout.observations.shape == (7, 6, 2)
    assert rollout.rewards.shape == (7, 5) and rollout.dones.shape == (7, 5)
    assert rollout.dones.dtype == torch.bool
    batch = hidden_pair[1].sample_sequences(3, 9, torch.Generator().manual_seed(0))
    beliefs = model.observe(batch)
    assert beliefs.h.shape == (3, 9, 32) and beliefs.features.shape == (3, 9, 40)


def test_plugs_into_random_shooting_unchanged(hidden_pair):
    model = small_model()
    model.set_normalizer(hidden_pair[1].stats())
    env = wm.make_env("CartPole-v1", seed=0, hide_velocities=True)
    planner = wm.RandomShooting(model, horizon=6, candidates=16, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        action = planner(obs)
        assert action in (0, 1)
        obs, *_ = env.step(action)
    assert planner.last_plan.rollout.observations.shape == (16, 7, 2)
    assert isinstance(planner.state, RSSMState)
    # The planner's belief is exactly what the model's own filter makes of the same steps.
    planner.reset()
    obs, _ = env.reset(seed=1)
    state, previous = None, None
    for _ in range(4):
        action = planner(obs)
        state = model.filter(state, previous, obs)
        previous = action
        obs, *_ = env.step(action)
    assert torch.equal(planner.state.h, state.h) and torch.equal(planner.state.z, state.z)


def test_imagine_masks_rewards_after_a_predicted_termination():
    model = small_model()
    with torch.no_grad():
        model.continue_head[-1].bias.fill_(10.0)  # always "terminated"
        model.reward_mean.fill_(1.0)
        model.reward_std.fill_(1e-6)
    rollout = model.imagine(model.filter(None, None, [0.0, 0.0]), torch.zeros(3, 4).long())
    assert rollout.dones.all() and torch.allclose(rollout.returns, torch.ones(3), atol=1e-3)
    # A known rule on decoded observations replaces the head.
    never = lambda obs: torch.zeros(obs.shape[:-1], dtype=torch.bool)  # noqa: E731
    rollout = model.imagine(model.filter(None, None, [0.0, 0.0]), torch.zeros(3, 4).long(), never)
    assert not rollout.dones.any() and torch.allclose(rollout.returns, torch.full((3,), 4.0),
                                                      atol=1e-3)


# -- episode boundaries ------------------------------------------------------------------------


def test_window_crossing_a_boundary_equals_its_halves_filtered_separately(hidden_pair):
    _, buffer = hidden_pair
    model = small_model()
    model.set_normalizer(buffer.stats())
    first = buffer.tensors()["is_first"]
    boundary = int(first[5:].nonzero()[0]) + 5  # an episode start with >= 5 rows before it
    start, end = boundary - 5, boundary + 7
    window = buffer[torch.arange(start, end)[None]]
    whole = model.observe(window)
    before = model.observe(buffer[torch.arange(start, boundary)[None]])
    after = model.observe(buffer[torch.arange(boundary, end)[None]])
    assert torch.allclose(whole.features[0, :5], before.features[0], atol=1e-6)
    assert torch.allclose(whole.features[0, 5:], after.features[0], atol=1e-6)
    # ... and the window's beliefs are what `filter` gives step by step, reset at the start.
    state, previous = None, None
    for t in range(end - start):
        row = buffer[start + t]
        state = model.filter(None if row["is_first"] else state, previous, row["obs"])
        previous = row["action"]
        assert torch.allclose(state.h[0], whole.h[0, t], atol=1e-6)
        assert torch.allclose(state.z[0], whole.z[0, t], atol=1e-6)
    # Without the reset the second half would remember the first episode.
    no_reset = {k: v.clone() for k, v in window.items()}
    no_reset["is_first"][:] = False
    assert not torch.allclose(model.observe(no_reset).h[0, 5:], after.h[0])


# -- the loss: KL balancing and free bits ---------------------------------------------------------


def test_kl_matches_torch_distributions():
    model = small_model()
    generator = torch.Generator().manual_seed(0)
    q = model._gaussian(torch.randn(3, 16, generator=generator))
    p = model._gaussian(torch.randn(3, 16, generator=generator))
    normal = lambda d: torch.distributions.Normal(*d.chunk(2, -1))  # noqa: E731
    expected = torch.distributions.kl_divergence(normal(q), normal(p)).sum(-1)
    assert torch.allclose(model.kl(q, p), expected, atol=1e-5)
    assert torch.allclose(model.kl(q, q), torch.zeros(3), atol=1e-6)
    assert (q.chunk(2, -1)[1] >= 0.1).all()  # the std floor


def test_free_bits_stop_the_kl_gradient_below_the_threshold(hidden_pair):
    batch = hidden_pair[1].sample_sequences(4, 10, torch.Generator().manual_seed(0))
    for free_nats, expect_gradient in ((1e3, False), (0.0, True)):
        model = small_model(free_nats=free_nats)
        model.set_normalizer(hidden_pair[1].stats())
        losses = model.loss(batch, generator=torch.Generator().manual_seed(0))
        losses["total"].backward()
        prior_grad = sum(p.grad.abs().sum() for p in model.prior_net.parameters())
        # The prior learns only from the KL: with every KL below the free bits it gets nothing.
        assert (prior_grad > 0) == expect_gradient, (free_nats, prior_grad)
        if not expect_gradient:
            assert losses["dyn"].item() == pytest.approx(1e3)
            assert losses["rep"].item() == pytest.approx(1e3)
        assert losses["kl"].item() > 0  # the raw KL is still reported


def test_loss_parts_and_the_balance_of_the_kl_terms(hidden_pair):
    batch = hidden_pair[1].sample_sequences(4, 10, torch.Generator().manual_seed(0))
    model = small_model(free_nats=0.0, kl_dyn=0.5, kl_rep=0.1)
    model.set_normalizer(hidden_pair[1].stats())
    losses = model.loss(batch, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"total", "recon", "reward", "cont", "dyn", "rep", "kl"}
    # With no free bits dyn and rep have the same value; only their gradients differ.
    assert losses["dyn"].item() == pytest.approx(losses["rep"].item())
    expected = (losses["recon"] + losses["reward"] + losses["cont"] + 0.5 * losses["dyn"]
                + 0.1 * losses["rep"])
    assert losses["total"].item() == pytest.approx(expected.item())
    # A masked-out row does not count.
    mask = torch.zeros(4, 10)
    mask[0, 3] = 1
    one = model.loss({**batch, "mask": mask}, generator=torch.Generator().manual_seed(0))
    assert one["cont"].item() != pytest.approx(losses["cont"].item())


# -- learning ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(hidden_pair) -> RSSMWorldModel:
    wm.seed_everything(0)
    model = small_model(deter=48, hidden=48, stoch=16)
    history = wm.fit(model, hidden_pair[1], epochs=60, batch_size=16 * 32, seed=0,
                     progress=False)
    model.history = history
    return model


def test_fit_dispatches_to_sequences_and_records_history(trained):
    history = trained.history
    assert {"total", "recon", "kl", "dyn", "rep", "cont"} <= set(history.train)
    assert len(history.train["total"]) == 60 and len(history.heldout["total"]) == 60
    assert history.train["recon"][-1] < 0.5 * history.train["recon"][0]


def test_belief_recovers_hidden_velocities_on_held_out_episodes(trained):
    """Learning: a linear probe reads both velocities off the belief, never shown them."""
    full = wm.collect(wm.make_env("CartPole-v1", seed=50), steps=600, seed=50)
    features = buffer_beliefs(trained, hidden_twin(full)).features
    velocities = full.tensors()["obs"][:, [1, 3]]
    first = full.tensors()["is_first"].nonzero().flatten()
    split = int(first[len(first) // 2])  # whole episodes on each side
    probe = fit_probe(features[:split], velocities[:split])
    r2 = probe.score(features[split:], velocities[split:])
    # One frame holds little velocity (in falling episodes theta hints at theta_dot).
    frames = hidden_twin(full).tensors()["obs"]
    r2_frames = fit_probe(frames[:split], velocities[:split]).score(frames[split:],
                                                                  velocities[split:])
    print("probe R^2: belief", r2.tolist(), "one frame", r2_frames.tolist())
    assert (r2 > 0.85).all() and (r2_frames < 0.5).all(), (r2, r2_frames)


def test_diagnostics(trained, hidden_pair):
    _, buffer = hidden_pair
    decoded = reconstructions(trained, buffer)
    obs = buffer.tensors()["obs"]
    error = (((decoded - obs) / obs.std(0)) ** 2).mean()
    assert decoded.shape == obs.shape and error < 0.05, error  # the belief holds the obs
    kl = kl_per_step(trained, buffer, max_steps=8)
    # The first observation of an episode is met by the initial prior alone: it surprises the
    # model more than any later one, which the prior predicts from the belief.
    assert kl.shape == (8,) and torch.isfinite(kl).all() and kl[0] > kl[1:].max(), kl
    errors = compounding_error(trained, buffer, horizon=6, burn_in=3, max_starts=10)
    assert errors.shape == (10, 6) and torch.isfinite(errors).all()
    start = buffer.episode_bounds()[0][0] + 1  # burn-in of 2: rows 0 and 1 are filtered
    real, imagined = open_loop(trained, buffer, start, horizon=3, burn_in=2)
    assert imagined.shape == real.shape and imagined.shape[-1] == 2
    ax = nb.draw_dream(trained, buffer, start, horizon=3)
    assert ax.get_legend() is not None and ax.get_legend().get_texts()[0].get_text() == "real"


def test_open_loop_errors_work_for_any_world_model(hidden_pair):
    _, buffer = hidden_pair
    mlp = wm.MLPWorldModel.for_env(wm.make_env("CartPole-v1", hide_velocities=True),
                                   hidden=16, device="cpu")
    errors = compounding_error(mlp, buffer, horizon=5, burn_in=1, max_starts=4)
    assert errors.shape == (4, 5)
    with pytest.raises(ValueError, match="buffer"):
        compounding_error(mlp, buffer, horizon=400, burn_in=1)


def test_open_loop_bias_is_zero_for_the_true_dynamics_and_finds_a_lean(hidden_pair):
    full, _ = hidden_pair
    true = wm.TrueCartPole(device="cpu")
    bias = open_loop_bias(true, full, horizon=5, burn_in=2, max_starts=20)
    assert bias.shape == (5, 4) and bias.abs().max() < 1e-4, bias

    class Leaning(wm.TrueCartPole):  # the true dynamics, every imagined pole 0.01 rad right
        def decode(self, obs):
            return super().decode(obs) + torch.tensor([0.0, 0.0, 0.01, 0.0])

    bias = open_loop_bias(Leaning(), full, horizon=5, burn_in=2, max_starts=20)
    assert torch.allclose(bias[:, 2], torch.full((5,), 0.01), atol=1e-4), bias
    errors = compounding_error(Leaning(), full, horizon=5, burn_in=2, max_starts=20)
    assert errors.shape == (20, 5) and (errors > 0).all()


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("obs, match", [
    ([0.0, 0.1, 0.2], "obs"), ([0.0, float("nan")], "obs: contains non-finite"),
])
def test_filter_rejects_bad_observations(obs, match):
    with pytest.raises(ValueError, match=match):
        small_model().filter(None, None, obs)


def test_bad_arguments_name_themselves(hidden_pair):
    model = small_model()
    state = model.filter(None, None, [0.0, 0.0])
    with pytest.raises(ValueError, match="action"):
        model.filter(state, None, [0.0, 0.0])
    with pytest.raises(ValueError, match="action"):
        model.filter(state, 2, [0.0, 0.0])
    with pytest.raises(ValueError, match="actions"):
        model.imagine(state, torch.zeros(5).long())
    with pytest.raises(ValueError, match="state"):
        model.imagine(torch.zeros(2), torch.zeros(3, 4).long())
    batch = hidden_pair[1].sample_sequences(2, 5)
    batch["obs"] = batch["obs"][..., :1]
    with pytest.raises(ValueError, match="batch"):
        model.loss(batch)
    short = wm.collect(wm.make_env("CartPole-v1", seed=0, hide_velocities=True), steps=10)
    with pytest.raises(ValueError, match="length"):  # windows of 32 from 10 rows
        wm.fit(model, short, epochs=1, progress=False)
    with pytest.raises(ValueError, match="free_nats"):
        small_model(free_nats=-1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for kwargs, match in [({"final_lr": 0.0}, "final_lr"), ({"final_lr": -1e-4}, "final_lr"),
                          ({"holdout": 1.5}, "holdout")]:
        with pytest.raises(ValueError, match=match):
            wm.fit(model, hidden_pair[1], epochs=1, lr=1e-3, progress=False, **kwargs)
    # Refused before anything changed: not the weights, not the normalisation statistics.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_final_lr_decays_the_learning_rate_and_lr_keeps_it_constant(hidden_pair):
    def lrs(**kwargs):
        return wm.fit(small_model(), hidden_pair[1], epochs=3, lr=1e-3, seed=0,
                      progress=False, **kwargs).lr
    default = lrs()  # the RSSM's own default: decay to 1e-4
    assert default[0] < 1e-3 and default[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(default, default[1:]))
    assert lrs(final_lr=1e-3) == [1e-3] * 3  # a decay to lr itself is no decay
    assert lrs(final_lr=1e-5)[-1] == pytest.approx(1e-5)


def test_fit_has_one_set_of_defaults_however_it_is_called(hidden_pair):
    from wmkit.train import fit_settings

    model = small_model()
    settings = fit_settings(model, lr=1e-3, weight_decay=None, final_lr=None, grad_clip=None,
                            length=None)
    assert settings == {"lr": 1e-3, "weight_decay": 0.0, "final_lr": 1e-4, "grad_clip": 100.0,
                        "length": 32}
    # learn() reaches every fit argument, length and grad_clip included.
    env = wm.make_env("CartPole-v1", seed=0, hide_velocities=True)
    log = wm.learn(env, wm.RandomShooting(small_model(), horizon=3, candidates=8), steps=40,
                   warmup=30, epochs=1, fit_kwargs={"length": 8, "grad_clip": 1.0},
                   progress=False)
    assert len(log.histories) >= 1


# -- the probe -----------------------------------------------------------------------------------


def test_probe_recovers_a_linear_map_and_scores_r2():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator) * torch.tensor([1.0, 10.0, 0.1, 1.0, 1.0])
    w = torch.randn(5, 2, generator=generator)
    y = x @ w + 3.0
    probe = fit_probe(x[:100], y[:100], l2=0.0)
    assert (probe.score(x[100:], y[100:]) > 0.9999).all()
    mean = y[100:].mean(0).expand(100, 2)
    assert torch.allclose(r2_score(mean, y[100:]), torch.zeros(2), atol=1e-6)
    assert (r2_score(mean + 5.0, y[100:]) < 0).all()  # worse than predicting the mean
    constant = torch.cat([x, torch.ones(200, 1)], 1)  # a constant feature is harmless
    assert (fit_probe(constant[:100], y[:100]).score(constant[100:], y[100:]) > 0.999).all()


@pytest.mark.parametrize("features, targets, match", [
    (torch.zeros(10, 3), torch.zeros(9, 1), "targets"),
    (torch.full((10, 3), float("nan")), torch.zeros(10, 1), "features"),
    (torch.zeros(10, 3, 2), torch.zeros(10, 1), "features"),
])
def test_probe_bad_input(features, targets, match):
    with pytest.raises(ValueError, match=match):
        fit_probe(features, targets)


def test_hidden_twin_keeps_rows_and_episode_starts(hidden_pair):
    full, hidden = hidden_pair
    assert len(hidden) == len(full) and hidden.obs_dim == 2
    assert torch.equal(hidden.tensors()["obs"], full.tensors()["obs"][:, [0, 2]])
    assert torch.equal(hidden.tensors()["is_first"], full.tensors()["is_first"])
    with pytest.raises(ValueError, match="keep"):
        hidden_twin(full, keep=(0, 4))
