"""Headless Chromium for the studio's browser tests and bench/bench_studio.py.

The browser is Debian's ``chromium`` package (``apt-get install chromium``) driven by
Playwright's Python client (``pip install playwright``); Playwright's own browser
download is never used. ``HOLDPOSE_CHROMIUM`` points at another executable.
"""

from __future__ import annotations

import contextlib
import os
import shutil

NO_BROWSER = ("no headless browser for the studio tests: needs `pip install playwright` and Debian's chromium "
              "(`apt-get install chromium`) or HOLDPOSE_CHROMIUM")


def chromium_executable() -> str | None:
    """The Chromium to drive, or None when Playwright or the browser is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    path = os.environ.get("HOLDPOSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path if path and os.access(path, os.X_OK) else None


@contextlib.contextmanager
def headless_chromium():
    """A Playwright ``Browser`` on the system's Chromium (caller checks :func:`chromium_executable` first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width=1280, height=860):
    """A page in a fresh context, collecting the page's uncaught errors in ``page.errors``."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.errors = errors
    return page


def wait_for(page, expression: str, timeout: float = 15.0):
    """Poll ``expression`` (JavaScript) until it is truthy; its value. Polled from Python
    because Playwright's ``wait_for_function`` evaluates strings, which the studio's
    Content-Security-Policy (no eval) refuses."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression} stayed false for {timeout} s; page errors: {page.errors}")
        page.wait_for_timeout(10)


def wait_loaded(page, timeout: float = 15.0) -> float:
    """Wait for the studio's first drawn frame; its time in ms since navigation started."""
    return wait_for(page, "window.studio && window.studio.stats.firstPaint", timeout)
