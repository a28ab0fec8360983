"""Devices: models and planners run where they are told, and planning never waits on the device.

CI has no GPU, so the checks use CPU-testable stand-ins for what goes wrong on CUDA:

- a host-device *sync* (the host waits for the GPU to finish) comes from reading a tensor's
  value: `int(t)`, `t.item()`, `bool(t)`, `t.cpu()`, indexing with a tensor scalar, or ops whose
  output size depends on values (`nonzero`, boolean masks, `bincount`). `SyncRecorder` records
  those calls (the Python-level reads and the aten ops) while the planner runs on the CPU;
- the "meta" device has shapes but no values: a model on it runs `filter`/`imagine` only if
  they never read a value and never mix in a tensor made on the CPU;
- under `torch.set_default_device("meta")` a tensor created without `device=` lands on meta,
  so planning with a CPU model breaks loudly if any tensor forgets its device.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import wmkit as wm
from wmkit import notebook as nb
from wmkit import utils
from wmkit.analysis import throughput
from wmkit.models.rssm import RSSMWorldModel
from wmkit.planners import base as planner_base

OBS = np.array([0.01, -0.2, 0.03, 0.25], dtype=np.float32)

# Python-level reads of a tensor's value: each makes the host wait for a CUDA tensor.
READ_METHODS = {"item", "tolist", "numpy", "cpu", "__int__", "__float__", "__bool__",
                "__index__", "__array__"}
# aten ops that sync on CUDA: they read a value, or their output size depends on values.
SYNC_OPS = {"aten._local_scalar_dense", "aten.item", "aten.nonzero", "aten.masked_select",
            "aten.bincount", "aten.unique_consecutive", "aten._unique2", "aten.is_nonzero",
            "aten.equal", "aten.masked_scatter_"}


def _op_name(func: Any) -> str:
    return ".".join(str(func).split(".")[:2])  # "aten.nonzero.default" -> "aten.nonzero"


def _is_sync_op(func: Any, args: tuple, kwargs: dict) -> bool:
    name = _op_name(func)
    if name in SYNC_OPS:
        return True
    if name in ("aten.index", "aten.index_put", "aten.index_put_"):  # boolean-mask indexing
        indices = args[1] if len(args) > 1 else ()
        return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices)
    if name == "aten._to_copy":  # device -> host copy
        target = kwargs.get("device")
        return target is not None and torch.device(target).type == "cpu" \
            and args[0].device.type != "cpu"
    if name == "aten.copy_":
        return args[0].device.type == "cpu" and args[1].device.type != "cpu"
    return False


class _Reads(TorchFunctionMode):
    def __init__(self, events: list[tuple[str, bool]]) -> None:
        super().__init__()
        self.events = events

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        read = name in READ_METHODS or (name == "to" and _to_host(args, kwargs))
        self.events.append((f"Tensor.{name}", read))
        return func(*args, **kwargs)


def _to_host(args: tuple, kwargs: dict) -> bool:
    device = torch._C._nn._parse_to(*args[1:], **kwargs)[0]
    return device is not None and device.type == "cpu"


class _Ops(TorchDispatchMode):
    def __init__(self, events: list[tuple[str, bool]]) -> None:
        super().__init__()
        self.events = events

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.events.append((_op_name(func), _is_sync_op(func, args, kwargs)))
        return func(*args, **kwargs)


class SyncRecorder:
    """Records, in order, every torch call and aten op, flagging those that sync on CUDA.

    `events`: [(name, is_sync)]; `syncs`: the names of the flagged ones.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []
        self._modes = (_Reads(self.events), _Ops(self.events))

    def __enter__(self) -> SyncRecorder:
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    @property
    def syncs(self) -> list[str]:
        return [name for name, sync in self.events if sync]

    @property
    def reads(self) -> list[str]:
        """The flagged Python-level reads (`int(t)`, `t.cpu()`, ...), without their aten ops."""
        return [name for name in self.syncs if name.startswith("Tensor.")]

    def _last(self, read: str) -> int:
        return max(i for i, (name, _) in enumerate(self.events) if name == read)

    def syncs_before_last_read(self, read: str) -> list[str]:
        """Flagged events before the last `read` event (what the final read excuses)."""
        return [name for name, sync in self.events[:self._last(read)] if sync]

    def events_after_last_read(self, read: str) -> list[str]:
        """Every event after the last `read` event (its own aten ops, if it was the last),
        except leaving a no_grad block: a host-side flag, no work for the device."""
        return [name for name, _ in self.events[self._last(read) + 1:]
                if name != "Tensor._set_grad_enabled"]


