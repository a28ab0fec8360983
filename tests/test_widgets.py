"""Widgets: moving a control from code reruns the callback and changes the figure and readout."""

import numpy as np
import pytest

import wmkit as wm
from wmkit import diagnostics as dg
from wmkit import widgets as wg


@pytest.fixture(scope="module")
def episode() -> dg.EpisodeData:
    buffer = wm.collect(wm.make_env("CartPole-v1", seed=5), steps=400, seed=5)
    return dg.longest_episode(buffer)


def _lines(fig, gid: str) -> list:
    return [line for ax in fig.axes for line in ax.lines if line.get_gid() == gid]


def test_rollout_explorer_redraws_on_horizon_and_start(trained_mlp, episode):
    explorer = wg.rollout_explorer(trained_mlp, episode, max_horizon=30, horizon=10)
    assert set(explorer.controls) == {"start", "horizon"} and explorer.renders == 1
    assert len(_lines(explorer.figure, "imagined")[0].get_xdata()) == 11
    first_figure, first_text = explorer.figure, explorer.readout.value

    explorer.controls["horizon"].value = 7
    assert explorer.renders == 2 and explorer.figure is not first_figure
    real = _lines(explorer.figure, "real")
    assert len(real) == 4 and all(len(line.get_xdata()) == 8 for line in real)
    assert "imagining 7 steps from step 0" in explorer.readout.value != first_text

    explorer.controls["start"].value = 4
    assert _lines(explorer.figure, "real")[0].get_xdata()[0] == 4  # x counts episode steps
    assert "from step 4" in explorer.readout.value


def test_draw_rollout_shortens_the_horizon_at_the_episode_end(trained_mlp, episode):
    length = len(episode["obs"])
    fig = wg.draw_rollout(trained_mlp, episode, start=length - 3, horizon=20)
    assert len(_lines(fig, "imagined")[0].get_xdata()) == 4
    with pytest.raises(ValueError, match="start"):
        wg.draw_rollout(trained_mlp, episode, start=length, horizon=5)


def test_planner_explorer_runs_a_trial_per_change():
    env = wm.make_env("CartPole-v1", seed=0)
    explorer = wg.planner_explorer(wm.TrueCartPole(device="cpu"), env, horizon=10,
                                   candidates=20, max_steps=25)
    trials = explorer.data["trials"]
    assert len(trials) == 1 and trials[0]["candidates"] == 20
    explorer.controls["candidates"].value = 50
    explorer.controls["select"].value = "best"
    explorer.controls["horizon"].value = 3
    assert [(t["horizon"], t["candidates"], t["select"]) for t in trials] == [
        (10, 20, "mean"), (10, 50, "mean"), (10, 50, "best"), (3, 50, "best")]
    assert 'H = 3, N = 50, select = "best"' in explorer.readout.value
    assert all(0 < t["return"] <= 25 for t in trials)
    # One point per trial in the figure.
    points = sum(len(c.get_offsets()) for c in explorer.figure.axes[0].collections[:2])
    assert points == 4


def test_planner_explorer_checks_its_arguments():
    env = wm.make_env("CartPole-v1")
    model = wm.TrueCartPole(device="cpu")
    with pytest.raises(ValueError, match="candidates"):
        wg.planner_explorer(model, env, candidates=7, candidate_options=(5, 10))
    with pytest.raises(ValueError, match="horizon"):
        wg.planner_explorer(model, env, horizon=50, max_horizon=40)
    with pytest.raises(ValueError, match="max_steps"):
        wg.planner_explorer(model, env, max_steps=0)


def test_fit_explorer_refits_on_more_data_and_caches(cartpole_buffer):
    heldout = wm.collect(wm.make_env("CartPole-v1", seed=9), steps=300, seed=9)
    explorer = wg.fit_explorer(cartpole_buffer, heldout, sizes=(30, 1_000), updates=60,
                               hidden=32)
    assert explorer.controls["transitions"].value == 1_000  # the middle option of two
    big = explorer.readout.value
    explorer.controls["transitions"].value = 30
    small = explorer.readout.value
    assert small != big and "trained on 30" in explorer.figure.axes[0].get_title()

    def error(text: str) -> float:
        return float(text.split("model ")[1].split(",")[0])

    assert error(big) < error(small)  # more data, better one-step predictions
    explorer.controls["dimension"].value = 2
    assert "pole angle" in explorer.figure.axes[0].get_xlabel()
    assert explorer.readout.value == small  # the same cached model
    with pytest.raises(ValueError, match="sizes"):
        wg.fit_explorer(cartpole_buffer, heldout, sizes=(10 * len(cartpole_buffer),))


def test_episode_stepper_moves_the_cart(episode):
    explorer = wg.episode_stepper(episode)
    explorer.controls["step"].value = 5
    assert "step 5 of" in explorer.figure.axes[0].get_title()
    carts = [p for p in explorer.figure.axes[0].patches if p.get_gid() == "cart"]
    x = float(episode["obs"][5, 0])
    assert any(np.isclose(p.get_x() + p.get_width() / 2, x, atol=1e-4) for p in carts)
    assert "θ =" in explorer.readout.value
    with pytest.raises(ValueError, match="t"):
        wg.draw_step(dg.episode_observations(episode), len(episode["obs"]) + 1)


def test_draw_one_step_checks_the_dimension(trained_mlp, cartpole_buffer):
    with pytest.raises(ValueError, match="dim"):
        wg.draw_one_step(trained_mlp, cartpole_buffer, dim=4)
