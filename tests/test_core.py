"""The written-down interfaces: every model is a WorldModel, imagination under a policy, beliefs
of buffer rows, the one runner, the MPC base, buffers that hand out copies, envs that refuse
what they cannot do."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import wmkit as wm
from wmkit.models.base import Imagined
from wmkit.planners.base import MPCPlanner

SMALL_RSSM = {"deter": 16, "stoch": 4, "hidden": 16, "device": "cpu"}


@pytest.fixture(scope="module")
def hidden_buffer() -> wm.ReplayBuffer:
    return wm.collect(wm.make_env("CartPole-v1", seed=1, hide_velocities=True), steps=300, seed=1)


def models(env: gym.Env) -> dict[str, object]:
    wm.seed_everything(0)
    return {"mlp": wm.MLPWorldModel.for_env(env, hidden=16, device="cpu"),
            "ensemble": wm.EnsembleWorldModel.for_env(env, ensemble_size=2, hidden=16, seed=0,
                                                      device="cpu"),
            "rssm": wm.RSSMWorldModel.for_env(env, **SMALL_RSSM)}


def test_every_model_and_planner_meets_its_protocol():
    env = wm.make_env("CartPole-v1")
    for model in [*models(env).values(), wm.TrueCartPole(device="cpu")]:
        assert isinstance(model, wm.WorldModel), model
    for model in models(env).values():
        assert isinstance(model, wm.TrainableModel), model
        assert isinstance(wm.RandomShooting(model, candidates=4), wm.Planner)
    assert not isinstance(object(), wm.WorldModel)
    with pytest.raises(ValueError, match="model: expected a world model"):
        wm.RandomShooting(object())
    with pytest.raises(ValueError, match="model: expected a trainable"):
        wm.fit(wm.TrueCartPole(device="cpu"), wm.collect(env, steps=20))


@pytest.mark.parametrize("name", ["mlp", "ensemble", "rssm"])
def test_a_policy_in_imagination_gives_what_its_action_sequence_gives(name):
    """Closed loop with a policy that happens to pick fixed actions = open loop with them."""
    env = wm.make_env("CartPole-v1")
    model = models(env)[name]
    state = model.filter(None, None, env.reset(seed=0)[0])
    sequences = torch.randint(2, (6, 5), generator=torch.Generator().manual_seed(0))
    seen: list[Imagined] = []

    def policy(imagined: Imagined) -> torch.Tensor:
        seen.append(imagined)
        return sequences[:, len(seen) - 1]

    open_loop = model.imagine(state, sequences)
    # A policy imagines one trajectory per belief: a batch of 6 copies of the start.
    start = state.expand(6, -1) if name != "rssm" else \
        wm.models.rssm.RSSMState(state.h.expand(6, -1), state.z.expand(6, -1))
    closed_loop = model.imagine(start, policy, horizon=5)
    assert len(seen) == 5 and seen[0].features.shape == (6, open_loop.features.shape[-1])
    torch.testing.assert_close(closed_loop.observations, open_loop.observations)
    torch.testing.assert_close(closed_loop.rewards, open_loop.rewards)
    torch.testing.assert_close(closed_loop.done_logits, open_loop.done_logits)
    assert torch.equal(closed_loop.actions, sequences)
    with pytest.raises(ValueError, match="horizon"):
        model.imagine(start, policy)


def test_gradients_flow_through_imagination_to_the_actions():
    env = wm.make_env("Pendulum-v1")
    model = wm.MLPWorldModel.for_env(env, hidden=16, device="cpu")
    actions = torch.zeros(3, 4, 1, requires_grad=True)
    model.imagine(torch.zeros(3), actions).returns.sum().backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0


def test_rssm_beliefs_of_buffer_rows_are_what_filter_makes_of_the_episode(hidden_buffer):
    model = wm.RSSMWorldModel.for_env(wm.make_env("CartPole-v1", hide_velocities=True),
                                      **SMALL_RSSM)
    data = hidden_buffer.tensors()
    start, end = hidden_buffer.episode_bounds()[1]
    rows = torch.tensor([start, start + 3, min(start + 20, end - 1)])
    state, previous, expected = None, None, {}
    for row in range(start, int(rows.max()) + 1):
        state = model.filter(state, previous, data["obs"][row])
        previous = data["action"][row]
        expected[row] = state
    beliefs = model.beliefs(hidden_buffer, rows)
    for i, row in enumerate(rows.tolist()):
        # Rows within 16 of the episode start see the whole episode: exactly filter's belief.
        torch.testing.assert_close(beliefs.h[i], expected[row].h[0])


def test_dyna_imagines_through_any_world_model_the_rssm_included(hidden_buffer):
    model = wm.RSSMWorldModel.for_env(wm.make_env("CartPole-v1", hide_velocities=True),
                                      **SMALL_RSSM)
    wm.fit(model, hidden_buffer, epochs=1, progress=False)
    agent = wm.Dyna(2, wm.ActionSpec(True, 2), model, planning_updates=2, value_expansion=3,
                    device="cpu")
    out = agent.expanded_targets(hidden_buffer, 16, torch.Generator().manual_seed(0))
    assert out["obs"].shape == (16, 2) and torch.isfinite(out["target"]).all()
    one_step = wm.Dyna(2, wm.ActionSpec(True, 2), model, planning_updates=2, device="cpu")
    assert one_step.imagine_transitions(hidden_buffer, 8)["next_obs"].shape[-1] == 2


# -- the runner ----------------------------------------------------------------------------------


class CountingAgent:
    def __init__(self) -> None:
        self.resets, self.calls = 0, 0

    def __call__(self, obs):
        self.calls += 1
        return 0

    def reset(self) -> None:
        self.resets += 1

    def reseed(self, seed: int) -> None:
        pass


def test_the_runner_counts_steps_episodes_and_returns():
    env = wm.make_env("CartPole-v1")
    agent = CountingAgent()
    steps = list(wm.run(env, agent, episodes=3, seed=0, warmup=5))
    ends = [s for s in steps if s.episode_over]
    assert [s.episode for s in ends] == [0, 1, 2] and agent.resets == 3
    assert all(s.random for s in steps[:5]) and not any(s.random for s in steps[5:])
    assert agent.calls == len(steps) - 5
    assert [s.index for s in steps] == list(range(1, len(steps) + 1))
    assert ends[0].episode_return == ends[0].index  # CartPole pays 1 per step
    again = list(wm.run(env, CountingAgent(), episodes=3, seed=0, warmup=5))
    assert [s.reward for s in again] == [s.reward for s in steps]  # seeded: the same run
    evaluation = wm.evaluate(env, CountingAgent(), episodes=3, seed=4)
    alone = wm.evaluate(env, CountingAgent(), episodes=1, seed=6)
    assert evaluation.returns[2] == alone.returns[0]  # episode i starts from seed + i
    with pytest.raises(ValueError, match="steps, episodes"):
        next(wm.run(env, agent))
    with pytest.raises(ValueError, match="agent"):
        next(wm.run(env, 3, steps=2))


# -- the MPC base --------------------------------------------------------------------------------


class FirstOfTheShiftedPlan(MPCPlanner):
    """A minimal planner on the base: always action 1, remembering what it was warm-started
    from (the base gives filter, reset, reseed, the budget and the bookkeeping)."""

    def search(self, state):
        self.warm = self.shifted()
        actions = torch.ones(self.budget // self.horizon, self.horizon, dtype=torch.long)
        rollout, returns = self.evaluate(state, actions)
        return self.decide(actions[0], rollout, returns)


def test_a_planner_on_the_mpc_base_writes_only_its_search():
    model = wm.TrueCartPole(device="cpu")
    planner = FirstOfTheShiftedPlan(model, budget=40, horizon=8)
    env = wm.make_env("CartPole-v1")
    obs, _ = env.reset(seed=0)
    assert planner(obs) == 1 and planner.warm is None  # an episode start: nothing to shift
    assert planner.spent == 40 and planner.last_plan.spent == 40
    planner(obs)
    assert torch.equal(planner.warm, torch.ones(8, dtype=torch.long))
    planner.reset()
    planner(obs)
    assert planner.warm is None
    for bad, match in (({"budget": 0}, "budget"), ({"budget": 5}, "budget"),
                       ({"horizon": -1}, "horizon"), ({"risk": float("nan")}, "risk"),
                       ({"max_disagreement": 0.0}, "max_disagreement")):
        with pytest.raises(ValueError, match=match):
            FirstOfTheShiftedPlan(model, **{"budget": 40, "horizon": 8, **bad})


def test_random_shooting_takes_its_budget_in_imagined_transitions():
    model = wm.TrueCartPole(device="cpu")
    assert wm.RandomShooting(model, budget=1_000, horizon=20).candidates == 50
    assert wm.RandomShooting(model, horizon=10, candidates=30).budget == 300
    planner = wm.RandomShooting(model, budget=600, horizon=20, seed=0)
    planner(np.zeros(4, dtype=np.float32))
    assert planner.spent == 600
    with pytest.raises(ValueError, match="candidates, budget"):
        wm.RandomShooting(model, candidates=10, budget=200)
    with pytest.raises(ValueError, match="temperature"):
        wm.RandomShooting(model, temperature=float("nan"))


# -- buffers and envs ----------------------------------------------------------------------------


def test_the_buffer_hands_out_copies():
    buffer = wm.collect(wm.make_env("CartPole-v1"), steps=20)
    original = buffer.tensors()["obs"].clone()
    buffer.tensors()["obs"].zero_()
    buffer[0]["obs"].zero_()
    buffer[0:5]["reward"].zero_()
    buffer[torch.tensor([1, 2])]["obs"].zero_()
    assert torch.equal(buffer.tensors()["obs"], original)
    assert buffer.tensors()["reward"].eq(1).all()


def test_episode_helpers_of_the_buffer():
    buffer = wm.collect(wm.make_env("CartPole-v1"), steps=100)
    bounds = buffer.episode_bounds()
    assert bounds[0][0] == 0 and bounds[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    ids = buffer.episode_ids()
    assert ids[0] == 0 and ids[-1] == len(bounds) - 1
    starts = buffer.window_starts(5)
    first = buffer.tensors()["is_first"]
    assert all(not first[s + 1: s + 5].any() for s in starts.tolist())
    assert len(starts) == sum(max(0, end - start - 4) for start, end in bounds)


def test_hide_velocities_is_refused_where_the_velocities_are_unknown():
    hidden = wm.make_env("Pendulum-v1", hide_velocities=True)
    assert hidden.observation_space.shape == (2,)  # cos, sin: the angular velocity is gone
    obs, _ = hidden.reset(seed=0)
    full, _ = gym.make("Pendulum-v1").reset(seed=0)
    np.testing.assert_allclose(obs, full[:2])
    with pytest.raises(ValueError, match="hide_velocities"):
        wm.make_env("LunarLander-v3", hide_velocities=True)


def test_the_kit_wrappers_pass_gymnasiums_env_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite Box bounds: CartPole's own, not ours
        for env in (wm.make_env("CartPole-v1", hide_velocities=True),
                    wm.ChangePoleLength(gym.make("CartPole-v1"), at_step=10)):
            check_env(env)
            rebuilt = gym.make(env.spec)  # rebuildable from its spec
            assert rebuilt.observation_space == env.observation_space


def test_learn_explores_in_training_episodes_and_evaluate_never_does():
    flags: list[bool] = []

    class Recording(wm.RandomShooting):
        def search(self, state):
            flags.append(self.explore)
            return super().search(state)

    env = wm.make_env("CartPole-v1")
    planner = Recording(wm.MLPWorldModel.for_env(env, hidden=8, device="cpu"), horizon=3,
                        candidates=8)
    log = wm.learn(env, planner, steps=60, warmup=30, epochs=1, eval_episodes=1,
                   eval_every=1_000, progress=False)
    evaluated = int(log.evals[0].returns[0])  # one evaluation episode, right after the 1st fit
    assert flags == [False] * evaluated + [True] * 30 and planner.explore is False
    flags.clear()
    planner.explore = True
    wm.evaluate(env, planner, episodes=1)
    assert not any(flags) and planner.explore is True  # restored after the evaluation
