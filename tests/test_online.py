"""Tests of wmkit.online: the async world-model service, on every backend."""

from __future__ import annotations

import asyncio
import json
import math
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit.online import (
    DreamRollout,
    ModelInput,
    ModelOutput,
    OnlineWorldModel,
    PredictionTarget,
    TransitionBackend,
    WorldModel,
    WorldModelConfig,
    build_world_model,
    new_registry,
    plan_actions,
    read_metrics,
    replan_steps,
    select_action,
)

torch.set_num_threads(1)

BACKENDS = list(TransitionBackend)
OBS = (0.01, -0.02, 0.03, 0.04)


def run(coroutine):  # each test drives the async API with its own event loop
    return asyncio.run(coroutine)


def small_config(backend: TransitionBackend, **overrides) -> WorldModelConfig:
    fields = dict(backend=backend, obs_dim=4, action_dim=2, hidden_dim=16, ensemble_size=3,
                  rollout_horizon=6, learning_rate=3e-3, max_buffer_size=20)
    fields.update(overrides)
    return WorldModelConfig(**fields)


def cartpole_transitions(steps: int, seed: int) -> list[tuple]:
    """(obs, action, next_obs, reward, terminated) from CartPole-v1 under a random policy."""
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    transitions = []
    for _ in range(steps):
        action = int(rng.integers(2))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        transitions.append((tuple(map(float, obs)), action, tuple(map(float, next_obs)),
                            float(reward), bool(terminated)))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return transitions


def done_bias(model: OnlineWorldModel) -> torch.Tensor:
    """A view of the core model's termination-logit bias (every member's, for the ensemble):
    the last output of its last layer. Tests force dones through it."""
    core = model.world_model
    if isinstance(core, wm.EnsembleWorldModel):
        return core.net[-1].bias[..., -1:]
    last = core.net[-1] if isinstance(core, wm.MLPWorldModel) else core.head[-1]
    return last.bias[-1:]


async def train(model: OnlineWorldModel, transitions: list[tuple]) -> list[float]:
    return [await model.update(ModelInput(o, a), n, r, d) for o, a, n, r, d in transitions]


async def mean_surprise(model: OnlineWorldModel, transitions: list[tuple]) -> float:
    return float(np.mean([await model.surprise(ModelInput(o, a), n)
                          for o, a, n, _, _ in transitions]))


@pytest.fixture(scope="module")
def trained() -> dict[TransitionBackend, tuple[OnlineWorldModel, float, float]]:
    """Each backend trained online on 300 CartPole transitions (surprise before and after on
    200 held-out transitions), shared by the learning and the rollout tests."""
    data, held_out = cartpole_transitions(300, seed=0), cartpole_transitions(200, seed=1)
    models = {}
    for backend in BACKENDS:
        model = build_world_model(small_config(backend, hidden_dim=32, max_buffer_size=1_000),
                                  seed=0)
        before = run(mean_surprise(model, held_out))
        run(train(model, data))
        after = run(mean_surprise(model, held_out))
        models[backend] = (model, before, after)
    return models


# ----------------------------------------------------------------------------- the types


def test_fixed_names_and_defaults() -> None:
    assert [b.name for b in TransitionBackend] == ["MLP", "LSTM", "TRANSFORMER", "ENSEMBLE"]
    assert [t.name for t in PredictionTarget] == ["NEXT_OBS", "REWARD", "DONE", "ALL"]
    config = WorldModelConfig()
    assert (config.backend, config.obs_dim, config.action_dim, config.hidden_dim,
            config.ensemble_size, config.rollout_horizon, config.learning_rate,
            config.surprise_threshold, config.max_buffer_size) == (
        TransitionBackend.MLP, 64, 8, 256, 5, 10, 3e-4, 0.05, 100_000)
    with pytest.raises(AttributeError):
        config.obs_dim = 3  # frozen
    inp = ModelInput(np.array([1.0, 2.0]), np.int64(1))  # normalised to a hashable tuple
    assert inp == ModelInput((1.0, 2.0), 1) and hash(inp) == hash(ModelInput((1.0, 2.0), 1))
    assert WorldModelConfig.from_dict(small_config(TransitionBackend.LSTM).to_dict()) == \
        small_config(TransitionBackend.LSTM)


