"""What fuzzing the API against its own OpenAPI document found, kept from coming back: inputs
that were answered with a 500, statuses the document did not list, and places where the
document and the server's validation disagreed (a body the document allows that the server
rejects, or the other way round). Everything runs against a real server."""

from __future__ import annotations

import gzip
import json
import re
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator

from api import models as m
from tests.api.conftest import Server, shaped

TENANT = "fuzz"
T = f"/v1/tenants/{TENANT}"
SCHEMA = """
entity user {}
entity doc {
    relation owner @user
    relation viewer @user
    attribute public boolean
    attribute score double
    attribute scores double[]
    attribute level integer
    permission view = owner or viewer or public
}
"""
ALICE = {"type": "user", "id": "alice"}
DOC = {"type": "doc", "id": "1"}
CHECK = {"entity": DOC, "permission": "view", "subject": ALICE}
OWNER = {"entity": DOC, "relation": "owner", "subject": ALICE}
VALUE = "type.googleapis.com/base.v1."


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        assert c.post("/v1/tenants/create", json={"id": TENANT}).status_code == 200
        assert c.post(f"{T}/schemas/write", json={"schema": SCHEMA}).is_success
        assert c.post(f"{T}/data/write", json={"tuples": [OWNER]}).is_success
        yield c


@pytest.fixture(scope="module")
def document(client: httpx.Client) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _operation(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    return OAS31Validator({**schema, "components": document["components"]})


def _request_validator(document: dict[str, Any], path: str) -> OAS31Validator:
    content = _operation(document, path)["requestBody"]["content"]["application/json"]
    return _validator(document, content["schema"])


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = shaped(m.ErrorResponse, response.json())
    return body


def _documented(document: dict[str, Any], path: str, response: httpx.Response) -> None:
    """The response's status is listed for the operation, and its body fits that entry."""
    entry = _operation(document, path)["responses"].get(str(response.status_code))
    assert entry is not None, f"{response.status_code} is not documented for {path}"
    [(media, content)] = entry["content"].items()
    assert response.headers["Content-Type"].startswith(media)
    _validator(document, content["schema"]).validate(response.json())


def _attribute(kind: str, data: Any, name: str = "score") -> dict[str, Any]:
    return {"entity": DOC, "attribute": name, "value": {"@type": VALUE + kind, "data": data}}


def _raw(value: str) -> str:
    """A JSON body that holds ``value`` as a number literal, which json.dumps cannot write."""
    return json.dumps({"attributes": [_attribute("DoubleValue", "@")]}).replace('"@"', value)


# -- 500s --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("data/write", _raw("1" + "0" * 400)),
        ("data/write", _raw("-1" + "0" * 400)),
        (
            "data/write",
            json.dumps({"attributes": [_attribute("DoubleArrayValue", ["@"], "scores")]}).replace(
                '"@"', "1" + "0" * 400
            ),
        ),
        (
            "permissions/check",
            json.dumps(
                {**CHECK, "context": {"attributes": [_attribute("DoubleValue", "@")]}}
            ).replace('"@"', "1" + "0" * 400),
        ),
    ],
    ids=["write-double", "write-negative-double", "write-double-array", "check-context-double"],
)
def test_an_integer_literal_past_the_double_range_is_an_infinite_double_not_a_500(
    client: httpx.Client, endpoint: str, body: str
) -> None:
    response = client.post(f"{T}/{endpoint}", content=body)
    assert response.status_code == 200, response.text


def test_an_integer_past_the_double_range_reads_back_as_infinity(client: httpx.Client) -> None:
    body = _raw("-1" + "0" * 400).replace('"id": "1"', '"id": "huge"')
    token = client.post(f"{T}/data/write", content=body).json()["snap_token"]
    read = client.post(
        f"{T}/data/attributes/read",
        json={"metadata": {"snap_token": token}, "filter": {"entity": {"ids": ["huge"]}}},
    ).json()
    assert [a["value"]["data"] for a in read["attributes"]] == ["-Infinity"]


