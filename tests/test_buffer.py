import numpy as np
import pytest
import torch

import wmkit as wm


def test_collect_fills_buffer_with_consistent_transitions(cartpole_buffer):
    data = cartpole_buffer.tensors()
    assert len(cartpole_buffer) == 2_000
    assert data["obs"].shape == (2_000, 4) and data["action"].dtype == torch.long
    # Within an episode the next observation is the following obs; episodes start fresh.
    same_episode = ~data["is_first"][1:]
    assert torch.equal(data["next_obs"][:-1][same_episode], data["obs"][1:][same_episode])
    ended = data["terminated"][:-1] | data["truncated"][:-1]
    assert torch.equal(ended, data["is_first"][1:])
    assert 60 < int(data["terminated"].sum()) < 150  # random episodes last ~20 steps


def test_episode_returns_match_episode_lengths(cartpole_buffer):
    returns = cartpole_buffer.episode_returns()
    assert len(returns) == int(cartpole_buffer.tensors()["terminated"].sum())
    assert 10 < np.mean(returns) < 35


def test_sampling_is_seeded(cartpole_buffer):
    a = cartpole_buffer.sample(64, torch.Generator().manual_seed(3))
    b = cartpole_buffer.sample(64, torch.Generator().manual_seed(3))
    c = cartpole_buffer.sample(64, torch.Generator().manual_seed(4))
    assert torch.equal(a["obs"], b["obs"]) and not torch.equal(a["obs"], c["obs"])


def test_stats_are_per_dimension_and_floored(cartpole_buffer):
    stats = cartpole_buffer.stats()
    data = cartpole_buffer.tensors()
    assert torch.allclose(stats.obs_mean, data["obs"].mean(0))
    assert stats.obs_std.shape == (4,) and (stats.delta_std > 0).all()
    assert float(stats.reward_std) == pytest.approx(1e-3)  # constant reward, floored std
    assert 0.03 < stats.done_fraction < 0.08
    seen = torch.cat([data["obs"], data["next_obs"]])  # the range: every observation held
    assert torch.equal(stats.obs_low, seen.amin(0)) and torch.equal(stats.obs_high, seen.amax(0))
    assert (stats.obs_high[2] > 0.2095) and (stats.obs_low[2] < -0.2095)  # the pole's ends


def test_extend_and_growth():
    env = wm.make_env("CartPole-v1", seed=1)
    small = wm.collect(env, steps=5, seed=1)
    big = wm.ReplayBuffer.for_env(env, capacity=2)
    big.extend(small)
    big.extend(small)
    assert len(big) == 10
    assert torch.equal(big[5]["obs"], small[0]["obs"]) and bool(big[5]["is_first"])


@pytest.mark.parametrize("cut", [1, 17, 40, 59])
def test_extend_equals_adding_row_by_row(cut):
    """Joining two halves of one stream gives the buffer the whole stream gives, is_first
    included: a half that continues an unfinished episode does not start a new one."""
    env = wm.make_env("CartPole-v1", seed=2)
    whole = wm.collect(env, steps=60, seed=2)
    first, second = (wm.ReplayBuffer.for_env(env, capacity=3) for _ in range(2))
    for buffer, rows in ((first, range(cut)), (second, range(cut, 60))):
        for i in rows:
            row = whole[i]
            buffer.add(row["obs"], int(row["action"]), float(row["reward"]), row["next_obs"],
                       bool(row["terminated"]), bool(row["truncated"]))
    first.extend(second)
    for key, tensor in whole.tensors().items():
        assert torch.equal(first.tensors()[key], tensor), key
    assert first.episode_returns() == whole.episode_returns()


def test_episode_returns_sum_each_finished_episode():
    env = wm.make_env("CartPole-v1", seed=5)
    buffer = wm.ReplayBuffer.for_env(env)
    assert buffer.episode_returns() == []
    rows = [(1, False), (2, True), (3, False), (4, False), (5, True), (6, False)]
    for reward, terminated in rows:
        buffer.add([0.0] * 4, 0, reward, [0.0] * 4, terminated)
    assert buffer.episode_returns() == [3.0, 12.0]  # the unfinished last episode is left out


