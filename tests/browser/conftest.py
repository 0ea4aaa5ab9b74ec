"""A real headless Chromium (Debian's `chromium` package) driven by Playwright, for the console tests.

Playwright cannot download its own browsers here, so the browser is the system one, found on PATH
(`.ci/run` installs it when missing). The tests are skipped only while the console itself does not
exist; once serving/api/console.py is there, a missing or broken Chromium fails loudly.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"  # by default; `--screenshots DIR` (`make screenshots`: docs/img)
MAX_SHOT_HEIGHT = 1800

# Without the background-networking flags Chromium dials out at start-up, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(config, items) -> None:
    if (ROOT / "serving" / "api" / "console.py").exists():
        return
    skip = pytest.mark.skip(reason="no investigator console yet (serving/api/console.py): browser tests skipped")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the browser tests need Debian's Chromium on PATH and found no `chromium`: install it with "
                    "`apt-get install -y chromium` (.ci/run does this when it runs as root)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator:
    """One Chromium per test module, closed when the module's tests are done: Playwright's sync API keeps an
    event loop running in the main thread while it is open, and later tests that call asyncio.run() would fail."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        except Error as e:
            pytest.fail(f"Chromium at {chromium_path} did not start under Playwright: {e}", pytrace=False)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh browser context (no cookies) and one page in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig) -> Path:
    """Where the screenshots go: build/screenshots/ (ignored by git), or the `--screenshots DIR` given (relative
    to where pytest was started), so a plain test run never rewrites the README's images in docs/img."""
    chosen = pytestconfig.getoption("screenshots", default=None)
    path = pytestconfig.invocation_params.dir / chosen if chosen else SCREENSHOTS
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def screenshot(screenshot_dir):
    """Save a full-page screenshot as <screenshot_dir>/console-<name>.png, cut off at MAX_SHOT_HEIGHT pixels: a
    case with dozens of reports is tens of thousands of pixels tall."""

    def save(page, name: str) -> Path:
        path = screenshot_dir / f"console-{name}.png"
        width, height = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        page.screenshot(path=str(path), full_page=True,
                        clip={"x": 0, "y": 0, "width": width, "height": min(height, MAX_SHOT_HEIGHT)})
        return path

    return save
