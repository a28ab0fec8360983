"""The Dreamer-style actor-critic: λ-returns, return scale, slow critic, REINFORCE, inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.agents import ActorCritic, ReturnScale, lambda_returns, reach_weights
from wmkit.agents.returns import continue_probabilities
from wmkit.models.base import Imagines

# ------------------------------------------------------------------------------ a toy model


class Bandit(Imagines):
    """A one-number world where action 1 pays 1 and action 0 pays 0, and nothing ever ends."""

    obs_dim = 1
    action_spec = wm.ActionSpec(discrete=True, n=2)
    device = torch.device("cpu")

    def filter(self, state: Any, action: Any, obs: Any) -> torch.Tensor:
        return torch.as_tensor(obs, dtype=torch.float32).reshape(1)

    def beliefs(self, buffer: wm.ReplayBuffer, index: torch.Tensor) -> torch.Tensor:
        return buffer[index]["obs"]

    def initial(self, state: torch.Tensor, n: int) -> torch.Tensor:
        return state.reshape(-1, 1).expand(n, 1)

    def step(self, latent: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        return latent, actions.float(), torch.full((len(latent),), -10.0), None

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent

    def features(self, latent: torch.Tensor) -> torch.Tensor:
        return latent


def bandit_buffer(rows: int = 32) -> wm.ReplayBuffer:
    buffer = wm.ReplayBuffer(1, Bandit.action_spec, capacity=rows)
    for i in range(rows):
        buffer.add([i / rows], i % 2, float(i % 2), [i / rows], False)
    return buffer


def p_action_one(agent: ActorCritic) -> float:
    with torch.no_grad():
        return torch.softmax(agent.actor(torch.tensor([[0.5]])), -1)[0, 1].item()


# ------------------------------------------------------------------------------ λ-returns


def test_lambda_returns_hand_computed() -> None:
    rewards = torch.tensor([[1.0, 1.0]])
    values = torch.tensor([[0.0, 2.0, 4.0]])
    continues = torch.tensor([[1.0, 0.5]])
    # R_1 = 1 + 0.9 * 0.5 * (0.5 * 4 + 0.5 * 4) = 2.8; R_0 = 1 + 0.9 * (0.5 * 2 + 0.5 * 2.8)
    expected = torch.tensor([[3.16, 2.8]])
    assert torch.allclose(lambda_returns(rewards, values, continues, 0.9, 0.5), expected)


def n_step_return(r: torch.Tensor, v: torch.Tensor, c: torch.Tensor, gamma: float, t: int,
                  n: int) -> torch.Tensor:
    """G^n_t = sum_k (prod_{j<k} gamma c_{t+j}) r_{t+k} + (prod_{j<n} gamma c_{t+j}) v_{t+n}."""
    total, discount = torch.zeros(len(r)), torch.ones(len(r))
    for k in range(n):
        total = total + discount * r[:, t + k]
        discount = discount * gamma * c[:, t + k]
    return total + discount * v[:, t + n]


def test_lambda_returns_are_the_weighted_mix_of_n_step_returns() -> None:
    # The definition (Sutton & Barto 12.1, truncated at the horizon):
    # R_t = (1 - lam) sum_{n=1}^{H-t-1} lam^(n-1) G^n_t + lam^(H-t-1) G^(H-t)_t.
    generator = torch.Generator().manual_seed(0)
    n, horizon, gamma, lam = 5, 6, 0.9, 0.7
    r = torch.randn(n, horizon, generator=generator)
    v = torch.randn(n, horizon + 1, generator=generator)
    c = torch.rand(n, horizon, generator=generator)
    got = lambda_returns(r, v, c, gamma, lam)
    for t in range(horizon):
        left = horizon - t
        mix = sum((1 - lam) * lam ** (k - 1) * n_step_return(r, v, c, gamma, t, k)
                  for k in range(1, left))
        expected = mix + lam ** (left - 1) * n_step_return(r, v, c, gamma, t, left)
        assert torch.allclose(got[:, t], expected, atol=1e-5), t
    # The two ends: lam = 0 is the one-step TD target, lam = 1 the Monte-Carlo return.
    td = r + gamma * c * v[:, 1:]
    assert torch.allclose(lambda_returns(r, v, c, gamma, 0.0), td, atol=1e-6)
    monte_carlo = n_step_return(r, v, c, gamma, 0, horizon)
    assert torch.allclose(lambda_returns(r, v, c, gamma, 1.0)[:, 0], monte_carlo, atol=1e-5)


def test_lambda_returns_refuse_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="values"):
        lambda_returns(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), 0.9, 0.9)
    with pytest.raises(ValueError, match="continues"):
        lambda_returns(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 4), 0.9, 0.9)


def test_continuation_is_calibrated_and_reach_weights_multiply() -> None:
    # With a BCE weight w, logit log(w) means "ends with probability 1/2".
    w = 20.0
    assert continue_probabilities(torch.tensor(np.log(w)), w).item() == pytest.approx(0.5)
    assert continue_probabilities(torch.tensor(0.0), w).item() == pytest.approx(w / (1 + w))
    weights = reach_weights(torch.tensor([[0.5, 0.5, 0.2]]))
    assert torch.allclose(weights, torch.tensor([[1.0, 0.5, 0.25]]))


# ------------------------------------------------------------------------------ return scale


def test_return_scale_is_the_ema_of_the_percentile_spread_floored_at_one() -> None:
    scale = ReturnScale(decay=0.5)
    assert scale.scale.item() == 1.0  # before any batch: no rescaling
    assert scale.update(torch.arange(101.0)).item() == pytest.approx(90.0)  # P95 - P05
    # The next batch's spread is 9: the EMA moves halfway.
    assert scale.update(torch.arange(101.0) / 10).item() == pytest.approx((90 + 9) / 2)
    small = ReturnScale(decay=0.0)
    assert small.update(torch.linspace(0, 0.1, 50)).item() == 1.0  # never scales up
    with pytest.raises(ValueError, match="return_decay"):
        ReturnScale(decay=1.0)


# ------------------------------------------------------------------------------ the updates


def test_reinforce_moves_towards_the_paying_action() -> None:
    torch.manual_seed(0)
    agent = ActorCritic(Bandit(), horizon=3, starts=64, progress=False, entropy_scale=0.0,
                        actor_lr=1e-2)
    assert agent.gradient == "reinforce"
    before = p_action_one(agent)
    assert before == pytest.approx(0.5)  # the zero-initialised head starts uniform
    # The critic first learns that every state is worth about half a reward per step: then
    # action 1 has a positive advantage and action 0 a negative one.
    agent.train(bandit_buffer(), updates=20, seed=0)
    assert p_action_one(agent) > before + 0.1
    stats = agent.last_train if len(agent.last_train) else agent.train(bandit_buffer(), 5, 1)
    assert stats.imagined_return[-1] > stats.imagined_return[0]


def test_the_target_critic_lags_the_critic() -> None:
    torch.manual_seed(0)
    agent = ActorCritic(Bandit(), horizon=3, starts=16, target_tau=0.1, progress=False)
    target_before = [p.clone() for p in agent.target_critic.parameters()]
    agent.train(bandit_buffer(), updates=1, seed=0)
    for old, target, online in zip(target_before, agent.target_critic.parameters(),
                                   agent.critic.parameters()):
        assert torch.allclose(target, 0.9 * old + 0.1 * online, atol=1e-6)
    moved = [not torch.equal(t, o) for t, o in zip(agent.target_critic.parameters(),
                                                    agent.critic.parameters())]
    assert any(moved)  # the critic moved; its slow copy followed a tenth of the way
    assert not any(p.requires_grad for p in agent.target_critic.parameters())


def test_after_fit_runs_updates_per_new_real_step_with_carry() -> None:
    torch.manual_seed(0)
    agent = ActorCritic(Bandit(), horizon=2, starts=8, updates_per_step=0.3, progress=False)
    buffer = bandit_buffer(10)
    agent.after_fit(buffer, seed=0)
    assert agent.updates == 3  # 0.3 x 10 rows
    for _ in range(5):
        buffer.add([0.0], 1, 1.0, [0.0], False)
    agent.after_fit(buffer, seed=1)
    assert agent.updates == 4  # 0.3 x 5 = 1.5: one now, half an update carried over
    agent.after_fit(buffer, seed=2)  # no new rows: nothing to do
    assert agent.updates == 4


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name, value", [
    ("horizon", 0), ("horizon", 2.5), ("lam", 1.5), ("lam", -0.1), ("discount", 0.0),
    ("discount", 1.01), ("entropy_scale", -1e-3), ("entropy_scale", float("nan")),
    ("actor_lr", 0.0), ("critic_lr", -1e-3), ("actor_lr", 1.5), ("starts", 0),
    ("updates_per_step", -1.0), ("target_tau", 0.0), ("return_decay", 1.0),
    ("gradient", "backprop"), ("discount", float("nan")), ("lam", True), ("critic_lr", 1.0),
    ("horizon", -3), ("hidden", 0), ("layers", 0), ("entropy_scale", "0.1"),
])
def test_out_of_range_arguments_are_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        ActorCritic(Bandit(), **{name: value})


class NoContinue(Bandit):
    def imagine(self, *args: Any, **kwargs: Any) -> wm.Rollout:
        return replace(super().imagine(*args, **kwargs), done_logits=None)


class NoReward(Bandit):
    def imagine(self, *args: Any, **kwargs: Any) -> wm.Rollout:
        return replace(super().imagine(*args, **kwargs), rewards=None)


class NoFeatures(Bandit):
    def imagine(self, *args: Any, **kwargs: Any) -> wm.Rollout:
        return replace(super().imagine(*args, **kwargs), features=None)


@pytest.mark.parametrize("model, lacks", [(NoContinue(), "continuation"),
                                          (NoReward(), "rewards"), (NoFeatures(), "features")])
def test_a_model_without_what_the_agent_needs_is_refused(model: Any, lacks: str) -> None:
    with pytest.raises(ValueError, match=f"model: .*{lacks}"):
        ActorCritic(model)
    with pytest.raises(ValueError, match="model: expected a world model"):
        ActorCritic(wm.collect)  # not a world model at all


def test_dynamics_gradients_need_box_actions_and_bad_buffers_are_refused() -> None:
    with pytest.raises(ValueError, match="gradient: 'dynamics'"):
        ActorCritic(Bandit(), gradient="dynamics")
    agent = ActorCritic(Bandit(), progress=False)
    with pytest.raises(ValueError, match="buffer"):
        agent.train(wm.ReplayBuffer(1, Bandit.action_spec), updates=1)
    with pytest.raises(ValueError, match="buffer"):
        agent.train(wm.ReplayBuffer(3, Bandit.action_spec).__class__.for_env(
            wm.make_env("CartPole-v1")), updates=1)
    with pytest.raises(ValueError, match="updates"):
        agent.train(bandit_buffer(), updates=0)


# ------------------------------------------------------------------------------ real models


def test_learning_in_the_dream_improves_the_imagined_return(
        trained_mlp: wm.MLPWorldModel, cartpole_buffer: wm.ReplayBuffer) -> None:
    starts = torch.arange(0, 2000, 40)  # 50 real states: the same dreams before and after
    wm.seed_everything(0)
    agent = ActorCritic(trained_mlp, horizon=15, starts=64, progress=False)
    agent.done_weight = wm.done_weight(cartpole_buffer)
    before = agent.expected_return(agent.dream(cartpole_buffer, starts, horizon=30)).mean()
    stats = agent.train(cartpole_buffer, updates=30, seed=0)
    after = agent.expected_return(agent.dream(cartpole_buffer, starts, horizon=30)).mean()
    assert len(stats) == 30 and agent.updates == 30
    # A random-data model: the greedy untrained actor (always "left") topples in ~9 steps.
    assert after > before + 3, (before, after)
    assert stats.critic_loss.isfinite().all()


def test_learn_trains_the_agent_after_every_fit_and_it_acts(
        cartpole_buffer: wm.ReplayBuffer) -> None:
    env = wm.make_env("CartPole-v1", seed=0)
    wm.seed_everything(0)
    model = wm.MLPWorldModel.for_env(env, hidden=64, device="cpu")
    rows_at_fits: list[int] = []
    exploring: list[bool] = []

    class Recording(ActorCritic):
        def after_fit(self, buffer: wm.ReplayBuffer, seed: int = 0) -> None:
            rows_at_fits.append(len(buffer))
            exploring.append(self.explore)
            super().after_fit(buffer, seed)

    agent = Recording(model, horizon=8, starts=32, updates_per_step=0.125, progress=False)
    log = wm.learn(env, agent, steps=260, seed=0, warmup=200, epochs=3, progress=False)
    assert len(rows_at_fits) == len(log.histories) >= 2  # after every fit
    assert agent.updates == rows_at_fits[-1] // 8  # 0.125 per real step
    assert isinstance(agent, wm.Planner) and all(exploring) and not agent.explore
    assert agent.done_weight > 5  # read from the buffer (random CartPole ends ~1 step in 20)
    result = wm.evaluate(env, agent, episodes=1, seed=5)
    assert result.returns[0] >= 8  # it acted with valid actions for a whole episode


def test_the_rssm_dreams_in_its_latent_space() -> None:
    env = wm.make_env("CartPole-v1", seed=0, hide_velocities=True)
    buffer = wm.collect(env, steps=300, seed=0)
    wm.seed_everything(0)
    model = wm.RSSMWorldModel.for_env(env, deter=32, stoch=8, hidden=32, device="cpu")
    wm.fit(model, buffer, epochs=2, length=16, seed=0, progress=False)
    agent = ActorCritic(model, horizon=5, starts=16, updates_per_step=0.02, progress=False)
    assert agent.actor.net[0].in_features == 40  # reads (h, z), not the 2 observed numbers
    agent.after_fit(buffer, seed=0)
    assert agent.updates == 6 and agent.last_train.critic_loss.isfinite().all()
    dream = agent.dream(buffer, torch.tensor([0, 50, 299]), horizon=7)
    assert dream.features.shape == (3, 8, 40) and dream.observations.shape == (3, 8, 2)
    assert wm.evaluate(env, agent, episodes=1, seed=1).returns[0] >= 8


def test_box_actions_learn_through_the_model_which_keeps_its_weights() -> None:
    env = wm.make_env("Pendulum-v1", seed=0)
    buffer = wm.collect(env, steps=200, seed=0)
    wm.seed_everything(0)
    model = wm.MLPWorldModel.for_env(env, hidden=32, device="cpu")
    wm.fit(model, buffer, epochs=2, seed=0, progress=False)
    weights = [p.clone() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    agent = ActorCritic(model, horizon=5, starts=16, progress=False)
    assert agent.gradient == "dynamics"
    actor_before = [p.clone() for p in agent.actor.parameters()]
    agent.train(buffer, updates=2, seed=0)
    for before, p in zip(grads, model.parameters()):  # the model collected no gradients
        assert (p.grad is None) if before is None else torch.equal(before, p.grad)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    action = agent(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    assert ActorCritic(model, gradient="reinforce", progress=False).gradient == "reinforce"


def test_seeded_training_and_acting_repeat_exactly(trained_mlp: wm.MLPWorldModel,
                                                   cartpole_buffer: wm.ReplayBuffer) -> None:
    def run() -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
        wm.seed_everything(3)
        agent = ActorCritic(trained_mlp, horizon=5, starts=32, explore=True, progress=False)
        stats = agent.train(cartpole_buffer, updates=3, seed=7)
        agent.reseed(11)
        actions = [agent(cartpole_buffer[i]["obs"].numpy()) for i in range(20)]
        return [p.detach().clone() for p in agent.actor.parameters()], stats.actor_loss, actions

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first[0], second[0]))
    assert torch.equal(first[1], second[1]) and first[2] == second[2]
    assert len(set(first[2])) == 2  # exploring: sampled, both actions appear


def test_acting_greedily_is_deterministic_and_sampling_is_reseeded(
        trained_mlp: wm.MLPWorldModel) -> None:
    wm.seed_everything(0)
    agent = ActorCritic(trained_mlp, progress=False)
    with torch.no_grad():  # a policy that is 50/50 everywhere
        agent.actor.net[-1].bias.copy_(torch.tensor([0.0, 0.0]))
    obs = np.array([0.0, 0.1, 0.0, -0.1], dtype=np.float32)
    greedy = {agent(obs) for _ in range(20)}
    assert len(greedy) == 1
    agent.explore = True
    agent.reseed(0)
    first = [agent(obs) for _ in range(20)]
    agent.reseed(0)
    assert [agent(obs) for _ in range(20)] == first and len(set(first)) == 2


# ------------------------------------------------------------------------------ notebook 10


def test_the_dream_explorer_redraws_on_the_horizon_slider(
        trained_mlp: wm.MLPWorldModel, cartpole_buffer: wm.ReplayBuffer) -> None:
    from wmkit.notebook.dreamer import actor_dream_explorer, draw_actor_dreams, plot_decision_cost

    agent = ActorCritic(trained_mlp, progress=False)
    agent.done_weight = wm.done_weight(cartpole_buffer)
    explorer = actor_dream_explorer(agent, cartpole_buffer, rows=[0, 10], max_horizon=30, horizon=5)
    assert explorer.data["horizon"] == 5 and explorer.data["expected_return"].shape == (2,)
    short = explorer.data["expected_return"]
    explorer.controls["horizon"].value = 20
    assert explorer.renders == 2 and explorer.data["horizon"] == 20
    # CartPole pays ~1 per step: a longer dream of the same actor expects at least as much.
    assert (explorer.data["expected_return"] >= short - 1e-4).all()
    assert len(explorer.figure.axes) == 2 + 1 + 1  # two dreams, values and their twin axis
    with pytest.raises(ValueError, match="rows"):
        actor_dream_explorer(agent, cartpole_buffer, rows=[len(cartpole_buffer)])
    with pytest.raises(ValueError, match="horizon"):
        actor_dream_explorer(agent, cartpole_buffer, rows=[0], max_horizon=30, horizon=31)
    dream = agent.dream(cartpole_buffer, [0, 1, 2], horizon=4)
    assert len(draw_actor_dreams(dream, agent.score(dream), max_dreams=2).axes) == 2
    ax = plot_decision_cost({"actor": 0.1, "MPC": 20.0})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["actor", "MPC"]
    with pytest.raises(ValueError, match="ms_per_decision"):
        plot_decision_cost({"actor": 0.0})
