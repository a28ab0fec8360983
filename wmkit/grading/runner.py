"""Grade exercise notebooks: the learner's answer cells run in a fresh kernel, then each check
runs there with its own time limit.

What runs: the notebook's cells tagged `setup` and `answer` (or any code cell that defines
one of the graded functions), in notebook order; demos, plots and check cells are not run.
Then one short cell per check. A cell or check that runs out of time is interrupted; if the
kernel does not come back (a loop that swallows KeyboardInterrupt) or dies (`os._exit`, a
crash), it is replaced by a fresh one, the answer cells that completed are run again and the
remaining checks go on. The notebook file is only ever read.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from .core import OUTPUT_LIMIT, CheckResult, Exercise, Scored, all_exercises, get_exercise
from .kernel import MIME

KIT_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the `wmkit` package the grader runs: kernels import the same one."""

DEFAULT_TIMEOUT = 20.0
STARTUP_TIMEOUT = 120.0  # kernel start + `import torch` on a busy machine
PROBE_TIMEOUT = 3.0  # after a timeout: is the kernel answering again? (else: a new one)
IOPUB_TIMEOUT = 4  # after a cell's reply, how long its last output may take to arrive
MAX_RESTARTS = 3  # per notebook; after that the remaining checks are not run

PREPARE = """\
import torch
torch.set_num_threads(1)
import wmkit.grading.kernel
"""

_quiet = logging.getLogger("wmkit.grading.nbclient")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False  # nbclient logs every timeout and dead kernel as an error: we report


class _CurrentPython(KernelSpecManager):
    """Kernels run on the interpreter that runs the grader (its venv), whatever the notebook's
    kernelspec says."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                "{connection_file}"], display_name="wmkit grader",
                          language="python")


class _Client(NotebookClient):
    """nbclient with a cap on captured output and a flag set when a cell times out."""

    output_limit = OUTPUT_LIMIT
    timed_out = False
    kept_chars = 0
    dropped_chars = 0

    def create_kernel_manager(self) -> AsyncKernelManager:
        self.km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_CurrentPython())
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
        if MIME in content.get("data", {}):  # check results always get through
            return super().output(outs, msg, display_id, cell_index)
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

    def payloads(self, token: str) -> list[dict[str, Any]]:
        """The check results in this cell's outputs that carry this run's token."""
        found = []
        for out in self.outputs:
            data = out.get("data", {}).get(MIME) if out.get("output_type") == "display_data" \
                else None
            if isinstance(data, dict) and data.get("token") == token:
                found.append(data["result"])
        return found


class KernelSession:
    """A kernel for grading: run cells with a time limit, restart it when it dies or hangs.

    Use as a context manager. Its working directory is a fresh temporary folder, so files a
    learner's code writes land there and nowhere near the submission.
    """

    def __init__(self, output_limit: int = OUTPUT_LIMIT,
                 startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.output_limit = output_limit
        self.startup_timeout = startup_timeout
        self.restarts = 0
        self._client: _Client | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> KernelSession:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Start a fresh kernel and import torch and the checks in it."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="wmkit-grading-")
        client = _Client(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")]),
                         allow_errors=True, interrupt_on_timeout=True,
                         error_on_timeout={"ename": "Timeout", "evalue": "", "traceback": []},
                         startup_timeout=int(self.startup_timeout), iopub_timeout=IOPUB_TIMEOUT,
                         shutdown_kernel="immediate", record_timing=False,
                         store_widget_state=False, log=_quiet)
        client.output_limit = self.output_limit
        client.create_kernel_manager()
        env = {**os.environ, "MPLBACKEND": "Agg", "SDL_VIDEODRIVER": "dummy",
               "OMP_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
               "PYTHONPATH": os.pathsep.join(
                   [str(KIT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        # The kernel's own stdout/stderr (not the cells' output) would clutter the grader's.
        client.start_new_kernel(cwd=self._workdir.name, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        client.start_new_kernel_client()
        self._client = client
        prepared = self.run(PREPARE, self.startup_timeout)
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

    def responsive(self) -> bool:
        """Whether the kernel answers a trivial cell (after an interrupt it should)."""
        return self.run("None", PROBE_TIMEOUT).status == "ok"

    def restart(self) -> None:
        """Replace the kernel by a fresh, prepared one."""
        self._shutdown()
        self.restarts += 1
        self.start()

    def reset(self) -> None:
        """Clear the learner's namespace, to grade another notebook of the same learner."""
        if self.run("%reset -f", PROBE_TIMEOUT).status != "ok" or \
                self.run(PREPARE, self.startup_timeout).status != "ok":
            self.restart()
        self.restarts = 0

    def _shutdown(self) -> None:
        if self._client is not None:
            try:
                self._client._cleanup_kernel()  # nbclient's own shutdown: kill and tidy up
            except Exception:  # noqa: BLE001  (a dead kernel may fail to shut down cleanly)
                pass
            self._client = None

    def close(self) -> None:
        """Shut the kernel down and remove its working directory."""
        self._shutdown()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


