"""Calling the learner's function: the one piece of the grader that runs next to their code.

A check never calls the learner's function directly: it calls `observe` (through a
`Submitted` function: `LocalFunction` in a notebook, the grader's `RemoteFunction` when
grading), which calls it under a `tracing.Watch` and returns an `Outcome`: the result or the
exception, the gradients a check asked for, the batch sizes of a module's forward calls, and
what the watch saw. In the grader's kernel, `call` does the same on inputs the grader sent,
and sends back plain data only (see `wire`); the grader compares it with references it
computes itself, so nothing in the kernel can mark a check as passed.

This module is in the kernel's copy of the kit; the checks and their references are not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .tracing import Findings, Forbidden, Watch, code_of

MIME = "application/vnd.wmkit.call+json"


@dataclass
class Probes:
    """What to observe besides the result.

    grads_of: keys of the result (a dict key or a tuple index) whose sum is differentiated
    with respect to every leaf of the inputs: tensors that require grad, and the parameters
    of modules (labelled `"0"`, `"0.net.0.weight"`, `"0.q.2.bias"`: argument index, then
    attribute path). count_calls_of: the label of a module (`"0.net"`) whose forward calls
    are counted (their batch sizes). no_grad: call under torch.no_grad().
    """

    grads_of: Sequence[Any] = ()
    count_calls_of: str | None = None
    no_grad: bool = False


@dataclass
class Outcome:
    """One call of the learner's function, as a check sees it."""

    result: Any = None
    error: BaseException | None = None
    grads: dict[Any, dict[str, torch.Tensor] | None] = field(default_factory=dict)
    batches: list[int] | None = None
    findings: Findings = field(default_factory=Findings)


def modules_of(args: Sequence[Any]) -> list[tuple[str, torch.nn.Module]]:
    """(label, module) for the modules among the arguments and their attributes."""
    found = []
    for i, arg in enumerate(args):
        if isinstance(arg, torch.nn.Module):
            found.append((str(i), arg))
        elif hasattr(arg, "__dict__") and not isinstance(arg, (torch.Tensor, type)):
            found += [(f"{i}.{k}", v) for k, v in vars(arg).items()
                      if isinstance(v, torch.nn.Module)]
    return found


def leaves_of(args: Sequence[Any]) -> list[tuple[str, torch.Tensor]]:
    """(label, tensor) for the inputs a gradient can flow to."""
    found = [(str(i), a) for i, a in enumerate(args)
             if isinstance(a, torch.Tensor) and a.requires_grad]
    for label, module in modules_of(args):
        found += [(f"{label}.{n}", p) for n, p in module.named_parameters() if p.requires_grad]
    return found


def _pick(result: Any, key: Any) -> Any:
    try:
        return result[key]
    except Exception:  # noqa: BLE001  (the learner's result may be anything)
        return None


def observe(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any],
            probes: Probes, forbidden: Forbidden, trusted: Sequence[str] = ()
            ) -> Outcome:
    """Call `fn(*args, **kwargs)` under a watch and take what `probes` asks for."""
    outcome = Outcome()
    hook = None
    if probes.count_calls_of is not None:
        outcome.batches = []
        module = dict(modules_of(args)).get(probes.count_calls_of.split(".")[0])
        for attr in probes.count_calls_of.split(".")[1:]:
            module = getattr(module, attr, None)
        if isinstance(module, torch.nn.Module):
            batches = outcome.batches
            hook = module.register_forward_hook(
                lambda m, inputs, out: batches.append(len(out)))
    watch = Watch(forbidden, trusted)
    try:
        with watch:
            if probes.no_grad:
                with torch.no_grad():
                    outcome.result = fn(*args, **kwargs)
            else:
                outcome.result = fn(*args, **kwargs)
            leaves = leaves_of(args)
            for key in probes.grads_of:
                outcome.grads[key] = _gradients(_pick(outcome.result, key), leaves)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: B036  (SystemExit from learner code is an answer)
        outcome.error = error
    finally:
        if hook is not None:
            hook.remove()
    outcome.findings = watch.findings
    return outcome


