"""Seed 003's relationship records (D1-D6) against a real server and LevelDB."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.services import SERVICES
from tests.api.relations_support import (
    CONTACT_SCHEMA,
    KINDS,
    RECORD_FIELDS,
    UNKNOWN_KIND,
    new_tenant,
    read_tuples,
    register,
    strapi_error,
)

SERVER_FIELDS = ("created_at", "updated_at")
_BARE = itertools.count()


@pytest.fixture(scope="module")
def server(module_server: Any) -> Any:
    """One server for the module; each test works in a tenant of its own."""
    return module_server


@pytest.fixture(scope="module")
def api(server: Any) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def tenant(api: httpx.Client) -> str:
    return new_tenant(api, CONTACT_SCHEMA)


def records(tenant: str) -> str:
    return f"/v1/tenants/{tenant}/xapi2/data/relationship"


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post(api: httpx.Client, tenant: str, body: dict[str, Any], secret: str = "") -> httpx.Response:
    return api.post(records(tenant), json=body, headers=auth(secret) if secret else {})


def made(
    api: httpx.Client,
    tenant: str,
    kind: str,
    parent: str,
    target: str,
    secret: str = "",
    **extra: Any,
) -> dict[str, Any]:
    body = {"kind": kind, "parent_id": parent, "target_id": target, **extra}
    response = post(api, tenant, body, secret)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def fetch(api: httpx.Client, tenant: str, record_id: str, secret: str = "") -> httpx.Response:
    return api.get(f"{records(tenant)}/{record_id}", headers=auth(secret) if secret else {})


def one(api: httpx.Client, tenant: str, record_id: str) -> dict[str, Any]:
    response = fetch(api, tenant, record_id)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def listing(api: httpx.Client, tenant: str, secret: str = "", **params: Any) -> dict[str, Any]:
    response = api.get(records(tenant), params=params, headers=auth(secret) if secret else {})
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(api: httpx.Client, tenant: str, secret: str = "", **params: Any) -> list[str]:
    return [r["id"] for r in listing(api, tenant, secret, **params)["data"]]


def paths(err: dict[str, Any]) -> list[list[Any]]:
    return [e["path"] for e in err["details"]["errors"]]


def write(api: httpx.Client, tenant: str, *tuples: str) -> str:
    body = []
    for text in tuples:
        entity, _, subject = text.partition("@")
        entity, _, relation = entity.partition("#")
        et, eid = entity.split(":")
        st, sid = subject.split(":")
        body.append(
            {
                "entity": {"type": et, "id": eid},
                "relation": relation,
                "subject": {"type": st, "id": sid},
            }
        )
    response = api.post(f"/v1/tenants/{tenant}/data/write", json={"tuples": body})
    assert response.status_code == 200, response.text
    return str(response.json()["snap_token"])


def token(api: httpx.Client, tenant: str, scopes: list[str], subject: str | None = None) -> str:
    body = {"name": "test", "scopes": scopes, "subject": subject}
    response = api.post(f"/v1/tenants/{tenant}/tokens", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["token"])


def settings(api: httpx.Client, tenant: str, **fields: Any) -> None:
    response = api.put(f"/v1/tenants/{tenant}/relations/settings", json=fields)
    assert response.status_code == 200, response.text


def without(record: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in fields}


# -- D3: create --------------------------------------------------------------------------------

VALID = {"kind": "friend", "parent_id": "a", "target_id": "b"}


@pytest.mark.parametrize(
    "change, path, message",
    [
        ({"kind": "cousin"}, "kind", UNKNOWN_KIND),
        ({"kind": 3}, "kind", UNKNOWN_KIND),
        ({"kind": None}, "kind", "kind is a required field"),
        ({"label": "x" * 81}, "label", "label must be at most 80 characters"),
        ({"since": "x" * 33}, "since", "since must be at most 32 characters"),
        ({"notes": "x" * 2001}, "notes", "notes must be at most 2000 characters"),
        ({"notes": 5}, "notes", "notes must be a string"),
        ({"label": True}, "label", "label must be a string"),
        ({"since": ["1990"]}, "since", "since must be a string"),
        ({"parent_id": None}, "parent_id", "parent_id is a required field"),
        ({"parent_id": ""}, "parent_id", "parent_id is a required field"),
        ({"target_id": 12}, "target_id", "target_id must be a string"),
        ({"parent_id": "p" * 65}, "parent_id", "parent_id must be at most 64 characters"),
        (
            {"target_id": "a/b"},
            "target_id",
            "target_id must be an id of letters, digits and _ - @ . : +",
        ),
        (
            {"target_id": "a"},
            "target_id",
            "target_id must be a different contact than parent_id",
        ),
    ],
    ids=[
        "kind-unknown",
        "kind-not-string",
        "kind-missing",
        "label-81",
        "since-33",
        "notes-2001",
        "notes-number",
        "label-bool",
        "since-list",
        "parent-missing",
        "parent-empty",
        "target-number",
        "parent-65",
        "target-bad-chars",
        "self-link",
    ],
)
def test_create_rejects_an_invalid_field_and_writes_nothing(
    api: httpx.Client, tenant: str, change: dict[str, Any], path: str, message: str
) -> None:
    body = {**VALID, **change}
    if change.get("kind", "") is None:
        del body["kind"]
    err = strapi_error(post(api, tenant, body), 400)
    assert err["message"] == message
    assert paths(err) == [[path]]
    assert listing(api, tenant)["data"] == []


def test_create_reports_every_invalid_field_at_once(api: httpx.Client, tenant: str) -> None:
    body = {"kind": "cousin", "label": "x" * 81, "notes": 5}
    err = strapi_error(post(api, tenant, body), 400)
    assert err["message"] == "5 errors occurred"
    assert paths(err) == [["kind"], ["label"], ["notes"], ["parent_id"], ["target_id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"label": "x" * 80, "notes": "n" * 2000, "since": "s" * 32},
        {"parent_id": "p" * 64, "target_id": "t" * 64},
        {"parent_id": "A-z_0@.:+", "label": None, "notes": None, "since": None},
    ],
    ids=["text-limits", "id-limit", "id-charset-and-nulls"],
)
def test_create_accepts_values_at_the_limits(
    api: httpx.Client, tenant: str, body: dict[str, Any]
) -> None:
    response = post(api, tenant, {**VALID, **body})
    assert response.status_code == 201, response.text
    record = response.json()["data"]
    for key, value in body.items():
        assert record[key] == value


def test_create_ignores_server_managed_and_unknown_fields(api: httpx.Client, tenant: str) -> None:
    secret = token(api, tenant, ["relationship:*"])
    extra = {
        "id": "rel-mine",
        "owned_by": "user:mallory",
        "created_at": "1999-01-01T00:00:00Z",
        "updated_at": "1999-01-01T00:00:00Z",
        "status": "deleted",
        "is_archived": True,
        "is_mirror": True,
        "pair_id": "rel-other",
        "foo": "bar",
    }
    response = post(api, tenant, {**VALID, **extra}, secret)
    assert response.status_code == 201, response.text
    record = response.json()["data"]
    assert record["id"].startswith("rel-") and record["id"] != "rel-mine"
    assert record["owned_by"].startswith("token:tok-")
    assert record["status"] == "active"
    assert record["is_archived"] is False
    assert record["is_mirror"] is False
    assert record["pair_id"] not in (None, "rel-other")
    assert record["created_at"] > "2020" and record["created_at"] == record["updated_at"]
    assert "foo" not in record
    assert one(api, tenant, record["id"]) == record


def test_create_answers_the_record_and_a_snap_token(api: httpx.Client, tenant: str) -> None:
    response = post(api, tenant, {**VALID, "label": "Bestie", "since": "2001"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"]["snap_token"]
    record = body["data"]
    assert without(record, "id", "pair_id", *SERVER_FIELDS) == {
        "kind": "friend",
        "label": "Bestie",
        "notes": None,
        "since": "2001",
        "parent_id": "a",
        "target_id": "b",
        "status": "active",
        "is_archived": False,
        "owned_by": None,
        "is_mirror": False,
    }


@pytest.mark.parametrize(
    "kind, inverse",
    [("parent", "child"), ("spouse", "spouse"), ("report", "manager")],
    ids=["parent-child", "symmetric", "inverse-registered-second"],
)
def test_create_writes_the_mirror_with_the_inverse_kind(
    api: httpx.Client, tenant: str, kind: str, inverse: str
) -> None:
    write(api, tenant, "contact:A#owner@user:alice", "contact:B#owner@user:alice")
    secret = token(api, tenant, ["relationship:*"], "user:alice")
    record = made(api, tenant, kind, "A", "B", secret, label="Mom")
    mirror = one(api, tenant, record["pair_id"])
    assert mirror["pair_id"] == record["id"]
    assert mirror["is_mirror"] is True
    assert (mirror["kind"], mirror["parent_id"], mirror["target_id"]) == (inverse, "B", "A")
    assert mirror["owned_by"] == record["owned_by"] == "user:alice"
    assert mirror["label"] == "Mom"
    assert mirror["created_at"] == record["created_at"]
    assert ids(api, tenant, parent_id="B") == [mirror["id"]]
    assert ids(api, tenant, target_id="B") == [record["id"]]


def test_create_refuses_a_link_that_exists_either_way(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "parent", "A", "B")
    for body in (
        {"kind": "parent", "parent_id": "A", "target_id": "B"},
        {"kind": "child", "parent_id": "B", "target_id": "A"},
    ):
        err = strapi_error(post(api, tenant, body), 409)
        assert err["details"]["code"] == "relation_exists"
        assert err["details"]["existing_relation_id"] in (record["id"], record["pair_id"])
    assert len(listing(api, tenant)["data"]) == 2


def test_create_checks_that_the_caller_owns_both_contacts(api: httpx.Client, tenant: str) -> None:
    write(
        api,
        tenant,
        "contact:mine#owner@user:alice",
        "contact:also_mine#owner@user:alice",
        "contact:bobs#owner@user:bob",
        "contact:seen#viewer@user:alice",
    )
    secret = token(api, tenant, ["relationship:create", "relationship:list"], "user:alice")
    bodies = {
        target: {"kind": "friend", "parent_id": "mine", "target_id": target}
        for target in ("bobs", "ghost", "seen")
    }
    errors = [strapi_error(post(api, tenant, body, secret), 400) for body in bodies.values()]
    assert errors[0] == errors[1] == errors[2]
    assert errors[0]["message"] == "target_id must reference a contact you own"
    assert paths(errors[0]) == [["target_id"]]
    both = strapi_error(
        post(api, tenant, {**VALID, "parent_id": "bobs", "target_id": "ghost"}, secret), 400
    )
    assert paths(both) == [["parent_id"], ["target_id"]]
    assert listing(api, tenant)["data"] == []
    made(api, tenant, "friend", "mine", "also_mine", secret)


def test_create_validates_the_body_before_checking_ownership(
    api: httpx.Client, tenant: str
) -> None:
    secret = token(api, tenant, ["relationship:create"], "user:alice")
    err = strapi_error(post(api, tenant, {**VALID, "target_id": "ghost", "label": 5}, secret), 400)
    assert paths(err) == [["label"]]


def test_create_adopts_a_raw_tuple_of_a_kind(api: httpx.Client, tenant: str) -> None:
    # Written before the kinds' types are registered: afterwards a raw write of one side of a
    # pair is refused (tests/api/test_relations_pairs.py).
    write(api, tenant, "contact:A#friend@contact:B")
    ids(api, tenant)  # registers the kinds' types
    assert listing(api, tenant)["data"] == []
    record = made(api, tenant, "friend", "A", "B")
    assert {r["id"] for r in listing(api, tenant)["data"]} == {record["id"], record["pair_id"]}


def test_create_makes_both_tuples_visible_at_one_snap_token(api: httpx.Client, tenant: str) -> None:
    before = write(api, tenant, "contact:A#owner@user:alice")
    response = post(api, tenant, {"kind": "mentor", "parent_id": "A", "target_id": "B"})
    assert response.status_code == 201, response.text
    after = response.json()["meta"]["snap_token"]
    pair = {"contact:A#mentor@contact:B", "contact:B#mentee@contact:A"}
    assert pair <= read_tuples(api, tenant, "contact", after)
    assert not pair & read_tuples(api, tenant, "contact", before)


# -- D2/D4/D5 ----------------------------------------------------------------------------------


def test_get_of_an_unknown_id_is_404(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(fetch(api, tenant, "rel-nope"), 404)
    assert err["message"] == "relation rel-nope not found"


def test_get_does_not_show_relations_of_other_types(
    server: Any, api: httpx.Client, tenant: str
) -> None:
    register(server, tenant, "contact", "knows", "contact")
    response = api.post(
        f"/v1/tenants/{tenant}/entities/contact:A/relations",
        json={"target_entity_id": "contact:B", "relation_type": "knows"},
    )
    assert response.status_code == 201, response.text
    other = response.json()["data"]["id"]
    strapi_error(fetch(api, tenant, other), 404)
    assert listing(api, tenant)["data"] == []
    strapi_error(api.patch(f"{records(tenant)}/{other}", json={"label": "x"}), 404)
    strapi_error(api.delete(f"{records(tenant)}/{other}"), 404)


def test_patch_changes_only_texts_on_both_rows(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "parent", "A", "B", notes="n")
    body = {
        "kind": "friend",
        "parent_id": "x",
        "target_id": "y",
        "label": "Dad",
        "owned_by": "user:eve",
        "status": "gone",
        "is_archived": True,
        "id": "rel-x",
    }
    response = api.patch(f"{records(tenant)}/{record['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["snap_token"]
    patched = response.json()["data"]
    assert without(patched, "label", "updated_at") == without(record, "label", "updated_at")
    assert patched["label"] == "Dad" and patched["notes"] == "n"
    assert patched["updated_at"] > record["updated_at"]
    assert one(api, tenant, record["id"]) == patched
    mirror = one(api, tenant, record["pair_id"])
    assert (mirror["kind"], mirror["label"], mirror["notes"]) == ("child", "Dad", "n")


def test_patch_through_the_mirror_updates_the_primary(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "manager", "A", "B")
    response = api.patch(f"{records(tenant)}/{record['pair_id']}", json={"since": "2020"})
    assert response.status_code == 200, response.text
    assert one(api, tenant, record["id"])["since"] == "2020"


@pytest.mark.parametrize(
    "body",
    [{}, {"label": "Mom"}, {"kind": "friend", "foo": 1}, {"notes": None}],
    ids=["empty", "same-value", "ignored-only", "null-already-null"],
)
def test_patch_without_a_difference_leaves_the_record_unchanged(
    api: httpx.Client, tenant: str, body: dict[str, Any]
) -> None:
    record = made(api, tenant, "parent", "A", "B", label="Mom")
    response = api.patch(f"{records(tenant)}/{record['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == record
    assert one(api, tenant, record["pair_id"])["updated_at"] == record["updated_at"]


def test_patch_null_clears_a_text(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "sibling", "A", "B", label="Sis", since="1990")
    response = api.patch(f"{records(tenant)}/{record['id']}", json={"label": None})
    assert response.status_code == 200, response.text
    assert (response.json()["data"]["label"], response.json()["data"]["since"]) == (None, "1990")
    assert one(api, tenant, record["pair_id"])["label"] is None


@pytest.mark.parametrize(
    "body, message",
    [
        ({"label": "x" * 81}, "label must be at most 80 characters"),
        ({"notes": 5}, "notes must be a string"),
        ([1], "Body must be a JSON object"),
    ],
    ids=["label-81", "notes-number", "not-an-object"],
)
def test_patch_rejects_invalid_texts(
    api: httpx.Client, tenant: str, body: Any, message: str
) -> None:
    record = made(api, tenant, "friend", "A", "B", label="ok")
    err = strapi_error(api.patch(f"{records(tenant)}/{record['id']}", json=body), 400)
    assert err["message"] == message
    assert one(api, tenant, record["id"]) == record


def test_delete_removes_the_pair_from_every_view(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "colleague", "A", "B")
    kept = made(api, tenant, "friend", "A", "C")
    entity = f"/v1/tenants/{tenant}/entities/contact:A/relations"
    assert record["id"] in [r["id"] for r in api.get(entity).json()["data"]]
    response = api.delete(f"{records(tenant)}/{record['id']}")
    assert response.status_code == 204 and response.content == b""
    assert set(ids(api, tenant)) == {kept["id"], kept["pair_id"]}
    assert [r["id"] for r in api.get(entity).json()["data"]] == [kept["id"]]
    links = api.get(f"/v1/tenants/{tenant}/relationships").json()["data"]
    assert {r["relationshipId"] for r in links} == {kept["id"], kept["pair_id"]}
    tuples = read_tuples(api, tenant, "contact")
    assert not {"contact:A#colleague@contact:B", "contact:B#colleague@contact:A"} & tuples
    for record_id in (record["id"], record["pair_id"]):
        strapi_error(fetch(api, tenant, record_id), 404)
        strapi_error(api.delete(f"{records(tenant)}/{record_id}"), 404)


def test_delete_through_the_mirror_removes_both(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "mentee", "A", "B")
    assert api.delete(f"{records(tenant)}/{record['pair_id']}").status_code == 204
    assert ids(api, tenant) == []


def test_raw_delete_of_a_primary_tuple_deletes_the_pair(api: httpx.Client, tenant: str) -> None:
    record = made(api, tenant, "parent", "A", "B")
    body = {
        "tuple_filter": {
            "entity": {"type": "contact", "ids": ["A"]},
            "relation": "parent",
            "subject": {"type": "contact", "ids": ["B"]},
        }
    }
    response = api.post(f"/v1/tenants/{tenant}/data/delete", json=body)
    assert response.status_code == 200, response.text
    assert ids(api, tenant) == []
    strapi_error(fetch(api, tenant, record["pair_id"]), 404)
    strapi_error(fetch(api, tenant, record["id"]), 404)
    assert read_tuples(api, tenant, "contact") == set()


# -- object-level access (tokens with a subject) ---------------------------------------------


@pytest.fixture
def shared(api: httpx.Client, tenant: str) -> dict[str, Any]:
    """Alice owns a1/a2, may view (not edit) b1; bob's b1/b2 relations were made by the admin."""
    write(
        api,
        tenant,
        "contact:a1#owner@user:alice",
        "contact:a2#owner@user:alice",
        "contact:b1#owner@user:bob",
        "contact:b2#owner@user:bob",
        "contact:b3#owner@user:bob",
        "contact:b1#viewer@user:alice",
    )
    alice = token(api, tenant, ["relationship:*"], "user:alice")
    return {
        "alice": alice,
        "own": made(api, tenant, "friend", "a1", "a2", alice),
        "viewable": made(api, tenant, "friend", "b1", "b2"),
        "hidden": made(api, tenant, "friend", "b2", "b3"),
    }


