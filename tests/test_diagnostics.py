"""Diagnostics: real episodes, open-loop imagination, compounding error, ablation, timed trials."""

import pytest
import torch

import wmkit as wm
from wmkit import diagnostics as dg


@pytest.fixture(scope="module")
def heldout() -> wm.ReplayBuffer:
    """600 random transitions from seeds the training data never used."""
    return wm.collect(wm.make_env("CartPole-v1", seed=123), steps=600, seed=123)


@pytest.fixture(scope="module")
def true_model() -> wm.TrueCartPole:
    return wm.TrueCartPole(device="cpu")


def test_split_episodes_follows_is_first_and_episode_ends(heldout):
    episodes = dg.split_episodes(heldout)
    assert sum(len(e["obs"]) for e in episodes) == len(heldout)
    assert all(e["is_first"][0] and not e["is_first"][1:].any() for e in episodes)
    # Every finished episode ends on its terminal step; only the last may be unfinished.
    assert all(bool(e["terminated"][-1] or e["truncated"][-1]) for e in episodes[:-1])
    finished = [float(e["reward"].sum()) for e in episodes
                if bool(e["terminated"][-1] or e["truncated"][-1])]
    assert finished == heldout.episode_returns()
    longest = dg.longest_episode(heldout)
    assert len(longest["obs"]) == max(len(e["obs"]) for e in episodes)
    assert dg.episode_observations(longest).shape == (len(longest["obs"]) + 1, 4)


def test_open_loop_with_the_true_dynamics_reproduces_reality(heldout, true_model):
    """Same start, same actions: the perfect model's dream is the real trajectory."""
    episode = dg.longest_episode(heldout)
    real, imagined = dg.open_loop(true_model, episode, start=3, horizon=15)
    assert real.shape == imagined.shape == (16, 4)
    assert torch.equal(real[0], episode["obs"][3])
    assert torch.allclose(real, imagined, atol=1e-4), (real - imagined).abs().max()


def test_open_loop_from_a_buffer_index_matches_the_episode_view(heldout, trained_mlp):
    episodes = dg.split_episodes(heldout)
    k = max(range(len(episodes)), key=lambda i: len(episodes[i]["obs"]))
    first = sum(len(e["obs"]) for e in episodes[:k])
    from_buffer = dg.open_loop(trained_mlp, heldout, first + 2, 10)
    from_episode = dg.open_loop(trained_mlp, episodes[k], 2, 10)
    for a, b in zip(from_buffer, from_episode, strict=True):
        assert torch.equal(a, b)


def test_open_loop_rejects_bad_inputs_by_name(heldout, true_model):
    episode = dg.longest_episode(heldout)
    length = len(episode["obs"])
    with pytest.raises(ValueError, match="horizon"):
        dg.open_loop(true_model, episode, start=length - 2, horizon=5)
    with pytest.raises(ValueError, match="horizon"):
        dg.open_loop(true_model, episode, start=0, horizon=0)
    with pytest.raises(ValueError, match="start"):
        dg.open_loop(true_model, episode, start=length, horizon=1)
    with pytest.raises(ValueError, match="start"):
        dg.open_loop(true_model, heldout, start=len(heldout), horizon=1)
    with pytest.raises(ValueError, match="buffer_or_episode"):
        dg.open_loop(true_model, torch.zeros(5, 4), start=0, horizon=1)


def test_compounding_error_grows_with_the_horizon(trained_mlp, heldout):
    errors = dg.compounding_error(trained_mlp, heldout, horizon=12)
    assert errors.shape == (len(dg.valid_starts(heldout, 12)), 12)
    mean = errors.mean(0)
    assert mean[-1] > 10 * mean[0], mean  # small one-step errors compound
    assert (mean[1:] >= mean[:-1]).float().mean() >= 0.9, mean  # and (almost) never shrink


def test_compounding_error_at_horizon_one_is_the_one_step_error(trained_mlp, heldout):
    errors = dg.compounding_error(trained_mlp, heldout, horizon=1)
    assert errors.shape == (len(heldout), 1)  # every transition is a valid start
    expected = wm.one_step_error(trained_mlp, heldout)["model"]
    assert float(errors.mean()) == pytest.approx(expected, rel=1e-4)


def test_compounding_error_of_the_true_dynamics_is_zero(true_model, heldout):
    errors = dg.compounding_error(true_model, heldout, horizon=10)
    assert float(errors.max()) < 1e-8


