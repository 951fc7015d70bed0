"""The API's error paths across endpoints: malformed bodies, wrong types, unknown routes and
methods, oversized bodies, bearer keys and the concurrency limit. Every error has Permify's shape
(``api.models.ErrorResponse``), and no bad input is ever answered with a 500."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped

SCHEMA = """
entity user {}
entity doc {
    relation owner @user
    attribute level integer
    permission view = owner
    permission high = is_high(level)
}
rule is_high(level integer) {
    level > 3
}
"""
ALICE = {"type": "user", "id": "alice"}
DOC = {"type": "doc", "id": "1"}
CHECK = {"entity": DOC, "permission": "view", "subject": ALICE}
OWNER = {"entity": DOC, "relation": "owner", "subject": ALICE}


def _error(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = shaped(m.ErrorResponse, response.json())
    assert body["message"]
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"].startswith("ERROR_CODE_")
    if reason is not None:
        assert info["reason"] == reason, body
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    assert body["details"][1]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    return [v["field"] for v in body["details"][1]["field_violations"]]


@pytest.fixture
def ready(client: httpx.Client) -> httpx.Client:
    """t1 with a schema and one tuple."""
    assert client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}).is_success
    assert client.post("/v1/tenants/t1/data/write", json={"tuples": [OWNER]}).is_success
    return client


# -- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{bad", b'{"entity": ', b"{'a': 1}", b'{"a": 1,}', b"\xff\xfe{}", b"{}{}", b"[" * 100_000],
    ids=[
        "bare-word",
        "truncated",
        "single-quotes",
        "trailing-comma",
        "not-utf8",
        "two-objects",
        "deep",
    ],
)
def test_malformed_json_is_a_400_naming_the_body(ready: httpx.Client, raw: bytes) -> None:
    response = ready.post("/v1/tenants/t1/permissions/check", content=raw)
    body = _error(response, 400, "ERROR_CODE_VALIDATION")
    assert _fields(body) == ["body"]
    assert "JSON" in body["message"]


@pytest.mark.parametrize(
    "raw",
    [b"[]", b"[{}]", b"null", b"1", b'"check"', b"true"],
    ids=["array", "array-of-object", "null", "number", "string", "boolean"],
)
def test_a_body_that_is_not_an_object_is_a_400(ready: httpx.Client, raw: bytes) -> None:
    for endpoint in (
        "/v1/tenants/t1/permissions/check",
        "/v1/tenants/t1/data/write",
        "/v1/tenants/list",
    ):
        body = _error(ready.post(endpoint, content=raw), 400, "ERROR_CODE_VALIDATION")
        assert _fields(body) == ["body"]


@pytest.mark.parametrize(
    "endpoint, body, field",
    [
        ("permissions/check", {**CHECK, "entity": {"type": "doc", "id": 5}}, "entity.id"),
        ("permissions/check", {**CHECK, "entity": "doc:1"}, "entity"),
        ("permissions/check", {**CHECK, "permission": ["view"]}, "permission"),
        ("permissions/check", {**CHECK, "metadata": {"depth": "deep"}}, "metadata.depth"),
        ("permissions/check", {**CHECK, "metadata": {"snap_token": 7}}, "metadata.snap_token"),
        ("permissions/check", {**CHECK, "context": {"data": []}}, "context.data"),
        ("permissions/check", {**CHECK, "context": {"tuples": {}}}, "context.tuples"),
        (
            "permissions/bulk-check",
            {"items": [CHECK, {**CHECK, "permission": None}]},
            "items[1].permission",
        ),
        (
            "data/write",
            {"tuples": [OWNER, {**OWNER, "subject": {"type": [], "id": "x"}}]},
            "tuples[1].subject.type",
        ),
        ("data/write", {"attributes": {"a": 1}}, "attributes"),
        ("data/relationships/read", {"filter": {"entity": {"ids": "1"}}}, "filter.entity.ids"),
        (
            "permissions/lookup-entity",
            {"entity_type": "doc", "permission": "view", "subject": ALICE, "page_size": "x"},
            "page_size",
        ),
        (
            "permissions/lookup-entity",
            {"entity_type": "doc", "permission": "view", "subject": ALICE, "scope": {"doc": [1]}},
            "scope.doc",
        ),
    ],
    ids=[
        "id-number",
        "entity-string",
        "permission-list",
        "depth-word",
        "snap-token-number",
        "context-data-list",
        "context-tuples-object",
        "bulk-item-null",
        "subject-type-list",
        "attributes-object",
        "ids-string",
        "page-size-word",
        "scope-list",
    ],
)
def test_a_field_of_the_wrong_type_is_a_400_naming_its_path(
    ready: httpx.Client, endpoint: str, body: dict[str, Any], field: str
) -> None:
    response = ready.post(f"/v1/tenants/t1/{endpoint}", json=body)
    error = _error(response, 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == [field]
    assert error["message"].startswith(f"{field}: ")


def test_every_wrong_field_is_named_at_once(ready: httpx.Client) -> None:
    body = {"entity": {"type": 1, "id": 2}, "permission": 3, "subject": ALICE}
    error = _error(ready.post("/v1/tenants/t1/permissions/check", json=body), 400)
    assert sorted(_fields(error)) == ["entity.id", "entity.type", "permission"]


def test_unknown_fields_are_ignored(ready: httpx.Client) -> None:
    body = {
        **CHECK,
        "colour": "blue",
        "metadata": {"depth": 5, "trace": True},
        "entity": {**DOC, "kind": "x"},
        "subject": {**ALICE, "extra": [1, 2]},
    }
    response = ready.post("/v1/tenants/t1/permissions/check", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["can"] == "CHECK_RESULT_ALLOWED"
    created = ready.post("/v1/tenants/create", json={"id": "t2", "plan": "gold"})
    assert created.status_code == 200, created.text


def test_camel_case_field_names_are_accepted(ready: httpx.Client) -> None:
    old = ready.post("/v1/tenants/t1/data/write", json={"tuples": []}).json()["snap_token"]
    two = {**OWNER, "entity": {"type": "doc", "id": "2"}}
    ready.post("/v1/tenants/t1/data/write", json={"tuples": [two]})
    lookup = "/v1/tenants/t1/permissions/lookup-entity"
    base = {"entityType": "doc", "permission": "view", "subject": ALICE}

    at_old = ready.post(lookup, json={**base, "metadata": {"snapToken": old}})
    assert at_old.json() == {"entity_ids": ["1"], "continuous_token": ""}

    first = ready.post(lookup, json={**base, "pageSize": 1}).json()
    assert len(first["entity_ids"]) == 1 and first["continuous_token"]
    rest = ready.post(
        lookup, json={**base, "pageSize": 1, "continuousToken": first["continuous_token"]}
    ).json()
    assert sorted(first["entity_ids"] + rest["entity_ids"]) == ["1", "2"]

    read = ready.post(
        "/v1/tenants/t1/data/relationships/read",
        json={"filter": {}, "pageSize": 1, "metadata": {"snapToken": old}},
    ).json()
    assert len(read["tuples"]) == 1 and read["continuous_token"] == ""

    subjects = ready.post(
        "/v1/tenants/t1/permissions/lookup-subject",
        json={"entity": DOC, "permission": "view", "subjectReference": {"type": "user"}},
    )
    assert subjects.json()["subject_ids"] == ["alice"]

    deleted = ready.post(
        "/v1/tenants/t1/data/delete",
        json={"tupleFilter": {"entity": {"type": "doc", "ids": ["2"]}}},
    )
    assert deleted.status_code == 200, deleted.text
    schema_version = ready.post("/v1/tenants/t1/schemas/list", json={}).json()["head"]
    written = ready.post(
        "/v1/tenants/t1/relationships/write",
        json={"metadata": {"schemaVersion": schema_version}, "tuples": [two]},
    )
    assert written.status_code == 200, written.text


DEPTH_BODIES: dict[str, dict[str, Any]] = {
    "permissions/check": CHECK,
    "permissions/bulk-check": {"items": [CHECK]},
    "permissions/lookup-entity": {"entity_type": "doc", "permission": "view", "subject": ALICE},
    "permissions/lookup-entity-stream": {
        "entity_type": "doc",
        "permission": "view",
        "subject": ALICE,
    },
    "permissions/lookup-subject": {
        "entity": DOC,
        "permission": "view",
        "subject_reference": {"type": "user"},
    },
    "permissions/subject-permission": {"entity": DOC, "subject": ALICE},
}


@pytest.mark.parametrize("depth", [2, 0, -1], ids=["two", "zero", "negative"])
@pytest.mark.parametrize("endpoint", list(DEPTH_BODIES))
def test_depth_below_three_is_a_400_naming_metadata_depth(
    ready: httpx.Client, endpoint: str, depth: int
) -> None:
    body = {**DEPTH_BODIES[endpoint], "metadata": {"depth": depth}}
    response = ready.post(f"/v1/tenants/t1/{endpoint}", json=body)
    error = _error(response, 400, "ERROR_CODE_VALIDATION")
    assert _fields(error) == ["metadata.depth"]
    ok = ready.post(f"/v1/tenants/t1/{endpoint}", json={**body, "metadata": {"depth": 3}})
    assert ok.status_code == 200, ok.text


# -- routes and methods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/v1/tenants/t1/nope"),
        ("POST", "/v1/tenants/t1/permissions"),
        ("POST", "/v1/tenants/t1/permissions/check/extra"),
        ("POST", "/v2/tenants/t1/permissions/check"),
        ("POST", "/v1/tenants/t1/schemas/partial"),
    ],
    ids=["root", "nope", "tenant-nope", "prefix", "suffix", "version", "near-miss"],
)
def test_an_unknown_route_is_a_404_in_the_error_shape(
    client: httpx.Client, method: str, path: str
) -> None:
    _error(client.request(method, path, json={}), 404)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/tenants/create"),
        ("PUT", "/v1/tenants/list"),
        ("GET", "/v1/tenants/t1/permissions/check"),
        ("DELETE", "/v1/tenants/t1/data/write"),
        ("POST", "/v1/tenants/t1"),
        ("PATCH", "/v1/tenants/t1"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ],
    ids=[
        "get-create",
        "put-list",
        "get-check",
        "delete-write",
        "post-tenant",
        "patch-tenant",
        "post-health",
        "delete-metrics",
    ],
)
def test_a_wrong_method_is_a_405_in_the_error_shape(
    client: httpx.Client, method: str, path: str
) -> None:
    response = client.request(method, path)
    _error(response, 405)
    assert "Allow" in response.headers
    assert method not in response.headers["Allow"].split(",")


# -- body size ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_and_nothing_is_written(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(max_body_bytes=2048)
    with server.client() as client:
        assert client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}).is_success
        tuples = [{**OWNER, "entity": {"type": "doc", "id": str(i)}} for i in range(40)]
        raw = json.dumps({"tuples": tuples}).encode()
        assert len(raw) > 2048
        _error(client.post("/v1/tenants/t1/data/write", content=raw), 413)
        _error(client.post("/v1/tenants/t1/schemas/write", json={"schema": "#" * 3000}), 413)
        # A check body that has all arrived is taken at once (no read loop), within the limit.
        check = {"entity": DOC, "permission": "view", "subject": ALICE}
        compact = json.dumps(check).encode()
        fits = compact[:-1] + b" " * (2000 - len(compact)) + b"}"
        assert client.post("/v1/tenants/t1/permissions/check", content=fits).is_success
        over = compact[:-1] + b" " * (3000 - len(compact)) + b"}"
        _error(client.post("/v1/tenants/t1/permissions/check", content=over), 413)

        read = client.post("/v1/tenants/t1/data/relationships/read", json={"filter": {}})
        assert read.json()["tuples"] == []
        small = client.post("/v1/tenants/t1/data/write", json={"tuples": tuples[:5]})
        assert small.status_code == 200, small.text
        read = client.post("/v1/tenants/t1/data/relationships/read", json={"filter": {}})
        assert len(read.json()["tuples"]) == 5


# -- bearer keys ----------------------------------------------------------------------------


@pytest.fixture
def keyed(start_server: Callable[..., Server]) -> Server:
    return start_server(preshared_keys=("k1", "k2"))


def _endpoints(server: Server) -> list[tuple[str, str]]:
    """Every (method, path) the server routes, tenant ids filled in."""
    out = []
    for route in server.app.router.routes():
        if route.method in {"HEAD", "*"}:  # "*": the 405 and 404 answers for everything else
            continue
        path = route.resource.canonical if route.resource is not None else ""
        path = path.replace("{tenant_id}", "t1").replace("{id}", "t1")
        path = path.replace("{entity}", "contact:1")
        out.append((route.method, re.sub(r"\{\w+\}", "x", path)))
    return sorted(set(out))


def _unauthorized(response: httpx.Response, reason: str) -> dict[str, Any]:
    """A 401 in the shape of the route's family: the relations layer answers in Strapi's
    envelope, everything else in Permify's."""
    body = response.json()
    if isinstance(body, dict) and body.get("data", "absent") is None and "error" in body:
        assert response.status_code == 401, response.text
        assert body["error"]["name"] == "UnauthorizedError"
        return dict(body["error"])
    return _error(response, 401, reason)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "ERROR_CODE_MISSING_BEARER_TOKEN"),
        ({"Authorization": ""}, "ERROR_CODE_MISSING_BEARER_TOKEN"),
        ({"Authorization": "Bearer wrong"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Bearer k1x"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Bearer k"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Bearer"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Bearer k1,k2"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Basic k1"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "k1"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
        ({"Authorization": "Token k2"}, "ERROR_CODE_INVALID_BEARER_TOKEN"),
    ],
    ids=[
        "none",
        "empty",
        "wrong",
        "longer",
        "shorter",
        "no-key",
        "both-keys",
        "basic",
        "no-scheme",
        "token-scheme",
    ],
)
def test_with_keys_every_endpoint_but_health_needs_one(
    keyed: Server, headers: dict[str, str], reason: str
) -> None:
    endpoints = _endpoints(keyed)
    assert ("GET", "/metrics") in endpoints and ("GET", "/openapi.json") in endpoints
    assert ("POST", "/v1/tenants/t1/permissions/check") in endpoints
    with keyed.client(headers=headers) as client:
        for method, path in endpoints:
            # Open: health probes, the console's page and files (which hold no data; the page
            # sends the key on its API calls: tests/console), and AuthZEN's discovery document
            # (endpoint URLs only).
            if path.startswith(("/healthz", "/console", "/.well-known/authzen-configuration")):
                continue
            response = client.request(method, path, json={} if method == "POST" else None)
            body = _unauthorized(response, reason)
            assert "WWW-Authenticate" in response.headers, (method, path)
            assert "k1" not in body["message"] and "k2" not in body["message"]
        _error(client.post("/no/such/route", json={}), 401, reason)
        _unauthorized(client.get("/xapi2/no/such/route"), reason)
        assert client.get("/healthz").json() == {"status": "SERVING"}
        listed = client.post("/v1/tenants/list", json={})
        assert listed.status_code == 401
    with keyed.client(headers={"Authorization": "Bearer k1"}) as client:
        tenants = client.post("/v1/tenants/list", json={}).json()["tenants"]
        assert [t["id"] for t in tenants] == ["t1"]  # nothing was created or deleted


