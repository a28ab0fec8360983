"""Does an ensemble know what it does not know? Error vs disagreement, the error ratio,
calibration, noticing a change in the world, risk-aware planning, and their explorers."""

import matplotlib
import numpy as np
import pytest
import torch

import wmkit as wm
from wmkit import analysis as U
from wmkit import notebook as nb
from wmkit.analysis.calibration import coverage
from wmkit.envs_shift import ChangePoleLength
from wmkit.models.ensemble import EnsembleWorldModel

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fitted(cartpole_buffer) -> EnsembleWorldModel:
    """5 Gaussian members of 2 x 64, fitted on 2,000 random steps (seeded)."""
    model = EnsembleWorldModel.for_env(wm.make_env("CartPole-v1"), hidden=64, gaussian=True,
                                       seed=0, device="cpu")
    wm.fit(model, cartpole_buffer, epochs=40, seed=0, progress=False)
    return model


# -------------------------------------------------------------------------- rank correlation


def test_spearman_matches_the_textbook_formula_without_ties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    rank_a, rank_b = a.argsort().argsort(), b.argsort().argsort()
    expected = 1 - 6 * ((rank_a - rank_b) ** 2).sum() / (50 * (50**2 - 1))
    assert U.spearman(a, b) == pytest.approx(expected)
    assert U.spearman(a, np.exp(a)) == pytest.approx(1.0)  # any increasing relation
    assert U.spearman(torch.tensor(a), -a) == pytest.approx(-1.0)


