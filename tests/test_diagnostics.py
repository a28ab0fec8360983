"""Measurements of imagination: episodes as buffer rows, the one open-loop / compounding-error
measurement (any world model, burn-in for memory), the ablation, and timed planner trials."""

import pytest
import torch

import wmkit as wm
from wmkit import analysis as A
from wmkit import notebook as nb


@pytest.fixture(scope="module")
def heldout() -> wm.ReplayBuffer:
    """600 random transitions from seeds the training data never used."""
    return wm.collect(wm.make_env("CartPole-v1", seed=123), steps=600, seed=123)


@pytest.fixture(scope="module")
def true_model() -> wm.TrueCartPole:
    return wm.TrueCartPole(device="cpu")


# ------------------------------------------------------------------------------- episodes


def test_episodes_are_the_buffers_rows(heldout):
    bounds = heldout.episode_bounds()
    episodes = [A.episode_rows(heldout, k) for k in range(len(bounds))]
    assert [(r.start, r.stop) for r in episodes] == bounds
    longest = A.longest_episode(heldout)
    assert len(longest) == max(len(r) for r in episodes)
    states = A.episode_observations(heldout, longest)
    data = heldout.tensors()
    assert torch.equal(states[:-1], data["obs"][longest.start:longest.stop])
    assert torch.equal(states[-1], data["next_obs"][longest.stop - 1])
    middle = longest.start + 3
    assert A.episode_of(heldout, middle) == longest
    with pytest.raises(ValueError, match="episode"):
        A.episode_rows(heldout, len(bounds))
    with pytest.raises(ValueError, match="row"):
        A.episode_of(heldout, len(heldout))
    with pytest.raises(ValueError, match="rows"):
        A.episode_observations(heldout, range(5, 5))


# ------------------------------------------------------------------------------- open loop


def test_open_loop_with_the_true_dynamics_reproduces_reality(heldout, true_model):
    """Same start, same actions: the perfect model's dream is the real trajectory."""
    rows = A.longest_episode(heldout)
    real, imagined = A.open_loop(true_model, heldout, rows.start + 3, horizon=15)
    assert real.shape == imagined.shape == (16, 4)
    assert torch.equal(real[0], heldout[rows.start + 3]["obs"])
    assert torch.allclose(real, imagined, atol=1e-4), (real - imagined).abs().max()


def test_open_loop_of_one_start_is_a_row_of_the_batch(heldout, trained_mlp):
    starts = A.open_loop_starts(heldout, 10)
    real, imagined = A.open_loop(trained_mlp, heldout, starts[:7], 10)
    assert real.shape == imagined.shape == (7, 11, 4)
    one_real, one_imagined = A.open_loop(trained_mlp, heldout, int(starts[5]), 10)
    assert torch.equal(one_real, real[5])
    assert torch.allclose(one_imagined, imagined[5], atol=1e-6)


def test_open_loop_starts_stay_inside_one_episode_after_the_burn_in(heldout):
    episode = heldout.episode_ids()
    for burn_in, horizon in ((1, 8), (4, 8)):
        starts = A.open_loop_starts(heldout, horizon, burn_in)
        assert len(starts) > 0
        first, last = starts - (burn_in - 1), starts + horizon - 1
        assert (episode[first] == episode[starts]).all()
        assert (episode[last] == episode[starts]).all()
    # Every row of an episode long enough is a start without burn-in, not with it.
    firsts = torch.tensor([first for first, stop in heldout.episode_bounds() if stop - first >= 8])
    assert torch.isin(firsts, A.open_loop_starts(heldout, 8)).all()
    assert not torch.isin(firsts, A.open_loop_starts(heldout, 8, burn_in=4)).any()


