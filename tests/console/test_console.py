"""The console in a real browser: each test drives the page the way a person would and checks
the outcome through the public API, not only on the page."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.api.conftest import Server
from tests.api.support import tuple_json, tuple_text
from tests.console.conftest import open_console

SCHEMA = """entity user {}

entity company {
    relation employs @user
}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group @group#member
    relation company @company
    relation banned @user
    attribute public boolean
    permission edit = owner
    permission view = (viewer or edit or company.employs) not banned
}
"""


def write_schema(api: httpx.Client, tenant: str, text: str = SCHEMA) -> str:
    answer = api.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": text})
    answer.raise_for_status()
    return str(answer.json()["schema_version"])


def write_tuples(api: httpx.Client, tenant: str, *tuples: str) -> str:
    answer = api.post(
        f"/v1/tenants/{tenant}/data/write", json={"tuples": [tuple_json(t) for t in tuples]}
    )
    answer.raise_for_status()
    return str(answer.json()["snap_token"])


def test_a_schema_error_is_marked_at_its_line_then_fixed_and_saved(
    page: Page, console_server: Server, api: httpx.Client, tenant: str
) -> None:
    first = write_schema(api, tenant)
    open_console(page, console_server, tenant)
    expect(page.locator("#schema-text")).to_have_value(SCHEMA)
    expect(page.locator("#versions")).to_have_value(first)
    broken = SCHEMA.replace("relation employs @user", "relation employs @usr").replace(
        "permission edit = owner", "permission edit = ownr"
    )
    page.fill("#schema-text", broken)
    # Every error at once, each at its line:column: line 4 `usr`, line 17 `ownr`.
    expect(page.locator("#diagnostics li")).to_have_count(2)
    expect(page.locator(".gutter .line.error")).to_have_count(2)
    expect(page.locator(".gutter .line.error").first).to_have_attribute("data-line", "4")
    expect(page.locator(".gutter .line.error").last).to_have_attribute("data-line", "17")
    marker = page.locator(".marker[data-line='4']")
    expect(marker).to_have_attribute("data-column", "23")
    expect(marker).to_have_text("usr")
    expect(page.locator("#diagnostics li").first).to_contain_text("4:23")
    # The marker sits on line 4 of the text as drawn, beside gutter line 4.
    marker_box = marker.bounding_box()
    gutter_box = page.locator(".gutter .line[data-line='4']").bounding_box()
    assert marker_box is not None and gutter_box is not None
    assert abs(marker_box["y"] - gutter_box["y"]) < 4

    fixed = SCHEMA.replace("permission edit = owner", "permission edit = owner or viewer")
    page.fill("#schema-text", fixed)
    expect(page.locator("#schema-status")).to_have_text("valid")
    expect(page.locator(".marker")).to_have_count(0)
    page.click("#save")
    expect(page.locator("#schema-status")).to_contain_text("saved as version")
    listed = api.post(f"/v1/tenants/{tenant}/schemas/list", json={}).json()
    assert [s["version"] for s in listed["schemas"]][1:] == [first]
    head = listed["head"]
    assert head != first
    expect(page.locator("#schema-status")).to_have_text(f"saved as version {head}")
    read = api.post(f"/v1/tenants/{tenant}/schemas/read", json={}).json()
    assert read["x_schema_text"] == fixed
    # The graph is drawn from the saved version: the new reference and the arrow are there.
    expect(page.locator("[data-edge='doc.edit->doc.viewer']")).to_have_count(1)
    expect(page.locator("[data-edge='doc.view->company.employs']")).to_contain_text(
        "company.employs"
    )
    # The version picker shows the past version's text.
    page.select_option("#versions", first)
    expect(page.locator("#schema-text")).to_have_value(SCHEMA)
    expect(page.locator("[data-edge='doc.edit->doc.viewer']")).to_have_count(0)


def read_tuples(api: httpx.Client, tenant: str, snap_token: str = "") -> list[str]:
    answer = api.post(
        f"/v1/tenants/{tenant}/data/relationships/read",
        json={"filter": {"entity": {"type": "doc"}}, "metadata": {"snap_token": snap_token}},
    )
    answer.raise_for_status()
    return sorted(tuple_text(t) for t in answer.json()["tuples"])


def test_tuples_added_in_the_data_browser_are_stored_and_read_page_by_page(
    page: Page, console_server: Server, api: httpx.Client, tenant: str
) -> None:
    write_schema(api, tenant)
    open_console(page, console_server, tenant)
    page.click("#tab-data")
    written = [
        "doc:1#viewer@user:ann",
        "doc:1#owner@user:bob",
        "doc:2#viewer@group:eng#member",
        "doc:2#viewer@group:eng",
    ]
    page.fill("#write-form [name=tuples]", ", ".join(written))
    page.fill("#read-form [name=entity_type]", "doc")
    page.fill("#read-form [name=page_size]", "3")
    page.click("#write-form button")
    expect(page.locator("#write-status")).to_contain_text("wrote 4 tuples")
    assert read_tuples(api, tenant) == sorted(written)
    rows = page.locator("#tuples tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#read-status")).to_contain_text("page 1")
    first_page = rows.evaluate_all("rows => rows.map(r => r.dataset.tuple)")
    # A write between pages does not shift them: the next page is read at the first's snapshot.
    write_tuples(api, tenant, "doc:0#owner@user:cy")
    page.click("#next-page")
    expect(page.locator("#read-status")).to_contain_text("page 2")
    expect(rows).to_have_count(1)
    second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.tuple)")
    assert sorted(first_page + second_page) == sorted(written)
    expect(page.locator("#next-page")).to_be_disabled()

    # At a chosen snap token: the one the page was read at, without doc:0.
    status = page.locator("#read-status").inner_text()
    snap_token = status.split("at snap token ")[1].split(";")[0].strip()
    page.fill("#read-form [name=page_size]", "10")
    page.click("#read-form button[type=submit]")
    expect(rows).to_have_count(5)
    page.fill("#read-form [name=snap_token]", snap_token)
    page.click("#read-form button[type=submit]")
    expect(rows).to_have_count(4)
    expect(page.locator("#read-status")).to_contain_text(f"at snap token {snap_token}")

    # Deleting a tuple deletes that one only, not the userset beside it.
    page.get_by_role("button", name="Delete doc:2#viewer@group:eng", exact=True).click()
    expect(page.locator("#write-status")).to_contain_text("deleted")
    remaining = set(written) - {"doc:2#viewer@group:eng"}
    assert read_tuples(api, tenant) == sorted(remaining | {"doc:0#owner@user:cy"})

    # Attributes: written typed, read back, deleted.
    page.fill("#attr-write-form [name=entity]", "doc:1")
    page.fill("#attr-write-form [name=attribute]", "public")
    page.select_option("#attr-write-form [name=kind]", "BooleanValue")
    page.fill("#attr-write-form [name=value]", "true")
    page.click("#attr-write-form button")
    expect(page.locator("#attributes tbody tr")).to_have_text(["doc:1publictrueDelete"])
    stored = api.post(f"/v1/tenants/{tenant}/data/attributes/read", json={"filter": {}}).json()
    assert [(a["attribute"], a["value"]["data"]) for a in stored["attributes"]] == [
        ("public", True)
    ]
    page.get_by_role("button", name="Delete doc:1 public").click()
    expect(page.locator("#attributes tbody tr")).to_have_count(0)
    stored = api.post(f"/v1/tenants/{tenant}/data/attributes/read", json={"filter": {}}).json()
    assert stored["attributes"] == []


def test_a_check_shows_allowed_with_the_allowing_path_highlighted(
    page: Page, console_server: Server, api: httpx.Client, tenant: str
) -> None:
    write_schema(api, tenant)
    before_ban = write_tuples(
        api,
        tenant,
        "group:eng#member@user:ann",
        "doc:1#viewer@group:eng#member",
        "doc:1#owner@user:bob",
    )
    open_console(page, console_server, tenant)
    page.click("#tab-check")
    page.fill("#check-form [name=entity]", "doc:1")
    page.fill("#check-form [name=permission]", "view")
    page.fill("#check-form [name=subject]", "user:ann")
    page.click("#check-form button")
    expect(page.locator("#check-result .verdict")).to_have_text("ALLOWED")
    # The path: view's exclusion, its union, viewer, and the group membership holding ann.
    path = page.locator(".tree li.path > .where")
    texts = path.all_inner_texts()
    assert texts[0] == "doc:1 view"
    assert "doc:1 viewer" in texts and "group:eng member" in texts
    assert "doc:1 owner" not in texts and "doc:1 banned" in texts  # banned did not apply
    ann = page.locator(".tree li.path", has_text="group:eng member").last
    expect(ann).to_contain_text("user:ann")

    # Denied, and why: banned holds the subject.
    write_tuples(api, tenant, "doc:1#banned@user:ann")
    page.click("#check-form button")
    expect(page.locator("#check-result .verdict")).to_have_text("DENIED")
    expect(page.locator(".tree li.denied-path.yes > .where")).to_have_text(["doc:1 banned"])
    # At the snapshot before the ban, the answer was ALLOWED.
    page.fill("#check-form [name=snap_token]", before_ban)
    page.click("#check-form button")
    expect(page.locator("#check-result")).to_contain_text(f"at snap token {before_ban}")
    expect(page.locator("#check-result .verdict")).to_have_text("ALLOWED")

    # Lookups answer with the server's results.
    page.fill("#lookup-entity-form [name=entity_type]", "doc")
    page.fill("#lookup-entity-form [name=permission]", "edit")
    page.fill("#lookup-entity-form [name=subject]", "user:bob")
    page.click("#lookup-entity-form button")
    expect(page.locator("#lookup-entity-results li")).to_have_text(["doc:1"])
    page.fill("#lookup-subject-form [name=entity]", "doc:1")
    page.fill("#lookup-subject-form [name=permission]", "view")
    page.fill("#lookup-subject-form [name=subject_type]", "user")
    page.click("#lookup-subject-form button")
    expect(page.locator("#lookup-subject-results li")).to_have_text(["user:bob"])


CRM_SCHEMA = """entity user {}
entity contact {
    relation owner @user
    relation works_at @company
    relation advises @company
    permission view = owner
    permission edit = owner
}
entity company {
    relation employs @contact
}
"""


def positions(api: httpx.Client, tenant: str, entity: str, role: str) -> list[tuple[str, int]]:
    """The entity's ``role`` list as the server stores it: (target, position) in order."""
    answer = api.get(f"/v1/tenants/{tenant}/entities/{entity}/relations")
    answer.raise_for_status()
    rows = [r for r in answer.json()["data"] if r["relation_type"] == role]
    rows.sort(key=lambda r: r["position"])
    return [(r["target_entity_id"], r["position"]) for r in rows]


