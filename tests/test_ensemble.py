import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.analysis import shift_velocities
from wmkit.models.ensemble import EnsembleWorldModel, soft_clamp_logvar


def ensemble(**kwargs) -> EnsembleWorldModel:
    kwargs = {"hidden": 32, "seed": 0, **kwargs}
    return EnsembleWorldModel.for_env(wm.make_env("CartPole-v1"), device="cpu", **kwargs)


@pytest.fixture(scope="module")
def data() -> wm.ReplayBuffer:
    return wm.collect(wm.make_env("CartPole-v1", seed=0), steps=1_000, seed=0)


@pytest.fixture(scope="module")
def fitted(data) -> EnsembleWorldModel:
    """5 members of 2 x 64, fitted on 1,000 random steps (seeded)."""
    model = ensemble(hidden=64)
    wm.fit(model, data, epochs=20, seed=0, progress=False)
    return model


def test_shapes_of_forward_predict_and_imagine():
    model = ensemble(ensemble_size=4, gaussian=True)
    obs, action = torch.randn(7, 4), torch.randint(2, (7,))
    assert model(obs, action).shape == (4, 7, 4 + 2 + 4)
    next_obs, reward, logit = model.predict(obs, action)
    assert next_obs.shape == (7, 4) and reward.shape == (7,) and logit.shape == (7,)
    members = model.predict_members(obs, action)
    assert members.next_obs.shape == (4, 7, 4) and members.delta_logvar.shape == (4, 7, 4)
    for propagation in ("mean", "random_member"):
        model.propagation = propagation
        start = torch.tensor([0.0, 0.1, 0.02, -0.1])
        rollout = model.imagine(start, torch.randint(2, (9, 6)))
        assert rollout.observations.shape == (9, 7, 4) and rollout.rewards.shape == (9, 6)
        assert rollout.dones.shape == (9, 6) and rollout.disagreement.shape == (9, 6)
        assert torch.equal(rollout.observations[:, 0], start.expand(9, 4))
        assert (rollout.disagreement >= 0).all()


def test_box_actions_work():
    env = wm.make_env("Pendulum-v1")
    model = EnsembleWorldModel.for_env(env, hidden=16, ensemble_size=3, device="cpu")
    rollout = model.imagine(torch.zeros(3), torch.rand(4, 5, 1) * 4 - 2)
    assert rollout.observations.shape == (4, 6, 3) and rollout.disagreement.shape == (4, 5)


def test_members_differ_by_seed_and_the_same_seed_gives_the_same_model():
    a, b, c = ensemble(seed=1), ensemble(seed=1), ensemble(seed=2)
    weight = a.net[0].weight
    assert not torch.allclose(weight[0], weight[1])  # members start from different weights
    assert torch.equal(weight, b.net[0].weight) and not torch.equal(weight, c.net[0].weight)


def test_fitted_members_still_differ_and_predict_well(fitted, heldout_buffer):
    d = heldout_buffer.tensors()
    members = fitted.predict_members(d["obs"], d["action"])
    assert (members.next_obs[0] - members.next_obs[1]).abs().max() > 1e-3
    errors = wm.one_step_error(fitted, heldout_buffer)
    assert errors["model"] * 10 <= errors["no_change"], errors


def test_batched_members_equal_a_loop_over_members(fitted):
    obs, action = torch.randn(50, 4), torch.randint(2, (50,))
    assert torch.allclose(fitted(obs, action), fitted.forward_loop(obs, action), atol=1e-5)
    per_member_obs = torch.randn(5, 50, 4)  # each member its own rows (as in training)
    per_member_action = torch.randint(2, (5, 50))
    assert torch.allclose(fitted(per_member_obs, per_member_action),
                          fitted.forward_loop(per_member_obs, per_member_action), atol=1e-5)


