"""The LSTM and the windowed Transformer world models: shapes, memory, training, use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.analysis import compounding_error, fit_probe, hidden_twin
from wmkit.models.recurrent import MemoryState

SMALL = {wm.LSTMWorldModel: {"hidden": 32}, wm.TransformerWorldModel: {"hidden": 32, "window": 4}}
MODELS = list(SMALL)


def hidden_env(**kwargs) -> wm.make_env:
    return wm.make_env("CartPole-v1", hide_velocities=True, **kwargs)


def small(cls, **kwargs):
    torch.manual_seed(0)
    return cls.for_env(hidden_env(), device="cpu", **{**SMALL[cls], **kwargs})


@pytest.fixture(scope="module")
def data() -> dict[str, wm.ReplayBuffer]:
    """Random CartPole (seed 0, 1,000 steps; seed 1, 600 held-out steps): full buffers and
    their velocity-hidden twins."""
    full = wm.collect(wm.make_env("CartPole-v1", seed=0), steps=1_000, seed=0)
    test = wm.collect(wm.make_env("CartPole-v1", seed=1), steps=600, seed=1)
    return {"full": full, "hidden": hidden_twin(full), "full_test": test,
            "test": hidden_twin(test)}


@pytest.fixture(scope="module")
def trained(data) -> dict[type, torch.nn.Module]:
    """Each model fitted briefly on the hidden buffer (seeded)."""
    models = {}
    for cls in MODELS:
        model = small(cls)
        wm.fit(model, data["hidden"], epochs=8, batch_size=128, length=16, lr=3e-3, seed=0,
               progress=False)
        models[cls] = model
    return models


# -- the interfaces ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_implements_the_written_down_interfaces(cls) -> None:
    model = small(cls)
    assert isinstance(model, wm.WorldModel) and isinstance(model, wm.TrainableModel)
    assert model.batches == "sequences" and "LSTM" in wm.LSTMWorldModel.__name__


@pytest.mark.parametrize("cls", MODELS)
def test_filter_imagine_and_beliefs_shapes(cls, data) -> None:
    model = small(cls)
    state = model.filter(None, None, np.array([0.01, -0.02], dtype=np.float32))
    assert isinstance(state, MemoryState) and len(state) == 1
    assert state.obs.shape == (1, 2) and state.features.shape == (1, 32)
    state = model.filter(state, 1, [0.02, -0.03])
    rollout = model.imagine(state, torch.randint(2, (7, 5)))
    assert rollout.observations.shape == (7, 6, 2) and rollout.features.shape == (7, 6, 32)
    assert rollout.rewards.shape == (7, 5) and rollout.dones.dtype == torch.bool
    assert rollout.disagreement is None and rollout.done_logits.shape == (7, 5)
    beliefs = model.beliefs(data["hidden"], torch.tensor([0, 5, 17]))
    assert len(beliefs) == 3 and model.features(beliefs).shape == (3, 32)
    many = model.imagine(beliefs, torch.randint(2, (3, 4)))  # one rollout per belief
    assert many.observations.shape == (3, 5, 2)
    assert torch.equal(many.observations[:, 0], data["hidden"][[0, 5, 17]]["obs"])


@pytest.mark.parametrize("cls", MODELS)
def test_beliefs_equal_filtering_the_episode(cls, data) -> None:
    """`beliefs` (one batched pass over windows, as in training) gives what `filter` gives
    step by step, across an episode start; and imagining from both gives the same dream."""
    model = small(cls)
    rows = data["hidden"][torch.arange(40)]
    assert rows["is_first"][1:].any()  # random episodes are short: the rows cross a start
    state, previous, features = None, None, []
    for t in range(40):
        if rows["is_first"][t]:
            state = None
        state = model.filter(state, previous, rows["obs"][t])
        previous = rows["action"][t]
        features.append(state.features)
    beliefs = model.beliefs(data["hidden"], torch.arange(40))
    # The Transformer never reads further back than `burn_in` rows: exact everywhere. The
    # LSTM is exact where its episode began within `burn_in` rows; further back, its memory of
    # the rows `beliefs` leaves out has faded.
    index = torch.arange(40)
    since = index - torch.cummax(torch.where(rows["is_first"], index, 0), 0).values
    exact = (since < model.burn_in) | (cls is wm.TransformerWorldModel)
    assert (since >= model.burn_in).any()  # some rows test the long memory
    filtered = torch.cat(features)
    torch.testing.assert_close(beliefs.features[exact], filtered[exact], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(beliefs.features, filtered, atol=1e-3, rtol=1e-3)
    actions = torch.randint(2, (1, 6), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.imagine(beliefs[39:40], actions).observations,
                               model.imagine(state, actions).observations, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", MODELS)
def test_memory_changes_the_prediction(cls) -> None:
    """The same last observation after different pasts: different predictions (a Markov
    model would give the same)."""
    model = small(cls)
    last = [0.0, 0.0]
    a = model.filter(model.filter(None, None, [0.0, -0.05]), 1, last)
    b = model.filter(model.filter(None, None, [0.0, 0.05]), 0, last)
    actions = torch.zeros(1, 3, dtype=torch.long)
    assert not torch.allclose(model.imagine(a, actions).observations,
                              model.imagine(b, actions).observations)


@pytest.mark.parametrize("cls", MODELS)
def test_imagine_with_a_policy_and_gradients(cls) -> None:
    model = small(cls)
    state = model.filter(None, None, [0.0, 0.01])
    seen = []

    def policy(imagined: wm.models.Imagined) -> torch.Tensor:
        seen.append(imagined.features.shape)
        return (imagined.observation[:, 1] > 0).long()

    rollout = model.imagine(model.initial(state, 4), policy, horizon=3)
    assert rollout.actions.shape == (4, 3) and seen == [(4, 32)] * 3
    rollout = model.imagine(state, torch.ones(2, 3, dtype=torch.long))
    rollout.observations.sum().backward()  # no no_grad inside imagine
    assert model.head[0].weight.grad is not None


# -- training and using them --------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_fit_trains_on_sequences(cls, data, trained) -> None:
    model = trained[cls]
    losses = model.loss(data["test"].sample_sequences(8, 16, torch.Generator().manual_seed(0)))
    assert set(losses) == {"delta", "reward", "done", "total"}
    untrained = small(cls)
    untrained.set_normalizer(data["hidden"].stats())
    before = untrained.loss(data["test"].sample_sequences(8, 16,
                                                          torch.Generator().manual_seed(0)))
    assert losses["delta"] < before["delta"] / 3


@pytest.mark.parametrize("cls", MODELS)
def test_belief_holds_the_hidden_velocities(cls, data, trained) -> None:
    """A linear probe reads (x_dot, theta_dot) off the features on held-out episodes; from
    the observation alone it cannot. (Not a learning claim: an untrained LSTM's features
    already score ~0.96, a memory of the last steps holds the velocities almost linearly; the
    learning claim is the open-loop error below.)"""
    model, test = trained[cls], data["test"]
    velocities = data["full_test"].tensors()["obs"][:, [1, 3]]
    starts = test.tensors()["is_first"].nonzero().flatten()
    split = int(starts[len(starts) // 2])

    def r2(features: torch.Tensor) -> torch.Tensor:
        probe = fit_probe(features[:split], velocities[:split])
        return probe.score(features[split:], velocities[split:])

    belief = r2(model.features(model.beliefs(test, torch.arange(len(test)))))
    frame = r2(test.tensors()["obs"])
    print(cls.__name__, "probe R^2", belief.tolist(), "one frame", frame.tolist())
    assert (belief > 0.75).all() and (frame < 0.5).all()


@pytest.mark.parametrize("cls", MODELS)
def test_open_loop_error_beats_the_memoryless_mlp(cls, data, trained) -> None:
    wm.seed_everything(0)
    mlp = wm.MLPWorldModel.for_env(hidden_env(), device="cpu", hidden=32)
    wm.fit(mlp, data["hidden"], epochs=6, seed=0, progress=False)
    ours = compounding_error(trained[cls], data["test"], horizon=5, burn_in=4, max_starts=40)
    theirs = compounding_error(mlp, data["test"], horizon=5, burn_in=4, max_starts=40)
    assert ours[:, -1].mean() < theirs[:, -1].mean() / 2


@pytest.mark.parametrize("cls", MODELS)
def test_plans_and_learns(cls, trained) -> None:
    model = trained[cls]
    planner = wm.RandomShooting(model, horizon=8, candidates=32, seed=0)
    result = wm.evaluate(hidden_env(max_episode_steps=30), planner, episodes=1, seed=1)
    assert len(result.returns) == 1 and planner.spent == 8 * 32
    assert isinstance(planner.state, MemoryState)
    fresh = small(cls)
    log = wm.learn(hidden_env(), wm.RandomShooting(fresh, horizon=5, candidates=16, seed=0),
                   steps=120, seed=0, warmup=100, refit_every=50, epochs=1, progress=False)
    assert len(log.buffer) == 120 and len(log.histories) >= 1
    assert "delta" in log.histories[0].train


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_bad_input_names_the_argument(cls, data) -> None:
    model = small(cls)
    state = model.filter(None, None, [0.0, 0.0])
    with pytest.raises(ValueError, match="obs"):
        model.filter(None, None, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="obs"):
        model.filter(None, None, [0.0, float("nan")])
    with pytest.raises(ValueError, match="action"):
        model.filter(state, None, [0.0, 0.0])
    with pytest.raises(ValueError, match="action"):
        model.filter(state, 2, [0.0, 0.0])
    with pytest.raises(ValueError, match="state"):
        model.filter(torch.zeros(2), 0, [0.0, 0.0])
    with pytest.raises(ValueError, match="actions"):
        model.imagine(state, torch.full((2, 3), 0.5))  # float actions are not rounded
    with pytest.raises(ValueError, match="actions"):
        model.imagine(state, torch.full((2, 3), 2))
    with pytest.raises(ValueError, match="state"):
        model.imagine(model.initial(state, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="index"):
        model.beliefs(data["hidden"], torch.tensor([len(data["hidden"])]))
    with pytest.raises(ValueError, match="batch"):
        model.loss({"obs": torch.zeros(2, 3, 2)})


def test_bad_constructor_arguments() -> None:
    spec = wm.ActionSpec(discrete=True, n=2)
    with pytest.raises(ValueError, match="hidden"):
        wm.LSTMWorldModel(2, spec, hidden=0, device="cpu")
    with pytest.raises(ValueError, match="heads"):
        wm.TransformerWorldModel(2, spec, hidden=30, heads=4, device="cpu")
    with pytest.raises(ValueError, match="window"):
        wm.TransformerWorldModel(2, spec, window=0, device="cpu")
    with pytest.raises(ValueError, match="action_spec"):
        wm.LSTMWorldModel(2, 2, device="cpu")


@pytest.mark.parametrize("cls", MODELS)
def test_weights_refuse_another_action_space(cls) -> None:
    model = small(cls)
    box = gymnasium_box_env()
    other = cls.for_env(box, device="cpu", **SMALL[cls])
    with pytest.raises(ValueError, match="action space"):
        other.load_state_dict(model.state_dict())


def gymnasium_box_env():
    """An env with CartPole's hidden observation but one Box action of the same width 2."""
    import gymnasium as gym

    class Box2(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    return Box2()