@pytest.mark.parametrize("field, kwargs, match", [
    ("obs", {"obs": [0.0, 0.0, 0.0]}, "obs"),
    ("nan", {"obs": [0.0, float("nan"), 0.0, 0.0]}, "obs: contains non-finite"),
    ("next_obs", {"next_obs": [np.inf, 0, 0, 0]}, "next_obs"),
    ("action range", {"action": 2}, "action"),
    ("action type", {"action": "left"}, "action"),
    ("action float", {"action": 0.5}, "action"),
])
def test_bad_transitions_are_refused_with_the_argument_named(field, kwargs, match):
    buffer = wm.ReplayBuffer.for_env(wm.make_env("CartPole-v1"))
    args = {"obs": [0.0] * 4, "action": 1, "reward": 1.0, "next_obs": [0.0] * 4,
            "terminated": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        buffer.add(**args)
    assert len(buffer) == 0


def test_empty_buffer_is_a_clear_error():
    buffer = wm.ReplayBuffer.for_env(wm.make_env("CartPole-v1"))
    with pytest.raises(ValueError, match="buffer: is empty"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="buffer: is empty"):
        wm.fit(wm.MLPWorldModel.for_env(wm.make_env("CartPole-v1")), buffer, progress=False)


def test_box_action_envs_are_supported():
    env = wm.make_env("Pendulum-v1", seed=0)
    buffer = wm.collect(env, steps=50, seed=0)
    assert buffer.tensors()["action"].shape == (50, 1)
    with pytest.raises(ValueError, match="action"):
        buffer.add([0.0] * 3, [5.0], 0.0, [0.0] * 3, False)  # outside [-2, 2]


def test_make_env_rejects_unknown_and_non_flat_envs():
    with pytest.raises(ValueError, match="name"):
        wm.make_env("NoSuchEnv-v0")


def test_collect_is_repeatable_and_accepts_a_policy():
    a = wm.collect(wm.make_env("CartPole-v1", seed=5), steps=100, seed=5).tensors()
    b = wm.collect(wm.make_env("CartPole-v1", seed=5), steps=100, seed=5).tensors()
    assert torch.equal(a["obs"], b["obs"]) and torch.equal(a["action"], b["action"])
    always_left = wm.collect(wm.make_env("CartPole-v1"), steps=30, policy=lambda obs: 0)
    assert int(always_left.tensors()["action"].sum()) == 0
    with pytest.raises(ValueError, match="steps"):
        wm.collect(wm.make_env("CartPole-v1"), steps=0)


def test_hide_velocities_keeps_positions_only():
    env = wm.make_env("CartPole-v1", seed=0, hide_velocities=True)
    obs, _ = env.reset(seed=0)
    full, _ = wm.make_env("CartPole-v1", seed=0).reset(seed=0)
    assert obs.shape == (2,) and np.allclose(obs, full[[0, 2]])


# -- max_size: a ring buffer once full ----------------------------------------------------------


def add_rows(buffer: wm.ReplayBuffer, source: wm.ReplayBuffer, rows: range) -> None:
    for i in rows:
        row = source[i]
        buffer.add(row["obs"], int(row["action"]), float(row["reward"]), row["next_obs"],
                   bool(row["terminated"]), bool(row["truncated"]))


@pytest.mark.parametrize("max_size", [1, 7, 50])
def test_max_size_keeps_the_newest_rows_in_order(max_size):
    """Once full, each new row evicts the oldest: the buffer holds the last `max_size` rows of
    the stream, oldest first, and its oldest row starts an episode (its past is gone)."""
    env = wm.make_env("CartPole-v1", seed=4)
    whole = wm.collect(env, steps=300, seed=4)
    ring = wm.ReplayBuffer.for_env(env, capacity=2, max_size=max_size)
    sizes = []
    for i in range(300):
        add_rows(ring, whole, range(i, i + 1))
        sizes.append(len(ring))
    assert sizes == [min(i + 1, max_size) for i in range(300)]
    kept, expected = ring.tensors(), whole[torch.arange(300 - max_size, 300)]
    expected["is_first"][0] = True
    for key in kept:
        assert torch.equal(kept[key], expected[key]), key
    assert torch.equal(ring.episode_ids(), kept["is_first"].long().cumsum(0) - 1)
    assert len(ring._data["obs"]) <= 4 * max_size + 2  # storage does not grow without bound
    # Sampling, windows and statistics see the kept rows only.
    assert ring.sample(5, torch.Generator().manual_seed(0))["obs"].shape == (5, 4)
    assert torch.allclose(ring.stats().obs_mean, expected["obs"].mean(0))


def test_extend_past_max_size_keeps_the_newest_rows():
    env = wm.make_env("CartPole-v1", seed=5)
    whole = wm.collect(env, steps=40, seed=5)
    ring = wm.ReplayBuffer.for_env(env, max_size=25)
    add_rows(ring, whole, range(10))
    rest = wm.ReplayBuffer.for_env(env)
    add_rows(rest, whole, range(10, 40))
    ring.extend(rest)
    assert len(ring) == 25
    assert torch.equal(ring.tensors()["obs"], whole.tensors()["obs"][15:])
    assert bool(ring[0]["is_first"])


@pytest.mark.parametrize("max_size", [0, -3, 2.5, True])
def test_bad_max_size_is_refused(max_size):
    with pytest.raises(ValueError, match="max_size"):
        wm.ReplayBuffer(4, wm.ActionSpec(discrete=True, n=2), max_size=max_size)
