"""PATCH /schemas/partial-write on a real server: edits make a new head version; every problem
is reported at once; a result that does not compile is a 400 quoting the offending line."""

from __future__ import annotations

import httpx

from api.models import SchemaVersionResponse
from tests.api.conftest import shaped

BASE = """
entity user {}
entity doc {
    relation owner @user
    relation viewer @user
    permission view = viewer or owner
}
"""
URL = "/v1/tenants/t1/schemas/partial-write"


def _write_base(client: httpx.Client) -> str:
    response = client.post("/v1/tenants/t1/schemas/write", json={"schema": BASE})
    assert response.status_code == 200, response.text
    return str(response.json()["schema_version"])


def _check(client: httpx.Client, permission: str, relation: str) -> str:
    client.post(
        "/v1/tenants/t1/relationships/write",
        json={
            "tuples": [
                {
                    "entity": {"type": "doc", "id": "1"},
                    "relation": relation,
                    "subject": {"type": "user", "id": "u"},
                }
            ]
        },
    ).raise_for_status()
    response = client.post(
        "/v1/tenants/t1/permissions/check",
        json={
            "entity": {"type": "doc", "id": "1"},
            "permission": permission,
            "subject": {"type": "user", "id": "u"},
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["can"])


def test_partial_write_adds_updates_and_deletes_members_in_a_new_head(
    client: httpx.Client,
) -> None:
    first = _write_base(client)
    response = client.patch(
        URL,
        json={
            "metadata": {"schema_version": ""},
            "partials": {
                "doc": {
                    "write": ["relation editor @user", "permission edit = editor"],
                    "update": ["permission view = viewer or owner or editor"],
                    "delete": [],
                }
            },
        },
    )
    assert response.status_code == 200, response.text
    version = shaped(SchemaVersionResponse, response.json())["schema_version"]
    assert version > first
    listing = client.post("/v1/tenants/t1/schemas/list", json={}).json()
    assert listing["head"] == version
    assert _check(client, "view", "editor") == "CHECK_RESULT_ALLOWED"
    assert _check(client, "edit", "editor") == "CHECK_RESULT_ALLOWED"
    # The base version is unchanged and still readable.
    old = client.post("/v1/tenants/t1/schemas/read", json={"metadata": {"schema_version": first}})
    assert "editor" not in old.json()["schema"]["entity_definitions"]["doc"]["relations"]


def test_partial_write_reports_every_problem_at_once(client: httpx.Client) -> None:
    _write_base(client)
    response = client.patch(
        URL,
        json={
            "partials": {
                "doc": {"write": ["relation owner @user", "relation = broken"], "delete": ["nope"]},
                "docs": {"write": ["relation x @user"]},
            }
        },
    )
    assert response.status_code == 400, response.text
    body = response.json()
    fields = [v["field"] for v in body["details"][1]["field_violations"]]
    assert fields == [
        "partials.doc.write[0]",
        "partials.doc.write[1]",
        "partials.doc.delete[0]",
        "partials.docs",
    ]
    assert body["details"][0]["reason"] == "ERROR_CODE_ALREADY_EXIST"


def test_partial_write_that_breaks_the_schema_is_refused_and_changes_nothing(
    client: httpx.Client,
) -> None:
    version = _write_base(client)
    response = client.patch(URL, json={"partials": {"doc": {"delete": ["viewer"]}}})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["details"][0]["reason"] == "ERROR_CODE_SCHEMA_COMPILE"
    assert "permission view = viewer or owner" in body["message"]
    assert client.post("/v1/tenants/t1/schemas/list", json={}).json()["head"] == version


def test_partial_write_on_a_named_base_version(client: httpx.Client) -> None:
    first = _write_base(client)
    client.post(
        "/v1/tenants/t1/schemas/write", json={"schema": "entity user {}\nentity doc {}"}
    ).raise_for_status()
    response = client.patch(
        URL,
        json={
            "metadata": {"schema_version": first},
            "partials": {"doc": {"write": ["relation editor @user"]}},
        },
    )
    assert response.status_code == 200, response.text
    assert _check(client, "view", "owner") == "CHECK_RESULT_ALLOWED"


def test_partial_write_errors_for_missing_tenant_and_schema(client: httpx.Client) -> None:
    partials = {"partials": {"doc": {"write": ["relation x @user"]}}}
    missing = client.patch("/v1/tenants/nobody/schemas/partial-write", json=partials)
    assert missing.status_code == 404
    assert missing.json()["details"][0]["reason"] == "ERROR_CODE_TENANT_NOT_FOUND"
    no_schema = client.patch(URL, json=partials)
    assert no_schema.status_code == 404
    assert no_schema.json()["details"][0]["reason"] == "ERROR_CODE_SCHEMA_NOT_FOUND"
    assert client.post(URL, json=partials).status_code == 405