def test_unreadable_record_reads_as_missing(
    api: httpx.Client, tenant: str, shared: dict[str, Any]
) -> None:
    hidden = shared["hidden"]["id"]
    err = strapi_error(fetch(api, tenant, hidden, shared["alice"]), 404)
    missing = strapi_error(fetch(api, tenant, "rel-nope", shared["alice"]), 404)
    assert err["message"] == f"relation {hidden} not found"
    assert without(err, "message") == without(missing, "message")
    headers = auth(shared["alice"])
    for response in (
        api.patch(f"{records(tenant)}/{hidden}", json={"label": "x"}, headers=headers),
        api.delete(f"{records(tenant)}/{hidden}", headers=headers),
    ):
        assert strapi_error(response, 404)["message"] == f"relation {hidden} not found"


def test_readable_but_not_writable_record_is_403(
    api: httpx.Client, tenant: str, shared: dict[str, Any]
) -> None:
    viewable = shared["viewable"]
    headers = auth(shared["alice"])
    assert fetch(api, tenant, viewable["id"], shared["alice"]).json()["data"] == viewable
    url = f"{records(tenant)}/{viewable['id']}"
    strapi_error(api.patch(url, json={"label": "x"}, headers=headers), 403)
    strapi_error(api.delete(url, headers=headers), 403)
    assert one(api, tenant, viewable["id"]) == viewable


