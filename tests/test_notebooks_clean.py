"""Notebooks are stored without outputs, so diffs stay small and reviewable (`make strip`)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = [ROOT / "notebooks", ROOT / "exercises"]


def _notebooks() -> list[Path]:
    return sorted(
        path
        for folder in FOLDERS
        for path in folder.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in path.parts
    )


def test_there_are_notebooks() -> None:
    if not FOLDERS[0].is_dir():
        pytest.skip("notebooks/ does not exist yet")
    assert _notebooks(), "notebooks/ exists but holds no .ipynb file"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stripped(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell.get("outputs") or cell.get("execution_count") or "execution" in cell["metadata"]
    ]
    assert not dirty, f"cells {dirty} have outputs, execution counts or timings: run `make strip`"
    assert "widgets" not in nb.get("metadata", {}), "saved widget state: run `make strip`"
