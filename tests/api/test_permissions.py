"""The permission endpoints against a real server: check, bulk check, expand, the lookups and
subject permission, with their metadata (snap token, schema version, depth), context, and errors.

One server serves the module; each test works in tenants of its own.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped
from tests.api.support import entity_json, finished_requests, subject_json, tuple_json

SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity organization {
    relation admin @user
}

entity document {
    relation org @organization
    relation owner @user
    relation viewer @user @group#member
    relation parent @document
    attribute public boolean

    permission edit = owner or org.admin
    permission view = viewer or edit or public or parent.view
}

entity account {
    relation holder @user
    attribute balance double
    permission withdraw = holder and enough(balance)
}

rule enough(balance double) {
    balance >= context.data.amount
}
"""

TUPLES = [
    "document:1#owner@user:alice",
    "document:1#viewer@group:eng#member",
    "document:1#org@organization:acme",
    "organization:acme#admin@user:dave",
    "group:eng#member@user:bob",
    "group:eng#member@group:core#member",
    "group:core#member@user:carol",
    "document:2#parent@document:1",
    "document:10#viewer@user:bob",
    "account:1#holder@user:alice",
    "account:2#holder@user:alice",
]
ATTRIBUTES = [
    ("document", "3", "public", "BooleanValue", True),
    ("account", "1", "balance", "DoubleValue", 100.0),
]

_ids = itertools.count()


def attribute_json(kind: str, id_: str, name: str, value_type: str, data: Any) -> dict[str, Any]:
    return {
        "entity": {"type": kind, "id": id_},
        "attribute": name,
        "value": {"@type": f"type.googleapis.com/base.v1.{value_type}", "data": data},
    }


class Tenant:
    """A tenant of the module's server with a schema and data; posts to its endpoints."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.id = f"perm{next(_ids)}"
        ok(client.post("/v1/tenants/create", json={"id": self.id}))
        self.versions: list[str] = []
        self.tokens: list[str] = []

    def post(self, endpoint: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(f"/v1/tenants/{self.id}/{endpoint}", json=body)

    def schema(self, text: str) -> str:
        version = ok(self.post("schemas/write", {"schema": text}))["schema_version"]
        self.versions.append(version)
        return str(version)

    def write(
        self, tuples: Sequence[str] = (), attributes: Sequence[tuple[str, str, str, str, Any]] = ()
    ) -> str:
        body = {
            "tuples": [tuple_json(t) for t in tuples],
            "attributes": [attribute_json(*a) for a in attributes],
        }
        token = ok(self.post("data/write", body))["snap_token"]
        self.tokens.append(token)
        return str(token)

    def check(self, entity: str, permission: str, subject: str, **body: Any) -> str:
        """The check's ``can`` (the whole body is checked against the response model)."""
        answer = ok(self.post("permissions/check", check_body(entity, permission, subject, **body)))
        return str(shaped(m.CheckResponse, answer)["can"])


