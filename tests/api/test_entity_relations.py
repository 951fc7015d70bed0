"""Entity relations (E1-E5) and Strapi operations (E6) against a real server and LevelDB."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.relations_support import check, new_tenant, read_tuples, register, strapi_error

SCHEMA = """
entity user {}
entity company {
    relation employs @contact
    relation chief @contact
    permission view = employs
}
entity category {
    relation fans @contact
}
entity tag {}
entity contact {
    relation owner @user
    relation works_at @company
    relation ceo_of @company
    relation categories @category
    relation topics @category @tag
    relation favourite @category
    relation spouse @contact
    permission view = owner
    permission edit = owner
}
"""


@pytest.fixture
def api(module_server: Any) -> Iterator[httpx.Client]:
    with module_server.client() as client:
        yield client


@pytest.fixture
def tenant(module_server: Any, api: httpx.Client) -> str:
    tenant = new_tenant(api, SCHEMA)
    register(module_server, tenant, "contact", "works_at", "company", inverse="employs")
    register(
        module_server,
        tenant,
        "contact",
        "ceo_of",
        "company",
        cardinality="ONE_TO_ONE",
        inverse="chief",
    )
    register(module_server, tenant, "contact", "categories", "category")
    register(module_server, tenant, "contact", "topics", "category")
    register(module_server, tenant, "contact", "topics", "tag")
    register(
        module_server,
        tenant,
        "contact",
        "favourite",
        "category",
        cardinality="MANY_TO_ONE",
        inverse="fans",
    )
    register(
        module_server,
        tenant,
        "contact",
        "spouse",
        "contact",
        cardinality="ONE_TO_ONE",
        inverse="spouse",
    )
    return tenant


def base(tenant: str, entity: str) -> str:
    return f"/v1/tenants/{tenant}/entities/{entity}/relations"


def create(
    api: httpx.Client, tenant: str, source: str, role: str, target: str, **extra: Any
) -> httpx.Response:
    return api.post(
        base(tenant, source), json={"target_entity_id": target, "relation_type": role, **extra}
    )


def created(
    api: httpx.Client, tenant: str, source: str, role: str, target: str, **extra: Any
) -> dict[str, Any]:
    response = create(api, tenant, source, role, target, **extra)
    assert response.status_code == 201, response.text
    return dict(response.json())


def listing(api: httpx.Client, tenant: str, entity: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(base(tenant, entity), params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def put(api: httpx.Client, tenant: str, entity: str, data: Any) -> httpx.Response:
    return api.put(base(tenant, entity), json={"data": data})


def order(api: httpx.Client, tenant: str, entity: str, role: str) -> list[str]:
    rows = [
        r
        for r in listing(api, tenant, entity, direction="outgoing", limit=200)
        if r["relation_type"] == role
    ]
    rows.sort(key=lambda r: r["position"] if r["position"] is not None else 0)
    if rows and rows[0]["position"] is not None:
        assert [r["position"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["target_entity_id"].split(":", 1)[1] for r in rows]


def seed(
    api: httpx.Client, tenant: str, entity: str, role: str, ids: list[str], kind: str = "category"
) -> None:
    response = put(api, tenant, entity, {role: [f"{kind}:{i}" for i in ids]})
    assert response.status_code == 200, response.text


# -- E1-E5 ----------------------------------------------------------------------------------------


def test_an_entity_without_relations_lists_empty(api: httpx.Client, tenant: str) -> None:
    body = api.get(base(tenant, "contact:nobody")).json()
    assert body["data"] == []


def test_an_unknown_entity_type_in_the_path_is_404_with_suggestions(
    api: httpx.Client, tenant: str
) -> None:
    err = strapi_error(api.get(base(tenant, "contcat:1")), 404)
    assert err["details"]["suggestions"] == ["contact"]
    assert err["details"]["errors"][0]["value"] == "contcat"


@pytest.mark.parametrize(
    "entity", ["contact:", ":1", "Contact:1", "contact:a*b", "a*b"], ids=str
)
def test_a_malformed_path_entity_is_400(api: httpx.Client, tenant: str, entity: str) -> None:
    strapi_error(api.get(base(tenant, entity)), 400)


def test_the_path_accepts_an_encoded_colon(api: httpx.Client, tenant: str) -> None:
    created(api, tenant, "contact:a", "works_at", "company:x")
    assert len(api.get(base(tenant, "contact%3Aa")).json()["data"]) == 1


def test_create_writes_the_tuple_and_the_mirror_at_one_snapshot(
    api: httpx.Client, tenant: str
) -> None:
    before = api.post(
        f"/v1/tenants/{tenant}/data/relationships/read",
        json={"filter": {"entity": {"type": "contact"}}},
    )
    old_token = before.json()["x_snap_token"]
    body = created(
        api,
        tenant,
        "contact:a",
        "works_at",
        "company:x",
        metadata={"job_title": "CTO", "since": "2026"},
    )
    item, token = body["data"], body["meta"]["snap_token"]
    assert item["source_entity_id"] == "contact:a" and item["target_entity_id"] == "company:x"
    assert item["metadata"] == {"job_title": "CTO", "since": "2026"}
    assert item["direction"] == "outgoing" and item["is_mirror"] is False and item["pair_id"]
    both = read_tuples(api, tenant, "contact", token) | read_tuples(api, tenant, "company", token)
    assert both == {"contact:a#works_at@company:x", "company:x#employs@contact:a"}
    old = read_tuples(api, tenant, "contact", old_token) | read_tuples(
        api, tenant, "company", old_token
    )
    assert old == set()
    assert check(api, tenant, "company:x", "view", "contact:a", token)
    assert not check(api, tenant, "company:x", "view", "contact:a", old_token)


def test_create_refuses_bad_input_listing_every_problem(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(api.post(base(tenant, "contact:a"), json={"metadata": []}), 400)
    assert err["message"] == "3 errors occurred"
    paths = {tuple(e["path"]) for e in err["details"]["errors"]}
    assert paths == {("target_entity_id",), ("relation_type",), ("metadata",)}


def test_an_unregistered_relation_type_is_400_with_suggestions(
    api: httpx.Client, tenant: str
) -> None:
    err = strapi_error(create(api, tenant, "contact:a", "works", "company:x"), 400)
    assert err["details"]["errors"][0]["path"] == ["relation_type"]
    assert "works_at" in err["details"]["suggestions"]


def test_metadata_over_16_kib_is_400(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(
        create(
            api, tenant, "contact:a", "works_at", "company:x", metadata={"blob": "x" * 17 * 1024}
        ),
        400,
    )
    assert err["details"]["errors"][0]["path"] == ["metadata"]


def test_a_reserved_metadata_key_is_checked(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(
        create(api, tenant, "contact:a", "works_at", "company:x", metadata={"label": "x" * 81}), 400
    )
    assert err["message"] == "label must be at most 80 characters"
    assert err["details"]["errors"][0]["path"] == ["metadata", "label"]


def test_a_self_link_is_400(api: httpx.Client, tenant: str) -> None:
    strapi_error(create(api, tenant, "contact:a", "spouse", "contact:a"), 400)


def test_the_same_link_twice_is_409_relation_exists(api: httpx.Client, tenant: str) -> None:
    first = created(api, tenant, "contact:a", "works_at", "company:x")["data"]
    err = strapi_error(create(api, tenant, "contact:a", "works_at", "company:x"), 409)
    assert err["details"]["code"] == "relation_exists"
    assert err["details"]["existing_relationship_id"] == first["id"]


def test_one_to_one_refuses_a_second_link_on_either_side(api: httpx.Client, tenant: str) -> None:
    created(api, tenant, "contact:a", "ceo_of", "company:x")
    err = strapi_error(create(api, tenant, "contact:a", "ceo_of", "company:y"), 409)
    assert err["details"]["code"] == "cardinality_violation"
    assert err["details"]["side"] == "source" and err["details"]["entity"] == "contact:a"
    err = strapi_error(create(api, tenant, "contact:b", "ceo_of", "company:x"), 409)
    assert err["details"]["side"] == "target" and err["details"]["entity"] == "company:x"


def test_a_symmetric_one_to_one_blocks_both_partners(api: httpx.Client, tenant: str) -> None:
    created(api, tenant, "contact:a", "spouse", "contact:b")
    for source, target in (
        ("contact:c", "contact:a"),
        ("contact:b", "contact:c"),
        ("contact:a", "contact:c"),
    ):
        err = strapi_error(create(api, tenant, source, "spouse", target), 409)
        assert err["details"]["code"] in ("cardinality_violation", "relation_exists")
    strapi_error(create(api, tenant, "contact:b", "spouse", "contact:a"), 409)


def test_direction_both_shows_a_bidirectional_link_once_per_side(
    api: httpx.Client, tenant: str
) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x")["data"]
    on_company = listing(api, tenant, "company:x")
    assert len(on_company) == 1
    assert on_company[0]["relation_type"] == "employs" and on_company[0]["direction"] == "outgoing"
    assert on_company[0]["is_mirror"] is True and on_company[0]["pair_id"] == item["id"]
    incoming = listing(api, tenant, "company:x", direction="incoming")
    assert [r["id"] for r in incoming] == [item["id"]]
    assert len(listing(api, tenant, "contact:a")) == 1


def test_relation_type_filter_repeats_as_in(api: httpx.Client, tenant: str) -> None:
    created(api, tenant, "contact:a", "works_at", "company:x")
    created(api, tenant, "contact:a", "categories", "category:1")
    created(api, tenant, "contact:a", "favourite", "category:2")
    rows = listing(api, tenant, "contact:a", relation_type=["works_at", "favourite"])
    assert sorted(r["relation_type"] for r in rows) == ["favourite", "works_at"]


def test_get_patch_delete_need_the_path_entity_on_the_relation(
    api: httpx.Client, tenant: str
) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x")["data"]
    assert api.get(f"{base(tenant, 'contact:a')}/{item['id']}").json()["data"]["id"] == item["id"]
    assert (
        api.get(f"{base(tenant, 'company:x')}/{item['id']}").json()["data"]["direction"]
        == "incoming"
    )
    strapi_error(api.get(f"{base(tenant, 'contact:b')}/{item['id']}"), 404)
    strapi_error(api.delete(f"{base(tenant, 'contact:b')}/{item['id']}"), 404)
    strapi_error(api.patch(f"{base(tenant, 'contact:b')}/{item['id']}", json={"metadata": {}}), 404)


def test_patch_replaces_metadata_on_both_rows_of_the_pair(api: httpx.Client, tenant: str) -> None:
    item = created(
        api, tenant, "contact:a", "works_at", "company:x", metadata={"job_title": "CTO"}
    )["data"]
    response = api.patch(
        f"{base(tenant, 'contact:a')}/{item['id']}", json={"metadata": {"label": "boss"}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["metadata"] == {"label": "boss"}
    mirror = api.get(f"{base(tenant, 'company:x')}/{item['pair_id']}").json()["data"]
    assert mirror["metadata"] == {"label": "boss"}


def test_patch_without_metadata_changes_nothing(api: httpx.Client, tenant: str) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x", metadata={"a": 1})["data"]
    response = api.patch(f"{base(tenant, 'contact:a')}/{item['id']}", json={"other": 1})
    assert response.status_code == 200
    assert response.json()["data"]["metadata"] == {"a": 1}
    assert response.json()["data"]["updated_at"] == item["updated_at"]


def test_patch_refuses_a_long_label(api: httpx.Client, tenant: str) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x")["data"]
    response = api.patch(
        f"{base(tenant, 'contact:a')}/{item['id']}", json={"metadata": {"label": "x" * 81}}
    )
    strapi_error(response, 400)


def test_delete_removes_both_tuples_at_the_returned_token(api: httpx.Client, tenant: str) -> None:
    body = created(api, tenant, "contact:a", "works_at", "company:x")
    item, made = body["data"], body["meta"]["snap_token"]
    response = api.delete(f"{base(tenant, 'contact:a')}/{item['id']}")
    assert response.status_code == 200
    assert response.json()["message"] == "Relation removed successfully"
    token = response.json()["snap_token"]
    assert not check(api, tenant, "company:x", "view", "contact:a", token)
    assert check(api, tenant, "company:x", "view", "contact:a", made)
    assert read_tuples(api, tenant, "company", token) == set()
    assert listing(api, tenant, "company:x") == []
    strapi_error(api.delete(f"{base(tenant, 'contact:a')}/{item['id']}"), 404)


def test_deleting_renumbers_the_list(api: httpx.Client, tenant: str) -> None:
    seed(api, tenant, "contact:a", "categories", ["1", "2", "3"])
    second = next(
        r for r in listing(api, tenant, "contact:a") if r["target_entity_id"] == "category:2"
    )
    api.delete(f"{base(tenant, 'contact:a')}/{second['id']}")
    assert order(api, tenant, "contact:a", "categories") == ["1", "3"]


def test_the_seed_paths_serve_the_default_tenant(api: httpx.Client) -> None:
    response = api.get("/core/api/v1/entities/contact:z/relations")
    # t1 may have no schema yet: either way the answer is in Strapi's envelope.
    assert response.status_code in (200, 400, 404)
    assert "data" in response.json()


def test_unknown_methods_and_paths_answer_in_strapi_shape(api: httpx.Client, tenant: str) -> None:
    strapi_error(api.delete(base(tenant, "contact:a")), 405)
    strapi_error(api.get("/xapi2/nothing/here"), 404)


# -- raw tuples and the layer -------------------------------------------------------------------


def test_raw_delete_of_a_managed_tuple_removes_the_pair_and_its_rows(
    api: httpx.Client, tenant: str
) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x")["data"]
    body = {
        "tuple_filter": {"entity": {"type": "contact", "ids": ["a"]}, "relation": "works_at"},
        "attribute_filter": {},
    }
    response = api.post(f"/v1/tenants/{tenant}/data/delete", json=body)
    assert response.status_code == 200, response.text
    assert listing(api, tenant, "contact:a", direction="outgoing") == []
    assert listing(api, tenant, "company:x") == []
    strapi_error(api.get(f"{base(tenant, 'company:x')}/{item['pair_id']}"), 404)
    assert read_tuples(api, tenant, "company") == set()


def test_a_raw_tuple_blocks_one_to_one_and_is_adopted_by_create(
    module_server: Any, api: httpx.Client
) -> None:
    # Written before its type is registered: afterwards a raw write of one side of a pair is
    # refused (tests/api/test_relations_pairs.py).
    tenant = new_tenant(api, SCHEMA)
    raw = {
        "metadata": {"schema_version": ""},
        "tuples": [
            {
                "entity": {"type": "contact", "id": "a"},
                "relation": "ceo_of",
                "subject": {"type": "company", "id": "x"},
            }
        ],
    }
    assert api.post(f"/v1/tenants/{tenant}/data/write", json=raw).status_code == 200
    register(
        module_server,
        tenant,
        "contact",
        "ceo_of",
        "company",
        cardinality="ONE_TO_ONE",
        inverse="chief",
    )
    assert listing(api, tenant, "contact:a") == []
    strapi_error(create(api, tenant, "contact:a", "ceo_of", "company:y"), 409)
    adopted = created(api, tenant, "contact:a", "ceo_of", "company:x")["data"]
    assert adopted["pair_id"]
    assert [r["id"] for r in listing(api, tenant, "contact:a", direction="outgoing")] == [
        adopted["id"]
    ]


# -- E6 -----------------------------------------------------------------------------------------


def connect(*items: Any) -> dict[str, Any]:
    return {"connect": list(items)}


def c(n: int | str, **position: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": f"category:{n}"}
    if position:
        item["position"] = {
            k: (f"category:{v}" if k in ("before", "after") else v) for k, v in position.items()
        }
    return item


ORDER_CASES = [
    pytest.param(
        ["1", "2"],
        connect(c(6, after=1), c(7, before=2), c(8, end=True), "category:9", c(10, start=True)),
        ["10", "1", "6", "7", "2", "8", "9"],
        id="23-docs-example",
    ),
    pytest.param(
        ["1", "2", "3"],
        connect(c(5, before=1), c(1, before=2), c(2, end=True)),
        ["5", "1", "3", "2"],
        id="25-anchor-in-db",
    ),
    pytest.param(["1", "2", "3"], connect("category:2"), ["1", "3", "2"], id="27-move-to-end"),
    pytest.param(
        ["1", "2", "3"],
        connect("category:3", "category:2", "category:1"),
        ["3", "2", "1"],
        id="27-reorder",
    ),
    pytest.param(
        ["1"],
        {"connect": [c(2, after=3)], "options": {"strict": False}},
        ["1", "2"],
        id="29-non-strict",
    ),
    pytest.param(
        ["1", "2"],
        {"connect": ["category:3"], "disconnect": ["category:1", "category:3"]},
        ["2", "3"],
        id="32-connect-wins",
    ),
    pytest.param(
        ["1", "2"], {"disconnect": ["category:7"]}, ["1", "2"], id="34-disconnect-unlinked"
    ),
    pytest.param(
        ["1", "2"],
        {"set": ["category:3", "category:1"], "connect": None},
        ["3", "1"],
        id="35-set-connect-null",
    ),
    pytest.param(["1", "2"], ["category:3", "category:1"], ["3", "1"], id="36-bare-array"),
    pytest.param(["1", "2"], None, [], id="36-null-clears"),
    pytest.param(["1", "2"], {"set": []}, [], id="36-empty-set"),
    pytest.param(["1", "2"], {}, ["1", "2"], id="36-empty-object"),
    pytest.param(
        ["1"], {"set": ["category:3", "category:1", "category:3"]}, ["3", "1"], id="36-set-dedup"
    ),
    pytest.param(["1"], "category:4", ["4"], id="scalar-is-set"),
    pytest.param([], {"connect": ["5"]}, ["5"], id="40-bare-id-single-target"),
]


@pytest.mark.parametrize(("start", "op", "final"), ORDER_CASES)
def test_connect_orders_like_strapi(
    api: httpx.Client, tenant: str, start: list[str], op: Any, final: list[str]
) -> None:
    if start:
        seed(api, tenant, "contact:a", "categories", start)
    response = put(api, tenant, "contact:a", {"categories": op})
    assert response.status_code == 200, response.text
    got = [r["target_entity_id"].split(":", 1)[1] for r in response.json()["data"]["categories"]]
    assert got == final
    assert [r["position"] for r in response.json()["data"]["categories"]] == list(
        range(1, len(final) + 1)
    )
    assert order(api, tenant, "contact:a", "categories") == final


def test_moves_keep_relation_ids_and_metadata(api: httpx.Client, tenant: str) -> None:
    seed(api, tenant, "contact:a", "categories", ["1", "2", "3"])
    before = {r["target_entity_id"]: r for r in listing(api, tenant, "contact:a")}
    row = before["category:1"]
    api.patch(f"{base(tenant, 'contact:a')}/{row['id']}", json={"metadata": {"note": "keep"}})
    response = put(
        api, tenant, "contact:a", {"categories": connect("category:3", "category:2", "category:1")}
    )
    after = {r["target_entity_id"]: r for r in response.json()["data"]["categories"]}
    assert {k: v["id"] for k, v in after.items()} == {k: v["id"] for k, v in before.items()}
    assert after["category:1"]["metadata"] == {"note": "keep"}


TWICE = (
    "The relation with id category:1 is already connected. "
    "You cannot connect the same relation twice."
)
ERROR_CASES = [
    pytest.param(
        ["1"],
        connect(c(2, after=3)),
        "There was a problem connecting relation with id category:2 at position "
        '{"after":"category:3"}. '
        "The relation with id category:3 needs to be connected first.",
        id="28-strict-anchor",
    ),
    pytest.param(
        [],
        connect(c(2, after=1), c(3, after=1), c(1, after=3)),
        "A circular reference was found in the connect array. One relation is trying to connect "
        "before/after another one that is trying to connect before/after it",
        id="30-circular",
    ),
    pytest.param(
        [],
        connect(c(1, end=True), c(1, start=True)),
        TWICE,
        id="31-twice-positions",
    ),
    pytest.param(
        [],
        connect("category:1", "category:1"),
        TWICE,
        id="31-twice-exact",
    ),
    pytest.param(
        [],
        {"set": ["category:3"], "connect": ["category:2"]},
        "set cannot be used in combination with connect or disconnect",
        id="35-set-and-connect",
    ),
]


@pytest.mark.parametrize(("start", "op", "message"), ERROR_CASES)
def test_bad_connects_are_400_and_write_nothing(
    api: httpx.Client, tenant: str, start: list[str], op: Any, message: str
) -> None:
    if start:
        seed(api, tenant, "contact:a", "categories", start)
    err = strapi_error(put(api, tenant, "contact:a", {"categories": op}), 400)
    assert err["message"] == message
    assert order(api, tenant, "contact:a", "categories") == start


SYNTAX_CASES = [
    pytest.param(
        {"connect": [c(1, before=2) | {"position": {"before": "category:2", "end": True}}]},
        id="39-two-keys",
    ),
    pytest.param(
        {"connect": [{"id": "category:1", "position": {"start": False}}]}, id="39-start-false"
    ),
    pytest.param(
        {"disconnect": [{"id": "category:1", "position": {"end": True}}]},
        id="39-position-in-disconnect",
    ),
    pytest.param({"connect": ["category:1"], "foo": 1}, id="39-unknown-key"),
    pytest.param(
        {"connect": ["category:1"], "options": {"strict": True, "x": 1}}, id="39-unknown-option"
    ),
    pytest.param({"connect": ["category:1"], "options": {"strict": "yes"}}, id="strict-not-bool"),
    pytest.param({"disconnect": ["company:1"]}, id="34-disconnect-wrong-type"),
    pytest.param({"connect": [{"id": "category:1", "locale": "en"}]}, id="unknown-item-key"),
    pytest.param({"connect": [True]}, id="boolean-item"),
    pytest.param({"connect": ["contact:a"]}, id="self-or-wrong-type"),
]


@pytest.mark.parametrize("op", SYNTAX_CASES)
def test_malformed_operations_are_400(api: httpx.Client, tenant: str, op: Any) -> None:
    err = strapi_error(put(api, tenant, "contact:a", {"categories": op}), 400)
    assert err["details"]["errors"][0]["path"][:2] == ["data", "categories"]


def test_invalid_key_message_names_the_key(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(
        put(api, tenant, "contact:a", {"categories": {"connect": [], "foo": 1}}), 400
    )
    assert err["message"] == 'Invalid key "foo"'


def test_a_bare_id_is_ambiguous_for_a_role_with_two_target_types(
    api: httpx.Client, tenant: str
) -> None:
    err = strapi_error(put(api, tenant, "contact:a", {"topics": {"connect": ["9"]}}), 400)
    assert "ambiguous" in err["message"]
    response = put(api, tenant, "contact:a", {"topics": {"connect": ["tag:9", "category:9"]}})
    assert response.status_code == 200, response.text


def test_an_unknown_role_is_400_with_suggestions(api: httpx.Client, tenant: str) -> None:
    err = strapi_error(put(api, tenant, "contact:a", {"categoris": ["category:1"]}), 400)
    assert err["details"]["errors"][0]["path"] == ["data", "categoris"]
    assert err["details"]["suggestions"][0] == "categories"


def test_to_one_roles_keep_the_last_item_and_drop_the_old_mirror(
    api: httpx.Client, tenant: str
) -> None:
    assert (
        put(api, tenant, "contact:a", {"favourite": {"connect": ["category:1"]}}).status_code == 200
    )
    response = put(
        api,
        tenant,
        "contact:a",
        {
            "favourite": {
                "connect": ["category:2", {"id": "category:3", "position": {"start": True}}]
            }
        },
    )
    assert response.status_code == 200, response.text
    rows = response.json()["data"]["favourite"]
    assert [r["target_entity_id"] for r in rows] == ["category:3"] and rows[0]["position"] is None
    assert listing(api, tenant, "category:1") == []
    fans = listing(api, tenant, "category:3")
    assert [r["relation_type"] for r in fans] == ["fans"]
    response = put(api, tenant, "contact:a", {"favourite": {"set": ["category:4", "category:5"]}})
    assert [r["target_entity_id"] for r in response.json()["data"]["favourite"]] == ["category:5"]
    response = put(api, tenant, "contact:a", {"favourite": {"disconnect": ["category:5"]}})
    assert response.json()["data"]["favourite"] == []


def test_a_taken_one_to_one_target_is_409_and_nothing_changes(
    api: httpx.Client, tenant: str
) -> None:
    created(api, tenant, "contact:b", "ceo_of", "company:x")
    seed(api, tenant, "contact:a", "categories", ["1"])
    response = put(
        api,
        tenant,
        "contact:a",
        {"categories": ["category:2"], "ceo_of": {"connect": ["company:x"]}},
    )
    assert strapi_error(response, 409)["details"]["code"] == "cardinality_violation"
    assert order(api, tenant, "contact:a", "categories") == ["1"]


def test_all_roles_land_at_one_token(api: httpx.Client, tenant: str) -> None:
    response = put(
        api, tenant, "contact:a", {"categories": ["category:1"], "works_at": ["company:x"]}
    )
    token = response.json()["meta"]["snap_token"]
    assert read_tuples(api, tenant, "contact", token) == {
        "contact:a#categories@category:1",
        "contact:a#works_at@company:x",
    }
    assert read_tuples(api, tenant, "company", token) == {"company:x#employs@contact:a"}


def test_more_than_a_thousand_refs_is_400(api: httpx.Client, tenant: str) -> None:
    items = [f"category:{i}" for i in range(1001)]
    strapi_error(put(api, tenant, "contact:a", {"categories": items}), 400)


def test_body_must_be_a_json_object(api: httpx.Client, tenant: str) -> None:
    assert (
        strapi_error(api.put(base(tenant, "contact:a"), content=b"{nope"), 400)["message"]
        == "Invalid JSON body"
    )
    assert (
        strapi_error(api.put(base(tenant, "contact:a"), json=[1]), 400)["message"]
        == "Body must be a JSON object"
    )
    strapi_error(api.put(base(tenant, "contact:a"), content=b"x" * (1024 * 1024 + 10)), 413)


def test_patch_with_null_metadata_clears_it_on_both_rows(api: httpx.Client, tenant: str) -> None:
    item = created(api, tenant, "contact:a", "works_at", "company:x", metadata={"a": 1})["data"]
    response = api.patch(f"{base(tenant, 'contact:a')}/{item['id']}", json={"metadata": None})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["metadata"] is None
    mirror = api.get(f"{base(tenant, 'company:x')}/{item['pair_id']}").json()["data"]
    assert mirror["metadata"] is None


def test_patch_with_the_same_metadata_writes_nothing(api: httpx.Client, tenant: str) -> None:
    body = created(api, tenant, "contact:a", "works_at", "company:x", metadata={"a": 1})
    item, token = body["data"], body["meta"]["snap_token"]
    response = api.patch(f"{base(tenant, 'contact:a')}/{item['id']}", json={"metadata": {"a": 1}})
    assert response.json()["data"]["updated_at"] == item["updated_at"]
    assert response.json()["meta"]["snap_token"] == token


# -- races and atomicity ------------------------------------------------------------------------


def test_racing_one_to_one_creates_let_exactly_one_win(module_server: Any, tenant: str) -> None:
    for round_ in range(15):
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def attempt(
            target: str,
            round_: int = round_,
            barrier: threading.Barrier = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            with module_server.client() as client:
                barrier.wait()
                response = create(client, tenant, f"contact:r{round_}", "ceo_of", target)
                statuses.append(response.status_code)

        threads = [
            threading.Thread(target=attempt, args=(f"company:x{round_}",)),
            threading.Thread(target=attempt, args=(f"company:y{round_}",)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201, 409], statuses


def test_racing_operations_on_one_list_keep_positions_contiguous(
    module_server: Any, tenant: str
) -> None:
    def worker(n: int) -> None:
        with module_server.client() as client:
            for i in range(8):
                response = put(
                    client, tenant, "contact:a", {"categories": {"connect": [f"category:{n}-{i}"]}}
                )
                assert response.status_code == 200, response.text

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with module_server.client() as client:
        assert len(order(client, tenant, "contact:a", "categories")) == 24


def test_a_mirror_the_schema_refuses_rolls_back_the_whole_write(
    api: httpx.Client, tenant: str
) -> None:
    narrowed = SCHEMA.replace("relation employs @contact", "").replace(
        "permission view = employs", "permission view = chief"
    )
    assert (
        api.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": narrowed}).status_code
        == 200
    )
    err = strapi_error(create(api, tenant, "contact:a", "works_at", "company:x"), 400)
    assert "employs" in err["message"]
    assert read_tuples(api, tenant, "contact") == set()
    assert listing(api, tenant, "contact:a") == []


def test_effect_scopes_of_put_are_checked_before_anything_is_written(
    api: httpx.Client, tenant: str
) -> None:
    seed(api, tenant, "contact:a", "categories", ["1", "2"])
    made = api.post(
        f"/v1/tenants/{tenant}/tokens", json={"name": "updater", "scopes": ["relationship:update"]}
    )
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['data']['token']}"}
    adds = api.put(
        base(tenant, "contact:a"),
        json={"data": {"categories": {"connect": ["category:3"]}}},
        headers=headers,
    )
    err = strapi_error(adds, 403)
    assert err["details"]["missing_scopes"] == ["relationship:create"]
    removes = api.put(
        base(tenant, "contact:a"),
        json={"data": {"categories": {"disconnect": ["category:1"]}}},
        headers=headers,
    )
    assert strapi_error(removes, 403)["details"]["missing_scopes"] == ["relationship:delete"]
    assert order(api, tenant, "contact:a", "categories") == ["1", "2"]
    reorders = api.put(
        base(tenant, "contact:a"),
        json={"data": {"categories": {"connect": ["category:1"]}}},
        headers=headers,
    )
    assert reorders.status_code == 200, reorders.text
    assert order(api, tenant, "contact:a", "categories") == ["2", "1"]


PREFIX = b'{"target_entity_id": "company:x", "relation_type": "works_at", "metadata": '


@pytest.mark.parametrize(
    "raw",
    [
        PREFIX + b'{"n": 1e999}}',
        PREFIX + b'{"n": NaN}}',
        PREFIX + b'{"s": "\\ud800"}}',
    ],
    ids=["infinity", "nan", "lone-surrogate"],
)
def test_json_that_could_not_be_stored_is_400(api: httpx.Client, tenant: str, raw: bytes) -> None:
    response = api.post(
        base(tenant, "contact:a"), content=raw, headers={"Content-Type": "application/json"}
    )
    assert strapi_error(response, 400)["message"] == "Invalid JSON body"
    assert listing(api, tenant, "contact:a") == []


def test_a_gzipped_body_is_read(api: httpx.Client, tenant: str) -> None:
    body = {"target_entity_id": "company:x", "relation_type": "works_at"}
    response = api.post(
        base(tenant, "contact:a"),
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_a_huge_limit_is_clamped(api: httpx.Client, tenant: str) -> None:
    response = api.get(base(tenant, "contact:a"), params={"limit": "9" * 30})
    assert response.status_code == 200
    assert response.json()["meta"]["pagination"]["limit"] == 200