def test_owner_may_change_and_delete_own_records(
    api: httpx.Client, tenant: str, shared: dict[str, Any]
) -> None:
    own = shared["own"]
    headers = auth(shared["alice"])
    url = f"{records(tenant)}/{own['id']}"
    assert api.patch(url, json={"label": "x"}, headers=headers).status_code == 200
    assert api.delete(f"{records(tenant)}/{own['pair_id']}", headers=headers).status_code == 204


def test_list_shows_only_readable_records(
    api: httpx.Client, tenant: str, shared: dict[str, Any]
) -> None:
    visible = {shared["own"]["id"], shared["own"]["pair_id"], shared["viewable"]["id"]}
    assert set(ids(api, tenant, shared["alice"])) == visible
    assert set(ids(api, tenant, shared["alice"], sort="created_at")) == visible
    assert set(ids(api, tenant, shared["alice"], parent_id=["b1", "b2"])) == {
        shared["viewable"]["id"]
    }
    assert len(ids(api, tenant)) == 6
    hidden = shared["hidden"]["id"]
    err = strapi_error(
        api.get(records(tenant), params={"after": hidden}, headers=auth(shared["alice"])), 400
    )
    assert "invalid cursor" in err["message"]


# -- scopes and credentials --------------------------------------------------------------------