# -- the recorder itself: negative controls -----------------------------------------------------

@pytest.mark.parametrize("read, expected", [
    (lambda x: x.sum().item(), "aten._local_scalar_dense"),
    (lambda x: int(x.argmax()), "Tensor.__int__"),
    (lambda x: bool((x > 0).any()), "Tensor.__bool__"),
    (lambda x: x[x.argmax()], "aten._local_scalar_dense"),  # a tensor scalar as an index
    (lambda x: x[x > 0.5], "aten.index"),  # a boolean mask
    (lambda x: torch.nonzero(x), "aten.nonzero"),
    (lambda x: torch.bincount((x * 3).long()), "aten.bincount"),
    (lambda x: x.cpu(), "Tensor.cpu"),
    (lambda x: x.to("cpu"), "Tensor.to"),
])
def test_recorder_catches_every_kind_of_read(read, expected):
    x = torch.rand(6, generator=torch.Generator().manual_seed(0))
    with SyncRecorder() as recorder:
        read(x)
    assert expected in recorder.syncs
    with SyncRecorder() as recorder:
        torch.where(x > 0.5, x * 2, x.new_zeros(())).cumsum(0).argmax()
    assert recorder.syncs == [] and len(recorder.events) >= 5


class _ReadsBestIndexEarly(wm.RandomShooting):
    """The planner as it was: reads the best index (a sync) before choosing the action."""

    def score(self, rollout: wm.Rollout) -> torch.Tensor:
        returns = super().score(rollout)
        self.best = int(returns.argmax())
        return returns


def test_recorder_catches_a_planner_that_reads_too_early(trained_mlp):
    planner = _ReadsBestIndexEarly(trained_mlp, horizon=4, candidates=16)
    state = trained_mlp.filter(None, None, OBS)
    with SyncRecorder() as recorder:
        planner.plan(state)
    assert recorder.syncs_before_last_read("Tensor.__int__") != []


# -- planning: one read, at the very end --------------------------------------------------------

def _models() -> dict[str, Any]:
    env = wm.make_env("CartPole-v1")
    wm.seed_everything(0)
    return {
        "mlp": wm.MLPWorldModel.for_env(env, hidden=16, device="cpu"),
        "ensemble": wm.EnsembleWorldModel.for_env(env, ensemble_size=3, hidden=16, seed=0,
                                                  device="cpu"),
        "ensemble-member": wm.EnsembleWorldModel.for_env(
            env, ensemble_size=3, hidden=16, seed=0, propagation="random_member", device="cpu"),
        "rssm": RSSMWorldModel.for_env(env, deter=16, stoch=4, hidden=16, device="cpu"),
        "true": wm.TrueCartPole(device="cpu"),
    }


PLANS = [("mlp", {}), ("mlp", {"select": "best"}), ("mlp", {"termination_fn":
         wm.cartpole_termination}), ("ensemble", {"risk": 0.5, "max_disagreement": 1.0}),
         ("ensemble-member", {}), ("rssm", {}), ("true", {})]


@pytest.mark.parametrize("name, kwargs", PLANS, ids=[f"{n}-{'-'.join(k)}" for n, k in PLANS])
def test_a_decision_reads_the_device_once_at_the_end(name, kwargs):
    model = _models()[name]
    planner = wm.RandomShooting(model, horizon=5, candidates=32, seed=0, **kwargs)
    state = model.filter(None, None, OBS)
    with SyncRecorder() as recorder:
        plan = planner.plan(state)
    # The only read is `int(first)`, and nothing but its own aten ops come after it.
    assert recorder.reads == ["Tensor.__int__"]
    assert recorder.syncs_before_last_read("Tensor.__int__") == []
    assert recorder.events_after_last_read("Tensor.__int__") == recorder.syncs[1:] != []
    assert plan.action in (0, 1) and plan.best_index.device == model.device


