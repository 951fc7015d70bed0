"""The AuthZEN Authorization API 1.0 on a real server: every request/response example of the
spec (adapted to the schema below: its ids, types and actions are the spec's), then the mapping
(properties, context), errors, pagination, tenants and the metadata document."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api.config import Config, ConfigError, load_config
from api.models import authzen as az
from tests.api.conftest import Server, shaped
from tests.api.support import finished_requests

SCHEMA = """
entity user {
    attribute department string
    attribute score double
}
entity group {
    relation member @user
}
entity account {
    relation owner @user
    relation viewer @user @group#member
    attribute public boolean
    attribute opens integer
    permission can_read = viewer or owner or public
    permission can_write = owner
    permission can_read_now = can_read and in_hours(opens)
}
entity document {
    relation viewer @user
    relation editor @user
    permission can_read = viewer or editor
    permission can_edit = editor
    permission read = viewer
}
rule in_hours(opens integer) {
    context.data.hour >= opens
}
"""
TUPLES = [
    "account:123#owner@user:alice@example.com",
    "group:sales#member@user:bob@example.com",
    "account:123#viewer@group:sales#member",
    "account:456#viewer@user:alice@example.com",
    "account:789#viewer@user:alice@example.com",
    "document:boxcarring.md#viewer@user:alice@example.com",
    "document:subject-search.md#editor@user:alice@example.com",
    "document:resource-search.md#viewer@user:alice@example.com",
    "document:1#viewer@user:alice@example.com",
    "document:3#viewer@user:alice@example.com",
]
TENANT = "az"
BASE = f"/v1/tenants/{TENANT}/access/v1"
ALICE = {"type": "user", "id": "alice@example.com"}
BOB = {"type": "user", "id": "bob@example.com"}
ACCOUNT = {"type": "account", "id": "123"}
TIME = {"time": "2024-05-31T15:22-07:00"}


def tuple_json(text: str) -> dict[str, Any]:
    """``type:id#relation@type:id[#relation]`` as the wire's Tuple; ids may hold ``@``."""
    entity, _, subject = text.partition("@")
    entity_ref, relation = entity.split("#")
    subject_ref, _, subject_relation = subject.partition("#")
    (kind, id_), (subject_kind, subject_id) = entity_ref.split(":"), subject_ref.split(":")
    return {
        "entity": {"type": kind, "id": id_},
        "relation": relation,
        "subject": {"type": subject_kind, "id": subject_id, "relation": subject_relation},
    }


def _seed(client: httpx.Client, tenant: str) -> None:
    if tenant != "t1":
        assert client.post("/v1/tenants/create", json={"id": tenant}).status_code == 200
    assert client.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": SCHEMA}).is_success
    tuples = [tuple_json(t) for t in TUPLES]
    written = client.post(f"/v1/tenants/{tenant}/data/write", json={"tuples": tuples})
    assert written.is_success, written.text


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        _seed(c, TENANT)
        _seed(c, "t1")  # the default tenant, which the bare paths answer for
        yield c


