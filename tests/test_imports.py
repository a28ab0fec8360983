"""The package boundary: only the notebook layer (wmkit/notebook/) imports matplotlib or
ipywidgets; `import wmkit` and every other module stay light, and `wm.notebook` loads on use."""

import re
import subprocess
import sys
from pathlib import Path

WMKIT = Path(__file__).resolve().parents[1] / "wmkit"
NOTEBOOK_LAYER = WMKIT / "notebook"
HEAVY = re.compile(r"^\s*(import|from)\s+(matplotlib|ipywidgets)\b", re.MULTILINE)
# A module-level import of the notebook layer would load matplotlib with the module.
NOTEBOOK_AT_TOP = re.compile(r"^(import|from)\s+(wmkit\.notebook|\.+notebook)\b", re.MULTILINE)


def _outside_notebook_layer() -> list[Path]:
    return [p for p in sorted(WMKIT.rglob("*.py")) if NOTEBOOK_LAYER not in p.parents]


def test_only_the_notebook_layer_imports_matplotlib_or_ipywidgets() -> None:
    offenders = [f"{p.relative_to(WMKIT.parent)}: {m.group(0).strip()}"
                 for p in _outside_notebook_layer()
                 for m in HEAVY.finditer(p.read_text(encoding="utf-8"))]
    assert not offenders, "figures and widgets belong in wmkit/notebook/:\n" + "\n".join(
        offenders)
    offenders = [str(p.relative_to(WMKIT.parent)) for p in _outside_notebook_layer()
                 if NOTEBOOK_AT_TOP.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"module-level imports of the notebook layer: {offenders}"


def test_the_scan_finds_the_notebook_layer_imports() -> None:
    """The pattern is not vacuous: the notebook layer itself matches it."""
    explorer = (NOTEBOOK_LAYER / "explorer.py").read_text(encoding="utf-8")
    assert {m.group(2) for m in HEAVY.finditer(explorer)} == {"matplotlib", "ipywidgets"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(WMKIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_every_other_module_stays_light() -> None:
    """`import wmkit`, `wm.analysis` and every module outside the notebook layer, imported for
    real, leave matplotlib and ipywidgets unloaded; `wm.notebook` then loads both."""
    # Named from the files: pkgutil.walk_packages would import wmkit.notebook to walk it.
    names = [_module_name(p) for p in _outside_notebook_layer() if p.stem != "__main__"]
    assert len(names) > 20 and "wmkit.analysis.open_loop" in names, names
    code = (
        "import importlib, sys\n"
        "import wmkit as wm\n"
        "heavy = lambda: sorted(m for m in ('matplotlib', 'ipywidgets') if m in sys.modules)\n"
        "assert not heavy(), ('import wmkit', heavy())\n"
        "assert wm.analysis.__name__ == 'wmkit.analysis' and not heavy(), heavy()\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert not heavy(), (name, heavy())\n"
        "assert wm.notebook.Explorer and heavy() == ['ipywidgets', 'matplotlib'], heavy()\n"
        "assert {'analysis', 'notebook'} <= set(dir(wm))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
