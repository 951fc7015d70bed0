"""Makes the console's screenshots in docs/images/: starts a server on a temporary LevelDB, writes
a sample schema and data through the API, drives the page in Debian's headless Chromium and
saves what it shows.

    .venv/bin/python -m tests.console.screenshots      # writes docs/images/console-*.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from api.config import Config
from tests.api.conftest import _Thread
from tests.api.support import tuple_json
from tests.console.conftest import CHROMIUM, OFFLINE_FLAGS, VIEWPORT

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SCHEMA = """entity user {}

entity organization {
    relation admin @user
    relation member @user
}

entity team {
    relation member @user @team#member
}

entity folder {
    relation org @organization
    relation parent @folder
    relation viewer @user @team#member
    permission admin = org.admin
    permission view = viewer or parent.view or admin
}

entity doc {
    relation folder @folder
    relation owner @user
    relation viewer @user @team#member
    relation banned @user
    attribute public boolean
    permission edit = owner or folder.admin
    permission view = (viewer or edit or folder.view or public) not banned
}
"""
TUPLES = [
    "team:eng#member@user:ann",
    "team:platform#member@team:eng#member",
    "folder:specs#viewer@team:platform#member",
    "folder:specs#org@organization:acme",
    "doc:roadmap#folder@folder:specs",
    "doc:roadmap#owner@user:bob",
    "organization:acme#admin@user:cy",
]


def schema_shot(page: Page, url: str) -> None:
    page.goto(f"{url}/console")
    page.wait_for_selector("body[data-connected='t1']")
    # Two typos, so the picture shows the markers and the diagnostics list.
    text = page.input_value("#schema-text").replace("parent.view", "parent.viw")
    page.fill("#schema-text", text.replace("@team#member\n}", "@team#membr\n}"))
    page.wait_for_selector(".marker")
    page.eval_on_selector("#schema-text", "t => { t.setSelectionRange(0, 0); t.scrollTop = 0; }")
    page.wait_for_timeout(200)
    page.screenshot(path=str(IMAGES / "console-schema.png"))


def check_shot(page: Page, url: str) -> None:
    page.goto(f"{url}/console")
    page.wait_for_selector("body[data-connected='t1']")
    page.click("#tab-check")
    page.fill("#check-form [name=entity]", "doc:roadmap")
    page.fill("#check-form [name=permission]", "view")
    page.fill("#check-form [name=subject]", "user:ann")
    page.click("#check-form button")
    page.wait_for_selector(".tree li.path")
    page.screenshot(path=str(IMAGES / "console-check.png"))


def main() -> int:
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium package", file=sys.stderr)
        return 1
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        thread = _Thread(Config(data_dir=data_dir, port=0, access_log=False))
        server = thread.start()
        try:
            with httpx.Client(base_url=server.url) as api:
                api.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}).raise_for_status()
                api.post(
                    "/v1/tenants/t1/data/write", json={"tuples": [tuple_json(t) for t in TUPLES]}
                ).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=OFFLINE_FLAGS
                )
                page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
                schema_shot(page, server.url)
                check_shot(page, server.url)
                browser.close()
        finally:
            thread.stop()
    print(f"wrote {IMAGES / 'console-schema.png'} and {IMAGES / 'console-check.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