def post(client: httpx.Client, path: str, body: dict[str, Any], status: int = 200) -> Any:
    response = client.post(BASE + path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def decision(client: httpx.Client, body: dict[str, Any]) -> Any:
    return shaped(az.DecisionOut, post(client, "/evaluation", body))


def decisions(client: httpx.Client, body: dict[str, Any]) -> Any:
    return shaped(az.EvaluationsResponse, post(client, "/evaluations", body))


# -- access evaluation -------------------------------------------------------------------------


def test_the_spec_evaluation_request_example_is_permitted(client: httpx.Client) -> None:
    body: dict[str, Any] = {
        "subject": ALICE,
        "resource": ACCOUNT,
        "action": {"name": "can_read", "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"},
    }
    assert decision(client, body) == {"decision": True}
    # the spec's context example with a JSON schema reference: data the rules may read
    body["context"] = {**TIME, "schema": "https://schema.example.com/access-request.schema.json"}
    assert decision(client, body) == {"decision": True}


def test_a_subject_without_access_is_denied_without_context(client: httpx.Client) -> None:
    body = {"subject": BOB, "resource": ACCOUNT, "action": {"name": "can_write"}}
    assert decision(client, body) == {"decision": False}


def test_the_spec_https_example_echoes_the_request_id(client: httpx.Client) -> None:
    request_id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    body = {
        "subject": ALICE,
        "resource": {"type": "document", "id": "1"},
        "action": {"name": "can_read"},
        "context": {"time": "1985-10-26T01:22-07:00"},
    }
    response = client.post(BASE + "/evaluation", json=body, headers={"X-Request-ID": request_id})
    assert response.json() == {"decision": True}
    assert response.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"action": {"name": "can_fly"}}, 400, "ERROR_CODE_PERMISSION_NOT_FOUND"),
        ({"resource": {"type": "spaceship", "id": "1"}}, 400, "ERROR_CODE_ENTITY_TYPE_NOT_FOUND"),
    ],
    ids=["unknown-action", "unknown-resource-type"],
)
def test_an_evaluation_that_fails_is_denied_with_the_error_as_reason(
    client: httpx.Client, change: dict[str, Any], status: int, code: str
) -> None:
    body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_read"}, **change}
    answer = decision(client, body)
    assert answer["decision"] is False
    error = answer["context"]["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert answer["context"]["reason"] == error["message"]
    assert next(iter(change.values())).get("name", "spaceship") in error["message"]


# -- properties and context --------------------------------------------------------------------


def test_a_declared_resource_property_is_a_contextual_attribute(client: httpx.Client) -> None:
    body: dict[str, Any] = {
        "subject": BOB,
        "resource": {"type": "account", "id": "999"},
        "action": {"name": "can_read"},
    }
    assert decision(client, body) == {"decision": False}
    body["resource"] = {"type": "account", "id": "999", "properties": {"public": True}}
    assert decision(client, body) == {"decision": True}
    # for that request only: nothing was stored
    body["resource"] = {"type": "account", "id": "999"}
    assert decision(client, body) == {"decision": False}


def test_an_undeclared_property_is_ignored(client: httpx.Client) -> None:
    subject = {**BOB, "properties": {"ip_address": "172.217.22.14", "device_id": "8:65:ee"}}
    resource = {
        "type": "account",
        "id": "999",
        "properties": {"library_record": {"title": "AuthZEN in Action"}, "secret": True},
    }
    body = {"subject": subject, "resource": resource, "action": {"name": "can_read"}}
    assert decision(client, body) == {"decision": False}
    subject["properties"] = {"department": "Sales", "ip_address": "172.217.22.14"}
    assert decision(client, body) == {"decision": False}


def test_a_declared_property_of_another_type_denies_with_the_reason(client: httpx.Client) -> None:
    resource = {"type": "account", "id": "999", "properties": {"public": "yes"}}
    body = {"subject": BOB, "resource": resource, "action": {"name": "can_read"}}
    answer = decision(client, body)
    assert answer["decision"] is False
    error = answer["context"]["error"]
    assert error["code"] == "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH"
    assert "resource.properties.public" in error["message"]
    assert "boolean" in error["message"]


@pytest.mark.parametrize(
    ("value", "words"),
    [(2**31, "32-bit"), (10**400, "32-bit"), ("9", "expected a integer"), (True, "integer")],
    ids=["past-int32", "huge", "string", "boolean"],
)
def test_an_integer_property_must_fit(client: httpx.Client, value: object, words: str) -> None:
    resource = {"type": "account", "id": "123", "properties": {"opens": value}}
    body = {"subject": ALICE, "resource": resource, "action": {"name": "can_read_now"}}
    answer = decision(client, {**body, "context": {"hour": 10}})
    assert answer["decision"] is False
    assert words in answer["context"]["error"]["message"]


def test_a_double_property_must_fit(client: httpx.Client) -> None:
    """A JSON integer too large for a double is refused, not a server error."""
    subject = {**ALICE, "properties": {"score": 10**400}}
    body = {"subject": subject, "resource": ACCOUNT, "action": {"name": "can_read"}}
    answer = decision(client, body)
    assert answer["decision"] is False
    assert "range of a double" in answer["context"]["error"]["message"]
    subject["properties"] = {"score": 2}  # an integer is a double
    assert decision(client, body) == {"decision": True}


def test_context_is_the_request_data_rules_read(client: httpx.Client) -> None:
    resource = {"type": "account", "id": "123", "properties": {"opens": 9.0}}
    body: dict[str, Any] = {
        "subject": ALICE,
        "resource": resource,
        "action": {"name": "can_read_now"},
        "context": {"hour": 10},
    }
    assert decision(client, body) == {"decision": True}
    body["context"] = {"hour": 8}
    assert decision(client, body) == {"decision": False}


# -- access evaluations ------------------------------------------------------------------------


def _documents(*ids: str) -> list[dict[str, Any]]:
    return [{"resource": {"type": "document", "id": i}} for i in ids]


SPEC_DOCUMENTS = ("boxcarring.md", "subject-search.md", "resource-search.md")


def test_the_spec_evaluations_example_without_defaults(client: httpx.Client) -> None:
    items = [
        {"subject": ALICE, "action": {"name": "can_read"}, **item, "context": TIME}
        for item in _documents(*SPEC_DOCUMENTS)
    ]
    answer = decisions(client, {"evaluations": items})
    assert answer == {"evaluations": [{"decision": True}] * 3}


def test_the_spec_default_values_example(client: httpx.Client) -> None:
    items = [{"action": {"name": "can_read"}, **item} for item in _documents(*SPEC_DOCUMENTS)]
    body = {"subject": ALICE, "context": TIME, "evaluations": items}
    assert decisions(client, body) == {"evaluations": [{"decision": True}] * 3}


def test_the_spec_default_values_example_with_an_overridden_action(client: httpx.Client) -> None:
    items = _documents(*SPEC_DOCUMENTS)
    items[2]["action"] = {"name": "can_edit"}
    body = {"subject": ALICE, "context": TIME, "action": {"name": "can_read"}, "evaluations": items}
    # alice only views resource-search.md: the overriding action is the one asked
    assert decisions(client, body) == {
        "evaluations": [{"decision": True}, {"decision": True}, {"decision": False}]
    }


def test_an_item_overrides_the_top_level_context_as_a_whole(client: httpx.Client) -> None:
    resource = {"type": "account", "id": "123", "properties": {"opens": 9}}
    body = {
        "subject": ALICE,
        "action": {"name": "can_read_now"},
        "resource": resource,
        "context": {"hour": 10},
        "evaluations": [{}, {"context": {"hour": 3}}, {"context": {}}],
    }
    answer = decisions(client, body)["evaluations"]
    assert [a["decision"] for a in answer] == [True, False, False]
    assert "error" in answer[2]["context"]  # no hour at all: the rule cannot run


def test_the_spec_options_example_ignores_unknown_options(client: httpx.Client) -> None:
    body = {
        "action": {"name": "can_read"},
        "evaluations": [{"resource": {"type": "document", "id": "1"}, "subject": ALICE}],
        "options": {"evaluations_semantic": "execute_all", "another_option": "value"},
    }
    assert decisions(client, body) == {"evaluations": [{"decision": True}]}


SEMANTICS_REQUEST = {
    "subject": ALICE,
    "action": {"name": "read"},
    "evaluations": _documents("1", "2", "3"),
}


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        ("execute_all", [{"decision": True}, {"decision": False}, {"decision": True}]),
        (
            "deny_on_first_deny",
            [
                {"decision": True},
                {"decision": False, "context": {"code": "200", "reason": "deny_on_first_deny"}},
            ],
        ),
        ("permit_on_first_permit", [{"decision": True}]),
    ],
    ids=["execute_all", "deny_on_first_deny", "permit_on_first_permit"],
)
def test_the_spec_semantics_examples(
    client: httpx.Client, semantic: str, expected: list[dict[str, Any]]
) -> None:
    body = {**SEMANTICS_REQUEST, "options": {"evaluations_semantic": semantic}}
    assert decisions(client, body) == {"evaluations": expected}