def test_mean_propagation_equals_stepping_the_members_one_by_one(fitted):
    start, actions = torch.tensor([0.0, 0.3, -0.05, 0.2]), torch.randint(2, (6, 8))
    fitted.propagation = "mean"
    rollout = fitted.imagine(start, actions)
    obs = start.expand(6, 4)
    for t in range(8):
        out = fitted.forward_loop(obs, actions[:, t])  # (E, N, D + 2), member by member
        spread = out[..., :4].std(0, correction=0).mean(-1)
        obs = obs + out[..., :4].mean(0) * fitted.delta_std + fitted.delta_mean
        assert torch.allclose(rollout.observations[:, t + 1], obs, atol=1e-5)
        assert torch.allclose(rollout.disagreement[:, t], spread, atol=1e-5)


def test_random_member_propagation_follows_one_member_per_candidate(fitted):
    start, actions = torch.tensor([0.0, 0.3, -0.05, 0.2]), torch.randint(2, (10, 8))
    fitted.propagation = "random_member"
    try:
        rollout = fitted.imagine(start, actions)
    finally:
        fitted.propagation = "mean"
    alone = fitted.subset(1).imagine(start, actions)  # member 0 by itself
    for candidate in (0, 5):  # candidates 0 and 5 follow member 0 (i % 5)
        assert torch.allclose(rollout.observations[candidate], alone.observations[candidate],
                              atol=1e-5)
    assert not torch.allclose(rollout.observations[1], alone.observations[1], atol=1e-4)


def test_gaussian_logvar_stays_within_bounds_for_extreme_inputs():
    model = ensemble(gaussian=True)
    low, high = model.min_logvar, model.max_logvar
    top = high + torch.log1p(torch.exp(low - high)) + 1e-6  # the soft clamp's exact ceiling
    raw = torch.tensor([-1e6, -50.0, 0.0, 50.0, 1e6])[:, None].expand(5, 4)
    clamped = soft_clamp_logvar(raw, low, high)
    assert torch.isfinite(clamped).all() and (clamped >= low).all() and (clamped <= top).all()
    assert torch.allclose(clamped[0], low) and torch.allclose(clamped[-1], high, atol=1e-4)
    extreme = torch.tensor([[1e6, -1e6, 1e5, -1e5], [0.0, 0.0, 0.0, 0.0]])
    logvar = model.predict_members(extreme, torch.tensor([0, 1])).delta_logvar
    assert torch.isfinite(logvar).all() and (logvar >= low).all() and (logvar <= top).all()
    batch = {"obs": extreme, "action": torch.tensor([0, 1]), "next_obs": extreme * 0.5,
             "reward": torch.ones(2), "terminated": torch.tensor([False, True])}
    model.train()
    losses = model.loss(batch)
    losses["total"].backward()
    assert torch.isfinite(losses["total"]) and torch.isfinite(model.max_logvar.grad).all()


def test_gaussian_heads_train_through_fit(data):
    model = ensemble(gaussian=True, hidden=32)
    d = data.tensors()
    with torch.no_grad():
        before = model.predict_members(d["obs"], d["action"]).delta_logvar.mean()
    history = wm.fit(model, data, epochs=40, seed=0, progress=False)
    assert {"total", "delta", "reward", "done", "nll", "logvar_bounds"} <= set(history.train)
    assert history.train["nll"][-1] < history.train["nll"][0]
    # The heads learn (slowly) that the deterministic dynamics are predictable: variances
    # shrink, and the penalty pulls the upper bound down from its initial 0.5.
    with torch.no_grad():
        after = model.predict_members(d["obs"], d["action"]).delta_logvar.mean()
    assert after < before - 0.8, (float(before), float(after))
    assert (model.max_logvar < 0.45).all(), model.max_logvar


def test_bootstrap_resamples_rows_per_member_only_in_training(data):
    batch = {k: v[:64] for k, v in data.tensors().items()}
    model = ensemble()
    model.train()
    assert model.loss(batch)["total"] != model.loss(batch)["total"]  # new resample each call
    model.eval()
    assert model.loss(batch)["total"] == model.loss(batch)["total"]  # held-out: all rows
    plain = ensemble(bootstrap=False)
    plain.train()
    assert plain.loss(batch)["total"] == plain.loss(batch)["total"]


