"""Shared set-up for the relations-layer API tests: a tenant per test with a schema and
registered relationship types."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from api.services import SERVICES
from engine.relations.registry import TypeRequest

_ids = itertools.count(1)


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