def test_a_box_decision_reads_the_device_once_at_the_end():
    env = wm.make_env("Pendulum-v1")
    model = wm.MLPWorldModel.for_env(env, hidden=16, device="cpu")
    planner = wm.RandomShooting(model, horizon=5, candidates=32, seed=0)
    state = model.filter(None, None, np.zeros(3, dtype=np.float32))
    with SyncRecorder() as recorder:
        plan = planner.plan(state)
    assert recorder.syncs_before_last_read("Tensor.cpu") == []
    assert recorder.reads == ["Tensor.cpu", "Tensor.numpy"]
    assert plan.action.shape == (1,) and -2 <= plan.action[0] <= 2


def test_box_bounds_are_made_once_per_device_and_training_can_reuse_them():
    env = wm.make_env("Pendulum-v1")
    model = wm.MLPWorldModel.for_env(env, hidden=16, device="cpu")
    planner = wm.RandomShooting(model, horizon=3, candidates=8, seed=0)
    planner(np.zeros(3, dtype=np.float32))  # caches the bounds under inference mode
    low, high = model.action_spec.bounds("cpu")
    assert model.action_spec.bounds(torch.device("cpu"))[0] is low  # no copy per encode
    assert low.tolist() == [-2.0] and high.tolist() == [2.0] and not low.is_inference()
    buffer = wm.collect(env, steps=40, seed=0)
    assert wm.fit(model, buffer, epochs=1, progress=False).train["total"]  # backward works


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("name", ["mlp", "ensemble", "rssm"])
def test_on_cuda_a_decision_syncs_once(name, recwarn):
    """On a GPU, CUDA's own sync detector counts the syncs of a decision: one (the action)."""
    model = _models()[name].to("cuda")
    planner = wm.RandomShooting(model, horizon=5, candidates=1024, seed=0)
    state = model.filter(None, None, OBS)
    planner.plan(state)  # warm up (cuBLAS handles, allocator)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        recwarn.clear()
        planner.plan(state)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in recwarn if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]


# -- placement: nothing is made on the wrong device ---------------------------------------------

@pytest.mark.parametrize("name", ["mlp", "ensemble", "ensemble-member", "rssm"])
def test_filter_and_imagine_run_on_a_device_without_values(name):
    """On "meta" a tensor has no values: any read raises, and so does mixing in a CPU tensor."""
    model = _models()[name].to("meta")
    assert model.device == torch.device("meta")
    state = model.filter(None, None, OBS)
    state = model.filter(state, 1, OBS)
    actions = torch.randint(2, (8, 5), device="meta")
    for termination_fn in (None, wm.cartpole_termination):
        rollout = model.imagine(state, actions, termination_fn, check=False)  # no values
        assert rollout.observations.device.type == "meta"
        assert rollout.rewards.shape == rollout.dones.shape == (8, 5)


def test_host_values_are_checked_on_the_host():
    # Checked on the CPU first, then moved: on "meta" (no values) a check would raise.
    tensor = utils.as_float_tensor("obs", OBS, (4,), torch.device("meta"))
    assert tensor.device.type == "meta" and tensor.shape == (4,)
    with pytest.raises(ValueError, match="obs: contains non-finite"):
        utils.as_float_tensor("obs", [0.0, float("nan")], (2,), torch.device("meta"))


@pytest.mark.parametrize("name, kwargs", PLANS, ids=[f"{n}-{'-'.join(k)}" for n, k in PLANS])
def test_planning_makes_every_tensor_on_the_models_device(name, kwargs):
    """A tensor made without `device=` lands on meta here, and mixing it with the CPU model's
    tensors raises: so this passes only if every tensor in a decision names its device."""
    model = _models()[name]
    planner = wm.RandomShooting(model, horizon=5, candidates=32, seed=0, **kwargs)
    planner(OBS)
    with torch.device("meta"):
        assert torch.empty(1).device.type == "meta"  # the trick is on
        action = planner(OBS)  # filter (with the previous action) + plan
    assert action in (0, 1)
    assert planner.last_plan.candidate_actions.device.type == "cpu"