def test_same_seed_same_training(data):
    def run(seed):
        model = ensemble(seed=seed)
        return wm.fit(model, data, epochs=2, seed=seed, progress=False).train["total"]
    assert run(1) == run(1) and run(1) != run(2)


def test_disagreement_is_larger_off_the_data(fitted, heldout_buffer):
    d = heldout_buffer.tensors()
    on = fitted.disagreement(d["obs"], d["action"]).mean()
    off_data = shift_velocities(heldout_buffer, 4.0)
    off = fitted.disagreement(off_data["obs"], off_data["action"]).mean()
    assert off > 2 * on, (float(on), float(off))
    # A rollout's disagreement grows with the horizon as it leaves the data.
    rollout = fitted.imagine(torch.zeros(4), torch.randint(2, (200, 25)))
    assert rollout.disagreement[:, -5:].mean() > 2 * rollout.disagreement[:, :5].mean()


def test_subset_keeps_the_first_members(fitted):
    obs, action = torch.randn(20, 4), torch.randint(2, (20,))
    small = fitted.subset(2)
    assert small.ensemble_size == 2
    assert torch.allclose(small(obs, action), fitted(obs, action)[:2])
    with pytest.raises(ValueError, match="size"):
        fitted.subset(6)


@pytest.mark.parametrize("kwargs, match", [
    ({"ensemble_size": 0}, "ensemble_size"), ({"hidden": 0}, "hidden"),
    ({"layers": -1}, "layers"), ({"propagation": "ts1"}, "propagation"),
    ({"seed": "zero"}, "seed"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ensemble(**kwargs)


def test_bad_inputs_name_the_argument():
    model = ensemble()
    with pytest.raises(ValueError, match="actions"):
        model.imagine(torch.zeros(4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="state"):
        model.imagine(torch.zeros(3), torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="obs"):
        model.filter(None, None, [0.0, 0.1, 0.2])
    model.propagation = "bogus"
    with pytest.raises(ValueError, match="propagation"):
        model.imagine(torch.zeros(4), torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="action_spec"):
        EnsembleWorldModel(4, "discrete", device="cpu")


def test_plugs_into_random_shooting_with_risk(fitted):
    obs = np.array([0.0, 0.0, 0.05, 0.0], dtype=np.float32)
    plain = wm.RandomShooting(fitted, horizon=10, candidates=64, seed=0)
    risky = wm.RandomShooting(fitted, horizon=10, candidates=64, seed=0, risk=2.0)
    assert plain(obs) in (0, 1) and risky(obs) in (0, 1)
    rollout = risky.last_plan.rollout
    penalty = 2.0 * (rollout.disagreement * rollout.alive).sum(1)
    assert torch.allclose(risky.last_plan.candidate_returns, rollout.returns - penalty)
    assert torch.equal(plain.last_plan.candidate_actions, risky.last_plan.candidate_actions)
    assert (risky.last_plan.candidate_returns < plain.last_plan.candidate_returns).all()
    cautious = wm.RandomShooting(fitted, horizon=10, candidates=64, seed=0, max_disagreement=1e-6)
    cautious(obs)  # every step is "too uncertain": each candidate keeps only its first reward
    assert cautious.last_plan.candidate_returns.max() <= 1.0 + 1e-4


def test_plugs_into_learn():
    env = wm.make_env("CartPole-v1", seed=0)
    planner = wm.RandomShooting(ensemble(hidden=16, ensemble_size=3), horizon=5, candidates=20)
    log = wm.learn(env, planner, steps=130, seed=0, warmup=100, epochs=2, eval_episodes=1,
                   progress=False)
    assert len(log.buffer) == 130 and log.evals