def test_compounding_error_checks_starts_and_horizon(trained_mlp, heldout):
    starts = dg.valid_starts(heldout, 8)
    errors = dg.compounding_error(trained_mlp, heldout, 8, starts=starts[:5].tolist())
    assert errors.shape == (5, 8)
    episode_end = int((heldout.tensors()["terminated"]).nonzero()[0])
    with pytest.raises(ValueError, match="starts"):
        dg.compounding_error(trained_mlp, heldout, 8, starts=[episode_end])
    with pytest.raises(ValueError, match="starts"):
        dg.compounding_error(trained_mlp, heldout, 8, starts=[])
    with pytest.raises(ValueError, match="horizon"):
        dg.compounding_error(trained_mlp, heldout, 1_000)


def test_ablation_predicting_the_change_on_normalised_inputs_wins(cartpole_buffer, heldout):
    result = dg.normalisation_ablation(cartpole_buffer, heldout, epochs=20, hidden=64,
                                       horizon=5, seed=0)
    assert list(result.one_step) == list(dg.ABLATION_VARIANTS)
    wmkit_way = result.one_step["normalised → change (wmkit)"]
    assert wmkit_way == min(result.one_step.values()), result.one_step
    assert wmkit_way * 10 <= result.one_step["normalised → next obs"], result.one_step
    assert wmkit_way * 10 <= result.no_change, (wmkit_way, result.no_change)
    assert all(c.shape[1] == 5 for c in result.compounding.values())
    fig = dg.plot_ablation(result)
    assert len(fig.axes) == 2


def test_ablation_model_without_normalisation_keeps_identity_statistics(cartpole_buffer):
    model = dg.AblationMLP(4, cartpole_buffer.action_spec, normalise=False, hidden=8,
                           device="cpu")
    model.set_normalizer(cartpole_buffer.stats())
    assert torch.equal(model.obs_std, torch.ones(4)) and torch.equal(model.delta_mean,
                                                                     torch.zeros(4))
    raw_next = dg.AblationMLP(4, cartpole_buffer.action_spec, normalise=False,
                              predict_delta=False, hidden=8, device="cpu")
    with torch.no_grad():
        raw_next.net[-1].weight.zero_()
        raw_next.net[-1].bias.zero_()
    # An all-zero output layer predicts the next observation 0, not "no change".
    predicted, _, _ = raw_next.predict(torch.ones(3, 4), torch.zeros(3, dtype=torch.long))
    assert torch.equal(predicted, torch.zeros(3, 4))


def test_first_transitions_copies_the_start_of_a_buffer(cartpole_buffer):
    subset = dg.first_transitions(cartpole_buffer, 40)
    assert len(subset) == 40
    assert torch.equal(subset.tensors()["obs"], cartpole_buffer.tensors()["obs"][:40])
    assert torch.equal(subset.tensors()["is_first"], cartpole_buffer.tensors()["is_first"][:40])
    with pytest.raises(ValueError, match="n"):
        dg.first_transitions(cartpole_buffer, len(cartpole_buffer) + 1)


def test_planner_trial_is_capped_and_repeatable(true_model):
    env = wm.make_env("CartPole-v1", seed=0)
    first = dg.planner_trial(true_model, env, horizon=10, candidates=50, seed=3, max_steps=40)
    again = dg.planner_trial(true_model, env, horizon=10, candidates=50, seed=3, max_steps=40)
    assert first["return"] == again["return"] == 40.0  # the true model keeps the pole up
    assert first["steps"] == 40 and first["ended"] == 0.0 and first["ms_per_decision"] > 0
    with pytest.raises(ValueError, match="max_steps"):
        dg.planner_trial(true_model, env, max_steps=0)
    with pytest.raises(ValueError, match="candidates"):
        dg.planner_trial(true_model, env, candidates=0)


@pytest.mark.parametrize("switches", list(dg.ABLATION_VARIANTS.values()),
                         ids=list(dg.ABLATION_VARIANTS))
def test_ablation_models_imagine_what_their_predict_says(switches, cartpole_buffer):
    """Every variant's imagined rollout (what the compounding-error curves use) is its own
    one-step prediction applied H times, not the delta model's fast path."""
    torch.manual_seed(0)
    model = dg.AblationMLP(4, cartpole_buffer.action_spec, hidden=16, device="cpu", **switches)
    wm.fit(model, cartpole_buffer, epochs=1, seed=0, progress=False)
    data = cartpole_buffer.tensors()
    obs, actions = data["obs"][:6], data["action"][:6, None].repeat(1, 4)
    rollout = model.imagine(obs, actions)
    expected = obs
    with torch.no_grad():
        for t in range(4):
            expected, _, _ = model.predict(expected, actions[:, t])
            assert torch.allclose(rollout.observations[:, t + 1], expected), t
