"""Explorers: moving a control from code reruns the callback; the figure, the readout and the
numbers in `.data` follow it."""

import matplotlib
import numpy as np
import pytest

import wmkit as wm
from wmkit import analysis as A
from wmkit import notebook as nb
from wmkit.analysis.throughput import Measurement

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def episode_buffer() -> wm.ReplayBuffer:
    return wm.collect(wm.make_env("CartPole-v1", seed=5), steps=400, seed=5)


def _lines(fig, gid: str) -> list:
    return [line for ax in fig.axes for line in ax.lines if line.get_gid() == gid]


# ------------------------------------------------------------------------- the Explorer itself


def test_explorer_keeps_the_numbers_of_each_render_and_reports_bad_values():
    calls = []

    def render(n: int) -> nb.View:
        if n == 3:
            raise ValueError("n: 3 is not allowed")
        calls.append(n)
        fig = matplotlib.figure.Figure()
        return nb.View(fig, f"n is {n}", {"n": n, "square": n * n})

    explorer = nb.Explorer({"n": nb.int_slider("n", 1, 0, 5)}, render, data={"kept": True})
    assert explorer.data == {"kept": True, "n": 1, "square": 1} and explorer.renders == 1
    explorer.controls["n"].value = 2
    assert explorer.data["square"] == 4 and explorer.readout.value == "n is 2"
    figure = explorer.figure
    explorer.controls["n"].value = 3  # refused: the readout says so, figure and data stay
    assert "not allowed" in explorer.readout.value and explorer.figure is figure
    assert explorer.data["n"] == 2 and calls == [1, 2] and explorer.renders == 2
    with pytest.raises(ValueError, match="controls"):
        nb.Explorer({}, render)


def test_a_render_may_return_figure_and_readout_only():
    explorer = nb.Explorer({"n": nb.int_slider("n", 1, 0, 5)},
                           lambda n: (matplotlib.figure.Figure(), f"n={n}"))
    explorer.controls["n"].value = 4
    assert explorer.readout.value == "n=4" and explorer.data == {}


# ------------------------------------------------------------------------------ notebook 00


def test_episode_stepper_moves_the_cart(episode_buffer):
    rows = A.longest_episode(episode_buffer)
    explorer = nb.episode_stepper(episode_buffer, rows)
    explorer.controls["step"].value = 5
    assert "step 5 of" in explorer.figure.axes[0].get_title()
    x = float(episode_buffer[rows.start + 5]["obs"][0])
    carts = [p for p in explorer.figure.axes[0].patches if p.get_gid() == "cart"]
    assert any(np.isclose(p.get_x() + p.get_width() / 2, x, atol=1e-4) for p in carts)
    assert explorer.data["step"] == 5 and explorer.data["observation"][0] == pytest.approx(x)
    assert "θ =" in explorer.readout.value
    with pytest.raises(ValueError, match="t"):
        nb.draw_step(A.episode_observations(episode_buffer, rows), len(rows) + 1)


# ------------------------------------------------------------------------------ notebook 01


def test_fit_explorer_refits_on_more_data_and_caches(cartpole_buffer):
    heldout = wm.collect(wm.make_env("CartPole-v1", seed=9), steps=300, seed=9)
    explorer = nb.fit_explorer(cartpole_buffer, heldout, sizes=(30, 1_000), updates=60,
                               hidden=32)
    assert explorer.controls["transitions"].value == 1_000  # the middle option of two
    big = explorer.data["model_error"]
    explorer.controls["transitions"].value = 30
    small = explorer.data["model_error"]
    assert explorer.data["transitions"] == 30 and "trained on 30" in (
        explorer.figure.axes[0].get_title())
    assert big < small  # more data, better one-step predictions
    assert explorer.data["no_change_error"] > small
    text = explorer.readout.value
    explorer.controls["dimension"].value = 2
    assert "pole angle" in explorer.figure.axes[0].get_xlabel()
    assert explorer.readout.value == text and explorer.data["model_error"] == small  # cached
    with pytest.raises(ValueError, match="sizes"):
        nb.fit_explorer(cartpole_buffer, heldout, sizes=(10 * len(cartpole_buffer),))


def test_draw_one_step_checks_the_dimension(trained_mlp, cartpole_buffer):
    with pytest.raises(ValueError, match="dim"):
        nb.draw_one_step(trained_mlp, cartpole_buffer, dim=4)


# ------------------------------------------------------------------------------ notebook 02


