"""Shared set-up for the relations-layer API tests: a tenant per test with a schema and
registered relationship types, seed 003's contact schema and record fields, and the assertion
for Strapi's error envelope."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from api.services import SERVICES
from engine.relations.registry import TypeRequest

_ids = itertools.count(1)

#: Seed 003's relationship kinds, in the order the record schema (D6) lists them.
KINDS = [
    "partner",
    "spouse",
    "parent",
    "child",
    "sibling",
    "friend",
    "colleague",
    "manager",
    "report",
    "mentor",
    "mentee",
    "other",
]
#: The 400 message for a kind outside KINDS.
UNKNOWN_KIND = "kind must be one of the following values: " + ", ".join(KINDS)
_KIND_RELATIONS = "\n".join(f"    relation {kind} @contact" for kind in KINDS)
#: A schema the record routes (D1-D6) accept: contact has one ``@contact`` relation per kind.
CONTACT_SCHEMA = f"""
entity user {{}}
entity contact {{
    relation owner @user
    relation viewer @user
    relation knows @contact
{_KIND_RELATIONS}
    permission view = owner or viewer
    permission edit = owner
}}
"""
#: A relationship record's fields, in the order D6 describes them.
RECORD_FIELDS = (
    "id",
    "kind",
    "label",
    "notes",
    "since",
    "parent_id",
    "target_id",
    "status",
    "is_archived",
    "owned_by",
    "pair_id",
    "is_mirror",
    "created_at",
    "updated_at",
)
#: Strapi's error name for each status the relations layer answers with.
STRAPI_ERROR_NAMES = {
    400: "ValidationError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    429: "RateLimitError",
}


def strapi_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is Strapi's error envelope for ``status`` (``data`` null, the error's
    status and name matching); returns the ``error`` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None, body
    error: dict[str, Any] = body["error"]
    assert (error["status"], error["name"]) == (status, STRAPI_ERROR_NAMES[status]), error
    return error


def new_tenant(client: httpx.Client, schema: str) -> str:
    tenant = f"rel{next(_ids)}"
    response = client.post("/v1/tenants/create", json={"id": tenant, "name": tenant})
    assert response.status_code == 200, response.text
    response = client.post(f"/v1/tenants/{tenant}/schemas/write", json={"schema": schema})
    assert response.status_code == 200, response.text
    return tenant


def register(
    server: Any,
    tenant: str,
    source: str,
    role: str,
    target: str,
    *,
    cardinality: str | None = None,
    inverse: str | None = None,
) -> str:
    """Register a relationship type through the service (the registry routes have their own
    tests); returns its id."""
    request = TypeRequest(
        kind="co_to_co",
        role=role,
        source_type=source,
        target_type=target,
        source_field="parentCustomObjectType",
        target_field="childCustomObjectType",
        sent=frozenset({"cardinality", "bidirectional", "inverse_role"}),
        cardinality=cardinality,
        bidirectional=inverse is not None,
        inverse_role=inverse,
    )
    rt, _, _ = server.app[SERVICES].relations.register_type(tenant, request)
    return str(rt.id)


def check(
    client: httpx.Client, tenant: str, entity: str, permission: str, subject: str, token: str = ""
) -> bool:
    et, eid = entity.split(":", 1)
    st, sid = subject.split(":", 1)
    body: dict[str, Any] = {
        "entity": {"type": et, "id": eid},
        "permission": permission,
        "subject": {"type": st, "id": sid},
        "metadata": {"snap_token": token, "depth": 20},
    }
    response = client.post(f"/v1/tenants/{tenant}/permissions/check", json=body)
    assert response.status_code == 200, response.text
    return bool(response.json()["can"] == "CHECK_RESULT_ALLOWED")


def read_tuples(client: httpx.Client, tenant: str, entity_type: str, token: str = "") -> set[str]:
    body = {
        "metadata": {"snap_token": token},
        "filter": {"entity": {"type": entity_type}},
        "page_size": 100,
    }
    response = client.post(f"/v1/tenants/{tenant}/data/relationships/read", json=body)
    assert response.status_code == 200, response.text
    out = set()
    for t in response.json()["tuples"]:
        out.add(
            f"{t['entity']['type']}:{t['entity']['id']}#{t['relation']}@{t['subject']['type']}:{t['subject']['id']}"
        )
    return out


def tenant_with_schema(
    client: httpx.Client, schema: str, headers: dict[str, str], tenant: str = "t1"
) -> None:
    """``tenant`` (created unless it is the default ``t1``) with ``schema`` written."""
    if tenant != "t1":
        response = client.post("/v1/tenants/create", json={"id": tenant}, headers=headers)
        assert response.status_code == 200, response.text
    response = client.post(
        f"/v1/tenants/{tenant}/schemas/write", json={"schema": schema}, headers=headers
    )
    assert response.status_code == 200, response.text
