"""Run many seeded runs of one experiment: as Ray tasks when Ray is installed, else one by one.

    from wmkit.sweep import run_sweep

    def one_run(variant: str, seed: int) -> dict:
        wm.seed_everything(seed)          # a run seeds everything it uses from its arguments
        ...
        return {"solved_at": log.solved_at()}        # JSON values: numbers, str, lists, dicts

    runs = [{"variant": v, "seed": s} for v in ("learned", "ensemble") for s in range(10)]
    results = run_sweep(one_run, runs, out="sweep.jsonl")     # results[i] is one_run(**runs[i])

`run_sweep(fn, runs, *, address=None, workers=None, threads=1, out=None, progress=True,
on_result=None) -> list`:

- Each run is `fn(**run)`, one Ray task (`num_cpus=threads`) with `threads` torch threads.
  Where it runs: `workers=None` uses Ray on every local core (or the Ray session this process
  already has); `address="host:port"` (or "ray://host:port", "auto") a running Ray cluster,
  whose nodes need wmkit installed; `workers=N` keeps at most N runs in flight; `workers=1`
  runs them one after another in this process, without Ray (handy with a debugger).
  Without Ray installed (`pip install "wmkit[sweep]"`), or when a local Ray cannot start (it
  allows itself 30 s, which an overloaded machine can miss), `workers=None` runs them one by
  one here; `workers=N` or an `address` then raise a ValueError instead.
- The same numbers everywhere: a result is the same JSON value whether it ran in this process,
  on Ray or was read back from `out`, as long as `fn` seeds what it uses from its arguments
  (a Ray worker process serves many runs, so global random state carries over between them).
- `out`: every finished run is appended to this JSON-lines file at once, one line
  `{"run": ..., "result": ..., "seconds": ...}`, so an interrupted sweep keeps what it finished.
  Runs already in the file are not run again (delete the file to start over).
- A run that raises stops the sweep: runs in flight are cancelled, the finished ones stay in
  `out`, and a RuntimeError naming the failed run is raised from the run's own error.
- Bad input is refused with a ValueError before any run starts: no runs, a run that is not a
  dict of JSON values or that `fn` cannot take, duplicate runs, workers/threads < 1, `out` in a
  missing folder or not a sweep file, a Ray cluster that does not answer at `address`.
- `on_result(run, result)` is called in this process as each run finishes (for printing a
  line: the progress bar steps aside for it).
- On Ray, `fn` travels pickled: a function defined in a script or notebook goes by value; one
  imported from a module must be importable on the workers (wmkit, or a module in the script's
  folder or the working directory). Starting Ray takes seconds (10-25 s on a busy 2-core
  machine), once per process: later sweeps reuse the session. Worth it for runs of a minute.

Benchmark scripts share their command line through two helpers:

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)             # the script's own flags
    add_sweep_arguments(parser, variants=("learned", "ensemble"), default_seeds=5)
    args = parse_sweep_args(parser)      # --seeds/--variants/--address/--workers/--threads/--out
    runs = [{"variant": v, "seed": s, "settings": args.settings}
            for v in args.variants for s in args.seeds]
    results = run_sweep(one_run, runs, **args.sweep)

`args.seeds` is a list of ints (`--seeds 5`: seeds 0-4; `--seeds 5-9`; `--seeds 0,3,7`),
`args.variants` a list of names, `args.sweep` run_sweep's keyword arguments, and
`args.settings` the script's other flags as a dict: put it in each run, so that a file of
results is never resumed by a run with different settings.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from inspect import signature
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm.auto import tqdm

from .utils import check_positive_int

CONNECT_TIMEOUT_S = 5.0  # how long an --address may take to accept a connection
RAY_DEFAULT_PORT = 6379
# Flags that choose runs or where they go; every other flag is an experiment setting (threads
# too: the thread count can change a float's last bits).
SWEEP_FLAGS = ("seeds", "variants", "address", "workers", "out")

_connected_address: str | None = None  # the address this module's ray.init connected to


def run_sweep(fn: Callable[..., Any], runs: Sequence[Mapping[str, Any]], *,
              address: str | None = None, workers: int | None = None, threads: int = 1,
              out: str | os.PathLike | None = None, progress: bool = True,
              on_result: Callable[[dict, Any], None] | None = None) -> list[Any]:
    """Run `fn(**run)` for every run; returns the results in the order of `runs`.

    See the module docstring for where the runs go, the `out` file and the errors.
    """
    keys = _check_runs(fn, runs)
    if workers is not None:
        workers = check_positive_int("workers", workers)
    threads = check_positive_int("threads", threads)
    ray = _choose_ray(address, workers)
    path = None if out is None else Path(out)
    results, intact = _read_finished(path, keys)
    todo = [i for i, key in enumerate(keys) if key not in results]
    if todo and ray is not None and not _connect(ray, address, workers, threads):
        ray = None  # a local Ray that could not start: the same runs, one after another
    elif todo and ray is None and workers is None:
        print(f"wmkit.sweep: Ray is not installed; running {len(todo)} runs one after another "
              "(pip install 'wmkit[sweep]' to run them in parallel)")
    if path is not None and len(todo) < len(runs):
        print(f"wmkit.sweep: {len(runs) - len(todo)} of {len(runs)} runs already in {path}; "
              f"running the other {len(todo)} (delete the file to run them all again)")

    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc="sweep", unit="run",
               disable=not progress)
    with bar, open(path or os.devnull, "a") as file:
        if intact is not None:  # drop a last line cut off mid-write (the process was killed)
            file.truncate(intact)
        def finished(i: int, text: str, seconds: float) -> None:
            run, result = dict(runs[i]), json.loads(text)
            file.write(json.dumps({"run": run, "result": result, "seconds": round(seconds, 3)})
                       + "\n")
            file.flush()  # on disk now: an interrupted sweep keeps this run
            results[keys[i]] = result
            bar.update()
            if on_result is not None:
                with tqdm.external_write_mode():
                    on_result(run, result)

        if ray is None:
            for i in todo:
                try:
                    text, seconds = _run_one(fn, runs[i], threads)
                except Exception as error:
                    raise _failed(runs[i]) from error
                finished(i, text, seconds)
        else:
            _run_on_ray(ray, fn, runs, todo, workers, threads, finished)
    return [results[key] for key in keys]


def _run_one(fn: Callable[..., Any], run: Mapping[str, Any], threads: int) -> tuple[str, float]:
    """One run in this process with `threads` torch threads -> (its result as JSON, seconds).

    The result travels as JSON text so that every path (here, Ray, the file) gives the same
    value: tuples become lists, exactly as a resumed sweep reads them back.
    """
    torch = _optional_import("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        result = fn(**run)
        seconds = time.perf_counter() - start
    finally:
        if torch:
            torch.set_num_threads(before)
    try:
        return json.dumps(result), seconds
    except (TypeError, ValueError) as error:
        raise TypeError(f"fn: expected a result of JSON values (dict, list, str, number, "
                        f"bool, None), got {type(result).__name__}: {error}") from error


def _run_on_ray(ray: ModuleType, fn: Callable[..., Any], runs: Sequence[Mapping[str, Any]],
                todo: list[int], workers: int | None, threads: int,
                finished: Callable[[int, str, float], None]) -> None:
    """Submit the runs as tasks, at most `workers` in flight (None: all; Ray queues them on
    the cluster's CPUs), and hand each result to `finished` as it arrives."""
    task = ray.remote(_run_one).options(num_cpus=threads)
    fn_ref = ray.put(fn)  # pickled once, not once per run
    waiting = iter(todo)
    in_flight: dict[Any, int] = {}

    def submit() -> None:
        i = next(waiting, None)
        if i is not None:
            in_flight[task.remote(fn_ref, runs[i], threads)] = i

    try:
        for _ in range(workers or len(todo)):
            submit()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            i = in_flight.pop(ref)
            try:
                text, seconds = ray.get(ref)
            except Exception as error:
                raise _failed(runs[i]) from error
            finished(i, text, seconds)
            submit()
    finally:  # an error or Ctrl-C: stop the runs still going, the finished ones are kept
        for ref in in_flight:
            ray.cancel(ref, force=True)


def _failed(run: Mapping[str, Any]) -> RuntimeError:
    return RuntimeError(f"wmkit.sweep: run {dict(run)} failed (finished runs are kept)")


# --- checks, all before any run starts -------------------------------------------------------

def _check_runs(fn: Callable[..., Any], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each run's key (its canonical JSON), or a ValueError naming what is wrong."""
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {fn!r}")
    if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Sequence) or not runs:
        raise ValueError(f"runs: expected a non-empty list of dicts, got {runs!r}")
    try:
        parameters = signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: fn will tell
        parameters = None
    keys: dict[str, int] = {}  # key -> index of its run
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping) or not all(isinstance(k, str) for k in run):
            raise ValueError(f"runs[{i}]: expected a dict with str keys, got {run!r}")
        try:
            key = json.dumps(run, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise ValueError(f"runs[{i}]: expected JSON values (they go into the results "
                             f"file), got {run!r}: {error}") from error
        if key in keys:
            raise ValueError(f"runs[{i}]: duplicate of runs[{keys[key]}]: {run!r}")
        if parameters is not None:
            try:
                parameters.bind(**run)
            except TypeError as error:
                raise ValueError(f"runs[{i}]: fn cannot take {run!r}: {error}") from error
        keys[key] = i
    return list(keys)


def _read_finished(path: Path | None, keys: list[str]) -> tuple[dict[str, Any], int | None]:
    """The results of the runs in `keys` that `path` already holds (key -> result), and the
    length in bytes to cut the file to if its last line was cut off mid-write (else None)."""
    if path is None:
        return {}, None
    if not path.parent.is_dir():
        raise ValueError(f"out: folder {path.parent} does not exist")
    if path.is_dir():
        raise ValueError(f"out: expected a file, got the folder {path}")
    if not path.exists():
        return {}, None
    lines = path.read_bytes().splitlines(keepends=True)
    finished: dict[str, Any] = {}
    wanted = set(keys)
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            key = json.dumps(record["run"], sort_keys=True)
            result = record["result"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            if number == len(lines) and not line.endswith(b"\n"):
                return finished, sum(len(earlier) for earlier in lines[:-1])
            raise ValueError(f"out: line {number} of {path} is not a sweep record "
                             f"({{'run': ..., 'result': ...}}): {error}") from error
        if key in wanted:
            finished[key] = result
    return finished, None


def _optional_import(name: str) -> ModuleType | None:
    try:
        return __import__(name)
    except ImportError:
        return None


def _choose_ray(address: str | None, workers: int | None) -> ModuleType | None:
    """Ray, or None to run one by one in this process."""
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ValueError(f"address: expected 'host:port', 'ray://host:port' or 'auto', "
                         f"got {address!r}")
    if workers == 1 and address is None:
        return None
    ray = _optional_import("ray")
    if ray is None and (address is not None or workers is not None):
        asked = f"address={address!r}" if address is not None else f"workers={workers}"
        raise ValueError(f"{'address' if address is not None else 'workers'}: {asked} needs "
                         "Ray (pip install 'wmkit[sweep]'); without it use workers=1 or None")
    return ray


def _connect(ray: ModuleType, address: str | None, workers: int | None, threads: int) -> bool:
    """Join Ray once per process: the session already here, a cluster, or a new local one.

    False when a local Ray could not start and `workers` is None: run one by one instead.
    """
    global _connected_address
    if ray.is_initialized():
        if address is not None and address != _connected_address:
            raise ValueError(f"address: this process is already connected to Ray "
                             f"({_connected_address or 'a session started elsewhere'}); "
                             f"call ray.shutdown() first to use {address!r}")
        return True
    if address is None:
        try:
            ray.init(include_dashboard=False)  # every local core
        except Exception as error:  # its start-up limits (agents ~15 s, node 30 s), missed
            # on an overloaded machine: measured at a load of 7-10 on 2 cores
            ray.shutdown()
            if workers is not None:
                raise ValueError(f"workers: workers={workers} needs Ray, which could not "
                                 f"start here: {error}") from error
            print(f"wmkit.sweep: Ray could not start here ({error}); running the runs one "
                  "after another")
            return False
        cores = int(ray.cluster_resources().get("CPU", 0))
        if threads > cores:  # Ray would wait forever for a node big enough
            raise ValueError(f"threads: expected at most the {cores} cores Ray has here, "
                             f"got {threads}")
        return True
    check_address(address)
    try:
        ray.init(address=address)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ValueError(f"address: could not join the Ray cluster at {address!r}: "
                         f"{error}") from error
    _connected_address = address
    return True


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A ValueError unless something accepts a connection at `address` within `timeout` s.

    ray.init itself waits minutes on a dead address; this answers in seconds. ("auto" is left
    to ray.init, which fails at once when no local cluster is running.)
    """
    if address == "auto":
        return
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":") if ":" in host_port else (host_port, "", "")
    host = host.strip("[]")  # an IPv6 literal: [::1]:6379
    try:
        port_number = int(port) if port else RAY_DEFAULT_PORT
    except ValueError:
        raise ValueError(f"address: expected 'host:port', got {address!r}") from None
    try:
        socket.create_connection((host, port_number), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else str(error)
        raise ValueError(f"address: no Ray cluster answers at {host}:{port_number} "
                         f"({reason}; waited at most {timeout:g} s)") from None


# --- the benchmarks' shared command line ----------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """'5' -> seeds 0-4, '5-9' -> 5..9, '0,3,7' -> those; seeds are ints >= 0."""
    expected = ("expected a count N (seeds 0..N-1), a range A-B or a list A,B,C of distinct "
                f"ints >= 0, got {text!r}")
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",")]
        elif "-" in text.strip("-"):
            first, last = (int(part) for part in text.split("-"))
            seeds = list(range(first, last + 1))
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise argparse.ArgumentTypeError(expected)
    return seeds


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return int(text)


def _results_file(text: str) -> Path:
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist")
    return path


def add_sweep_arguments(parser: argparse.ArgumentParser, variants: Sequence[str], *,
                        default_variants: Sequence[str] | None = None,
                        default_seeds: int = 5) -> None:
    """Add --seeds, --variants (from `variants`), --address, --workers, --threads and --out."""
    known = list(variants)

    def variant_list(text: str) -> list[str]:
        chosen = text.split(",")
        unknown = [v for v in chosen if v not in known]
        if unknown or len(set(chosen)) < len(chosen):
            raise argparse.ArgumentTypeError(
                f"expected distinct names from {', '.join(known)}; got {text!r}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else " (a name twice)"))
        return chosen

    group = parser.add_argument_group("sweep (wmkit.sweep)")
    group.add_argument("--seeds", type=parse_seeds, default=list(range(default_seeds)),
                       help=f"N (seeds 0..N-1), A-B or A,B,C (default {default_seeds})")
    group.add_argument("--variants", type=variant_list,
                       default=list(default_variants or known),
                       help=f"comma-separated, from: {', '.join(known)} "
                            f"(default {','.join(default_variants or known)})")
    group.add_argument("--address", default=None,
                       help="a running Ray cluster: host:port, ray://host:port or auto "
                            "(default: Ray on this machine's cores, if installed)")
    group.add_argument("--workers", type=_positive_int, default=None,
                       help="runs at once (default: one per core; 1: one by one, no Ray)")
    group.add_argument("--threads", type=_positive_int, default=1,
                       help="torch threads per run")
    group.add_argument("--out", type=_results_file, default=None,
                       help="append each finished run to this JSON-lines file; runs already "
                            "in it are not run again")


def parse_sweep_args(parser: argparse.ArgumentParser,
                     argv: Sequence[str] | None = None) -> argparse.Namespace:
    """parser.parse_args, then check that Ray is there if asked for and answers at --address
    (within CONNECT_TIMEOUT_S), so that a bad flag stops the script before any run.

    Adds `args.sweep` (run_sweep's keyword arguments) and `args.settings` (every other flag,
    as a dict of JSON values).
    """
    args = parser.parse_args(argv)
    try:
        if args.address is not None or args.workers not in (None, 1):
            _choose_ray(args.address, args.workers)
        if args.address is not None:
            check_address(args.address)
    except ValueError as error:
        parser.error(f"argument --{error}")  # "argument --address: ...", as argparse says it
    args.settings = {k: v for k, v in vars(args).items() if k not in SWEEP_FLAGS}
    args.sweep = {"address": args.address, "workers": args.workers, "threads": args.threads,
                  "out": args.out}
    return args
