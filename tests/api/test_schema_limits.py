"""The schema limits over HTTP, on a real server (LevelDB): a schema past a limit is a 400 naming
it; a schema at the limits is served by every endpoint with a 2xx or a 4xx, never a 500; a
tenant whose stored schema predates a limit gets a 4xx saying to write a new schema, until one
is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from api import models as m
from dsl.compiler import MAX_REFERENCE_DEPTH
from dsl.parser import MAX_EXPRESSION_DEPTH
from engine.expand import MAX_TREE_DEPTH
from storage.leveldb import LevelDBStore
from tests.api.conftest import Server, shaped

T = "/v1/tenants/t1"
USER = {"type": "user", "id": "u"}
DOC = {"type": "doc", "id": "1"}


def nested(levels: int, leaf: str) -> str:
    """``leaf`` under ``levels`` alternating set operations that all go on to it."""
    expr = leaf
    for level in range(levels):
        expr = f"(no or {expr})" if level % 2 else f"(yes and {expr})"
    return expr


def chain_schema(references: int, levels: int = 0) -> str:
    """``doc#q0`` reaches ``viewer`` through ``references`` computed references (the first on
    line 8, column 12), each nested ``levels`` deep; ``other#view`` is unrelated."""
    lines = ["entity user {}", "entity other { relation viewer @user"]
    lines += [" permission view = viewer }"]
    lines += ["entity doc {", "relation viewer @user", "relation yes @user", "relation no @user"]
    lines += [f"permission q{i} = {nested(levels, f'q{i + 1}')}" for i in range(references - 1)]
    lines += [f"permission q{references - 1} = {nested(levels, 'viewer')}", "}"]
    return "\n".join(lines)


def tuple_json(entity: dict[str, str], relation: str, subject: dict[str, str]) -> dict[str, Any]:
    return {"entity": entity, "relation": relation, "subject": subject}


DATA = {
    "tuples": [
        tuple_json(DOC, "viewer", USER),
        tuple_json(DOC, "yes", USER),
        tuple_json({"type": "other", "id": "1"}, "viewer", USER),
    ]
}


def write_schema(client: httpx.Client, text: str) -> httpx.Response:
    return client.post(f"{T}/schemas/write", json={"schema": text})


