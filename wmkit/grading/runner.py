"""Grade one exercise notebook: its answer cells run in a fresh kernel, the checks run here.

What runs in the kernel: the notebook's cells tagged `setup` and `answer` (or any code cell
that defines one of the graded functions), in notebook order, watched (see `tracing`); demos,
plots and check cells are not run. The checks run in this process: each time a check calls
the learner's function, the inputs go to the kernel, the function runs there (`sandbox.call`)
and only plain data comes back (`wire`): the result, the probes, the state of the modules it
changed, and what the watch saw. The kernel holds no checks and no references, and nothing it
does can mark a check as passed.

A cell or call that runs out of time is interrupted; if the kernel does not come back (a loop
that swallows KeyboardInterrupt) or dies (`os._exit`, a crash), it is replaced by a fresh one,
the answer cells that completed are run again and the remaining checks go on. The notebook
file is only ever read.

This runs inside the per-notebook grading process (`worker`), which the command line
(`__main__`) starts and outlives.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import torch
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .core import (
    OUTPUT_LIMIT,
    CheckFailed,
    CheckResult,
    Exercise,
    KernelTrouble,
    Scored,
    all_exercises,
    forbidden_code,
    get_exercise,
    run_check,
)
from .isolation import child_env, clean_sys_path, python_argv
from .sandbox import MIME, Outcome, Probes, modules_of
from .tracing import Findings, static_findings
from .wire import MAX_BYTES, pack, unpack_plain

DEFAULT_TIMEOUT = 20.0
STARTUP_TIMEOUT = 120.0  # kernel start + `import torch` on a busy machine
PROBE_TIMEOUT = 3.0  # after a timeout: is the kernel answering again? (else: a new one)
IOPUB_TIMEOUT = 4  # after a cell's reply, how long its last output may take to arrive
MAX_RESTARTS = 3  # per notebook; after that the remaining checks are not run
SANDBOX = "__import__('wmkit.grading.sandbox').grading.sandbox"

_quiet = logging.getLogger("wmkit.grading.nbclient")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # nbclient logs every timeout and dead kernel as an error: we report


class _KitPython(KernelSpecManager):
    """Kernels run on the interpreter that runs the grader (its venv), whatever the notebook's
    kernelspec says, with the kernel's copy of the kit first on a clean sys.path."""

    kit: Path

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        launch = "from ipykernel import kernelapp; kernelapp.launch_new_instance()"
        return KernelSpec(argv=[*python_argv(self.kit, launch), "-f", "{connection_file}"],
                          display_name="wmkit grader", language="python")


class _Client(NotebookClient):
    """nbclient with a cap on captured output and a flag set when a cell times out."""

    output_limit = OUTPUT_LIMIT
    timed_out = False
    kept_chars = 0
    dropped_chars = 0
    answer_chars = 0

    kit: Path

    def create_kernel_manager(self) -> AsyncKernelManager:
        specs = _KitPython()
        specs.kit = self.kit
        self.km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
        return self.km

    async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> Any:
        self.timed_out = True
        # The cell's late output is not needed any more; a kernel deaf to the interrupt would
        # never send its "idle", and nbclient would wait the full iopub_timeout for it.
        self.iopub_timeout = 1
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> Any:
        content = msg.get("content", {})
        if MIME in content.get("data", {}):  # the sandbox's answers get through, within reason
            size = len(str(content["data"][MIME]))
            if self.answer_chars + size <= 2 * MAX_BYTES:
                self.answer_chars += size
                return super().output(outs, msg, display_id, cell_index)
            self.dropped_chars += size
            return None
        size = len(content.get("text", "")) + sum(len(str(v)) for v in
                                                  content.get("data", {}).values())
        size += sum(len(line) for line in content.get("traceback", []))
        if self.kept_chars + size > self.output_limit:
            self.dropped_chars += size  # a print flood costs no memory here
            return None
        self.kept_chars += size
        return super().output(outs, msg, display_id, cell_index)


@dataclass
class CellRun:
    """One cell run in the kernel. status: ok, error, timeout (interrupted) or died."""

    status: str
    error: str = ""
    outputs: list[Any] = field(default_factory=list)
    dropped_chars: int = 0

    def answer(self, nonce: str) -> dict[str, Any] | None:
        """The sandbox's answer in this cell's outputs that carries this nonce, or None."""
        for out in self.outputs:
            data = out.get("data", {}).get(MIME) if out.get("output_type") == "display_data" \
                else None
            if isinstance(data, dict) and data.get("nonce") == nonce:
                try:
                    answer = unpack_plain(str(data.get("payload", "")))
                except Exception:  # noqa: BLE001  (whatever a hostile kernel sent: no answer)
                    return None
                return answer if isinstance(answer, dict) else None
        return None


