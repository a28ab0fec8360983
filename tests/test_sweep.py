"""wmkit.sweep: seeded runs give the same numbers one by one and on Ray, the results file keeps
every finished run, and bad input is refused before any run starts."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import wmkit as wm
from wmkit.sweep import add_sweep_arguments, check_address, parse_seeds, parse_sweep_args, run_sweep

RUNS = [{"seed": 0}, {"seed": 1}, {"seed": 2}]


def seeded_fit(seed: int, steps: int = 20) -> dict:
    """A tiny seeded training run: gradient descent of a linear model on random data.

    (Plain autograd, no torch.optim: a first optimizer step costs seconds of imports.)
    """
    wm.seed_everything(seed)
    x = torch.randn(64, 4)
    y = x @ torch.randn(4, 1) + 0.1 * torch.randn(64, 1)
    weights = (0.1 * torch.randn(4, 1)).requires_grad_()
    for _ in range(steps):
        loss = (x @ weights - y).pow(2).mean()
        (gradient,) = torch.autograd.grad(loss, (weights,))
        with torch.no_grad():
            weights -= 0.1 * gradient
    return {"loss": loss.item(), "weights": weights.flatten().tolist(),
            "threads": torch.get_num_threads(), "pid": os.getpid()}


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def closed_port() -> int:
    """A local port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_one_by_one_returns_fn_results_in_order_and_writes_each_run(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    torch.set_num_threads(2)
    try:
        results = run_sweep(seeded_fit, RUNS, workers=1, out=out, progress=False)
        assert torch.get_num_threads() == 2, "the caller's thread count is restored"
    finally:
        torch.set_num_threads(1)
    assert results == [seeded_fit(**run) for run in RUNS]
    assert results[0]["loss"] != results[1]["loss"], "the seed must matter for this test"
    assert {r["threads"] for r in results} == {1}, "one torch thread per run"
    assert [r["run"] for r in records(out)] == RUNS
    assert [r["result"] for r in records(out)] == results


def test_a_failed_run_keeps_the_finished_ones_and_a_rerun_runs_only_the_rest(
        tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    calls = []

    def flaky(seed: int) -> dict:
        calls.append(seed)
        if seed == 1:
            raise OSError("disk full")
        return seeded_fit(seed)

    with pytest.raises(RuntimeError, match="run {'seed': 1} failed") as failure:
        run_sweep(flaky, RUNS, workers=1, out=out, progress=False)
    assert isinstance(failure.value.__cause__, OSError)
    assert calls == [0, 1], "the sweep stops at the failed run"
    assert [r["run"] for r in records(out)] == [{"seed": 0}]

    with out.open("a") as file:
        file.write('{"run": {"seed": 1}, "res')  # killed mid-write: a cut-off last line
    calls.clear()
    results = run_sweep(lambda seed: (calls.append(seed), seeded_fit(seed))[1], RUNS,
                        workers=1, out=out, progress=False)
    assert calls == [1, 2], "finished runs are read back, not run again"
    assert results == [seeded_fit(**run) for run in RUNS]
    assert sorted(r["run"]["seed"] for r in records(out)) == [0, 1, 2]


def test_ctrl_c_keeps_the_finished_runs(tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"

    def interrupt(run: dict, result: dict) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C came right after the first run

    with pytest.raises(KeyboardInterrupt):
        run_sweep(seeded_fit, RUNS, workers=1, out=out, progress=False, on_result=interrupt)
    assert records(out) == [{"run": {"seed": 0}, "result": records(out)[0]["result"],
                             "seconds": records(out)[0]["seconds"]}]
    assert records(out)[0]["result"] == seeded_fit(0)


def never(seed: int) -> dict:
    raise AssertionError("a run started")


@pytest.mark.parametrize("kwargs, message", [
    ({"runs": []}, "runs: expected a non-empty list"),
    ({"runs": {"seed": 0}}, "runs: expected a non-empty list"),
    ({"runs": [0]}, r"runs\[0\]: expected a dict"),
    ({"runs": [{"seed": 0}, {"seed": 0}]}, r"runs\[1\]: duplicate of runs\[0\]"),
    ({"runs": [{"seed": torch.tensor(0)}]}, r"runs\[0\]: expected JSON values"),
    ({"runs": [{"seed": 0}, {"sed": 1}]}, r"runs\[1\]: fn cannot take"),
    ({"workers": 0}, "workers: expected a positive int"),
    ({"threads": 0}, "threads: expected a positive int"),
    ({"out": "missing/sweep.jsonl"}, "out: folder"),
    ({"out": "not-a-sweep.jsonl"}, "out: line 1 .* is not a sweep record"),
])
def test_bad_input_is_refused_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             kwargs: dict, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("not-a-sweep.jsonl").write_text('{"seed": 0}\n')
    arguments = {"runs": RUNS, "workers": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_sweep(never, **arguments)


def test_an_address_nobody_answers_is_refused_in_seconds() -> None:
    port = closed_port()
    with pytest.raises(ValueError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}", timeout=2.0)
    with pytest.raises(ValueError, match="expected 'host:port'"):
        check_address("127.0.0.1:port")


def test_without_ray_it_runs_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    out = tmp_path / "sweep.jsonl"
    results = run_sweep(seeded_fit, RUNS, out=out, progress=False)
    assert "Ray is not installed" in capsys.readouterr().out
    assert results == [seeded_fit(**run) for run in RUNS]
    assert [r["result"] for r in records(out)] == results
    for asked in ({"workers": 2}, {"address": "auto"}):
        with pytest.raises(ValueError, match="needs Ray"):
            run_sweep(never, RUNS, progress=False, **asked)


def test_a_local_ray_that_cannot_start_means_one_by_one(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    def init(**kwargs: object) -> None:
        raise Exception("The current node timed out during startup.")

    stuck = SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", stuck)
    assert run_sweep(seeded_fit, RUNS[:2], progress=False) == [seeded_fit(0), seeded_fit(1)]
    assert "Ray could not start here (The current node timed out" in capsys.readouterr().out
    with pytest.raises(ValueError, match="workers=2 needs Ray, which could not start here"):
        run_sweep(never, RUNS, workers=2, progress=False)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--steps", type=int, default=100)
    add_sweep_arguments(parser, variants=("a", "b", "c"), default_variants=("a", "b"),
                        default_seeds=3)
    return parser


def test_command_line_gives_seeds_variants_and_the_settings_apart() -> None:
    args = parse_sweep_args(parser(), ["--seeds", "5-7", "--variants", "c", "--workers", "1"])
    assert args.seeds == [5, 6, 7] and args.variants == ["c"]
    assert args.sweep == {"address": None, "workers": 1, "threads": 1, "out": None}
    assert args.settings == {"steps": 100, "threads": 1}
    defaults = parse_sweep_args(parser(), [])
    assert defaults.seeds == [0, 1, 2] and defaults.variants == ["a", "b"]
    assert parse_seeds("4") == [0, 1, 2, 3] and parse_seeds("0,3,7") == [0, 3, 7]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds: expected a count N"),
    (["--seeds", "3-1"], "--seeds: expected"),
    (["--seeds", "1,1"], "--seeds: expected"),
    (["--seeds", "1,,2"], "--seeds: expected"),
    (["--seeds", "five"], "--seeds: expected"),
    (["--variants", "a,d"], "--variants: expected distinct names from a, b, c; got 'a,d' "
                            "(unknown: d)"),
    (["--variants", "a,a"], "(a name twice)"),
    (["--workers", "0"], "--workers: expected a positive int"),
    (["--out", "/no/such/folder/sweep.jsonl"], "--out: folder /no/such/folder does not exist"),
    (["--address", f"127.0.0.1:{closed_port()}"], "--address: "),
])
def test_command_line_refuses_bad_flags(argv: list[str], message: str,
                                        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_sweep_args(parser(), argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def ray_sweeps():
    """Ray on every local core, as run_sweep starts it; shut down after this module's tests.

    Starting Ray takes 10-25 s on a busy 2-core machine: hence one session for these tests,
    and the `slow` mark (`-m "not slow"` leaves them out).
    """
    ray = pytest.importorskip("ray", reason="Ray is not installed (the `sweep` extra: "
                                            "pip install -e '.[sweep]'); its path is untested")
    # Ray workers import a function's module by name, and tests/ is not on their path (a
    # benchmark script's folder and the working directory are): send this module's by value.
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 2.5 * cores:  # measured on 2 cores: Ray started at a load of 5.5, not at 6.6+
        pytest.skip(f"machine too busy for Ray's start-up limits (load {load:.1f} on "
                    f"{cores} cores)")
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    try:
        ray.init(include_dashboard=False)  # as run_sweep starts it
    except Exception as error:  # Ray gives its processes 30 s to start: a busy machine's limit
        ray.shutdown()
        pytest.skip(f"Ray is installed but could not start on this machine: {error}")
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(module)
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_numbers_of_a_run_one_by_one(ray_sweeps, tmp_path: Path) -> None:
    one_by_one = run_sweep(seeded_fit, RUNS[:2], workers=1, out=tmp_path / "here.jsonl",
                           progress=False)
    on_ray = run_sweep(seeded_fit, RUNS[:2], out=tmp_path / "ray.jsonl", progress=False)
    assert all(r["pid"] != os.getpid() for r in on_ray), "the runs ran in Ray workers"
    assert on_ray[0]["loss"] != on_ray[1]["loss"], "the seed must matter for this test"

    def without_pid(results: list[dict]) -> list[dict]:
        return [{**result, "pid": None} for result in results]

    assert without_pid(on_ray) == without_pid(one_by_one)
    in_file = {r["run"]["seed"]: r["result"] for r in records(tmp_path / "ray.jsonl")}
    assert without_pid([in_file[0], in_file[1]]) == without_pid(one_by_one)


@pytest.mark.slow
def test_a_run_failing_on_ray_names_itself_and_keeps_the_finished_ones(
        ray_sweeps, tmp_path: Path) -> None:
    out = tmp_path / "sweep.jsonl"
    with pytest.raises(RuntimeError, match="run {'seed': 2} failed"):
        # seed 2 starts once seed 0 or 1 has finished: at least that one is in the file
        run_sweep(lambda seed: seeded_fit(seed) if seed < 2 else 1 / 0, RUNS, out=out,
                  workers=2, progress=False)
    finished = [r["run"]["seed"] for r in records(out)]
    assert finished and set(finished) <= {0, 1}
