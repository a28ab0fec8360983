"""Dyna: the value learner, its imagined updates (1-step transitions and value expansion), the
replay-matched baseline, the figures, bad input."""

import math

import pytest
import torch

import wmkit as wm
from wmkit.models.base import Imagines
from wmkit.planners.dyna import Dyna, DynaLog, epsilon_at, train_dyna


class PredictingModel(Imagines):
    """A stand-in world model of CartPole's 4 numbers: `imagine` calls `predict` each step."""

    obs_dim = 4
    action_spec = wm.ActionSpec(True, 2)
    device = torch.device("cpu")

    def filter(self, state, action, obs):
        return torch.as_tensor(obs, dtype=torch.float32)

    def beliefs(self, buffer, index):
        return buffer[index]["obs"]

    def initial(self, state, n):
        return state.reshape(-1, 4).expand(n, 4)

    def step(self, obs, actions):
        return (*self.predict(obs, actions), None)

    def decode(self, obs):
        return obs

    def features(self, obs):
        return obs


class RaisingModel(PredictingModel):
    """A world model that fails the test if anything asks it for a prediction."""

    def predict(self, obs, action):
        raise AssertionError("the model-free baseline must not call the model")

    def beliefs(self, buffer, index):
        raise AssertionError("the model-free baseline must not call the model")

    def parameters(self):
        raise AssertionError("the model-free baseline must not fit the model")


class FixedModel(PredictingModel):
    """Every imagined step ends the episode with reward `reward`; counts its calls."""

    def __init__(self, reward: float) -> None:
        self.reward, self.calls = reward, []

    def predict(self, obs, action):
        self.calls.append((tuple(obs.shape), tuple(action.shape)))
        n = len(obs)
        return obs + 0.01, torch.full((n,), self.reward), torch.full((n,), 50.0)


class ConstantModel(PredictingModel):
    """Every step moves obs by +0.01 and pays `reward`; the done logit is `done_logit`.
    Records the actions it is asked about."""

    def __init__(self, reward: float, done_logit: float) -> None:
        self.reward, self.done_logit, self.actions, self.obs = reward, done_logit, [], []

    def predict(self, obs, action):
        self.actions.append(action.clone())
        self.obs.append(obs.clone())
        n = len(obs)
        return obs + 0.01, torch.full((n,), self.reward), torch.full((n,), self.done_logit)


@pytest.fixture(scope="module")
def env():
    return wm.make_env("CartPole-v1", seed=0)


@pytest.fixture(scope="module")
def buffer(env):
    return wm.collect(env, steps=300, seed=0)


def test_shapes_of_values_actions_and_imagined_transitions(env, buffer, trained_mlp):
    agent = Dyna.for_env(env, trained_mlp, planning_updates=2, rollout_length=3, device="cpu")
    obs = buffer.tensors()["obs"]
    assert agent.q_values(obs[:7]).shape == (7, 2)
    assert agent.q_values(obs[0]).shape == (2,)
    assert agent(obs[0].numpy()) in (0, 1) and isinstance(agent(obs[0]), int)
    imagined = agent.imagine_transitions(buffer, n_starts=50, generator=torch.Generator())
    n = len(imagined["obs"])
    assert imagined["next_obs"].shape == (n, 4) and imagined["action"].shape == (n,)
    assert imagined["reward"].shape == imagined["terminated"].shape == (n,)
    assert ((imagined["terminated"] >= 0) & (imagined["terminated"] <= 1)).all()
    assert math.isfinite(agent.update(buffer.sample(16)))


@pytest.mark.parametrize("done_logit, expected", [(60.0, 50), (-60.0, 150)])
def test_imagined_branches_stop_once_the_model_says_the_episode_ended(buffer, done_logit,
                                                                      expected):
    """Every branch keeps its first step, and later steps only while it is still alive: a
    model that always ends gives one step per branch, one that never ends all three."""
    agent = Dyna(4, wm.ActionSpec(True, 2), ConstantModel(1.0, done_logit), planning_updates=1,
                 rollout_length=3, device="cpu")
    imagined = agent.imagine_transitions(buffer, n_starts=50, generator=torch.Generator())
    assert len(imagined["obs"]) == expected


def test_model_free_baseline_never_touches_the_model(env):
    agent = Dyna.for_env(env, RaisingModel(), planning_updates=0, device="cpu")
    log = train_dyna(env, agent, steps=150, warmup=100, eval_every=50, eval_episodes=1,
                     progress=False)
    assert isinstance(log, DynaLog) and len(log.buffer) == 150
    assert log.real_updates == 51 and log.imagined_updates == 0 and not log.histories
    assert [e.real_steps for e in log.evals] == [100, 150]


