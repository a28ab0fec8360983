import copy

import pytest
import torch

import wmkit as wm


def cartpole_model(**kwargs) -> wm.MLPWorldModel:
    return wm.MLPWorldModel.for_env(wm.make_env("CartPole-v1"), device="cpu", **kwargs)


def test_imagine_shapes_and_start():
    model = cartpole_model(hidden=32)
    start = torch.tensor([0.0, 0.1, 0.02, -0.1])
    actions = torch.randint(2, (7, 5))
    rollout = model.imagine(start, actions)
    assert rollout.observations.shape == (7, 6, 4)
    assert rollout.rewards.shape == (7, 5) and rollout.dones.shape == (7, 5)
    assert rollout.dones.dtype == torch.bool and rollout.returns.shape == (7,)
    assert torch.equal(rollout.observations[:, 0], start.expand(7, 4))


def test_box_action_model_imagines():
    env = wm.make_env("Pendulum-v1")
    model = wm.MLPWorldModel.for_env(env, hidden=16, device="cpu")
    rollout = model.imagine(torch.zeros(3), torch.rand(4, 6, 1) * 4 - 2)
    assert rollout.observations.shape == (4, 7, 3)


def test_rewards_count_zero_after_a_predicted_termination():
    model = cartpole_model(hidden=16)
    with torch.no_grad():  # reward head says 1 everywhere; termination only when x > 0
        last = model.net[-1]
        last.weight.zero_()
        last.bias.zero_()
        model.reward_mean.fill_(1.0)
    terminate_right = lambda obs: obs[..., 0] > 0  # noqa: E731
    start = torch.tensor([-0.05, 1.0, 0.0, 0.0])
    model.delta_mean.copy_(torch.tensor([0.02, 0.0, 0.0, 0.0]))  # x grows 0.02 a step
    rollout = model.imagine(start, torch.zeros(2, 6, dtype=torch.long), terminate_right)
    # x: -0.03, -0.01, 0.01 (terminates at step 2), ... -> steps 0, 1, 2 count
    assert rollout.dones[0].tolist() == [False, False, True, True, True, True]
    assert rollout.rewards[0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert rollout.returns.tolist() == [3.0, 3.0]
    assert wm.alive_before(rollout.dones)[0].tolist() == [True, True, True, False, False, False]


def test_learned_termination_head_masks_rewards():
    model = cartpole_model(hidden=16)
    with torch.no_grad():
        model.net[-1].bias[-1] = 10.0  # always predicts termination
        model.reward_mean.fill_(1.0)
        model.reward_std.fill_(1e-6)  # reward head: 1 everywhere
    rollout = model.imagine(torch.zeros(4), torch.zeros(3, 5, dtype=torch.long))
    assert rollout.dones.all()
    assert torch.allclose(rollout.returns, torch.ones(3), atol=1e-4)  # only the first step


def test_one_step_error_beats_no_change_by_10x(trained_mlp, cartpole_buffer):
    """Learning: held-out one-step error is >= 10x below "nothing changes"."""
    env = wm.make_env("CartPole-v1", seed=123)
    heldout = wm.collect(env, steps=500, seed=123)
    errors = wm.one_step_error(trained_mlp, heldout)
    assert errors["model"] * 10 <= errors["no_change"], errors


def test_termination_head_separates_terminal_states(trained_mlp):
    heldout = wm.collect(wm.make_env("CartPole-v1", seed=7), steps=500, seed=7).tensors()
    _, _, logit = trained_mlp.predict(heldout["obs"], heldout["action"])
    predicted, actual = logit > 0, heldout["terminated"]
    recall = (predicted & actual).sum() / actual.sum()
    false_alarm = (predicted & ~actual).sum() / (~actual).sum()
    assert recall >= 0.9 and false_alarm <= 0.1, (recall, false_alarm)


def test_normalisation_at_training_time_makes_scale_irrelevant(cartpole_buffer):
    """A buffer scaled x1000 trains to the same normalised losses from the same seed."""
    scaled = wm.ReplayBuffer(4, cartpole_buffer.action_spec, capacity=len(cartpole_buffer))
    data = cartpole_buffer.tensors()
    for i in range(300):
        scaled.add(data["obs"][i] * 1000, data["action"][i], float(data["reward"][i]),
                   data["next_obs"][i] * 1000, bool(data["terminated"][i]))
    small = wm.ReplayBuffer(4, cartpole_buffer.action_spec)
    for i in range(300):
        small.add(data["obs"][i], data["action"][i], float(data["reward"][i]),
                  data["next_obs"][i], bool(data["terminated"][i]))
    losses = []
    for buffer in (small, scaled):
        torch.manual_seed(0)
        model = cartpole_model(hidden=32)
        losses.append(wm.fit(model, buffer, epochs=5, seed=0, progress=False).train["delta"][-1])
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
    assert torch.allclose(model.obs_mean, scaled.stats().obs_mean)


def test_normalisation_at_acting_time_travels_with_the_weights(trained_mlp):
    """Predictions are in raw units and a reloaded model predicts the same."""
    obs, action = torch.tensor([[0.1, -0.5, 0.05, 0.8]]), torch.tensor([1])
    clone = cartpole_model()
    clone.load_state_dict(trained_mlp.state_dict())
    assert torch.equal(clone.obs_std, trained_mlp.obs_std)
    assert torch.allclose(clone.predict(obs, action)[0], trained_mlp.predict(obs, action)[0])
    stale = copy.deepcopy(trained_mlp)
    stale.obs_std.fill_(1.0)  # without the stats the same weights predict something else
    assert not torch.allclose(stale.predict(obs, action)[0], trained_mlp.predict(obs, action)[0],
                              atol=1e-3)
    # One step of the pole falling right: the model gets the sign of the accelerations.
    next_obs = trained_mlp.predict(obs, action)[0][0]
    assert next_obs[0] > obs[0, 0] - 0.02 and next_obs[2] > obs[0, 2]


def test_same_seed_same_numbers(cartpole_buffer):
    def run(seed):
        torch.manual_seed(seed)
        model = cartpole_model(hidden=32)
        return wm.fit(model, cartpole_buffer, epochs=2, seed=seed, progress=False).train["total"]
    assert run(1) == run(1) and run(1) != run(2)


def test_fit_history_and_non_finite_losses_stop_training(cartpole_buffer):
    model = cartpole_model(hidden=16)
    history = wm.fit(model, cartpole_buffer, epochs=3, progress=False)
    assert set(history.train) == {"total", "delta", "reward", "done"}
    assert len(history.train["total"]) == len(history.heldout["total"]) == 3
    with torch.no_grad():
        model.net[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        wm.fit(model, cartpole_buffer, epochs=1, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"holdout": 1.5}, "holdout"),
    ({"final_lr": 0.0}, "final_lr"), ({"final_lr": -1e-4}, "final_lr"),
])
def test_fit_bad_arguments(cartpole_buffer, kwargs, match):
    model = cartpole_model(hidden=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        wm.fit(model, cartpole_buffer, progress=False, **kwargs)
    # Refused before anything changed: not the weights, not the normalisation statistics.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_final_lr_decays_the_learning_rate(cartpole_buffer):
    def lrs(final_lr):
        torch.manual_seed(0)
        model = cartpole_model(hidden=16)
        return wm.fit(model, cartpole_buffer, epochs=4, lr=1e-3, final_lr=final_lr,
                      progress=False).lr
    assert lrs(None) == [1e-3] * 4  # the MLP's default: a constant rate
    assert lrs(1e-3) == [1e-3] * 4  # a decay to lr itself is no decay
    decayed = lrs(1e-5)
    assert all(a > b for a, b in zip(decayed, decayed[1:]))  # falls every epoch...
    assert decayed[-1] == pytest.approx(1e-5)  # ...to final_lr at the last update


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": -1e-3}, "lr"), ({"lr": None}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"weight_decay": -1}, "weight_decay"), ({"grad_clip": 0}, "grad_clip"),
])
def test_fit_refuses_bad_optimiser_settings_before_touching_the_model(cartpole_buffer, kwargs,
                                                                      match):
    model = cartpole_model(hidden=8)
    wm.fit(model, cartpole_buffer, epochs=1, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = wm.collect(wm.make_env("CartPole-v1", seed=5), steps=300, seed=5)
    with pytest.raises(ValueError, match=match):
        wm.fit(model, other, epochs=1, progress=False, **kwargs)
    # The statistics of `other` were not copied in: the model predicts exactly as before.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_refuses_a_buffer_of_another_env(cartpole_buffer):
    model = cartpole_model(hidden=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pendulum = wm.collect(wm.make_env("Pendulum-v1", seed=0), steps=50)
    hidden = wm.collect(wm.make_env("CartPole-v1", seed=0, hide_velocities=True), steps=50)
    mountain = wm.collect(wm.make_env("MountainCar-v0", seed=0), steps=50)  # 2 obs, 3 actions
    for buffer, match in ((pendulum, "observations"), (hidden, "observations"),
                          (mountain, "observations")):
        with pytest.raises(ValueError, match=match):
            wm.fit(model, buffer, epochs=1, progress=False)
    acrobot_like = wm.ReplayBuffer(4, wm.ActionSpec(discrete=True, n=3))
    acrobot_like.add([0.0] * 4, 2, 1.0, [0.1] * 4, False)
    with pytest.raises(ValueError, match="actions"):
        wm.fit(model, acrobot_like, epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_loss_that_blows_up_restores_the_model(cartpole_buffer):
    model = cartpole_model(hidden=8)
    wm.fit(model, cartpole_buffer, epochs=2, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="restored"):
        wm.fit(model, cartpole_buffer, epochs=3, lr=1e12, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    obs = cartpole_buffer.tensors()["obs"][:5]
    assert torch.isfinite(model.predict(obs, torch.zeros(5, dtype=torch.long))[0]).all()


def test_a_saved_model_refuses_another_action_space():
    discrete = cartpole_model(hidden=8)
    box = wm.MLPWorldModel(4, wm.ActionSpec(False, 2, (-1.0, -1.0), (1.0, 1.0)), hidden=8,
                           device="cpu")  # the same layer shapes: 4 + 2 inputs
    before = {k: v.clone() for k, v in box.state_dict().items()}
    with pytest.raises(ValueError, match="action space"):
        box.load_state_dict(discrete.state_dict())
    assert all(torch.equal(before[k], v) for k, v in box.state_dict().items())
    twin = cartpole_model(hidden=8)
    twin.load_state_dict(discrete.state_dict())  # the same action space loads


def test_imagine_checks_its_actions():
    model = cartpole_model(hidden=8)
    start = torch.zeros(4)
    for bad, match in ((torch.full((2, 3), 0.9), "integer"), (torch.full((2, 3), 2), "actions"),
                       (torch.full((2, 3), -1), "actions"), (torch.zeros(2, 3, 1), "shape")):
        with pytest.raises(ValueError, match=match):
            model.imagine(start, bad)
    box = wm.MLPWorldModel(3, wm.ActionSpec(False, 1, (-2.0,), (2.0,)), hidden=8, device="cpu")
    with pytest.raises(ValueError, match="actions"):
        box.imagine(torch.zeros(3), torch.full((2, 3, 1), 2.5))
    with pytest.raises(ValueError, match="actions"):
        box.imagine(torch.zeros(3), torch.full((2, 3, 1), float("nan")))


def test_filter_checks_observations():
    model = cartpole_model(hidden=8)
    assert model.filter(None, None, [0.0, 0.1, 0.2, 0.3]).shape == (4,)
    with pytest.raises(ValueError, match="obs"):
        model.filter(None, None, [0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="obs: contains non-finite"):
        model.filter(None, None, [0.0, float("nan"), 0.2, 0.3])


@pytest.mark.parametrize("env_name", ["CartPole-v1", "Pendulum-v1"])
def test_fast_imagine_equals_stepping_predict(env_name, cartpole_buffer):
    """`imagine` folds the normalisation into the weights: it must match `predict` exactly."""
    env = wm.make_env(env_name, seed=0)
    model = wm.MLPWorldModel.for_env(env, hidden=32, layers=3, device="cpu")
    wm.fit(model, wm.collect(env, steps=300, seed=0), epochs=2, progress=False)
    obs0 = torch.as_tensor(env.reset(seed=1)[0])
    spec = model.action_spec
    actions = spec.sample((5, 7), torch.Generator().manual_seed(0), torch.device("cpu"))
    rollout = model.imagine(obs0, actions)
    obs = obs0.expand(5, -1)
    with torch.no_grad():
        for t in range(7):
            obs, reward, logit = model.predict(obs, actions[:, t])
            assert torch.allclose(rollout.observations[:, t + 1], obs, atol=1e-4, rtol=1e-4)
            alive = wm.alive_before(rollout.dones)[:, t]
            assert torch.allclose(rollout.rewards[:, t], reward * alive, atol=1e-4, rtol=1e-4)
            assert torch.equal(rollout.dones[:, t], logit > 0)


def test_a_state_beyond_the_data_reads_as_the_nearest_state_inside_it(trained_mlp,
                                                                       cartpole_buffer):
    """The network reads observations clamped to the data's range (`Normalised.inputs`); the
    change it predicts is added to the true state, so a cart beyond the data keeps its place."""
    stats = cartpole_buffer.stats()
    assert torch.equal(trained_mlp.obs_low, stats.obs_low)
    assert torch.equal(trained_mlp.obs_high, stats.obs_high)
    edge = torch.tensor([[float(stats.obs_high[0]), 0.1, 0.02, -0.1]])
    beyond = edge + torch.tensor([[5.0, 0.0, 0.0, 0.0]])  # far right of every cart in the data
    action = torch.tensor([1])
    at_edge, beyond_edge = trained_mlp.predict(edge, action), trained_mlp.predict(beyond, action)
    assert torch.allclose(beyond_edge[0] - beyond, at_edge[0] - edge, atol=1e-5)
    assert beyond_edge[0][0, 0] > 5.0 + float(stats.obs_high[0]) - 0.1
    assert torch.equal(beyond_edge[1], at_edge[1]) and torch.equal(beyond_edge[2], at_edge[2])
    with torch.no_grad():  # the folded fast path clamps the same way
        rollout = trained_mlp.imagine(beyond[0], action.reshape(1, 1))
    assert torch.allclose(rollout.observations[0, 1], beyond_edge[0][0], atol=1e-5)
    fresh = cartpole_model()  # before any fit: nothing is clamped
    assert torch.isfinite(fresh.obs_low).all() and (fresh.obs_low < -1e30).all()
