"""Tenant isolation through the API: tenants holding the same ids, tenants named as prefixes of
one another or with ``: @ . + - _`` in their ids, and crafted tenant ids in the path. Reads,
checks, lookups, writes and deletes in one tenant never see or change another; every test reads
back all tenants to prove it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped

SCHEMA = """
entity user {}
entity doc {
    relation owner @user
    relation viewer @user
    attribute level integer
    permission view = owner or viewer
}
"""
#: Tenants whose ids are prefixes, case variants or punctuated variants of one another.
TENANTS = [
    "t",
    "t1",
    "t10",
    "T1",
    "t1.0",
    "t1:x",
    "t1@x",
    "t1+x",
    "t1-x",
    "t1_x",
    "x:t1",
    "t1" * 64,
]
ALICE = {"type": "user", "id": "alice"}


def tup(entity_id: str, relation: str, user: str) -> dict[str, Any]:
    return {
        "entity": {"type": "doc", "id": entity_id},
        "relation": relation,
        "subject": {"type": "user", "id": user, "relation": ""},
    }


def level(entity_id: str, value: int) -> dict[str, Any]:
    return {
        "entity": {"type": "doc", "id": entity_id},
        "attribute": "level",
        "value": {"@type": "type.googleapis.com/base.v1.IntegerValue", "data": value},
    }


def expected_attributes(index: int) -> list[dict[str, Any]]:
    return [level("shared", index), level("other", -index)]


def expected_tuples(tenant: str) -> list[dict[str, Any]]:
    """Every tenant holds the same shared tuples, and one naming the tenant as the owner."""
    return [
        tup("shared", "viewer", "alice"),
        tup("shared", "owner", tenant),
        tup("other", "viewer", "alice"),
    ]


def _key(t: dict[str, Any]) -> str:
    return json.dumps(t, sort_keys=True)


def state(client: httpx.Client) -> dict[str, Any]:
    """Everything every tenant holds: tenant list, schema head, tuples and attributes."""
    listed = client.post("/v1/tenants/list", json={"page_size": 1000}).json()
    out: dict[str, Any] = {"tenants": sorted(t["id"] for t in listed["tenants"])}
    for tenant in out["tenants"]:
        base = f"/v1/tenants/{tenant}"
        tuples = client.post(
            f"{base}/data/relationships/read", json={"filter": {}, "page_size": 1000}
        )
        attributes = client.post(
            f"{base}/data/attributes/read", json={"filter": {}, "page_size": 1000}
        )
        head = client.post(f"{base}/schemas/list", json={}).json()["head"]
        out[tenant] = {
            "head": head,
            "tuples": sorted(_key(t) for t in tuples.json()["tuples"]),
            "attributes": sorted(_key(a) for a in attributes.json()["attributes"]),
        }
    return out


def populate(client: httpx.Client) -> dict[str, Any]:
    """Every tenant in TENANTS with the same schema, the same entity ids and the same shared
    tuples, one tuple and two attribute values of its own; returns ``state`` after that."""
    for index, tenant in enumerate(TENANTS):
        if tenant != "t1":
            created = client.post("/v1/tenants/create", json={"id": tenant})
            assert created.status_code == 200, created.text
        base = f"/v1/tenants/{tenant}"
        assert client.post(f"{base}/schemas/write", json={"schema": SCHEMA}).status_code == 200
        written = client.post(
            f"{base}/data/write",
            json={"tuples": expected_tuples(tenant), "attributes": expected_attributes(index)},
        )
        assert written.status_code == 200, written.text
    before = state(client)
    assert before["tenants"] == sorted(TENANTS)
    return before


@pytest.fixture
def tenants(client: httpx.Client) -> dict[str, Any]:
    """Populated tenants on a server of the test's own, for tests that change them."""
    return populate(client)


@pytest.fixture(scope="module")
def reader(module_server: Server) -> Iterator[httpx.Client]:
    """A client of one server populated once for the module's read-only tests."""
    with module_server.client() as client:
        populate(client)
        yield client


@pytest.fixture
def unchanged(reader: httpx.Client) -> Iterator[httpx.Client]:
    """The populated module server; the test fails if it changed any tenant."""
    before = state(reader)
    yield reader
    assert state(reader) == before


def _quote(tenant: str) -> str:
    return tenant.replace("+", "%2B").replace("@", "%40").replace(":", "%3A")


# -- reads ----------------------------------------------------------------------------------


def test_each_tenant_reads_only_its_own_tuples_and_attributes(unchanged: httpx.Client) -> None:
    held = state(unchanged)
    assert held["tenants"] == sorted(TENANTS)
    for index, tenant in enumerate(TENANTS):
        assert held[tenant]["tuples"] == sorted(_key(t) for t in expected_tuples(tenant))
        assert held[tenant]["attributes"] == sorted(_key(a) for a in expected_attributes(index))
    heads = [held[t]["head"] for t in TENANTS]
    assert len(set(heads)) == len(heads)