def test_relations_reordered_by_drag_and_drop_are_stored_in_that_order(
    page: Page, console_server: Server, api: httpx.Client, tenant: str
) -> None:
    write_schema(api, tenant, CRM_SCHEMA)
    api.post(
        f"/v1/tenants/{tenant}/relationship-types",
        json={
            "kind": "co_to_co",
            "role": "works_at",
            "parentCustomObjectType": "contact",
            "childCustomObjectType": "company",
            "cardinality": "MANY_TO_ONE",
            "bidirectional": True,
            "inverseRole": "employs",
        },
    ).raise_for_status()
    api.post(
        f"/v1/tenants/{tenant}/relationship-types",
        json={
            "kind": "co_to_co",
            "role": "advises",
            "parentCustomObjectType": "contact",
            "childCustomObjectType": "company",
        },
    ).raise_for_status()
    api.post(
        f"/v1/tenants/{tenant}/entities/contact:dee/relations",
        json={"target_entity_id": "company:acme", "relation_type": "advises"},
    ).raise_for_status()
    for name in ("ann", "bob", "cy"):
        api.post(
            f"/v1/tenants/{tenant}/entities/contact:{name}/relations",
            json={
                "target_entity_id": "company:acme",
                "relation_type": "works_at",
                "metadata": {"label": name.upper()},
            },
        ).raise_for_status()
    open_console(page, console_server, tenant)
    page.click("#tab-relations")
    page.fill("#relations-form [name=entity]", "company:acme")
    page.click("#relations-form button")
    items = page.locator("ol[data-role='employs'] li")
    expect(items).to_have_count(3)
    expect(items.first).to_contain_text('{"label":"ANN"}')
    # Both directions: dee's link to acme (one-way, so acme has no mirror of it) comes in.
    expect(page.locator("#relations table tbody tr")).to_have_text(["contact:deeadvises1\u2014"])

    # Drag cy onto ann: it goes before ann, first.
    page.locator("li[data-target='contact:cy']").drag_to(
        page.locator("li[data-target='contact:ann']")
    )
    expect(page.locator("#relations-status")).to_contain_text("moved contact:cy before contact:ann")
    assert positions(api, tenant, "company:acme", "employs") == [
        ("contact:cy", 1),
        ("contact:ann", 2),
        ("contact:bob", 3),
    ]
    assert items.evaluate_all("rows => rows.map(r => r.dataset.target)") == [
        "contact:cy",
        "contact:ann",
        "contact:bob",
    ]

    # The keyboard does the same: Alt+Down moves the focused row one down.
    page.locator("li[data-target='contact:cy']").focus()
    page.keyboard.press("Alt+ArrowDown")
    expect(page.locator("#relations-status")).to_contain_text("moved contact:cy after contact:ann")
    assert positions(api, tenant, "company:acme", "employs") == [
        ("contact:ann", 1),
        ("contact:cy", 2),
        ("contact:bob", 3),
    ]
    expect(page.locator("li[data-target='contact:cy']")).to_be_focused()

    # Seen from a contact: the incoming mirror side, with its position in acme's list.
    page.fill("#relations-form [name=entity]", "contact:cy")
    page.click("#relations-form button")
    expect(page.locator("ol[data-role='works_at'] li")).to_have_count(1)


def test_a_watch_event_arrives_as_it_is_written(
    page: Page, console_server: Server, api: httpx.Client, tenant: str
) -> None:
    write_schema(api, tenant)
    open_console(page, console_server, tenant)
    page.click("#tab-watch")
    page.click("#watch-toggle")
    expect(page.locator("#watch-status")).to_contain_text("live")
    token = write_tuples(api, tenant, "doc:7#owner@user:ann")
    event = page.locator(".feed .event")
    expect(event).to_have_count(1)
    expect(event).to_have_attribute("data-snap-token", token)
    expect(event).to_contain_text("create doc:7#owner@user:ann")
    answer = api.post(
        f"/v1/tenants/{tenant}/relationships/delete",
        json={"filter": {"entity": {"type": "doc", "ids": ["7"]}}},
    )
    answer.raise_for_status()
    expect(event).to_have_count(2)
    expect(event.first).to_have_attribute("data-snap-token", answer.json()["snap_token"])
    expect(event.first).to_contain_text("delete doc:7#owner@user:ann")
    page.click("#watch-toggle")
    expect(page.locator("#watch-status")).to_have_text("stopped")