@pytest.mark.parametrize("key", ["k1", "k2"])
def test_either_configured_key_opens_every_endpoint(keyed: Server, key: str) -> None:
    with keyed.client(headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/openapi.json").json()["paths"]
        assert client.post("/v1/tenants/create", json={"id": f"new-{key}"}).status_code == 200
        assert client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}).is_success
        check = client.post("/v1/tenants/t1/permissions/check", json=CHECK)
        assert check.json()["can"] == "CHECK_RESULT_DENIED"
        _error(client.post("/no/such/route", json={}), 404)
        lower = client.post("/v1/tenants/list", json={}, headers={"Authorization": f"bearer {key}"})
        assert lower.status_code == 200


def test_without_keys_no_header_is_needed(client: httpx.Client) -> None:
    assert client.post("/v1/tenants/list", json={}).status_code == 200
    assert client.get("/metrics").status_code == 200
    other = client.post("/v1/tenants/list", json={}, headers={"Authorization": "Bearer x"})
    assert other.status_code == 200


# -- concurrency limit ----------------------------------------------------------------------


def test_requests_over_the_concurrency_limit_get_429_while_health_answers(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(max_concurrency=1)
    port = int(server.url.rsplit(":", 1)[1])
    with server.client() as other:
        # A request whose body is still arriving holds the only slot (a watch stream would
        # not: streams have a pool of their own).
        with socket.create_connection(("127.0.0.1", port)) as holder:
            holder.sendall(
                b"POST /v1/tenants/list HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
            )
            deadline = time.monotonic() + 10
            while other.post("/v1/tenants/list", json={}).status_code != 429:
                assert time.monotonic() < deadline, "the slow request never held the slot"
                time.sleep(0.02)
            for method, path in [
                ("POST", "/v1/tenants/list"),
                ("POST", "/v1/tenants/t1/schemas/list"),
            ]:
                response = other.request(method, path, json={})
                body = _error(response, 429, "ERROR_CODE_RATE_LIMIT_EXCEEDED")
                assert response.headers["Retry-After"] == "1"
                assert "1" in body["message"]
            assert other.get("/healthz").json() == {"status": "SERVING"}
            assert other.get("/metrics").status_code == 200
        deadline = time.monotonic() + 10
        while True:
            response = other.post("/v1/tenants/list", json={})
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 200, response.text


# -- no 500 for bad input -------------------------------------------------------------------

DOC_ATTRIBUTE = {"entity": DOC, "attribute": "level"}
MALFORMED: list[tuple[str, str, Any, str | None]] = [
    ("check-null-metadata", "permissions/check", {**CHECK, "metadata": None}, "metadata"),
    (
        "check-infinite-depth",
        "permissions/check",
        {**CHECK, "metadata": {"depth": 1e400}},
        "metadata.depth",
    ),
    (
        "check-float-depth",
        "permissions/check",
        {**CHECK, "metadata": {"depth": 3.5}},
        "metadata.depth",
    ),
    (
        "check-bool-depth",
        "permissions/check",
        {**CHECK, "metadata": {"depth": True}},
        "metadata.depth",
    ),
    ("check-bad-snap", "permissions/check", {**CHECK, "metadata": {"snap_token": "AAAA"}}, None),
    (
        "check-unicode-snap",
        "permissions/check",
        {**CHECK, "metadata": {"snap_token": "\u00e9"}},
        None,
    ),
    ("check-no-subject", "permissions/check", {"entity": DOC, "permission": "view"}, "subject"),
    ("check-bad-name", "permissions/check", {**CHECK, "permission": "vi ew"}, "permission"),
    (
        "check-long-id",
        "permissions/check",
        {**CHECK, "entity": {"type": "doc", "id": "x" * 129}},
        "entity.id",
    ),
    (
        "check-nul-id",
        "permissions/check",
        {**CHECK, "entity": {"type": "doc", "id": "a\x00"}},
        "entity.id",
    ),
    (
        "check-unknown-type",
        "permissions/check",
        {**CHECK, "entity": {"type": "nope", "id": "1"}},
        None,
    ),
    ("check-unknown-permission", "permissions/check", {**CHECK, "permission": "nope"}, None),
    (
        "check-context-bad-value",
        "permissions/check",
        {
            **CHECK,
            "context": {
                "attributes": [
                    {
                        **DOC_ATTRIBUTE,
                        "value": {"@type": m.ANY_PREFIX + "IntegerValue", "data": "x"},
                    }
                ]
            },
        },
        "context.attributes[0].value",
    ),
    (
        "check-context-unknown-any",
        "permissions/check",
        {**CHECK, "context": {"attributes": [{**DOC_ATTRIBUTE, "value": {"@type": "x"}}]}},
        "context.attributes[0].value.@type",
    ),
    ("bulk-no-items", "permissions/bulk-check", {"items": []}, "items"),
    ("bulk-too-many", "permissions/bulk-check", {"items": [CHECK] * 101}, "items"),
    ("expand-no-entity", "permissions/expand", {"permission": "view"}, "entity"),
    (
        "lookup-zero-page",
        "permissions/lookup-entity",
        {"entity_type": "doc", "permission": "view", "subject": ALICE, "page_size": 0},
        "page_size",
    ),
    (
        "lookup-bad-token",
        "permissions/lookup-entity",
        {"entity_type": "doc", "permission": "view", "subject": ALICE, "continuous_token": "x"},
        None,
    ),
    (
        "lookup-scope-ids",
        "permissions/lookup-entity",
        {
            "entity_type": "doc",
            "permission": "view",
            "subject": ALICE,
            "scope": {"doc": {"data": [1]}},
        },
        "scope.doc.data[0]",
    ),
    (
        "lookup-subject-bad-relation",
        "permissions/lookup-subject",
        {
            "entity": DOC,
            "permission": "view",
            "subject_reference": {"type": "user", "relation": "a b"},
        },
        "subject_reference.relation",
    ),
    (
        "subject-permission-no-subject",
        "permissions/subject-permission",
        {"entity": DOC},
        "subject",
    ),
    ("write-null-tuples", "data/write", {"tuples": None}, "tuples"),
    (
        "write-tuple-missing-relation",
        "data/write",
        {"tuples": [{"entity": DOC, "subject": ALICE}]},
        "tuples[0].relation",
    ),
    (
        "write-double-overflow",
        "data/write",
        {
            "attributes": [
                {**DOC_ATTRIBUTE, "value": {"@type": m.ANY_PREFIX + "IntegerValue", "data": 1e300}}
            ]
        },
        "attributes[0].value",
    ),
    (
        "write-nested-value",
        "data/write",
        {
            "attributes": [
                {
                    **DOC_ATTRIBUTE,
                    "value": {"@type": m.ANY_PREFIX + "IntegerValue", "data": {"a": 1}},
                }
            ]
        },
        "attributes[0].value",
    ),
    (
        "write-schema-version-junk",
        "data/write",
        {"metadata": {"schema_version": 5}},
        "metadata.schema_version",
    ),
    ("read-filter-list", "data/relationships/read", {"filter": []}, "filter"),
    ("read-huge-page", "data/relationships/read", {"filter": {}, "page_size": 10**20}, "page_size"),
    (
        "attributes-read-bad-name",
        "data/attributes/read",
        {"filter": {"attributes": ["a-b"]}},
        "filter.attributes[0]",
    ),
    ("delete-filter-string", "data/delete", {"tuple_filter": "all"}, "tuple_filter"),
    (
        "relationships-delete-wildcard-type",
        "relationships/delete",
        {"filter": {"entity": {"type": "*"}}},
        "filter.entity.type",
    ),
    ("schema-nul", "schemas/write", {"schema": "\x00"}, "schema"),
    ("schema-lone-surrogate", "schemas/write", {"schema": "entity \ud800 {}"}, "body"),
    (
        "schema-read-version-number",
        "schemas/read",
        {"metadata": {"schema_version": 1}},
        "metadata.schema_version",
    ),
    ("schema-list-negative-page", "schemas/list", {"page_size": -5}, "page_size"),
    ("tenant-create-lone-surrogate", "/v1/tenants/create", {"id": "t\ud800"}, "body"),
    ("tenant-list-token-number", "/v1/tenants/list", {"continuous_token": 5}, "continuous_token"),
]


@pytest.mark.parametrize(
    "endpoint, body, field", [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_bad_input_is_a_400_in_the_error_shape_never_a_500(
    ready: httpx.Client, endpoint: str, body: Any, field: str | None
) -> None:
    path = endpoint if endpoint.startswith("/") else f"/v1/tenants/t1/{endpoint}"
    raw = json.dumps(body).encode()
    response = ready.post(path, content=raw)
    error = _error(response, 400)
    if field is not None:
        assert field in _fields(error)
    tuples = ready.post("/v1/tenants/t1/data/relationships/read", json={"filter": {}}).json()
    assert [t["entity"]["id"] for t in tuples["tuples"]] == ["1"]


def test_a_body_that_never_finishes_gets_408_and_frees_its_slot(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(body_timeout_seconds=0.5, max_concurrency=1)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(
            b"POST /v1/tenants/list HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"page_size\":"
        )
        started = time.monotonic()
        answer = slow.recv(65536).decode()
        assert time.monotonic() - started < 5
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 408"), head
    assert json.loads(body)["details"][0]["reason"] == "ERROR_CODE_VALIDATION"
    # The one request slot is free again.
    with server.client() as client:
        assert client.post("/v1/tenants/list", json={}).status_code == 200
