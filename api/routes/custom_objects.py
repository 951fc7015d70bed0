"""Custom object types: ``GET``/``POST /v1/tenants/{tenant_id}/custom-objects/types`` and the
bare ``/custom-objects/types`` (the API token's tenant).

An object type is an entity definition of the tenant's schema (``engine.relations.object_types``):
the list shows every entity type the schema has (``custom`` marks those created here); a create
appends one as a new schema version.
Listing needs the scope ``relationship_type:list``, creating ``relationship_type:create``.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from aiohttp import web

from api.relations_http import body_object, described, on_both_bases, principal
from api.request_io import respond
from api.services import SERVICES, Services
from engine.errors import SchemaNotFound
from engine.relations import object_types
from engine.relations.errors import FieldError, Invalid

routes = web.RouteTableDef()

BASES = ("/v1/tenants/{tenant_id}/custom-objects/types", "/custom-objects/types")
#: A relation's subject type in a create: ``type`` or ``type#relation``.
SUBJECT = re.compile(r"[a-z][a-z0-9_]{0,63}(?:#[a-z][a-z0-9_]{0,63})?")
MAX_RELATIONS = 64
_NAME_SCHEMA = {
    "type": "string",
    "pattern": f"^{object_types.NAME.pattern}$",
    "not": {"enum": sorted(object_types.RESERVED)},
    "description": "A lowercase letter, then lowercase letters, digits or _ (not a keyword).",
}


@on_both_bases(routes, "GET", BASES, fallback=None)
@described("The tenant's object types: every entity type of its schema.", errors=(403,))
async def list_types(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Every entity type of the tenant's current schema, with its relations and permissions."""
    svc = request.app[SERVICES]
    await principal(request, tenant_id, "relationship_type:list")
    types = await svc.run(_listing, svc, tenant_id)
    return respond({"data": [asdict(t) for t in types], "meta": {"count": len(types)}})


@on_both_bases(routes, "POST", BASES, fallback=None)
@described(
    "Create an object type: an entity definition appended to the schema (a new version).",
    errors=(403, 409, 413),
    status=201,
    body={
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _NAME_SCHEMA,
            "relations": {
                "type": "object",
                "description": "relation name: its subject types (`type` or `type#relation`).",
                "propertyNames": _NAME_SCHEMA,
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": f"^{SUBJECT.pattern}$"},
                },
            },
        },
    },
)
async def create_type(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Append ``entity <name> {...}`` to the schema: 201 with the type and the new schema
    version; 409 when the name exists; 400 naming the naming rule for a bad name."""
    svc = request.app[SERVICES]
    await principal(request, tenant_id, "relationship_type:create")
    body = await body_object(request)
    errors: list[FieldError] = []
    name = object_types.check_name(body.get("name"), ("name",), errors)
    relations = _relations(body.get("relations"), errors)
    if errors:
        raise Invalid(errors)
    created, version = await svc.run(
        object_types.add, svc.store, svc.schema_lock, tenant_id, name, relations
    )
    svc.writes.notify()
    return respond({"data": asdict(created), "meta": {"schema_version": version}}, 201)


def _listing(svc: Services, tenant_id: str) -> list[object_types.ObjectType]:
    try:
        _, schema = svc.engine.schema(tenant_id)
    except SchemaNotFound:  # no schema yet: no object types
        return []
    return object_types.listing(schema, svc.store.reader(tenant_id))


def _relations(value: object, errors: list[FieldError]) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_RELATIONS:
        errors.append(
            FieldError(
                ("relations",),
                f"relations must be an object (at most {MAX_RELATIONS}) of relation name: "
                "[subject types]",
            )
        )
        return {}
    out: dict[str, list[str]] = {}
    for relation, targets in value.items():
        object_types.check_name(relation, ("relations", relation), errors)
        if not _subjects(targets):
            errors.append(
                FieldError(
                    ("relations", relation),
                    f"relations.{relation} must be a non-empty array of subject types "
                    "(`type` or `type#relation`)",
                )
            )
            continue
        out[relation] = list(targets)
    return out


def _subjects(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= MAX_RELATIONS
        and all(isinstance(t, str) and SUBJECT.fullmatch(t) for t in value)
    )