def check_body(entity: str, permission: str, subject: str, **body: Any) -> dict[str, Any]:
    return {
        "entity": entity_json(entity),
        "permission": permission,
        "subject": subject_json(subject),
        **body,
    }


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error_reason(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = shaped(m.ErrorResponse, response.json())
    return str(body["details"][0]["reason"])


ALLOWED, DENIED = m.CHECK_ALLOWED, m.CHECK_DENIED


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def docs(client: httpx.Client) -> Tenant:
    """The module's main tenant: SCHEMA with TUPLES and ATTRIBUTES (read-only for tests)."""
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    tenant.write(TUPLES, ATTRIBUTES)
    return tenant


# -- check -------------------------------------------------------------------------------------

CHECKS = [
    pytest.param("document:1", "view", "user:alice", ALLOWED, id="owner_views"),
    pytest.param("document:1", "edit", "user:alice", ALLOWED, id="owner_edits"),
    pytest.param("document:1", "edit", "user:dave", ALLOWED, id="org_admin_edits_via_tuple_hop"),
    pytest.param("document:1", "view", "user:bob", ALLOWED, id="group_member_views"),
    pytest.param("document:1", "view", "user:carol", ALLOWED, id="nested_group_member_views"),
    pytest.param("document:1", "edit", "user:bob", DENIED, id="viewer_cannot_edit"),
    pytest.param("document:1", "view", "user:nobody", DENIED, id="stranger_denied"),
    pytest.param("document:2", "view", "user:carol", ALLOWED, id="parent_view_inherited"),
    pytest.param("document:3", "view", "user:nobody", ALLOWED, id="public_attribute"),
    pytest.param("document:4", "view", "user:alice", DENIED, id="no_data_at_all"),
    pytest.param("document:1", "owner", "user:alice", ALLOWED, id="relation_checked_directly"),
    pytest.param("document:1", "public", "user:alice", DENIED, id="missing_attribute_denied"),
    pytest.param(
        "document:1", "viewer", "group:eng#member", ALLOWED, id="userset_subject_matches_tuple"
    ),
    pytest.param("group:eng", "member", "group:core#member", ALLOWED, id="nested_userset_subject"),
    pytest.param("document:1", "view", "group:core#member", ALLOWED, id="userset_via_group"),
    pytest.param("document:1", "view", "group:other#member", DENIED, id="unrelated_userset"),
    pytest.param("document:1", "owner", "user:alice#...", ALLOWED, id="ellipsis_is_no_relation"),
    pytest.param("group:eng", "member", "group:eng#member", ALLOWED, id="subject_is_the_userset"),
]


@pytest.mark.parametrize(("entity", "permission", "subject", "expected"), CHECKS)
def test_check_answers_as_the_data_says(
    docs: Tenant, entity: str, permission: str, subject: str, expected: str
) -> None:
    assert docs.check(entity, permission, subject) == expected


def test_check_counts_its_dispatches(client: httpx.Client) -> None:
    tenant = Tenant(client)  # fresh: nothing cached
    tenant.schema(SCHEMA)
    tenant.write(TUPLES)
    body = ok(tenant.post("permissions/check", check_body("document:2", "view", "user:carol")))
    shaped(m.CheckResponse, body)
    assert body["can"] == ALLOWED
    assert isinstance(body["metadata"]["check_count"], int)
    assert body["metadata"]["check_count"] > 0


def test_check_at_an_older_snap_token_answers_as_of_then(client: httpx.Client) -> None:
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    before = tenant.write(["document:1#owner@user:alice"])
    after = tenant.write(["document:1#viewer@user:bob"])
    deleted = ok(
        tenant.post(
            "relationships/delete",
            {"filter": {"entity": {"type": "document", "ids": ["1"]}, "relation": "owner"}},
        )
    )["snap_token"]
    assert tenant.check("document:1", "view", "user:bob", metadata={"snap_token": before}) == DENIED
    assert tenant.check("document:1", "view", "user:bob", metadata={"snap_token": after}) == ALLOWED
    assert tenant.check("document:1", "view", "user:bob") == ALLOWED
    alice = "user:alice"
    assert tenant.check("document:1", "edit", alice, metadata={"snap_token": after}) == ALLOWED
    assert tenant.check("document:1", "edit", alice, metadata={"snap_token": deleted}) == DENIED
    assert tenant.check("document:1", "edit", alice) == DENIED


def test_check_uses_the_schema_version_asked_for(client: httpx.Client) -> None:
    tenant = Tenant(client)
    old = tenant.schema(SCHEMA)
    tenant.write(["document:1#viewer@user:bob"])
    new = tenant.schema(SCHEMA.replace("permission view = viewer or", "permission view ="))
    assert tenant.check("document:1", "view", "user:bob") == DENIED
    assert (
        tenant.check("document:1", "view", "user:bob", metadata={"schema_version": new}) == DENIED
    )
    assert (
        tenant.check("document:1", "view", "user:bob", metadata={"schema_version": old}) == ALLOWED
    )
    unknown = tenant.post(
        "permissions/check",
        check_body("document:1", "view", "user:bob", metadata={"schema_version": "nope"}),
    )
    assert error_reason(unknown, 404) == "ERROR_CODE_SCHEMA_NOT_FOUND"


@pytest.fixture
def chain(client: httpx.Client) -> Tenant:
    """document:1 viewable by group:g12#member; g0 member of g1 ... of g12; bob in g0. A fresh
    tenant per test: an answer cached by a deeper check is a proven fact the engine may give a
    shallower one (as Permify's cache does), so depth errors are tested on cold caches."""
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    tuples = [f"group:g{i + 1}#member@group:g{i}#member" for i in range(12)]
    tenant.write(["document:1#viewer@group:g12#member", "group:g0#member@user:bob", *tuples])
    return tenant


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("user:bob", id="member_at_the_end_of_the_chain"),
        pytest.param("user:nobody", id="stranger_is_not_denied_either"),
    ],
)
def test_check_deeper_than_depth_is_an_error_never_denied(chain: Tenant, subject: str) -> None:
    response = chain.post(
        "permissions/check", check_body("document:1", "view", subject, metadata={"depth": 5})
    )
    assert error_reason(response, 400) == "ERROR_CODE_DEPTH_NOT_ENOUGH"


