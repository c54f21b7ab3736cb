"""Fixtures shared by every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def isolate_environment():
    """Restore os.environ after each test, whatever the test (or code under test) changed."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright: pages and reports are tested as a person sees them.

    Playwright never downloads a browser here; a missing chromium is a failure (`make browser`).
    """
    import shutil

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium not found: run `make browser` (Debian's chromium package)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page whose console errors and uncaught exceptions are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