# -- request bodies: Content-Encoding ------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("identity", lambda b: b),
    ],
    ids=["gzip", "deflate", "gzip-twice", "identity"],
)
def test_an_encoded_body_is_decoded(
    client: httpx.Client, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = encode(json.dumps(CHECK).encode())
    response = client.post(
        f"{T}/permissions/check", content=body, headers={"Content-Encoding": encoding}
    )
    assert response.status_code == 200, response.text
    assert response.json()["can"] == m.CHECK_ALLOWED


@pytest.mark.parametrize(
    ("encoding", "body", "status"),
    [
        ("gzip", b"\x1f\x8bnot gzip", 400),
        ("gzip", json.dumps(CHECK).encode(), 400),
        ("gzip", gzip.compress(json.dumps(CHECK).encode())[:-12], 400),
        ("gzip", gzip.compress(json.dumps(CHECK).encode()) + b"junk", 400),
        ("deflate", b"not deflate", 400),
        ("br", json.dumps(CHECK).encode(), 415),
        ("zstd", json.dumps(CHECK).encode(), 415),
        ("x-unknown", json.dumps(CHECK).encode(), 415),
    ],
    ids=[
        "gzip-bad-header",
        "gzip-plain-json",
        "gzip-cut-short",
        "gzip-trailing-junk",
        "deflate-garbage",
        "brotli",
        "zstd",
        "unknown",
    ],
)
def test_a_body_that_does_not_decode_is_a_documented_error_not_a_500(
    client: httpx.Client, document: dict[str, Any], encoding: str, body: bytes, status: int
) -> None:
    response = client.post(
        f"{T}/permissions/check", content=body, headers={"Content-Encoding": encoding}
    )
    _error(response, status)
    _documented(document, "/v1/tenants/{tenant_id}/permissions/check", response)
    assert client.get("/healthz").status_code == 200


def test_a_compressed_body_over_the_limit_once_decoded_is_a_413(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(max_body_bytes=2048)
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in about 64 KiB
    with server.client() as c:
        for encoding in ("gzip", "gzip, identity"):
            response = c.post(
                "/v1/tenants/t1/permissions/check",
                content=bomb,
                headers={"Content-Encoding": encoding},
            )
            assert "2048" in _error(response, 413)["message"]
        small = gzip.compress(json.dumps({"id": "small"}).encode())
        created = c.post("/v1/tenants/create", content=small, headers={"Content-Encoding": "gzip"})
        assert created.status_code == 200, created.text


# -- the document says what the server validates ---------------------------------------------------

CHECK_PATH = "/v1/tenants/{tenant_id}/permissions/check"
AGREEMENT: list[tuple[str, str, dict[str, Any]]] = [
    ("tenants/list", "/v1/tenants/list", {"page_size": 5.0}),
    ("tenants/list", "/v1/tenants/list", {"page_size": "5"}),
    ("tenants/list", "/v1/tenants/list", {"page_size": True}),
    ("tenants/list", "/v1/tenants/list", {"page_size": 5.5}),
    ("tenants/list", "/v1/tenants/list", {"page_size": 2**64}),
    ("check", CHECK_PATH, {**CHECK, "metadata": {"depth": 50.0}}),
    ("check", CHECK_PATH, {**CHECK, "metadata": {"depth": "50"}}),
    ("check", CHECK_PATH, {**CHECK, "metadata": {"depth": 2**63}}),
    (
        "subject-permission",
        "/v1/tenants/{tenant_id}/permissions/subject-permission",
        {"entity": DOC, "subject": ALICE, "metadata": {"only_permission": "yes"}},
    ),
    (
        "subject-permission",
        "/v1/tenants/{tenant_id}/permissions/subject-permission",
        {"entity": DOC, "subject": ALICE, "metadata": {"only_permission": 1}},
    ),
    ("check", CHECK_PATH, {**CHECK, "metadata": None}),
    ("tenants/create", "/v1/tenants/create", {"id": "."}),
    ("tenants/create", "/v1/tenants/create", {"id": ".."}),
    ("relationships/delete", "/v1/tenants/{tenant_id}/relationships/delete", {"filter": {}}),
    (
        "relationships/delete",
        "/v1/tenants/{tenant_id}/relationships/delete",
        {"filter": {"entity": {"type": "", "ids": []}, "subject": {"relation": ""}}},
    ),
    (
        "relationships/delete",
        "/v1/tenants/{tenant_id}/relationships/delete",
        {"filter": {"entity": {"ids": ["nothing-here"]}}},
    ),
    ("data/delete", "/v1/tenants/{tenant_id}/data/delete", {}),
    (
        "data/delete",
        "/v1/tenants/{tenant_id}/data/delete",
        {"tuple_filter": {}, "attribute_filter": {"entity": {}}},
    ),
    (
        "data/delete",
        "/v1/tenants/{tenant_id}/data/delete",
        {"attribute_filter": {"attributes": ["level"], "entity": {"ids": ["nothing-here"]}}},
    ),
    (
        "bundle/write",
        "/v1/tenants/{tenant_id}/bundle/write",
        {"bundles": [{"name": "b", "operations": [{"relationships_write": [""]}]}]},
    ),
]
VALUES: list[tuple[str, Any, str]] = [
    ("IntegerValue", 7, "level"),
    ("IntegerValue", 7.0, "level"),
    ("IntegerValue", "7", "level"),
    ("IntegerValue", "-2147483648", "level"),
    ("IntegerValue", "2147483647", "level"),
    ("IntegerValue", "2147483648", "level"),
    ("IntegerValue", 2**31, "level"),
    ("IntegerValue", " 7", "level"),
    ("IntegerValue", "+7", "level"),
    ("IntegerValue", "1_000", "level"),
    ("IntegerValue", "007", "level"),
    ("IntegerValue", "\u0661", "level"),
    ("IntegerValue", True, "level"),
    ("IntegerValue", None, "level"),
    ("IntegerArrayValue", [1, "2"], "level"),
    ("DoubleValue", 1.5, "score"),
    ("DoubleValue", "NaN", "score"),
    ("DoubleValue", "-Infinity", "score"),
    ("DoubleValue", "1.5", "score"),
    ("DoubleValue", False, "score"),
    ("DoubleArrayValue", [1, 2.5, "Infinity"], "scores"),
    ("BooleanValue", True, "public"),
    ("BooleanValue", "true", "public"),
    ("BooleanValue", 0, "public"),
    ("BooleanArrayValue", [True], "public"),
    ("StringValue", "x", "public"),
    ("StringValue", 5, "public"),
    ("StringArrayValue", "x", "public"),
    ("NoSuchValue", 1, "public"),
    ("", 1, "public"),
]


@pytest.mark.parametrize(
    ("endpoint", "path", "body"),
    AGREEMENT,
    ids=[
        "integral-float-page-size",
        "string-page-size",
        "bool-page-size",
        "fractional-page-size",
        "huge-page-size",
        "integral-float-depth",
        "string-depth",
        "huge-depth",
        "word-bool",
        "number-bool",
        "null-metadata",
        "dot-tenant",
        "dot-dot-tenant",
        "empty-filter",
        "filter-of-empty-values",
        "filter-by-id",
        "no-filters",
        "empty-filters",
        "attribute-filter",
        "empty-template",
    ],
)
def test_the_document_accepts_exactly_the_bodies_the_server_accepts(
    client: httpx.Client, document: dict[str, Any], endpoint: str, path: str, body: Any
) -> None:
    response = client.post(path.replace("{tenant_id}", TENANT), json=body)
    assert response.status_code != 500, response.text
    valid = _request_validator(document, path).is_valid(body)
    assert valid == (response.status_code == 200), (valid, response.text)
    _documented(document, path, response)


@pytest.mark.parametrize(
    ("kind", "data", "attribute"),
    VALUES,
    ids=[f"{kind or 'empty'}-{data!r}" for kind, data, _ in VALUES],
)
def test_the_document_says_which_attribute_values_each_type_takes(
    client: httpx.Client, document: dict[str, Any], kind: str, data: Any, attribute: str
) -> None:
    body = {"attributes": [_attribute(kind, data, attribute)]}
    response = client.post(f"{T}/data/write", json=body)
    valid = _request_validator(document, "/v1/tenants/{tenant_id}/data/write").is_valid(body)
    # A value of the wrong type for its attribute (a string for `public`) is the schema's 400.
    reason = response.json().get("details", [{}])[0].get("reason")
    accepted = response.status_code == 200 or reason == "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH"
    assert valid == accepted, (valid, response.text)


def test_a_request_body_is_documented_as_required_exactly_where_no_body_is_refused(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if "requestBody" not in operation or "/watch" in path:
                continue
            url = path.replace("{tenant_id}", TENANT).replace("{entity}", "doc:1")
            url = re.sub(r"\{\w+\}", "x", url)
            response = client.request(method.upper(), url)
            if response.status_code == 404:  # a relations-layer resource: found before a body
                assert "relation" in path or "token" in path or "xapi2" in path, path
                continue
            refused = response.status_code == 400
            assert operation["requestBody"]["required"] == refused, (path, response.text)


@pytest.mark.parametrize(
    ("tenant", "status"),
    [("nobody", 404), ("a" * 128, 404), ("a" * 129, 400), ("bad%20id", 400), ("%00", 400)],
    ids=["unknown", "longest", "too-long", "space", "nul"],
)
def test_the_path_tenant_pattern_is_documented(
    client: httpx.Client, document: dict[str, Any], tenant: str, status: int
) -> None:
    [parameter] = _operation(document, CHECK_PATH)["parameters"]
    matches = _validator(document, parameter["schema"]).is_valid(httpx.URL(f"/{tenant}").path[1:])
    response = client.post(f"/v1/tenants/{tenant}/permissions/check", json=CHECK)
    _error(response, status)
    assert matches == (status != 400)
    _documented(document, CHECK_PATH, response)


def test_creating_a_tenant_twice_is_a_documented_409(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    assert client.post("/v1/tenants/create", json={"id": "twice"}).status_code == 200
    response = client.post("/v1/tenants/create", json={"id": "twice"})
    _error(response, 409)
    _documented(document, "/v1/tenants/create", response)


#: The relations layer's paths without a tenant (the API token's tenant): relations routes too.
RELATIONS_BARE = ("/relationship-types", "/relationships", "/custom-objects/")


def test_every_v1_operation_documents_the_shutdown_503(document: dict[str, Any]) -> None:
    for path, methods in document["paths"].items():
        for operation in methods.values():
            assert ("503" in operation["responses"]) == (
                path.startswith(("/v1/", "/xapi2/", "/core/", *RELATIONS_BARE))
                or path == "/healthz"
            ), path
    health = _operation(document, "/healthz", "get")["responses"]["503"]["content"]
    _validator(document, health["application/json"]["schema"]).validate({"status": "NOT_SERVING"})


def test_the_document_requires_a_key_exactly_when_the_server_has_keys(
    start_server: Callable[..., Server], document: dict[str, Any]
) -> None:
    assert {} in document["security"]  # the module's server has no keys
    keyed = start_server(preshared_keys=("k",))
    with keyed.client() as anonymous, keyed.client(headers={"Authorization": "Bearer k"}) as c:
        keyed_document = c.get("/openapi.json").json()
        assert keyed_document["security"] == [{"bearer": []}]
        response = anonymous.post("/v1/tenants/t1/permissions/check", json=CHECK)
    _error(response, 401)
    _documented(keyed_document, CHECK_PATH, response)


# -- streams -----------------------------------------------------------------------------------


def test_a_watch_stream_that_fails_ends_with_a_documented_error_line(
    client: httpx.Client, module_server: Server, document: dict[str, Any]
) -> None:
    assert client.post("/v1/tenants/create", json={"id": "doomed"}).status_code == 200
    path = "/v1/tenants/{tenant_id}/watch"
    content = _operation(document, path)["responses"]["200"]["content"]["application/x-ndjson"]
    validator = _validator(document, content["schema"])
    with (
        module_server.client() as other,
        client.stream("POST", "/v1/tenants/doomed/watch", json={}) as stream,
    ):
        assert stream.status_code == 200
        assert other.delete("/v1/tenants/doomed").status_code == 200
        lines = [json.loads(line) for line in stream.iter_lines() if line]
    assert lines and "error" in lines[-1]
    for line in lines:
        validator.validate(line)
    result = {"result": {"entity_id": "1", "continuous_token": "x"}}
    stream_path = "/v1/tenants/{tenant_id}/permissions/lookup-entity-stream"
    lookup = _operation(document, stream_path)["responses"]["200"]["content"]
    _validator(document, lookup["application/x-ndjson"]["schema"]).validate(result)


def test_clients_that_leave_a_lookup_stream_early_leave_the_server_answering(
    client: httpx.Client, module_server: Server
) -> None:
    tuples = [{**OWNER, "entity": {"type": "doc", "id": f"s{i}"}} for i in range(600)]
    assert client.post(f"{T}/data/write", json={"tuples": tuples}).is_success
    body = json.dumps({"entity_type": "doc", "permission": "view", "subject": ALICE}).encode()
    request = (
        f"POST {T}/permissions/lookup-entity-stream HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    host, port = module_server.url.removeprefix("http://").split(":")
    for reset in (False, True) * 5:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            if reset:  # close with a TCP RST rather than a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(request)
            if not reset:
                assert sock.recv(12).startswith(b"HTTP/1.1 200")
    with client.stream("POST", f"{T}/permissions/lookup-entity-stream", content=body) as stream:
        ids = [json.loads(line)["result"]["entity_id"] for line in stream.iter_lines() if line]
    assert {f"s{i}" for i in range(600)} <= set(ids)
    assert client.get("/healthz").status_code == 200


# -- hostile JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"entity":{"type":"doc","id":"\\ud800"},"permission":"view","subject":'
        b'{"type":"user","id":"a"}}',
        b'{"\\udc00":1}',
        b'{"context":{"data":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}}",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"entity":{"type":"doc","id":"\xff"}}',
        b"\xef\xbb\xbf{}",
        b'{"metadata":{"depth":NaN}}',
    ],
    ids=["lone-surrogate", "surrogate-key", "deep-array", "deep-object", "not-utf8", "bom", "nan"],
)
def test_hostile_json_is_a_400_and_the_server_keeps_answering(
    client: httpx.Client, raw: bytes
) -> None:
    _error(client.post(f"{T}/permissions/check", content=raw), 400)
    assert client.post(f"{T}/permissions/check", json=CHECK).status_code == 200