@pytest.mark.parametrize("field,value", [("obs_dim", 0), ("hidden_dim", 2.5),
                                         ("learning_rate", -1.0), ("backend", "MLP")])
def test_bad_config_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WorldModelConfig(**{field: value})


# ----------------------------------------------------------------------------- the service


@pytest.mark.parametrize("backend", BACKENDS)
def test_build_returns_a_world_model(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    assert isinstance(model, WorldModel)
    assert isinstance(build_world_model(), WorldModel)  # the default config builds too


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_returns_model_output(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    out = run(model.predict(ModelInput(OBS, 1)))
    assert isinstance(out, ModelOutput)
    assert isinstance(out.next_observation, tuple) and len(out.next_observation) == 4
    assert all(type(x) is float and math.isfinite(x) for x in out.next_observation)
    assert type(out.predicted_reward) is float
    assert type(out.predicted_done) is bool
    assert out.prediction_error == 0.0  # no ground truth seen for this input yet


@pytest.mark.parametrize("backend", BACKENDS)
def test_prediction_error_is_mse_against_last_ground_truth(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    inp, truth = ModelInput(OBS, 0), (0.5, 0.5, 0.5, 0.5)
    run(model.update(inp, (9.0, 9.0, 9.0, 9.0), 1.0, False))
    run(model.update(inp, truth, 1.0, False))  # the *last* ground truth counts
    out = run(model.predict(inp))
    expected = np.mean((np.array(out.next_observation) - np.array(truth)) ** 2)
    assert out.prediction_error == pytest.approx(expected, rel=1e-9) and expected > 0
    assert run(model.predict(ModelInput(OBS, 1))).prediction_error == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollout_length_is_horizon_without_done_and_one_with_forced_done(
        backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    with torch.no_grad():
        done_bias(model).fill_(-30.0)  # never done
    rollout = run(model.dream_rollout(OBS, [0, 1, 1, 0, 1, 0, 0]))
    assert isinstance(rollout, DreamRollout) and len(rollout.steps) == 7
    assert not any(step.predicted_done for step in rollout.steps)
    assert all(len(step.next_observation) == 4 for step in rollout.steps)
    with torch.no_grad():
        done_bias(model).fill_(30.0)  # always done: the dream ends at once
    rollout = run(model.dream_rollout(OBS, [0, 1, 1, 0, 1, 0, 0]))
    assert len(rollout.steps) == 1 and rollout.steps[0].predicted_done


@pytest.mark.parametrize("backend", BACKENDS)
def test_rollout_stops_at_first_predicted_done(backend: TransitionBackend, trained) -> None:
    model = trained[backend][0]
    horizon = 25
    tilted = (0.0, 0.0, 0.12, 0.6)  # the pole is falling to the right
    for actions in ([0] * horizon, [1] * horizon, [0, 1] * (horizon // 2) + [0]):
        rollout = run(model.dream_rollout(tilted, actions))
        dones = [step.predicted_done for step in rollout.steps]
        assert len(rollout.steps) <= horizon and not any(dones[:-1])
        assert dones[-1] == (len(rollout.steps) < horizon)  # min(horizon, first done)
        if actions[0] == 0:  # pushing left under a right-falling pole: it falls at once
            assert len(rollout.steps) < horizon
        if backend in (TransitionBackend.MLP, TransitionBackend.ENSEMBLE):
            # One-pair backends: the dream must equal chained one-step predictions.
            obs, first_done = tilted, horizon
            for t, action in enumerate(actions):
                out = run(model.predict(ModelInput(obs, action)))
                if out.predicted_done:
                    first_done = t + 1
                    break
                obs = out.next_observation
            assert len(rollout.steps) == first_done


@pytest.mark.parametrize("backend", BACKENDS)
def test_total_imagined_reward_is_the_sum_of_the_steps(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    with torch.no_grad():
        done_bias(model).fill_(-30.0)
    rollout = run(model.dream_rollout(OBS, [1, 0, 1, 1, 0]))
    assert rollout.total_imagined_reward == pytest.approx(
        sum(step.predicted_reward for step in rollout.steps), abs=1e-12)
    disagreement = run(model.disagreement(ModelInput(OBS, 1)))
    if backend is TransitionBackend.ENSEMBLE:
        assert rollout.surprise_score > 0 and disagreement > 0
    else:
        assert rollout.surprise_score == 0.0 and disagreement == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_dream_step_matches_predict(backend: TransitionBackend) -> None:
    """predict and dream_rollout build the same window, inside a trajectory and outside."""
    model = build_world_model(small_config(backend))
    data = cartpole_transitions(12, seed=3)
    run(train(model, data[:10]))
    continuing, fresh = data[9][2], (0.1, 0.2, 0.3, 0.4)
    for obs in (continuing, fresh):
        step = run(model.dream_rollout(obs, [1, 0])).steps[0]
        assert step.next_observation == run(model.predict(ModelInput(obs, 1))).next_observation


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_returns_loss_and_buffer_is_bounded(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend, max_buffer_size=20))
    sizes, losses = [], []
    for o, a, n, r, d in cartpole_transitions(30, seed=2):
        losses.append(run(model.update(ModelInput(o, a), n, r, d)))
        sizes.append(model.buffer_size)
    assert all(type(loss) is float and math.isfinite(loss) for loss in losses)
    assert sizes == list(range(1, 21)) + [20] * 10
    assert model.step_count == 30


@pytest.mark.parametrize("backend", BACKENDS)
def test_surprise_is_zero_for_perfect_and_high_for_bad_prediction(
        backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    inp = ModelInput(OBS, 0)
    predicted = run(model.predict(inp)).next_observation
    assert run(model.surprise(inp, predicted)) < 1e-12
    assert model.replan_needed is False
    wrong = tuple(x + 10.0 for x in predicted)
    assert run(model.surprise(inp, wrong)) == pytest.approx(100.0, rel=1e-6)
    assert model.replan_needed is True  # above surprise_threshold: re-plan
    model.replan_needed = False  # the caller clears it after re-planning
    run(model.surprise(inp, predicted))
    assert model.replan_needed is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_json_round_trip_reproduces_predictions(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend), seed=5)
    data = cartpole_transitions(15, seed=4)
    run(train(model, data))
    snapshot = run(model.snapshot())
    assert {"config", "step_count", "buffer_size", "weights"} <= set(snapshot)
    assert snapshot["config"]["backend"] == backend.name
    assert snapshot["step_count"] == 15 and snapshot["buffer_size"] == 15
    loaded = json.loads(json.dumps(snapshot))

    async def answers(m: OnlineWorldModel) -> tuple:
        seen, continuing = ModelInput(data[3][0], data[3][1]), ModelInput(data[-1][2], 1)
        return (await m.predict(seen), await m.predict(continuing),
                await m.dream_rollout(data[-1][2], [0, 1, 1, 0]))

    expected = run(answers(model))
    assert expected[0].prediction_error > 0  # the ground-truth memory travels too
    assert run(answers(OnlineWorldModel.from_snapshot(loaded))) == expected
    other = build_world_model(small_config(backend), seed=99)
    assert run(answers(other)) != expected
    run(other.restore(loaded))
    assert run(answers(other)) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_with_other_config_raises(backend: TransitionBackend) -> None:
    snapshot = run(build_world_model(small_config(backend)).snapshot())
    other = build_world_model(small_config(backend, hidden_dim=8))
    with pytest.raises(ValueError, match="config"):
        run(other.restore(snapshot))
    with pytest.raises(ValueError, match="snapshot"):
        run(other.restore({"config": snapshot["config"]}))


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_predicts_are_safe_and_consistent(backend: TransitionBackend) -> None:
    model = build_world_model(small_config(backend))
    inputs = [ModelInput((0.01 * i, 0.0, -0.01 * i, 0.1), i % 2) for i in range(50)]

    async def together() -> list[ModelOutput]:
        return list(await asyncio.gather(*(model.predict(inp) for inp in inputs)))

    async def one_by_one() -> list[ModelOutput]:
        return [await model.predict(inp) for inp in inputs]

    assert run(together()) == run(one_by_one())

    async def mixed() -> list:  # updates interleaved with predictions, under the one lock
        data = cartpole_transitions(10, seed=6)
        calls = [model.update(ModelInput(o, a), n, r, d) for o, a, n, r, d in data]
        calls += [model.predict(inp) for inp in inputs[:10]]
        return list(await asyncio.gather(*calls))

    results = run(mixed())
    assert model.step_count == 10 and all(isinstance(r, ModelOutput) for r in results[10:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_metrics_move(backend: TransitionBackend) -> None:
    registry = new_registry()
    model = build_world_model(small_config(backend), registry=registry)
    assert model.registry is registry
    assert read_metrics(registry)["wm_update_total"] == 0.0
    loss = run(model.update(ModelInput(OBS, 1), (0.0, 0.1, 0.0, -0.1), 1.0, False))
    value = run(model.surprise(ModelInput(OBS, 1), (0.0, 0.1, 0.0, -0.1)))
    with torch.no_grad():
        done_bias(model).fill_(-30.0)
    run(model.dream_rollout(OBS, [0, 1, 0]))
    metrics = read_metrics(registry)
    assert metrics["wm_update_total"] == 1.0
    assert metrics["wm_train_loss"] == pytest.approx(loss)
    assert metrics["wm_buffer_size"] == 1.0
    assert metrics["wm_surprise_score"] == pytest.approx(value)
    assert metrics["wm_rollout_steps_total"] == 3.0
    # Without a registry each model gets a fresh one: building twice never collides.
    first, second = build_world_model(small_config(backend)), build_world_model(
        small_config(backend))
    assert first.registry is not None and first.registry is not second.registry


def test_metrics_off_without_prometheus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    model = build_world_model(small_config(TransitionBackend.MLP))
    assert model.registry is None and read_metrics(model.registry) == {}
    run(model.update(ModelInput(OBS, 1), OBS, 1.0, False))  # metrics off, service on
    with pytest.raises(ImportError, match=r"pip install 'wmkit\[online\]'"):
        build_world_model(small_config(TransitionBackend.MLP), registry=object())
    with pytest.raises(ImportError, match="prometheus_client"):
        new_registry()


BAD_CALLS = [  # (the argument the error must name, a call that gets it wrong)
    ("observation", lambda m: m.predict(ModelInput((0.0, 1.0, 2.0), 0))),
    ("observation", lambda m: m.predict(ModelInput((0.0, float("nan"), 2.0, 1.0), 0))),
    ("action", lambda m: m.predict(ModelInput(OBS, 2))),
    ("action", lambda m: m.predict(ModelInput(OBS, 1.0))),
    ("inp", lambda m: m.predict((OBS, 1))),
    ("actual_next_obs", lambda m: m.update(ModelInput(OBS, 0), (1.0,), 1.0, False)),
    ("actual_next_obs", lambda m: m.surprise(ModelInput(OBS, 0), (0.0, 0.0, float("inf"), 0))),
    ("actual_reward", lambda m: m.update(ModelInput(OBS, 0), OBS, float("nan"), False)),
    ("actual_done", lambda m: m.update(ModelInput(OBS, 0), OBS, 1.0, "no")),
    ("initial_obs", lambda m: m.dream_rollout((1.0, 2.0), [0, 1])),
    ("action_sequence", lambda m: m.dream_rollout(OBS, [0, 5])),
    ("action_sequence", lambda m: m.dream_rollout(OBS, [])),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("argument,call", BAD_CALLS,
                         ids=[f"{name}-{i}" for i, (name, _) in enumerate(BAD_CALLS)])
def test_bad_input_raises_naming_the_argument(backend: TransitionBackend, argument: str,
                                              call) -> None:
    model = build_world_model(small_config(backend))
    with pytest.raises(ValueError, match=f"^{argument}: "):
        run(call(model))


# ----------------------------------------------------------------------------- planning


class CountingModel:
    """A stand-in WorldModel whose dreams earn 1 per step that takes action 1."""

    async def predict(self, inp: ModelInput) -> ModelOutput:
        return ModelOutput(inp.observation, float(inp.action), False, 0.0)

    async def dream_rollout(self, initial_obs, action_sequence) -> DreamRollout:
        steps = tuple(ModelOutput(tuple(initial_obs), float(a == 1), False, 0.0)
                      for a in action_sequence)
        return DreamRollout(steps, float(sum(s.predicted_reward for s in steps)), 0.0)

    async def update(self, inp, actual_next_obs, actual_reward, actual_done) -> float:
        return 0.0

    async def surprise(self, inp, actual_next_obs) -> float:
        return 0.0

    async def snapshot(self) -> dict:
        return {}


def test_select_action_picks_the_best_dream() -> None:
    model = CountingModel()
    assert isinstance(model, WorldModel)
    assert run(select_action(model, OBS, [0, 1], horizon=4)) == 1
    assert run(select_action(model, OBS, [0, 2], horizon=4)) == 0  # tie: the first candidate
    plan = run(plan_actions(model, OBS, [0, 1], horizon=5, continuation="random", rng=0))
    assert len(plan) == 5 and plan[0] == 1
    with pytest.raises(ValueError, match="continuation"):
        run(select_action(model, OBS, [0, 1], continuation="greedy"))


def falling_pole(sign: int) -> tuple[list, tuple[float, ...]]:
    """Three real steps pushing a pole that leans `sign` (+1 right) further over: the
    (observation, action) pairs and the observation they end in."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.state = np.array([0.0, 0.0, 0.05 * sign, 0.3 * sign])
    obs, pairs, push = tuple(map(float, env.unwrapped.state)), [], 0 if sign > 0 else 1
    for _ in range(3):
        pairs.append([list(obs), push])
        obs = tuple(map(float, env.step(push)[0]))
    env.close()
    return pairs, obs


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_action_on_a_trained_model_catches_a_falling_pole(backend, trained) -> None:
    snapshot = run(trained[backend][0].snapshot())
    for sign, right_action in ((1, 1), (-1, 0)):
        # The model has just watched the pole fall (its history window holds those steps).
        pairs, obs = falling_pole(sign)
        window = OnlineWorldModel.from_snapshot(
            {**snapshot, "history": pairs, "last_next_obs": list(obs)})
        assert run(select_action(window, obs, [0, 1], horizon=8)) == right_action
        assert run(select_action(window, obs, [0, 1], horizon=8, continuation="random",
                                 samples=8, rng=0)) == right_action


def test_replan_steps_and_the_threshold_explorer() -> None:
    """`replan_steps` counts; the notebook layer's explorer draws it and keeps the numbers."""
    import matplotlib

    matplotlib.use("Agg")
    from wmkit import notebook as nb

    surprises = [0.1, 0.001, 0.2, 0.05]
    assert replan_steps(surprises, 0.05) == [0, 2]
    assert replan_steps(surprises, 1.0) == []
    explorer = nb.replan_explorer(surprises, threshold=0.01)
    assert explorer.data["replans"] == 3 and explorer.data["steps"] == [0, 2, 3]
    explorer.controls["threshold"].value = 0.1  # the slider's top
    assert explorer.data["replans"] == 1 and explorer.data["steps"] == [2]
    assert len(explorer.figure.axes[0].lines) == 3  # trace, threshold, re-plan markers


# ----------------------------------------------------------------------------- learning


@pytest.mark.parametrize("backend", BACKENDS)
def test_online_learning_cuts_surprise_on_held_out_cartpole(backend, trained) -> None:
    model, before, after = trained[backend]
    no_change = float(np.mean([np.mean((np.array(o) - np.array(n)) ** 2)
                               for o, _, n, _, _ in cartpole_transitions(200, seed=1)]))
    print(f"{backend.name}: surprise {before:.3g} -> {after:.3g} (x{before / after:.0f}); "
          f"'nothing changes' baseline {no_change:.3g}")
    assert model.step_count == 300
    assert after < before / 5
    assert after < no_change / 5  # better than predicting that nothing moves


# ----------------------------------------------------------------------------- one vocabulary


def test_surprise_and_disagreement_are_the_kits_numbers() -> None:
    """surprise = wmkit.analysis.surprise of prediction and truth; disagreement = the core
    ensemble's, in delta-std units; a dream's surprise_score = the members' variance of the
    next observation (the MSE expected if the world moved like a random member)."""
    from wmkit.analysis.surprise import surprise as kit_surprise

    model = build_world_model(small_config(TransitionBackend.ENSEMBLE), seed=1)
    run(train(model, cartpole_transitions(40, seed=7)))
    inp, actual = ModelInput(OBS, 1), (0.02, 0.2, 0.01, -0.3)
    predicted = torch.tensor(run(model.predict(inp)).next_observation, dtype=torch.float64)
    assert run(model.surprise(inp, actual)) == pytest.approx(
        float(kit_surprise(predicted, torch.tensor(actual, dtype=torch.float64))), rel=1e-12)
    core = model.world_model
    obs, action = torch.tensor([OBS]), torch.tensor([1])
    with torch.no_grad():
        assert run(model.disagreement(inp)) == pytest.approx(
            float(core.disagreement(obs, action)), rel=1e-6)
        done_bias(model).fill_(-30.0)
        members = core.predict_members(obs, action).next_obs.double()  # (E, 1, D)
    dream = run(model.dream_rollout(OBS, [1]))
    assert dream.surprise_score == pytest.approx(
        float(members.var(0, correction=0).mean()), rel=1e-5)
    assert dream.surprise_score != pytest.approx(run(model.disagreement(inp)), rel=0.1)


# ----------------------------------------------------------------------------- reliability

THREADS_SCRIPT = """
import asyncio, threading
import torch
torch.set_num_threads(1)
from wmkit.online import ModelInput, TransitionBackend, WorldModelConfig, build_world_model
model = build_world_model(WorldModelConfig(backend=TransitionBackend.{backend}, obs_dim=4,
                                           action_dim=2, hidden_dim=16, max_buffer_size=500))
def worker(k):
    async def go():
        for i in range(150):
            obs = (0.01 * k, 0.001 * i, 0.0, 0.0)
            await model.update(ModelInput(obs, i % 2), (0.0, 0.0, 0.0, 0.01 * i), 1.0, False)
            await model.predict(ModelInput(obs, 0))
    asyncio.run(go())  # each thread its own event loop
threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print("updates", model.step_count, model.buffer_size)
"""


def test_two_threads_with_their_own_event_loops_are_safe() -> None:
    """2 threads x 150 updates, each thread with its own event loop (in a separate process: a
    crash must fail this test, not the test run). The service's first version crashed (or
    lost one thread's updates to an autograd error): its asyncio lock was made anew per loop."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT.format(backend="MLP")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "updates 300 300" in done.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_beyond_float32_are_refused_and_change_nothing(backend) -> None:
    model = build_world_model(small_config(backend))
    run(train(model, cartpole_transitions(5, seed=8)))
    before = {k: v.clone() for k, v in model.world_model.state_dict().items()
              if isinstance(v, torch.Tensor)}
    huge = (0.0, 0.0, 0.0, 1e300)  # a finite float that float32 turns into inf
    for argument, call in [
            ("observation", lambda: model.update(ModelInput(huge, 0), OBS, 1.0, False)),
            ("actual_next_obs", lambda: model.update(ModelInput(OBS, 0), huge, 1.0, False)),
            ("actual_reward", lambda: model.update(ModelInput(OBS, 0), OBS, 1e300, False)),
            ("actual_next_obs", lambda: model.surprise(ModelInput(OBS, 0), huge)),
            ("observation", lambda: model.predict(ModelInput(huge, 0)))]:
        with pytest.raises(ValueError, match=f"^{argument}: .*float32"):
            run(call())
    assert model.step_count == 5 and model.buffer_size == 5
    after = model.world_model.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in before.items())


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_update_with_a_non_finite_loss_is_skipped(backend) -> None:
    """3e38 fits in float32, but its normalised change overflows the loss: the step is
    skipped, nothing is stored, the weights stay finite and the model keeps learning."""
    model = build_world_model(small_config(backend))
    data = cartpole_transitions(12, seed=9)
    run(train(model, data[:6]))
    before = {k: v.clone() for k, v in model.world_model.state_dict().items()
              if isinstance(v, torch.Tensor)}
    with pytest.warns(RuntimeWarning, match="skipped"):
        loss = run(model.update(ModelInput(OBS, 0), (0.0, 0.0, 0.0, 3e38), 1.0, False))
    assert not math.isfinite(loss)
    assert model.step_count == 6 and model.buffer_size == 6
    after = model.world_model.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in before.items())
    losses = run(train(model, data[6:]))
    assert all(math.isfinite(x) for x in losses)
    assert all(math.isfinite(x) for x in run(model.predict(ModelInput(OBS, 1))).next_observation)


def test_a_nan_surprise_asks_for_a_replan() -> None:
    model = build_world_model(small_config(TransitionBackend.MLP))
    with torch.no_grad():
        model.world_model.net[-1].bias[0] = float("nan")  # a broken model predicts NaN
    value = run(model.surprise(ModelInput(OBS, 0), OBS))
    assert math.isnan(value) and model.replan_needed is True


def snapshot_of(backend, seed: int = 5) -> tuple[OnlineWorldModel, dict]:
    model = build_world_model(small_config(backend), seed=seed)
    run(train(model, cartpole_transitions(15, seed=4)))
    return model, json.loads(json.dumps(run(model.snapshot())))


def poison_weight(snapshot: dict, name: str, value: float) -> dict:
    """A copy of `snapshot` whose weight `name` holds `value` everywhere."""
    import base64

    entry = snapshot["weights"][name]
    array = np.full(entry["shape"], value, dtype=entry["dtype"])
    weights = {**snapshot["weights"], name: {**entry, "data": base64.b64encode(
        array.tobytes()).decode("ascii")}}
    return {**snapshot, "weights": weights}


@pytest.mark.parametrize("backend", BACKENDS)
def test_restore_checks_everything_before_it_changes_anything(backend) -> None:
    _, good = snapshot_of(backend)
    model = build_world_model(small_config(backend), seed=99)
    run(train(model, cartpole_transitions(5, seed=10)))
    probe = ModelInput(OBS, 1)
    answer, size = run(model.predict(probe)), model.buffer_size
    first_weight = next(iter(good["weights"]))
    bad_snapshots = {
        "NaN weight": poison_weight(good, [n for n in good["weights"] if "weight" in n][0],
                                    float("nan")),
        "NaN statistic": poison_weight(good, "obs_mean", float("nan")),
        "zero std": poison_weight(good, "delta_std", 0.0),
        "wrong shape": {**good, "weights": {**good["weights"], first_weight: {
            **good["weights"][first_weight], "shape": [1]}}},
        # Good weights, then a bad field: the weights must not be loaded either.
        "bad history": {**good, "history": [[list(OBS), 7]]},
        "bad ground truth": {**good, "ground_truth": [[list(OBS), 0, [0.0, float("nan")]]]},
        "bad step count": {**good, "step_count": -1},
        "old format": {**good, "format": "wmkit.online/1"},
    }
    for name, bad in bad_snapshots.items():
        with pytest.raises(ValueError, match="snapshot"):
            run(model.restore(bad))
        assert run(model.predict(probe)) == answer, name  # untouched
        assert model.buffer_size == size and model.step_count == 5, name
    run(model.restore(good))
    assert run(model.predict(probe)) != answer and model.step_count == 15


def test_from_snapshot_checks_sizes_before_building() -> None:
    """A tiny file must not make the service allocate a huge network: the config's network
    is sized without allocating it, and refused above the limit."""
    import time

    _, good = snapshot_of(TransitionBackend.ENSEMBLE)
    huge = {**good, "config": {**good["config"], "hidden_dim": 200_000, "ensemble_size": 64}}
    start = time.perf_counter()
    with pytest.raises(ValueError, match="hidden_dim=200000.*limit"):
        OnlineWorldModel.from_snapshot(huge)
    assert time.perf_counter() - start < 10  # refused at once, nothing allocated
    # Within the limit but not what the weights hold: refused before building too.
    other = {**good, "config": {**good["config"], "hidden_dim": 64}}
    with pytest.raises(ValueError, match="shape"):
        OnlineWorldModel.from_snapshot(other)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_replay_buffer_travels_in_the_snapshot(backend) -> None:
    """The statistics come from the replay buffer, so it travels too: a restored model holds
    the same rows, and after one more identical update it normalises as the original."""
    model, snapshot = snapshot_of(backend)
    copy = OnlineWorldModel.from_snapshot(snapshot)
    for key, value in model.buffer.tensors().items():
        assert torch.equal(copy.buffer.tensors()[key], value), key
    step = cartpole_transitions(16, seed=4)[15]
    for m in (model, copy):
        run(m.update(ModelInput(step[0], step[1]), step[2], step[3], step[4]))
    assert copy.buffer_size == 16
    for name in ("obs_mean", "obs_std", "delta_mean", "delta_std"):
        assert torch.equal(getattr(copy.world_model, name), getattr(model.world_model, name))


def test_several_models_share_one_registry_by_label() -> None:
    """One family per metric, one series per model (label `model`); rebuilding a model with a
    name already there (a notebook cell run twice) starts its series again."""
    from prometheus_client import generate_latest

    registry = new_registry()
    lstm = build_world_model(small_config(TransitionBackend.LSTM), registry=registry)
    mlp = build_world_model(small_config(TransitionBackend.MLP), registry=registry)
    other = build_world_model(small_config(TransitionBackend.MLP), registry=registry,
                              name="mlp-b")
    for model, steps in ((lstm, 3), (mlp, 2), (other, 1)):
        run(train(model, cartpole_transitions(steps, seed=11)))
    assert read_metrics(registry, "lstm")["wm_update_total"] == 3.0
    assert read_metrics(registry, "mlp")["wm_update_total"] == 2.0
    assert read_metrics(registry, "mlp-b")["wm_buffer_size"] == 1.0
    with pytest.raises(ValueError, match="model"):
        read_metrics(registry)  # three models: say which
    text = generate_latest(registry).decode()
    assert text.count("# TYPE wm_update_total counter") == 1
    assert 'wm_update_total{model="lstm"} 3.0' in text
    rebuilt = build_world_model(small_config(TransitionBackend.LSTM), registry=registry)
    assert read_metrics(registry, "lstm")["wm_update_total"] == 0.0
    run(train(rebuilt, cartpole_transitions(1, seed=12)))
    assert read_metrics(registry, "lstm")["wm_update_total"] == 1.0
    assert read_metrics(registry, "mlp")["wm_update_total"] == 2.0
