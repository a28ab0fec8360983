"""Build the exercise notebooks from their one source of truth.

    python -m wmkit.grading.build            # write exercises/*.ipynb and exercises/solutions/
    python -m wmkit.grading.build --check    # exit 1 if a generated notebook is out of date

Each exercise has one source, `exercises/source/NN_name.py`, in the "percent" format that
jupytext and VS Code understand: `# %%` starts a code cell, `# %% [markdown]` a markdown cell
(its lines are `# `-comments), and `tags=["setup"]` / `tags=["answer"]` tag a cell. Lines
before the first `# %%` are notes for instructors and are not copied. Inside code cells,
nbgrader-style markers say what the learner sees:

    ### BEGIN SOLUTION / ### END SOLUTION
        student notebook: replaced by `# YOUR CODE HERE` and `raise NotImplementedError`
        solution notebook: kept (markers removed)
    ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS
        student notebook: removed; solution notebook: kept (markers removed)

The source is also a plain script: `python exercises/source/01_model_loss.py` runs the
solutions and the checks without Jupyter.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = ROOT / "exercises" / "source"
OUT_DIR = ROOT / "exercises"

_CELL = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")
_MARKER = re.compile(r"^(?P<indent>\s*)### (?P<what>BEGIN|END) (?P<kind>SOLUTION|HIDDEN TESTS)\s*$")

STUB = "# YOUR CODE HERE\nraise NotImplementedError"


@dataclass
class SourceCell:
    kind: str  # "code" or "markdown"
    lines: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    line: int = 0  # where it starts in the source, for error messages


def parse(text: str, name: str = "<source>") -> list[SourceCell]:
    """Split a percent-format source into cells (the header before the first `# %%` is dropped)."""
    cells: list[SourceCell] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _CELL.match(line)
        if match:
            tags = json.loads(match.group("tags")) if match.group("tags") else []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError(f"{name}:{number}: tags must be a JSON list of strings")
            cells.append(SourceCell("markdown" if match.group("markdown") else "code", [],
                                    tags, number))
        elif cells:
            if cells[-1].kind == "markdown" and line.strip():
                if not (line == "#" or line.startswith("# ")):
                    raise ValueError(f"{name}:{number}: a markdown line must start with '# '")
                line = line[2:]
            elif cells[-1].kind == "markdown":
                line = ""
            cells[-1].lines.append(line)
    if not cells:
        raise ValueError(f"{name}: no '# %%' cell found")
    return cells


def render(cell: SourceCell, solution: bool, name: str = "<source>") -> str:
    """The cell's text in the student (solution=False) or solution version."""
    out: list[str] = []
    open_kind: str | None = None
    for offset, line in enumerate(cell.lines, start=1):
        marker = _MARKER.match(line) if cell.kind == "code" else None
        if marker is None:
            if open_kind is None or solution:
                out.append(line)
            continue
        kind, begin = marker.group("kind"), marker.group("what") == "BEGIN"
        where = f"{name}:{cell.line + offset}"
        if begin and open_kind is not None:
            raise ValueError(f"{where}: BEGIN {kind} inside an open {open_kind} region")
        if not begin and open_kind != kind:
            raise ValueError(f"{where}: END {kind} without a matching BEGIN")
        open_kind = kind if begin else None
        if begin and kind == "SOLUTION" and not solution:
            out += [marker.group("indent") + stub for stub in STUB.splitlines()]
    if open_kind is not None:
        raise ValueError(f"{name}:{cell.line}: {open_kind} region is never closed")
    return "\n".join(out).strip("\n")


def build_notebook(source: Path, solution: bool) -> nbformat.NotebookNode:
    """The student or solution notebook of one source file."""
    cells = []
    for i, cell in enumerate(parse(source.read_text(encoding="utf-8"), str(source))):
        text = render(cell, solution, str(source))
        make = nbformat.v4.new_code_cell if cell.kind == "code" else nbformat.v4.new_markdown_cell
        # Fixed ids keep the generated files identical from one build to the next.
        node = make(text, id=f"cell-{i:02d}")
        if cell.tags:
            node.metadata["tags"] = cell.tags
        cells.append(node)
    return nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
        "wmkit": {"exercise": source.stem, "version": "solution" if solution else "student"},
    })


def outputs(source_dir: Path = SOURCE_DIR, out_dir: Path = OUT_DIR) -> dict[Path, str]:
    """Every generated file (path -> exact text) for the sources in `source_dir`."""
    files = {}
    for source in sorted(source_dir.glob("[0-9][0-9]_*.py")):
        for solution, folder in ((False, out_dir), (True, out_dir / "solutions")):
            nb = build_notebook(source, solution)
            nbformat.validate(nb)
            files[folder / f"{source.stem}.ipynb"] = nbformat.writes(nb) + "\n"
    return files


def stale(source_dir: Path = SOURCE_DIR, out_dir: Path = OUT_DIR) -> list[str]:
    """Why the generated notebooks are out of date (empty when they are up to date)."""
    expected = outputs(source_dir, out_dir)
    problems = [f"{path}: {'missing' if not path.exists() else 'out of date'}"
                for path, text in expected.items()
                if not path.exists() or path.read_text(encoding="utf-8") != text]
    generated = [*out_dir.glob("*.ipynb"), *(out_dir / "solutions").glob("*.ipynb")]
    problems += [f"{path}: has no source in {source_dir}" for path in sorted(generated)
                 if path not in expected]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wmkit.grading.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated notebook is out of date")
    parser.add_argument("--source", type=Path, default=SOURCE_DIR, help="folder of NN_*.py")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where notebooks go")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.source, args.out)
        for problem in problems:
            print(problem)
        if problems:
            print("run: python -m wmkit.grading.build", file=sys.stderr)
        return 1 if problems else 0
    for path, text in outputs(args.source, args.out).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
