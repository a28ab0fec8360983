"""The notebook layer's figures: every one draws what it claims on small synthetic inputs."""

import re
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import wmkit as wm
from wmkit import notebook as nb

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def with_gid(artists, gid: str) -> list:
    return [a for a in artists if a.get_gid() == gid]


def gid_startswith(artists, prefix: str) -> list:
    return [a for a in artists if (a.get_gid() or "").startswith(prefix)]


def pole_line(ax: Axes, index: int = -1):
    return with_gid(ax.lines, "pole")[index]


# --------------------------------------------------------------------------- draw_cartpole


def test_draw_cartpole_theta_zero_is_vertical():
    ax = nb.draw_cartpole(np.array([0.5, 0.0, 0.0, 0.0]))
    xs, ys = pole_line(ax).get_data()
    assert xs[0] == pytest.approx(0.5) and xs[1] == pytest.approx(0.5)
    assert ys[1] - ys[0] == pytest.approx(1.0)  # full pole length, pointing up
    cart = with_gid(ax.patches, "cart")[0]
    assert cart.get_x() + cart.get_width() / 2 == pytest.approx(0.5)
    assert with_gid(ax.texts, "out_of_bounds") == []
    assert len(with_gid(ax.lines, "limit")) == 2  # the ±2.4 posts
    assert len(with_gid(ax.lines, "angle_limit")) == 2


def test_draw_cartpole_positive_theta_leans_right_and_velocity_hidden_matches():
    theta = 0.1
    ax4 = nb.draw_cartpole(torch.tensor([-1.0, 3.0, theta, -2.0]))
    ax2 = nb.draw_cartpole(torch.tensor([-1.0, theta]))
    xs, ys = pole_line(ax4).get_data()
    assert xs[1] - xs[0] == pytest.approx(np.sin(theta))
    assert ys[1] - ys[0] == pytest.approx(np.cos(theta))
    np.testing.assert_allclose(pole_line(ax2).get_data(), pole_line(ax4).get_data())


def test_draw_cartpole_huge_state_is_pinned_and_marked():
    ax = nb.draw_cartpole(np.array([1e9, -1e6, 1e7, 5e5]))
    x_low, x_high = ax.get_xlim()
    cart = with_gid(ax.patches, "cart")[0]
    assert x_low < cart.get_x() and cart.get_x() + cart.get_width() < x_high
    assert cart.get_x() > 2.4  # pinned just past the right end, on the correct side
    xs, ys = pole_line(ax).get_data()
    assert np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))
    assert min(ys) >= with_gid(ax.patches, "cart")[0].get_y()  # clipped: never below the cart
    notes = with_gid(ax.texts, "out_of_bounds")
    assert len(notes) == 1 and "out of bounds" in notes[0].get_text()
    assert "1e+09" in notes[0].get_text()
    assert len(with_gid(ax.lines, "offscreen")[0].get_xdata()) == 1  # the arrow is shown
    ax.figure.canvas.draw()  # renders without error


@pytest.mark.parametrize("obs", [[0.0, 0.0, 0.3, 0.0], [3.0, 0.0], [np.nan, 0.0], [0, np.inf]])
def test_draw_cartpole_marks_each_kind_of_bad_state(obs):
    ax = nb.draw_cartpole(np.array(obs, dtype=float))
    assert len(with_gid(ax.texts, "out_of_bounds")) == 1
    ax.figure.canvas.draw()


def test_draw_cartpole_into_shared_axes_draws_track_once_and_stacks_notes():
    ax = nb.draw_cartpole(np.array([0.0, 0.5]), label="real")
    returned = nb.draw_cartpole(np.array([9.0, 0.5]), ax=ax, color="C1", label="imagined")
    nb.draw_cartpole(np.array([-9.0, 0.5]), ax=ax, color="C2", label="other")
    assert returned is ax
    assert len(with_gid(ax.lines, "track")) == 1
    assert len(with_gid(ax.patches, "cart")) == 3
    notes = with_gid(ax.texts, "out_of_bounds")
    assert len(notes) == 3 and notes[1].get_text().startswith("imagined")
    assert len({note.get_position()[1] for note in notes}) == 3  # not on top of each other
    assert [t.get_text() for t in ax.legend().get_texts()] == ["real", "imagined", "other"]


