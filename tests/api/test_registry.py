"""The relationship-type registry (R1-R4) and relationships by id (L1-L4) over HTTP: a real
server on LevelDB, each test in a tenant of its own (spec Part 4 cases 1-15, 53-56)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api.services import SERVICES
from tests.api.conftest import Server
from tests.api.relations_support import strapi_error
from tests.api.support import Clock, entity_json, subject_json, tuple_json, tuple_text

SCHEMA = """
entity user {
    relation placed @order
}
entity order {
    relation placed_by @user
    relation owner @user
    relation contains @line_item
    permission view = owner or placed_by
    permission edit = owner
}
entity line_item {
    relation part_of @order
    relation within @order
    permission view = part_of.view
}
entity contact {
    relation spouse @contact
    relation friend @contact
    relation works_at @company
    relation owner @user
    relation viewer @user
    permission view = owner or viewer
    permission edit = owner
}
entity company {
    relation employs @contact
}
"""


def co_to_co(role: str, parent: str, child: str, **fields: Any) -> dict[str, Any]:
    """An R1 body for a type ``role`` from custom object type ``parent`` to ``child``."""
    return {
        "kind": "co_to_co",
        "role": role,
        "parentCustomObjectType": parent,
        "childCustomObjectType": child,
        **fields,
    }


PLACED = {
    "kind": "person_to_co",
    "role": "placed",
    "customObjectType": "order",
    "cardinality": "ONE_TO_MANY",
    "description": "Orders a person placed",
    "bidirectional": True,
    "inverseRole": "placed_by",
}
CONTAINS = co_to_co("contains", "order", "line_item")
TYPE_FIELDS = {
    "relationshipTypeId",
    "kind",
    "role",
    "sourceType",
    "targetType",
    "customObjectType",
    "cardinality",
    "description",
    "bidirectional",
    "inverseRole",
    "inverseRelationshipTypeId",
    "isInverse",
    "createdAt",
    "updatedAt",
}
LINK_FIELDS = {
    "relationshipId",
    "relationshipTypeId",
    "role",
    "source",
    "target",
    "metadata",
    "mirrorRelationshipId",
    "isMirror",
    "position",
    "ownedBy",
    "createdAt",
    "updatedAt",
}


class Tenant:
    """A fresh tenant with the schema written, and shortcuts for its relations routes."""

    def __init__(self, server: Server, http: httpx.Client, token: str | None = None) -> None:
        self.server = server
        self.http = http
        self.id = f"reg-{uuid.uuid4().hex[:12]}"
        self.base = f"/v1/tenants/{self.id}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        created = http.post("/v1/tenants/create", json={"id": self.id, "name": self.id})
        assert created.status_code == 200, created.text
        wrote = http.post(f"{self.base}/schemas/write", json={"schema": SCHEMA})
        assert wrote.status_code == 200, wrote.text

    def as_token(self, token: str) -> Tenant:
        other = object.__new__(Tenant)
        other.__dict__.update(self.__dict__)
        other.headers = {"Authorization": f"Bearer {token}"}
        return other

    def token(self, scopes: list[str], subject: str | None = None) -> str:
        relations = self.server.app[SERVICES].relations
        return relations.create_token(self.id, "test", scopes, subject, None)[1]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.base + path, headers=self.headers, **kwargs)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.request("POST", path, json=body)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.request("GET", path, params=params)

    def register(self, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = self.post("/relationship-types", body)
        assert response.status_code == status, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def link(
        self, type_id: str, source: str, target: str, metadata: Any = None, status: int = 201
    ) -> dict[str, Any]:
        body = {"relationshipTypeId": type_id, "sourceId": source, "targetId": target}
        if metadata is not None:
            body["metadata"] = metadata
        response = self.post("/relationships", body)
        assert response.status_code == status, response.text
        out: dict[str, Any] = response.json()
        return out

    def raw_write(self, *tuples: str) -> str:
        response = self.http.post(
            f"{self.base}/relationships/write",
            json={"metadata": {"schema_version": ""}, "tuples": [tuple_json(t) for t in tuples]},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["snap_token"]
        return token

    def check(self, entity: str, permission: str, subject: str, token: str) -> bool:
        response = self.http.post(
            f"{self.base}/permissions/check",
            json={
                "metadata": {"snap_token": token, "depth": 20},
                "entity": entity_json(entity),
                "permission": permission,
                "subject": subject_json(subject),
            },
        )
        assert response.status_code == 200, response.text
        return bool(response.json()["can"] == "CHECK_RESULT_ALLOWED")

    def read_tuples(self, entity_type: str, relation: str, token: str) -> set[str]:
        response = self.http.post(
            f"{self.base}/data/relationships/read",
            json={
                "metadata": {"snap_token": token},
                "filter": {"entity": {"type": entity_type, "ids": []}, "relation": relation},
            },
        )
        assert response.status_code == 200, response.text
        return {tuple_text(t) for t in response.json()["tuples"]}


def messages(error: dict[str, Any]) -> list[tuple[list[Any], str]]:
    return [(e["path"], e["message"]) for e in error["details"]["errors"]]


@pytest.fixture(scope="module")
def http(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as client:
        yield client


@pytest.fixture
def t(module_server: Server, http: httpx.Client) -> Tenant:
    return Tenant(module_server, http)


# -- R1 ----------------------------------------------------------------------------------------


def test_registering_a_bidirectional_type_creates_it_and_its_inverse(t: Tenant) -> None:
    response = t.post("/relationship-types", PLACED)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "created", "meta"}
    assert body["created"] is True
    assert isinstance(body["meta"]["snapToken"], str) and body["meta"]["snapToken"]
    rt = body["data"]
    assert set(rt) == TYPE_FIELDS
    assert rt["relationshipTypeId"].startswith("rt-")
    assert {k: rt[k] for k in ("kind", "role", "sourceType", "targetType", "customObjectType")} == {
        "kind": "person_to_co",
        "role": "placed",
        "sourceType": "user",
        "targetType": "order",
        "customObjectType": "order",
    }
    assert (rt["cardinality"], rt["bidirectional"], rt["inverseRole"], rt["isInverse"]) == (
        "ONE_TO_MANY",
        True,
        "placed_by",
        False,
    )
    inverse = t.get(f"/relationship-types/{rt['inverseRelationshipTypeId']}")
    assert inverse.status_code == 200, inverse.text
    inv = inverse.json()["data"]
    assert (inv["role"], inv["sourceType"], inv["targetType"]) == ("placed_by", "order", "user")
    assert (inv["cardinality"], inv["isInverse"], inv["inverseRelationshipTypeId"]) == (
        "MANY_TO_ONE",
        True,
        rt["relationshipTypeId"],
    )


def test_registering_a_co_to_co_type_uses_parent_and_child(t: Tenant) -> None:
    rt = t.register(CONTAINS)
    assert (rt["sourceType"], rt["targetType"]) == ("order", "line_item")
    assert (rt["parentCustomObjectType"], rt["childCustomObjectType"]) == ("order", "line_item")
    assert "customObjectType" not in rt
    assert (rt["cardinality"], rt["description"], rt["bidirectional"]) == (None, None, False)
    assert rt["inverseRelationshipTypeId"] is None


def test_refining_only_cardinality_keeps_the_rest_and_transposes_the_inverse(t: Tenant) -> None:
    first = t.register(PLACED)
    response = t.post(
        "/relationship-types",
        {
            "kind": "person_to_co",
            "role": "placed",
            "customObjectType": "order",
            "cardinality": "ONE_TO_ONE",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] is False and body["meta"]["snapToken"]
    rt = body["data"]
    assert rt["relationshipTypeId"] == first["relationshipTypeId"]
    assert rt["cardinality"] == "ONE_TO_ONE"
    assert (rt["description"], rt["bidirectional"], rt["inverseRole"]) == (
        "Orders a person placed",
        True,
        "placed_by",
    )
    response = t.post("/relationship-types", {**PLACED, "cardinality": "MANY_TO_ONE"})
    assert response.status_code == 200, response.text
    inverse = t.get(f"/relationship-types/{first['inverseRelationshipTypeId']}").json()["data"]
    assert inverse["cardinality"] == "ONE_TO_MANY"


def test_null_clears_cardinality_and_description(t: Tenant) -> None:
    t.register(PLACED)
    rt = t.register({**PLACED, "cardinality": None, "description": None}, status=200)
    assert (rt["cardinality"], rt["description"]) == (None, None)


def test_an_identical_repost_changes_nothing(t: Tenant) -> None:
    first = t.register(PLACED)
    again = t.post("/relationship-types", PLACED)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["data"] == first


def test_unknown_object_type_is_404_with_suggestions(t: Tenant) -> None:
    response = t.post("/relationship-types", {**PLACED, "customObjectType": "ordr"})
    assert response.json() == {
        "data": None,
        "error": {
            "status": 404,
            "name": "NotFoundError",
            "message": 'Unknown object type "ordr"',
            "details": {
                "errors": [
                    {
                        "path": ["customObjectType"],
                        "message": 'Unknown object type "ordr"',
                        "name": "NotFoundError",
                        "value": "ordr",
                        "suggestions": ["order"],
                    }
                ],
                "suggestions": ["order"],
            },
        },
    }
    assert response.status_code == 404


def test_unknown_parent_and_child_are_both_reported(t: Tenant) -> None:
    response = t.post(
        "/relationship-types",
        {**CONTAINS, "parentCustomObjectType": "ordr", "childCustomObjectType": "line_itm"},
    )
    error = strapi_error(response, 404)
    assert error["message"] == "2 errors occurred"
    assert [(e["path"], e["suggestions"]) for e in error["details"]["errors"]] == [
        (["parentCustomObjectType"], ["order"]),
        (["childCustomObjectType"], ["line_item"]),
    ]


INVALID_TYPES = [
    (
        {**PLACED, "kind": "person_to_person"},
        ["kind"],
        "kind must be one of the following values: person_to_co, co_to_co",
    ),
    ({k: v for k, v in PLACED.items() if k != "kind"}, ["kind"], "kind is a required field"),
    ({**PLACED, "role": ""}, ["role"], "role is a required field"),
    ({k: v for k, v in PLACED.items() if k != "role"}, ["role"], "role is a required field"),
    ({**PLACED, "role": "p" * 256}, ["role"], "role must be at most 255 characters"),
    (
        {**PLACED, "role": "Placed Order"},
        ["role"],
        'role must match the following: "^[a-z][a-z0-9_]{0,254}$"',
    ),
    ({**PLACED, "role": 7}, ["role"], "role must be a string"),
    (
        {**PLACED, "cardinality": "ONE_TO_FEW"},
        ["cardinality"],
        "cardinality must be one of the following values: "
        "ONE_TO_ONE, ONE_TO_MANY, MANY_TO_ONE, MANY_TO_MANY",
    ),
    ({**PLACED, "bidirectional": "true"}, ["bidirectional"], "bidirectional must be a boolean"),
    ({**PLACED, "bidirectional": None}, ["bidirectional"], "bidirectional must be a boolean"),
    ({**PLACED, "description": ""}, ["description"], "description must be at least 1 characters"),
    (
        {**PLACED, "description": "d" * 1001},
        ["description"],
        "description must be at most 1000 characters",
    ),
    (
        {**PLACED, "customObjectType": ""},
        ["customObjectType"],
        "customObjectType must be at least 1 characters",
    ),
    (
        {k: v for k, v in PLACED.items() if k != "customObjectType"},
        ["customObjectType"],
        "customObjectType is a required field",
    ),
    (
        {**PLACED, "customObjectType": "o" * 256},
        ["customObjectType"],
        "customObjectType must be at most 255 characters",
    ),
    (
        {k: v for k, v in CONTAINS.items() if k != "childCustomObjectType"},
        ["childCustomObjectType"],
        "childCustomObjectType is a required field",
    ),
    (
        {**CONTAINS, "customObjectType": "order"},
        ["customObjectType"],
        "customObjectType is not allowed for kind co_to_co",
    ),
    (
        {**PLACED, "parentCustomObjectType": "order"},
        ["parentCustomObjectType"],
        "parentCustomObjectType is not allowed for kind person_to_co",
    ),
    (
        {**PLACED, "bidirectional": False},
        ["inverseRole"],
        "inverseRole is only allowed with bidirectional: true",
    ),
    (
        {**PLACED, "inverseRole": "Placed By"},
        ["inverseRole"],
        'inverseRole must match the following: "^[a-z][a-z0-9_]{0,254}$"',
    ),
]


@pytest.mark.parametrize(
    ("body", "path", "message"),
    INVALID_TYPES,
    ids=[
        "unknown-kind",
        "missing-kind",
        "empty-role",
        "missing-role",
        "role-256",
        "role-syntax",
        "role-not-string",
        "cardinality-one-to-few",
        "bidirectional-string",
        "bidirectional-null",
        "description-empty",
        "description-1001",
        "object-type-empty",
        "object-type-missing",
        "object-type-256",
        "co-missing-child",
        "co-with-custom-object-type",
        "person-with-parent",
        "inverse-role-without-bidirectional",
        "inverse-role-syntax",
    ],
)
def test_invalid_type_bodies_are_400(
    t: Tenant, body: dict[str, Any], path: list[str], message: str
) -> None:
    error = strapi_error(t.post("/relationship-types", body), 400)
    assert messages(error) == [(path, message)]
    assert error["message"] == message
    assert t.get("/relationship-types").json()["data"] == []


def test_every_problem_of_a_type_body_is_reported_at_once(t: Tenant) -> None:
    body = {"kind": "co_to_co", "role": "Bad", "cardinality": 3, "extra": "ignored"}
    error = strapi_error(t.post("/relationship-types", body), 400)
    assert error["message"] == "4 errors occurred"
    assert [path for path, _ in messages(error)] == [
        ["role"],
        ["parentCustomObjectType"],
        ["childCustomObjectType"],
        ["cardinality"],
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({**CONTAINS, "parentCustomObjectType": "user"}, ["parentCustomObjectType"]),
        ({**PLACED, "role": "buys"}, ["role"]),
        ({**PLACED, "inverseRole": "bought_by"}, ["inverseRole"]),
    ],
    ids=["co-to-co-with-person-type", "role-not-in-schema", "inverse-role-not-in-schema"],
)
def test_types_the_schema_cannot_hold_are_400(
    t: Tenant, body: dict[str, Any], path: list[str]
) -> None:
    error = strapi_error(t.post("/relationship-types", body), 400)
    assert [p for p, _ in messages(error)] == [path]


def test_unknown_top_level_keys_are_ignored(t: Tenant) -> None:
    rt = t.register({**CONTAINS, "color": "red", "relationshipTypeId": "rt-mine"})
    assert rt["relationshipTypeId"] != "rt-mine"


def test_tightening_cardinality_below_existing_links_is_409_and_changes_nothing(
    t: Tenant,
) -> None:
    rt = t.register({**CONTAINS, "cardinality": "MANY_TO_MANY"})
    t.link(rt["relationshipTypeId"], "o1", "l1")
    t.link(rt["relationshipTypeId"], "o1", "l2")
    error = strapi_error(
        t.post("/relationship-types", {**CONTAINS, "cardinality": "ONE_TO_ONE"}), 409
    )
    assert error["details"]["code"] == "cardinality_violation"
    assert error["details"]["violations"] == [{"entity": "order:o1", "count": 2}]
    after = t.get(f"/relationship-types/{rt['relationshipTypeId']}").json()["data"]
    assert after == rt


def test_toggling_bidirectional_on_a_type_with_links_is_409(t: Tenant) -> None:
    rt = t.register(PLACED)
    t.link(rt["relationshipTypeId"], "u1", "o1")
    error = strapi_error(
        t.post("/relationship-types", {**PLACED, "bidirectional": False, "inverseRole": None}), 409
    )
    assert error["details"]["code"] == "type_in_use"
    after = t.get(f"/relationship-types/{rt['relationshipTypeId']}").json()["data"]
    assert after == rt


def test_toggling_bidirectional_without_links_creates_and_removes_the_inverse(t: Tenant) -> None:
    rt = t.register(CONTAINS)
    on = t.register({**CONTAINS, "bidirectional": True, "inverseRole": "within"}, status=200)
    inverse_id = on["inverseRelationshipTypeId"]
    assert inverse_id and on["relationshipTypeId"] == rt["relationshipTypeId"]
    inverse = t.get(f"/relationship-types/{inverse_id}").json()["data"]
    assert (inverse["role"], inverse["sourceType"], inverse["isInverse"]) == (
        "within",
        "line_item",
        True,
    )
    off = t.register({**CONTAINS, "bidirectional": False}, status=200)
    assert (off["bidirectional"], off["inverseRole"], off["inverseRelationshipTypeId"]) == (
        False,
        None,
        None,
    )
    strapi_error(t.get(f"/relationship-types/{inverse_id}"), 404)


def test_a_symmetric_type_must_not_be_one_to_many(t: Tenant) -> None:
    body = co_to_co("spouse", "contact", "contact", bidirectional=True, cardinality="ONE_TO_MANY")
    error = strapi_error(t.post("/relationship-types", body), 400)
    assert [p for p, _ in messages(error)] == [["cardinality"]]
    rt = t.register({**body, "cardinality": "ONE_TO_ONE"})
    assert rt["inverseRelationshipTypeId"] == rt["relationshipTypeId"]


def test_posting_the_key_of_an_inverse_type_is_409_type_conflict(t: Tenant) -> None:
    t.register({**CONTAINS, "bidirectional": True, "inverseRole": "within"})
    body = co_to_co("within", "line_item", "order")
    error = strapi_error(t.post("/relationship-types", body), 409)
    assert error["details"]["code"] == "type_conflict"


# -- R2-R4 -------------------------------------------------------------------------------------


@pytest.fixture
def registered(t: Tenant) -> dict[str, dict[str, Any]]:
    placed = t.register(PLACED)
    contains = t.register(CONTAINS)
    works = t.register(co_to_co("works_at", "contact", "company"))
    inverse = t.get(f"/relationship-types/{placed['inverseRelationshipTypeId']}").json()["data"]
    return {"placed": placed, "placed_by": inverse, "contains": contains, "works_at": works}


def _roles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [rt["role"] for rt in response.json()["data"]]


@pytest.mark.parametrize(
    ("params", "roles"),
    [
        ({}, ["contains", "placed", "placed_by", "works_at"]),
        ({"sort": "-role"}, ["works_at", "placed_by", "placed", "contains"]),
        ({"sort": "createdAt", "kind": "co_to_co"}, ["contains", "works_at"]),
        ({"sort": "-createdAt", "kind": "co_to_co"}, ["works_at", "contains"]),
        ({"kind": "co_to_co"}, ["contains", "works_at"]),
        ({"role": ["placed", "works_at"]}, ["placed", "works_at"]),
        ({"sourceType": "order"}, ["contains", "placed_by"]),
        ({"targetType": "company"}, ["works_at"]),
        ({"objectType": "order"}, ["contains", "placed", "placed_by"]),
        ({"objectType": ["user", "company"]}, ["placed", "placed_by", "works_at"]),
        ({"isInverse": "true"}, ["placed_by"]),
        ({"isInverse": "false", "kind": "person_to_co"}, ["placed"]),
        ({"sourceType": "nobody"}, []),
    ],
    ids=[
        "default-by-role",
        "by-role-descending",
        "by-created",
        "by-created-descending",
        "kind",
        "role-in",
        "source-type",
        "target-type",
        "object-type-either-side",
        "object-type-in",
        "inverse-only",
        "filters-and",
        "no-match",
    ],
)
def test_listing_types_filters_and_sorts(
    t: Tenant, registered: dict[str, Any], params: dict[str, Any], roles: list[str]
) -> None:
    assert _roles(t.get("/relationship-types", **params)) == roles


def test_listing_types_pages_by_offset_and_after(t: Tenant, registered: dict[str, Any]) -> None:
    first = t.get("/relationship-types", limit=3)
    assert _roles(first) == ["contains", "placed", "placed_by"]
    assert first.json()["meta"]["pagination"] == {
        "limit": 3,
        "offset": 0,
        "has_more": True,
        "next_offset": 3,
    }
    rest = t.get("/relationship-types", limit=3, offset=3)
    assert _roles(rest) == ["works_at"]
    assert rest.json()["meta"]["pagination"]["has_more"] is False
    contains, works_at = registered["contains"], registered["works_at"]
    first = t.get("/relationship-types", kind="co_to_co", sort="createdAt", limit=1)
    assert _roles(first) == ["contains"]
    assert first.json()["meta"]["pagination"] == {
        "limit": 1,
        "offset": 0,
        "has_more": True,
        "next_after": contains["relationshipTypeId"],
        "next_offset": 1,
    }
    after = t.get("/relationship-types", limit=1, after=contains["relationshipTypeId"])
    assert _roles(after) == ["works_at"]
    assert after.json()["meta"]["pagination"] == {
        "limit": 1,
        "offset": 0,
        "has_more": False,
        "next_after": None,
    }
    back = t.get("/relationship-types", sort="-createdAt", after=works_at["relationshipTypeId"])
    assert _roles(back)[0] == "contains"


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"colour": "red"}, ["colour"]),
        ({"kind": ""}, ["kind"]),
        ({"isInverse": "maybe"}, ["isInverse"]),
        ({"sort": "name"}, ["sort"]),
        ({"after": "rt-nonexistent"}, ["after"]),
        ({"after": "x", "sort": "role"}, ["after"]),
        ({"limit": "0"}, ["limit"]),
    ],
    ids=[
        "unknown-filter",
        "empty-value",
        "bad-boolean",
        "bad-sort",
        "bad-cursor",
        "after-with-role-sort",
        "limit-0",
    ],
)
def test_bad_type_list_queries_are_400(
    t: Tenant, registered: dict[str, Any], params: dict[str, str], path: list[str]
) -> None:
    error = strapi_error(t.get("/relationship-types", **params), 400)
    assert [p for p, _ in messages(error)] == [path]


def test_listing_types_by_an_unknown_object_type_is_404_with_suggestions(t: Tenant) -> None:
    error = strapi_error(t.get("/relationship-types", objectType="ordr"), 404)
    assert error["message"] == 'Unknown object type "ordr"'
    assert error["details"]["suggestions"] == ["order"]
    assert error["details"]["errors"][0]["path"] == ["objectType"]


def test_getting_an_unknown_type_is_404(t: Tenant) -> None:
    strapi_error(t.get("/relationship-types/rt-nope"), 404)


def test_deleting_a_type_in_use_is_409_and_an_unused_one_goes_with_its_inverse(
    t: Tenant,
) -> None:
    used = t.register(CONTAINS)
    t.link(used["relationshipTypeId"], "o1", "l1")
    error = strapi_error(
        t.request("DELETE", f"/relationship-types/{used['relationshipTypeId']}"), 409
    )
    assert error["details"]["code"] == "type_in_use"
    assert t.get(f"/relationship-types/{used['relationshipTypeId']}").status_code == 200
    unused = t.register(PLACED)
    deleted = t.request("DELETE", f"/relationship-types/{unused['relationshipTypeId']}")
    assert deleted.status_code == 204 and deleted.content == b""
    for type_id in (unused["relationshipTypeId"], unused["inverseRelationshipTypeId"]):
        strapi_error(t.get(f"/relationship-types/{type_id}"), 404)
    strapi_error(t.request("DELETE", f"/relationship-types/{unused['relationshipTypeId']}"), 404)


def test_a_type_whose_inverse_has_links_is_in_use(t: Tenant) -> None:
    rt = t.register(PLACED)
    t.link(rt["inverseRelationshipTypeId"], "o1", "u1")
    error = strapi_error(
        t.request("DELETE", f"/relationship-types/{rt['relationshipTypeId']}"), 409
    )
    assert error["details"]["code"] == "type_in_use"


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "existing", "status", "missing"),
    [
        (["relationship:*"], False, 403, "relationship_type:create"),
        (["relationship_type:update"], False, 403, "relationship_type:create"),
        (["relationship_type:create"], True, 403, "relationship_type:update"),
        (["relationship_type:create"], False, 201, None),
        (["relationship_type:update"], True, 200, None),
        (["relationship_type:*"], True, 200, None),
    ],
    ids=[
        "neither",
        "update-for-a-new-key",
        "create-for-an-existing-key",
        "create-new",
        "update-existing",
        "family-wildcard",
    ],
)
def test_registering_needs_create_for_new_keys_and_update_for_existing_ones(
    t: Tenant, scopes: list[str], existing: bool, status: int, missing: str | None
) -> None:
    if existing:
        t.register(PLACED)
    limited = t.as_token(t.token(scopes))
    response = limited.post("/relationship-types", {**PLACED, "description": "x"})
    if missing is None:
        assert response.status_code == status, response.text
    else:
        assert strapi_error(response, status)["details"] == {"missing_scopes": [missing]}


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/relationship-types", "relationship_type:list"),
        ("GET", "/relationship-types/rt-x", "relationship_type:read"),
        ("DELETE", "/relationship-types/rt-x", "relationship_type:delete"),
        ("POST", "/relationships", "relationship:create"),
        ("GET", "/relationships", "relationship:list"),
        ("GET", "/relationships/rel-x", "relationship:read"),
        ("DELETE", "/relationships/rel-x", "relationship:delete"),
    ],
    ids=["R2", "R3", "R4", "L1", "L2", "L3", "L4"],
)
def test_each_route_needs_its_scope_before_looking_at_the_request(
    t: Tenant, method: str, path: str, scope: str
) -> None:
    limited = t.as_token(t.token(["relationship:update", "relationship_type:update"]))
    response = limited.request(method, path, content=b"{not json")
    assert strapi_error(response, 403)["details"] == {"missing_scopes": [scope]}


# -- L1 ----------------------------------------------------------------------------------------


def test_creating_a_link_without_a_type_id_is_400(t: Tenant) -> None:
    error = strapi_error(t.post("/relationships", {"sourceId": "u1", "targetId": "o1"}), 400)
    assert error["message"] == "relationshipTypeId is a required field"
    assert messages(error) == [(["relationshipTypeId"], "relationshipTypeId is a required field")]


def test_creating_a_link_of_an_unknown_type_is_404(t: Tenant) -> None:
    body = {"relationshipTypeId": "rt-nope", "sourceId": "u1", "targetId": "o1"}
    strapi_error(t.post("/relationships", body), 404)


def test_a_bidirectional_link_returns_its_mirror_and_e1_shows_it_outgoing(t: Tenant) -> None:
    rt = t.register(PLACED)
    response = t.post(
        "/relationships",
        {
            "relationshipTypeId": rt["relationshipTypeId"],
            "sourceId": "user_123",
            "targetId": "ord_998",
            "metadata": {"channel": "web"},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "meta"} and body["meta"]["snapToken"]
    link = body["data"]
    assert set(link) == LINK_FIELDS
    assert (link["role"], link["source"], link["target"], link["metadata"]) == (
        "placed",
        "user:user_123",
        "order:ord_998",
        {"channel": "web"},
    )
    assert link["relationshipTypeId"] == rt["relationshipTypeId"]
    assert link["position"] == 1 and link["isMirror"] is False
    mirror_id = link["mirrorRelationshipId"]
    assert mirror_id and mirror_id.startswith("rel-")
    seen = t.get("/entities/order:ord_998/relations")
    assert seen.status_code == 200, seen.text
    [row] = seen.json()["data"]
    assert (row["id"], row["direction"], row["relation_type"], row["target_entity_id"]) == (
        mirror_id,
        "outgoing",
        "placed_by",
        "user:user_123",
    )
    mirror = t.get(f"/relationships/{mirror_id}").json()["data"]
    assert (mirror["isMirror"], mirror["mirrorRelationshipId"], mirror["metadata"]) == (
        True,
        link["relationshipId"],
        {"channel": "web"},
    )
    assert mirror["relationshipTypeId"] == rt["inverseRelationshipTypeId"]


def test_creating_the_same_link_twice_is_409_with_the_existing_id(t: Tenant) -> None:
    rt = t.register(CONTAINS)
    first = t.link(rt["relationshipTypeId"], "o1", "l1")["data"]
    error = strapi_error(
        t.post(
            "/relationships",
            {"relationshipTypeId": rt["relationshipTypeId"], "sourceId": "o1", "targetId": "l1"},
        ),
        409,
    )
    assert error["details"]["code"] == "relation_exists"
    assert error["details"]["existing_relationship_id"] == first["relationshipId"]


def test_an_inverse_type_id_links_in_the_inverse_direction(t: Tenant) -> None:
    rt = t.register(PLACED)
    link = t.link(rt["inverseRelationshipTypeId"], "o1", "u1")["data"]
    assert (link["role"], link["source"], link["target"]) == ("placed_by", "order:o1", "user:u1")
    mirror = t.get(f"/relationships/{link['mirrorRelationshipId']}").json()["data"]
    assert (mirror["role"], mirror["source"], mirror["target"]) == (
        "placed",
        "user:u1",
        "order:o1",
    )


@pytest.mark.parametrize(
    ("source", "target", "status", "message"),
    [
        ("user:u1", "order:o1", 201, None),
        ("u1", "order:o1", 201, None),
        (
            "order:ord_1",
            "o1",
            400,
            "sourceId must be an id of a user (the relationship type fixes it), "
            "not a order reference",
        ),
        (
            "u1",
            "user:u2",
            400,
            "targetId must be an id of a order (the relationship type fixes it), "
            "not a user reference",
        ),
        ("u1", "urn:x:1", 201, None),
        (
            "u 1",
            "o1",
            400,
            "sourceId must be an id of 1-128 letters, digits and _ - @ . : + (or user:<id>)",
        ),
        (
            "u" * 129,
            "o1",
            400,
            "sourceId must be an id of 1-128 letters, digits and _ - @ . : + (or user:<id>)",
        ),
    ],
    ids=[
        "typed-both",
        "bare-source",
        "source-of-another-type",
        "target-of-another-type",
        "colon-in-a-bare-id",
        "space-in-id",
        "id-129",
    ],
)
def test_link_ids_are_bare_or_of_the_types_own_type(
    t: Tenant, source: str, target: str, status: int, message: str | None
) -> None:
    rt = t.register({**PLACED, "cardinality": None})
    body = {"relationshipTypeId": rt["relationshipTypeId"], "sourceId": source, "targetId": target}
    response = t.post("/relationships", body)
    if message is None:
        assert response.status_code == status, response.text
        assert response.json()["data"]["source"] == "user:u1"
    else:
        assert strapi_error(response, status)["message"] == message


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"sourceId": 5, "targetId": "l1"}, [["sourceId"]]),
        ({"sourceId": "o1"}, [["targetId"]]),
        ({"sourceId": "o1", "targetId": "l1", "metadata": []}, [["metadata"]]),
        (
            {"sourceId": "o1", "targetId": "l1", "metadata": {"label": "x" * 81}},
            [["metadata", "label"]],
        ),
        ({"sourceId": "o1", "targetId": "l1", "metadata": {"blob": "x" * 17_000}}, [["metadata"]]),
        (
            {"relationshipTypeId": None, "targetId": ""},
            [["relationshipTypeId"], ["sourceId"], ["targetId"]],
        ),
    ],
    ids=[
        "id-not-string",
        "missing-target",
        "metadata-list",
        "label-81",
        "metadata-17k",
        "all-missing",
    ],
)
def test_invalid_link_bodies_are_400_listing_every_problem(
    t: Tenant, body: dict[str, Any], paths: list[list[str]]
) -> None:
    rt = t.register(CONTAINS)
    response = t.post("/relationships", {"relationshipTypeId": rt["relationshipTypeId"], **body})
    assert [p for p, _ in messages(strapi_error(response, 400))] == paths
    assert t.get("/relationships").json()["data"] == []


def test_a_self_link_is_400(t: Tenant) -> None:
    rt = t.register(co_to_co("friend", "contact", "contact"))
    body = {"relationshipTypeId": rt["relationshipTypeId"], "sourceId": "c1", "targetId": "c1"}
    assert [p for p, _ in messages(strapi_error(t.post("/relationships", body), 400))] == [
        ["targetId"]
    ]


def test_a_link_breaking_cardinality_is_409(t: Tenant) -> None:
    rt = t.register({**PLACED, "cardinality": "ONE_TO_ONE"})
    t.link(rt["relationshipTypeId"], "u1", "o1")
    body = {"relationshipTypeId": rt["relationshipTypeId"], "sourceId": "u2", "targetId": "o1"}
    details = strapi_error(t.post("/relationships", body), 409)["details"]
    assert (details["code"], details["side"], details["entity"]) == (
        "cardinality_violation",
        "target",
        "order:o1",
    )


def _at_once(clients: list[httpx.Client], url: str, bodies: list[dict[str, Any]]) -> list[int]:
    """POST each body from its own client and thread, released together."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def post(client: httpx.Client, body: dict[str, Any]) -> None:
        barrier.wait()
        statuses.append(client.post(url, json=body).status_code)

    threads = [
        threading.Thread(target=post, args=pair) for pair in zip(clients, bodies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_racing_creates_on_a_one_to_one_type_let_exactly_one_through(
    t: Tenant, module_server: Server
) -> None:
    type_id = t.register({**CONTAINS, "cardinality": "ONE_TO_ONE"})["relationshipTypeId"]
    clients = [module_server.client(), module_server.client()]
    try:
        for round_ in range(20):
            bodies = [
                {
                    "relationshipTypeId": type_id,
                    "sourceId": f"o{round_}",
                    "targetId": f"l{round_}-{n}",
                }
                for n in range(2)
            ]
            statuses = _at_once(clients, f"{t.base}/relationships", bodies)
            assert sorted(statuses) == [201, 409], f"round {round_}: {statuses}"
    finally:
        for client in clients:
            client.close()
    rows = t.get("/relationships", relationshipTypeId=type_id, limit=200).json()["data"]
    assert sorted(r["source"] for r in rows) == sorted(f"order:o{n}" for n in range(20))


def test_a_check_at_the_snap_token_sees_a_link_like_a_raw_tuple(t: Tenant) -> None:
    rt = t.register(co_to_co("part_of", "line_item", "order"))
    before = t.raw_write("order:o1#owner@user:alice", "line_item:raw#part_of@order:o1")
    assert t.check("line_item:raw", "view", "user:alice", before)
    assert not t.check("line_item:l1", "view", "user:alice", before)
    token = t.link(rt["relationshipTypeId"], "l1", "o1")["meta"]["snapToken"]
    assert t.check("line_item:l1", "view", "user:alice", token)
    assert t.check("line_item:raw", "view", "user:alice", token)
    assert not t.check("line_item:l1", "view", "user:bob", token)
    assert t.read_tuples("line_item", "part_of", token) == {
        "line_item:l1#part_of@order:o1",
        "line_item:raw#part_of@order:o1",
    }


def test_both_tuples_of_a_bidirectional_link_appear_at_its_snap_token(t: Tenant) -> None:
    rt = t.register(PLACED)
    before = t.raw_write("order:other#owner@user:x")
    token = t.link(rt["relationshipTypeId"], "u1", "o1")["meta"]["snapToken"]
    assert t.read_tuples("user", "placed", token) == {"user:u1#placed@order:o1"}
    assert t.read_tuples("order", "placed_by", token) == {"order:o1#placed_by@user:u1"}
    assert t.read_tuples("user", "placed", before) == set()
    assert t.read_tuples("order", "placed_by", before) == set()
    assert t.check("order:o1", "view", "user:u1", token)


def test_types_and_links_are_stamped_by_the_apps_clock(
    start_server: Callable[..., Server],
) -> None:
    clock = Clock()  # the server's: every time the relations layer writes comes from it
    server = start_server(clock=clock)
    with server.client() as http:
        t = Tenant(server, http)
        clock.set(1_767_225_600.25)
        rt = t.register(PLACED)
        assert rt["createdAt"] == rt["updatedAt"] == "2026-01-01T00:00:00.250000Z"
        clock.set(1_767_312_000.5)
        link = t.link(rt["relationshipTypeId"], "u1", "o1")["data"]
        assert link["createdAt"] == link["updatedAt"] == "2026-01-02T00:00:00.500000Z"
        mirror = t.get(f"/relationships/{link['mirrorRelationshipId']}").json()["data"]
        assert mirror["createdAt"] == "2026-01-02T00:00:00.500000Z"
        clock.set(1_767_398_400.75)
        path = f"/entities/user:u1/relations/{link['relationshipId']}"
        patched = t.request("PATCH", path, json={"metadata": {"note": "x"}}).json()["data"]
        assert patched["created_at"] == "2026-01-02T00:00:00.500000Z"
        assert patched["updated_at"] == "2026-01-03T00:00:00.750000Z"


# -- L2-L4 -------------------------------------------------------------------------------------


@pytest.fixture
def linked(t: Tenant) -> dict[str, Any]:
    placed = t.register({**PLACED, "cardinality": None})
    contains = t.register(CONTAINS)
    rows = {
        "u1-o1": t.link(placed["relationshipTypeId"], "u1", "o1")["data"],
        "u1-o2": t.link(placed["relationshipTypeId"], "u1", "o2")["data"],
        "u2-o1": t.link(placed["relationshipTypeId"], "u2", "o1")["data"],
        "o1-l1": t.link(contains["relationshipTypeId"], "o1", "l1")["data"],
        "o1-l2": t.link(contains["relationshipTypeId"], "o1", "l2")["data"],
    }
    return {"placed": placed, "contains": contains, "rows": rows}


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["relationshipId"] for row in response.json()["data"]]


def test_listing_links_shows_every_row_oldest_first(t: Tenant, linked: dict[str, Any]) -> None:
    rows = linked["rows"]
    mirrors = {r["mirrorRelationshipId"] for r in rows.values() if r["mirrorRelationshipId"]}
    listed = t.get("/relationships")
    assert set(_ids(listed)) == {r["relationshipId"] for r in rows.values()} | mirrors
    times = [(row["createdAt"], row["relationshipId"]) for row in listed.json()["data"]]
    assert times == sorted(times)
    assert all(set(row) == LINK_FIELDS for row in listed.json()["data"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"relationshipTypeId": "contains"}, ["o1-l1", "o1-l2"]),
        ({"role": "placed"}, ["u1-o1", "u1-o2", "u2-o1"]),
        ({"role": "placed", "sourceId": "u1"}, ["u1-o1", "u1-o2"]),
        ({"sourceId": "user:u2"}, ["u2-o1"]),
        ({"targetId": "o1", "role": "placed"}, ["u1-o1", "u2-o1"]),
        ({"targetId": ["l2", "order:o2"]}, ["u1-o2", "o1-l2"]),
        ({"relationshipTypeId": "placed", "sort": "-createdAt"}, ["u2-o1", "u1-o2", "u1-o1"]),
        ({"sourceId": "u1", "role": "placed", "sort": "-position"}, ["u1-o2", "u1-o1"]),
        ({"sourceId": "nobody"}, []),
    ],
    ids=[
        "type",
        "role",
        "role-and-source",
        "typed-source",
        "target-and-role",
        "target-in",
        "newest-first",
        "by-position",
        "no-match",
    ],
)
def test_listing_links_filters_and_sorts(
    t: Tenant, linked: dict[str, Any], params: dict[str, Any], expected: list[str]
) -> None:
    if "relationshipTypeId" in params:
        params = {
            **params,
            "relationshipTypeId": linked[params["relationshipTypeId"]]["relationshipTypeId"],
        }
    want = [linked["rows"][key]["relationshipId"] for key in expected]
    assert _ids(t.get("/relationships", **params)) == want


