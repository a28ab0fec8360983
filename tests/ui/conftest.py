"""Fixtures of the browser tests: one JupyterLab server and one Chromium for the whole session,
a fresh browser page per test, and a hard time limit on every test.

The tests skip when chromium or playwright is missing (a learner's laptop), unless
WMKIT_UI_REQUIRED=1 (CI), where that is a failure: CI must not pass without running them.

Environment knobs:
    WMKIT_UI_REQUIRED=1       a missing chromium or playwright fails instead of skipping
    WMKIT_UI_ALL=1            also test every other notebook that shows a slider (slower)
    WMKIT_UI_TEST_TIMEOUT=480 seconds before a single test is failed as hung
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import types
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import labdriver
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# Per-test ceiling: a real notebook runs in under ~2 min on 2 idle cores; leave room for a
# busy machine, but never hang a CI run.
TEST_TIMEOUT_S = int(os.environ.get("WMKIT_UI_TEST_TIMEOUT", "480"))


class UITestTimeout(Exception):
    """Raised in the test by SIGALRM when it runs past TEST_TIMEOUT_S."""


@pytest.fixture(scope="session")
def ui_available() -> None:
    """Skip (or, under WMKIT_UI_REQUIRED=1, fail) when the browser stack is missing."""
    reason = labdriver.missing_ui_requirements()
    if reason is None:
        return
    if os.environ.get("WMKIT_UI_REQUIRED") == "1":
        pytest.fail(f"WMKIT_UI_REQUIRED=1 but the UI tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests need chromium and playwright: {reason}")


@pytest.fixture(autouse=True)
def time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that runs past TEST_TIMEOUT_S instead of hanging (every wait inside has its
    own timeout too; this is the backstop). SIGALRM exists only on Unix, in the main thread."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum: int, frame: types.FrameType | None) -> None:
        raise UITestTimeout(f"{request.node.nodeid} ran past {TEST_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's root: copies of the notebooks, so the repository's files are never touched
    (running saves nothing back, but JupyterLab autosaves and kernels may write files)."""
    root = tmp_path_factory.mktemp("lab-root")
    notebooks = REPO / "notebooks"
    if notebooks.is_dir():
        shutil.copytree(notebooks, root / "notebooks",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    (root / "ui_fixtures").mkdir()
    return root


@pytest.fixture(scope="session")
def lab(ui_available: None, lab_root: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[labdriver.LabServer]:
    """One JupyterLab server for the whole session: starting one costs several seconds."""
    server = labdriver.start_lab(lab_root, tmp_path_factory.mktemp("lab-home"), timeout=90,
                                 pythonpath=REPO)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(ui_available: None) -> Iterator[Browser]:
    """One headless Debian chromium for the whole session (Playwright's own builds cannot be
    downloaded here, and need not be)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True,
            args=labdriver.CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught JavaScript errors of the page, for failure messages."""
    return []


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """tests/ui/screenshots/ (git-ignored), emptied first so that it shows only this run."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can tell that a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, lab: labdriver.LabServer,
         page_errors: list[str], screenshots: Path) -> Iterator[Page]:
    """A fresh browser context per test (no shared cookies or storage). A failed test leaves a
    screenshot of the page as it was; afterwards every kernel it started is shut down, so the
    next notebook gets the cores."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            name = re.sub(r"\W+", "_", request.node.name).strip("_")
            try:
                page.screenshot(path=screenshots / f"FAILED-{name}.png", timeout=10_000)
            except Exception:  # a page that broke must not hide the test's own failure
                pass
        context.close()
        lab.shutdown_sessions()

