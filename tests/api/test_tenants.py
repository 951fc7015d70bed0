"""Tenancy over HTTP: create, list a page at a time, delete; a deleted tenant is gone from every
tenant-scoped endpoint, and a tenant re-created under the same id starts empty."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import shaped

SCHEMA = """
entity user {}
entity doc {
    relation owner @user
    attribute public boolean
    permission view = owner
}
"""
OWNER = {
    "entity": {"type": "doc", "id": "d1"},
    "relation": "owner",
    "subject": {"type": "user", "id": "alice"},
}
CHECK = {"entity": {"type": "doc", "id": "d1"}, "permission": "view", "subject": OWNER["subject"]}


def _error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == reason, body
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return [v["field"] for v in body["details"][1]["field_violations"]]


def _create(client: httpx.Client, tenant: str, name: str = "") -> dict[str, Any]:
    response = client.post("/v1/tenants/create", json={"id": tenant, "name": name})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = shaped(m.TenantResponse, response.json())["tenant"]
    return created


def _all_tenants(client: httpx.Client, page_size: int) -> list[list[str]]:
    """Every page of the tenant list, as lists of ids."""
    pages, token = [], ""
    while True:
        response = client.post(
            "/v1/tenants/list", json={"page_size": page_size, "continuous_token": token}
        )
        assert response.status_code == 200, response.text
        body = shaped(m.TenantListResponse, response.json())
        pages.append([t["id"] for t in body["tenants"]])
        token = body["continuous_token"]
        if not token:
            return pages
        assert len(pages) < 50, "the tenant list does not end"


# -- create ---------------------------------------------------------------------------------


def test_create_returns_the_tenant_with_an_rfc3339_utc_creation_time(client: httpx.Client) -> None:
    before = datetime.now(UTC)
    tenant = _create(client, "acme", "Acme Corp")
    after = datetime.now(UTC)
    assert tenant["id"] == "acme"
    assert tenant["name"] == "Acme Corp"
    assert tenant["created_at"].endswith("Z")
    created = datetime.fromisoformat(tenant["created_at"])
    assert created.tzinfo is not None
    assert before.replace(microsecond=0) <= created <= after


def test_create_accepts_every_character_the_id_pattern_allows(client: httpx.Client) -> None:
    tenant = "a-Z_0.9@x:y+z"
    assert _create(client, tenant)["id"] == tenant
    assert _create(client, "x" * 128)["id"] == "x" * 128


def test_create_of_a_taken_id_is_a_unique_constraint_conflict(client: httpx.Client) -> None:
    _create(client, "acme", "first")
    response = client.post("/v1/tenants/create", json={"id": "acme", "name": "second"})
    body = _error(response, 409, "ERROR_CODE_UNIQUE_CONSTRAINT")
    assert "acme" in body["message"]
    listed = client.post("/v1/tenants/list", json={}).json()["tenants"]
    assert [t["name"] for t in listed if t["id"] == "acme"] == ["first"]


def test_the_default_tenant_t1_exists_and_cannot_be_created_again(client: httpx.Client) -> None:
    assert _all_tenants(client, 10) == [["t1"]]
    _error(
        client.post("/v1/tenants/create", json={"id": "t1"}), 409, "ERROR_CODE_UNIQUE_CONSTRAINT"
    )


@pytest.mark.parametrize(
    "body, field",
    [
        ({"id": ""}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"id": "a/b"}, "id"),
        ({"id": "a b"}, "id"),
        ({"id": " a"}, "id"),
        ({"id": "caf\u00e9"}, "id"),
        ({"id": "\u2713"}, "id"),
        ({"id": "a\x00b"}, "id"),
        ({"id": "a\nb"}, "id"),
        ({"id": "ab\n"}, "id"),
        ({"id": "*"}, "id"),
        ({"id": "."}, "id"),
        ({"id": ".."}, "id"),
        ({"id": 7}, "id"),
        ({"id": None}, "id"),
        ({}, "id"),
        ({"id": "ok", "name": "n" * 257}, "name"),
        ({"id": "ok", "name": 5}, "name"),
    ],
    ids=[
        "empty",
        "129-chars",
        "slash",
        "space",
        "leading-space",
        "latin-1",
        "unicode-symbol",
        "nul",
        "newline",
        "trailing-newline",
        "wildcard",
        "dot",
        "dot-dot",
        "number",
        "null",
        "missing",
        "name-too-long",
        "name-not-a-string",
    ],
)
def test_create_with_an_invalid_field_is_a_400_naming_it(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/tenants/create", json=body)
    error = _error(response, 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == [field]
    assert error["message"].startswith(f"{field}: ")
    assert _all_tenants(client, 10) == [["t1"]]


# -- list -----------------------------------------------------------------------------------


def test_list_walks_every_tenant_once_in_id_order_one_page_at_a_time(
    client: httpx.Client,
) -> None:
    made = ["b", "a", "t10", "t", "A", "a.b", "a:b", "t1x"]
    for tenant in made:
        _create(client, tenant)
    expected = sorted([*made, "t1"])
    pages = _all_tenants(client, 1)
    assert pages == [[tenant] for tenant in expected]
    assert _all_tenants(client, 4) == [expected[0:4], expected[4:8], expected[8:9]]
    assert _all_tenants(client, 3) == [expected[0:3], expected[3:6], expected[6:9]]
    assert _all_tenants(client, 1000) == [expected]


def test_list_page_size_defaults_and_names_match_what_was_created(client: httpx.Client) -> None:
    created = _create(client, "acme", "Acme")
    body = shaped(m.TenantListResponse, client.post("/v1/tenants/list", json={}).json())
    assert body["continuous_token"] == ""
    assert created in body["tenants"]
    # An empty body means the same as {}.
    assert client.post("/v1/tenants/list").json() == body


@pytest.mark.parametrize(
    "token",
    ["garbage", "AAAA", "%%%", "eyJ4IjoxfQ==", "\u00e9", "x" * 5000],
    ids=["word", "base64-zeros", "not-base64", "base64-json", "unicode", "long"],
)
def test_list_with_a_token_it_did_not_issue_is_a_400(client: httpx.Client, token: str) -> None:
    response = client.post("/v1/tenants/list", json={"page_size": 1, "continuous_token": token})
    body = _error(response, 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")
    assert _fields(body) == ["continuous_token"]


def test_list_rejects_a_token_from_another_listing(client: httpx.Client) -> None:
    client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA})
    client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA})
    schemas_token = client.post("/v1/tenants/t1/schemas/list", json={"page_size": 1}).json()[
        "continuous_token"
    ]
    assert schemas_token
    response = client.post("/v1/tenants/list", json={"continuous_token": schemas_token})
    _error(response, 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")


@pytest.mark.parametrize(
    "page_size", [0, -1, 10_001, "many", 1.5], ids=["zero", "negative", "too-big", "word", "frac"]
)
def test_list_with_a_bad_page_size_is_a_400_naming_it(client: httpx.Client, page_size: Any) -> None:
    response = client.post("/v1/tenants/list", json={"page_size": page_size})
    assert _fields(_error(response, 400, "ERROR_CODE_VALIDATION")) == ["page_size"]


# -- delete ---------------------------------------------------------------------------------


def test_delete_returns_the_id_and_removes_the_tenant_from_the_list(client: httpx.Client) -> None:
    _create(client, "acme")
    _create(client, "beta")
    response = client.delete("/v1/tenants/acme")
    assert response.status_code == 200, response.text
    assert shaped(m.TenantDeleteResponse, response.json()) == {"tenant_id": "acme"}
    assert _all_tenants(client, 10) == [["beta", "t1"]]
    _error(client.delete("/v1/tenants/acme"), 404, "ERROR_CODE_TENANT_NOT_FOUND")


def test_delete_of_an_unknown_tenant_is_a_404(client: httpx.Client) -> None:
    body = _error(client.delete("/v1/tenants/nobody"), 404, "ERROR_CODE_TENANT_NOT_FOUND")
    assert "nobody" in body["message"]


@pytest.mark.parametrize(
    "path",
    ["a%2Fb", "a%20b", "caf%C3%A9", "a%00", "%2A", "x" * 129],
    ids=["slash", "space", "unicode", "nul", "wildcard", "too-long"],
)
def test_delete_with_an_invalid_id_is_a_400_naming_it(client: httpx.Client, path: str) -> None:
    response = client.delete(f"/v1/tenants/{path}")
    assert _fields(_error(response, 400, "ERROR_CODE_VALIDATION")) == ["id"]
    assert _all_tenants(client, 10) == [["t1"]]


_TUPLE_FILTER = {"entity": {"type": "doc"}}
# Every tenant-scoped endpoint (bundles aside) with a body that is valid apart from the tenant.
TENANT_SCOPED: list[tuple[str, dict[str, Any]]] = [
    ("schemas/write", {"schema": SCHEMA}),
    ("schemas/read", {}),
    ("schemas/list", {}),
    ("data/write", {"tuples": [OWNER]}),
    ("relationships/write", {"tuples": [OWNER]}),
    ("data/relationships/read", {"filter": _TUPLE_FILTER}),
    ("data/attributes/read", {"filter": {"entity": {"type": "doc"}}}),
    ("data/delete", {"tuple_filter": _TUPLE_FILTER}),
    ("relationships/delete", {"filter": _TUPLE_FILTER}),
    ("permissions/check", CHECK),
    ("permissions/bulk-check", {"items": [CHECK]}),
    ("permissions/expand", {"entity": CHECK["entity"], "permission": "view"}),
    (
        "permissions/lookup-entity",
        {"entity_type": "doc", "permission": "view", "subject": CHECK["subject"]},
    ),
    (
        "permissions/lookup-entity-stream",
        {"entity_type": "doc", "permission": "view", "subject": CHECK["subject"]},
    ),
    (
        "permissions/lookup-subject",
        {"entity": CHECK["entity"], "permission": "view", "subject_reference": {"type": "user"}},
    ),
    ("permissions/subject-permission", {"entity": CHECK["entity"], "subject": CHECK["subject"]}),
    ("watch", {}),
]


@pytest.fixture
def deleted(client: httpx.Client) -> str:
    """A tenant that had a schema and data, then was deleted."""
    _create(client, "gone")
    assert client.post("/v1/tenants/gone/schemas/write", json={"schema": SCHEMA}).is_success
    assert client.post("/v1/tenants/gone/data/write", json={"tuples": [OWNER]}).is_success
    assert client.delete("/v1/tenants/gone").status_code == 200
    return "gone"


@pytest.mark.parametrize(
    "endpoint, body", TENANT_SCOPED, ids=[endpoint for endpoint, _ in TENANT_SCOPED]
)
def test_a_deleted_tenant_is_not_found_on_every_tenant_scoped_endpoint(
    client: httpx.Client, deleted: str, endpoint: str, body: dict[str, Any]
) -> None:
    response = client.post(f"/v1/tenants/{deleted}/{endpoint}", json=body)
    error = _error(response, 404, "ERROR_CODE_TENANT_NOT_FOUND")
    assert deleted in error["message"]


def test_a_recreated_tenant_starts_empty_even_at_old_snap_tokens(client: httpx.Client) -> None:
    _create(client, "acme")
    old_version = client.post("/v1/tenants/acme/schemas/write", json={"schema": SCHEMA}).json()[
        "schema_version"
    ]
    public = {
        "entity": {"type": "doc", "id": "d1"},
        "attribute": "public",
        "value": {"@type": "type.googleapis.com/base.v1.BooleanValue", "data": True},
    }
    written = client.post(
        "/v1/tenants/acme/data/write", json={"tuples": [OWNER], "attributes": [public]}
    )
    old_token = written.json()["snap_token"]
    allowed = client.post(
        "/v1/tenants/acme/permissions/check", json={**CHECK, "metadata": {"snap_token": old_token}}
    )
    assert allowed.json()["can"] == "CHECK_RESULT_ALLOWED"  # also warms the engine's caches

    assert client.delete("/v1/tenants/acme").status_code == 200
    _create(client, "acme")

    listed = client.post("/v1/tenants/acme/schemas/list", json={}).json()
    assert listed == {"head": "", "schemas": [], "continuous_token": ""}
    _error(
        client.post("/v1/tenants/acme/schemas/read", json={}), 404, "ERROR_CODE_SCHEMA_NOT_FOUND"
    )
    _error(
        client.post(
            "/v1/tenants/acme/schemas/read", json={"metadata": {"schema_version": old_version}}
        ),
        404,
        "ERROR_CODE_SCHEMA_NOT_FOUND",
    )
    for token in ("", old_token):
        meta = {"snap_token": token}
        tuples = client.post(
            "/v1/tenants/acme/data/relationships/read", json={"metadata": meta, "filter": {}}
        )
        assert (tuples.json()["tuples"], tuples.json()["continuous_token"]) == ([], ""), token
        attributes = client.post(
            "/v1/tenants/acme/data/attributes/read", json={"metadata": meta, "filter": {}}
        )
        answer = attributes.json()
        assert (answer["attributes"], answer["continuous_token"]) == ([], ""), token

    assert client.post("/v1/tenants/acme/schemas/write", json={"schema": SCHEMA}).is_success
    for token in ("", old_token):
        check = client.post(
            "/v1/tenants/acme/permissions/check", json={**CHECK, "metadata": {"snap_token": token}}
        )
        assert check.status_code == 200, check.text
        assert check.json()["can"] == "CHECK_RESULT_DENIED", token
        lookup = client.post(
            "/v1/tenants/acme/permissions/lookup-entity",
            json={
                "entity_type": "doc",
                "permission": "view",
                "subject": CHECK["subject"],
                "metadata": {"snap_token": token},
            },
        )
        assert lookup.json()["entity_ids"] == [], token