@pytest.mark.parametrize("tenant", TENANTS)
def test_checks_and_lookups_see_only_the_tenants_own_data(
    unchanged: httpx.Client, tenant: str
) -> None:
    client = unchanged
    base = f"/v1/tenants/{_quote(tenant)}"
    doc = {"type": "doc", "id": "shared"}
    items = [
        {"entity": doc, "permission": "view", "subject": {"type": "user", "id": other}}
        for other in TENANTS
    ]
    results = client.post(f"{base}/permissions/bulk-check", json={"items": items}).json()["results"]
    allowed = [
        other
        for other, r in zip(TENANTS, results, strict=True)
        if r["can"] == "CHECK_RESULT_ALLOWED"
    ]
    assert allowed == [tenant]

    own = {"type": "user", "id": tenant}
    check = client.post(
        f"{base}/permissions/check", json={"entity": doc, "permission": "owner", "subject": own}
    )
    assert check.json()["can"] == "CHECK_RESULT_ALLOWED"

    entities = client.post(
        f"{base}/permissions/lookup-entity",
        json={"entity_type": "doc", "permission": "view", "subject": own},
    )
    assert entities.json()["entity_ids"] == ["shared"]
    subjects = client.post(
        f"{base}/permissions/lookup-subject",
        json={"entity": doc, "permission": "view", "subject_reference": {"type": "user"}},
    )
    assert sorted(subjects.json()["subject_ids"]) == sorted(["alice", tenant])
    permissions = client.post(
        f"{base}/permissions/subject-permission", json={"entity": doc, "subject": own}
    )
    assert permissions.json()["results"]["owner"] == "CHECK_RESULT_ALLOWED"
    index = TENANTS.index(tenant)
    attributes = client.post(
        f"{base}/data/attributes/read",
        json={"filter": {"entity": {"type": "doc", "ids": ["shared"]}}},
    )
    assert attributes.json()["attributes"] == [level("shared", index)]


def test_a_snap_token_from_another_tenant_shows_only_this_tenants_data(
    client: httpx.Client, tenants: dict[str, Any]
) -> None:
    token = client.post(
        "/v1/tenants/t10/data/write", json={"tuples": [tup("new", "owner", "t10")]}
    ).json()["snap_token"]
    read = client.post(
        "/v1/tenants/t1/data/relationships/read",
        json={"filter": {}, "metadata": {"snap_token": token}, "page_size": 100},
    )
    assert read.status_code == 200, read.text
    assert sorted(_key(t) for t in read.json()["tuples"]) == tenants["t1"]["tuples"]


@pytest.mark.parametrize("endpoint", ["data/relationships/read", "data/attributes/read"])
def test_a_cursor_from_another_tenant_is_rejected(unchanged: httpx.Client, endpoint: str) -> None:
    client = unchanged
    first = client.post(f"/v1/tenants/t1/{endpoint}", json={"filter": {}, "page_size": 1}).json()
    cursor = first["continuous_token"]
    assert cursor
    for tenant in ("t", "t10", "T1", "t1:x"):
        response = client.post(
            f"/v1/tenants/{_quote(tenant)}/{endpoint}",
            json={"filter": {}, "page_size": 1, "continuous_token": cursor},
        )
        assert response.status_code == 400, response.text
        body = shaped(m.ErrorResponse, response.json())
        assert body["details"][0]["reason"] == "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"


def test_a_schema_version_of_another_tenant_is_not_found(unchanged: httpx.Client) -> None:
    client = unchanged
    version = client.post("/v1/tenants/t10/schemas/list", json={}).json()["head"]
    requests: list[tuple[str, dict[str, Any]]] = [
        ("schemas/read", {}),
        ("data/write", {"tuples": [tup("x", "owner", "x")]}),
        (
            "permissions/check",
            {"entity": {"type": "doc", "id": "shared"}, "permission": "view", "subject": ALICE},
        ),
    ]
    for endpoint, body in requests:
        response = client.post(
            f"/v1/tenants/t1/{endpoint}", json={**body, "metadata": {"schema_version": version}}
        )
        assert response.status_code == 404, (endpoint, response.text)
        assert response.json()["details"][0]["reason"] == "ERROR_CODE_SCHEMA_NOT_FOUND"


# -- writes and deletes ---------------------------------------------------------------------


