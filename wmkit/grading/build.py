"""Build the exercise notebooks, and their nbgrader and otter-grader versions, from one source.

    python -m wmkit.grading.build            # write every generated file (see below)
    python -m wmkit.grading.build --check    # exit 1 if a generated file is out of date

Each exercise has one source, `exercises/source/NN_name.py`, in jupytext's "percent" format
(read with jupytext): `# %%` starts a code cell, `# %% [markdown]` a markdown cell (its lines
are `# `-comments), and `tags=["setup"]` / `tags=["answer"]` tag a cell. Lines before the
first `# %%` are notes for instructors and are not copied. Inside code cells, nbgrader's
markers say what the learner sees:

    ### BEGIN SOLUTION / ### END SOLUTION
        student notebook: replaced by `# YOUR CODE HERE` and `raise NotImplementedError`
        solution notebook: kept (markers removed)
    ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS
        student notebook: removed; solution notebook: kept (markers removed)

Generated, under `exercises/`:

    NN_name.ipynb                      the student notebook (hand this out)
    solutions/NN_name.ipynb            the solution (run by `make test` under nbval)
    nbgrader/source/NN_name/NN_name.ipynb
        nbgrader's source version: answer cells with solution metadata (the markers are
        nbgrader's own), the setup cell locked, and after each part's feedback cell one
        locked, graded test cell per check, worth its points, calling `grading.assert_check`
    otter/NN_name/NN_name.ipynb        the student notebook, for otter-grader
    otter/NN_name/tests/NN_name.py     otter's test file: one case per check, with its points

The source is also a plain script: `python exercises/source/01_model_loss.py` runs the
solutions and the checks without Jupyter.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from .core import Exercise, get_exercise

ROOT = Path(__file__).resolve().parents[2]  # a checkout: the build is a maintainer's tool
SOURCE_DIR = ROOT / "exercises" / "source"
OUT_DIR = ROOT / "exercises"

_MARKER = re.compile(r"^(?P<indent>\s*)### (?P<what>BEGIN|END) (?P<kind>SOLUTION|HIDDEN TESTS)\s*$")
_CHECK_CELL = re.compile(r"grading\.check\(\s*[\"'](?P<id>[\w-]+)[\"']\s*,\s*(?P<fn>\w+)")
STUB = "# YOUR CODE HERE\nraise NotImplementedError"
VERSIONS = ("student", "solution", "nbgrader")


def read_source(source: Path) -> nbformat.NotebookNode:
    """The source as a notebook (jupytext's percent format), without the instructors' header."""
    text = source.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    if not text.lstrip().startswith("# %%") and nb.cells:
        nb.cells = nb.cells[1:]  # the lines before the first `# %%`
    if not nb.cells:
        raise ValueError(f"{source}: no '# %%' cell found")
    return nb


def render(text: str, solution: bool, keep_solution_markers: bool = False,
           name: str = "<source>") -> str:
    """A code cell's text in the student (solution=False) or solution version; with
    `keep_solution_markers` the SOLUTION regions stay as they are (nbgrader's version)."""
    out: list[str] = []
    open_kind: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _MARKER.match(line)
        if marker is None:
            if open_kind is None or solution or keep_solution_markers and \
                    open_kind == "SOLUTION":
                out.append(line)
            continue
        kind, begin = marker.group("kind"), marker.group("what") == "BEGIN"
        where = f"{name}: line {number} of a cell"
        if begin and open_kind is not None:
            raise ValueError(f"{where}: BEGIN {kind} inside an open {open_kind} region")
        if not begin and open_kind != kind:
            raise ValueError(f"{where}: END {kind} without a matching BEGIN")
        open_kind = kind if begin else None
        if kind == "SOLUTION" and keep_solution_markers:
            out.append(line)
        elif begin and kind == "SOLUTION" and not solution:
            out += [marker.group("indent") + stub for stub in STUB.splitlines()]
    if open_kind is not None:
        raise ValueError(f"{name}: {open_kind} region is never closed")
    return "\n".join(out).strip("\n")


def _metadata(exercise_id: str, version: str) -> dict:
    return {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": "python3"},
            "language_info": {"name": "python"},
            "wmkit": {"exercise": exercise_id, "version": version}}


def build_notebook(source: Path, version: str) -> nbformat.NotebookNode:
    """The `version` ("student", "solution" or "nbgrader") of one source file."""
    if version not in VERSIONS:
        raise ValueError(f"version: expected one of {VERSIONS}, got {version!r}")
    exercise = get_exercise(source.stem) if version == "nbgrader" else None
    cells = []
    for i, cell in enumerate(read_source(source).cells):
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            node = nbformat.v4.new_markdown_cell(cell.source, id=f"cell-{i:02d}")
        else:
            text = render(cell.source, solution=version == "solution",
                          keep_solution_markers=version == "nbgrader", name=str(source))
            node = nbformat.v4.new_code_cell(text, id=f"cell-{i:02d}")
        if tags:
            node.metadata["tags"] = tags
        cells.append(node)
        if exercise is not None:
            cells += _nbgrader_cells(node, exercise, i)
    return nbformat.v4.new_notebook(cells=cells, metadata=_metadata(source.stem, version))


# -- nbgrader -------------------------------------------------------------------------------------


def _nbgrader(grade_id: str, *, solution: bool = False, grade: bool = False,
              locked: bool = False, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _nbgrader_cells(node: nbformat.NotebookNode, exercise: Exercise, index: int
                    ) -> list[nbformat.NotebookNode]:
    """Give `node` its nbgrader metadata; return the graded test cells that follow it."""
    tags = node.metadata.get("tags", [])
    if "answer" in tags:
        names = re.findall(r"^def (\w+)\(", node.source, re.MULTILINE)
        node.metadata["nbgrader"] = _nbgrader(f"answer-{'-'.join(names) or index}",
                                              solution=True)
        return []
    if "setup" in tags:
        node.metadata["nbgrader"] = _nbgrader("setup", locked=True)
        return []
    found = _CHECK_CELL.search(node.source) if node.cell_type == "code" else None
    if found is None or found.group("fn") not in exercise.parts:
        return []
    part = exercise.parts[found.group("fn")]
    tests = []
    for number, check in enumerate(part.checks):
        grade_id = f"test-{part.function}-{number}"
        code = (f"# {check.points:g} point{'s' if check.points != 1 else ''}: {check.name}\n"
                f"grading.assert_check({exercise.id!r}, {part.function},\n"
                f"                     {check.name!r})")
        cell = nbformat.v4.new_code_cell(code, id=grade_id)
        cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=True, locked=True,
                                              points=check.points)
        tests.append(cell)
    return tests


# -- otter-grader ----------------------------------------------------------------------------------


def otter_tests(exercise: Exercise) -> str:
    """otter-grader's test file (OK format) for `exercise`: one case per check, worth its
    points, calling the check by its number (its name is the case's name)."""
    cases = []
    for part in exercise.parts.values():
        for number, check in enumerate(part.checks):
            call = f"grading.assert_check({exercise.id!r}, {part.function}, {number})"
            cases.append(f"        {{'name': {check.name!r},\n"
                         f"         'code': ('>>> from wmkit import grading\\n'\n"
                         f"                  {'>>> ' + call + chr(10)!r}),\n"
                         f"         'hidden': False, 'locked': False, "
                         f"'points': {check.points!r}}},\n")
    return ("# Generated by `python -m wmkit.grading.build` from wmkit/grading/checks: do not "
            "edit.\nOK_FORMAT = True\n\n"
            f"test = {{'name': {exercise.id!r},\n"
            " 'points': None,\n"
            " 'suites': [{'cases': [\n" + "".join(cases) +
            "    ], 'scored': True, 'setup': '', 'teardown': '', 'type': 'doctest'}]}\n")


# -- every generated file ----------------------------------------------------------------------


def outputs(source_dir: Path = SOURCE_DIR, out_dir: Path = OUT_DIR) -> dict[Path, str]:
    """Every generated file (path -> exact text) for the sources in `source_dir`."""
    files = {}
    for source in sorted(source_dir.glob("[0-9][0-9]_*.py")):
        name = source.stem
        notebooks = {
            out_dir / f"{name}.ipynb": "student",
            out_dir / "solutions" / f"{name}.ipynb": "solution",
            out_dir / "nbgrader" / "source" / name / f"{name}.ipynb": "nbgrader",
            out_dir / "otter" / name / f"{name}.ipynb": "student",
        }
        for path, version in notebooks.items():
            nb = build_notebook(source, version)
            nbformat.validate(nb)
            files[path] = nbformat.writes(nb) + "\n"
        files[out_dir / "otter" / name / "tests" / f"{name}.py"] = otter_tests(
            get_exercise(name))
    return files


def _generated(out_dir: Path) -> list[Path]:
    found = [*out_dir.glob("*.ipynb"), *(out_dir / "solutions").glob("*.ipynb"),
             *(out_dir / "nbgrader").rglob("*.ipynb"), *(out_dir / "otter").rglob("*.ipynb"),
             *(out_dir / "otter").rglob("tests/*.py")]
    return sorted(p for p in found if ".ipynb_checkpoints" not in p.parts)


def stale(source_dir: Path = SOURCE_DIR, out_dir: Path = OUT_DIR) -> list[str]:
    """Why the generated files are out of date (empty when they are up to date)."""
    expected = outputs(source_dir, out_dir)
    problems = [f"{path}: {'missing' if not path.exists() else 'out of date'}"
                for path, text in expected.items()
                if not path.exists() or path.read_text(encoding="utf-8") != text]
    problems += [f"{path}: has no source in {source_dir}" for path in _generated(out_dir)
                 if path not in expected]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wmkit.grading.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated file is out of date")
    parser.add_argument("--source", type=Path, default=SOURCE_DIR, help="folder of NN_*.py")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the files go")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"--source: {args.source} is not a folder (the build runs in a checkout)")
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
