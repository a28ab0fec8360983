"""The gradebook: score tables for the terminal, and CSV / JSON files for the records.

Files written to the output folder:

- `gradebook.csv`: one row per student, one column per exercise (its score), then `total`
  and `max_total` (the same for everyone: the points of every exercise in the run). An
  exercise the student did not hand in is left empty and counts as zero in `total`.
- `results.csv`: one row per check: student, exercise, notebook, part, check, points,
  max_points, status (passed, failed, error, timeout, not run) and message.
- `gradebook.json`: everything, with the run's settings (seed, timeout) and per notebook its
  status, notes (cells that raised, ran out of time or printed too much), kernel restarts and
  seconds.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core import fmt_points, format_result
from .runner import NotebookGrade


def format_grade(grade: NotebookGrade, details: bool = True) -> str:
    """A notebook's score and, with `details`, one line per check plus the notes."""
    head = (f"{grade.student} / {grade.exercise or '?'}: {fmt_points(grade.score)}/"
            f"{fmt_points(grade.max_score)}" + ("" if grade.status == "graded"
                                                 else f"  [{grade.status}]"))
    lines = [head, f"  {grade.notebook}"]
    if details:
        lines += ["  " + format_result(r).replace("\n", "\n  ") for r in grade.results]
    lines += [f"  note: {note}" for note in grade.notes]
    return "\n".join(lines)


def _table(grades: Sequence[NotebookGrade]) -> tuple[list[str], list[list[str]]]:
    exercises = sorted({g.exercise for g in grades if g.exercise})
    students = sorted({g.student for g in grades})
    # Every student is out of the same total: work not handed in counts as zero.
    max_total = sum(max(g.max_score for g in grades if g.exercise == ex) for ex in exercises)
    header = ["student", *exercises, "total", "max_total"]
    rows = []
    for student in students:
        mine = {g.exercise: g for g in grades if g.student == student and g.exercise}
        scores = [fmt_points(mine[ex].score) if ex in mine else "" for ex in exercises]
        total = sum(g.score for g in mine.values())
        rows.append([student, *scores, fmt_points(total), fmt_points(max_total)])
    return header, rows


def format_summary(grades: Sequence[NotebookGrade]) -> str:
    """The gradebook as an aligned text table: students x exercises."""
    header, rows = _table(grades)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_gradebook(grades: Sequence[NotebookGrade], out: str | Path,
                    settings: dict[str, Any] | None = None) -> list[Path]:
    """Write gradebook.csv, results.csv and gradebook.json into `out`; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, rows = _table(grades)
    book = out / "gradebook.csv"
    with book.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    results = out / "results.csv"
    with results.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "exercise", "notebook", "part", "check", "points",
                         "max_points", "status", "message"])
        for g in grades:
            for r in g.results:
                writer.writerow([g.student, g.exercise, g.notebook, r.part, r.check,
                                 fmt_points(r.points), fmt_points(r.max_points), r.status,
                                 r.message])
    full = out / "gradebook.json"
    full.write_text(json.dumps({
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings or {},
        "notebooks": [g.to_dict() for g in grades],
    }, indent=1) + "\n", encoding="utf-8")
    return [book, results, full]