def test_the_trick_catches_a_tensor_made_without_device():
    model = _models()["mlp"]
    with torch.device("meta"), pytest.raises(RuntimeError, match="meta"):
        model.imagine(model.filter(None, None, OBS), torch.randint(2, (4, 3), device="cpu")
                      ).rewards + torch.zeros(4, 3)


# -- the device argument and the default -------------------------------------------------------

def test_every_constructor_honours_device():
    env = wm.make_env("CartPole-v1")
    for model in (wm.MLPWorldModel.for_env(env, device="meta"),
                  wm.EnsembleWorldModel.for_env(env, device="meta"),
                  RSSMWorldModel.for_env(env, device="meta"),
                  wm.TrueCartPole(device="meta")):
        assert model.device == torch.device("meta")
        tensors = list(model.parameters()) + list(model.buffers()) \
            if isinstance(model, torch.nn.Module) else []
        assert all(t.device.type == "meta" for t in tensors)
    planner = wm.RandomShooting(_models()["mlp"], horizon=3, candidates=8)
    assert planner.device == torch.device("cpu") == planner.generator.device
    planner(OBS)
    plan = planner.last_plan
    assert {plan.candidate_actions.device.type, plan.candidate_returns.device.type,
            plan.rollout.observations.device.type} == {"cpu"}