def test_check_within_depth_is_answered(chain: Tenant) -> None:
    assert chain.check("document:1", "view", "user:bob", metadata={"depth": 30}) == ALLOWED
    assert chain.check("document:1", "view", "user:nobody", metadata={"depth": 30}) == DENIED


def test_check_depth_below_three_is_invalid(docs: Tenant) -> None:
    response = docs.post(
        "permissions/check", check_body("document:1", "view", "user:bob", metadata={"depth": 2})
    )
    assert error_reason(response, 400) == "ERROR_CODE_VALIDATION"
    assert "metadata.depth" in response.json()["message"]


CONTEXTS = [
    pytest.param(
        "document:9",
        "view",
        "user:zed",
        {"tuples": [tuple_json("document:9#viewer@user:zed")]},
        ALLOWED,
        id="contextual_tuple",
    ),
    pytest.param(
        "document:9",
        "view",
        "user:zed",
        {"tuples": [tuple_json("document:9#parent@document:1")]},
        DENIED,
        id="contextual_tuple_leads_nowhere",
    ),
    pytest.param(
        "document:9",
        "view",
        "user:carol",
        {"tuples": [tuple_json("document:9#parent@document:1")]},
        ALLOWED,
        id="contextual_tuple_joins_stored_ones",
    ),
    pytest.param(
        "document:9",
        "view",
        "user:zed",
        {"attributes": [attribute_json("document", "9", "public", "BooleanValue", True)]},
        ALLOWED,
        id="contextual_attribute",
    ),
    pytest.param(
        "account:1", "withdraw", "user:alice", {"data": {"amount": 50}}, ALLOWED, id="data_fits"
    ),
    pytest.param(
        "account:1", "withdraw", "user:alice", {"data": {"amount": 500}}, DENIED, id="data_too_big"
    ),
    pytest.param(
        "account:1", "withdraw", "user:bob", {"data": {"amount": 5}}, DENIED, id="rule_and_relation"
    ),
    pytest.param(
        "account:2",
        "withdraw",
        "user:alice",
        {
            "data": {"amount": 5},
            "attributes": [attribute_json("account", "2", "balance", "DoubleValue", 7.5)],
        },
        ALLOWED,
        id="rule_reads_contextual_attribute",
    ),
    pytest.param(
        "account:2", "withdraw", "user:alice", {"data": {"amount": 5}}, DENIED, id="missing_is_zero"
    ),
]


@pytest.mark.parametrize(("entity", "permission", "subject", "context", "expected"), CONTEXTS)
def test_check_uses_the_request_context(
    docs: Tenant,
    entity: str,
    permission: str,
    subject: str,
    context: dict[str, Any],
    expected: str,
) -> None:
    assert docs.check(entity, permission, subject, context=context) == expected
    if expected == ALLOWED:  # the context is not written anywhere
        assert docs.check(entity, permission, subject, context={"data": {"amount": 500}}) == DENIED