# -- grading one notebook --------------------------------------------------------------------


@dataclass
class NotebookGrade(Scored):
    """The grade of one notebook. status: graded, or why it could not be (see notes)."""

    notebook: str
    student: str
    exercise: str
    results: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "graded"
    seconds: float = 0.0
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(score=self.score, max_score=self.max_score)
        return data


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


def grade_notebook(path: str | Path, *, student: str = "", timeout: float = DEFAULT_TIMEOUT,
                   seed: int | None = None, session: KernelSession | None = None,
                   output_limit: int = OUTPUT_LIMIT) -> NotebookGrade:
    """Grade one exercise notebook; the file is read once and never written.

    `timeout`: seconds for each graded cell and each check. `session`: a running kernel to
    reuse (it is reset first); by default a fresh kernel is started and shut down.
    """
    started = time.monotonic()
    path = Path(path)
    grade = NotebookGrade(str(path), student or path.stem, "")
    seed = secrets.randbelow(2**31) if seed is None else seed
    try:
        # Parsed from bytes in memory: every later step works on this copy.
        nb = nbformat.reads(path.read_bytes().decode("utf-8"), as_version=4)
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
    own = session is None
    active = session or KernelSession(output_limit=output_limit)
    try:
        active.start() if own else active.reset()
        _grade_in(active, exercise, cells, grade, timeout, seed)
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


def _grade_in(session: KernelSession, exercise: Exercise, cells: list[tuple[int, str]],
              grade: NotebookGrade, timeout: float, seed: int) -> None:
    finished = _run_answer_cells(session, cells, timeout, grade.notes)
    token = secrets.token_hex(8)
    for part in exercise.parts.values():
        for index, check in enumerate(part.checks):
            result = functools.partial(CheckResult, exercise.id, part.function, check.name, 0.0,
                                       check.points)
            if session.restarts > MAX_RESTARTS:
                grade.results.append(result("not run", f"not run: the kernel was restarted "
                                                       f"{MAX_RESTARTS} times already"))
                continue
            code = (f"__import__('wmkit.grading.kernel').grading.kernel.report("
                    f"{exercise.id!r}, {part.function!r}, {index}, {seed}, {token!r}, "
                    f"{session.output_limit})")
            run = session.run(code, timeout)
            payloads = run.payloads(token)
            if payloads:
                grade.results.append(CheckResult(**payloads[0]))
            elif run.status == "timeout":
                grade.results.append(result("timeout", f"ran longer than {timeout:g} s "
                                                       "(an endless loop?) and was stopped"))
            elif run.status == "died":
                grade.results.append(result("error", f"{part.function} killed the kernel "
                                                     "(os._exit? a crash? out of memory?)"))
            else:
                grade.results.append(result("error", f"the check could not run: {run.error}"))
            if run.status == "died" or run.status == "timeout" and not session.responsive():
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