class KernelSession:
    """A kernel for grading: run cells with a time limit, restart it when it dies or hangs.

    `kit`: the folder holding the kernel's copy of wmkit (see `isolation`); `workdir`: its
    working directory; `token`: the job's mark in its environment; `forbidden`: the code
    its watch reports, by graded function (see `sandbox.prepare`). Use as a context manager.
    """

    def __init__(self, kit: Path, workdir: Path, token: str = "", forbidden: str = "{}",
                 output_limit: int = OUTPUT_LIMIT, startup_timeout: float = STARTUP_TIMEOUT,
                 setup: str = "") -> None:
        self.kit, self.workdir, self.token = Path(kit), Path(workdir), token
        self.forbidden, self.setup = forbidden, setup
        self.output_limit = output_limit
        self.startup_timeout = startup_timeout
        self.restarts = 0
        self._client: _Client | None = None

    def __enter__(self) -> KernelSession:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Start a fresh kernel; import torch and the sandbox in it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        client = _Client(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")]),
                         allow_errors=True, interrupt_on_timeout=True,
                         error_on_timeout={"ename": "Timeout", "evalue": "", "traceback": []},
                         startup_timeout=int(self.startup_timeout), iopub_timeout=IOPUB_TIMEOUT,
                         shutdown_kernel="immediate", record_timing=False,
                         store_widget_state=False, log=_quiet)
        client.output_limit = self.output_limit
        client.kit = self.kit
        client.create_kernel_manager()
        # The kernel's own stdout/stderr (not the cells' output) would clutter the grader's.
        client.start_new_kernel(cwd=str(self.workdir), env=child_env(self.token),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client.start_new_kernel_client()
        self._client = client
        prepare = (f"import torch\ntorch.set_num_threads(1)\n{self.setup}\n"
                   f"{SANDBOX}.prepare({self.forbidden!r}, {clean_sys_path(self.kit)!r})")
        prepared = self.run(prepare, self.startup_timeout)
        if prepared.status != "ok":
            self.close()
            raise RuntimeError(f"grader: could not prepare the kernel ({prepared.status}: "
                               f"{prepared.error})")

    def run(self, code: str, timeout: float) -> CellRun:
        """Run `code` as one cell; never raises for what the code does."""
        client = self._client
        if client is None:
            return CellRun("died", "no kernel")
        cell = nbformat.v4.new_code_cell(code)
        client.nb.cells[0] = cell
        client.timeout = max(1, round(timeout))
        client.timed_out, client.kept_chars, client.dropped_chars = False, 0, 0
        client.answer_chars = 0
        client.iopub_timeout = IOPUB_TIMEOUT
        try:
            client.execute_cell(cell, 0)
        except DeadKernelError:
            return CellRun("died", "the kernel died", list(cell.outputs), client.dropped_chars)
        except CellTimeoutError as error:
            return CellRun("timeout", str(error)[:300], list(cell.outputs), client.dropped_chars)
        except Exception as error:  # noqa: BLE001  (zmq or protocol trouble: treat as dead)
            return CellRun("died", f"{type(error).__name__}: {error}"[:300], list(cell.outputs),
                           client.dropped_chars)
        outputs = list(cell.outputs)
        if client.timed_out:
            return CellRun("timeout", f"ran longer than {client.timeout} s", outputs,
                           client.dropped_chars)
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if errors:
            text = f"{errors[0].get('ename', '')}: {errors[0].get('evalue', '')}".strip(": ")
            return CellRun("error", text[:300], outputs, client.dropped_chars)
        return CellRun("ok", "", outputs, client.dropped_chars)

    def reset(self, forbidden: str, setup: str = "") -> None:
        """Clear the namespace and set what the watch reports, to grade another notebook in
        this kernel (only for notebooks you trust: the kit's own tests use it; the command
        line never shares a kernel)."""
        self.forbidden, self.setup, self.restarts = forbidden, setup, 0
        prepare = f"{setup}\n{SANDBOX}.prepare({forbidden!r}, {clean_sys_path(self.kit)!r})"
        if self.run("%reset -f", PROBE_TIMEOUT).status != "ok" or \
                self.run(prepare, self.startup_timeout).status != "ok":
            self.restart()
            self.restarts = 0

    def responsive(self) -> bool:
        """Whether the kernel answers a trivial cell (after an interrupt it should)."""
        return self.run("None", PROBE_TIMEOUT).status == "ok"

    def restart(self) -> None:
        """Replace the kernel by a fresh, prepared one."""
        self.close()
        self.restarts += 1
        self.start()

    def close(self) -> None:
        """Shut the kernel down."""
        if self._client is not None:
            try:
                self._client._cleanup_kernel()  # nbclient's own shutdown: kill and tidy up
            except Exception:  # noqa: BLE001  (a dead kernel may fail to shut down cleanly)
                pass
            self._client = None


class RemoteFunction:
    """The learner's function `name` in the kernel, as a check sees it (see `Submitted`).

    `observe` sends the inputs, runs the function there under the watch, and rebuilds the
    Outcome from the plain data that comes back; modules among the inputs get the state
    (parameters, buffers, gradients) the call left in the kernel's copies, so a check reads
    an agent's update as if it had happened here. A check has `timeout` seconds for all its
    calls; a call that runs out of time or kills the kernel raises KernelTrouble.
    """

    def __init__(self, session: KernelSession, name: str, timeout: float) -> None:
        self.session, self.name, self.timeout = session, name, timeout
        self.findings = Findings()
        self.needs_restart = False
        self._deadline = time.monotonic() + timeout

    def begin(self) -> None:
        """A new check starts: a fresh time budget and findings."""
        self._deadline = time.monotonic() + self.timeout
        self.findings = Findings()

    def observe(self, args: Any, kwargs: dict[str, Any], probes: Probes) -> Outcome:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise KernelTrouble("timeout", f"ran longer than {self.timeout:g} s (an endless "
                                           "loop?) and was stopped")
        nonce = secrets.token_hex(16)
        payload = pack((tuple(args), dict(kwargs), asdict(probes)))
        run = self.session.run(f"{SANDBOX}.call({self.name!r}, {payload!r}, {nonce!r})", left)
        answer = run.answer(nonce)
        if answer is None:
            if run.status == "timeout":
                self.needs_restart = not self.session.responsive()
                raise KernelTrouble("timeout", f"ran longer than {self.timeout:g} s (an "
                                               "endless loop?) and was stopped")
            if run.status == "died":
                self.needs_restart = True
                raise KernelTrouble("error", f"{self.name} killed the kernel (os._exit? a "
                                             "crash? out of memory?)")
            raise KernelTrouble("error", f"the check could not run: {run.error or 'no answer'}")
        if "missing" in answer:
            missing = answer["missing"]
            raise CheckFailed(f"{self.name} is not defined: run its answer cell, and keep the "
                              "function's name" if missing == "NoneType" else
                              f"{self.name} is a {missing}, not a function")
        findings = Findings()
        findings.merge(answer.get("findings") or {})
        self.findings.merge(findings)
        _apply_states(args, answer.get("states") or {})
        error = answer.get("raised")
        return Outcome(result=answer.get("result"),
                       error=error if isinstance(error, BaseException) else None,
                       grads=_tensors_only(answer.get("grads")),
                       batches=[int(b) for b in answer["batches"]] if isinstance(
                           answer.get("batches"), list) else None,
                       findings=findings)


def _tensors_only(grads: Any) -> dict[Any, dict[str, torch.Tensor] | None]:
    if not isinstance(grads, dict):
        return {}
    return {key: ({str(k): v for k, v in value.items() if isinstance(v, torch.Tensor)}
                  if isinstance(value, dict) else None) for key, value in grads.items()}


def _apply_states(args: Any, states: dict[str, Any]) -> None:
    """Give the grader's modules the parameters, buffers and gradients the call left."""
    for label, module in modules_of(args):
        state = states.get(label)
        if not isinstance(state, dict):
            continue
        own = module.state_dict()
        sent = {k: v for k, v in (state.get("state") or {}).items()
                if k in own and isinstance(v, torch.Tensor) and v.shape == own[k].shape}
        with torch.no_grad():
            for key, value in sent.items():
                own[key].copy_(value.to(own[key].dtype))
        grads = state.get("grads") or {}
        for name, param in module.named_parameters():
            grad = grads.get(name)
            if isinstance(grad, torch.Tensor) and grad.shape == param.shape:
                param.grad = grad.detach().to(param.dtype)


# -- grading one notebook --------------------------------------------------------------------


@dataclass
class NotebookGrade(Scored):
    """The grade of one notebook. status: graded, or why it could not be (see notes).

    flags: what the instructor should look at (the watch's and the text scan's findings);
    a check's own flags are in its result."""

    notebook: str
    student: str
    exercise: str
    results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    status: str = "graded"
    seconds: float = 0.0
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(score=self.score, max_score=self.max_score)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotebookGrade:
        names = {f for f in cls.__dataclass_fields__}
        grade = cls(**{k: v for k, v in data.items() if k in names and k != "results"})
        grade.results = [CheckResult(**r) for r in data.get("results", [])]
        return grade

    @property
    def all_flags(self) -> list[str]:
        """The notebook's flags and its checks', without repeats."""
        found = list(self.flags)
        for r in self.results:
            found += [f for f in r.flags if f not in found]
        return found


def identify_exercise(nb: Any, path: Path) -> str | None:
    """The exercise id of a notebook: its `wmkit.exercise` metadata, else its file name
    (`01_model_loss-alice.ipynb` -> 01_model_loss), else None."""
    exercises = all_exercises()
    declared = nb.get("metadata", {}).get("wmkit", {}).get("exercise")
    if declared in exercises:
        return declared
    matches = [ex for ex in exercises if path.stem.startswith(ex)]
    if matches:
        return max(matches, key=len)
    number = re.match(r"(\d\d)(?!\d)", path.stem)
    by_number = [ex for ex in exercises if number and ex.startswith(number.group(1) + "_")]
    return by_number[0] if len(by_number) == 1 else None


def graded_cells(nb: Any, exercise: Exercise) -> list[tuple[int, str]]:
    """(cell index, source) of the cells the grader runs: tagged setup/answer, or defining a
    graded function (a learner who re-created an answer cell loses its tag, not its grade)."""
    defines = re.compile(r"^(?:async\s+)?def\s+(?:" + "|".join(
        re.escape(name) for name in exercise.parts) + r")\s*\(", re.MULTILINE)
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"setup", "answer"} or defines.search(source):
            cells.append((index, source))
    return cells


