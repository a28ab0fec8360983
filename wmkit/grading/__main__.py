"""`python -m wmkit.grading NOTEBOOK_OR_FOLDER ... [--out DIR] [--timeout SECONDS]`

Grade exercise notebooks, print a score table and write the gradebook (see
docs/INSTRUCTORS.md). Each notebook runs in a fresh kernel; each graded cell and each check
has `--timeout` seconds. Submissions are only read, never written.

Who is the student: for `submissions/alice/01_model_loss.ipynb` graded as `submissions/`,
the first folder below the one given (`alice`); for a notebook directly in the given folder,
the file name without .ipynb; for a notebook given by path, its folder's name.

Exit status: 0 when every notebook was graded (whatever the scores), 1 when some could not
be (unreadable file, kernel that would not start), 2 when no notebook was found.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from .gradebook import format_grade, format_summary, write_gradebook
from .runner import DEFAULT_TIMEOUT, KernelSession, NotebookGrade, grade_notebook


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wmkit.grading",
        description="Grade wmkit exercise notebooks: run each in a fresh kernel, print a score "
                    "table, write a gradebook. Submissions are only read.",
        epilog="Gradebook files: gradebook.csv (students x exercises), results.csv (one row "
               "per check), gradebook.json (everything).")
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks or folders of them")
    parser.add_argument("--out", type=Path, default=Path("grades"),
                        help="folder for the gradebook (default: ./grades)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds for each graded cell and each check (default: "
                             f"{DEFAULT_TIMEOUT:g})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the checks' random inputs (default: a fresh one, recorded "
                             "in gradebook.json)")
    parser.add_argument("--share-kernel", action="store_true",
                        help="one kernel per student instead of per notebook (faster; the "
                             "namespace is cleared between notebooks, imported modules stay)")
    parser.add_argument("--summary-only", action="store_true",
                        help="print only the final table, not each check")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"paths: not found: {', '.join(missing)}")
    notebooks = find_notebooks(args.paths)
    if not notebooks:
        print(f"no .ipynb found under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed

    grades: list[NotebookGrade] = []
    session: KernelSession | None = None
    current_student = None
    try:
        for path, student in notebooks:
            if args.share_kernel and student != current_student:
                if session is not None:
                    session.close()
                session, current_student = KernelSession(), student
                try:
                    session.start()
                except RuntimeError:  # grade_notebook starts its own and reports the trouble
                    session = None
            grade = grade_notebook(path, student=student, timeout=args.timeout, seed=seed,
                                   session=session)
            if grade.status == "unknown exercise":
                print(f"skipped {path}: {grade.notes[0]}", file=sys.stderr)
                continue
            grades.append(grade)
            print(format_grade(grade, details=not args.summary_only), flush=True)
    finally:
        if session is not None:
            session.close()
    if not grades:
        print("no exercise notebook found", file=sys.stderr)
        return 2
    files = write_gradebook(grades, args.out, {"seed": seed, "timeout_s": args.timeout,
                                              "share_kernel": args.share_kernel})
    print()
    print(format_summary(grades))
    print(f"\ngradebook: {', '.join(map(str, files))}")
    return 0 if all(g.status == "graded" for g in grades) else 1


if __name__ == "__main__":
    sys.exit(main())