def test_the_default_device_is_cuda_when_present(monkeypatch):
    """Checked without a GPU: CUDA is made to look present and `.to` records where it goes."""
    monkeypatch.setattr(utils, "_announced_devices", set())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert wm.default_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert wm.default_device() == torch.device("cuda")
    assert wm.default_device("cpu") == torch.device("cpu")
    moved_to: list[Any] = []

    def record_to(module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        moved_to.append(args[0] if args else kwargs.get("device"))
        return module  # stays on the CPU: nothing is built on CUDA

    monkeypatch.setattr(torch.nn.Module, "to", record_to)
    env = wm.make_env("CartPole-v1")
    wm.MLPWorldModel.for_env(env)
    wm.EnsembleWorldModel.for_env(env)
    RSSMWorldModel.for_env(env)
    assert moved_to == [torch.device("cuda")] * 3
    assert wm.TrueCartPole().device == torch.device("cuda")


# -- the normalisation mixin ---------------------------------------------------------------------

def test_normalised_models_keep_their_state_dict_keys(cartpole_buffer):
    env = wm.make_env("CartPole-v1")
    stats = ["obs_mean", "delta_mean", "obs_std", "delta_std", "reward_mean", "reward_std",
             "obs_low", "obs_high"]
    mlp = wm.MLPWorldModel.for_env(env, device="cpu")
    assert list(mlp.state_dict())[:8] == stats
    ensemble = wm.EnsembleWorldModel.for_env(env, gaussian=True, device="cpu")
    assert [k for k in ensemble.state_dict() if not k.startswith("net.")] == \
        ["max_logvar", "min_logvar", *stats, "action_space"]
    for model in (mlp, ensemble):
        model.set_normalizer(cartpole_buffer.stats())
        for name in stats:
            assert torch.equal(getattr(model, name), getattr(cartpole_buffer.stats(), name))
    image_env = SimpleNamespace(observation_space=gym.spaces.Box(0, 1, (3, 8, 8)),
                                action_space=gym.spaces.Discrete(2))
    for cls in (wm.MLPWorldModel, wm.EnsembleWorldModel):
        with pytest.raises(ValueError, match="env: expected a flat Box"):
            cls.for_env(image_env)


# -- torch.compile: opt-in, same numbers ---------------------------------------------------------

def test_compiled_imagine_gives_the_same_rollout():
    model = _models()["mlp"]
    state = model.filter(None, None, OBS)
    actions = torch.randint(2, (16, 6), generator=torch.Generator().manual_seed(0))
    compiled = planner_base.compile_imagine(model, backend="eager")  # traces only: quick
    with torch.inference_mode():
        expected, got = model.imagine(state, actions), compiled(state, actions)
    assert torch.equal(expected.observations, got.observations)
    assert torch.equal(expected.rewards, got.rewards)


def test_a_planner_compiles_with_cuda_graphs_on_cuda_only():
    assert planner_base.compile_mode("cuda") == planner_base.CUDA_GRAPHS == "reduce-overhead"
    assert planner_base.compile_mode(torch.device("cuda", 1)) == planner_base.CUDA_GRAPHS
    assert planner_base.compile_mode("cpu") == "default"


def test_a_compiled_planner_decides_like_the_eager_one(monkeypatch):
    model = _models()["ensemble"]
    monkeypatch.setattr(planner_base, "compile_imagine",
                        functools.partial(planner_base.compile_imagine, backend="eager"))
    eager = wm.RandomShooting(model, horizon=4, candidates=16, seed=3)
    compiled = wm.RandomShooting(model, horizon=4, candidates=16, seed=3, compile=True)
    assert compiled.compiled and not eager.compiled
    assert [eager(OBS) for _ in range(3)] == [compiled(OBS) for _ in range(3)]
    assert torch.equal(eager.last_plan.candidate_returns, compiled.last_plan.candidate_returns)
    assert torch.equal(eager.last_plan.rollout.disagreement,
                       compiled.last_plan.rollout.disagreement)


# -- the throughput benchmark: its quick path runs ----------------------------------------------

def test_the_benchmark_runs_and_draws(tmp_path, capsys, load_benchmark):
    plot = tmp_path / "throughput.png"
    load_benchmark("rollout_throughput").main(
        ["--quick", "--candidates", "10,100", "--horizons", "3", "--plan-candidates", "50",
         "--threads", "1", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert "| model | device | candidates | horizon |" in out
    rows = [line for line in out.splitlines() if line.startswith("| mlp ")
            or line.startswith("| ensemble ") or line.startswith("| rssm ")]
    assert len(rows) == 3 * 2  # 3 models x 2 sizes x 1 horizon, on the CPU
    assert "decisions/s" in out and plot.stat().st_size > 10_000


def test_measurements_add_up():
    model = _models()["mlp"]
    row = throughput.measure_imagine(model, "mlp", candidates=64, horizon=4, reps=2)
    assert row.transitions_per_s == pytest.approx(64 * 4 / row.seconds)
    assert row.candidates == 64 and row.device == "cpu" and row.seconds > 0
    # Far beyond any memory: skipped, with the reason, not run.
    huge = throughput.measure_imagine(model, "mlp", candidates=10**12, horizon=30, reps=1)
    assert huge.skipped == "memory" and huge.transitions_per_s is None


def test_the_throughput_figure_draws_what_was_measured():
    # A fixed 1 ms per call plus 10 us per candidate: the rate grows with N.
    rows = [throughput.Measurement("mlp", "cpu", n, 10, 1e-3 + n * 1e-5) for n in (10, 100, 1000)]
    rows.append(throughput.Measurement("mlp", "cpu", 10**6, 10, skipped="memory"))
    view = nb.draw_throughput(rows, horizon=10, quantity="ms/call")
    fig, readout = view.figure, view.readout
    assert view.data["best"][("mlp", "cpu")] == pytest.approx(1000 * 10 / 11e-3)
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [10, 100, 1000]  # the skipped size is not drawn
    assert np.allclose(line.get_ydata(), [1.1, 2.0, 11.0])  # ms per call
    assert "mlp on cpu: best" in readout and "N=1000" in readout
    for kwargs, match in (({"horizon": 30}, "horizon"), ({"quantity": "flops"}, "quantity")):
        with pytest.raises(ValueError, match=match):
            nb.plot_throughput(rows, **kwargs)
    with pytest.raises(ValueError, match="rows"):
        nb.plot_throughput(rows[-1:])
    assert "skipped (memory)" in throughput.markdown_table(rows)