def test_execute_all_is_the_default_semantic(client: httpx.Client) -> None:
    assert [d["decision"] for d in decisions(client, SEMANTICS_REQUEST)["evaluations"]] == [
        True,
        False,
        True,
    ]


def test_permit_on_first_permit_answers_every_denial_before_the_permit(
    client: httpx.Client,
) -> None:
    body = {
        **SEMANTICS_REQUEST,
        "evaluations": _documents("2", "4", "3", "1"),
        "options": {"evaluations_semantic": "permit_on_first_permit"},
    }
    answer = decisions(client, body)["evaluations"]
    assert [d["decision"] for d in answer] == [False, False, True]


def test_the_spec_evaluations_error_example(client: httpx.Client) -> None:
    """One evaluation's failure is its denial, with the error in its context; the others are
    answered."""
    items = _documents("1", "2")
    items.insert(1, {"resource": {"type": "spaceship", "id": "1"}})
    answer = decisions(client, {**SEMANTICS_REQUEST, "evaluations": items})["evaluations"]
    assert answer[0] == {"decision": True}
    assert answer[1]["decision"] is False
    assert answer[1]["context"]["error"]["status"] == 400
    assert answer[2] == {"decision": False}


def test_deny_on_first_deny_stops_at_a_failure_and_says_why(client: httpx.Client) -> None:
    items = [*_documents("1"), {"action": {"name": "nope"}, **_documents("1")[0]}, *_documents("3")]
    body = {
        **SEMANTICS_REQUEST,
        "evaluations": items,
        "options": {"evaluations_semantic": "deny_on_first_deny"},
    }
    answer = decisions(client, body)["evaluations"]
    assert len(answer) == 2
    assert answer[1]["context"]["error"]["code"] == "ERROR_CODE_PERMISSION_NOT_FOUND"