def asks(depth: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Every endpoint that evaluates or reads the schema, about ``doc#q0`` (method, path, body);
    the partial write adds a relation named after ``depth``."""
    metadata = {"depth": depth}
    return [
        ("post", "permissions/check",
         {"metadata": metadata, "entity": DOC, "permission": "q0", "subject": USER}),
        ("post", "permissions/bulk-check",
         {"metadata": metadata, "items": [{"entity": DOC, "permission": "q0", "subject": USER}]}),
        ("post", "permissions/expand", {"metadata": metadata, "entity": DOC, "permission": "q0"}),
        ("post", "permissions/lookup-entity",
         {"metadata": metadata, "entity_type": "doc", "permission": "q0", "subject": USER}),
        ("post", "permissions/lookup-subject",
         {"metadata": metadata, "entity": DOC, "permission": "q0",
          "subject_reference": {"type": "user"}}),
        ("post", "permissions/subject-permission",
         {"metadata": metadata, "entity": DOC, "subject": USER}),
        ("post", "schemas/read", {}),
        ("post", "data/write",
         {"tuples": [tuple_json({"type": "other", "id": "2"}, "viewer", USER)]}),
        ("patch", "schemas/partial-write",
         {"partials": {"other": {"write": [f"relation extra{depth} @user"]}}}),
    ]


def answers(client: httpx.Client, depth: int) -> dict[str, int]:
    """Each endpoint's status; none may be a 5xx."""
    found: dict[str, int] = {}
    for method, path, body in asks(depth):
        response = client.request(method, f"{T}/{path}", json=body)
        assert response.status_code < 500, (path, response.text)
        found[path] = response.status_code
    return found


def unrelated_check(client: httpx.Client) -> httpx.Response:
    body = {"entity": {"type": "other", "id": "1"}, "permission": "view", "subject": USER}
    return client.post(f"{T}/permissions/check", json=body)


# --- refused at write time ------------------------------------------------------------------------


def test_the_chain_that_broke_a_tenant_is_refused_naming_the_limit(client: httpx.Client) -> None:
    response = write_schema(client, chain_schema(601))
    assert response.status_code == 400, response.text
    body = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == "ERROR_CODE_SCHEMA_COMPILE"
    [violation] = body["details"][1]["field_violations"]
    assert violation["field"] == "schema"
    assert violation["description"].startswith(
        f"8:12: reference chain deeper than {MAX_REFERENCE_DEPTH}: "
        "q0 -> q1 -> q2 -> … -> q599 -> q600 -> viewer (601 references;"
    )
    listed = client.post(f"{T}/schemas/list", json={}).json()
    assert listed["head"] == ""  # nothing was stored
    # The tenant is untouched: writing data or checking still says there is no schema yet.
    assert unrelated_check(client).status_code == 404


def test_a_schema_over_the_size_limit_is_refused_naming_the_limit(client: httpx.Client) -> None:
    text = "entity user {}\n" + "// padding\n" * 60_000
    response = write_schema(client, text)
    assert response.status_code == 400, response.text
    assert "more than the 512 KiB a schema may have" in response.json()["message"]


# --- served at the limits -------------------------------------------------------------------------


def test_every_endpoint_answers_a_schema_at_the_limit(client: httpx.Client) -> None:
    assert write_schema(client, chain_schema(MAX_REFERENCE_DEPTH)).status_code == 200
    assert client.post(f"{T}/data/write", json=DATA).status_code == 200
    # At the default depth the chain cannot be followed: a depth error, except where no depth
    # is spent (lookups reach q0 through unions only; reads and writes evaluate nothing).
    assert answers(client, 50) == {
        "permissions/check": 400,
        "permissions/bulk-check": 200,  # the item carries its error
        "permissions/expand": 400,
        "permissions/lookup-entity": 200,
        "permissions/lookup-subject": 200,
        "permissions/subject-permission": 400,
        "schemas/read": 200,
        "data/write": 200,
        "schemas/partial-write": 200,
    }
    statuses = answers(client, MAX_REFERENCE_DEPTH)
    # Expand takes no depth (Permify's request has none): it always has the default 50.
    assert statuses.pop("permissions/expand") == 400
    assert set(statuses.values()) == {200}, statuses
    check = client.post(f"{T}/permissions/check", json=asks(MAX_REFERENCE_DEPTH)[0][2])
    assert check.json()["can"] == "CHECK_RESULT_ALLOWED"
    assert unrelated_check(client).json()["can"] == "CHECK_RESULT_ALLOWED"


def test_every_endpoint_answers_the_worst_schema_the_limits_allow(client: httpx.Client) -> None:
    # The longest chain, each link nested 64 operators deep: more frames per unit of depth than
    # the server's default cap assumes, so this schema's cap is lower.
    assert write_schema(client, chain_schema(MAX_REFERENCE_DEPTH, 64)).status_code == 200
    assert client.post(f"{T}/data/write", json=DATA).status_code == 200
    statuses = answers(client, 1000)
    assert statuses["permissions/check"] == 400
    assert statuses["permissions/expand"] == 400
    assert statuses["schemas/read"] == 200
    assert unrelated_check(client).json()["can"] == "CHECK_RESULT_ALLOWED"


def test_a_permission_nested_to_the_limit_reads_back_and_expands(client: httpx.Client) -> None:
    assert write_schema(client, chain_schema(1, MAX_EXPRESSION_DEPTH)).status_code == 200
    assert client.post(f"{T}/data/write", json=DATA).status_code == 200
    read = client.post(f"{T}/schemas/read", json={})
    assert read.status_code == 200, read.text
    node, levels = read.json()["schema"]["entity_definitions"]["doc"]["permissions"]["q0"], 0
    node = node["child"]
    while "rewrite" in node:
        node, levels = node["rewrite"]["children"][-1], levels + 1
    viewer = {"leaf": {"computed_user_set": {"relation": "viewer"}}}
    assert (levels, node) == (MAX_EXPRESSION_DEPTH, viewer)
    expanded = client.post(f"{T}/permissions/expand", json={"entity": DOC, "permission": "q0"})
    assert expanded.status_code == 200, expanded.text


def test_an_expand_tree_as_deep_as_the_limit_is_returned(client: httpx.Client) -> None:
    # folder:0's view nests 127 operators, then its parent's view 127 more below the parent
    # union: the deepest tree an expand may return, serialised by the server.
    schema = f"""
        entity user {{}}
        entity folder {{
            relation parent @folder
            relation yes @user
            relation no @user
            permission view = {nested(MAX_TREE_DEPTH // 2 - 1, "parent.view")}
        }}
    """
    assert write_schema(client, schema).status_code == 200
    folder = {"type": "folder", "id": "0"}
    data = {"tuples": [tuple_json(folder, "parent", {"type": "folder", "id": "1"})]}
    assert client.post(f"{T}/data/write", json=data).status_code == 200
    body = {"entity": folder, "permission": "view"}
    response = client.post(f"{T}/permissions/expand", json=body)
    assert response.status_code == 200, response.text
    depth, node = 1, response.json()["tree"]
    while node.get("expand") and node["expand"]["children"]:
        node = node["expand"]["children"][-1]  # the walk to the parent is always last
        depth += 1
    assert depth == MAX_TREE_DEPTH
    # One more parent, and the tree would be deeper than the limit.
    more = {"tuples": [tuple_json({"type": "folder", "id": "1"}, "parent", folder)]}
    assert client.post(f"{T}/data/write", json=more).status_code == 200
    response = client.post(f"{T}/permissions/expand", json=body)
    assert response.status_code == 400
    assert f"more than {MAX_TREE_DEPTH} nodes" in response.json()["message"]


# --- a schema stored before the limits ------------------------------------------------------------


def test_a_tenant_whose_stored_schema_breaks_a_limit_is_told_to_write_a_new_one(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    # What an older server accepted and stored, as it is on disk.
    data_dir = tmp_path / "old"
    store = LevelDBStore(data_dir, gc_interval=None)
    store.write_schema("t1", chain_schema(601))
    store.close()
    server = start_server(data_dir=str(data_dir))
    with server.client() as client:
        for response in (
            unrelated_check(client),
            client.post(f"{T}/schemas/read", json={}),
            client.post(f"{T}/data/write", json=DATA),
        ):
            assert response.status_code == 404, response.text
            message = response.json()["message"]
            assert "does not compile under this server's limits" in message, message
            assert "reference chain deeper than 128" in message
            assert message.endswith("write a new schema to replace it")
        statuses = answers(client, 50)
        assert {status for path, status in statuses.items() if path != "schemas/partial-write"} == {
            404
        }
        # A partial write starts from the stored text: still refused, saying why.
        assert statuses["schemas/partial-write"] == 400
        assert write_schema(client, chain_schema(3)).status_code == 200
        assert client.post(f"{T}/data/write", json=DATA).status_code == 200
        assert unrelated_check(client).json()["can"] == "CHECK_RESULT_ALLOWED"
        assert set(answers(client, 50).values()) == {200}