@pytest.mark.parametrize("shape", [(3,), (4, 1), (), (5,)])
def test_draw_cartpole_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="obs"):
        nb.draw_cartpole(np.zeros(shape))


# --------------------------------------------------------------------------- draw_cartpoles


def test_draw_cartpoles_draws_fading_ghosts_and_a_tip_path():
    steps = 6
    states = torch.stack([torch.linspace(0, 1, steps), torch.linspace(0, 0.1, steps)], dim=1)
    ax = nb.draw_cartpoles(states, label="imagined")
    carts = with_gid(ax.patches, "cart")
    assert len(carts) == steps
    alphas = [cart.get_alpha() for cart in carts]
    assert alphas == sorted(alphas) and alphas[-1] == pytest.approx(1.0) and alphas[0] < 0.3
    tip_path = with_gid(ax.lines, "tip_path")[0]
    assert len(tip_path.get_xdata()) == steps
    assert with_gid(ax.texts, "out_of_bounds") == []


def test_draw_cartpoles_subsamples_and_names_first_bad_step():
    theta = np.linspace(0, 0.5, 30)  # crosses 12 degrees = 0.209 rad at step 13
    states = np.stack([np.zeros(30), np.zeros(30), theta, np.zeros(30)], axis=1)
    ax = nb.draw_cartpoles(states, max_ghosts=5)
    assert len(with_gid(ax.patches, "cart")) == 5
    assert len(with_gid(ax.lines, "tip_path")[0].get_xdata()) == 30
    first_bad = int(np.argmax(np.degrees(theta) > 12))
    assert with_gid(ax.texts, "out_of_bounds")[0].get_text().startswith(f"step {first_bad}:")


@pytest.mark.parametrize("shape", [(5,), (5, 3), (0, 4), (2, 5, 4)])
def test_draw_cartpoles_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="observations"):
        nb.draw_cartpoles(np.zeros(shape))


# --------------------------------------------------------------------------- plot_losses


def make_history(epochs: int = 8, heldout: bool = True, offset: float = 0.0):
    names = ["total", "delta", "reward", "done"]
    curve = {n: list(np.linspace(1.0, 0.1, epochs) * (i + 1) + offset) for i, n in enumerate(names)}
    return SimpleNamespace(train=curve, heldout=dict(curve) if heldout else {})


def test_plot_losses_draws_train_and_heldout_per_component():
    ax = nb.plot_losses(make_history())
    assert len(gid_startswith(ax.lines, "train:")) == 4
    assert len(gid_startswith(ax.lines, "held-out:")) == 4
    assert ax.get_yscale() == "log"
    assert len(with_gid(ax.lines, "train:total")[0].get_xdata()) == 8


def test_plot_losses_without_heldout_and_with_negative_losses():
    ax = nb.plot_losses(make_history(heldout=False, offset=-0.5))
    assert len(ax.lines) == 4
    assert ax.get_yscale() == "symlog"  # a log axis would drop the negative values
    assert nb.plot_losses(make_history(), log=False).get_yscale() == "linear"


def test_plot_losses_accepts_tensors_and_rejects_bad_history():
    history = SimpleNamespace(train={"total": torch.tensor([1.0, 0.5])}, heldout={})
    assert len(nb.plot_losses(history).lines) == 1
    with pytest.raises(ValueError, match="history"):
        nb.plot_losses({"train": {}, "heldout": {}})


# --------------------------------------------------------------------------- plot_trajectories


def test_plot_trajectories_single_imagined_d4_uses_cartpole_names():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 0.05, (11, 4))
    real[:, 2] = np.linspace(-0.19, 0.19, 11)  # pole angle comes close to ±12 degrees
    fig = nb.plot_trajectories(real, real + 0.01)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == list(nb.CARTPOLE_NAMES)
    for d, ax in enumerate(axes):
        assert len(with_gid(ax.lines, "real")) == 1 and len(with_gid(ax.lines, "imagined")) == 1
        np.testing.assert_allclose(with_gid(ax.lines, "real")[0].get_ydata(), real[:, d])
    assert len(with_gid(axes[2].lines, "limit")) == 2  # ±12 degrees is near the data
    assert with_gid(axes[0].lines, "limit") == []  # ±2.4 is far away: not squashing the data
    assert with_gid(axes[1].lines, "limit") == []  # velocities have no limit


