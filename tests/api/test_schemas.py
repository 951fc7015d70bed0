"""Schemas over HTTP: write (every compile error with its line:col), read the compiled definition
of the head or a named version, list versions newest first a page at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import shaped

SCHEMA = """\
entity user {}

entity group {
    relation member @user @group#member
}

entity doc {
    relation owner @user
    relation viewer @user @group#member
    relation parent @doc
    attribute public boolean
    attribute level integer
    attribute tags string[]
    permission edit = owner or parent.edit
    permission view = (viewer and public) or edit
    permission limited = view not owner
    permission high = is_high(level)
}

rule is_high(level integer) {
    level > 3
}
"""


def _leaf(relation: str) -> dict[str, Any]:
    return {"leaf": {"computed_user_set": {"relation": relation}}}


def _rewrite(operation: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {"rewrite": {"rewrite_operation": operation, "children": list(children)}}


def _entity(name: str, **parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "relations": parts.get("relations", {}),
        "permissions": parts.get("permissions", {}),
        "attributes": parts.get("attributes", {}),
        "references": parts.get("references", {}),
    }


COMPILED = {
    "entity_definitions": {
        "user": _entity("user"),
        "group": _entity(
            "group",
            relations={
                "member": {
                    "name": "member",
                    "relation_references": [
                        {"type": "user", "relation": ""},
                        {"type": "group", "relation": "member"},
                    ],
                }
            },
            references={"member": "REFERENCE_RELATION"},
        ),
        "doc": _entity(
            "doc",
            relations={
                "owner": {
                    "name": "owner",
                    "relation_references": [{"type": "user", "relation": ""}],
                },
                "viewer": {
                    "name": "viewer",
                    "relation_references": [
                        {"type": "user", "relation": ""},
                        {"type": "group", "relation": "member"},
                    ],
                },
                "parent": {
                    "name": "parent",
                    "relation_references": [{"type": "doc", "relation": ""}],
                },
            },
            permissions={
                "edit": {
                    "name": "edit",
                    "child": _rewrite(
                        "OPERATION_UNION",
                        _leaf("owner"),
                        {
                            "leaf": {
                                "tuple_to_user_set": {
                                    "tupleSet": {"relation": "parent"},
                                    "computed": {"relation": "edit"},
                                }
                            }
                        },
                    ),
                },
                "view": {
                    "name": "view",
                    "child": _rewrite(
                        "OPERATION_UNION",
                        _rewrite(
                            "OPERATION_INTERSECTION",
                            _leaf("viewer"),
                            {"leaf": {"computed_attribute": {"name": "public"}}},
                        ),
                        _leaf("edit"),
                    ),
                },
                "limited": {
                    "name": "limited",
                    "child": _rewrite("OPERATION_EXCLUSION", _leaf("view"), _leaf("owner")),
                },
                "high": {
                    "name": "high",
                    "child": {
                        "leaf": {
                            "call": {
                                "rule_name": "is_high",
                                "arguments": [{"computed_attribute": {"name": "level"}}],
                            }
                        }
                    },
                },
            },
            attributes={
                "public": {"name": "public", "type": "ATTRIBUTE_TYPE_BOOLEAN"},
                "level": {"name": "level", "type": "ATTRIBUTE_TYPE_INTEGER"},
                "tags": {"name": "tags", "type": "ATTRIBUTE_TYPE_STRING_ARRAY"},
            },
            references={
                "owner": "REFERENCE_RELATION",
                "viewer": "REFERENCE_RELATION",
                "parent": "REFERENCE_RELATION",
                "public": "REFERENCE_ATTRIBUTE",
                "level": "REFERENCE_ATTRIBUTE",
                "tags": "REFERENCE_ATTRIBUTE",
                "edit": "REFERENCE_PERMISSION",
                "view": "REFERENCE_PERMISSION",
                "limited": "REFERENCE_PERMISSION",
                "high": "REFERENCE_PERMISSION",
            },
        ),
    },
    "rule_definitions": {
        "is_high": {
            "name": "is_high",
            "arguments": {"level": "ATTRIBUTE_TYPE_INTEGER"},
            "expression": {"cel": "level > 3"},
        }
    },
    "references": {
        "user": "REFERENCE_ENTITY",
        "group": "REFERENCE_ENTITY",
        "doc": "REFERENCE_ENTITY",
        "is_high": "REFERENCE_RULE",
    },
}

SMALL = "entity user {}\n\nentity team {\n    relation member @user\n}\n"


def _error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == reason, body
    return body


def _violations(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["field"], v["description"]) for v in body["details"][1]["field_violations"]]


def _write(client: httpx.Client, text: str, tenant: str = "t1") -> str:
    response = client.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": text})
    assert response.status_code == 200, response.text
    version: str = shaped(m.SchemaVersionResponse, response.json())["schema_version"]
    assert version
    return version


def _read(
    client: httpx.Client, version: str = "", tenant: str = "t1", text: str | None = None
) -> dict[str, Any]:
    """The compiled schema; with ``text``, also checks the text it was written as."""
    response = client.post(
        f"/v1/tenants/{tenant}/schemas/read", json={"metadata": {"schema_version": version}}
    )
    assert response.status_code == 200, response.text
    body = shaped(m.SchemaReadResponse, response.json())
    if text is not None:
        assert body["x_schema_text"] == text
    schema: dict[str, Any] = body["schema"]
    return schema


def _list(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/tenants/t1/schemas/list", json=body)
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = shaped(m.SchemaListResponse, response.json())
    return listed


# -- write ----------------------------------------------------------------------------------


def test_write_returns_a_new_version_each_time(client: httpx.Client) -> None:
    first = _write(client, SCHEMA)
    second = _write(client, SCHEMA)
    assert first != second
    assert _list(client)["head"] == second


def test_write_of_a_schema_with_several_errors_lists_every_one_with_line_and_column(
    client: httpx.Client,
) -> None:
    bad = (
        "entity user {}\n"
        "entity doc {\n"
        "    relation owner @usr\n"
        "    permission edit = ownr\n"
        "    attribute size strin\n"
        "}\n"
    )
    response = client.post("/v1/tenants/t1/schemas/write", json={"schema": bad})
    body = _error(response, 400, "ERROR_CODE_SCHEMA_COMPILE")
    violations = _violations(body)
    assert [field for field, _ in violations] == ["schema"] * 3
    positions = [description.split(": ", 1)[0] for _, description in violations]
    assert positions == ["3:21", "4:23", "5:20"]
    for (_, description), name in zip(violations, ["usr", "ownr", "strin"], strict=True):
        assert f"`{name}`" in description
    for _, description in violations:
        assert description in body["message"]
    assert _list(client) == {"head": "", "schemas": [], "continuous_token": ""}


def test_write_of_a_schema_with_a_syntax_error_names_its_position(client: httpx.Client) -> None:
    response = client.post(
        "/v1/tenants/t1/schemas/write",
        json={"schema": "entity user {}\nentity doc {\n  relation\n}\n"},
    )
    body = _error(response, 400, "ERROR_CODE_SCHEMA_COMPILE")
    [(field, description)] = _violations(body)
    assert field == "schema"
    assert description.startswith("4:1: ")


def test_write_of_a_schema_with_syntax_errors_in_two_entities_lists_both(
    client: httpx.Client,
) -> None:
    bad = "entity user {}\nentity doc {\n  relation\n}\nentity team {\n  relation m @\n}\n"
    response = client.post("/v1/tenants/t1/schemas/write", json={"schema": bad})
    body = _error(response, 400, "ERROR_CODE_SCHEMA_COMPILE")
    positions = [description.split(": ", 1)[0] for _, description in _violations(body)]
    assert positions == ["4:1", "7:1"]


@pytest.mark.parametrize(
    "body",
    [{"schema": ""}, {}, {"schema": None}, {"schema": 5}, {"schema": ["entity user {}"]}],
    ids=["empty", "missing", "null", "number", "list"],
)
def test_write_without_schema_text_is_a_400_naming_the_schema_field(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    response = client.post("/v1/tenants/t1/schemas/write", json=body)
    body = _error(response, 400, "ERROR_CODE_VALIDATION")
    assert [field for field, _ in _violations(body)] == ["schema"]
    assert _list(client)["schemas"] == []


def test_write_to_an_unknown_tenant_is_a_404_even_when_the_schema_is_bad(
    client: httpx.Client,
) -> None:
    for text in (SCHEMA, "entity doc { relation owner @nobody }"):
        response = client.post("/v1/tenants/nobody/schemas/write", json={"schema": text})
        _error(response, 404, "ERROR_CODE_TENANT_NOT_FOUND")


# -- read -----------------------------------------------------------------------------------


def test_read_returns_the_compiled_definition_of_the_head(client: httpx.Client) -> None:
    _write(client, SMALL)
    _write(client, SCHEMA)
    assert _read(client, text=SCHEMA) == COMPILED
    # Leaving out metadata altogether means the head too.
    response = client.post("/v1/tenants/t1/schemas/read", json={})
    assert response.json() == {"schema": COMPILED, "x_schema_text": SCHEMA}


def test_read_of_a_named_version_returns_that_version(client: httpx.Client) -> None:
    old = _write(client, SCHEMA)
    new = _write(client, SMALL)
    assert _read(client, old, text=SCHEMA) == COMPILED
    small = _read(client, new, text=SMALL)
    assert set(small["entity_definitions"]) == {"user", "team"}
    assert small["entity_definitions"]["team"]["relations"] == {
        "member": {"name": "member", "relation_references": [{"type": "user", "relation": ""}]}
    }
    assert small["rule_definitions"] == {}
    assert small["references"] == {"user": "REFERENCE_ENTITY", "team": "REFERENCE_ENTITY"}
    assert _read(client) == small


def test_read_accepts_the_camel_case_schema_version(client: httpx.Client) -> None:
    old = _write(client, SCHEMA)
    _write(client, SMALL)
    response = client.post("/v1/tenants/t1/schemas/read", json={"metadata": {"schemaVersion": old}})
    assert response.json()["schema"] == COMPILED


@pytest.mark.parametrize(
    "version",
    ["nope", "06h0i7j0i3f3tp1iqqfm", "x" * 300, "../t2", "\u00e9"],
    ids=["word", "well-formed", "long", "traversal", "unicode"],
)
def test_read_of_an_unknown_version_is_schema_not_found(client: httpx.Client, version: str) -> None:
    _write(client, SCHEMA)
    response = client.post(
        "/v1/tenants/t1/schemas/read", json={"metadata": {"schema_version": version}}
    )
    _error(response, 404, "ERROR_CODE_SCHEMA_NOT_FOUND")


def test_read_before_any_schema_is_schema_not_found(client: httpx.Client) -> None:
    body = _error(
        client.post("/v1/tenants/t1/schemas/read", json={}), 404, "ERROR_CODE_SCHEMA_NOT_FOUND"
    )
    assert "t1" in body["message"]


def test_a_version_of_one_tenant_is_not_found_in_another(client: httpx.Client) -> None:
    client.post("/v1/tenants/create", json={"id": "t2"})
    version = _write(client, SCHEMA, tenant="t1")
    _write(client, SMALL, tenant="t2")
    response = client.post(
        "/v1/tenants/t2/schemas/read", json={"metadata": {"schema_version": version}}
    )
    _error(response, 404, "ERROR_CODE_SCHEMA_NOT_FOUND")
    assert _read(client, tenant="t1") == COMPILED


# -- list -----------------------------------------------------------------------------------


def test_list_gives_versions_newest_first_with_the_head(client: httpx.Client) -> None:
    written = [_write(client, text) for text in (SMALL, SCHEMA, SMALL, SCHEMA)]
    listed = _list(client)
    assert listed["head"] == written[-1]
    assert [s["version"] for s in listed["schemas"]] == written[::-1]
    assert listed["continuous_token"] == ""
    times = [datetime.fromisoformat(s["created_at"]) for s in listed["schemas"]]
    assert all(s["created_at"].endswith("Z") for s in listed["schemas"])
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize("page_size", [1, 2, 3, 5], ids=lambda n: f"page-{n}")
def test_list_walks_every_version_once_a_page_at_a_time(
    client: httpx.Client, page_size: int
) -> None:
    written = [_write(client, SMALL) for _ in range(5)]
    seen: list[str] = []
    pages, token = 0, ""
    while True:
        listed = _list(client, page_size=page_size, continuous_token=token)
        assert listed["head"] == written[-1]
        assert 0 < len(listed["schemas"]) <= page_size
        seen += [s["version"] for s in listed["schemas"]]
        pages += 1
        token = listed["continuous_token"]
        if not token:
            break
    assert seen == written[::-1]
    assert pages == -(-len(written) // page_size)


def test_list_accepts_camel_case_paging_fields(client: httpx.Client) -> None:
    written = [_write(client, SMALL) for _ in range(3)]
    first = _list(client, pageSize=2)
    assert [s["version"] for s in first["schemas"]] == written[:0:-1]
    rest = _list(client, pageSize=2, continuousToken=first["continuous_token"])
    assert [s["version"] for s in rest["schemas"]] == written[:1]


def test_list_with_a_foreign_or_garbage_token_is_a_400(client: httpx.Client) -> None:
    client.post("/v1/tenants/create", json={"id": "t2"})
    for tenant in ("t1", "t2"):
        for _ in range(2):
            _write(client, SMALL, tenant=tenant)
    other = client.post("/v1/tenants/t2/schemas/list", json={"page_size": 1}).json()
    for token in (other["continuous_token"], "garbage"):
        response = client.post(
            "/v1/tenants/t1/schemas/list", json={"page_size": 1, "continuous_token": token}
        )
        body = _error(response, 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")
        assert [field for field, _ in _violations(body)] == ["continuous_token"]


def test_list_of_an_unknown_tenant_is_a_404(client: httpx.Client) -> None:
    response = client.post("/v1/tenants/nobody/schemas/list", json={})
    _error(response, 404, "ERROR_CODE_TENANT_NOT_FOUND")