def test_evaluations_without_items_answer_as_one_evaluation(client: httpx.Client) -> None:
    body = {"subject": ALICE, "action": {"name": "can_write"}, "resource": ACCOUNT}
    assert decisions(client, body) == {"decision": True}
    assert decisions(client, {**body, "evaluations": []}) == {"decision": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"evaluations": _documents("1")}, "evaluations[0].subject"),
        ({"subject": ALICE, "evaluations": _documents("1")}, "evaluations[0].action"),
        ({"subject": ALICE, "action": {"name": "read"}}, "resource"),
        ({}, "subject"),
    ],
    ids=["item-without-subject", "item-without-action", "no-items-no-resource", "empty"],
)
def test_an_evaluation_missing_an_entity_is_a_bad_request(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    error = post(client, "/evaluations", body, status=400)
    assert error["message"].startswith(f"{field}: required")


# -- transport errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"subject": ALICE, "resource": ACCOUNT}, "action"),
        ({"subject": {"type": "user"}, "resource": ACCOUNT, "action": {"name": "x"}}, "id"),
        ({"subject": ALICE, "resource": ACCOUNT, "action": {"name": "x"}, "context": None}, "null"),
        ({"subject": ALICE, "resource": ACCOUNT, "action": {"name": 7}}, "string"),
    ],
    ids=["missing-action", "subject-without-id", "null-context", "number-for-name"],
)
def test_a_malformed_evaluation_is_a_400_with_a_message(
    client: httpx.Client, body: dict[str, Any], words: str
) -> None:
    error = post(client, "/evaluation", body, status=400)
    assert words in error["message"]


def test_an_unknown_tenant_is_a_404(client: httpx.Client) -> None:
    body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_read"}}
    response = client.post("/v1/tenants/nobody/access/v1/evaluation", json=body)
    assert response.status_code == 404
    assert response.json()["details"][0]["reason"] == "ERROR_CODE_TENANT_NOT_FOUND"