def test_check_rule_without_its_context_data_is_an_execution_error(docs: Tenant) -> None:
    response = docs.post("permissions/check", check_body("account:1", "withdraw", "user:alice"))
    assert error_reason(response, 400) == "ERROR_CODE_EXECUTION"


def test_check_contextual_attribute_of_the_wrong_type_is_invalid(docs: Tenant) -> None:
    attribute = attribute_json("document", "9", "public", "IntegerValue", "x")
    response = docs.post(
        "permissions/check",
        check_body("document:9", "view", "user:zed", context={"attributes": [attribute]}),
    )
    assert error_reason(response, 400) == "ERROR_CODE_VALIDATION"
    assert "context.attributes[0].value" in response.json()["message"]


CHECK_ERRORS = [
    pytest.param(
        check_body("folder:1", "view", "user:bob"),
        400,
        "ERROR_CODE_ENTITY_TYPE_NOT_FOUND",
        id="unknown_entity_type",
    ),
    pytest.param(
        check_body("document:1", "share", "user:bob"),
        400,
        "ERROR_CODE_PERMISSION_NOT_FOUND",
        id="unknown_permission",
    ),
    pytest.param(
        {"entity": {"type": "document", "id": "1"}, "subject": subject_json("user:bob")},
        400,
        "ERROR_CODE_VALIDATION",
        id="permission_missing",
    ),
    pytest.param(
        check_body("document:1", "view", "user:bob", metadata={"snap_token": "garbage!"}),
        400,
        "ERROR_CODE_INVALID_CONTINUOUS_TOKEN",
        id="garbage_snap_token",
    ),
    pytest.param(
        {**check_body("document:1", "view", "user:bob"), "entity": {"type": "document", "id": ""}},
        400,
        "ERROR_CODE_VALIDATION",
        id="empty_entity_id",
    ),
]


@pytest.mark.parametrize(("body", "status", "reason"), CHECK_ERRORS)
def test_check_errors_name_the_problem(
    docs: Tenant, body: dict[str, Any], status: int, reason: str
) -> None:
    assert error_reason(docs.post("permissions/check", body), status) == reason


ENDPOINTS = [
    "permissions/check",
    "permissions/bulk-check",
    "permissions/expand",
    "permissions/lookup-entity",
    "permissions/lookup-entity-stream",
    "permissions/lookup-subject",
    "permissions/subject-permission",
]


