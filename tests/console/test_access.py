"""The console's page and its one endpoint of its own, over HTTP; and in the browser, a server
with keys (the 401 shown plainly, the key kept for the tab only) and a narrow window."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from api.routes.console import ASSETS
from tests.api.conftest import Server
from tests.console.conftest import open_console, start

KEY = "console-test-key"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("keyed"), preshared_keys=(KEY,))


def test_the_page_and_its_files_need_no_key_and_load_nothing_from_elsewhere(
    keyed_server: Server,
) -> None:
    with keyed_server.client() as client:
        page = client.get("/console")
        assert page.status_code == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        for name, content_type in ASSETS.items():
            served = client.get(f"/console/{name}")
            assert served.status_code == 200, name
            assert served.headers["Content-Type"].startswith(content_type)
            # Only this server's own files: no CDN, nothing fetched at run time from elsewhere
            # (the one URL is SVG's namespace name, which is never fetched).
            text = served.text.replace("http://www.w3.org/2000/svg", "")
            assert "http://" not in text and "https://" not in text, name
        assert "https://" not in page.text and "http://" not in page.text
        # Every file the page and its modules name is served.
        named = {
            line.split('"/console/')[1].split('"')[0]
            for line in page.text.splitlines()
            if '"/console/' in line
        }
        assert named <= set(ASSETS)
        for path in (
            "/console/..%2Froutes%2Fconsole.py",
            "/console/index.html",
            "/console/nope.js",
        ):
            missing = client.get(path)
            assert missing.status_code == 404, path
            assert missing.json()["code"] == 5
        # The API itself still wants the key.
        assert (
            client.post("/v1/schemas/validate", json={"schema": "entity user {}"}).status_code
            == 401
        )


def test_every_file_of_the_console_is_served_and_packaged() -> None:
    folder = Path(__file__).resolve().parents[2] / "api" / "console"
    assert {p.name for p in folder.iterdir()} == {"index.html", *ASSETS}
    for name in ASSETS:
        if name.endswith(".js"):
            imported = re.findall(r'from "\./([^"]+)"', (folder / name).read_text())
            assert set(imported) <= set(ASSETS), name
    pyproject = tomllib.loads((folder.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["api"]
    for name in ["index.html", *ASSETS]:
        assert any(fnmatch(f"console/{name}", pattern) for pattern in patterns), name


def test_validate_answers_every_diagnostic_at_its_line_and_column(keyed_server: Server) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with keyed_server.client(headers=headers) as client:
        text = "\n".join(
            [
                "entity user {}",
                "entity doc {",
                "  relation viewer @usr",
                "  permission view = viewr or owner",
                "}",
            ]
        )
        answer = client.post("/v1/schemas/validate", json={"schema": text})
        assert answer.status_code == 200
        assert answer.json() == {
            "valid": False,
            "diagnostics": [
                {
                    "line": 3,
                    "column": 20,
                    "message": "unknown entity `usr` in subject type `@usr` (did you mean `user`?)",
                },
                {
                    "line": 4,
                    "column": 21,
                    "message": "`viewr` is not a relation, permission or attribute of entity "
                    "`doc` (did you mean `viewer`?)",
                },
                {
                    "line": 4,
                    "column": 30,
                    "message": "`owner` is not a relation, permission or attribute of entity `doc`",
                },
            ],
        }
        valid = client.post("/v1/schemas/validate", json={"schema": "entity user {}"})
        assert valid.json() == {"valid": True, "diagnostics": []}
        # Nothing was saved: the default tenant still has no schema.
        assert client.post("/v1/tenants/t1/schemas/list", json={}).json()["schemas"] == []
        missing = client.post("/v1/schemas/validate", json={})
        assert missing.status_code == 400
        assert "schema" in missing.json()["message"]


def test_without_a_key_the_page_shows_the_401_and_the_key_is_kept_for_the_tab_only(
    browser: Browser, keyed_server: Server, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(5000)
        page.goto(f"{keyed_server.url}/console")
        banner = page.locator("#banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("401 Unauthorized")
        expect(banner).to_contain_text("missing bearer token")
        page.get_by_label("Key or token").fill("wrong")
        page.get_by_role("button", name="Connect").click()
        expect(banner).to_contain_text("invalid bearer token")
        page.get_by_label("Key or token").fill(KEY)
        page.get_by_role("button", name="Connect").click()
        expect(page.locator("body")).to_have_attribute("data-connected", "t1")
        expect(banner).to_be_hidden()
        page.screenshot(path=str(tmp_path / "console.png"))
        assert page.evaluate("sessionStorage.getItem('stonetown.key')") == KEY
        assert page.evaluate("localStorage.length") == 0
        # Reloaded, the tab still has its key; another tab does not.
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-connected", "t1")
        other = context.new_page()
        other.goto(f"{keyed_server.url}/console")
        expect(other.locator("#banner")).to_contain_text("401 Unauthorized")
    finally:
        context.close()


def test_every_section_fits_a_narrow_window(
    page: Page, console_server: Server, tenant: str, api: httpx.Client
) -> None:
    api.post(
        f"/v1/tenants/{tenant}/schemas/write",
        json={
            "schema": "entity user {} entity doc { relation owner @user permission view = owner }"
        },
    ).raise_for_status()
    page.set_viewport_size({"width": 390, "height": 800})
    open_console(page, console_server, tenant)
    for tab in ("Schema", "Data", "Check", "Relations", "Watch"):
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{tab}: {overflow}px wider than the window"
    # Every control is named: a label, or an aria-label.
    unnamed = page.evaluate(
        """Array.from(document.querySelectorAll("input, select, textarea, button"))
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                && !e.textContent.trim())
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    # The tabs work from the keyboard too: arrows move between them.
    page.get_by_role("tab", name="Watch").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Schema")).to_be_focused()
    expect(page.locator("#panel-schema")).to_be_visible()