def test_a_tenant_without_a_schema_is_a_404(client: httpx.Client) -> None:
    assert client.post("/v1/tenants/create", json={"id": "az-empty"}).status_code == 200
    body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_read"}}
    for path in ("evaluation", "evaluations"):
        response = client.post(f"/v1/tenants/az-empty/access/v1/{path}", json=body)
        assert response.status_code == 404, response.text
        assert "no schema" in response.json()["message"]


# -- search ------------------------------------------------------------------------------------


def test_the_spec_subject_search_example(client: httpx.Client) -> None:
    body = {
        "subject": {"type": "user"},
        "action": {"name": "can_read"},
        "resource": ACCOUNT,
        "context": {"time": "2024-10-26T01:22-07:00"},
    }
    answer = shaped(az.EntitySearchResponse, post(client, "/search/subject", body))
    assert answer == {"page": {"next_token": "", "count": 2, "total": 2}, "results": [ALICE, BOB]}


def test_a_subject_search_ignores_the_subject_id(client: httpx.Client) -> None:
    body = {
        "subject": {"type": "user", "id": "zed"},
        "action": {"name": "can_write"},
        "resource": ACCOUNT,
    }
    assert post(client, "/search/subject", body)["results"] == [ALICE]


def test_the_spec_resource_search_example(client: httpx.Client) -> None:
    body = {"subject": ALICE, "action": {"name": "can_read"}, "resource": {"type": "account"}}
    answer = shaped(az.EntitySearchResponse, post(client, "/search/resource", body))
    ids = ["123", "456", "789"]
    assert answer == {
        "page": {"next_token": "", "count": 3, "total": 3},
        "results": [{"type": "account", "id": i} for i in ids],
    }


def test_the_spec_pagination_example(client: httpx.Client) -> None:
    first: dict[str, Any] = {
        "subject": ALICE,
        "action": {"name": "can_read"},
        "resource": {"type": "account"},
        "page": {"limit": 2},
    }
    answer = shaped(az.EntitySearchResponse, post(client, "/search/resource", first))
    token = answer["page"]["next_token"]
    assert token
    assert answer == {
        "page": {"next_token": token, "count": 2, "total": 3},
        "results": [{"type": "account", "id": "123"}, {"type": "account", "id": "456"}],
    }
    second = copy.deepcopy(first)
    second["page"]["token"] = token
    answer = post(client, "/search/resource", second)
    assert answer == {
        "page": {"next_token": "", "count": 1, "total": 3},
        "results": [{"type": "account", "id": "789"}],
    }


def test_pages_read_the_first_pages_snapshot(client: httpx.Client) -> None:
    body: dict[str, Any] = {
        "subject": {"type": "user"},
        "action": {"name": "can_read"},
        "resource": {"type": "document", "id": "1"},
        "page": {"limit": 1},
    }
    assert client.post(
        f"/v1/tenants/{TENANT}/data/write",
        json={"tuples": [tuple_json("document:1#viewer@user:carol")]},
    ).is_success
    first = post(client, "/search/subject", body)
    assert first["results"] == [ALICE]
    # a viewer added after the first page is not on the next one
    assert client.post(
        f"/v1/tenants/{TENANT}/data/write",
        json={"tuples": [tuple_json("document:1#viewer@user:dan")]},
    ).is_success
    body["page"]["token"] = first["page"]["next_token"]
    second = post(client, "/search/subject", body)
    assert second == {
        "page": {"next_token": "", "count": 1, "total": 2},
        "results": [{"type": "user", "id": "carol"}],
    }