def test_planning_updates_learn_from_imagined_transitions(buffer):
    """A model that says every action ends the episode with reward -5 drags Q below zero;
    real CartPole data alone (reward +1 every step) can only push Q up."""
    obs = buffer.tensors()["obs"]
    mean_q = {}
    for k in (0, 20):
        model = FixedModel(reward=-5.0)
        agent = Dyna(4, wm.ActionSpec(True, 2), model, planning_updates=k, batch_size=32,
                     seed=0, device="cpu")
        mean_q["init"] = float(agent.q_values(obs).mean())  # the same net for both k
        generator = torch.Generator().manual_seed(0)
        for _ in range(15):
            agent.train_step(buffer, generator)
        mean_q[k] = float(agent.q_values(obs).mean())
        assert agent.updates == {"real": 15, "imagined": 15 * k}
        # One batched model call per real step, on k * B start states (rollout_length 1).
        assert model.calls == ([((k * 32, 4), (k * 32,))] * 15 if k else [])
    assert mean_q[0] > mean_q["init"] + 0.2 and mean_q[20] < -2.0, mean_q


def test_value_expansion_targets_are_greedy_imagined_returns(buffer):
    """H = 4 imagined steps of reward 1 that never end: the target of Q(s_0, a_0) is
    1 + g + g^2 + g^3 + g^4 Q'(s_4, argmax Q(s_4)), and every action after a_0 is greedy."""
    gamma, horizon = 0.9, 4
    model = ConstantModel(reward=1.0, done_logit=-60.0)
    agent = Dyna(4, wm.ActionSpec(True, 2), model, planning_updates=1, value_expansion=horizon,
                 gamma=gamma, seed=1, device="cpu")
    agent._max_abs_reward = torch.tensor(1.0)  # a real update would have seen reward 1
    out = agent.expanded_targets(buffer, n_starts=200, generator=torch.Generator().manual_seed(0))
    assert out["obs"].shape == (200, 4) and out["action"].shape == out["target"].shape == (200,)
    assert len(model.actions) == horizon and torch.equal(model.actions[0], out["action"])
    assert set(out["action"].tolist()) == {0, 1}  # a_0 is random: both actions appear
    for obs, action in zip(model.obs[1:], model.actions[1:], strict=True):
        assert torch.equal(action, agent.q_values(obs).argmax(1))
    last = out["obs"] + 0.01 * horizon
    bootstrap = agent.target(last).gather(1, agent.q(last).argmax(1, keepdim=True)).squeeze(1)
    expected = (1 - gamma**horizon) / (1 - gamma) + gamma**horizon * bootstrap
    torch.testing.assert_close(out["target"], expected.detach())


def test_value_expansion_stops_at_an_imagined_termination(buffer):
    """A model that ends every episode at once with reward -5: the target is -5, whatever
    the horizon, and planning updates drag Q there."""
    agent = Dyna(4, wm.ActionSpec(True, 2), ConstantModel(reward=-5.0, done_logit=60.0),
                 planning_updates=4, value_expansion=3, batch_size=32, seed=0, device="cpu")
    generator = torch.Generator().manual_seed(0)
    out = agent.expanded_targets(buffer, n_starts=50, generator=generator)
    torch.testing.assert_close(out["target"], torch.full((50,), -5.0))
    with pytest.raises(ValueError, match="value_expansion"):
        Dyna(4, wm.ActionSpec(True, 2), agent.model, device="cpu").expanded_targets(buffer, 5)
    for _ in range(30):
        agent.train_step(buffer, generator)
    assert agent.updates == {"real": 30, "imagined": 120}
    assert float(agent.q_values(buffer.tensors()["obs"]).mean()) < -2.0


def test_replay_updates_are_extra_real_minibatches(env, buffer):
    agent = Dyna.for_env(env, None, replay_updates=4, batch_size=16, device="cpu")
    before = [p.clone() for p in agent.q.parameters()]
    agent.train_step(buffer, torch.Generator().manual_seed(0))
    assert agent.updates == {"real": 5, "imagined": 0}
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.q.parameters(), strict=True))
    log = train_dyna(env, agent, steps=120, warmup=100, eval_episodes=0, progress=False)
    assert log.real_updates == 21 * 5 and log.imagined_updates == 0 and not log.evals


def test_training_is_repeatable_for_a_seed(env):
    runs = []
    for _ in range(2):
        wm.seed_everything(3)  # the world model's initial weights come from torch's global RNG
        model = wm.MLPWorldModel.for_env(env, hidden=32, device="cpu")
        agent = Dyna.for_env(env, model, planning_updates=2, seed=3, device="cpu")
        log = train_dyna(env, agent, steps=260, seed=3, warmup=200, refit_every=30, epochs=2,
                         eval_every=30, eval_episodes=1, progress=False)
        weights = [p.sum().item() for p in agent.q.parameters()]
        runs.append(([e.returns for e in log.evals], weights))
    assert runs[0] == runs[1]
    assert len(log.histories) == 3  # fitted at the end of warm-up, then every 30 steps