def read_notebook(path: Path) -> Any:
    """The notebook at `path`, parsed from its bytes in memory (the file is never written)."""
    return nbformat.reads(path.read_bytes().decode("utf-8"), as_version=4)


def grade_notebook(path: str | Path, *, kit: Path | None = None, workdir: Path | None = None,
                   student: str = "", timeout: float = DEFAULT_TIMEOUT, seed: int | None = None,
                   token: str = "", output_limit: int = OUTPUT_LIMIT,
                   session: KernelSession | None = None) -> NotebookGrade:
    """Grade one exercise notebook in a fresh kernel running the kit copy in `kit`, with
    working directory `workdir` (or in `session`, a running kernel, reset first: for
    notebooks you trust).

    `timeout`: seconds for each graded cell and for each check (all its calls together).
    Normally called by `worker`, in a process of its own (see `__main__`).
    """
    if session is None and (kit is None or workdir is None):
        raise ValueError("kit, workdir: expected both folders when no session is given")
    started = time.monotonic()
    path = Path(path)
    grade = NotebookGrade(str(path), student or path.stem, "")
    seed = secrets.randbelow(2**31) if seed is None else seed
    try:
        nb = read_notebook(path)
    except Exception as error:  # noqa: BLE001  (any unreadable file is a grade, not a crash)
        grade.status = "unreadable"
        grade.notes.append(f"could not read the notebook: {type(error).__name__}: {error}"[:300])
        return grade
    exercise_id = identify_exercise(nb, path)
    if exercise_id is None:
        grade.status = "unknown exercise"
        grade.notes.append("not a wmkit exercise (no wmkit.exercise metadata, and the file "
                           "name does not start with an exercise id)")
        return grade
    grade.exercise = exercise_id
    exercise = get_exercise(exercise_id)
    cells = graded_cells(nb, exercise)
    if not cells:
        grade.notes.append("no answer cells found (cells tagged 'answer' or defining "
                           f"{', '.join(exercise.parts)})")
    seen = static_findings(source for _, source in cells)
    forbidden = json.dumps({name: forbidden_code(part).to_json()
                            for name, part in exercise.parts.items()})
    own = session is None
    active = session or KernelSession(kit, workdir, token, forbidden,  # type: ignore[arg-type]
                                      output_limit, setup=exercise.kernel_setup)
    try:
        active.start() if own else active.reset(forbidden, exercise.kernel_setup)
        _grade_in(active, exercise, cells, grade, timeout, seed, seen)
    except RuntimeError as error:  # the kernel could not even be prepared
        grade.status = "grader error"
        grade.notes.append(str(error))
        grade.results = _unrun(exercise, grade.results, "not run: the grader failed")
    finally:
        grade.restarts = active.restarts
        if own:
            active.close()
    grade.seconds = round(time.monotonic() - started, 2)
    return grade