def _encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda b: b["page"].update(limit=5), "another search"),
        (lambda b: b.update(context={"time": "now"}), "another search"),
        (lambda b: b["page"].update(token="bm90IGEgdG9rZW4"), "not a page token"),
        (lambda b: b["page"].update(token="%%%"), "not a page token"),
        (lambda b: b["page"].update(token=_encoded(b"[" * 1000)), "not a page token"),
        (lambda b: b["page"].update(token=_encoded(b"[" * 100_000)), "not a page token"),
    ],
    ids=[
        "other-limit",
        "other-context",
        "foreign-token",
        "garbage-token",
        "nested-token",
        "long-token",
    ],
)
def test_a_token_must_come_with_the_first_pages_request(
    client: httpx.Client, change: Callable[[dict[str, Any]], None], words: str
) -> None:
    body: dict[str, Any] = {
        "subject": ALICE,
        "action": {"name": "can_read"},
        "resource": {"type": "account"},
        "page": {"limit": 1},
    }
    token = post(client, "/search/resource", body)["page"]["next_token"]
    body["page"]["token"] = token
    change(body)
    error = post(client, "/search/resource", body, status=400)
    assert error["message"].startswith("page.token: ")
    assert words in error["message"]
    assert error["details"][0]["reason"] == "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"


def test_a_token_continues_only_the_search_that_issued_it(client: httpx.Client) -> None:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "alice@example.com"},
        "action": {"name": "can_read"},
        "resource": {"type": "account", "id": "123"},
        "page": {"limit": 1},
    }
    token = post(client, "/search/resource", body)["page"]["next_token"]
    body["page"]["token"] = token
    error = post(client, "/search/subject", body, status=400)
    assert "another search" in error["message"]


def test_the_spec_action_search_example(client: httpx.Client) -> None:
    body = {"subject": ALICE, "resource": ACCOUNT, "context": {"time": "2024-10-26T01:22-07:00"}}
    answer = shaped(az.ActionSearchResponse, post(client, "/search/action", body))
    names = ["owner", "can_read", "can_write"]
    assert answer == {
        "page": {"next_token": "", "count": 3, "total": 3},
        "results": [{"name": n} for n in names],
    }


def test_action_search_pages(client: httpx.Client) -> None:
    body: dict[str, Any] = {"subject": ALICE, "resource": ACCOUNT, "page": {"limit": 2}}
    first = post(client, "/search/action", body)
    assert first["results"] == [{"name": "owner"}, {"name": "can_read"}]
    body["page"]["token"] = first["page"]["next_token"]
    assert post(client, "/search/action", body) == {
        "page": {"next_token": "", "count": 1, "total": 3},
        "results": [{"name": "can_write"}],
    }


def test_search_properties_are_contextual_attributes(client: httpx.Client) -> None:
    stranger = {"type": "user", "id": "zoe"}
    public = {"type": "account", "id": "999", "properties": {"public": True}}
    names = post(client, "/search/action", {"subject": stranger, "resource": public})["results"]
    assert names == [{"name": "can_read"}]
    body = {"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": public}
    # a public account is readable by every user there is
    assert ALICE in post(client, "/search/subject", body)["results"]
    private = {**body, "resource": {"type": "account", "id": "999"}}
    assert post(client, "/search/subject", private)["results"] == []
    bad = {**public, "properties": {"public": 1}}
    error = post(client, "/search/action", {"subject": stranger, "resource": bad}, status=400)
    assert "resource.properties.public" in error["message"]


def test_a_search_for_an_unknown_action_is_a_400(client: httpx.Client) -> None:
    body = {"subject": ALICE, "action": {"name": "can_fly"}, "resource": {"type": "account"}}
    error = post(client, "/search/resource", body, status=400)
    assert error["details"][0]["reason"] == "ERROR_CODE_PERMISSION_NOT_FOUND"


# -- tenants, metadata, keys -------------------------------------------------------------------


def test_bare_paths_answer_for_the_default_tenant(client: httpx.Client) -> None:
    body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_write"}}
    response = client.post("/access/v1/evaluation", json=body)
    assert response.json() == {"decision": True}
    search = {"subject": ALICE, "resource": ACCOUNT}
    assert client.post("/access/v1/search/action", json=search).json()["page"]["count"] == 3