def test_open_loop_rejects_bad_inputs_by_name(heldout, true_model):
    rows = A.longest_episode(heldout)
    with pytest.raises(ValueError, match="starts"):
        A.open_loop(true_model, heldout, rows.stop - 2, horizon=5)  # the episode ends first
    with pytest.raises(ValueError, match="starts"):
        A.open_loop(true_model, heldout, rows.start, horizon=5, burn_in=2)  # no burn-in rows
    with pytest.raises(ValueError, match="horizon"):
        A.open_loop(true_model, heldout, rows.start, horizon=0)
    with pytest.raises(ValueError, match="starts"):
        A.open_loop(true_model, heldout, [], horizon=1)
    with pytest.raises(ValueError, match="starts"):
        A.open_loop(true_model, heldout, 2.0, horizon=1)
    with pytest.raises(ValueError, match="model"):
        A.open_loop(object(), heldout, rows.start, horizon=1)
    with pytest.raises(ValueError, match="buffer"):
        A.open_loop(true_model, torch.zeros(5, 4), 0, horizon=1)


# ------------------------------------------------------------------------ compounding error


def test_compounding_error_grows_with_the_horizon(trained_mlp, heldout):
    errors = A.compounding_error(trained_mlp, heldout, horizon=12)
    assert errors.shape == (len(A.open_loop_starts(heldout, 12)), 12)
    mean = errors.mean(0)
    assert mean[-1] > 10 * mean[0], mean  # small one-step errors compound
    assert (mean[1:] >= mean[:-1]).float().mean() >= 0.9, mean  # and (almost) never shrink


def test_compounding_error_at_horizon_one_is_the_one_step_error(trained_mlp, heldout):
    errors = A.compounding_error(trained_mlp, heldout, horizon=1)
    assert errors.shape == (len(heldout), 1)  # every transition is a valid start
    expected = wm.one_step_error(trained_mlp, heldout)["model"]
    assert float(errors.mean()) == pytest.approx(expected, rel=1e-4)


def test_compounding_error_of_the_true_dynamics_is_zero(true_model, heldout):
    errors = A.compounding_error(true_model, heldout, horizon=10)
    assert float(errors.max()) < 1e-8
    assert A.open_loop_bias(true_model, heldout, horizon=10).abs().max() < 1e-4


def test_compounding_error_samples_and_checks_starts(trained_mlp, heldout):
    every = A.open_loop_starts(heldout, 8)
    some = A.compounding_error(trained_mlp, heldout, 8, max_starts=5, seed=1)
    again = A.compounding_error(trained_mlp, heldout, 8, max_starts=5, seed=1)
    other = A.compounding_error(trained_mlp, heldout, 8, max_starts=5, seed=2)
    assert some.shape == (5, 8) and torch.equal(some, again) and not torch.equal(some, other)
    given = A.compounding_error(trained_mlp, heldout, 8, starts=every[:5].tolist())
    assert torch.allclose(given, A.compounding_error(trained_mlp, heldout, 8)[:5])
    episode_end = int((heldout.tensors()["terminated"]).nonzero()[0])
    with pytest.raises(ValueError, match="starts"):
        A.compounding_error(trained_mlp, heldout, 8, starts=[episode_end])
    with pytest.raises(ValueError, match="horizon"):
        A.compounding_error(trained_mlp, heldout, 500)
    with pytest.raises(ValueError, match="max_starts"):
        A.compounding_error(trained_mlp, heldout, 8, max_starts=0)


def test_a_model_with_memory_uses_its_burn_in(heldout):
    """The RSSM's belief after a burn-in is filtered: `filter` over the same rows gives it."""
    twin = A.hidden_twin(heldout)
    wm.seed_everything(0)
    rssm = wm.RSSMWorldModel(2, twin.action_spec, deter=16, stoch=4, hidden=16, device="cpu")
    rssm.set_normalizer(twin.stats())
    errors = A.compounding_error(rssm, twin, horizon=4, burn_in=3, max_starts=6)
    assert errors.shape == (6, 4) and torch.isfinite(errors).all()
    start = int(A.open_loop_starts(twin, 4, burn_in=3)[0])
    _, imagined = A.open_loop(rssm, twin, start, 4, burn_in=3)
    first = A.episode_of(twin, start).start
    belief, previous = None, None
    for row in range(first, start + 1):
        belief = rssm.filter(belief, previous, twin[row]["obs"])
        previous = twin[row]["action"]
    by_filter = rssm.imagine(belief, twin[torch.arange(start, start + 4)]["action"][None])
    assert torch.allclose(imagined, by_filter.observations[0], atol=1e-5)