ROUTES = [
    ("GET", "", "relationship:list"),
    ("GET", "/rel-x", "relationship:read"),
    ("POST", "", "relationship:create"),
    ("PATCH", "/rel-x", "relationship:update"),
    ("DELETE", "/rel-x", "relationship:delete"),
]


@pytest.mark.parametrize(
    "method, suffix, scope", ROUTES, ids=[scope.split(":")[1] for _, _, scope in ROUTES]
)
def test_a_route_without_its_scope_is_403_before_the_body_is_read(
    api: httpx.Client, tenant: str, method: str, suffix: str, scope: str
) -> None:
    others = [other for _, _, other in ROUTES if other != scope]
    secret = token(api, tenant, others)
    response = api.request(
        method, records(tenant) + suffix, content=b"{not json", headers=auth(secret)
    )
    err = strapi_error(response, 403)
    assert err["details"] == {"missing_scopes": [scope]}
    assert err["message"] == f"Missing scope {scope}"


@pytest.mark.parametrize("scopes", [["relationship:*"], ["*"]], ids=["family", "all"])
def test_wildcard_scopes_allow_every_route(
    api: httpx.Client, tenant: str, scopes: list[str]
) -> None:
    secret = token(api, tenant, scopes)
    record = made(api, tenant, "friend", "A", "B", secret)
    assert ids(api, tenant, secret) != []
    assert fetch(api, tenant, record["id"], secret).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer pat_" + "x" * 32, "Basic dXNlcjpwdw==", "Bearer"],
    ids=["unknown-pat", "basic", "empty-bearer"],
)
def test_bad_credentials_are_401(api: httpx.Client, tenant: str, header: str) -> None:
    for url in (records(tenant), f"/v1/tenants/{tenant}/xapi2/schema/relationship"):
        response = api.get(url, headers={"Authorization": header})
        strapi_error(response, 401)
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_of_another_tenant_reads_as_an_unknown_tenant(
    api: httpx.Client, tenant: str
) -> None:
    other = new_tenant(api, CONTACT_SCHEMA)
    secret = token(api, other, ["*"])
    assert strapi_error(api.get(records(tenant), headers=auth(secret)), 404)["message"] == (
        f"tenant {tenant} not found"
    )


