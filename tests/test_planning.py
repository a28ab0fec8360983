import numpy as np
import pytest
import torch

import wmkit as wm


@pytest.fixture()
def env():
    return wm.make_env("CartPole-v1", seed=0)


def test_plan_records_candidates_and_scores(trained_mlp):
    planner = wm.RandomShooting(trained_mlp, horizon=12, candidates=64, seed=0)
    action = planner(np.array([0.0, 0.0, 0.05, 0.0], dtype=np.float32))
    plan = planner.last_plan
    assert action in (0, 1) and plan.action == action
    assert plan.candidate_actions.shape == (64, 12) and plan.candidate_returns.shape == (64,)
    assert plan.rollout.observations.shape == (64, 13, 4)
    # "mean" picks the first action whose sequences did best on average.
    firsts = plan.candidate_actions[:, 0]
    means = [plan.candidate_returns[firsts == a].mean() for a in (0, 1)]
    assert torch.allclose(plan.first_action_scores, torch.stack(means))
    assert action == int(torch.stack(means).argmax())
    # Pole falling right: pushing right (1) keeps it up longer.
    assert action == 1


def test_best_rule_takes_the_first_action_of_the_best_sequence(trained_mlp):
    planner = wm.RandomShooting(trained_mlp, horizon=10, candidates=50, select="best")
    action = planner(np.zeros(4, dtype=np.float32))
    plan = planner.last_plan
    assert plan.candidate_returns[plan.best_index] == plan.candidate_returns.max()
    assert action == int(plan.candidate_actions[plan.best_index, 0])


def test_same_seed_same_plan(trained_mlp):
    obs = np.array([0.0, 0.2, -0.03, 0.1], dtype=np.float32)
    a = wm.RandomShooting(trained_mlp, horizon=8, candidates=32, seed=5)
    b = wm.RandomShooting(trained_mlp, horizon=8, candidates=32, seed=5)
    a(obs)
    b(obs)
    assert torch.equal(a.last_plan.candidate_actions, b.last_plan.candidate_actions)
    assert torch.equal(a.last_plan.candidate_returns, b.last_plan.candidate_returns)


def test_unvisited_first_action_scores_minus_infinity(trained_mlp):
    planner = wm.RandomShooting(trained_mlp, horizon=5, candidates=4)
    scores = planner.first_action_scores(torch.tensor([1, 1, 1]), torch.tensor([1.0, 2.0, 3.0]))
    assert scores.tolist() == [float("-inf"), 2.0]


@pytest.mark.parametrize("kwargs, match", [
    ({"horizon": 0}, "horizon"), ({"horizon": 2.5}, "horizon"), ({"candidates": 0}, "candidates"),
    ({"candidates": -3}, "candidates"), ({"select": "max"}, "select"),
    ({"temperature": 0}, "temperature"),
])
def test_bad_planner_arguments(trained_mlp, kwargs, match):
    with pytest.raises(ValueError, match=match):
        wm.RandomShooting(trained_mlp, **kwargs)


def test_planner_checks_observations(trained_mlp):
    planner = wm.RandomShooting(trained_mlp, horizon=5, candidates=8)
    with pytest.raises(ValueError, match="obs"):
        planner(np.zeros(3))
    with pytest.raises(ValueError, match="obs: contains non-finite"):
        planner(np.array([0, np.nan, 0, 0]))


def test_perfect_model_planner_balances_cartpole(env):
    """With the true dynamics, "mean" at 100 x 20 keeps the pole up for a whole episode."""
    planner = wm.RandomShooting(wm.TrueCartPole(device="cpu"), horizon=20, candidates=100)
    assert wm.evaluate(env, planner, episodes=1, seed=1).returns == [500.0]


def test_true_cartpole_matches_gymnasium(env):
    model = wm.TrueCartPole(device="cpu")
    obs, _ = env.reset(seed=3)
    actions = [1, 0, 0, 1, 1, 1, 0]
    rollout = model.imagine(torch.as_tensor(obs), torch.tensor([actions]))
    for t, action in enumerate(actions):
        obs, *_ = env.step(action)
        assert np.allclose(rollout.observations[0, t + 1].numpy(), obs, atol=1e-6)


def test_true_termination_rule_can_replace_the_learned_head(trained_mlp):
    planner = wm.RandomShooting(trained_mlp, horizon=30, candidates=64,
                                termination_fn=wm.cartpole_termination)
    planner(np.array([0.0, 0.0, 0.15, 1.0], dtype=np.float32))
    rollout = planner.last_plan.rollout
    assert torch.equal(rollout.dones, wm.cartpole_termination(rollout.observations[:, 1:]))


def test_box_actions_use_a_return_weighted_first_action():
    env = wm.make_env("Pendulum-v1", seed=0)
    model = wm.MLPWorldModel.for_env(env, hidden=16, device="cpu")
    planner = wm.RandomShooting(model, horizon=5, candidates=40, seed=0)
    action = planner(np.array([1.0, 0.0, 0.0], dtype=np.float32))
    plan = planner.last_plan
    assert action.shape == (1,) and -2 <= action[0] <= 2 and plan.first_action_scores is None
    weights = torch.softmax((plan.candidate_returns - plan.candidate_returns.max())
                            / (plan.candidate_returns.std() * 0.5), 0)
    expected = (weights[:, None] * plan.candidate_actions[:, 0]).sum(0)
    assert np.allclose(action, expected.numpy(), atol=1e-6)
    env.step(action)  # what the planner returns is a valid env action