def _run_answer_cells(session: KernelSession, cells: list[tuple[int, str]], timeout: float,
                      notes: list[str] | None) -> list[tuple[int, str]]:
    """Run the graded cells; return those that finished (raising counts as finishing)."""
    finished = []
    for index, source in cells:
        run = session.run(source, timeout)
        if run.status in ("ok", "error"):
            finished.append((index, source))
        if notes is not None:
            if run.status == "error":
                notes.append(f"cell {index + 1} raised {run.error}")
            elif run.status == "timeout":
                notes.append(f"cell {index + 1} ran longer than {timeout:g} s and was stopped")
            elif run.status == "died":
                notes.append(f"cell {index + 1} killed the kernel ({run.error})")
            if run.dropped_chars:
                notes.append(f"cell {index + 1} printed too much: {run.dropped_chars:,} "
                             "characters of output dropped")
        if run.status == "timeout" and not session.responsive() or run.status == "died":
            session.restart()
            # Cells that already finished are run again in the new kernel; this one is not.
            _run_answer_cells(session, finished, timeout, None)
    return finished


def _watched_cells(session: KernelSession, cells: list[tuple[int, str]], timeout: float,
                   grade: NotebookGrade) -> tuple[list[tuple[int, str]], Findings]:
    """Run the answer cells under the watch; return those that finished and what it saw."""
    session.run(f"{SANDBOX}.watch_cell()", PROBE_TIMEOUT)
    finished = _run_answer_cells(session, cells, timeout, grade.notes)
    nonce = secrets.token_hex(16)
    answer = session.run(f"{SANDBOX}.end_cell({nonce!r})", PROBE_TIMEOUT).answer(nonce)
    findings = Findings()
    if answer is None:
        findings.add("tampering", "the grader's watch of the answer cells did not report")
    else:
        findings.merge(answer.get("findings") or {})
    return finished, findings


