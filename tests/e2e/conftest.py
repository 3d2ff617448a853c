"""A real Chromium (Debian's package) driven by Playwright against the live test server."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import require

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium_page(live_server, monkeypatch, **context_options) -> Iterator:
    path = chromium_path()
    require(path is not None, "Chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
    # body are still synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(base_url=live_server.url, **context_options)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def browser_page(live_server, monkeypatch):
    """A fresh browser page; the test's own database work must happen before asking for it."""
    with chromium_page(live_server, monkeypatch) as page:
        yield page


@pytest.fixture
def browser_page_without_javascript(live_server, monkeypatch):
    """The same, in a browser with JavaScript turned off."""
    with chromium_page(live_server, monkeypatch, java_script_enabled=False) as page:
        yield page
