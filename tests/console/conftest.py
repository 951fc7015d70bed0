"""Browser tests of the console: a real server (in process, on 127.0.0.1, LevelDB in a temp
dir) and Debian's headless Chromium driven by Playwright, launched once per session.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` with the flags an
offline machine needs (without them Chromium keeps opening background connections, which are
refused). Without that binary the browser tests skip, saying why, unless ``CI`` is set: then
they fail, since CI installs it (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.config import Config
from tests.api.conftest import Server, _Thread

CHROMIUM = Path("/usr/bin/chromium")
OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
#: The viewport the console is designed for; tests of the narrow layout set their own.
VIEWPORT = {"width": 1280, "height": 800}


def start(tmp: Path, **fields: object) -> Iterator[Server]:
    thread = _Thread(Config(data_dir=str(tmp / "data"), port=0, access_log=False, **fields))  # type: ignore[arg-type]
    yield thread.start()
    thread.stop()


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session's console tests; each test works in a tenant of its own."""
    yield from start(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian's chromium package; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile of its own.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def api(console_server: Server) -> Iterator[httpx.Client]:
    with console_server.client() as client:
        yield client


@pytest.fixture
def tenant(api: httpx.Client) -> str:
    name = "c" + uuid.uuid4().hex[:10]
    api.post("/v1/tenants/create", json={"id": name, "name": name}).raise_for_status()
    return name


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    """A fresh tab (its own storage); its last state is saved as ``console.png`` in the test's
    temp dir, whether the test passed or not. Errors in the page's scripts fail the test."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(5000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    context.close()
    assert not errors, errors


def open_console(page: Page, server: Server, tenant: str) -> None:
    """Loads the console connected to ``tenant``, as a tab that chose it earlier would be (the
    tab's sessionStorage holds it)."""
    page.add_init_script(f"sessionStorage.setItem('stonetown.tenant', {json.dumps(tenant)})")
    page.goto(f"{server.url}/console")
    page.wait_for_selector(f"body[data-connected='{tenant}']")