def any_permission_body(**extra: Any) -> dict[str, Any]:
    """A body every permission endpoint accepts."""
    return {
        **check_body("document:1", "view", "user:bob"),
        "items": [check_body("document:1", "view", "user:bob")],
        "entity_type": "document",
        "subject_reference": {"type": "user"},
        **extra,
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_permission_endpoints_on_an_unknown_tenant_are_404(
    client: httpx.Client, endpoint: str
) -> None:
    response = client.post(f"/v1/tenants/no-such-tenant/{endpoint}", json=any_permission_body())
    assert error_reason(response, 404) == "ERROR_CODE_TENANT_NOT_FOUND"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_permission_endpoints_name_a_bad_snap_token(docs: Tenant, endpoint: str) -> None:
    body = any_permission_body(metadata={"snap_token": "bm90IGEgdG9rZW4"})
    response = docs.post(endpoint, body)
    assert error_reason(response, 400) == "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"
    assert response.json()["message"].startswith("metadata.snap_token: ")


def test_check_on_a_tenant_without_schema_is_404(client: httpx.Client) -> None:
    tenant = Tenant(client)
    response = tenant.post("permissions/check", check_body("document:1", "view", "user:bob"))
    assert error_reason(response, 404) == "ERROR_CODE_SCHEMA_NOT_FOUND"


# -- bulk check --------------------------------------------------------------------------------


def test_bulk_check_answers_in_request_order(docs: Tenant) -> None:
    items = [
        ("document:1", "view", "user:nobody", DENIED),
        ("document:1", "view", "user:alice", ALLOWED),
        ("document:1", "edit", "user:bob", DENIED),
        ("document:1", "edit", "user:dave", ALLOWED),
        ("document:3", "view", "user:x", ALLOWED),
    ]
    body = {"items": [check_body(e, p, s) for e, p, s, _ in items]}
    answer = shaped(m.BulkCheckResponse, ok(docs.post("permissions/bulk-check", body)))
    assert [r["can"] for r in answer["results"]] == [can for *_, can in items]


def test_bulk_check_item_that_errors_is_denied_and_the_rest_answered(chain: Tenant) -> None:
    items = [
        check_body("document:1", "viewer", "group:g12#member"),
        check_body("document:1", "share", "user:bob"),  # unknown permission
        check_body("folder:1", "view", "user:bob"),  # unknown entity type
        check_body("document:1", "view", "user:bob"),  # deeper than depth 5
        check_body("group:g0", "member", "user:bob"),
    ]
    body = {"metadata": {"depth": 5}, "items": items}
    answer = shaped(m.BulkCheckResponse, ok(chain.post("permissions/bulk-check", body)))
    assert [r["can"] for r in answer["results"]] == [ALLOWED, DENIED, DENIED, DENIED, ALLOWED]


def test_bulk_check_honours_the_snap_token_for_every_item(client: httpx.Client) -> None:
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    first = tenant.write(["document:1#owner@user:alice"])
    tenant.write(["document:2#owner@user:alice"])
    items = [check_body(f"document:{i}", "edit", "user:alice") for i in (1, 2)]
    at_first = ok(
        tenant.post("permissions/bulk-check", {"metadata": {"snap_token": first}, "items": items})
    )
    assert [r["can"] for r in at_first["results"]] == [ALLOWED, DENIED]
    now = ok(tenant.post("permissions/bulk-check", {"items": items}))
    assert [r["can"] for r in now["results"]] == [ALLOWED, ALLOWED]


@pytest.mark.parametrize("count", [0, 101], ids=["no_items", "over_100_items"])
def test_bulk_check_takes_1_to_100_items(docs: Tenant, count: int) -> None:
    body = {"items": [check_body("document:1", "view", "user:bob")] * count}
    response = docs.post("permissions/bulk-check", body)
    assert error_reason(response, 400) == "ERROR_CODE_VALIDATION"
    assert "items" in response.json()["message"]


def test_bulk_check_takes_exactly_100_items(docs: Tenant) -> None:
    body = {"items": [check_body("document:1", "view", "user:bob")] * 100}
    answer = ok(docs.post("permissions/bulk-check", body))
    assert [r["can"] for r in answer["results"]] == [ALLOWED] * 100


# -- expand ------------------------------------------------------------------------------------


def _leaf(entity: str, name: str, subjects: list[str]) -> dict[str, Any]:
    return {
        "entity": entity_json(entity),
        "permission": name,
        "arguments": [],
        "leaf": {"subjects": {"subjects": [subject_json(s) for s in subjects]}},
    }


def _node(entity: str, name: str, operation: str, children: list[Any]) -> dict[str, Any]:
    return {
        "entity": entity_json(entity),
        "permission": name,
        "arguments": [],
        "expand": {"operation": f"OPERATION_{operation}", "children": children},
    }


def test_expand_returns_permifys_tree(docs: Tenant) -> None:
    body = {"entity": entity_json("document:1"), "permission": "edit"}
    answer = shaped(m.ExpandResponse, ok(docs.post("permissions/expand", body)))
    assert answer["tree"] == _node(
        "document:1",
        "edit",
        "UNION",
        [
            _leaf("document:1", "owner", ["user:alice"]),
            _node(
                "document:1",
                "org",
                "UNION",
                [_leaf("organization:acme", "admin", ["user:dave"])],
            ),
        ],
    )


def test_expand_of_a_relation_with_usersets_expands_each_userset(docs: Tenant) -> None:
    body = {"entity": entity_json("group:eng"), "permission": "member"}
    answer = shaped(m.ExpandResponse, ok(docs.post("permissions/expand", body)))
    assert answer["tree"] == _node(
        "group:eng",
        "member",
        "UNION",
        [
            _leaf("group:core", "member", ["user:carol"]),
            _leaf("group:eng", "member", ["user:bob", "group:core#member"]),
        ],
    )


def test_expand_of_an_attribute_is_a_value_leaf(docs: Tenant) -> None:
    body = {"entity": entity_json("document:3"), "permission": "public"}
    answer = shaped(m.ExpandResponse, ok(docs.post("permissions/expand", body)))
    assert answer["tree"] == {
        "entity": entity_json("document:3"),
        "permission": "public",
        "arguments": [],
        "leaf": {"value": {"@type": "type.googleapis.com/base.v1.BooleanValue", "data": True}},
    }


def test_expand_honours_the_snap_token(client: httpx.Client) -> None:
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    first = tenant.write(["document:1#owner@user:alice"])
    tenant.write(["document:1#owner@user:bob"])
    body = {"entity": entity_json("document:1"), "permission": "owner"}
    then = ok(tenant.post("permissions/expand", {**body, "metadata": {"snap_token": first}}))
    now = ok(tenant.post("permissions/expand", body))
    assert then["tree"] == _leaf("document:1", "owner", ["user:alice"])
    assert now["tree"] == _leaf("document:1", "owner", ["user:alice", "user:bob"])


def test_expand_of_an_unknown_permission_is_400(docs: Tenant) -> None:
    body = {"entity": entity_json("document:1"), "permission": "share"}
    response = docs.post("permissions/expand", body)
    assert error_reason(response, 400) == "ERROR_CODE_PERMISSION_NOT_FOUND"


# -- lookup entity -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(client: httpx.Client) -> Tenant:
    """Documents 1..12 viewable by bob (ids sort as strings), 13 and 14 by others only."""
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    tuples = [f"document:{i}#viewer@user:bob" for i in range(1, 13)]
    tenant.write([*tuples, "document:13#viewer@user:eve", "document:14#owner@user:eve"])
    return tenant


BOB_DOCS = sorted(str(i) for i in range(1, 13))


def lookup_body(**extra: Any) -> dict[str, Any]:
    return {
        "entity_type": "document",
        "permission": "view",
        "subject": subject_json("user:bob"),
        **extra,
    }


def test_lookup_entity_answers_sorted_ids(library: Tenant) -> None:
    answer = shaped(
        m.LookupEntityResponse, ok(library.post("permissions/lookup-entity", lookup_body()))
    )
    assert answer == {"entity_ids": BOB_DOCS, "continuous_token": ""}


@pytest.mark.parametrize("page_size", [1, 2, 5, 11, 12, 13], ids=lambda n: f"page_size_{n}")
def test_lookup_entity_pages_give_each_id_exactly_once(library: Tenant, page_size: int) -> None:
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        body = lookup_body(page_size=page_size, continuous_token=token)
        answer = shaped(m.LookupEntityResponse, ok(library.post("permissions/lookup-entity", body)))
        assert 0 < len(answer["entity_ids"]) <= page_size
        seen += answer["entity_ids"]
        pages += 1
        token = answer["continuous_token"]
        if not token:
            break
        assert pages < 20, "paging does not end"
    assert seen == BOB_DOCS
    assert pages == -(-len(BOB_DOCS) // page_size)


def test_lookup_entity_scope_restricts_the_candidates(library: Tenant) -> None:
    body = lookup_body(scope={"document": {"data": ["2", "7", "13", "99"]}})
    answer = ok(library.post("permissions/lookup-entity", body))
    assert answer["entity_ids"] == ["2", "7"]


def test_lookup_entity_with_a_bad_continuous_token_is_400(library: Tenant) -> None:
    body = lookup_body(continuous_token="not a token")
    response = library.post("permissions/lookup-entity", body)
    assert error_reason(response, 400) == "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"
    assert "continuous_token" in response.json()["message"]


def test_lookup_entity_page_size_zero_is_invalid(library: Tenant) -> None:
    response = library.post("permissions/lookup-entity", lookup_body(page_size=0))
    assert error_reason(response, 400) == "ERROR_CODE_VALIDATION"
    assert "page_size" in response.json()["message"]


def test_lookup_entity_honours_the_snap_token(client: httpx.Client) -> None:
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    first = tenant.write(["document:1#viewer@user:bob"])
    tenant.write(["document:2#viewer@user:bob"])
    then = ok(tenant.post("permissions/lookup-entity", lookup_body(metadata={"snap_token": first})))
    assert then["entity_ids"] == ["1"]
    assert ok(tenant.post("permissions/lookup-entity", lookup_body()))["entity_ids"] == ["1", "2"]


def stream_lines(
    tenant: Tenant, body: dict[str, Any]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    path = f"/v1/tenants/{tenant.id}/permissions/lookup-entity-stream"
    with tenant.client.stream("POST", path, json=body, timeout=30) as response:
        response.read()
    if response.status_code != 200:
        return response, []
    assert response.headers["content-type"].startswith("application/x-ndjson")
    text = response.text
    assert text == "" or text.endswith("\n")
    return response, [json.loads(line) for line in text.splitlines()]


def test_lookup_entity_stream_sends_one_line_per_id(library: Tenant) -> None:
    _, lines = stream_lines(library, lookup_body())
    for line in lines:
        shaped(m.LookupEntityStreamLine, line)
    assert [line["result"]["entity_id"] for line in lines] == BOB_DOCS
    assert all(line["result"]["continuous_token"] for line in lines)


@pytest.mark.parametrize("resume_after", [0, 5, 11], ids=["first", "middle", "last"])
def test_lookup_entity_stream_resumes_from_a_continuous_token(
    library: Tenant, resume_after: int
) -> None:
    _, lines = stream_lines(library, lookup_body())
    token = lines[resume_after]["result"]["continuous_token"]
    _, rest = stream_lines(library, lookup_body(continuous_token=token))
    assert [line["result"]["entity_id"] for line in rest] == BOB_DOCS[resume_after + 1 :]


def test_lookup_entity_stream_with_no_answer_is_an_empty_stream(library: Tenant) -> None:
    response, lines = stream_lines(library, lookup_body(subject=subject_json("user:nobody")))
    assert response.status_code == 200
    assert lines == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(lookup_body(permission="share"), "ERROR_CODE_PERMISSION_NOT_FOUND", id="perm"),
        pytest.param(
            lookup_body(entity_type="folder"), "ERROR_CODE_ENTITY_TYPE_NOT_FOUND", id="type"
        ),
        pytest.param(
            lookup_body(continuous_token="%%"), "ERROR_CODE_INVALID_CONTINUOUS_TOKEN", id="token"
        ),
        pytest.param(lookup_body(metadata={"depth": 1}), "ERROR_CODE_VALIDATION", id="depth"),
    ],
)
def test_lookup_entity_stream_errors_get_a_status_before_streaming(
    library: Tenant, body: dict[str, Any], reason: str
) -> None:
    response, _ = stream_lines(library, body)
    assert error_reason(response, 400) == reason
    assert response.headers["content-type"].startswith("application/json")


STREAM_ROUTE = "/v1/tenants/{tenant_id}/permissions/lookup-entity-stream"


def test_lookup_entity_stream_client_leaving_early_is_no_error(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = Tenant(client)
    tenant.schema(SCHEMA)
    for start in range(0, 20_000, 1000):  # enough lines that the server is still writing
        tenant.write([f"document:d{i}#viewer@user:bob" for i in range(start, start + 1000)])
    before = finished_requests(client, STREAM_ROUTE)
    path = f"/v1/tenants/{tenant.id}/permissions/lookup-entity-stream"
    with caplog.at_level(logging.ERROR, logger="stonetown"):
        with client.stream("POST", path, json=lookup_body(), timeout=30) as response:
            first = json.loads(next(response.iter_lines()))
        assert first["result"]["entity_id"] == "d0"
        deadline = time.monotonic() + 10
        while sum(finished_requests(client, STREAM_ROUTE).values()) == sum(
            before.values()
        ):
            assert time.monotonic() < deadline, "the stream never finished"
            time.sleep(0.02)
    after = finished_requests(client, STREAM_ROUTE)
    assert after.get("200", 0) - before.get("200", 0) == 1, after
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- lookup subject ----------------------------------------------------------------------------


def subject_lookup(entity: str, reference: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "entity": entity_json(entity),
        "permission": "view",
        "subject_reference": reference,
        **extra,
    }


@pytest.mark.parametrize(
    ("entity", "reference", "expected"),
    [
        pytest.param("document:1", {"type": "user"}, ["alice", "bob", "carol", "dave"], id="users"),
        pytest.param(
            "document:1", {"type": "group", "relation": "member"}, ["core", "eng"], id="usersets"
        ),
        pytest.param(
            "document:2", {"type": "user"}, ["alice", "bob", "carol", "dave"], id="parent"
        ),
        pytest.param("document:4", {"type": "user"}, [], id="nobody"),
    ],
)
def test_lookup_subject_answers_sorted_ids(
    docs: Tenant, entity: str, reference: dict[str, str], expected: list[str]
) -> None:
    body = subject_lookup(entity, reference)
    answer = shaped(m.LookupSubjectResponse, ok(docs.post("permissions/lookup-subject", body)))
    assert answer == {"subject_ids": expected, "continuous_token": ""}
    relation = reference.get("relation", "")
    for subject_id in expected:  # each answer agrees with check
        subject = f"{reference['type']}:{subject_id}" + (f"#{relation}" if relation else "")
        assert docs.check(entity, "view", subject) == ALLOWED


@pytest.mark.parametrize("page_size", [1, 3, 4], ids=lambda n: f"page_size_{n}")
def test_lookup_subject_pages_give_each_id_exactly_once(docs: Tenant, page_size: int) -> None:
    seen: list[str] = []
    token = ""
    for _ in range(10):
        body = subject_lookup(
            "document:1", {"type": "user"}, page_size=page_size, continuous_token=token
        )
        answer = shaped(m.LookupSubjectResponse, ok(docs.post("permissions/lookup-subject", body)))
        assert len(answer["subject_ids"]) <= page_size
        seen += answer["subject_ids"]
        token = answer["continuous_token"]
        if not token:
            break
    assert seen == ["alice", "bob", "carol", "dave"]


def test_lookup_subject_of_an_unknown_permission_is_400(docs: Tenant) -> None:
    body = {**subject_lookup("document:1", {"type": "user"}), "permission": "share"}
    response = docs.post("permissions/lookup-subject", body)
    assert error_reason(response, 400) == "ERROR_CODE_PERMISSION_NOT_FOUND"


# -- subject permission ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("only_permission", "expected"),
    [
        pytest.param(True, {"edit": DENIED, "view": ALLOWED}, id="only_permissions"),
        pytest.param(
            False,
            {
                "org": DENIED,
                "owner": DENIED,
                "viewer": ALLOWED,
                "parent": DENIED,
                "edit": DENIED,
                "view": ALLOWED,
            },
            id="relations_too",
        ),
    ],
)
def test_subject_permission_lists_every_permission(
    docs: Tenant, only_permission: bool, expected: dict[str, str]
) -> None:
    body = {
        "metadata": {"only_permission": only_permission},
        "entity": entity_json("document:1"),
        "subject": subject_json("user:bob"),
    }
    answer = shaped(
        m.SubjectPermissionResponse, ok(docs.post("permissions/subject-permission", body))
    )
    assert answer["results"] == expected


def test_subject_permission_of_an_unknown_entity_type_is_400(docs: Tenant) -> None:
    body = {"entity": entity_json("folder:1"), "subject": subject_json("user:bob")}
    response = docs.post("permissions/subject-permission", body)
    assert error_reason(response, 400) == "ERROR_CODE_ENTITY_TYPE_NOT_FOUND"


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])
@pytest.mark.parametrize("count", [0, 1, 12345])
def test_the_pre_encoded_check_body_is_the_check_json(allowed: bool, count: int) -> None:
    assert json.loads(m.check_bytes(allowed, count)) == m.check_json(allowed, count)
