import pytest
import torch

import wmkit as wm


def test_learn_counts_every_real_step_and_logs_episodes():
    env = wm.make_env("CartPole-v1", seed=0)
    model = wm.MLPWorldModel.for_env(env, hidden=32, device="cpu")
    planner = wm.RandomShooting(model, horizon=5, candidates=20)
    log = wm.learn(env, planner, steps=150, seed=0, warmup=100, epochs=2, eval_episodes=1,
                   progress=False)
    assert len(log.buffer) == 150
    assert log.episodes[0].phase == "warmup" and log.episodes[-1].real_steps <= 150
    assert all(a.real_steps < b.real_steps for a, b in zip(log.episodes, log.episodes[1:]))
    assert log.histories and log.evals and log.evals[0].real_steps == 100
    assert len(log.evals[0].returns) == 1


def test_evaluating_less_often_leaves_training_unchanged():
    """`eval_every` thins the evaluations; the data collected stay the same, step for step."""
    def run(eval_every: int) -> wm.LearnLog:
        wm.seed_everything(0)
        env = wm.make_env("CartPole-v1", seed=0)
        planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, hidden=32, device="cpu"),
                                    horizon=5, candidates=20)
        return wm.learn(env, planner, steps=160, seed=0, warmup=60, refit_every=20, epochs=1,
                        eval_episodes=1, eval_every=eval_every, progress=False)

    every_fit, sparse = run(1), run(50)
    assert len(every_fit.histories) == len(sparse.histories) > 4
    steps = [e.real_steps for e in sparse.evals]
    assert len(steps) < len(every_fit.evals) and steps[0] == 60
    assert all(b - a >= 50 for a, b in zip(steps, steps[1:]))
    assert torch.equal(every_fit.buffer.tensors()["action"], sparse.buffer.tensors()["action"])
    with pytest.raises(ValueError, match="eval_every"):
        run(0)


def test_evaluate_is_repeatable_and_adds_no_data():
    env = wm.make_env("CartPole-v1", seed=0)
    planner = wm.RandomShooting(wm.TrueCartPole(device="cpu"), horizon=10, candidates=30)
    a = wm.evaluate(env, planner, episodes=2, seed=4)
    b = wm.evaluate(env, planner, episodes=2, seed=4)
    assert a.returns == b.returns
    with pytest.raises(ValueError, match="episodes"):
        wm.evaluate(env, planner, episodes=0)


def test_learn_rejects_warmup_longer_than_steps():
    env = wm.make_env("CartPole-v1")
    planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, device="cpu"))
    with pytest.raises(ValueError, match="warmup"):
        wm.learn(env, planner, steps=50, warmup=100, progress=False)


@pytest.mark.parametrize("fit_kwargs, match", [
    ({"lrr": 1e-3}, "fit_kwargs: .*lrr"), ({"final_lr": 0.0}, "final_lr"),
])
def test_learn_checks_fit_kwargs_before_collecting_data(fit_kwargs, match):
    env = wm.make_env("CartPole-v1")
    planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, hidden=8, device="cpu"))
    env.step = None  # a step would fail differently: nothing may be collected before the check
    with pytest.raises(ValueError, match=match):
        wm.learn(env, planner, steps=300, fit_kwargs=fit_kwargs, progress=False)


def test_min_updates_raises_the_epochs_of_small_fits():
    """At 20 rows an epoch is one batch: `fit_kwargs={"min_updates": N}` raises the epochs
    so a fit makes N updates, `epochs` stays the floor, and a bad value is refused before any
    data is collected."""
    def first_fit_epochs(**kwargs) -> int:
        env = wm.make_env("CartPole-v1", seed=0)
        planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, hidden=8, device="cpu"),
                                    horizon=3, candidates=8)
        log = wm.learn(env, planner, steps=21, seed=0, warmup=20, progress=False, **kwargs)
        return len(log.histories[0].train["total"])

    assert first_fit_epochs(epochs=2) == 2  # the default: no minimum
    assert first_fit_epochs(epochs=2, fit_kwargs={"min_updates": 50}) == 50
    assert first_fit_epochs(epochs=40, fit_kwargs={"min_updates": 25}) == 40
    env = wm.make_env("CartPole-v1")
    env.step = None  # nothing may be collected before the check
    planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, hidden=8, device="cpu"))
    with pytest.raises(ValueError, match="min_updates"):
        wm.learn(env, planner, steps=300, fit_kwargs={"min_updates": -1}, progress=False)


def test_model_based_agent_solves_cartpole_from_under_1000_steps():
    """The whole loop, seeded: a mean return >= 475 on 3 held-out episodes within 1,000 steps."""
    seed = 3  # as benchmarks/sample_efficiency.py runs it (it solved 3 of 5 seeds by 1,000)
    wm.seed_everything(seed)  # before building the model, so its initial weights are seeded
    env = wm.make_env("CartPole-v1", seed=seed)
    planner = wm.RandomShooting(wm.MLPWorldModel.for_env(env, device="cpu"), horizon=20,
                                candidates=200, seed=seed)
    log = wm.learn(env, planner, steps=1_000, seed=seed, eval_episodes=3, target_return=475,
                   progress=False)
    assert log.solved_at() is not None and log.solved_at() <= 1_000, [
        (e.real_steps, e.mean_return) for e in log.evals]
