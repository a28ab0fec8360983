"""What `import wmkit` costs: torch and gymnasium, not the figure and widget stacks."""

import subprocess
import sys


def test_import_is_light_and_figure_modules_load_on_use() -> None:
    """`import wmkit` must not pull in matplotlib or ipywidgets; `wm.viz` etc. still work."""
    code = (
        "import sys, wmkit as wm\n"
        "heavy = sorted(m for m in ('matplotlib', 'ipywidgets') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert wm.viz.__name__ == 'wmkit.viz' and 'ipywidgets' not in sys.modules\n"
        "from wmkit import widgets\n"
        "assert 'ipywidgets' in sys.modules and 'uncertainty' in dir(wm)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