def test_listing_links_by_position_puts_to_one_rows_last(t: Tenant, linked: dict[str, Any]) -> None:
    works = t.register(co_to_co("works_at", "contact", "company", cardinality="MANY_TO_ONE"))
    to_one = t.link(works["relationshipTypeId"], "c1", "acme")["data"]
    assert to_one["position"] is None
    listed = t.get("/relationships", sort="position").json()["data"]
    assert listed[-1]["relationshipId"] == to_one["relationshipId"]
    positions = [row["position"] for row in listed[:-1]]
    assert None not in positions and positions == sorted(positions)
    listed = t.get("/relationships", sort="-position").json()["data"]
    assert listed[-1]["relationshipId"] == to_one["relationshipId"]
    positions = [row["position"] for row in listed[:-1]]
    assert positions == sorted(positions, reverse=True)


@pytest.mark.parametrize(
    ("filters", "outside"),
    [
        ({"relationshipTypeId": "contains"}, "u1-o1"),
        ({"role": "contains"}, "u1-o1"),
        ({"sourceId": "u1"}, "o1-l1"),
        ({"targetId": "l1"}, "o1-l2"),
    ],
    ids=["type", "role", "source", "target"],
)
def test_an_after_cursor_outside_the_filtered_list_is_400(
    t: Tenant, linked: dict[str, Any], filters: dict[str, str], outside: str
) -> None:
    if "relationshipTypeId" in filters:
        filters = {"relationshipTypeId": linked["contains"]["relationshipTypeId"]}
    after = linked["rows"][outside]["relationshipId"]
    error = strapi_error(t.get("/relationships", after=after, **filters), 400)
    assert [p for p, _ in messages(error)] == [["after"]]


