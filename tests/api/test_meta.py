"""Health, Prometheus metrics, the OpenAPI document and the docs page, on a real server."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from api import models as m
from engine import bundles
from engine.relations.model import split_ref
from tests.api.conftest import Server, shaped
from tests.api.relations_support import CONTACT_SCHEMA as CONTACTS
from tests.api.relations_support import register

SCHEMA = "entity user {}\nentity doc {\n    relation owner @user\n    permission edit = owner\n}\n"
CHECK = {
    "entity": {"type": "doc", "id": "1"},
    "permission": "edit",
    "subject": {"type": "user", "id": "alice"},
}
REQUESTS_TOTAL = "stonetown_http_requests_total"
CHECKS_TOTAL = "stonetown_checks_total"


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def tenant(client: httpx.Client) -> str:
    assert client.post("/v1/tenants/create", json={"id": "meta"}).status_code == 200
    assert client.post("/v1/tenants/meta/schemas/write", json={"schema": SCHEMA}).is_success
    owner = {"entity": CHECK["entity"], "relation": "owner", "subject": CHECK["subject"]}
    assert client.post("/v1/tenants/meta/data/write", json={"tuples": [owner]}).is_success
    return "meta"


@pytest.fixture(scope="module")
def document(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


# -- health ------------------------------------------------------------------------------------


def test_health_is_serving(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert shaped(m.HealthResponse, response.json()) == {"status": "SERVING"}


def test_health_needs_no_key_when_keys_are_configured(start_server: Callable[..., Server]) -> None:
    server = start_server(preshared_keys=("secret-key",))
    with server.client() as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "SERVING"}
        for path in ("/metrics", "/openapi.json", "/docs"):  # everything else needs the key
            assert anonymous.get(path).status_code == 401, path
    with server.client(headers={"Authorization": "Bearer secret-key"}) as keyed:
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
            assert keyed.get(path).status_code == 200, path


# -- metrics -----------------------------------------------------------------------------------


def scrape(client: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def requests_counted(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], route: str, status: int
) -> float:
    labels = frozenset({("route", route), ("method", "POST"), ("status", str(status))})
    return samples.get((REQUESTS_TOTAL, labels), 0.0)


def test_metrics_count_requests_by_route_and_status(client: httpx.Client, tenant: str) -> None:
    route = "/v1/tenants/{tenant_id}/permissions/check"
    before = scrape(client)
    for _ in range(3):
        assert client.post(f"/v1/tenants/{tenant}/permissions/check", json=CHECK).is_success
    bad = {**CHECK, "permission": "nope"}
    assert client.post(f"/v1/tenants/{tenant}/permissions/check", json=bad).status_code == 400
    missing = client.post("/v1/tenants/nobody/permissions/check", json=CHECK)
    assert missing.status_code == 404
    after = scrape(client)
    assert requests_counted(after, route, 200) - requests_counted(before, route, 200) == 3
    assert requests_counted(after, route, 400) - requests_counted(before, route, 400) == 1
    assert requests_counted(after, route, 404) - requests_counted(before, route, 404) == 1


def test_metrics_count_unmatched_paths_under_one_label(client: httpx.Client) -> None:
    before = scrape(client)
    for path in ("/nope/1", "/nope/2"):
        assert client.post(path).status_code == 404
    after = scrape(client)
    counted = requests_counted(after, "unmatched", 404) - requests_counted(before, "unmatched", 404)
    assert counted == 2
    assert not any("/nope/" in dict(labels).get("route", "") for _, labels in after)


def test_metrics_count_checks_by_result(client: httpx.Client, tenant: str) -> None:
    def checks(samples: dict[Any, float], result: str) -> float:
        return samples.get((CHECKS_TOTAL, frozenset({("result", result)})), 0.0)

    before = scrape(client)
    denied = {**CHECK, "subject": {"type": "user", "id": "bob"}}
    assert client.post(f"/v1/tenants/{tenant}/permissions/check", json=CHECK).is_success
    bulk = {"items": [CHECK, denied, denied, {**CHECK, "permission": "nope"}]}
    assert client.post(f"/v1/tenants/{tenant}/permissions/bulk-check", json=bulk).is_success
    after = scrape(client)
    assert checks(after, "allowed") - checks(before, "allowed") == 2
    assert checks(after, "denied") - checks(before, "denied") == 2
    assert checks(after, "error") - checks(before, "error") == 1


def test_metrics_expose_latency_and_in_flight(client: httpx.Client) -> None:
    samples = scrape(client)
    names = {name for name, _ in samples}
    assert "stonetown_http_request_duration_seconds_bucket" in names
    assert "stonetown_http_requests_in_flight" in names
    # the scrape itself is the one request in flight
    assert samples[("stonetown_http_requests_in_flight", frozenset())] == 1.0


# -- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def served_routes(server: Server) -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for route in server.app.router.routes()
        # "*" routes answer 405 (known paths, other methods) and 404 (other paths).
        if route.resource is not None and route.method != "*"
    }


def test_openapi_lists_every_route_the_app_serves(
    module_server: Server, document: dict[str, Any]
) -> None:
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == served_routes(module_server)


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    return dict(document["components"]["schemas"][ref.removeprefix(prefix)])


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def test_openapi_every_operation_has_its_request_and_response_schemas(
    document: dict[str, Any],
) -> None:
    for method, path, op in operations(document):
        where = f"{method.upper()} {path}"
        assert op["summary"], where
        if method == "post":
            content = op["requestBody"]["content"]["application/json"]
            assert resolve(document, content["schema"]).get("properties"), where
        [success] = [code for code in op["responses"] if code.startswith("2")]
        ok = op["responses"][success]
        if method == "head" or success == "204":
            assert "content" not in ok, where
            continue
        [(media, body)] = ok["content"].items()
        assert resolve(document, body["schema"]), where
        if media in ("application/json", "application/x-ndjson") and path != "/openapi.json":
            assert resolve(document, body["schema"]).get("properties"), where
        error = op["responses"].get("400", {}).get("content", {}).get("application/json", {})
        if "relations" in op["tags"]:
            assert set(resolve(document, error["schema"])["properties"]) == {"data", "error"}
        elif path.startswith("/v1/"):
            assert set(resolve(document, error["schema"])["properties"]) == {
                "code",
                "message",
                "details",
            }


def test_openapi_describes_each_path_parameter(document: dict[str, Any]) -> None:
    for _, path, op in operations(document):
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == names, path


def test_openapi_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))


def test_openapi_health_needs_no_key_and_others_may(document: dict[str, Any]) -> None:
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]
    check = document["paths"]["/v1/tenants/{tenant_id}/permissions/check"]["post"]
    assert "security" not in check  # the document's default: a bearer key when configured
    assert "401" in check["responses"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def response_schema(document: dict[str, Any], path: str, method: str = "post") -> Any:
    content = document["paths"][path][method]["responses"]["200"]["content"]
    [body] = content.values()
    return {**body["schema"], "components": document["components"]}


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        pytest.param("/v1/tenants/{tenant_id}/permissions/check", "post", CHECK, id="check"),
        pytest.param(
            "/v1/tenants/{tenant_id}/permissions/lookup-entity",
            "post",
            {"entity_type": "doc", "permission": "edit", "subject": CHECK["subject"]},
            id="lookup_entity",
        ),
        pytest.param("/v1/tenants/{tenant_id}/schemas/read", "post", {}, id="schema_read"),
        pytest.param("/v1/tenants/list", "post", {}, id="tenant_list"),
        pytest.param("/healthz", "get", None, id="health"),
    ],
)
def test_real_responses_match_the_documented_schemas(
    client: httpx.Client,
    tenant: str,
    document: dict[str, Any],
    path: str,
    method: str,
    body: Any,
) -> None:
    url = path.replace("{tenant_id}", tenant)
    response = client.request(method.upper(), url, json=body)
    assert response.status_code == 200, response.text
    OAS31Validator(response_schema(document, path, method)).validate(response.json())


def test_real_error_bodies_match_the_documented_schema(
    client: httpx.Client, document: dict[str, Any]
) -> None:
    path = "/v1/tenants/{tenant_id}/permissions/check"
    response = client.post("/v1/tenants/nobody/permissions/check", json=CHECK)
    assert response.status_code == 404
    schema = document["paths"][path]["post"]["responses"]["404"]["content"]["application/json"]
    OAS31Validator({**schema["schema"], "components": document["components"]}).validate(
        response.json()
    )


def test_docs_page_mentions_every_path(client: httpx.Client, document: dict[str, Any]) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    for method, path, op in operations(document):
        assert html.escape(path) in page, path
        assert html.escape(op["summary"]) in page, f"{method} {path}"
    assert "<script" not in page.lower()  # works offline


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/tenants/list", {}),
        (
            "POST",
            "/v1/tenants/t1/permissions/lookup-entity-stream",
            {"entity_type": "doc", "permission": "viewer", "subject": {"type": "user", "id": "u"}},
        ),
        ("POST", "/v1/tenants/t1/watch", {}),
    ],
    ids=["json", "lookup-stream", "watch"],
)
def test_every_response_carries_the_request_id(
    client: httpx.Client, method: str, path: str, body: dict[str, Any]
) -> None:
    client.post(
        "/v1/tenants/t1/schemas/write",
        json={"schema": "entity user {}\nentity doc { relation viewer @user }"},
    ).raise_for_status()
    for sent in ({"X-Request-Id": "req-42"}, {}):
        with client.stream(method, path, json=body, headers=sent, timeout=10) as response:
            assert response.status_code == 200
            got = response.headers.get("X-Request-Id", "")
        assert got == "req-42" if sent else got


# -- what the document says about requests, against what the server does ------------------------

ENTITY_RELATIONS = "/v1/tenants/{tenant_id}/entities/{entity}/relations"


@pytest.mark.parametrize(
    "ref",
    [
        "contact:1",
        "doc:a:b",
        "a_1:" + "x" * 128,
        "contact:",
        ":1",
        "Contact:1",
        "contact 1",
        "1a:1",
    ],
    ids=["plain", "colon-in-id", "longest-id", "no-id", "no-type", "upper", "space", "digit"],
)
def test_openapi_entity_parameter_is_the_type_id_the_handlers_read(
    document: dict[str, Any], ref: str
) -> None:
    parameters = document["paths"][ENTITY_RELATIONS]["get"]["parameters"]
    [entity] = [p for p in parameters if p["name"] == "entity"]
    matches = OAS31Validator(entity["schema"]).is_valid(ref)
    assert matches == (split_ref(ref) is not None)


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("doc:1#owner@user:2", "relationships_write"),
        ("doc:a@b#owner@user:c:d#member", "relationships_delete"),
        ("doc:{{.id}}#owner@user:{{ .user }}", "relationships_write"),
        ("  doc:*#owner@user:1#...  ", "relationships_write"),
        ("doc:1$public|boolean:true", "attributes_write"),
        ("doc:1$score|double[]:1.5,-Inf,{{.more}}", "attributes_write"),
        ("doc:1$n|integer:-2147483648", "attributes_write"),
        ("doc:1$n|{{.type}}:anything", "attributes_write"),
        ("doc:1$public", "attributes_delete"),
        ("doc:1$public|boolean:t", "attributes_delete"),
        ("doc:1#owner@user", "relationships_write"),
        ("doc:1#owner@user:1#", "relationships_write"),
        ("doc:{{.ref}}@user:1", "relationships_write"),
        ("do c:1#owner@user:1", "relationships_write"),
        ("doc:1#owner@user:1{{.a", "relationships_write"),
        ("doc:1#owner@user:{{.a | b}}", "relationships_write"),
        ("doc:1$n|integer:2147483648", "attributes_write"),
        ("doc:1$n|integer:1.5", "attributes_write"),
        ("doc:1$public|bool:true", "attributes_write"),
        ("doc:1$public", "attributes_write"),
        ("   ", "attributes_delete"),
    ],
)
def test_openapi_bundle_string_patterns_are_the_forms_the_engine_reads(
    document: dict[str, Any], text: str, form: str
) -> None:
    operation = document["components"]["schemas"]["BundleOperationIn"]
    pattern = operation["properties"][form]["items"]["pattern"]
    assert pattern == m.BUNDLE_FORMS[form]
    try:
        bundles.parse_item(text, bundles.FORMS[form])
        parsed = True
    except ValueError:
        parsed = False
    assert OAS31Validator(operation["properties"][form]["items"]).is_valid(text) == parsed


@pytest.fixture(scope="module")
def relations(client: httpx.Client, module_server: Server) -> dict[str, str]:
    """A tenant for the relations routes (contact with a relation per record kind and `knows`)
    and one for its settings, with the id of the registered `knows` type."""
    ids = {}
    for tenant in ("metarel", "metasettings"):
        assert client.post("/v1/tenants/create", json={"id": tenant}).status_code == 200
        written = client.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": CONTACTS})
        assert written.status_code == 200, written.text
    ids["knows"] = register(module_server, "metarel", "contact", "knows", "contact")
    return ids


TOKENS = "/v1/tenants/metarel/tokens"
TYPES = "/v1/tenants/metarel/relationship-types"
LINKS = "/v1/tenants/metarel/relationships"
RECORDS = "/v1/tenants/metarel/xapi2/data/relationship"
SETTINGS = "/v1/tenants/metasettings/relations/settings"
RELATE = "/v1/tenants/metarel/entities/contact:1/relations"
KNOWS = {"kind": "co_to_co", "role": "knows"} | {
    "parentCustomObjectType": "contact",
    "childCustomObjectType": "contact",
}
RELATIONS_BODIES = [
    ("POST", TOKENS, {"name": "ci", "scopes": ["relationship:read"]}, True),
    (
        "POST",
        TOKENS,
        {"name": "ci", "scopes": ["*"], "subject": "user:1", "expires_at": "2999-01-01T00:00:00Z"},
        True,
    ),
    ("POST", TOKENS, {"scopes": ["*"]}, False),
    ("POST", TOKENS, {"name": "ci"}, False),
    ("POST", TOKENS, {"name": "ci", "scopes": []}, False),
    ("POST", TOKENS, {"name": "ci", "scopes": ["relationship:nope"]}, False),
    ("POST", TOKENS, {"name": "", "scopes": ["*"]}, False),
    ("POST", TOKENS, {"name": "ci", "scopes": ["*"], "subject": "User:1"}, False),
    ("POST", TOKENS, {"name": "ci", "scopes": ["*"], "expires_at": "tomorrow"}, False),
    ("POST", TYPES, KNOWS, True),
    ("POST", TYPES, KNOWS | {"cardinality": None, "description": "who knows whom"}, True),
    ("POST", TYPES, {k: v for k, v in KNOWS.items() if k != "kind"}, False),
    ("POST", TYPES, {k: v for k, v in KNOWS.items() if k != "role"}, False),
    ("POST", TYPES, {k: v for k, v in KNOWS.items() if k != "childCustomObjectType"}, False),
    ("POST", TYPES, KNOWS | {"customObjectType": "contact"}, False),
    ("POST", TYPES, KNOWS | {"inverseRole": "known_by"}, False),
    ("POST", TYPES, KNOWS | {"bidirectional": None}, False),
    ("POST", TYPES, KNOWS | {"description": ""}, False),
    ("POST", TYPES, KNOWS | {"cardinality": "SOME"}, False),
    ("POST", LINKS, {"relationshipTypeId": "{knows}", "sourceId": "5", "targetId": "6"}, True),
    (
        "POST",
        LINKS,
        {"relationshipTypeId": "{knows}", "sourceId": "contact:7", "targetId": "8"},
        True,
    ),
    ("POST", LINKS, {"relationshipTypeId": "{knows}", "targetId": "6"}, False),
    ("POST", LINKS, {"relationshipTypeId": "{knows}", "sourceId": "a b", "targetId": "6"}, False),
    ("POST", LINKS, {"relationshipTypeId": "{knows}", "sourceId": "5", "targetId": ""}, False),
    ("POST", RECORDS, {"kind": "friend", "parent_id": "a", "target_id": "b"}, True),
    ("POST", RECORDS, {"kind": "friend", "parent_id": "a", "target_id": "c", "label": None}, True),
    ("POST", RECORDS, {"parent_id": "a", "target_id": "d"}, False),
    ("POST", RECORDS, {"kind": "friend", "parent_id": "", "target_id": "e"}, False),
    ("POST", RECORDS, {"kind": "friend", "parent_id": "a b", "target_id": "e"}, False),
    ("POST", RECORDS, {"kind": "friend", "parent_id": "a" * 65, "target_id": "e"}, False),
    (
        "POST",
        RECORDS,
        {"kind": "friend", "parent_id": "a", "target_id": "f", "since": "1" * 33},
        False,
    ),
    ("POST", RELATE, {"target_entity_id": "contact:2", "relation_type": "knows"}, True),
    ("POST", RELATE, {"relation_type": "knows"}, False),
    ("POST", RELATE, {"target_entity_id": "contact a", "relation_type": "knows"}, False),
    ("POST", RELATE, {"target_entity_id": "contact:3", "relation_type": "Knows"}, False),
    (
        "POST",
        RELATE,
        {"target_entity_id": "contact:3", "relation_type": "knows", "metadata": 1},
        False,
    ),
    (
        "POST",
        RELATE,
        {"target_entity_id": "contact:3", "relation_type": "knows", "metadata": {"label": 5}},
        False,
    ),
    ("PUT", RELATE, {"data": {}}, True),
    (
        "PUT",
        RELATE,
        {"data": {"knows": {"connect": [{"id": "contact:4", "position": {"end": True}}]}}},
        True,
    ),
    ("PUT", RELATE, {}, False),
    ("PUT", RELATE, {"data": []}, False),
    ("PUT", RELATE, {"data": {"knows": True}}, False),
    ("PUT", RELATE, {"data": {"knows": {"set": ["contact:5"], "connect": ["contact:6"]}}}, False),
    ("PUT", RELATE, {"data": {"knows": {"bogus": []}}}, False),
    (
        "PUT",
        RELATE,
        {"data": {"knows": {"disconnect": [{"id": "contact:4", "position": {"end": True}}]}}},
        False,
    ),
    (
        "PUT",
        RELATE,
        {"data": {"knows": {"connect": [{"id": "contact:4", "position": {"start": False}}]}}},
        False,
    ),
    ("PUT", SETTINGS, {}, True),
    ("PUT", SETTINGS, {"person_type": "person", "data_model": {"kinds": {"a": "a"}}}, True),
    ("PUT", SETTINGS, {"person_type": "Person"}, False),
    ("PUT", SETTINGS, {"require_schema_relation": 1}, False),
    ("PUT", SETTINGS, {"read_permission": ""}, False),
    ("PUT", SETTINGS, {"data_model": {"kinds": {}}}, False),
    ("PUT", SETTINGS, {"data_model": {"mirror_hook": "other"}}, False),
]


@pytest.mark.parametrize(("method", "url", "body", "valid"), RELATIONS_BODIES)
def test_openapi_relations_bodies_say_what_the_handlers_refuse(
    client: httpx.Client,
    document: dict[str, Any],
    relations: dict[str, str],
    method: str,
    url: str,
    body: dict[str, Any],
    valid: bool,
) -> None:
    path = re.sub(
        r"/v1/tenants/\w+/", "/v1/tenants/{tenant_id}/", url.replace("contact:1", "{entity}")
    )
    schema = document["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]
    body = json.loads(json.dumps(body).replace('"{knows}"', json.dumps(relations["knows"])))
    checker = OAS31Validator.FORMAT_CHECKER
    assert OAS31Validator(schema["schema"], format_checker=checker).is_valid(body) == valid
    response = client.request(method, url, json=body)
    assert (response.status_code == 400) != valid, response.text
    assert response.status_code < 500, response.text


RECORD_LIST = "/v1/tenants/{tenant_id}/xapi2/data/relationship"
LISTS = {
    ENTITY_RELATIONS: "/v1/tenants/metarel/entities/contact:1/relations",
    "/v1/tenants/{tenant_id}/relationship-types": TYPES,
    "/v1/tenants/{tenant_id}/relationships": LINKS,
    RECORD_LIST: RECORDS,
}
QUERIES = [
    (ENTITY_RELATIONS, {"limit": "5", "offset": "0"}, True),
    (ENTITY_RELATIONS, {"sort": "-position,created_at", "direction": "incoming"}, True),
    (ENTITY_RELATIONS, {"relation_type": ["knows", "friend"]}, True),
    (ENTITY_RELATIONS, {"limit": "0"}, False),
    (ENTITY_RELATIONS, {"offset": "-1"}, False),
    (ENTITY_RELATIONS, {"sort": "bogus"}, False),
    (ENTITY_RELATIONS, {"sort": "position,"}, False),
    (ENTITY_RELATIONS, {"direction": "up"}, False),
    (ENTITY_RELATIONS, {"relation_type": ""}, False),
    (
        "/v1/tenants/{tenant_id}/relationship-types",
        {"sort": "-createdAt", "isInverse": "true"},
        True,
    ),
    ("/v1/tenants/{tenant_id}/relationship-types", {"isInverse": "yes"}, False),
    ("/v1/tenants/{tenant_id}/relationship-types", {"sort": "position"}, False),
    ("/v1/tenants/{tenant_id}/relationships", {"sort": "position", "role": "knows"}, True),
    ("/v1/tenants/{tenant_id}/relationships", {"after": ""}, False),
    (RECORD_LIST, {"sort": "-kind,created_at", "is_archived": "false"}, True),
    (RECORD_LIST, {"sort": "created_at", "limit": "500"}, True),
    (RECORD_LIST, {"sort": "created_at,kind"}, False),
    (RECORD_LIST, {"is_archived": "no"}, False),
]


def _as_read(schema: dict[str, Any], value: str | list[str]) -> Any:
    """A query value as the document types it: a list for repeatable ones, else a number if
    it is one."""
    if schema.get("type") == "array":
        return value if isinstance(value, list) else [value]
    if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", str(value)):
        return int(str(value))
    return value


@pytest.mark.parametrize(("path", "query", "valid"), QUERIES)
def test_openapi_list_query_parameters_say_what_the_lists_refuse(
    client: httpx.Client,
    document: dict[str, Any],
    relations: dict[str, str],
    path: str,
    query: dict[str, Any],
    valid: bool,
) -> None:
    parameters = {
        p["name"]: p["schema"]
        for p in document["paths"][path]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert set(query) <= set(parameters)
    matches = all(
        OAS31Validator(parameters[name]).is_valid(_as_read(parameters[name], value))
        for name, value in query.items()
    )
    assert matches == valid
    response = client.get(LISTS[path], params=query)
    assert (response.status_code == 400) != valid, response.text