def test_plot_trajectories_fan_from_torch_and_generic_names_for_d2():
    real = torch.zeros(6, 2)
    imagined = torch.randn(5, 6, 2, generator=torch.Generator().manual_seed(0))
    fig = nb.plot_trajectories(real, imagined)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["obs[0]", "obs[1]"]
    for ax in axes:
        assert len(with_gid(ax.lines, "imagined")) == 5
        assert len(with_gid(ax.lines, "imagined_median")) == 1
    assert len(fig.legends) == 1


def test_plot_trajectories_reuses_a_figure_and_takes_names():
    fig = plt.figure()
    for _ in range(2):  # a widget redrawing into the same figure
        out = nb.plot_trajectories(np.zeros((4, 3)), np.ones((4, 3)), ["a", "b", "c"], fig=fig)
    assert out is fig
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    assert len(fig.axes) == 4  # 2 x 2 grid, one hidden


@pytest.mark.parametrize(
    ("real_shape", "imagined_shape", "name"),
    [((5, 4), (6, 4), "imagined"), ((5, 4), (3, 5, 2), "imagined"), ((5,), (5,), "real")],
)
def test_plot_trajectories_rejects_mismatched_shapes(real_shape, imagined_shape, name):
    with pytest.raises(ValueError, match=name):
        nb.plot_trajectories(np.zeros(real_shape), np.zeros(imagined_shape))


def test_plot_trajectories_rejects_wrong_number_of_names():
    with pytest.raises(ValueError, match="names"):
        nb.plot_trajectories(np.zeros((5, 4)), np.zeros((5, 4)), names=["x", "theta"])


# --------------------------------------------------------------------------- compounding error


def test_plot_compounding_error_single_curve_is_log_scale():
    errors = np.geomspace(1e-3, 1.0, 10)
    ax = nb.plot_compounding_error(torch.tensor(errors))
    (line,) = with_gid(ax.lines, "error")
    np.testing.assert_allclose(line.get_xdata(), np.arange(1, 11))
    np.testing.assert_allclose(line.get_ydata(), errors)
    assert ax.get_yscale() == "log"


def test_plot_compounding_error_dict_with_bands_over_starts():
    rng = np.random.default_rng(0)
    errors = {"mlp": np.exp(rng.normal(size=(7, 12))), "ensemble": np.geomspace(0.01, 0.1, 12)}
    ax = nb.plot_compounding_error(errors)
    lines = with_gid(ax.lines, "error")
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_ydata(), errors["mlp"].mean(axis=0))
    assert len(with_gid(ax.collections, "band")) == 1  # only the (S, H) entry has a band
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mlp", "ensemble"]


@pytest.mark.parametrize("errors", [np.zeros((2, 3, 4)), {"a": np.zeros((2, 2, 2))}, {}])
def test_plot_compounding_error_rejects_bad_shapes(errors):
    with pytest.raises(ValueError, match="errors"):
        nb.plot_compounding_error(errors)


# --------------------------------------------------------------------------- plot_returns


def fake_learn_log(seed: int, warmup_steps: int = 100, steps: int = 600):
    rng = np.random.default_rng(seed)
    episodes, real_steps = [], 0
    while real_steps < steps:
        phase = "warmup" if real_steps < warmup_steps else "agent"
        ret = float(rng.integers(10, 30)) if phase == "warmup" else 20.0 + real_steps / 5
        real_steps += int(ret)
        episodes.append(SimpleNamespace(real_steps=real_steps, ret=ret, phase=phase))
    evals = [SimpleNamespace(real_steps=s, mean_return=s / 4, returns=[s / 4] * 3)
             for s in (200, 400, 600)]
    return SimpleNamespace(episodes=episodes, evals=evals)