def test_listing_links_of_an_unknown_type_is_404(t: Tenant) -> None:
    strapi_error(t.get("/relationships", relationshipTypeId="rt-nope"), 404)


def test_getting_a_link_by_id(t: Tenant, linked: dict[str, Any]) -> None:
    row = linked["rows"]["o1-l1"]
    response = t.get(f"/relationships/{row['relationshipId']}")
    assert response.status_code == 200, response.text
    assert response.json() == {"data": row}
    strapi_error(t.get("/relationships/rel-nope"), 404)


def test_deleting_a_link_removes_it_and_its_mirror_at_once(
    t: Tenant, linked: dict[str, Any]
) -> None:
    row = linked["rows"]["u1-o1"]
    mirror_id = row["mirrorRelationshipId"]
    token_before = t.raw_write("order:zz#owner@user:zz")
    deleted = t.request("DELETE", f"/relationships/{mirror_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    for relation_id in (row["relationshipId"], mirror_id):
        strapi_error(t.get(f"/relationships/{relation_id}"), 404)
    strapi_error(t.request("DELETE", f"/relationships/{mirror_id}"), 404)
    after = t.raw_write("order:zz2#owner@user:zz")
    assert t.read_tuples("user", "placed", after) == {
        "user:u1#placed@order:o2",
        "user:u2#placed@order:o1",
    }
    assert "order:o1#placed_by@user:u1" not in t.read_tuples("order", "placed_by", after)
    assert "order:o1#placed_by@user:u1" in t.read_tuples("order", "placed_by", token_before)
    remaining = t.get(f"/relationships/{linked['rows']['u1-o2']['relationshipId']}").json()
    assert remaining["data"]["position"] == 1


# -- object-level checks (tokens with a subject) -----------------------------------------------


@pytest.fixture
def contacts(t: Tenant) -> dict[str, Any]:
    works = t.register(co_to_co("works_at", "contact", "company"))
    t.raw_write(
        "contact:mine#owner@user:alice",
        "contact:seen#viewer@user:alice",
        "contact:hidden#owner@user:bob",
    )
    rows = {
        name: t.link(works["relationshipTypeId"], name, "acme")["data"]
        for name in ("mine", "seen", "hidden")
    }
    alice = t.as_token(t.token(["relationship:*"], subject="user:alice"))
    return {"type": works, "rows": rows, "alice": alice}


def test_a_subject_lists_and_reads_only_rows_it_may_view(
    t: Tenant, contacts: dict[str, Any]
) -> None:
    alice: Tenant = contacts["alice"]
    rows = contacts["rows"]
    assert _ids(alice.get("/relationships")) == [
        rows["mine"]["relationshipId"],
        rows["seen"]["relationshipId"],
    ]
    assert alice.get(f"/relationships/{rows['seen']['relationshipId']}").status_code == 200
    hidden_id = rows["hidden"]["relationshipId"]
    hidden = strapi_error(alice.get(f"/relationships/{hidden_id}"), 404)
    missing = strapi_error(alice.get("/relationships/rel-nope"), 404)
    assert hidden["message"] == missing["message"].replace("rel-nope", hidden_id)
    strapi_error(alice.get("/relationships", after=rows["hidden"]["relationshipId"]), 400)


def test_a_subject_deletes_only_rows_it_may_edit(t: Tenant, contacts: dict[str, Any]) -> None:
    alice: Tenant = contacts["alice"]
    rows = contacts["rows"]
    strapi_error(alice.request("DELETE", f"/relationships/{rows['seen']['relationshipId']}"), 403)
    strapi_error(alice.request("DELETE", f"/relationships/{rows['hidden']['relationshipId']}"), 404)
    assert t.get(f"/relationships/{rows['seen']['relationshipId']}").status_code == 200
    deleted = alice.request("DELETE", f"/relationships/{rows['mine']['relationshipId']}")
    assert deleted.status_code == 204


@pytest.mark.parametrize(
    ("source", "target", "path"),
    [
        ("mine", "seen", None),
        ("seen", "mine", ["sourceId"]),
        ("ghost", "mine", ["sourceId"]),
        ("mine", "hidden", ["targetId"]),
    ],
    ids=["editable-source", "viewable-only-source", "nonexistent-source", "hidden-target"],
)
def test_a_subject_links_only_from_objects_it_may_edit_to_objects_it_may_view(
    t: Tenant, contacts: dict[str, Any], source: str, target: str, path: list[str] | None
) -> None:
    alice: Tenant = contacts["alice"]
    friend = t.register(co_to_co("friend", "contact", "contact"))
    body = {
        "relationshipTypeId": friend["relationshipTypeId"],
        "sourceId": source,
        "targetId": target,
    }
    response = alice.post("/relationships", body)
    if path is None:
        assert response.status_code == 201, response.text
        assert response.json()["data"]["ownedBy"] == "user:alice"
    else:
        assert messages(strapi_error(response, 400)) == [
            (path, "1 relation(s) of type contact associated with this entity do not exist")
        ]


# -- pagination (cases 53-56) on L2 ------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(module_server: Server, http: httpx.Client) -> dict[str, Any]:
    """215 rows: 210 written by one E6 set (one created_at, so only ids order them) and 5 by L1."""
    t = Tenant(module_server, http)
    rt = t.register({"kind": "person_to_co", "role": "placed", "customObjectType": "order"})
    response = t.request(
        "PUT",
        "/entities/user:u0/relations",
        json={"data": {"placed": [f"order:o{n:03}" for n in range(210)]}},
    )
    assert response.status_code == 200, response.text
    for n in range(5):
        t.link(rt["relationshipTypeId"], f"u{n + 1}", "o000")
    everything = t.get("/relationships", limit=200).json()["data"]
    everything += t.get("/relationships", limit=200, offset=200).json()["data"]
    assert len(everything) == 215
    return {"t": t, "ids": [row["relationshipId"] for row in everything]}


def test_default_page_is_20_rows_with_more_to_come(paged: dict[str, Any]) -> None:
    response = paged["t"].get("/relationships")
    assert _ids(response) == paged["ids"][:20]
    assert response.json()["meta"]["pagination"] == {
        "limit": 20,
        "offset": 0,
        "has_more": True,
        "next_after": paged["ids"][19],
        "next_offset": 20,
    }


def test_a_limit_over_200_is_clamped(paged: dict[str, Any]) -> None:
    response = paged["t"].get("/relationships", limit=500)
    assert _ids(response) == paged["ids"][:200]
    assert response.json()["meta"]["pagination"]["limit"] == 200
    assert response.json()["meta"]["pagination"]["has_more"] is True


def test_walking_after_cursors_yields_every_row_once(paged: dict[str, Any]) -> None:
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 37}
        if after:
            params["after"] = after
        response = paged["t"].get("/relationships", **params)
        seen += _ids(response)
        pagination = response.json()["meta"]["pagination"]
        if after:
            assert "next_offset" not in pagination
        if not pagination["has_more"]:
            assert pagination["next_after"] is None
            break
        after = pagination["next_after"]
    assert seen == paged["ids"]