# -- the data model ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, suffix",
    [*((m, s) for m, s, _ in ROUTES), ("GET", "schema")],
    ids=["list", "get", "create", "update", "delete", "schema"],
)
def test_a_disabled_data_model_hides_every_route(
    api: httpx.Client, tenant: str, method: str, suffix: str
) -> None:
    settings(api, tenant, data_model=None)
    url = (
        f"/v1/tenants/{tenant}/xapi2/schema/relationship"
        if suffix == "schema"
        else records(tenant) + suffix
    )
    err = strapi_error(api.request(method, url, json=VALID), 404)
    assert err["message"].startswith("the record endpoints are turned off for this tenant")


@pytest.mark.parametrize(
    "schema, needle",
    [
        (None, "has no schema yet"),
        ("entity user {}", "the schema has no entity contact"),
        (
            CONTACT_SCHEMA.replace("    relation mentee @contact\n", ""),
            "lacks contact relations mentee",
        ),
        (
            CONTACT_SCHEMA.replace("relation other @contact", "relation other @user"),
            "lacks contact relations other",
        ),
    ],
    ids=["no-schema", "no-contact", "missing-kind", "kind-without-contact-subject"],
)
def test_a_schema_without_the_model_is_404_saying_what_it_needs(
    api: httpx.Client, schema: str | None, needle: str
) -> None:
    if schema is None:
        name = f"bare{next(_BARE)}"
        assert api.post("/v1/tenants/create", json={"id": name, "name": name}).is_success
    else:
        name = new_tenant(api, schema)
    err = strapi_error(api.get(records(name)), 404)
    assert needle in err["message"]
    assert "partner, spouse, parent" in err["message"]