def test_spearman_gives_ties_their_average_rank():
    # ranks of [1, 2, 2, 3] are [0, 1.5, 1.5, 3]; Pearson of those with [0, 1, 2, 3]
    assert U.spearman([1, 2, 2, 3], [0, 1, 2, 3]) == pytest.approx(
        np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1])
    assert np.isnan(U.spearman([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("a, b, match", [
    ([1, 2, 3], [1, 2], "a, b"), ([1], [2], "a, b"), ([1, np.nan], [1, 2], "a:"),
    ([1, 2], [1, np.inf], "b:"),
])
def test_spearman_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        U.spearman(a, b)


# -------------------------------------------------------------- error against disagreement


def test_prediction_error_is_the_normalised_rms_error(fitted, heldout_buffer):
    d = heldout_buffer.tensors()
    errors = U.prediction_error(fitted, d["obs"], d["action"], d["next_obs"])
    predicted = fitted.predict(d["obs"], d["action"])[0]
    manual = (((predicted - d["next_obs"]) / fitted.delta_std) ** 2).mean(-1).sqrt()
    assert errors.shape == (500,) and torch.allclose(errors, manual)
    ratio = U.error_ratio(fitted, d["obs"], d["action"], d["next_obs"], floor=0.01)
    assert torch.allclose(ratio, errors / (fitted.disagreement(d["obs"], d["action"]) + 0.01))
    with pytest.raises(ValueError, match="floor"):
        U.error_ratio(fitted, d["obs"], d["action"], d["next_obs"], floor=0)
    with pytest.raises(ValueError, match="model"):
        U.error_ratio(wm.MLPWorldModel.for_env(wm.make_env(), device="cpu"), d["obs"],
                      d["action"], d["next_obs"])


def test_disagreement_ranks_real_errors_off_the_data(fitted, heldout_buffer):
    on = U.error_vs_disagreement(fitted, heldout_buffer)
    shifted = U.shift_velocities(heldout_buffer, (1.0, 4.0), seed=0)
    off = U.error_vs_disagreement(fitted, shifted)
    assert off.mean_error > 2 * on.mean_error  # the shifted states really are harder
    assert off.mean_disagreement > 1.5 * on.mean_disagreement
    assert off.spearman > 0.6 and on.spearman > 0.3, (on, off)
    other_policy = wm.collect(wm.make_env("CartPole-v1", seed=6), steps=500, seed=6,
                              policy=U.biased_policy(0.8, seed=6))
    assert U.error_vs_disagreement(fitted, other_policy).spearman > 0.3


def test_shift_velocities_uses_the_true_dynamics(heldout_buffer):
    shifted = U.shift_velocities(heldout_buffer, 2.0)
    d = heldout_buffer.tensors()
    assert torch.allclose(shifted["obs"][:, [1, 3]], 2 * d["obs"][:, [1, 3]])
    assert torch.allclose(shifted["obs"][:, [0, 2]], d["obs"][:, [0, 2]])
    same = U.shift_velocities(heldout_buffer, 1.0)  # factor 1: exactly the real next states
    assert torch.allclose(same["next_obs"], d["next_obs"], atol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        U.shift_velocities(heldout_buffer, (3.0, 1.0))


def test_measures_check_their_arguments(fitted):
    with pytest.raises(ValueError, match="model"):
        U.error_vs_disagreement(wm.MLPWorldModel.for_env(wm.make_env(), device="cpu"), {})
    with pytest.raises(ValueError, match="data"):
        U.error_vs_disagreement(fitted, {"obs": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="levels"):
        U.calibration(fitted, {"obs": torch.zeros(2, 4), "action": torch.zeros(2, dtype=int),
                               "next_obs": torch.zeros(2, 4)}, levels=(0.5, 1.5))
    with pytest.raises(ValueError, match="prob_right"):
        U.biased_policy(1.5)


# ------------------------------------------------------------------------------ calibration


def test_coverage_of_a_perfect_gaussian_matches_the_levels():
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    levels = torch.tensor([0.5, 0.9], dtype=torch.float64)
    assert coverage(z, levels) == pytest.approx([0.5, 0.9], abs=0.005)


def test_calibration_and_reliability_curve(fitted, heldout_buffer):
    result = U.calibration(fitted, heldout_buffer, levels=(0.5, 0.9))
    assert np.isfinite(result.nll) and set(result.coverage) == {0.5, 0.9}
    assert 0 < result.coverage[0.5] < result.coverage[0.9] <= 1
    expected, observed = U.reliability_curve(fitted, heldout_buffer)
    assert expected.shape == observed.shape == (19,) and (np.diff(observed) >= 0).all()
    ax = nb.plot_reliability(expected, observed, label="ensemble")
    assert len(ax.lines) == 2
    # Without Gaussian heads only the members' spread is left: far narrower intervals.
    spread_only = fitted.subset(5)
    spread_only.gaussian = False
    assert U.calibration(spread_only, heldout_buffer).coverage[0.9] < result.coverage[0.9]


# ----------------------------------------------------------------------- a change in the world


def test_detector_on_a_synthetic_stream():
    rng = np.random.default_rng(0)
    stream = np.concatenate([rng.normal(1.0, 0.1, 300).clip(0), np.full(20, 3.0)])
    detector = U.ChangeDetector(window=100, threshold=6, patience=2, warmup=30)
    fired = [i for i, value in enumerate(stream) if detector.update(value)]
    assert fired[0] == 301 and detector.fired_at == fired  # 2 unusual steps: 300 and 301
    detector.reset()
    assert detector.score(3.0) == 0.0  # no normal yet after a reset


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 0}, "window"), ({"threshold": -1}, "threshold"), ({"patience": 0}, "patience"),
    ({"warmup": 0}, "warmup"), ({"min_std": 0}, "min_std"),
])
def test_detector_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        U.ChangeDetector(**kwargs)
    with pytest.raises(ValueError, match="value"):
        U.ChangeDetector().update(float("nan"))


def test_pole_length_changes_at_the_given_step():
    env = ChangePoleLength(wm.make_env("CartPole-v1", seed=0), at_step=5, length=1.0)
    env.reset(seed=0)
    flags = [env.step(0)[4]["dynamics_changed"] for _ in range(8)]
    assert flags == [False] * 5 + [True] * 3
    assert env.unwrapped.length == 1.0 and env.unwrapped.polemass_length == pytest.approx(0.1)
    assert wm.TrueCartPole.for_env(env).length == 1.0
    with pytest.raises(ValueError, match="length"):
        ChangePoleLength(wm.make_env("CartPole-v1"), at_step=5, length=0)
    with pytest.raises(ValueError, match="env"):
        ChangePoleLength(wm.make_env("Pendulum-v1"), at_step=5)


def test_the_error_ratio_finds_the_change_where_error_and_surprise_miss_it(fitted):
    """The detector on the error ratio (error / disagreement) fires soon after the change on
    every seed and never before it; on the normalised error, and on the kit's surprise
    (squared error in raw units), the same detector misses the change on some seeds."""
    hits = {"error_ratio": 0, "error": 0, "surprise": 0}
    false_alarms = dict.fromkeys(hits, 0)
    for seed in range(10, 16):
        env = ChangePoleLength(wm.make_env("CartPole-v1", seed=seed), at_step=300, length=1.0)
        d = wm.collect(env, steps=400, seed=seed).tensors()
        with torch.no_grad():
            predicted = fitted.predict(d["obs"], d["action"])[0]
        streams = {"error_ratio": U.error_ratio(fitted, d["obs"], d["action"], d["next_obs"]),
                   "error": U.prediction_error(fitted, d["obs"], d["action"], d["next_obs"]),
                   "surprise": U.surprise(predicted, d["next_obs"])}
        for name, values in streams.items():
            detector = U.ChangeDetector()
            fired = [i for i, value in enumerate(values.tolist()) if detector.update(value)]
            false_alarms[name] += sum(step < 300 for step in fired)
            hits[name] += any(300 <= step <= 305 for step in fired)
    assert false_alarms["error_ratio"] == 0 and hits["error_ratio"] == 6, (hits, false_alarms)
    assert hits["error"] < 6 and hits["surprise"] < 6, (hits, false_alarms)


def test_firing_triggers_a_refit_that_brings_the_error_down(fitted):
    model = fitted.subset(5)  # a copy: the shared fixture stays untouched
    env = ChangePoleLength(wm.make_env("CartPole-v1", seed=11), at_step=300, length=1.0)
    log = U.adapt_on_change(env, model, steps=600, detector=U.ChangeDetector(),
                            refit_after=100, refits=2, epochs=30, seed=11, progress=False)
    assert log.fired and 300 <= log.fired[0] <= 305, log.fired
    assert log.refits == [log.fired[0] + 99, log.fired[0] + 199]
    assert len(log.errors) == len(log.error_ratios) == len(log.surprises) == 600
    errors = np.array(log.errors)
    before, stale, refitted = errors[:300], errors[300:log.refits[0]], errors[log.refits[-1]:]
    assert stale.mean() > 3 * before.mean()
    assert refitted.mean() < 0.5 * stale.mean(), (before.mean(), stale.mean(), refitted.mean())
    assert np.mean(log.surprises[300:log.refits[0]]) > 3 * np.mean(log.surprises[:300])
    assert sum(ret for _, ret in log.returns) == sum(1 for step in range(600)
                                                     if step <= log.returns[-1][0])
    assert len(nb.plot_change(log, change_at=300).axes) == 3


def test_adapt_on_change_resets_the_agent_at_episodes_and_refits(fitted):
    """Through the one runner: the agent hears of every episode start, and of every refit
    (its belief came from the model before it)."""

    class Counting:
        resets = 0

        def __call__(self, obs):
            return 0

        def reset(self):
            Counting.resets += 1

        def reseed(self, seed):
            pass

    env = ChangePoleLength(wm.make_env("CartPole-v1", seed=2), at_step=30, length=1.0)
    log = U.adapt_on_change(env, fitted.subset(2), steps=80, detector=U.ChangeDetector(),
                            agent=Counting(), refit_after=10, refits=1, epochs=1, seed=2,
                            progress=False)
    episodes_started = 1 + sum(1 for step, _ in log.returns if step < 79)
    assert Counting.resets == episodes_started + len(log.refits)
    with pytest.raises(ValueError, match="detector"):
        U.adapt_on_change(env, fitted, steps=5, detector=None)
    with pytest.raises(ValueError, match="model"):
        U.adapt_on_change(env, wm.TrueCartPole(), steps=5, detector=U.ChangeDetector())


# ---------------------------------------------------------------------------------- widgets


def test_ensemble_size_slider_redraws(fitted, heldout_buffer):
    shifted = U.shift_velocities(heldout_buffer, 3.0)
    explorer = nb.ensemble_size_explorer(fitted, heldout_buffer, shifted, resolution=11)
    assert explorer.data["members"] == 5
    first = dict(explorer.data)
    explorer.controls["members"].value = 2
    assert explorer.data["members"] == 2
    assert not np.allclose(explorer.data["grid"], first["grid"])
    assert explorer.data["mean_off_data"] > explorer.data["mean_on_data"]
    with pytest.raises(ValueError, match="model"):
        nb.ensemble_size_explorer(fitted.subset(1), heldout_buffer, heldout_buffer)


def test_risk_slider_trades_return_for_agreement(fitted):
    planner = wm.RandomShooting(fitted, horizon=15, candidates=200, seed=0)
    explorer = nb.risk_explorer(planner, np.array([0.0, 1.0, 0.0, 1.5], dtype=np.float32))
    plain = dict(explorer.data)
    explorer.controls["risk"].value = 1.0
    assert explorer.data["risk"] == 1.0 and planner.risk == 1.0
    assert (explorer.data["first_action_scores"] < plain["first_action_scores"]).all()
    assert explorer.data["top_disagreement"] <= plain["top_disagreement"]
    # Large risk: imagined failure stops the penalty, so the best plans now die sooner.
    explorer.controls["risk"].value = 10.0
    assert explorer.data["top_disagreement"] < 0.5 * plain["top_disagreement"]
    assert explorer.data["top_return"] < plain["top_return"] - 3
    belief = planner.model.filter(None, None, np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="risk"):
        U.risk_tradeoff(planner, belief, -1.0)