def _gradients(output: Any, leaves: list[tuple[str, torch.Tensor]]
               ) -> dict[str, torch.Tensor] | None:
    """d output.sum() / d leaf for each leaf (zeros where unused), or None when the output
    carries no gradient at all."""
    if not isinstance(output, torch.Tensor) or not output.requires_grad or not leaves:
        return None
    grads = torch.autograd.grad(output.sum(), [t for _, t in leaves], allow_unused=True,
                                retain_graph=True)
    return {label: (torch.zeros_like(t) if g is None else g.detach())
            for (label, t), g in zip(leaves, grads, strict=True)}


class LocalFunction:
    """The learner's function in this process (feedback in a notebook, nbgrader, otter)."""

    def __init__(self, fn: Any, forbidden: Forbidden) -> None:
        self.fn, self.forbidden = fn, forbidden
        self.findings = Findings()

    def observe(self, args: Sequence[Any], kwargs: dict[str, Any], probes: Probes) -> Outcome:
        outcome = observe(self.fn, args, kwargs, probes, self.forbidden)
        self.findings.merge(outcome.findings)
        return outcome


class ThresholdTermination:
    """A termination rule checks hand to `imagine`: obs[..., dim] > value (picklable, so it
    travels to the kernel; defined here because the kernel has no checks)."""

    def __init__(self, dim: int, value: float) -> None:
        self.dim, self.value = dim, value

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[..., self.dim] > self.value


# -- the kernel side ------------------------------------------------------------------------------

_forbidden: dict[str, Forbidden] = {}  # function name -> the code it may not run
_cell_watch: Watch | None = None


def _namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def written_in_a_cell(fn: Any) -> bool:
    """Whether `fn` was defined by a cell the kernel ran (IPython knows each cell's file name),
    not compiled from a string (`exec`) or imported from a file."""
    from IPython import get_ipython

    code = code_of(fn)
    cells = getattr(getattr(get_ipython(), "compile", None), "_filename_map", None)
    if code is None or not isinstance(cells, dict):
        return False
    return code.co_filename in cells


def _send(nonce: str, payload: dict[str, Any]) -> None:
    from IPython.display import display

    from .wire import pack_plain

    display({MIME: {"nonce": nonce, "payload": pack_plain(payload)}}, raw=True)


def prepare(forbidden_json: str, path: Sequence[str] | None = None) -> None:
    """Before any learner code runs: set what may not run (a JSON object mapping each graded
    function's name to its `Forbidden.to_json()`), and keep on sys.path only the entries of
    `path` (IPython adds the working directory, and the launcher's own folder)."""
    import sys

    global _forbidden
    _forbidden = {str(name): Forbidden.from_json(text)
                  for name, text in json.loads(forbidden_json).items()}
    if path is not None:
        allowed = set(path)
        sys.path[:] = [entry for entry in sys.path if entry in allowed]


def watch_cell() -> None:
    """Watch the next cell(s) the grader runs (the learner's answer cells)."""
    global _cell_watch
    _cell_watch = Watch(Forbidden()).__enter__()  # library use in a cell is fine


def end_cell(nonce: str) -> None:
    """Stop watching cells; send back what was seen."""
    global _cell_watch
    watch, _cell_watch = _cell_watch, None
    if watch is not None:
        watch.__exit__(None, None, None)
    _send(nonce, {"findings": watch.findings.to_dict() if watch else {}})


def call(name: str, payload: str, nonce: str) -> None:
    """Call the learner's function `name` on the inputs in `payload` (see RemoteFunction) and
    send back its result, the probes, the modules' state after the call and the findings."""
    from .wire import unpack_trusted

    args, kwargs, probes = unpack_trusted(payload)
    fn = _namespace().get(name)
    if fn is None or not callable(fn):
        _send(nonce, {"missing": type(fn).__name__})
        return
    outcome = observe(fn, args, kwargs, Probes(**probes), _forbidden.get(name, Forbidden()))
    if not written_in_a_cell(fn):
        outcome.findings.add("library", f"code not written in the notebook's cells ({name} "
                                        "comes from exec, compile or an import)")
    modules = modules_of(args)
    states = {label: {"state": {k: v.detach() for k, v in m.state_dict().items()},
                      "grads": {n: p.grad.detach() for n, p in m.named_parameters()
                                if p.grad is not None}}
              for label, m in modules}
    _send(nonce, {"result": None if outcome.error else outcome.result,
                  "raised": outcome.error, "grads": outcome.grads,
                  "batches": outcome.batches, "states": states,
                  "findings": outcome.findings.to_dict()})