def test_types_are_registered_once_and_existing_ones_kept(
    server: Any, api: httpx.Client, tenant: str
) -> None:
    rel = server.app[SERVICES].relations
    partner = register(server, tenant, "contact", "partner", "contact", cardinality="ONE_TO_ONE")
    ids(api, tenant)
    first = {(rt.role, rt.id, rt.updated_at) for rt in rel.types(tenant)}
    assert {role for role, _, _ in first} == set(KINDS)
    assert len(first) == len(KINDS)
    made(api, tenant, "partner", "A", "B")
    ids(api, tenant)
    assert {(rt.role, rt.id, rt.updated_at) for rt in rel.types(tenant)} == first
    kept = rel.relation_type(tenant, partner)
    assert (kept.cardinality, kept.bidirectional) == ("ONE_TO_ONE", False)
    err = strapi_error(
        post(api, tenant, {"kind": "partner", "parent_id": "A", "target_id": "C"}), 409
    )
    assert err["details"]["code"] == "cardinality_violation"
    parent = next(rt for rt in rel.types(tenant) if rt.role == "parent")
    assert (parent.bidirectional, parent.inverse_role, parent.is_inverse) == (True, "child", False)


def test_a_configured_model_uses_its_own_kinds_in_order(api: httpx.Client) -> None:
    name = new_tenant(
        api,
        "entity user {}\nentity person {\n relation ally @person\n relation boss @person\n"
        " relation minion @person\n}",
    )
    kinds = {"minion": "boss", "ally": "ally", "boss": "minion"}
    settings(api, name, data_model={"ref_type": "person", "kinds": kinds})
    err = strapi_error(post(api, name, {**VALID, "kind": "friend"}), 400)
    assert err["message"] == "kind must be one of the following values: minion, ally, boss"
    record = made(api, name, "boss", "x", "y")
    assert one(api, name, record["pair_id"])["kind"] == "minion"
    entity = api.get(f"/v1/tenants/{name}/entities/person:y/relations").json()["data"]
    assert [r["relation_type"] for r in entity] == ["minion"]


def test_a_model_over_the_person_type_is_404_saying_why(api: httpx.Client) -> None:
    name = new_tenant(api, "entity user {\n relation ally @user\n}")
    settings(api, name, data_model={"ref_type": "user", "kinds": {"ally": "ally"}})
    err = strapi_error(api.get(records(name)), 404)
    assert err["message"].startswith("cannot register the kind ally: ")
    assert "person type" in err["message"]


def test_verbatim_paths_serve_the_default_tenant(server: Any, api: httpx.Client) -> None:
    response = api.post("/v1/tenants/t1/schemas/write", json={"schema": CONTACT_SCHEMA})
    assert response.status_code == 200, response.text
    response = api.post("/xapi2/data/relationship", json={**VALID, "parent_id": "verbatim"})
    assert response.status_code == 201, response.text
    record = response.json()["data"]
    assert fetch(api, "t1", record["id"]).json()["data"] == record
    assert api.get(f"/xapi2/data/relationship/{record['id']}").json()["data"] == record
    listed = api.get("/xapi2/data/relationship", params={"parent_id": "verbatim"}).json()
    assert [r["id"] for r in listed["data"]] == [record["id"]]
    patched = api.patch(f"/xapi2/data/relationship/{record['id']}", json={"label": "v"})
    assert patched.json()["data"]["label"] == "v"
    schema = api.get("/xapi2/schema/relationship").json()["data"]
    assert schema["endpoints"][0]["path"] == "/xapi2/data/relationship"
    assert api.delete(f"/xapi2/data/relationship/{record['id']}").status_code == 204
    strapi_error(fetch(api, "t1", record["id"]), 404)


# -- D6 ----------------------------------------------------------------------------------------


def test_schema_describes_fields_lists_and_scopes(api: httpx.Client, tenant: str) -> None:
    secret = token(api, tenant, ["relationship_type:read"])
    response = api.get(f"/v1/tenants/{tenant}/xapi2/schema/relationship", headers=auth(secret))
    assert response.status_code == 200, response.text
    schema = response.json()["data"]
    fields = {f["name"]: f for f in schema["fields"]}
    assert tuple(fields) == RECORD_FIELDS
    assert len({tuple(f) for f in schema["fields"]}) == 1  # every field has the same keys
    assert fields["kind"]["enum"] == KINDS
    assert (fields["kind"]["required"], fields["kind"]["create"], fields["kind"]["patch"]) == (
        True,
        True,
        False,
    )
    limits = {name: fields[name]["max_length"] for name in ("label", "notes", "since")}
    assert limits == {"label": 80, "notes": 2000, "since": 32}
    assert all(fields[n]["patch"] and fields[n]["nullable"] for n in limits)
    for name in ("parent_id", "target_id"):
        assert fields[name]["max_length"] == 64 and fields[name]["ref"] == "contact"
        assert (fields[name]["create"], fields[name]["patch"]) == (True, False)
    for name in ("id", "status", "owned_by", "pair_id", "created_at"):
        assert fields[name]["server_managed"] and not fields[name]["create"]
    assert [f["name"] for f in schema["filters"]] == [
        "parent_id",
        "target_id",
        "kind",
        "status",
        "is_archived",
        "owned_by",
    ]
    assert schema["sort"]["keys"] == ["created_at", "kind"]
    assert schema["sort"]["default"] == "kind"
    assert (schema["pagination"]["default_limit"], schema["pagination"]["max_limit"]) == (20, 200)
    scopes = {(e["method"], e["path"]): e["scope"] for e in schema["endpoints"]}
    base = f"/v1/tenants/{tenant}/xapi2"
    assert scopes == {
        ("GET", f"{base}/data/relationship"): "relationship:list",
        ("GET", f"{base}/data/relationship/{{id}}"): "relationship:read",
        ("POST", f"{base}/data/relationship"): "relationship:create",
        ("PATCH", f"{base}/data/relationship/{{id}}"): "relationship:update",
        ("DELETE", f"{base}/data/relationship/{{id}}"): "relationship:delete",
        ("GET", f"{base}/schema/relationship"): None,
    }


