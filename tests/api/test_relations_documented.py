"""The relations layer called as the endpoint documents show it: the verbatim requests of
../shared/specs/relations-layer.md, bare entity ids, bare paths whose tenant comes from the API
token, and /custom-objects/types."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.relations_support import check, strapi_error
from tests.api.support import tuple_json

_ids = itertools.count(1)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def api(module_server: Any) -> Iterator[httpx.Client]:
    with module_server.client() as client:
        yield client


class Crm:
    """A tenant built as a CRM integrator would: object types through /custom-objects/types,
    relationship types and relationships at the bare paths with the tenant's API token."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.tenant = f"crm{next(_ids)}"
        ok(api.post("/v1/tenants/create", json={"id": self.tenant}))
        schema = "entity user {}\nentity company { relation employs @contact }\n"
        schema += "entity contact { relation works_at @company }\n"
        ok(api.post(f"/v1/tenants/{self.tenant}/schemas/write", json={"schema": schema}))
        made = ok(
            api.post(f"/v1/tenants/{self.tenant}/tokens", json={"name": "crm", "scopes": ["*"]}),
            201,
        )
        self.auth = {"Authorization": f"Bearer {made['data']['token']}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.get(path, headers=self.auth, **kwargs)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.api.post(path, json=body, headers=self.auth)

    def delete(self, path: str) -> httpx.Response:
        return self.api.delete(path, headers=self.auth)


@pytest.fixture
def crm(api: httpx.Client) -> Crm:
    return Crm(api)


def test_custom_object_types_are_schema_entities_visible_to_checks(crm: Crm) -> None:
    listed = ok(crm.get("/custom-objects/types"))["data"]
    assert [t["name"] for t in listed] == ["company", "contact", "user"]
    ok(crm.post("/custom-objects/types", {"name": "line_item"}), 201)
    created = ok(
        crm.post(
            "/custom-objects/types",
            {"name": "order", "relations": {"placed_by": ["user"], "contains": ["line_item"]}},
        ),
        201,
    )
    assert created["data"]["relations"] == {"placed_by": ["user"], "contains": ["line_item"]}
    assert created["meta"]["schema_version"]
    read = ok(crm.api.post(f"/v1/tenants/{crm.tenant}/schemas/read", json={}))
    assert "entity order {" in read["x_schema_text"]
    written = {"metadata": {}, "tuples": [tuple_json("order:ord_1#placed_by@user:ann")]}
    ok(crm.api.post(f"/v1/tenants/{crm.tenant}/data/write", json=written))
    assert check(crm.api, crm.tenant, "order:ord_1", "placed_by", "user:ann")
    listed = ok(crm.get("/custom-objects/types"))["data"]
    assert [(t["name"], t["custom"]) for t in listed] == [
        ("company", False),
        ("contact", False),
        ("line_item", True),
        ("order", True),
        ("user", False),
    ]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"name": "order"}, 409, 'object type "order" exists already'),
        ({"name": "Line Item"}, 400, "a lowercase letter, then up to 63"),
        ({"name": "entity"}, 400, "not one of the schema language's words"),
        ({}, 400, "name is a required string"),
        ({"name": "invoice", "relations": {"of": ["ordr"]}}, 400, "ordr"),
    ],
    ids=["exists", "spaces", "keyword", "missing", "unknown-subject"],
)
def test_custom_object_type_refusals_say_why(
    crm: Crm, body: dict[str, Any], status: int, words: str
) -> None:
    ok(crm.post("/custom-objects/types", {"name": "order"}), 201)
    error = strapi_error(crm.post("/custom-objects/types", body), status)
    assert words in error["message"] + str(error["details"])


def _placed(crm: Crm) -> dict[str, Any]:
    """Seed 002's verbatim registration (R1), through the bare path."""
    ok(crm.post("/custom-objects/types", {"name": "line_item"}), 201)
    order = {"name": "order", "relations": {"placed_by": ["user"], "contains": ["line_item"]}}
    ok(crm.post("/custom-objects/types", order), 201)
    partial = {"partials": {"user": {"write": ["relation placed @order"]}}}
    ok(crm.api.patch(f"/v1/tenants/{crm.tenant}/schemas/partial-write", json=partial))
    body = {
        "kind": "person_to_co",
        "role": "placed",
        "customObjectType": "order",
        "cardinality": "ONE_TO_MANY",
        "description": "Orders a person placed",
        "bidirectional": True,
        "inverseRole": "placed_by",
    }
    return dict(ok(crm.post("/relationship-types", body), 201)["data"])


def test_the_seed_registry_and_relationship_requests_work_at_the_bare_paths(crm: Crm) -> None:
    placed = _placed(crm)
    co_to_co = {
        "kind": "co_to_co",
        "role": "contains",
        "parentCustomObjectType": "order",
        "childCustomObjectType": "line_item",
    }
    ok(crm.post("/relationship-types", co_to_co), 201)
    link = {
        "relationshipTypeId": placed["relationshipTypeId"],
        "sourceId": "user_123",
        "targetId": "ord_998",
        "metadata": {"channel": "web"},
    }
    made = ok(crm.post("/relationships", link), 201)["data"]
    assert (made["source"], made["target"]) == ("user:user_123", "order:ord_998")
    assert check(crm.api, crm.tenant, "order:ord_998", "placed_by", "user:user_123")
    listed = ok(crm.get("/relationships"))["data"]
    assert {r["relationshipId"] for r in listed} == {
        made["relationshipId"],
        made["mirrorRelationshipId"],
    }
    types = ok(crm.get("/relationship-types"))["data"]
    assert {t["role"] for t in types} == {"placed", "placed_by", "contains"}
    assert ok(crm.get(f"/relationships/{made['relationshipId']}"))["data"]["metadata"] == {
        "channel": "web"
    }
    assert crm.delete(f"/relationships/{made['relationshipId']}").status_code == 204
    assert not check(crm.api, crm.tenant, "order:ord_998", "placed_by", "user:user_123")