def test_the_metadata_document_names_every_endpoint(
    module_server: Server, client: httpx.Client
) -> None:
    origin = module_server.url
    for pdp in (origin, f"{origin}/v1/tenants/{TENANT}"):
        well_known = "/.well-known/authzen-configuration" + pdp.removeprefix(origin)
        response = client.get(well_known)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert shaped(az.PdpMetadata, response.json()) == {
            "policy_decision_point": pdp,
            "access_evaluation_endpoint": f"{pdp}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{pdp}/access/v1/evaluations",
            "search_subject_endpoint": f"{pdp}/access/v1/search/subject",
            "search_resource_endpoint": f"{pdp}/access/v1/search/resource",
            "search_action_endpoint": f"{pdp}/access/v1/search/action",
        }
        # each endpoint it names answers
        body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_write"}}
        url = response.json()["access_evaluation_endpoint"].removeprefix(origin)
        assert client.post(url, json=body).json() == {"decision": True}


def test_keys_and_the_configured_default_tenant(start_server: Callable[..., Server]) -> None:
    server = start_server(preshared_keys=("k1",), authzen_default_tenant="gateway")
    body = {"subject": ALICE, "resource": ACCOUNT, "action": {"name": "can_write"}}
    with server.client() as anonymous:
        for path in ("/access/v1/evaluation", "/v1/tenants/t1/access/v1/search/action"):
            response = anonymous.post(path, json=body)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["message"].startswith("missing bearer token")
        # Discovery is open, as OAuth's metadata is: endpoint URLs only, for any tenant id.
        for path in ("", "/v1/tenants/t1", "/v1/tenants/no-such-tenant"):
            found = anonymous.get("/.well-known/authzen-configuration" + path)
            assert found.status_code == 200, found.text
            assert found.json()["access_evaluation_endpoint"].endswith(
                path + "/access/v1/evaluation"
            )
    with server.client(headers={"Authorization": "Bearer k1"}) as keyed:
        assert keyed.post("/access/v1/evaluation", json=body).status_code == 404  # no tenant yet
        _seed(keyed, "gateway")
        assert keyed.post("/access/v1/evaluation", json=body).json() == {"decision": True}


def test_at_most_so_many_evaluations(client: httpx.Client) -> None:
    items = _documents("1") * (az.MAX_EVALUATIONS + 1)
    body = {"subject": ALICE, "action": {"name": "read"}, "evaluations": items}
    error = post(client, "/evaluations", body, status=400)
    assert error["message"].startswith("evaluations: ")
    assert str(az.MAX_EVALUATIONS) in error["message"]


def test_the_default_tenant_setting() -> None:
    environ = {"STONETOWN_AUTHZEN_DEFAULT_TENANT": "gateway"}
    assert load_config(environ=environ).authzen_default_tenant == "gateway"
    assert Config().authzen_default_tenant == "t1"
    with pytest.raises(ConfigError, match="authzen_default_tenant"):
        Config(authzen_default_tenant="no/slashes")


def test_the_openapi_document_lists_the_authzen_endpoints(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for prefix in ("", "/v1/tenants/{tenant_id}"):
        for name in (
            "evaluation",
            "evaluations",
            "search/subject",
            "search/resource",
            "search/action",
        ):
            assert paths[f"{prefix}/access/v1/{name}"]["post"]["tags"] == ["AuthZEN"]
    assert "get" in paths["/.well-known/authzen-configuration/v1/tenants/{tenant_id}"]


def _checks(client: httpx.Client) -> dict[str, float]:
    counts = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("stonetown_checks_total{"):
            counts[line.split('result="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return counts


def test_requests_and_decisions_are_counted(client: httpx.Client) -> None:
    route = "/v1/tenants/{tenant_id}/access/v1/evaluations"
    requests_before, checks_before = finished_requests(client, route), _checks(client)
    items = [*_documents("1", "2"), {"resource": {"type": "spaceship", "id": "1"}}]
    decisions(client, {**SEMANTICS_REQUEST, "evaluations": items})
    requests_after, checks_after = finished_requests(client, route), _checks(client)
    assert requests_after.get("200", 0) - requests_before.get("200", 0) == 1
    for result in ("allowed", "denied", "error"):
        assert checks_after[result] - checks_before[result] == 1, result