def test_epsilon_schedule():
    assert epsilon_at(50, warmup=100, decay_steps=1000) == 1.0
    assert epsilon_at(600, warmup=100, decay_steps=1000) == pytest.approx(0.525)
    assert epsilon_at(5000, warmup=100, decay_steps=1000, end=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs, name", [
    ({"planning_updates": -1}, "planning_updates"),
    ({"planning_updates": 2.5}, "planning_updates"),
    ({"replay_updates": -3}, "replay_updates"),
    ({"rollout_length": 0}, "rollout_length"),
    ({"batch_size": 0}, "batch_size"),
    ({"gamma": 1.5}, "gamma"),
    ({"target_tau": -0.1}, "target_tau"),
    ({"lr": 0}, "lr"),
    ({"model_noise": -1.0}, "model_noise"),
    ({"value_expansion": -1}, "value_expansion"),
    ({"value_expansion": 3, "rollout_length": 2}, "rollout_length"),
    ({"planning_updates": 5, "model": None}, "model"),
    ({"model": object()}, "model"),
])
def test_bad_agent_arguments_name_the_argument(env, kwargs, name):
    kwargs = {"model": None, **kwargs}
    with pytest.raises(ValueError, match=name):
        Dyna.for_env(env, device="cpu", **kwargs)


def test_bad_training_arguments_name_the_argument(env):
    agent = Dyna.for_env(env, device="cpu")
    with pytest.raises(ValueError, match="warmup"):
        train_dyna(env, agent, steps=50, warmup=100, progress=False)
    with pytest.raises(ValueError, match="eval_every"):
        train_dyna(env, agent, steps=200, eval_every=0, progress=False)
    with pytest.raises(ValueError, match="agent"):
        train_dyna(env, lambda obs: 0, steps=200, progress=False)
    with pytest.raises(ValueError, match="fit_kwargs: .*epoch"):  # misspelt: caught up front
        train_dyna(env, agent, steps=600, fit_kwargs={"epoch": 5}, progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        agent.explore(env.reset(seed=0)[0], epsilon=1.5)
    with pytest.raises(ValueError, match="obs"):
        agent([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="action_spec"):
        Dyna.for_env(wm.make_env("Pendulum-v1"), device="cpu")


def _fake_log(returns: list[float], every: int = 100) -> wm.LearnLog:
    evals = [wm.Evaluation(every * (i + 1), [r] * 3) for i, r in enumerate(returns)]
    return wm.LearnLog(evals=evals)


def test_k_slider_redraws_the_chosen_run():
    import matplotlib.pyplot as plt

    from wmkit.notebook import draw_dyna_loop, dyna_explorer, plot_sample_efficiency

    runs = {0: _fake_log([10, 50, 120]), 5: _fake_log([30, 480]), 20: _fake_log([60, 200])}
    explorer = dyna_explorer(runs, others={"MPC": _fake_log([500])})
    assert explorer.renders == 1 and "k = 20" in explorer.readout.value
    explorer.controls["k"].value = 5
    assert explorer.renders == 2 and "solved at <b>200</b>" in explorer.readout.value
    lines = {line.get_label(): line for line in explorer.figure.axes[0].lines}
    assert lines["Dyna k=5 (solved at 200)"].get_linewidth() > lines["MPC (solved at 100)"] \
        .get_linewidth()
    with pytest.raises(ValueError, match="highlight"):
        plot_sample_efficiency({"a": runs[0]}, highlight="b")
    with pytest.raises(ValueError, match="runs"):
        dyna_explorer({})
    ax = draw_dyna_loop()
    assert len(ax.texts) >= 5
    plt.close("all")


def test_dyna_learns_cartpole_where_model_free_has_barely_started():
    """Seeded: within 1,200 real steps, on 3 greedy evaluation episodes, DQN (k=0) stays below
    150 (measured: best 75) while Dyna (k=5) gets past it: with value expansion H=10 to >= 300
    (measured: best 458), with 1-step transitions to >= 150 (measured: best 208; one-step Dyna
    is the chaotic one: 1,300-4,800 real steps to solve over 10 seeds, docs/RESULTS.md)."""
    best = {}
    for name, config in {"dqn": {}, "dyna5": {"planning_updates": 5},
                         "dyna5-mve10": {"planning_updates": 5, "value_expansion": 10}}.items():
        wm.seed_everything(0)
        env = wm.make_env("CartPole-v1", seed=0)
        model = wm.MLPWorldModel.for_env(env, device="cpu") if config else None
        agent = Dyna.for_env(env, model, seed=0, device="cpu", **config)
        log = train_dyna(env, agent, steps=1_200, seed=0, eval_every=100, eval_episodes=3,
                         target_return=475, progress=False)
        best[name] = max(e.mean_return for e in log.evals)
    assert best["dyna5"] >= 150 and best["dyna5-mve10"] >= 300 and best["dqn"] < 150, best