def test_walking_backwards_by_created_yields_every_row_once(paged: dict[str, Any]) -> None:
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 50, "sort": "-createdAt"}
        if after:
            params["after"] = after
        response = paged["t"].get("/relationships", **params)
        seen += _ids(response)
        if not response.json()["meta"]["pagination"]["has_more"]:
            break
        after = response.json()["meta"]["pagination"]["next_after"]
    assert seen == paged["ids"][::-1]


def test_after_a_row_starts_strictly_after_it(paged: dict[str, Any]) -> None:
    ids = paged["ids"]
    assert _ids(paged["t"].get("/relationships", after=ids[100], limit=3)) == ids[101:104]


def test_offset_paging_returns_rows_41_to_60(paged: dict[str, Any]) -> None:
    response = paged["t"].get("/relationships", offset=40, limit=20)
    assert _ids(response) == paged["ids"][40:60]
    assert response.json()["meta"]["pagination"]["next_offset"] == 60


def test_the_last_offset_page_has_no_next_offset(paged: dict[str, Any]) -> None:
    response = paged["t"].get("/relationships", offset=200, limit=20)
    assert _ids(response) == paged["ids"][200:]
    assert response.json()["meta"]["pagination"] == {
        "limit": 20,
        "offset": 200,
        "has_more": False,
        "next_after": None,
        "next_offset": None,
    }


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": "0"}, ["limit"]),
        ({"limit": "-1"}, ["limit"]),
        ({"limit": "abc"}, ["limit"]),
        ({"after": "{first}", "sort": "position"}, ["after"]),
        ({"after": "{first}", "offset": "5"}, ["after"]),
        ({"after": "rel-nonexistent"}, ["after"]),
        ({"offset": "-1"}, ["offset"]),
        ({"sort": "role"}, ["sort"]),
        ({"colour": "red"}, ["colour"]),
        ({"role": ""}, ["role"]),
    ],
    ids=[
        "limit-0",
        "limit-negative",
        "limit-text",
        "after-with-position-sort",
        "after-with-offset",
        "unknown-cursor",
        "offset-negative",
        "unknown-sort-key",
        "unknown-filter",
        "empty-filter",
    ],
)
def test_bad_list_queries_are_400(
    paged: dict[str, Any], params: dict[str, str], path: list[str]
) -> None:
    params = {k: v.replace("{first}", paged["ids"][0]) for k, v in params.items()}
    error = strapi_error(paged["t"].get("/relationships", **params), 400)
    assert [p for p, _ in messages(error)] == [path]