# -- D1: filters and sorts ---------------------------------------------------------------------


@pytest.fixture
def family(api: httpx.Client, tenant: str) -> list[dict[str, Any]]:
    """Rows (primaries and mirrors) of a few records, as D2 shows them."""
    made(api, tenant, "spouse", "A", "B", label="x")
    made(api, tenant, "partner", "A", "C")
    made(api, tenant, "parent", "A", "D")
    made(api, tenant, "friend", "B", "C")
    made(api, tenant, "spouse", "C", "D")
    return [one(api, tenant, i) for i in ids(api, tenant, limit=200)]


@pytest.mark.parametrize(
    "params, wanted",
    [
        ({"kind": ["spouse", "partner"]}, lambda r: r["kind"] in ("spouse", "partner")),
        ({"parent_id": "A"}, lambda r: r["parent_id"] == "A"),
        (
            {"parent_id": ["A", "C"], "kind": "spouse"},
            lambda r: r["parent_id"] in "AC" and r["kind"] == "spouse",
        ),
        ({"target_id": "A"}, lambda r: r["target_id"] == "A"),
        (
            {"parent_id": "A", "target_id": "C"},
            lambda r: (r["parent_id"], r["target_id"]) == ("A", "C"),
        ),
        ({"is_archived": "false"}, lambda r: True),
        ({"is_archived": "true"}, lambda r: False),
        ({"status": "active", "kind": "child"}, lambda r: r["kind"] == "child"),
        ({"status": "archived"}, lambda r: False),
        ({"owned_by": "user:nobody"}, lambda r: False),
    ],
    ids=[
        "kind-in",
        "parent",
        "parents-and-kind",
        "target",
        "parent-and-target",
        "not-archived",
        "archived",
        "status-and-kind",
        "other-status",
        "owner",
    ],
)
def test_list_filters_are_anded_and_repeats_mean_in(
    api: httpx.Client,
    tenant: str,
    family: list[dict[str, Any]],
    params: dict[str, Any],
    wanted: Any,
) -> None:
    expected = sorted(
        (r for r in family if wanted(r)), key=lambda r: (r["kind"], r["created_at"], r["id"])
    )
    assert listing(api, tenant, **params)["data"] == expected


def test_list_filters_on_the_owner(api: httpx.Client, tenant: str) -> None:
    secret = token(api, tenant, ["relationship:*"])
    mine = made(api, tenant, "friend", "A", "B", secret)
    made(api, tenant, "friend", "A", "C")
    owner = mine["owned_by"]
    assert set(ids(api, tenant, owned_by=owner)) == {mine["id"], mine["pair_id"]}