def test_open_loop_probe_reads_the_dream_not_reality(heldout, true_model, trained_mlp):
    """A probe (features -> state) on the perfect model's dream gives the real states; on a
    learned model's dream it gives the dream's states, drifting from reality."""
    states = heldout.tensors()["obs"]
    # Features: the state itself; l2 = 0, so that the probe is exactly the identity.
    probe = A.fit_probe(true_model.features(states), states, l2=0.0)
    real, probed = A.open_loop_probe(true_model, heldout, heldout, probe, horizon=15,
                                     max_starts=40)
    assert real.shape == probed.shape == (40, 16, 4)
    assert torch.allclose(probed, real, atol=1e-3), (probed - real).abs().max()
    starts = A.open_loop_starts(heldout, 15)[:40]
    probe = A.fit_probe(trained_mlp.features(states), states)  # features: standardised
    real, probed = A.open_loop_probe(trained_mlp, heldout, heldout, probe, horizon=15,
                                     starts=starts)
    _, imagined = A.open_loop(trained_mlp, heldout, starts, 15)
    dreamed = probe.predict(trained_mlp.features(imagined.flatten(0, 1))).float()
    assert torch.allclose(probed, dreamed.reshape(40, 16, 4), atol=1e-5)
    drift = (probed - real).abs().mean((0, 2))
    assert drift[-1] > 3 * drift[1] > 0  # open loop: the error compounds


def test_open_loop_probe_wants_the_same_transitions_as_truth(heldout, true_model):
    probe = A.fit_probe(heldout.tensors()["obs"], heldout.tensors()["obs"])
    other = wm.collect(wm.make_env("CartPole-v1", seed=7), steps=len(heldout), seed=7)
    with pytest.raises(ValueError, match="truth"):
        A.open_loop_probe(true_model, heldout, other, probe, horizon=5)
    with pytest.raises(ValueError, match="horizon"):
        A.open_loop_probe(true_model, heldout, heldout, probe, horizon=0)
    with pytest.raises(ValueError, match="truth"):
        A.open_loop_probe(true_model, heldout, heldout.tensors()["obs"], probe, horizon=5)
    theta_only = A.fit_probe(heldout.tensors()["obs"], heldout.tensors()["obs"][:, 2:3])
    with pytest.raises(ValueError, match="probe"):  # truth observes 4 numbers, not 1
        A.open_loop_probe(true_model, heldout, heldout, theta_only, horizon=5)
    from_two = A.fit_probe(heldout.tensors()["obs"][:, :2], heldout.tensors()["obs"])
    with pytest.raises(ValueError, match="probe"):  # the model's features are 4 numbers
        A.open_loop_probe(true_model, heldout, heldout, from_two, horizon=5)


# ------------------------------------------------------------------------------- ablation


def test_ablation_predicting_the_change_on_normalised_inputs_wins(cartpole_buffer, heldout):
    result = A.normalisation_ablation(cartpole_buffer, heldout, epochs=20, hidden=64,
                                      horizon=5, seed=0)
    assert list(result.one_step) == list(A.ABLATION_VARIANTS)
    wmkit_way = result.one_step["normalised → change (wmkit)"]
    assert wmkit_way == min(result.one_step.values()), result.one_step
    assert wmkit_way * 10 <= result.one_step["normalised → next obs"], result.one_step
    assert wmkit_way * 10 <= result.no_change, (wmkit_way, result.no_change)
    assert all(c.shape[1] == 5 for c in result.compounding.values())
    fig = nb.plot_ablation(result)
    assert len(fig.axes) == 2


