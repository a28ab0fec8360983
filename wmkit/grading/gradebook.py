"""The gradebook: score tables for the terminal, and CSV / JSON files for the records.

Files written to the output folder, updated as each notebook finishes (a crash of the grader
loses at most the notebook being graded):

- `gradebook.csv`: one row per student, one column per exercise (its score), then `total`,
  `max_total` (the same for everyone: the points of every exercise in the run) and `flags`
  (what the instructor should look at, see docs/INSTRUCTORS.md). An exercise the student did
  not hand in is left empty and counts as zero in `total`. Rewritten whole (atomically).
- `results.csv`: one row per check: student, exercise, notebook, part, check, points,
  max_points, status (passed, failed, error, timeout, not run), message and flags. Appended.
- `gradebook.json`: everything, with the run's settings (seed, timeout) and per notebook its
  status, notes, flags, kernel restarts and seconds. Rewritten whole (atomically).

Text that comes from submissions (file and folder names, messages, flags) is neutralised
before it enters a CSV: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return
gets a leading apostrophe, so a spreadsheet shows it instead of evaluating it (OWASP, "CSV
injection").
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core import fmt_points, format_result
from .runner import NotebookGrade

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def neutralise(text: Any) -> str:
    """`text` safe for a spreadsheet cell: a leading apostrophe before a formula start."""
    text = str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def printable(text: Any) -> str:
    """`text` without control characters (no terminal escape sequences from submissions)."""
    return _CONTROL.sub("?", str(text))


def format_grade(grade: NotebookGrade, details: bool = True) -> str:
    """A notebook's score and, with `details`, one line per check plus notes and flags."""
    head = (f"{grade.student} / {grade.exercise or '?'}: {fmt_points(grade.score)}/"
            f"{fmt_points(grade.max_score)}" + ("" if grade.status == "graded"
                                                 else f"  [{grade.status}]"))
    lines = [head, f"  {grade.notebook}"]
    if details:
        lines += ["  " + format_result(r).replace("\n", "\n  ") for r in grade.results]
    lines += [f"  note: {note}" for note in grade.notes]
    lines += [f"  FLAG: {flag}" for flag in grade.all_flags]
    return printable("\n".join(lines))


def _table(grades: Sequence[NotebookGrade], exercises: dict[str, float]
           ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of gradebook.csv; `exercises`: id -> max points, in column order."""
    students = sorted({g.student for g in grades})
    max_total = sum(exercises.values())  # every student is out of the same total
    header = ["student", *exercises, "total", "max_total", "flags"]
    rows = []
    for student in students:
        mine = {g.exercise: g for g in grades if g.student == student and g.exercise}
        scores = [fmt_points(mine[ex].score) if ex in mine else "" for ex in exercises]
        total = sum(g.score for g in mine.values())
        theirs = [g for g in grades if g.student == student]
        flags = [f"{g.exercise or g.notebook}: {flag}" for g in theirs for flag in g.all_flags]
        flags += [f"{g.exercise or g.notebook}: {g.status}" for g in theirs
                  if g.status != "graded"]
        rows.append([student, *scores, fmt_points(total), fmt_points(max_total),
                     "; ".join(flags)])
    return header, rows


def format_summary(grades: Sequence[NotebookGrade], exercises: dict[str, float] | None = None
                   ) -> str:
    """The gradebook as an aligned text table: students x exercises (flags counted)."""
    exercises = exercises or _exercises_of(grades)
    header, rows = _table(grades, exercises)
    header[-1] = "flags"
    rows = [[*row[:-1], str(len(row[-1].split("; "))) if row[-1] else ""] for row in rows]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return printable("\n".join(lines))


def _exercises_of(grades: Sequence[NotebookGrade]) -> dict[str, float]:
    found: dict[str, float] = {}
    for g in sorted(grades, key=lambda g: g.exercise):
        if g.exercise:
            found[g.exercise] = max(found.get(g.exercise, 0.0), g.max_score)
    return found


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[neutralise(c) for c in row] for row in rows])
    return buffer.getvalue()


def _replace(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a crash never leaves half a file)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


RESULT_COLUMNS = ["student", "exercise", "notebook", "part", "check", "points", "max_points",
                  "status", "message", "flags"]


class Gradebook:
    """The gradebook files in `out`, brought up to date by `add` as each notebook finishes.

    `exercises`: id -> max points of every exercise in the run (the gradebook's columns).
    """

    def __init__(self, out: str | Path, exercises: dict[str, float],
                 settings: dict[str, Any] | None = None) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.exercises = dict(exercises)
        self.settings = settings or {}
        self.grades: list[NotebookGrade] = []
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _replace(self.results_path, _csv_text([RESULT_COLUMNS]))
        self._rewrite()

    @property
    def book_path(self) -> Path:
        return self.out / "gradebook.csv"

    @property
    def results_path(self) -> Path:
        return self.out / "results.csv"

    @property
    def json_path(self) -> Path:
        return self.out / "gradebook.json"

    @property
    def paths(self) -> list[Path]:
        return [self.book_path, self.results_path, self.json_path]

    def add(self, grade: NotebookGrade) -> None:
        """Record one graded notebook in every file, now."""
        self.grades.append(grade)
        if grade.exercise and grade.exercise not in self.exercises:
            self.exercises[grade.exercise] = grade.max_score
        rows = [[grade.student, grade.exercise, grade.notebook, r.part, r.check,
                 fmt_points(r.points), fmt_points(r.max_points), r.status, r.message,
                 "; ".join(r.flags)] for r in grade.results]
        with self.results_path.open("a", encoding="utf-8", newline="") as handle:
            handle.write(_csv_text(rows))
            handle.flush()
            os.fsync(handle.fileno())
        self._rewrite()

    def _rewrite(self) -> None:
        header, rows = _table(self.grades, self.exercises)
        _replace(self.book_path, _csv_text([header, *rows]))
        _replace(self.json_path, json.dumps({
            "created": self.created, "settings": self.settings,
            "notebooks": [g.to_dict() for g in self.grades]}, indent=1) + "\n")


def write_gradebook(grades: Sequence[NotebookGrade], out: str | Path,
                    settings: dict[str, Any] | None = None) -> list[Path]:
    """Write gradebook.csv, results.csv and gradebook.json for `grades` at once."""
    book = Gradebook(out, _exercises_of(grades), settings)
    for grade in grades:
        book.add(grade)
    return book.paths