@pytest.mark.parametrize("path", ["/relationship-types", "/relationships"], ids=["R1", "L1"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{nope", "Invalid JSON body"),
        (b"[1]", "Body must be a JSON object"),
        (b"", "Body must be a JSON object"),
    ],
    ids=["not-json", "array", "empty"],
)
def test_write_bodies_must_be_json_objects(
    t: Tenant, path: str, content: bytes, message: str
) -> None:
    response = t.request("POST", path, content=content)
    assert strapi_error(response, 400)["message"] == message


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/relationship-types"),
        ("POST", "/relationship-types"),
        ("GET", "/relationships"),
        ("DELETE", "/relationships/rel-x"),
    ],
    ids=["R2", "R1", "L2", "L4"],
)
def test_an_unknown_tenant_is_404(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, f"/v1/tenants/no-such-tenant{path}", json=PLACED)
    strapi_error(response, 404)


def test_a_symmetric_one_to_one_link_takes_both_sides(t: Tenant) -> None:
    spouse = t.register(
        co_to_co("spouse", "contact", "contact", bidirectional=True, cardinality="ONE_TO_ONE")
    )
    type_id = spouse["relationshipTypeId"]
    link = t.link(type_id, "a", "b")
    token = link["meta"]["snapToken"]
    mirror = t.get(f"/relationships/{link['data']['mirrorRelationshipId']}").json()["data"]
    assert (mirror["source"], mirror["target"], mirror["relationshipTypeId"]) == (
        "contact:b",
        "contact:a",
        type_id,
    )
    assert t.read_tuples("contact", "spouse", token) == {
        "contact:a#spouse@contact:b",
        "contact:b#spouse@contact:a",
    }
    for source, target in (("c", "a"), ("a", "c"), ("b", "c")):
        body = {"relationshipTypeId": type_id, "sourceId": source, "targetId": target}
        details = strapi_error(t.post("/relationships", body), 409)["details"]
        assert details["code"] == "cardinality_violation", (source, target)
    body = {"relationshipTypeId": type_id, "sourceId": "b", "targetId": "a"}
    assert strapi_error(t.post("/relationships", body), 409)["details"]["code"] == "relation_exists"
