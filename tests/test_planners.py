"""CEM, MPPI, MCTS and gradient planning on the planner base; the perfect Pendulum model.

Toy world models with a known best plan make "smarter search finds more" a claim that must
hold: at equal budgets CEM and MPPI beat random shooting on them, MCTS finds the action that
random shooting's averages miss, and gradient steps raise the imagined return.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.models.base import frozen
from wmkit.models.true_pendulum import TruePendulum
from wmkit.planners.cem import Categorical, Gaussian, cem_update, elite_count
from wmkit.planners.mcts import Tree, uct_scores
from wmkit.planners.mppi import mppi_update, mppi_weights
from wmkit.spaces import ActionSpec

DISCRETE = [wm.RandomShooting, wm.CEM, wm.MPPI, wm.MCTS]
BOX = [wm.RandomShooting, wm.CEM, wm.MPPI, wm.GradientPlanner]


# ------------------------------------------------------------------------------ toy models


class ToyModel:
    """A world model whose reward is a fixed function of the action sequence alone.

    `reward(actions (N, H[, A])) -> (N, H)`; observations stay zero, nothing ends. It counts
    the imagined transitions it is asked for (`transitions`).
    """

    obs_dim = 1
    device = torch.device("cpu")

    def __init__(self, action_spec: ActionSpec, reward: Any) -> None:
        self.action_spec, self.reward, self.transitions = action_spec, reward, 0

    def filter(self, state: Any, action: Any, obs: Any) -> torch.Tensor:
        return torch.zeros(1)

    def beliefs(self, buffer: Any, index: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(index), 1)

    def imagine(self, state: Any, actions: torch.Tensor, termination_fn: Any = None, *,
                horizon: int | None = None, check: bool = True) -> wm.Rollout:
        actions = self.action_spec.check_sequences(actions, values=check)
        n, h = actions.shape[:2]
        self.transitions += n * h
        rewards = self.reward(actions)
        observations = torch.zeros(n, h + 1, 1)
        return wm.Rollout(observations, actions, rewards, torch.zeros(n, h, dtype=torch.bool),
                          features=observations, done_logits=torch.full((n, h), -10.0))

    def value(self, sequence: torch.Tensor) -> float:
        """The return of one sequence (H[, A])."""
        return float(self.reward(sequence[None]).sum())


class Counting:
    """Any world model, counting the imagined transitions it is asked for (`transitions`)."""

    def __init__(self, model: Any) -> None:
        self.model, self.transitions = model, 0
        self.obs_dim, self.action_spec, self.device = model.obs_dim, model.action_spec, "cpu"

    def filter(self, state: Any, action: Any, obs: Any) -> Any:
        return self.model.filter(state, action, obs)

    def beliefs(self, buffer: Any, index: torch.Tensor) -> Any:
        return self.model.beliefs(buffer, index)

    def imagine(self, state: Any, actions: torch.Tensor, *args: Any, **kwargs: Any
                ) -> wm.Rollout:
        self.transitions += actions.shape[0] * actions.shape[1]
        return self.model.imagine(state, actions, *args, **kwargs)


BOX_SPEC = ActionSpec(False, 2, (-1.0, -1.0), (1.0, 1.0))
TARGET = torch.linspace(-0.8, 0.8, 10)[:, None] * torch.tensor([1.0, -0.5])  # (H=10, A=2)
PATTERN = torch.tensor([2, 0, 1, 1, 2, 0, 0, 2, 1, 0])  # (H=10,) of 3 actions


def box_toy() -> ToyModel:
    """Box: reward -|a_t - target_t|^2 per step; the best plan is TARGET, return 0."""
    return ToyModel(BOX_SPEC, lambda a: -((a - TARGET) ** 2).sum(-1))


def discrete_toy() -> ToyModel:
    """Discrete(3): reward 1 per step where a_t matches PATTERN; the best return is 10."""
    return ToyModel(ActionSpec(True, 3), lambda a: (a == PATTERN).float())


def trap_toy() -> ToyModel:
    """Discrete(3), greedy trap: action 0 first pays 2 at once; actions (1, 1) first pay 5
    one step later. Random continuations make (1, ...) worth 5/3 < 2 on average, so averaging
    returns by first action picks 0; a tree that looks one step deeper sees (1, 1) pay 5."""
    def reward(a: torch.Tensor) -> torch.Tensor:
        r = torch.zeros(a.shape, dtype=torch.float32)
        r[:, 0] = 2.0 * (a[:, 0] == 0)
        r[:, 1] = 5.0 * ((a[:, 0] == 1) & (a[:, 1] == 1))
        return r
    return ToyModel(ActionSpec(True, 3), reward)


@pytest.fixture(scope="module")
def cartpole() -> wm.TrueCartPole:
    return wm.TrueCartPole(device="cpu")


@pytest.fixture(scope="module")
def pendulum() -> TruePendulum:
    return TruePendulum(device="cpu")


TILTED = np.array([0.0, 0.0, 0.08, 0.4], dtype=np.float32)  # CartPole: pole falling right
HANGING = np.array([np.cos(2.5), np.sin(2.5), 0.3], dtype=np.float32)  # a Pendulum observation


# ------------------------------------------------------------------ every planner, one way


@pytest.mark.parametrize("planner_class", DISCRETE)
def test_discrete_planners_act_within_their_budget(planner_class, cartpole):
    counted = Counting(cartpole)
    for budget in (997, 2_000):
        counted.transitions = 0
        planner = planner_class(counted, budget=budget, seed=0)
        action = planner(TILTED)
        assert action in (0, 1)
        assert counted.transitions == planner.spent == planner.last_plan.spent
        assert budget * 0.8 <= planner.spent <= budget
    # Pole falling right: every planner pushes right.
    assert action == 1


@pytest.mark.parametrize("planner_class", BOX)
def test_box_planners_act_within_their_budget(planner_class):
    toy = box_toy()
    for budget in (1_001, 3_000):
        toy.transitions = 0
        planner = planner_class(toy, budget=budget, horizon=10, seed=0)
        action = planner(np.zeros(1, dtype=np.float32))
        assert action.shape == (2,) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1)
        assert toy.transitions == planner.spent == planner.last_plan.spent
        assert budget * 0.8 <= planner.spent <= budget


@pytest.mark.parametrize("planner_class", [wm.CEM, wm.MPPI, wm.MCTS, wm.GradientPlanner])
def test_same_seed_same_decisions(planner_class, cartpole, pendulum):
    model, obs, kwargs = (pendulum, HANGING, {"steps": 5}) if planner_class is \
        wm.GradientPlanner else (cartpole, TILTED, {})
    plans = []
    for seed in (3, 3, 4):
        planner = planner_class(model, budget=600, horizon=10, seed=seed, **kwargs)
        actions = [planner(obs) for _ in range(3)]
        plans.append((actions, planner.last_plan.rollout.actions, planner.last_plan.returns))
    assert np.array_equal(np.asarray(plans[0][0]), np.asarray(plans[1][0]))
    assert torch.equal(plans[0][1], plans[1][1]) and torch.equal(plans[0][2], plans[1][2])
    assert not torch.equal(plans[0][1], plans[2][1])  # another seed samples other candidates


# ------------------------------------------------------------------------------ warm starts


def shift(sequence: torch.Tensor) -> torch.Tensor:
    return torch.cat([sequence[1:], sequence[-1:]])


def test_cem_starts_from_the_previous_plan_shifted(pendulum, cartpole):
    planner = wm.CEM(pendulum, budget=2_000, horizon=10, seed=0)
    planner(HANGING)
    first = planner.last_plan.sequence
    planner(HANGING)
    assert torch.equal(planner.distributions[0].mean, shift(first))
    planner.reset()  # a new episode: no plan to start from, the middle of the bounds
    planner(HANGING)
    assert torch.equal(planner.distributions[0].mean, torch.zeros(10, 1))
    discrete = wm.CEM(cartpole, budget=2_000, horizon=10, seed=0)
    discrete(TILTED)
    mode = discrete.last_plan.sequence
    discrete(TILTED)
    start = discrete.distributions[0].probs  # half the mass on the shifted plan's actions
    assert torch.allclose(start.gather(1, shift(mode)[:, None]), torch.full((10, 1), 0.75))


def test_mppi_starts_from_the_previous_nominal_shifted(pendulum, cartpole):
    planner = wm.MPPI(pendulum, budget=2_000, horizon=10, seed=0)
    planner(HANGING)
    assert len(planner.nominals) == planner.iterations + 1
    first = planner.last_plan.sequence
    assert torch.equal(first, planner.nominals[-1])
    planner(HANGING)
    assert torch.equal(planner.nominals[0], shift(first))
    discrete = wm.MPPI(cartpole, budget=2_000, horizon=10, seed=0)
    discrete(TILTED)
    plan = discrete.last_plan.sequence
    assert torch.equal(plan, discrete.nominals[-1].argmax(-1))
    discrete(TILTED)  # the shifted plan, as a sure distribution; then candidate 0
    assert torch.equal(discrete.nominals[0].argmax(-1), shift(plan))
    assert torch.equal(discrete.nominals[0].max(-1).values, torch.ones(10))


def test_gradient_planner_starts_from_the_previous_plan_shifted(pendulum):
    planner = wm.GradientPlanner(pendulum, budget=2_000, horizon=10, seed=0)
    planner(HANGING)
    start = shift(planner.last_plan.sequence)
    planner(HANGING)
    state = pendulum.filter(None, None, HANGING)
    expected = pendulum.imagine(state, start[None]).returns[0]
    assert torch.allclose(planner.step_returns[0][0], expected, atol=1e-5)


# --------------------------------------------------------------- smarter search, must hold


@pytest.mark.parametrize("planner_class", [wm.CEM, wm.MPPI])
@pytest.mark.parametrize("toy", [box_toy, discrete_toy])
def test_cem_and_mppi_beat_random_shooting_at_equal_budget(planner_class, toy):
    for seed in range(3):
        model = toy()
        shooting = wm.RandomShooting(model, budget=3_000, horizon=10, seed=seed)
        smarter = planner_class(model, budget=3_000, horizon=10, seed=seed)
        shooting.plan(torch.zeros(1))
        smarter.plan(torch.zeros(1))
        best_sampled = float(shooting.last_plan.returns.max())
        assert model.value(smarter.last_plan.sequence) > best_sampled + 0.5


def test_mcts_finds_the_action_averages_miss():
    model = trap_toy()
    shooting = wm.RandomShooting(model, budget=3_000, horizon=4, seed=0)
    assert shooting.plan(torch.zeros(1)).action == 0  # the greedy trap, by averages
    mcts = wm.MCTS(model, budget=3_000, horizon=4, seed=0)
    plan = mcts.plan(torch.zeros(1))
    assert plan.action == 1
    assert plan.sequence[:2].tolist() == [1, 1]
    tree = mcts.tree
    root_children = tree.children(0)
    assert tree.action[root_children].tolist() == [0, 1, 2]
    best = root_children[1]
    assert tree.visits[best] == tree.visits[root_children].max()
    # Node (1, 1) is worth exactly 5: every rollout through it earns the 5 and nothing else.
    grandchild = [c for c in tree.children(best) if tree.action[c] == 1]
    assert grandchild and tree.value[grandchild[0]] == pytest.approx(5.0)


def test_gradient_steps_raise_the_imagined_return(pendulum):
    planner = wm.GradientPlanner(pendulum, budget=3_200, horizon=20, steps=20, lr=0.1,
                                 seed=0)
    planner(HANGING)
    first, last = planner.step_returns[0], planner.step_returns[-1]
    assert planner.candidates == 8 and len(planner.step_returns) == 20
    assert (last > first).float().mean() >= 0.75  # most candidates climbed
    assert float(last.max()) > float(first.max()) + 1.0


def test_gradient_planner_backpropagates_through_a_learned_model():
    wm.seed_everything(0)
    model = wm.MLPWorldModel.for_env(wm.make_env("Pendulum-v1"), hidden=32, device="cpu")
    planner = wm.GradientPlanner(model, budget=2_000, horizon=10, seed=0)
    planner(HANGING)
    assert float(planner.step_returns[-1].max()) > float(planner.step_returns[0].max())
    assert all(p.grad is None for p in model.parameters())  # the model's weights untouched


def test_gradient_planner_freezes_the_weights_only_while_it_searches():
    wm.seed_everything(0)
    model = wm.MLPWorldModel.for_env(wm.make_env("Pendulum-v1"), hidden=32, device="cpu")
    model.net[0].bias.requires_grad_(False)  # frozen by its owner: stays so
    asked, imagine = [], model.imagine

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append([p.requires_grad for p in model.parameters()])
        return imagine(*args, **kwargs)

    model.imagine = spy  # before the planner takes `imagine`
    wm.GradientPlanner(model, budget=2_000, horizon=10, seed=0)(HANGING)
    assert len(asked) == 20 and not any(any(flags) for flags in asked)  # one per step
    owned = [p.requires_grad for p in model.parameters()]
    assert owned.count(False) == 1 and not model.net[0].bias.requires_grad
    with pytest.raises(RuntimeError, match="mid-search"), frozen(model):
        raise RuntimeError("mid-search")
    assert [p.requires_grad for p in model.parameters()] == owned


# ------------------------------------------------------------------- the library functions


def test_cem_update_refits_to_the_elites():
    candidates = torch.tensor([[[0.0]], [[1.0]], [[2.0]], [[3.0]]])  # (N=4, H=1, A=1)
    scores = torch.tensor([0.0, 3.0, 1.0, 2.0])
    refit = cem_update(candidates, scores, 0.5)
    assert isinstance(refit, Gaussian)
    assert refit.mean.item() == pytest.approx(2.0) and refit.std.item() == pytest.approx(1.0)
    discrete = cem_update(torch.tensor([[0, 1], [2, 1], [2, 0]]), torch.tensor([1., 5., 4.]),
                          2 / 3, n_actions=3)
    assert isinstance(discrete, Categorical)
    assert discrete.probs.tolist() == [[0, 0, 1], [0.5, 0.5, 0]]
    assert elite_count(10, 0.01) == 1 and elite_count(10, 1.0) == 10
    with pytest.raises(ValueError, match="n_actions"):
        cem_update(torch.tensor([[0, 1]]), torch.tensor([1.0]), 0.5)
    with pytest.raises(ValueError, match="scores"):
        cem_update(candidates, torch.zeros(3), 0.5)


def test_mppi_update_weights_candidates_by_their_return():
    returns = torch.tensor([0.0, 1.0, 2.0])
    weights = mppi_weights(returns, 1.0)
    spread = returns.std(correction=0)
    expected = torch.softmax(returns / spread, 0)
    assert torch.allclose(weights, expected)
    assert mppi_weights(returns, 0.01).argmax() == 2 and mppi_weights(returns, 0.01)[2] > 0.99
    candidates = torch.tensor([[[0.0]], [[1.0]], [[2.0]]])
    assert mppi_update(candidates, returns, 1.0).item() == pytest.approx(
        float((expected * torch.tensor([0.0, 1.0, 2.0])).sum()))
    probs = mppi_update(torch.tensor([[0, 1], [1, 1], [1, 0]]), torch.tensor([5.0, 0., 0.]),
                        0.1, n_actions=2)
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    assert probs.argmax(-1).tolist() == [0, 1] and probs[0, 0] > 0.99


def test_uct_prefers_the_untried_and_the_good():
    scores = uct_scores(np.array([0.5, 0.5]), np.array([10.0, 1.0]), 11, 1.0)
    assert scores[1] > scores[0]
    scores = uct_scores(np.array([0.9, 0.1]), np.array([10.0, 10.0]), 20, 1.0)
    assert scores[0] > scores[1]
    one = uct_scores(0.1, 10.0, 20, 1.0)  # one child, as the search's walks score them
    assert isinstance(one, float) and one == pytest.approx(scores[1])
    assert isinstance(Tree(*(np.zeros(1),) * 6), Tree)


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("planner_class, kwargs, match", [
    (wm.CEM, {"budget": 0}, "budget"), (wm.CEM, {"budget": float("nan")}, "budget"),
    (wm.CEM, {"budget": 50, "horizon": 20}, "budget"),  # less than one sequence
    (wm.CEM, {"budget": 99, "iterations": 5, "horizon": 20}, "budget"),
    (wm.CEM, {"iterations": 0}, "iterations"), (wm.CEM, {"iterations": -2}, "iterations"),
    (wm.CEM, {"elite_fraction": 0}, "elite_fraction"),
    (wm.CEM, {"elite_fraction": 1.5}, "elite_fraction"),
    (wm.CEM, {"elite_fraction": float("nan")}, "elite_fraction"),
    (wm.CEM, {"momentum": 1.0}, "momentum"), (wm.CEM, {"initial_std": -1}, "initial_std"),
    (wm.MPPI, {"budget": -10}, "budget"), (wm.MPPI, {"budget": 60, "horizon": 20}, "budget"),
    (wm.MPPI, {"temperature": 0}, "temperature"),
    (wm.MPPI, {"temperature": float("nan")}, "temperature"),
    (wm.MPPI, {"iterations": 0}, "iterations"), (wm.MPPI, {"noise": -0.1}, "noise"),
    (wm.MPPI, {"noise": 1.5}, "noise"),  # a probability, for Discrete actions
    (wm.MCTS, {"budget": 30, "horizon": 20}, "budget"), (wm.MCTS, {"rounds": 0}, "rounds"),
    (wm.MCTS, {"exploration": 0}, "exploration"),
    (wm.MCTS, {"rollouts_per_child": 0}, "rollouts_per_child"),
    (wm.RandomShooting, {"budget": 0}, "budget"),
    (wm.RandomShooting, {"budget": 10, "horizon": 20}, "budget"),
    (wm.RandomShooting, {"budget": float("nan")}, "budget"),
    (wm.CEM, {"elite_fraction": -0.1}, "elite_fraction"),
    (wm.CEM, {"momentum": float("nan")}, "momentum"),
    (wm.MPPI, {"temperature": -1.0}, "temperature"), (wm.MPPI, {"iterations": 2.5}, "iterations"),
    (wm.MCTS, {"budget": float("nan")}, "budget"), (wm.MCTS, {"budget": -1}, "budget"),
    (wm.MCTS, {"exploration": float("nan")}, "exploration"),
])
def test_discrete_planners_refuse_bad_arguments(planner_class, kwargs, match, cartpole):
    with pytest.raises(ValueError, match=match):
        planner_class(cartpole, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0}, "lr"), ({"lr": -1e-3}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"steps": 0}, "steps"), ({"steps": -3}, "steps"), ({"budget": 300, "steps": 20}, "budget"),
    ({"budget": 0}, "budget"), ({"budget": float("nan")}, "budget"),
])
def test_gradient_planner_refuses_bad_arguments(kwargs, match, pendulum):
    with pytest.raises(ValueError, match=match):
        wm.GradientPlanner(pendulum, **kwargs)


def test_planners_refuse_actions_they_cannot_handle(cartpole, pendulum):
    with pytest.raises(ValueError, match="model: MCTS needs Discrete"):
        wm.MCTS(pendulum, budget=1_000)
    with pytest.raises(ValueError, match="model: GradientPlanner needs Box"):
        wm.GradientPlanner(cartpole, budget=1_000)
    with pytest.raises(ValueError, match="model"):
        wm.CEM("not a model", budget=1_000)
    assert wm.MPPI(pendulum, budget=1_000, noise=1.5).noise == 1.5  # a std: fine for Box


# -------------------------------------------------------------- the perfect Pendulum model


def test_true_pendulum_matches_gymnasium_for_a_whole_episode(pendulum):
    env = wm.make_env("Pendulum-v1", seed=0)
    obs, _ = env.reset(seed=3)
    actions = np.random.default_rng(0).uniform(-2, 2, size=(200, 1)).astype(np.float32)
    real_obs, real_rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        real_obs.append(obs)
        real_rewards.append(reward)
    rollout = pendulum.imagine(pendulum.filter(None, None, real_obs[0]),
                               torch.tensor(actions)[None])
    assert np.allclose(rollout.observations[0].numpy(), np.array(real_obs), atol=1e-5)
    assert np.allclose(rollout.rewards[0].numpy(), np.array(real_rewards), atol=1e-4)
    assert not rollout.dones.any() and truncated and not terminated
    # The generic loop (a policy) gives the same numbers as the sequence loop.
    steps = iter(torch.tensor(actions))
    by_policy = pendulum.imagine(pendulum.filter(None, None, real_obs[0]),
                                 lambda imagined: next(steps)[None], horizon=200)
    assert torch.allclose(by_policy.observations, rollout.observations, atol=1e-6)
    assert isinstance(pendulum, wm.WorldModel)


def test_true_pendulum_for_env_and_beliefs():
    env = wm.make_env("Pendulum-v1", seed=0, g=9.81)
    model = TruePendulum.for_env(env, device="cpu")
    assert model.g == 9.81 and model.action_spec == ActionSpec.from_space(env.action_space)
    buffer = wm.collect(env, steps=20, seed=0)
    assert torch.equal(model.beliefs(buffer, torch.tensor([3, 5])),
                       buffer.tensors()["obs"][[3, 5]])
    with pytest.raises(ValueError, match="env"):
        TruePendulum.for_env(wm.make_env("CartPole-v1"))
    with pytest.raises(ValueError, match="state"):
        model.imagine(torch.zeros(3, 3), torch.zeros(2, 4, 1))


# ------------------------------------------------------- notebook 09's drawings and widgets


@pytest.fixture(scope="module")
def nbp():
    import matplotlib

    matplotlib.use("Agg")
    from wmkit.notebook import planners

    return planners


def test_budget_explorer_adds_one_point_per_new_choice(nbp, pendulum):
    env = wm.make_env("Pendulum-v1", seed=0)
    explorer = nbp.budget_explorer(pendulum, env, planners=(wm.RandomShooting, wm.CEM),
                                   budgets=(1_000, 2_000), budget=1_000, max_steps=4)
    explorer.controls["planner"].value = "CEM"
    explorer.controls["budget"].value = 2_000
    explorer.controls["planner"].value = "RandomShooting"
    explorer.controls["budget"].value = 1_000  # seen before: no new episode
    trials = explorer.data["trials"]
    assert sorted(trials) == [("CEM", 1_000), ("CEM", 2_000), ("RandomShooting", 1_000),
                              ("RandomShooting", 2_000)]
    last = explorer.data["last"]
    assert (last.planner, last.budget, last.steps) == ("RandomShooting", 1_000, 4)
    assert all(t.spent <= t.budget for t in trials.values())
    gids = {line.get_gid() for line in explorer.figure.axes[0].lines}
    assert {"planner:RandomShooting", "planner:CEM"} <= gids
    with pytest.raises(ValueError, match="budget"):
        nbp.budget_explorer(pendulum, env, budgets=(1_000,), budget=5)


def test_budget_trial_is_repeatable(nbp, pendulum):
    env = wm.make_env("Pendulum-v1", seed=0)
    planner = wm.CEM(pendulum, budget=1_000, seed=0)
    first = wm.analysis.budget_trial(planner, env, seed=2, max_steps=5)
    again = wm.analysis.budget_trial(planner, env, seed=2, max_steps=5)
    assert first.episode_return == again.episode_return and first.steps == 5


def test_draw_budget_curve_takes_benchmark_rows(nbp):
    rows = [{"planner": "cem", "budget": b, "returns": [-200.0, -150.0], "ms_per_decision": 3.0}
            for b in (1_000, 10_000)]
    ax = nbp.draw_budget_curve(rows)
    (line,) = [line for line in ax.lines if line.get_gid() == "planner:cem"]
    assert np.allclose(line.get_ydata(), [-175.0, -175.0])
    with pytest.raises(ValueError, match="points"):
        nbp.draw_budget_curve([{"planner": "cem"}])
    with pytest.raises(ValueError, match="points"):
        nbp.draw_budget_curve([])


def test_search_explorer_shows_cem_sharpen_and_mppi_move(nbp):
    cem = wm.CEM(box_toy(), budget=2_000, horizon=10, seed=0)
    with pytest.raises(ValueError, match="planned"):
        nbp.search_explorer(cem)
    cem.plan(torch.zeros(1))
    explorer = nbp.search_explorer(cem)
    final = explorer.data["spread"]
    explorer.controls["iteration"].value = 0
    assert explorer.data["spread"] > 3 * final  # the distribution sharpened
    lines = {line.get_gid() for line in explorer.figure.axes[0].lines}
    assert "iteration:0" in lines and "iteration:1" not in lines
    mppi = wm.MPPI(box_toy(), budget=2_000, horizon=10, seed=0)
    mppi.plan(torch.zeros(1))
    explorer = nbp.search_explorer(mppi)
    assert np.allclose(explorer.data["nominal"], mppi.nominals[-1].numpy())
    explorer.controls["iteration"].value = 0
    assert np.allclose(explorer.data["nominal"], 0.0)  # the middle of the bounds
    with pytest.raises(ValueError, match="planner"):
        nbp.search_explorer(wm.RandomShooting(box_toy(), budget=100, horizon=10))


def test_draw_tree_and_gradient_steps(nbp, cartpole, pendulum):
    mcts = wm.MCTS(cartpole, budget=2_000, seed=0)
    with pytest.raises(ValueError, match="planned"):
        nbp.draw_tree(mcts)
    mcts(TILTED)
    ax = nbp.draw_tree(mcts, max_depth=3)
    (nodes,) = [c for c in ax.collections if c.get_gid() == "nodes"]
    assert len(nodes.get_offsets()) == int((mcts.tree.depth <= 3).sum())
    gradient = wm.GradientPlanner(pendulum, budget=1_600, horizon=10, steps=40, seed=0)
    gradient(HANGING)
    ax = nbp.draw_gradient_steps(gradient)
    assert [line.get_gid() for line in ax.lines] == [f"candidate:{c}" for c in range(4)]
    assert len(ax.lines[0].get_ydata()) == gradient.steps


# ------------------------------------------------------------------------------ exercise 07


def test_exercise_07_gives_nothing_for_the_library_update_and_loses_points_for_a_bug():
    from wmkit import grading

    def wrapper(candidates, scores, elite_fraction, n_actions=None):
        return cem_update(candidates, scores, elite_fraction, n_actions)

    report = grading.check("07_cem_update", wrapper, seed=0)
    assert report.score == 0 and report.max_score == 8
    assert all(any(f.startswith("library: ") for f in r.flags) for r in report.results)

    def sample_std(candidates, scores, elite_fraction, n_actions=None):  # std with K - 1
        if scores.shape != candidates.shape[:1]:
            raise ValueError("scores: one per candidate")
        k = max(1, round(elite_fraction * len(scores)))
        elites = candidates[scores.argsort(descending=True)[:k]]
        if n_actions is None:
            return Gaussian(elites.mean(0), elites.std(0))
        return Categorical(torch.nn.functional.one_hot(elites, n_actions).float().mean(0))

    with warnings.catch_warnings():  # one elite: torch warns that its sample std is NaN
        warnings.simplefilter("ignore", UserWarning)
        report = grading.check("07_cem_update", sample_std, seed=0)
    lost = {r.check for r in report.results if r.points < r.max_points}
    assert report.score == 6 and lost == {
        "Box: the std of the elites (population std, per step and dimension)",
        "at least one elite, however small the fraction"}, report


def test_the_latency_benchmark_times_planners_against_their_matmuls(load_benchmark, capsys):
    load_benchmark("planners").latency(reps=1, budgets=[1_000], planners=["mcts", "gradient"])
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| mcts", "| gradient"))]
    assert len(rows) == 2  # only the planners asked for, each on its own env
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == "1,000" and all(float(cell) > 0 for cell in cells[3:])