def test_writes_land_only_in_their_tenant(client: httpx.Client, tenants: dict[str, Any]) -> None:
    extra = tup("shared", "viewer", "bob")
    response = client.post("/v1/tenants/t1%3Ax/data/write", json={"tuples": [extra]})
    assert response.status_code == 200, response.text
    after = state(client)
    assert after["t1:x"]["tuples"] == sorted([*tenants["t1:x"]["tuples"], _key(extra)])
    assert {t: v for t, v in after.items() if t != "t1:x"} == {
        t: v for t, v in tenants.items() if t != "t1:x"
    }


@pytest.mark.parametrize(
    "endpoint, body",
    [
        ("relationships/delete", {"filter": {"entity": {"type": "doc"}}}),
        ("relationships/delete", {"filter": {"subject": {"type": "user", "ids": ["alice"]}}}),
        ("data/delete", {"tuple_filter": {"entity": {"type": "doc", "ids": ["shared"]}}}),
        ("data/delete", {"attribute_filter": {"entity": {"type": "doc"}}}),
        (
            "data/delete",
            {"tuple_filter": {"relation": "owner"}, "attribute_filter": {"attributes": ["level"]}},
        ),
    ],
    ids=["by-entity-type", "by-subject", "tuples-by-id", "attributes", "both"],
)
@pytest.mark.parametrize("tenant", ["t1", "t", "t1:x", "T1"])
def test_delete_by_filter_changes_only_its_tenant(
    client: httpx.Client, tenants: dict[str, Any], tenant: str, endpoint: str, body: dict[str, Any]
) -> None:
    response = client.post(f"/v1/tenants/{_quote(tenant)}/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    after = state(client)
    assert after[tenant] != tenants[tenant]
    assert {t: v for t, v in after.items() if t != tenant} == {
        t: v for t, v in tenants.items() if t != tenant
    }


@pytest.mark.parametrize("tenant", ["t1", "t", "t1:x", "t1.0", "T1", "t1" * 64])
def test_deleting_a_tenant_leaves_tenants_named_like_it(
    client: httpx.Client, tenants: dict[str, Any], tenant: str
) -> None:
    response = client.delete(f"/v1/tenants/{_quote(tenant)}")
    assert response.status_code == 200, response.text
    assert response.json() == {"tenant_id": tenant}
    after = state(client)
    expected = {t: v for t, v in tenants.items() if t != tenant}
    expected["tenants"] = sorted(set(TENANTS) - {tenant})
    assert after == expected


# -- crafted ids in the path ----------------------------------------------------------------

#: Raw path segments sent as-is (http.client does not normalise paths, as httpx does).
CRAFTED = [
    "t1%2Ft10",
    "t1/../t10",
    "t10/../t1",
    "t1%2F..%2Ft10",
    "t1/%2E%2E/t10",
    "t1%00",
    "t1%00t10",
    "..",
    "%2E%2E",
    ".",
    "t1:",
    "t1#x",
    "t1#/../t10",
    "t1%23x",
    "t1%3F",
    "t1;t10",
    "t1,t10",
    "t1%0At10",
    "t1%20",
    "%20t1",
    "t1%C3%A9",
    "%E2%9C%93",
    "*",
    "%2A",
    "",
    "x" * 129,
    "t1" * 64 + "x",
    "T1%2Ct1",
    "t1%252Ft10",
]
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "data/relationships/read", {"filter": {}}),
    ("POST", "data/attributes/read", {"filter": {}}),
    (
        "POST",
        "permissions/check",
        {"entity": {"type": "doc", "id": "shared"}, "permission": "view", "subject": ALICE},
    ),
    (
        "POST",
        "permissions/lookup-entity",
        {"entity_type": "doc", "permission": "view", "subject": ALICE},
    ),
    ("POST", "data/write", {"tuples": [tup("shared", "owner", "mallory")]}),
    ("POST", "relationships/delete", {"filter": {"entity": {"type": "doc"}}}),
    (
        "POST",
        "data/delete",
        {
            "tuple_filter": {"entity": {"type": "doc"}},
            "attribute_filter": {"entity": {"type": "doc"}},
        },
    ),
    ("POST", "schemas/write", {"schema": "entity user {}"}),
    ("POST", "schemas/read", {}),
    ("DELETE", "", None),
]


def _raw(server: Server, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, bytes]:
    where = urlsplit(server.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("crafted", CRAFTED)
def test_a_crafted_tenant_id_in_the_path_reaches_no_tenant(
    module_server: Server, unchanged: httpx.Client, crafted: str
) -> None:
    for method, endpoint, body in ENDPOINTS:
        path = f"/v1/tenants/{crafted}" + (f"/{endpoint}" if endpoint else "")
        status, raw = _raw(module_server, method, path, body)
        assert status in {400, 404, 405}, (method, path, status, raw[:300])
        shaped(m.ErrorResponse, json.loads(raw))
