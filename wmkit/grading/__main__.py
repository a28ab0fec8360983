"""`python -m wmkit.grading SUBMISSIONS ... [--out DIR] [--timeout S] [--seed N]`

Grade exercise notebooks, print a score table and write the gradebook (see
docs/INSTRUCTORS.md). Grading processes (`worker`, in sessions of their own, started from a
fresh read-only copy of the kit held in this process's memory) grade the notebooks, each in a
fresh kernel on another fresh copy; this process outlives them whatever a notebook does (a
new grading process takes over the rest), and records each notebook in the gradebook as soon
as it is graded. Submissions are only read, never written.

Who is the student: for `submissions/alice/01_model_loss.ipynb` graded as `submissions/`,
the first folder below the one given (`alice`); for a notebook directly in the given folder,
the file name without .ipynb; for a notebook given by path, its folder's name.

Exit status: 0 when every notebook was graded (whatever the scores), 1 when some could not
be (unreadable file, kernel that would not start, grading process killed), 2 when no
notebook was found.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core import OUTPUT_LIMIT, CheckResult, all_exercises, get_exercise
from .gradebook import Gradebook, format_grade, format_summary, printable
from .isolation import KitSnapshot, child_env, kill_marked, python_argv, remove_tree
from .runner import (
    DEFAULT_TIMEOUT,
    MAX_RESTARTS,
    NotebookGrade,
    graded_cells,
    identify_exercise,
    read_notebook,
)
from .worker import RESULT

STARTUP_ALLOWANCE = 120.0  # seconds for a grading process or a kernel to start
MAX_LINE = 2**24  # the longest grade line read from a grading process


def find_notebooks(paths: list[Path]) -> list[tuple[Path, str]]:
    """(notebook, student) for every .ipynb under `paths`, in a stable order."""
    found: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_file():
            found.append((root, root.resolve().parent.name))
            continue
        for path in sorted(root.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            relative = path.relative_to(root)
            found.append((path, relative.parts[0] if len(relative.parts) > 1 else path.stem))
    return found


@dataclass
class Job:
    """One notebook to grade."""

    path: Path
    student: str
    exercise: str
    cells: int
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))


class GradingProcess:
    """A `worker` process grading `jobs` in order, from its own fresh copy of the kit."""

    def __init__(self, kit: KitSnapshot, jobs: list[Job], timeout: float, seed: int,
                 output_limit: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="wmkit-grader-"))
        self.token = secrets.token_hex(8)
        grader_kit = kit.write(self.folder / "kit")
        (self.folder / "work").mkdir()
        (self.folder / "notebooks").mkdir()  # the worker's per-notebook folders: ours to remove
        self.errors = (self.folder / "stderr").open("w+b")
        argv = python_argv(grader_kit, "from wmkit.grading.worker import main; main()")
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.errors, cwd=self.folder / "work",
                                        env=child_env(self.token), start_new_session=True)
        request = {"kit": {name: base64.b64encode(data).decode() for name, data in
                           kit.files.items()},
                   "jobs": [{"notebook": str(j.path.resolve()), "student": j.student,
                             "nonce": j.nonce} for j in jobs],
                   "timeout": timeout, "seed": seed, "output_limit": output_limit,
                   "scratch": str(self.folder / "notebooks")}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.close()
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        # Only grade lines are kept: a kernel writing a flood into its parent's stdout costs
        # no memory here.
        prefix = RESULT.encode()
        for line in iter(lambda: stream.readline(MAX_LINE), b""):
            if line.startswith(prefix):
                self.lines.put(line)
        self.lines.put(None)

    def next_grade(self, job: Job, seconds: float) -> NotebookGrade | str:
        """The grade of `job` (the next one), or why there is none."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return f"grading took longer than {seconds:.0f} s and was stopped"
            if line is None:
                return _death(self.process.wait())
            parts = line.decode("utf-8", "replace").rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0] == RESULT and parts[1] == job.nonce:
                try:
                    return NotebookGrade.from_dict(json.loads(parts[2]))
                except (ValueError, TypeError, KeyError) as error:
                    return f"the grading process sent an unreadable grade ({error})"

    def stop(self) -> str:
        """End the process, its kernels and whatever they started; return its stderr's tail."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait()
        kill_marked(self.token)  # a kernel orphaned by its grading process, and its children
        self.errors.seek(0)
        tail = self.errors.read()[-2000:].decode("utf-8", "replace").strip().splitlines()[-1:]
        self.errors.close()
        remove_tree(self.folder)
        return tail[0][:300] if tail else ""


def _death(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        number = -returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        return f"the grading process was killed by {name} (by the notebook's code?)"
    return f"the grading process ended without a grade (exit status {returncode})"


def _not_graded(job: Job, why: str) -> NotebookGrade:
    exercise = get_exercise(job.exercise)
    grade = NotebookGrade(str(job.path), job.student, job.exercise, status="grader error")
    grade.notes.append(why)
    grade.flags.append(f"review: the notebook was not graded: {why}")
    grade.results = [CheckResult(job.exercise, part.function, check.name, 0.0, check.points,
                                 "not run", f"not run: {why}")
                     for part in exercise.parts.values() for check in part.checks]
    return grade


def grade_all(jobs: list[Job], kit: KitSnapshot, timeout: float, seed: int,
              on_grade: Callable[[NotebookGrade], None], output_limit: int = OUTPUT_LIMIT,
              parallel: int = 1) -> None:
    """Grade `jobs` in grading processes (a new one after each that dies or hangs), calling
    `on_grade` with each grade as soon as it is known; `parallel` processes at a time."""
    if parallel > 1 and len(jobs) > 1:
        lock = threading.Lock()

        def record(grade: NotebookGrade) -> None:
            with lock:
                on_grade(grade)

        shares = [jobs[i::parallel] for i in range(min(parallel, len(jobs)))]
        threads = [threading.Thread(target=grade_all, args=(share, kit, timeout, seed, record,
                                                            output_limit))
                   for share in shares]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return
    pending = list(jobs)
    while pending:
        process = GradingProcess(kit, pending, timeout, seed, output_limit)
        first = True
        while pending:
            job = pending[0]
            checks = sum(len(p.checks) for p in get_exercise(job.exercise).parts.values())
            seconds = (STARTUP_ALLOWANCE * (MAX_RESTARTS + 1 + first)
                       + timeout * (job.cells + checks + 5))
            grade = process.next_grade(job, seconds)
            first = False
            pending.pop(0)
            if isinstance(grade, NotebookGrade):
                grade.notebook, grade.student = str(job.path), job.student  # ours to say
                on_grade(grade)
                continue
            tail = process.stop()
            on_grade(_not_graded(job, grade + (f" ({tail})" if tail else "")))
            break
        else:
            process.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wmkit.grading",
        description="Grade wmkit exercise notebooks: each in a fresh kernel on a fresh "
                    "read-only copy of the kit, judged by a grading process this command "
                    "outlives; print a score table, write the gradebook as notebooks finish. "
                    "Submissions are only read.",
        epilog="Gradebook files: gradebook.csv (students x exercises, total, flags), "
               "results.csv (one row per check), gradebook.json (everything).")
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks or folders of them")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="folder for the gradebook (default: ./grades)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds for each graded cell and each check (default: "
                             f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the checks' random inputs (default: a fresh one, recorded "
                             "in gradebook.json)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks graded at the same time, each in its own process "
                             "(default: 1; up to the number of cores)")
    parser.add_argument("--summary-only", action="store_true",
                        help="print only the final table, not each check")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive number of processes, got {args.jobs}")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"paths: not found: {', '.join(missing)}")
    kit = KitSnapshot.capture()  # before any submission runs: the copies all come from here
    exercises = all_exercises()

    # Which exercise each notebook is, before grading anything: the gradebook's columns.
    todo: list[Job] = []
    unreadable: list[NotebookGrade] = []
    for path, student in find_notebooks(args.paths):
        try:
            nb = read_notebook(path)
            exercise_id = identify_exercise(nb, path)
        except Exception as error:  # noqa: BLE001  (any unreadable file is a grade)
            exercise_id = identify_exercise({}, path) or ""  # by its name, if it has one
            grade = NotebookGrade(str(path), student, exercise_id, status="unreadable")
            grade.notes.append(f"could not read the notebook: {type(error).__name__}: "
                               f"{error}"[:300])
            unreadable.append(grade)
            continue
        if exercise_id is None:
            print(printable(f"skipped {path}: not a wmkit exercise (no wmkit.exercise metadata, "
                            "and the file name does not start with an exercise id)"),
                  file=sys.stderr)
            continue
        cells = len(graded_cells(nb, exercises[exercise_id]))
        todo.append(Job(path, student, exercise_id, cells))
    if not todo and not unreadable:
        print(f"no exercise notebook found under {', '.join(map(str, args.paths))}",
              file=sys.stderr)
        return 2
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    columns = {ex: exercises[ex].max_points for ex in sorted(
        {job.exercise for job in todo} | {g.exercise for g in unreadable if g.exercise})}
    book = Gradebook(args.out, columns, {"seed": seed, "timeout_s": args.timeout,
                                         "jobs": args.jobs})

    def record(grade: NotebookGrade) -> None:
        book.add(grade)  # on disk now: a crash from here on loses nothing of it
        print(format_grade(grade, details=not args.summary_only), flush=True)

    for grade in unreadable:
        record(grade)
    grade_all(todo, kit, args.timeout, seed, record, parallel=args.jobs)
    print()
    print(format_summary(book.grades, book.exercises))
    print(f"\ngradebook: {', '.join(map(str, book.paths))}")
    return 0 if all(g.status == "graded" for g in book.grades) else 1


if __name__ == "__main__":
    sys.exit(main())