def test_ablation_model_without_normalisation_keeps_identity_statistics(cartpole_buffer):
    model = A.AblationMLP(4, cartpole_buffer.action_spec, normalise=False, hidden=8,
                          device="cpu")
    model.set_normalizer(cartpole_buffer.stats())
    assert torch.equal(model.obs_std, torch.ones(4)) and torch.equal(model.delta_mean,
                                                                     torch.zeros(4))
    raw_next = A.AblationMLP(4, cartpole_buffer.action_spec, normalise=False,
                             predict_delta=False, hidden=8, device="cpu")
    with torch.no_grad():
        raw_next.net[-1].weight.zero_()
        raw_next.net[-1].bias.zero_()
    # An all-zero output layer predicts the next observation 0, not "no change".
    predicted, _, _ = raw_next.predict(torch.ones(3, 4), torch.zeros(3, dtype=torch.long))
    assert torch.equal(predicted, torch.zeros(3, 4))


@pytest.mark.parametrize("switches", list(A.ABLATION_VARIANTS.values()),
                         ids=list(A.ABLATION_VARIANTS))
def test_ablation_models_imagine_what_their_predict_says(switches, cartpole_buffer):
    """Every variant's imagined rollout (what the compounding-error curves use) is its own
    one-step prediction applied H times, not the delta model's fast path."""
    torch.manual_seed(0)
    model = A.AblationMLP(4, cartpole_buffer.action_spec, hidden=16, device="cpu", **switches)
    wm.fit(model, cartpole_buffer, epochs=1, seed=0, progress=False)
    data = cartpole_buffer.tensors()
    obs, actions = data["obs"][:6], data["action"][:6, None].repeat(1, 4)
    with torch.no_grad():
        rollout = model.imagine(obs, actions)
        expected = obs
        for t in range(4):
            expected, _, _ = model.predict(expected, actions[:, t])
            assert torch.allclose(rollout.observations[:, t + 1], expected), t


def test_first_transitions_copies_the_start_of_a_buffer(cartpole_buffer):
    subset = A.first_transitions(cartpole_buffer, 40)
    assert len(subset) == 40
    assert torch.equal(subset.tensors()["obs"], cartpole_buffer.tensors()["obs"][:40])
    assert torch.equal(subset.tensors()["is_first"], cartpole_buffer.tensors()["is_first"][:40])
    with pytest.raises(ValueError, match="n"):
        A.first_transitions(cartpole_buffer, len(cartpole_buffer) + 1)


# -------------------------------------------------------------------------- planner trials


def test_planner_trial_is_capped_and_repeatable(true_model):
    env = wm.make_env("CartPole-v1", seed=0)
    first = A.planner_trial(true_model, env, horizon=10, candidates=50, seed=3, max_steps=40)
    again = A.planner_trial(true_model, env, horizon=10, candidates=50, seed=3, max_steps=40)
    assert first.episode_return == again.episode_return == 40.0  # the truth keeps it up
    assert first.steps == 40 and not first.ended and first.ms_per_decision > 0
    assert (first.horizon, first.candidates, first.select) == (10, 50, "mean")
    with pytest.raises(ValueError, match="max_steps"):
        A.planner_trial(true_model, env, max_steps=0)
    with pytest.raises(ValueError, match="candidates"):
        A.planner_trial(true_model, env, candidates=0)


def test_a_myopic_planner_drops_the_pole_and_the_trial_says_so(true_model):
    env = wm.make_env("CartPole-v1", seed=0)
    trial = A.planner_trial(true_model, env, horizon=1, candidates=10, seed=0, max_steps=200)
    assert trial.ended and trial.steps < 200 and trial.episode_return == trial.steps