def test_plot_returns_single_log_marks_warmup_evals_and_target():
    log = fake_learn_log(0)
    ax = nb.plot_returns(log)
    (episodes,) = gid_startswith(ax.lines, "episodes:")
    np.testing.assert_allclose(episodes.get_xdata(), [e.real_steps for e in log.episodes])
    (evals,) = gid_startswith(ax.lines, "evals:")
    np.testing.assert_allclose(evals.get_ydata(), [50, 100, 150])
    (target,) = with_gid(ax.lines, "target")
    assert target.get_ydata()[0] == 475
    (warmup,) = with_gid(ax.patches, "warmup")
    last_warmup = max(e.real_steps for e in log.episodes if e.phase == "warmup")
    assert warmup.get_x() + warmup.get_width() == pytest.approx(last_warmup)


def test_plot_returns_list_of_seeds_has_a_median():
    ax = nb.plot_returns([fake_learn_log(seed) for seed in range(3)], target=None)
    assert len(gid_startswith(ax.lines, "episodes:")) == 3
    (median,) = gid_startswith(ax.lines, "median:")
    assert len(median.get_xdata()) > 0
    assert with_gid(ax.lines, "target") == []


def test_plot_returns_dict_compares_agents():
    logs = {"shooting": [fake_learn_log(0), fake_learn_log(1)], "dyna": fake_learn_log(2)}
    ax = nb.plot_returns(logs)
    assert len(gid_startswith(ax.lines, "median:")) == 1  # "dyna" has a single run
    assert len(gid_startswith(ax.lines, "episodes:")) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "shooting: median of 2 seeds" in labels and "dyna" in labels


def test_plot_returns_without_evals_or_warmup():
    log = SimpleNamespace(episodes=[SimpleNamespace(real_steps=s, ret=s / 10, phase="agent")
                                    for s in (10, 30, 60)], evals=[])
    ax = nb.plot_returns(log)
    assert gid_startswith(ax.lines, "evals:") == [] and with_gid(ax.patches, "warmup") == []


@pytest.mark.parametrize("bad", [[], {"a": []}, {"a": 3}, 3, [SimpleNamespace(x=1)]])
def test_plot_returns_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="log_or_logs"):
        nb.plot_returns(bad)


# --------------------------------------------------------------------------- plot_plan


def make_plan(n: int = 64, horizon: int = 5, scores=None, continuous: bool = False):
    gen = torch.Generator().manual_seed(0)
    if continuous:
        actions = torch.rand(n, horizon, 1, generator=gen) * 2 - 1
        returns = torch.randn(n, generator=gen) + actions[:, 0, 0]
    else:
        actions = torch.randint(0, 2, (n, horizon), generator=gen)
        returns = torch.randn(n, generator=gen) + 2.0 * actions[:, 0]
    return SimpleNamespace(candidate_returns=returns, candidate_actions=actions,
                           first_action_scores=scores, best_index=int(returns.argmax()),
                           action=None)


def test_plot_plan_splits_by_first_action_and_marks_the_choice():
    plan = make_plan()
    ax = nb.plot_plan(plan)
    assert len(with_gid(ax.patches, "hist")) == 2  # one filled histogram per first action
    first = plan.candidate_actions[:, 0]
    for a in (0, 1):
        (line,) = with_gid(ax.lines, f"action_score:{a}")
        assert line.get_xdata()[0] == pytest.approx(plan.candidate_returns[first == a].mean())
    (best,) = with_gid(ax.lines, "best_sequence")
    assert best.get_xdata()[0] == pytest.approx(plan.candidate_returns.max())
    chosen = [t.get_text() for t in ax.get_legend().get_texts() if "chosen" in t.get_text()]
    assert len(chosen) == 1 and chosen[0].startswith("score of action 1:")  # the higher mean


@pytest.mark.parametrize("scores", [{0: 5.0, 1: -5.0}, torch.tensor([5.0, -5.0])])
def test_plot_plan_uses_given_first_action_scores(scores):
    ax = nb.plot_plan(make_plan(scores=scores))
    assert with_gid(ax.lines, "action_score:0")[0].get_xdata()[0] == 5.0
    chosen = [t.get_text() for t in ax.get_legend().get_texts() if "chosen" in t.get_text()]
    assert chosen == ["score of action 0: 5  ← chosen"]


def test_plot_plan_continuous_actions_and_identical_returns():
    ax = nb.plot_plan(make_plan(continuous=True))
    assert len(with_gid(ax.patches, "hist")) == 1 and len(with_gid(ax.lines, "best_sequence")) == 1
    plan = make_plan()
    plan.candidate_returns = torch.full((64,), 5.0)  # every candidate survives the horizon
    nb.plot_plan(plan).figure.canvas.draw()


