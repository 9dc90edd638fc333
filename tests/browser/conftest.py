"""The portal in a real browser: Debian's Chromium, driven by Playwright, against the
running app (`catalog_app`) and Azurite.

Every page a test opens is watched: a console error, an uncaught exception or a
request to anywhere but 127.0.0.1 fails the test. Playwright never downloads a
browser here: it launches /usr/bin/chromium (`make test` installs it with apt).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from devtools.apphost import AppHost
from shared.adapters.storage import StorageAccount
from shared.services.gallery import load_gallery
from tests.e2e.test_catalog_api import catalog_of
from tests.vhd_corpus import Corpus, CorpusToolMissing

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing but loopback resolves: a stray request fails at once instead of waiting.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
KEY_STORAGE = "vmimage.functionKey"
# Opt-in: `PORTAL_SCREENSHOTS=docs make test ARGS=tests/browser` refreshes the README's pictures.
SCREENSHOTS = os.environ.get("PORTAL_SCREENSHOTS")


@pytest.fixture(scope="package")  # Playwright's sync API holds an event loop in this thread
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


class Watch:
    """What a page did that a test must not let pass."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, url)
        self.expected: set[int] = set()

    def expect_http_error(self, status: int) -> None:
        """The test provokes an API error on purpose: Chromium logs each answer with an
        error status as a console error, which is then no fault of the page."""
        self.expected.add(status)

    def unexpected_errors(self) -> list[str]:
        allowed = tuple(f"the server responded with a status of {s} " for s in self.expected)
        return [e for e in self.errors if not any(a in e for a in allowed)]

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        context.on("weberror", lambda e: self.errors.append(f"uncaught: {e.error}"))

    def _request(self, request) -> None:  # type: ignore[no-untyped-def]
        self.requests.append((request.method, request.url))
        u = urlsplit(request.url)
        if u.scheme not in ("data", "blob", "about") and u.hostname != "127.0.0.1":
            self.outside.append(request.url)


@pytest.fixture
def watch() -> Watch:
    return Watch()


def new_page(browser: Browser, watch: Watch, base_url: str, **options: object) -> BrowserContext:
    context = browser.new_context(base_url=base_url, **options)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    watch.attach(context)
    return context


@pytest.fixture
def page(browser: Browser, catalog_app: AppHost, watch: Watch) -> Iterator[Page]:
    """A fresh browser tab (its own sessionStorage) on the portal; checked when it closes."""
    context = new_page(
        browser, watch, catalog_app.base_url, viewport={"width": 1280, "height": 900}
    )
    try:
        yield context.new_page()
    finally:
        context.close()
    assert watch.outside == [], "requests left 127.0.0.1"
    assert watch.unexpected_errors() == [], "the page logged errors"


@pytest.fixture(scope="session")
def gallery(catalog_app: AppHost, storage: StorageAccount) -> None:
    load_gallery(catalog_of(storage))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("browser-corpus"))


def disk(corpus: Corpus, name: str) -> Path:
    try:
        return corpus[name]
    except CorpusToolMissing as e:
        pytest.fail(f"the test command should have installed the disk tools: {e}")


def enter_key(page: Page, key: str) -> None:
    """Type the function key into the dialog the portal opens for it."""
    dialog = page.get_by_role("dialog", name="Function key")
    dialog.get_by_label("Key").fill(key)
    dialog.get_by_role("button", name="Save").click()


def screenshot(page: Page, name: str, focus: str | None = None) -> None:
    """With PORTAL_SCREENSHOTS set, a picture of what the page shows (scrolled to `focus`)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        size = page.viewport_size
        if size and size["width"] > 1024:
            page.set_viewport_size({"width": 1024, "height": 680})  # small pictures
        if focus:
            page.locator(focus).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(Path(SCREENSHOTS) / f"portal-{name}.png"))
        if size:
            page.set_viewport_size(size)
