"""Strip outputs from notebooks so they are stored small and diff cleanly.

    python tools/strip_notebooks.py [PATH ...]          # strip in place
    python tools/strip_notebooks.py --check [PATH ...]  # list unstripped ones, exit 1 if any

PATH is a notebook or a folder searched recursively (default: notebooks exercises).

Removes code-cell outputs and execution counts, per-cell execution timing, and the saved widget
state (it can be megabytes). Everything else, cell ids and tags included, is kept.
"""

import argparse
import sys
from pathlib import Path

import nbformat

DEFAULT_PATHS = [Path("notebooks"), Path("exercises")]


def find_notebooks(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


def strip(nb: nbformat.NotebookNode) -> bool:
    """Strip `nb` in place; return whether anything changed."""
    changed = nb.metadata.pop("widgets", None) is not None
    for cell in nb.cells:
        changed |= cell.metadata.pop("execution", None) is not None
        if cell.cell_type == "code":
            changed |= bool(cell.outputs) or cell.execution_count is not None
            cell.outputs = []
            cell.execution_count = None
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=DEFAULT_PATHS)
    parser.add_argument("--check", action="store_true", help="report only; exit 1 if any is dirty")
    args = parser.parse_args(argv)

    dirty = []
    for path in find_notebooks(args.paths):
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "has outputs" if args.check else "stripped"
    for path in dirty:
        print(f"{path}: {verb}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
