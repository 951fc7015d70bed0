"""Backups restore: a tenant built through every layer (schema, raw tuples and attributes,
relationship types, relations with metadata and positions, records) is exported with
`stonetown export`, imported with `stonetown import` into an empty server, and answers every
check, lookup and relations view the same; the restore endpoint refuses what does not hold
together."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from api.cli import main
from tests.api.conftest import Server
from tests.api.relations_support import KINDS, check, strapi_error
from tests.api.support import tuple_json

_KIND_RELATIONS = "\n".join(f"    relation {kind} @contact" for kind in KINDS)
SCHEMA = f"""
entity user {{}}
entity company {{
    relation employs @contact
    relation investor @user
    attribute public boolean
    permission staff = employs
    permission view = staff or investor or public
}}
entity category {{}}
entity contact {{
    relation owner @user
    relation works_at @company
    relation categories @category
{_KIND_RELATIONS}
    permission view = owner or friend.owner or child.owner
    permission edit = owner
}}
"""
TENANT = "backup"


def cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(
        main, [*args, "--url", url, "--tenant", TENANT], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def build(api: httpx.Client) -> None:
    """A tenant through every layer."""
    base = f"/v1/tenants/{TENANT}"
    ok(api.post("/v1/tenants/create", json={"id": TENANT}))
    ok(api.post(f"{base}/schemas/write", json={"schema": SCHEMA}))
    deal = {"name": "deal", "relations": {"owner": ["user"]}}
    ok(api.post(f"{base}/custom-objects/types", json=deal), 201)
    raw = [
        "contact:ann#owner@user:alice",
        "contact:bob#owner@user:bob",
        "company:hooli#investor@user:vc",
        "deal:d1#owner@user:alice",
    ]
    attribute = {
        "entity": {"type": "company", "id": "initech"},
        "attribute": "public",
        "value": {"@type": "type.googleapis.com/base.v1.BooleanValue", "data": True},
    }
    body = {"metadata": {}, "tuples": [tuple_json(t) for t in raw], "attributes": [attribute]}
    ok(api.post(f"{base}/data/write", json=body))
    works_at = {
        "kind": "co_to_co",
        "role": "works_at",
        "parentCustomObjectType": "contact",
        "childCustomObjectType": "company",
        "cardinality": "MANY_TO_MANY",
        "bidirectional": True,
        "inverseRole": "employs",
    }
    ok(api.post(f"{base}/relationship-types", json=works_at), 201)
    categories = {
        "kind": "co_to_co",
        "role": "categories",
        "parentCustomObjectType": "contact",
        "childCustomObjectType": "category",
    }
    ok(api.post(f"{base}/relationship-types", json=categories), 201)
    for company, title in (("hooli", "CTO"), ("initech", "advisor")):
        link = {"target_entity_id": f"company:{company}", "relation_type": "works_at"}
        ok(
            api.post(
                f"{base}/entities/contact:ann/relations",
                json={**link, "metadata": {"title": title}},
            ),
            201,
        )
    ordered = {
        "categories": {
            "connect": [
                "category:b",
                "category:a",
                {"id": "category:c", "position": {"start": True}},
            ]
        }
    }
    ok(api.put(f"{base}/entities/contact:ann/relations", json={"data": ordered}))
    for kind, parent, target in (("friend", "ann", "bob"), ("parent", "bob", "cy")):
        record = {"kind": kind, "parent_id": parent, "target_id": target, "label": f"{kind} label"}
        ok(api.post(f"{base}/xapi2/data/relationship", json=record), 201)


CHECKS = [
    ("company:hooli", "staff", "contact:ann"),
    ("company:initech", "staff", "contact:ann"),
    ("company:initech", "view", "user:nobody"),
    ("company:hooli", "view", "user:vc"),
    ("contact:bob", "view", "user:alice"),
    ("contact:ann", "view", "user:bob"),
    ("contact:cy", "view", "user:bob"),
    ("contact:bob", "edit", "user:alice"),
    ("deal:d1", "owner", "user:alice"),
]
ENTITIES = [
    "contact:ann",
    "contact:bob",
    "contact:cy",
    "company:hooli",
    "company:initech",
    "category:a",
]


def observed(api: httpx.Client) -> dict[str, Any]:
    """What a client of the tenant sees: checks, lookups, relations views, records, types."""
    base = f"/v1/tenants/{TENANT}"
    seen: dict[str, Any] = {
        "checks": [check(api, TENANT, *c) for c in CHECKS],
        "lookup": ok(
            api.post(
                f"{base}/permissions/lookup-entity",
                json={
                    "entity_type": "contact",
                    "permission": "view",
                    "subject": {"type": "user", "id": "alice"},
                },
            )
        )["entity_ids"],
        "views": {e: ok(api.get(f"{base}/entities/{e}/relations"))["data"] for e in ENTITIES},
        "records": ok(api.get(f"{base}/xapi2/data/relationship", params={"limit": 200}))["data"],
        "types": ok(api.get(f"{base}/relationship-types", params={"limit": 200}))["data"],
        "object_types": ok(api.get(f"{base}/custom-objects/types"))["data"],
    }
    return seen


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_export_then_import_into_an_empty_server_restores_the_tenant(
    module_server: Server, start_server: Callable[..., Server], tmp_path: Path, fmt: str
) -> None:
    with module_server.client() as api:
        if api.get(f"/v1/tenants/{TENANT}/relationship-types").status_code == 404:
            build(api)
        before = observed(api)
    assert before["checks"] == [True, True, True, True, True, True, True, False, True]
    assert [
        r["target_entity_id"]
        for r in before["views"]["contact:ann"]
        if r["relation_type"] == "categories"
    ] == [
        "category:c",
        "category:b",
        "category:a",
    ]
    backup = tmp_path / f"backup.{fmt}"
    summary = cli(module_server.url, "export", "-o", str(backup))
    relations = 4 + 3 + 4  # works_at pairs, categories, record pairs
    assert f"{len(before['types'])} relationship types" in summary, summary
    assert f"{relations} relations" in summary, summary
    fresh = start_server()
    with fresh.client() as api:
        ok(api.post("/v1/tenants/create", json={"id": TENANT}))
        summary = cli(fresh.url, "import", str(backup), "--batch-size", "3")
        assert f"and {relations} relations in" in summary, summary
        assert observed(api) == before
        # Importing the same file again changes nothing.
        cli(fresh.url, "import", str(backup))
        assert observed(api) == before


def test_restore_refuses_a_split_pair_or_a_malformed_row_and_writes_nothing(
    module_server: Server,
) -> None:
    with module_server.client() as api:
        if api.get(f"/v1/tenants/{TENANT}/relationship-types").status_code == 404:
            build(api)
        dumped = ok(api.get(f"/v1/tenants/{TENANT}/relations/backup"))["data"]
        ok(api.post("/v1/tenants/create", json={"id": "restore2"}))
        ok(api.post("/v1/tenants/restore2/schemas/write", json={"schema": SCHEMA}))
        restore = "/v1/tenants/restore2/relations/restore"
        primary = next(r for r in dumped["relations"] if r["pair_id"] and not r["is_mirror"])
        split = {"types": dumped["types"], "relations": [primary]}
        error = strapi_error(api.post(restore, json=split), 400)
        assert "is neither in this restore nor stored" in error["message"]
        bad = {"relations": [{**primary, "position": "first", "metadata": [1]}]}
        error = strapi_error(api.post(restore, json=bad), 400)
        paths = [e["path"] for e in error["details"]["errors"]]
        assert ["relations", 0, "metadata"] in paths and ["relations", 0, "position"] in paths
        assert ok(api.get("/v1/tenants/restore2/relations/backup"))["data"] == {
            "settings": None,
            "types": [],
            "relations": [],
            "object_types": [],
        }
        body = {
            "metadata": {},
            "tuples": [
                tuple_json(
                    f"contact:{primary['entity_id']}#{primary['relation']}@{primary['subject_type']}:{primary['subject_id']}"
                )
            ],
        }
        assert api.post("/v1/tenants/restore2/data/write", json=body).status_code == 200


def test_backup_and_restore_need_the_admin_key(module_server: Server) -> None:
    with module_server.client() as api:
        if api.get(f"/v1/tenants/{TENANT}/relationship-types").status_code == 404:
            build(api)
        made = ok(
            api.post(
                f"/v1/tenants/{TENANT}/tokens",
                json={"name": "reader", "scopes": ["*"]},
            ),
            201,
        )
        secret = {"Authorization": f"Bearer {made['data']['token']}"}
        strapi_error(api.get(f"/v1/tenants/{TENANT}/relations/backup", headers=secret), 403)
        strapi_error(
            api.post(f"/v1/tenants/{TENANT}/relations/restore", json={}, headers=secret), 403
        )
        assert "tok-" not in json.dumps(ok(api.get(f"/v1/tenants/{TENANT}/relations/backup")))
