"""Drive a real JupyterLab in headless Chromium: start the server, open a notebook, run it,
move a slider and read what changed.

Kept free of pytest so the pieces can be tried by hand in a Python shell. Playwright is only
imported for type hints: this module must import on a laptop without it, where the tests skip.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

T = TypeVar("T")

# Flags measured to work for Debian's chromium in a container with no display or network
# (docs: /work/shared/JUPYTER-NOTES.md): no sandbox as root, no GPU, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab keeps hidden panels in the DOM: every selector is scoped to the visible notebook.
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
SLIDER = ".widget-slider"
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# An error output is rendered as stderr; so are warnings and plain progress bars, which are fine.
_ERROR_TEXT = re.compile(r"Traceback|^\s*\w+(Error|Exception)\b", re.MULTILINE)
_DONE_PROMPT = re.compile(r"^\[\d+\]:$")


class NotebookError(AssertionError):
    """The notebook in the browser shows an error, or did not finish in time."""


def missing_ui_requirements() -> str | None:
    """Why the UI tests cannot run here, or None when chromium and playwright are both present."""
    missing = []
    if shutil.which("chromium") is None:
        missing.append("chromium is not on PATH (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package is missing (pip install playwright)")
    return "; ".join(missing) or None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call `check` until it returns something other than None; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class LabServer:
    """A JupyterLab server started by `start_lab`; `stop()` ends it and every kernel it ran."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """One REST call to the server; the parsed JSON answer (None for an empty body)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def sessions(self) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self.api("GET", "/api/sessions")
        return sessions

    def session_for(self, notebook: str) -> dict[str, Any] | None:
        """The session of `notebook` (a path relative to the server root), if one exists."""
        for session in self.sessions():
            if session.get("path") == notebook:
                return session
        return None

    def wait_kernel_idle(self, notebook: str, timeout: float) -> dict[str, Any]:
        """The session of `notebook` once its kernel exists and reports idle.

        The toolbar's indicator says idle before the kernel exists, so ask the server instead.
        A dead kernel raises at once rather than after the timeout.
        """

        def idle() -> dict[str, Any] | None:
            session = self.session_for(notebook)
            state = (session or {}).get("kernel", {}).get("execution_state")
            if state == "dead":
                raise NotebookError(f"{notebook}: the kernel died\n{self.log_tail()}")
            return session if state == "idle" else None

        return poll(idle, timeout, f"an idle kernel for {notebook}")

    def shutdown_sessions(self, notebook: str | None = None) -> None:
        """Shut down the kernel of `notebook`; with None, every session and every kernel."""
        try:
            paths = [f"/api/sessions/{session['id']}" for session in self.sessions()
                     if notebook is None or session.get("path") == notebook]
            if notebook is None:  # a kernel whose session is gone still holds a process
                paths += [f"/api/kernels/{kernel['id']}"
                          for kernel in self.api("GET", "/api/kernels")]
        except (OSError, urllib.error.URLError):
            return  # the server is already gone, and its kernels with it
        for path in paths:
            try:
                self.api("DELETE", path, timeout=30)
            except (OSError, urllib.error.URLError):
                pass  # already gone with its session; stop() kills the process group anyway

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "JupyterLab log (tail):\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """Kernels first (a clean DELETE each), then TERM the server, then KILL what is left."""
        if self.process.poll() is None:
            self.shutdown_sessions()
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace)
        # The server ran in its own process group: a kernel it failed to reap is still ours.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _write_settings(settings_dir: Path) -> None:
    """Lab settings that keep the page quiet and every cell in the DOM."""
    seeds = {
        # No news toast over the notebook (it would also try to reach the internet).
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        # 'none': all cells attached to the DOM, so counting prompts and outputs sees them all.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, values in seeds.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def start_lab(root: Path, home: Path, timeout: float = 90.0,
              pythonpath: Path | None = None) -> LabServer:
    """Start JupyterLab serving `root` on a free port; all its state lives under `home`.

    `pythonpath` goes first on the kernels' PYTHONPATH: notebooks run from a temporary copy,
    and must still import this checkout's library even where it is not pip-installed.
    """
    token = secrets.token_hex(16)
    port = free_port()
    for name in ("config", "data", "runtime", "settings", "workspaces"):
        (home / name).mkdir(parents=True, exist_ok=True)
    _write_settings(home / "settings")
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        # Kernels inherit this: pygame draws off-screen with no warning in the outputs.
        SDL_VIDEODRIVER="dummy",
        # The machine is shared by several people: one thread per kernel.
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    # A kernel with MPLBACKEND=Agg would lose the inline backend and show no figures.
    env.pop("MPLBACKEND", None)
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root otherwise; CI runs as root
    log_path = home / "jupyterlab.log"
    with open(log_path, "wb") as log:
        # Its own process group, so that stop() can reach kernels the server leaves behind.
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, process, log_path)

    def ready() -> bool | None:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}\n"
                               f"{server.log_tail()}")
        try:
            server.api("GET", "/api/status", timeout=2)
            return True
        except (OSError, urllib.error.URLError):
            return None

    try:
        poll(ready, timeout, "JupyterLab to answer /api/status", interval=0.5)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------------------------
# In the browser


def open_notebook(page: Page, server: LabServer, notebook: str, timeout: float) -> dict[str, Any]:
    """Open `notebook` in a fresh workspace; its session once the kernel is idle."""
    page.goto(f"{server.url}/lab/tree/{notebook}?reset&token={server.token}",
              timeout=timeout * 1000)
    page.locator(f"{NOTEBOOK} .jp-Cell").first.wait_for(state="visible", timeout=timeout * 1000)
    return server.wait_kernel_idle(notebook, timeout)


def error_outputs(page: Page) -> list[str]:
    """Texts of error outputs in the visible notebook: tracebacks and widgets that failed."""
    stderr = page.locator(f"{NOTEBOOK} {STDERR_OUTPUT}").all_inner_texts()
    errors = [text for text in stderr if _ERROR_TEXT.search(text)]
    # ipywidgets writes this in place of a widget whose model or view failed.
    texts = page.locator(f"{NOTEBOOK} .jp-OutputArea-output").all_inner_texts()
    errors += [text for text in texts if "Error displaying widget" in text]
    return errors


def code_cells_to_run(path: Path) -> int:
    """How many code cells of the notebook file get an execution count on Run All.

    JupyterLab skips blank cells, which keep their `[ ]:` prompt.
    """
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip())


def run_all_cells(page: Page, server: LabServer, notebook: str, expected: int,
                  timeout: float) -> float:
    """Run All from the menu, as a learner would; seconds until every cell has run.

    Fails early, with the error text, when a cell shows an error (Run All stops there and the
    rest would never run) or the kernel dies.
    """
    start = time.monotonic()
    page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click(timeout=10_000)
    prompts = page.locator(f"{NOTEBOOK} .jp-CodeCell .jp-InputPrompt")

    def finished() -> bool | None:
        errors = error_outputs(page)
        if errors:
            raise NotebookError(f"{notebook}: a cell shows an error:\n" + "\n---\n".join(errors))
        texts = [t.strip() for t in prompts.all_text_contents()]
        done = sum(1 for t in texts if _DONE_PROMPT.match(t))
        if done >= expected and "[*]:" not in texts:
            return True
        session = server.session_for(notebook)
        if session is None or session["kernel"]["execution_state"] == "dead":
            raise NotebookError(f"{notebook}: the kernel died\n{server.log_tail()}")
        return None

    poll(finished, timeout, f"every cell of {notebook} to run", interval=0.5)
    return time.monotonic() - start


def find_slider(page: Page, label: str | None = None) -> Locator:
    """The first slider of the visible notebook whose description matches `label` (a regex,
    case-insensitive), or the first slider at all when `label` is None."""
    sliders = page.locator(f"{NOTEBOOK} {SLIDER}")
    if label is not None:
        sliders = sliders.filter(
            has=page.locator(".widget-label", has_text=re.compile(label, re.IGNORECASE)))
    if sliders.count() == 0:
        found = page.locator(f"{NOTEBOOK} {SLIDER} .widget-label").all_inner_texts()
        raise NotebookError(f"no slider labelled /{label}/; sliders found: {found}")
    return sliders.first


def cell_of(element: Locator) -> Locator:
    """The notebook cell that holds `element` (a widget lives in its cell's output)."""
    return element.locator(
        "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' jp-Cell ')][1]")


# What a slider can change: figures (an <img> whose src is a new PNG on redraw) and readouts of
# other widgets or printed text. The slider's own readout is left out: it changes by itself.
_DEPENDENT_STATE_JS = """
(scope, slider) => {
  const parts = [];
  for (const img of scope.querySelectorAll('.jp-OutputArea-output img')) {
    if (!slider.contains(img)) parts.push('img:' + img.src);
  }
  const texts = '.widget-readout, .widget-label, .widget-html-content, .widget-output pre, '
              + '.widget-output .jp-RenderedText, .widget-textarea textarea';
  for (const el of scope.querySelectorAll(texts)) {
    if (!slider.contains(el)) parts.push('text:' + (el.value ?? el.textContent));
  }
  return parts;
}
"""


def dependent_state(scope: Locator, slider: Locator) -> list[str]:
    """Figures and readouts inside `scope` that are not part of `slider` itself."""
    return scope.evaluate(_DEPENDENT_STATE_JS, slider.element_handle())


def slider_value(slider: Locator) -> str:
    return slider.locator(".widget-readout").inner_text().strip()


@dataclass
class SliderMove:
    """What one key press on a slider did."""

    value_before: str
    value_after: str
    changed: list[str]  # short descriptions of the dependent parts that changed
    seconds: float


def _describe(part: str) -> str:
    kind, _, value = part.partition(":")
    if kind == "img":
        return f"img src ({len(value)} chars, ...{value[-24:]})"
    return f"{kind} {value[:60]!r}"


_OPPOSITE = {"ArrowRight": "ArrowLeft", "ArrowLeft": "ArrowRight", "End": "Home", "Home": "End",
             "ArrowUp": "ArrowDown", "ArrowDown": "ArrowUp"}


def _figures(state: list[str]) -> list[str]:
    return [part for part in state if part.startswith("img:")]


def move_slider(page: Page, slider: Locator, scope: Locator, key: str,
                timeout: float) -> SliderMove:
    """Press `key` on the slider's handle and wait for what depends on it to change.

    A slider already at the end `key` moves towards gets the opposite key instead.

    Where `scope` shows a figure, the figure itself must be redrawn (a new PNG in its img
    src): a readout is often updated before the figure, or alone when the redraw failed.
    Without a figure, any other readout or printed text changing is enough.
    """
    before = dependent_state(scope, slider)
    if not before:
        raise NotebookError("nothing next to the slider could change: no figure, no readout")
    figures_before = _figures(before)
    value_before = slider_value(slider)
    handle = slider.locator(".noUi-handle")
    handle.focus(timeout=10_000)
    start = time.monotonic()
    handle.press(key, timeout=10_000)
    try:
        poll(lambda: slider_value(slider) != value_before or None, 3.0, "the slider to move")
    except TimeoutError:
        # Already at that end (ArrowRight on a slider at its maximum): go the other way.
        if key in _OPPOSITE:
            key = _OPPOSITE[key]
            start = time.monotonic()
            handle.press(key, timeout=10_000)

    def changed() -> list[str] | None:
        now = dependent_state(scope, slider)
        if figures_before:
            # Mid-redraw the old figure may be gone and the new one not there yet.
            figures = _figures(now)
            return now if figures and figures != figures_before else None
        return now if now != before else None

    try:
        poll(changed, timeout, "the figure or readout next to the slider to change")
    except TimeoutError as error:
        now = dependent_state(scope, slider)
        raise NotebookError(
            f"{error}; slider {value_before!r} -> {slider_value(slider)!r} after {key}; "
            f"changed meanwhile: {[_describe(p) for p in now if p not in before]}") from None
    seconds = time.monotonic() - start
    # Let a streak of redraws finish before anyone looks at the screen.
    time.sleep(0.5)
    after = dependent_state(scope, slider)
    diff = [_describe(p) for p in after if p not in before]
    return SliderMove(value_before, slider_value(slider), diff, seconds)