def test_rollout_explorer_redraws_on_horizon_and_start(trained_mlp, episode_buffer):
    rows = A.longest_episode(episode_buffer)
    explorer = nb.rollout_explorer(trained_mlp, episode_buffer, rows, max_horizon=30,
                                   horizon=10)
    assert set(explorer.controls) == {"start", "horizon"} and explorer.renders == 1
    assert len(_lines(explorer.figure, "imagined")[0].get_xdata()) == 11
    first_figure = explorer.figure

    explorer.controls["horizon"].value = 7
    assert explorer.renders == 2 and explorer.figure is not first_figure
    real = _lines(explorer.figure, "real")
    assert len(real) == 4 and all(len(line.get_xdata()) == 8 for line in real)
    assert "imagining 7 steps from step 0" in explorer.readout.value
    real_end, imagined_end = (t[-1] for t in A.open_loop(trained_mlp, episode_buffer,
                                                         rows.start, 7))
    np.testing.assert_allclose(explorer.data["gap"], (imagined_end - real_end).abs().numpy())

    explorer.controls["start"].value = 4
    assert _lines(explorer.figure, "real")[0].get_xdata()[0] == 4  # x counts episode steps
    assert explorer.data["start"] == 4 and "from step 4" in explorer.readout.value


def test_rollout_explorer_shortens_the_horizon_at_the_episode_end(trained_mlp, episode_buffer):
    rows = A.longest_episode(episode_buffer)
    explorer = nb.rollout_explorer(trained_mlp, episode_buffer, rows, max_horizon=30)
    explorer.controls["start"].value = len(rows) - 3
    assert explorer.data["horizon"] == 3 and "only 3 real steps" in explorer.readout.value
    fig = nb.draw_rollout(trained_mlp, episode_buffer, rows.stop - 3, horizon=20)
    assert len(_lines(fig, "imagined")[0].get_xdata()) == 4


def test_dream_explorer_follows_its_horizon(trained_mlp, episode_buffer):
    rows = A.longest_episode(episode_buffer)
    explorer = nb.dream_explorer(trained_mlp, episode_buffer, rows.start + 2, max_horizon=20,
                                 horizon=5)
    assert explorer.data["horizon"] == 5
    explorer.controls["horizon"].value = 9
    assert explorer.data["horizon"] == 9 and explorer.data["gap"].shape == (4,)
    legend = explorer.figure.axes[0].get_legend().get_texts()
    assert [t.get_text() for t in legend] == ["real", "imagined, 9 steps"]


# ------------------------------------------------------------------------------ notebook 03


def test_planner_explorer_runs_a_trial_per_change():
    env = wm.make_env("CartPole-v1", seed=0)
    explorer = nb.planner_explorer(wm.TrueCartPole(device="cpu"), env, horizon=10,
                                   candidates=20, max_steps=25)
    trials = explorer.data["trials"]
    # The true dynamics, 10 steps ahead: the pole stays up for all 25 capped steps.
    assert trials[0].episode_return == 25.0 and trials[0].steps == 25 and not trials[0].ended
    explorer.controls["candidates"].value = 50
    explorer.controls["select"].value = "best"
    explorer.controls["horizon"].value = 3
    assert [(t.horizon, t.candidates, t.select) for t in trials] == [
        (10, 20, "mean"), (10, 50, "mean"), (10, 50, "best"), (3, 50, "best")]
    assert explorer.data["trial"] is trials[-1]
    assert 'H = 3, N = 50, select = "best"' in explorer.readout.value
    assert all(t.episode_return == t.steps for t in trials)  # CartPole pays 1 per step
    points = sum(len(c.get_offsets()) for c in explorer.figure.axes[0].collections
                 if (c.get_gid() or "").startswith("trials:"))
    assert points == 4


def test_planner_explorer_checks_its_arguments():
    env = wm.make_env("CartPole-v1")
    model = wm.TrueCartPole(device="cpu")
    with pytest.raises(ValueError, match="candidates"):
        nb.planner_explorer(model, env, candidates=7, candidate_options=(5, 10))
    with pytest.raises(ValueError, match="horizon"):
        nb.planner_explorer(model, env, horizon=50, max_horizon=40)
    with pytest.raises(ValueError, match="max_steps"):
        nb.planner_explorer(model, env, max_steps=0)


# ------------------------------------------------------------------------------ notebook 08


def test_throughput_explorer_switches_the_quantity():
    rows = [Measurement("mlp", "cpu", n, 10, 1e-3 + n * 1e-5) for n in (10, 100, 1000)]
    explorer = nb.throughput_explorer(rows, horizon=10)
    best = 1000 * 10 / (1e-3 + 1000 * 1e-5)
    assert explorer.data["best"] == {("mlp", "cpu"): pytest.approx(best)}
    (line,) = explorer.figure.axes[0].get_lines()
    explorer.controls["quantity"].value = "ms/call"
    (ms_line,) = explorer.figure.axes[0].get_lines()
    np.testing.assert_allclose(ms_line.get_ydata(), [1e3 * (1e-3 + n * 1e-5)
                                                     for n in (10, 100, 1000)])
    assert not np.allclose(line.get_ydata(), ms_line.get_ydata())
    with pytest.raises(ValueError, match="horizon"):
        nb.throughput_explorer(rows, horizon=30)