@pytest.mark.parametrize("path", ["/relationship-types", "/relationships", "/custom-objects/types"])
def test_a_bare_path_with_the_admin_key_is_400_saying_what_to_send(
    api: httpx.Client, path: str
) -> None:
    error = strapi_error(api.get(path), 400)
    assert f"use /v1/tenants/{{tenant_id}}{path}" in error["message"]
    assert "API token" in error["message"]


def test_a_bare_path_with_an_unknown_token_is_401(api: httpx.Client) -> None:
    headers = {"Authorization": "Bearer pat_" + "x" * 32}
    strapi_error(api.get("/relationship-types", headers=headers), 401)


def test_bare_entity_ids_as_the_seed_documents_send_them(crm: Crm) -> None:
    """Seed 000's requests with bare ``ent-…`` ids, at its verbatim path, for the token's
    tenant: the types come from the relationship type."""
    ok(
        crm.post(
            f"/v1/tenants/{crm.tenant}/relationship-types",
            {
                "kind": "co_to_co",
                "role": "works_at",
                "parentCustomObjectType": "contact",
                "childCustomObjectType": "company",
                "bidirectional": True,
                "inverseRole": "employs",
            },
        ),
        201,
    )
    base = "/core/api/v1/entities/ent-1a2b3c4d/relations"
    body = {
        "target_entity_id": "ent-9f8e7d6c",
        "relation_type": "works_at",
        "metadata": {"job_title": "CTO", "since": "2026-01-15"},
    }
    made = ok(crm.post(base, body), 201)["data"]
    assert (made["source_entity_id"], made["target_entity_id"]) == (
        "contact:ent-1a2b3c4d",
        "company:ent-9f8e7d6c",
    )
    assert check(crm.api, crm.tenant, "company:ent-9f8e7d6c", "employs", "contact:ent-1a2b3c4d")
    listed = ok(crm.get(base))["data"]
    assert [r["id"] for r in listed] == [made["id"]]
    mirror = ok(crm.get("/core/api/v1/entities/ent-9f8e7d6c/relations"))["data"]
    assert [r["relation_type"] for r in mirror] == ["employs"]
    # Typed refs keep working, on the same row.
    typed = ok(crm.get(f"/core/api/v1/entities/contact:ent-1a2b3c4d/relations/{made['id']}"))
    assert typed["data"]["id"] == made["id"]
    deleted = ok(crm.delete(f"{base}/{made['id']}"))
    assert deleted["message"] == "Relation removed successfully"
    assert not check(crm.api, crm.tenant, "company:ent-9f8e7d6c", "employs", "contact:ent-1a2b3c4d")
    assert ok(crm.get(base))["data"] == []


def test_a_bare_id_two_object_types_hold_is_409_listing_them(crm: Crm) -> None:
    written = {
        "metadata": {},
        "tuples": [tuple_json("contact:x1#works_at@company:x1")],
    }
    ok(crm.api.post(f"/v1/tenants/{crm.tenant}/data/write", json=written))
    error = strapi_error(crm.get("/core/api/v1/entities/x1/relations"), 409)
    assert error["details"]["candidates"] == ["company:x1", "contact:x1"]
    assert "company:x1, contact:x1" in error["message"]
    strapi_error(crm.delete("/core/api/v1/entities/x1/relations/rel-1"), 409)


def test_a_bare_id_on_create_needs_a_registered_role(crm: Crm) -> None:
    error = strapi_error(
        crm.post(
            "/core/api/v1/entities/ent-1/relations",
            {"target_entity_id": "ent-2", "relation_type": "works_a"},
        ),
        400,
    )
    assert error["details"]["errors"][0]["path"] == ["relation_type"]


def test_the_seed_entity_request_with_typed_refs(api: httpx.Client, crm: Crm) -> None:
    """Seed 000's E2 body exactly as the spec shows it, typed."""
    ok(
        crm.post(
            f"/v1/tenants/{crm.tenant}/relationship-types",
            {
                "kind": "co_to_co",
                "role": "works_at",
                "parentCustomObjectType": "contact",
                "childCustomObjectType": "company",
            },
        ),
        201,
    )
    body = {
        "target_entity_id": "company:ent-9f8e",
        "relation_type": "works_at",
        "metadata": {"job_title": "CTO", "since": "2026-01-15"},
    }
    made = ok(
        api.post(f"/v1/tenants/{crm.tenant}/entities/contact:ent-1a2b/relations", json=body), 201
    )
    assert made["data"]["metadata"] == {"job_title": "CTO", "since": "2026-01-15"}