def _grade_in(session: KernelSession, exercise: Exercise, cells: list[tuple[int, str]],
              grade: NotebookGrade, timeout: float, seed: int, findings: Findings) -> None:
    """Run the answer cells, then every check; `findings`: what the text scan saw."""
    restarts_before = session.restarts
    finished, watched = _watched_cells(session, cells, timeout, grade)
    if session.restarts > restarts_before:  # a new kernel: the watch of the cells was lost
        watched.tampering = [t for t in watched.tampering if "did not report" not in t]
    findings.merge(watched)
    grade.flags += [f for f in findings.flags() if f not in grade.flags]
    for part in exercise.parts.values():
        student = RemoteFunction(session, part.function, timeout)
        for index, check in enumerate(part.checks):
            result = functools.partial(CheckResult, exercise.id, part.function, check.name, 0.0,
                                       check.points)
            if session.restarts > MAX_RESTARTS:
                grade.results.append(result("not run", f"not run: the kernel was restarted "
                                                       f"{MAX_RESTARTS} times already"))
                continue
            student.begin()
            outcome = run_check(exercise.id, part, index, student, seed, session.output_limit)
            if findings.tampering:  # the cells reach into the grader: nothing counts
                outcome = result("failed", f"tampering: {findings.tampering[0]}; the notebook "
                                           "scores nothing", outcome.flags)
            grade.results.append(outcome)
            if student.needs_restart:
                student.needs_restart = False
                if session.restarts < MAX_RESTARTS:
                    session.restart()
                    _run_answer_cells(session, finished, timeout, None)
                else:
                    session.restarts += 1  # no more kernels: the rest is not run


def _unrun(exercise: Exercise, done: list[CheckResult], message: str) -> list[CheckResult]:
    """`done`, completed with a zero 'not run' result for every check it lacks."""
    have = {(r.part, r.check) for r in done}
    return done + [CheckResult(exercise.id, part.function, check.name, 0.0, check.points,
                               "not run", message)
                   for part in exercise.parts.values() for check in part.checks
                   if (part.function, check.name) not in have]