def test_plot_plan_rejects_mismatched_plan():
    plan = make_plan()
    plan.candidate_actions = plan.candidate_actions[:10]
    with pytest.raises(ValueError, match="plan"):
        nb.plot_plan(plan)
    with pytest.raises(ValueError, match="plan"):
        nb.plot_plan(SimpleNamespace(candidate_returns=np.zeros(3)))


# --------------------------------------------------------------------------- animation


def cartpole_trajectory(steps: int, drift: float = 0.0) -> np.ndarray:
    t = np.arange(steps)
    return np.stack([0.03 * t + drift * t, 0 * t, 0.1 * np.sin(t / 5) + drift * t, 0 * t], 1)


def test_animate_rollouts_has_t_frames_and_small_jshtml():
    steps = 50
    anim = nb.animate_rollouts(cartpole_trajectory(steps), cartpole_trajectory(steps, 0.01))
    assert isinstance(anim, FuncAnimation)
    assert len(list(anim.new_frame_seq())) == steps
    html = anim.to_jshtml()
    assert len(re.findall(r'frames\[\d+\] = "data:image/png;base64,', html)) == steps
    assert len(html.encode()) < 0.5e6


def test_animate_rollouts_moves_the_carts_and_marks_the_dream():
    real = cartpole_trajectory(20)
    imagined = cartpole_trajectory(20, drift=0.05)
    anim = nb.animate_rollouts(torch.tensor(real), torch.tensor(imagined), titles=("a", "b"))
    fig = anim._fig
    real_ax, imagined_ax = fig.axes
    assert (real_ax.get_title(), imagined_ax.get_title()) == ("a", "b")
    anim._func(19)  # draw the last frame
    cart = with_gid(real_ax.patches, "cart")[0]
    assert cart.get_x() + cart.get_width() / 2 == pytest.approx(real[19, 0])
    assert len(with_gid(imagined_ax.patches, "cart")) == 2  # imagined + faint real copy
    assert with_gid(imagined_ax.texts, "out_of_bounds")[0].get_visible()
    assert not with_gid(real_ax.texts, "out_of_bounds")[0].get_visible()
    anim._func(0)
    assert not with_gid(imagined_ax.texts, "out_of_bounds")[0].get_visible()
    anim._draw_was_started = True  # silence "deleted without rendering" in this unit test


def test_animate_rollouts_real_only_and_to_html_closes_the_figure():
    anim = nb.animate_rollouts(np.zeros((3, 2)), None)
    assert len(anim._fig.axes) == 1
    number = anim._fig.number
    html = nb.to_html(anim)
    assert "<script" in html.data
    assert number not in plt.get_fignums()


@pytest.mark.parametrize(
    ("real_shape", "imagined_shape", "name"),
    [((5, 4), (6, 4), "imagined"), ((5, 4), (5, 2), "imagined"), ((5, 3), None, "real")],
)
def test_animate_rollouts_rejects_bad_shapes(real_shape, imagined_shape, name):
    imagined = None if imagined_shape is None else np.zeros(imagined_shape)
    with pytest.raises(ValueError, match=name):
        nb.animate_rollouts(np.zeros(real_shape), imagined)


def test_plot_plan_draws_a_planners_plan_and_its_chosen_action():
    """A real `Plan` from random shooting: the chosen action is the planner's, and each first
    action's dashed line sits at the planner's own score for it."""
    planner = wm.RandomShooting(wm.TrueCartPole(device="cpu"), horizon=10, candidates=60, seed=0)
    plan = planner.plan(torch.tensor([0.0, 0.0, 0.06, 0.3]))
    ax = nb.plot_plan(plan)
    chosen = [t.get_text() for t in ax.get_legend().get_texts() if "chosen" in t.get_text()]
    assert chosen and chosen[0].startswith(f"score of action {plan.action}:")
    for a, score in enumerate(plan.first_action_scores.tolist()):
        assert with_gid(ax.lines, f"action_score:{a}")[0].get_xdata()[0] == pytest.approx(score)