@pytest.mark.parametrize(
    "params, path",
    [
        ({"is_archived": "maybe"}, "is_archived"),
        ({"colour": "red"}, "colour"),
        ({"kind": ""}, "kind"),
        ({"kind": "cousin"}, "kind"),
        ({"sort": "name"}, "sort"),
        ({"sort": "created_at,kind"}, "sort"),
        ({"sort": "kind,kind"}, "sort"),
        ({"sort": ["kind", "created_at"]}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
    ids=[
        "bool-maybe",
        "unknown-key",
        "empty-value",
        "unknown-kind",
        "unknown-sort",
        "created-then-kind",
        "kind-twice",
        "sort-twice",
        "limit-0",
        "limit-negative",
        "limit-text",
        "offset-negative",
    ],
)
def test_list_rejects_bad_query_parameters(
    api: httpx.Client, tenant: str, params: dict[str, Any], path: str
) -> None:
    err = strapi_error(api.get(records(tenant), params=params), 400)
    assert paths(err) == [[path]]


ORDERS = {
    "kind": lambda rows: sorted(rows, key=lambda r: (r["kind"], r["created_at"], r["id"])),
    "-kind": lambda rows: sorted(
        rows, key=lambda r: (r["kind"], r["created_at"], r["id"]), reverse=True
    ),
    "kind,-created_at": lambda rows: sorted(
        sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True),
        key=lambda r: r["kind"],
    ),
    "-kind,created_at": lambda rows: sorted(
        sorted(rows, key=lambda r: (r["created_at"], r["id"])),
        key=lambda r: r["kind"],
        reverse=True,
    ),
    "created_at": lambda rows: sorted(rows, key=lambda r: (r["created_at"], r["id"])),
    "-created_at": lambda rows: sorted(
        rows, key=lambda r: (r["created_at"], r["id"]), reverse=True
    ),
}


@pytest.mark.parametrize("sort", list(ORDERS), ids=list(ORDERS))
@pytest.mark.parametrize(
    "where", [{}, {"parent_id": ["A", "B"]}, {"target_id": "C"}], ids=["all", "parents", "target"]
)
def test_list_sorts_the_same_with_or_without_an_entity_filter(
    api: httpx.Client, tenant: str, family: list[dict[str, Any]], sort: str, where: dict[str, Any]
) -> None:
    rows = [
        r
        for r in family
        if r["parent_id"] in where.get("parent_id", r["parent_id"])
        and r["target_id"] == where.get("target_id", r["target_id"])
    ]
    assert ids(api, tenant, sort=sort, **where) == [r["id"] for r in ORDERS[sort](rows)]


def test_list_default_order_is_kind_then_created_then_id(
    api: httpx.Client, tenant: str, family: list[dict[str, Any]]
) -> None:
    assert listing(api, tenant)["data"] == ORDERS["kind"](family)
    newest = listing(api, tenant, sort="-created_at")["data"]
    assert newest[0]["created_at"] == max(r["created_at"] for r in family)


# -- D1: pagination over many rows -------------------------------------------------------------


@pytest.fixture(scope="module")
def many(api: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """45 records (90 rows: each has its mirror) in a tenant of their own."""
    name = new_tenant(api, CONTACT_SCHEMA)
    kinds = itertools.cycle(["friend", "parent", "spouse", "mentor", "other"])
    for i in range(45):
        made(api, name, next(kinds), f"c{i}", f"c{i + 1}")
    rows = listing(api, name, limit=500)["data"]
    return name, rows


def test_list_pages_20_by_default(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client
) -> None:
    name, rows = many
    body = listing(api, name)
    assert body["data"] == rows[:20]
    assert body["meta"]["pagination"] == {
        "limit": 20,
        "offset": 0,
        "has_more": True,
        "next_offset": 20,
    }


def test_list_clamps_the_limit_to_200(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client
) -> None:
    name, rows = many
    body = listing(api, name, limit=500)
    assert len(body["data"]) == len(rows) == 90
    assert body["meta"]["pagination"]["limit"] == 200
    assert body["meta"]["pagination"]["has_more"] is False
    assert body["meta"]["pagination"]["next_offset"] is None


def test_list_offset_pages(many: tuple[str, list[dict[str, Any]]], api: httpx.Client) -> None:
    name, rows = many
    body = listing(api, name, offset=40, limit=20)
    assert body["data"] == rows[40:60]
    assert body["meta"]["pagination"]["next_offset"] == 60
    walked: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        body = listing(api, name, offset=offset, limit=13)
        walked.extend(body["data"])
        offset = body["meta"]["pagination"]["next_offset"]
    assert walked == rows


@pytest.mark.parametrize(
    "sort", [None, "created_at", "-created_at"], ids=["implied", "asc", "desc"]
)
def test_list_keyset_walk_yields_every_row_once(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client, sort: str | None
) -> None:
    name, rows = many
    order = ORDERS[sort or "created_at"](rows)
    assert len({r["created_at"] for r in rows}) < len(rows)  # mirrors share created_at
    extra = {"sort": sort} if sort else {}
    first = listing(api, name, limit=7, sort=sort or "created_at")
    walked = list(first["data"])
    cursor = first["meta"]["pagination"]["next_after"]
    while cursor is not None:
        body = listing(api, name, limit=7, after=cursor, **extra)
        assert "next_offset" not in body["meta"]["pagination"]
        walked.extend(body["data"])
        cursor = body["meta"]["pagination"]["next_after"]
    assert [r["id"] for r in walked] == [r["id"] for r in order]


def test_list_after_starts_strictly_after_the_cursor(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client
) -> None:
    name, rows = many
    order = ORDERS["created_at"](rows)
    body = listing(api, name, after=order[9]["id"], limit=5)
    assert body["data"] == order[10:15]
    assert body["meta"]["pagination"]["next_after"] == order[14]["id"]


@pytest.mark.parametrize(
    "params",
    [{"sort": "kind"}, {"offset": "5"}, {"kind": "parent"}],
    ids=["kind-sort", "with-offset", "cursor-filtered-out"],
)
def test_list_after_refuses_what_it_cannot_page(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client, params: dict[str, str]
) -> None:
    name, rows = many
    cursor = next(r["id"] for r in rows if r["kind"] == "friend")
    strapi_error(api.get(records(name), params={"after": cursor, **params}), 400)


def test_list_after_an_unknown_id_is_an_invalid_cursor(
    many: tuple[str, list[dict[str, Any]]], api: httpx.Client
) -> None:
    name, _ = many
    err = strapi_error(api.get(records(name), params={"after": "rel-nonexistent"}), 400)
    assert err["message"].startswith("invalid cursor")
