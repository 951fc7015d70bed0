"""The relationship-type registry and relationships by id (the camelCase family).

Served at ``/v1/tenants/{tenant_id}/relationship-types[...]`` and
``/v1/tenants/{tenant_id}/relationships[...]``, and at the bare ``/relationship-types[...]`` and
``/relationships[...]`` for the tenant of the API token sent (the admin key gets a 400 there:
it belongs to no tenant). JSON is camelCase; writes return ``meta.snapToken``. A type fixes a
link's role and object types, so a new link takes bare ids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.openapi import METADATA, ROLE_NAME, list_query_parameters, nullable, text
from api.relations_http import (
    ROLE,
    TenantHandler,
    body_object,
    check_metadata,
    check_string,
    described,
    list_query,
    on_both_bases,
    principal,
    relations_of,
)
from api.relations_views import link_item, type_item
from api.request_io import respond
from api.services import SERVICES
from engine.relations import queries, relationships
from engine.relations.errors import FieldError, Forbidden, Invalid
from engine.relations.model import (
    CARDINALITIES,
    ENTITY_ID,
    ENTITY_TYPE,
    KINDS,
)
from engine.relations.queries import (
    LINK_FILTERS,
    LINK_SORTS,
    TYPE_BOOLEANS,
    TYPE_FILTERS,
    TYPE_SORTS,
)
from engine.relations.registry import TypeRequest

routes = web.RouteTableDef()

TYPES = "/relationship-types"
LINKS = "/relationships"
MAX_NAME = 255
MAX_DESCRIPTION = 1000
#: The body fields naming object types, per kind; one kind's fields are refused in the other.
TYPE_FIELDS = {
    "person_to_co": ("customObjectType",),
    "co_to_co": ("parentCustomObjectType", "childCustomObjectType"),
}


def _both(method: str, base: str, suffix: str = "") -> Callable[[TenantHandler], TenantHandler]:
    """Under ``/v1/tenants/{tenant_id}`` + ``base`` and under the bare ``base`` (the token's
    tenant)."""
    bases = (f"/v1/tenants/{{tenant_id}}{base}", base)
    return on_both_bases(routes, method, bases, suffix, fallback=None)


def _one_of(name: str, values: tuple[str, ...]) -> str:
    return f"{name} must be one of the following values: {', '.join(values)}"


def _role(
    value: object, name: str, errors: list[FieldError], *, required: bool = True
) -> str | None:
    """A role name (yup-style messages): required, a string, 1-255, ``[a-z][a-z0-9_]*``."""
    if value is None or (value == "" and required):
        if required:
            errors.append(FieldError((name,), f"{name} is a required field"))
        return None
    text = check_string(value, (name,), name, MAX_NAME, errors, minimum=1)
    if text is None:
        return None
    if not ROLE.fullmatch(text):
        errors.append(
            FieldError((name,), f'{name} must match the following: "^[a-z][a-z0-9_]{{0,254}}$"')
        )
        return None
    return text


def _type_request(body: dict[str, Any], person_type: str) -> TypeRequest:
    """A registration body checked (every problem at once) and turned into the registry's
    request."""
    errors: list[FieldError] = []
    kind = body.get("kind")
    if kind is None:
        errors.append(FieldError(("kind",), "kind is a required field"))
    elif kind not in KINDS:
        errors.append(FieldError(("kind",), _one_of("kind", KINDS)))
        kind = None
    role = _role(body.get("role"), "role", errors)
    names: dict[str, str | None] = {}
    if kind is not None:
        for field in TYPE_FIELDS[kind]:
            names[field] = check_string(
                body.get(field), (field,), field, MAX_NAME, errors, minimum=1
            )
        for other_kind, fields in TYPE_FIELDS.items():
            for field in fields:
                if other_kind != kind and field in body:
                    errors.append(FieldError((field,), f"{field} is not allowed for kind {kind}"))
    cardinality = body.get("cardinality")
    if cardinality is not None and cardinality not in CARDINALITIES:
        errors.append(FieldError(("cardinality",), _one_of("cardinality", CARDINALITIES)))
    description = check_string(
        body.get("description"),
        ("description",),
        "description",
        MAX_DESCRIPTION,
        errors,
        nullable=True,
        minimum=1,
    )
    bidirectional = body.get("bidirectional", False)
    if not isinstance(bidirectional, bool):
        errors.append(FieldError(("bidirectional",), "bidirectional must be a boolean"))
        bidirectional = None
    inverse_role = _role(body.get("inverseRole"), "inverseRole", errors, required=False)
    # Only a valid `false` (or none sent) makes inverseRole wrong; a bad value is reported above.
    if body.get("inverseRole") is not None and bidirectional is False:
        errors.append(
            FieldError(("inverseRole",), "inverseRole is only allowed with bidirectional: true")
        )
    if errors:
        raise Invalid(errors)
    assert kind is not None and role is not None and bidirectional is not None
    sent = {
        name
        for name, key in (
            ("cardinality", "cardinality"),
            ("description", "description"),
            ("bidirectional", "bidirectional"),
            ("inverse_role", "inverseRole"),
        )
        if key in body and (key != "inverseRole" or body[key] is not None)
    }
    common = {
        "kind": kind,
        "role": role,
        "sent": frozenset(sent),
        "cardinality": cardinality,
        "description": description,
        "bidirectional": bidirectional,
        "inverse_role": inverse_role,
    }
    if kind == "person_to_co":
        target = names["customObjectType"]
        assert target is not None
        return TypeRequest(
            source_type=person_type,
            target_type=target,
            source_field=None,
            target_field="customObjectType",
            **common,
        )
    parent, child = names["parentCustomObjectType"], names["childCustomObjectType"]
    assert parent is not None and child is not None
    return TypeRequest(
        source_type=parent,
        target_type=child,
        source_field="parentCustomObjectType",
        target_field="childCustomObjectType",
        **common,
    )


@_both("POST", TYPES)
@described(
    "Register a relationship type (201), or refine the one with the same key (200).",
    errors=(403, 409, 413),
    status=201,
    body={
        "type": "object",
        "required": ["kind", "role"],
        "properties": {
            "kind": {"enum": list(KINDS)},
            "role": ROLE_NAME,
            **{field: text(MAX_NAME, 1) for fields in TYPE_FIELDS.values() for field in fields},
            "cardinality": nullable({"enum": list(CARDINALITIES)}),
            "description": nullable(text(MAX_DESCRIPTION, 1)),
            "bidirectional": {"type": "boolean"},
            "inverseRole": nullable(ROLE_NAME),
        },
        "allOf": [
            *(
                {
                    "if": {"required": ["kind"], "properties": {"kind": {"const": kind}}},
                    "then": {
                        "required": list(fields),
                        "not": {
                            "anyOf": [
                                {"required": [other]}
                                for other_kind, others in TYPE_FIELDS.items()
                                if other_kind != kind
                                for other in others
                            ]
                        },
                    },
                }
                for kind, fields in TYPE_FIELDS.items()
            ),
            {
                "description": "inverseRole only with bidirectional: true",
                "if": {
                    "required": ["inverseRole"],
                    "properties": {"inverseRole": {"type": "string"}},
                },
                "then": {
                    "required": ["bidirectional"],
                    "properties": {"bidirectional": {"const": True}},
                },
            },
        ],
    },
    answers=("data", "created", "meta"),
)
async def register_type(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Create a relationship type (201) or refine the one with the same key (200)."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, None)
    if not (who.allows("relationship_type:create") or who.allows("relationship_type:update")):
        raise Forbidden.missing("relationship_type:create")
    body = await body_object(request)
    rt, created, token = await svc.run(
        relationships.register_type,
        rel,
        tenant_id,
        who,
        functools.partial(_type_request, body),
    )
    svc.writes.notify()
    return respond(
        {"data": type_item(rt), "created": created, "meta": {"snapToken": token}},
        201 if created else 200,
    )


@_both("GET", TYPES)
@described(
    "List relationship types, filtered and paged.",
    errors=(403,),
    query=list_query_parameters(
        sorts=TYPE_SORTS, filters=TYPE_FILTERS, booleans=TYPE_BOOLEANS, created="createdAt"
    ),
)
async def list_types(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """The tenant's relationship types, filtered and sorted in memory (types are few)."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    await principal(request, tenant_id, "relationship_type:list")
    query, filters = list_query(
        request,
        sorts=TYPE_SORTS,
        default_sort="role",
        filters=TYPE_FILTERS,
        booleans=TYPE_BOOLEANS,
        created="createdAt",
    )
    result = await svc.run(queries.list_types, rel, tenant_id, query, filters)
    return respond(
        {
            "data": [type_item(rt) for rt in result.rows],
            "meta": {"pagination": result.pagination},
        }
    )


@_both("GET", TYPES, "/{relationship_type_id}")
@described("One relationship type.", errors=(403,))
async def get_type(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """One relationship type."""
    svc = request.app[SERVICES]
    await principal(request, tenant_id, "relationship_type:read")
    type_id = request.match_info["relationship_type_id"]
    rt = await svc.run(svc.relations.relation_type, tenant_id, type_id)
    return respond({"data": type_item(rt)})


@_both("DELETE", TYPES, "/{relationship_type_id}")
@described("Delete an unused relationship type and its inverse.", errors=(403, 409), status=204)
async def delete_type(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Delete an unused type and its inverse (409 type_in_use while any tuple has it)."""
    svc = request.app[SERVICES]
    await principal(request, tenant_id, "relationship_type:delete")
    type_id = request.match_info["relationship_type_id"]
    await svc.run(svc.relations.delete_type, tenant_id, type_id)
    svc.writes.notify()
    return web.Response(status=204)


# -- relationships -----------------------------------------------------------------------------


def _required_string(body: dict[str, Any], name: str, errors: list[FieldError]) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        errors.append(FieldError((name,), f"{name} is a required field"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError((name,), f"{name} must be a string"))
        return None
    return value


@_both("POST", LINKS)
@described(
    "Link two objects with a registered type (and write the mirror for bidirectional types).",
    errors=(403, 409, 413),
    status=201,
    body={
        "type": "object",
        "required": ["relationshipTypeId", "sourceId", "targetId"],
        "properties": {
            "relationshipTypeId": {"type": "string", "minLength": 1},
            **{
                name: {
                    "type": "string",
                    # A bare id, or `<type>:<id>` of the relationship type's object type.
                    "pattern": f"^(?:{ENTITY_TYPE.pattern}:)?{ENTITY_ID.pattern}$",
                    "description": f"An id of the type's {side} object type, or `<type>:<id>`.",
                }
                for name, side in (("sourceId", "source"), ("targetId", "target"))
            },
            "metadata": METADATA,
        },
    },
)
async def create_link(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Link two objects with a registered type (its inverse type links the other way)."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:create")
    body = await body_object(request)
    errors: list[FieldError] = []
    type_id = _required_string(body, "relationshipTypeId", errors)
    source_id = _required_string(body, "sourceId", errors)
    target_id = _required_string(body, "targetId", errors)
    metadata = check_metadata(body.get("metadata"), ("metadata",), errors)
    if errors:
        raise Invalid(errors)
    assert type_id is not None and source_id is not None and target_id is not None
    linked = await svc.run(
        relationships.create_link, rel, tenant_id, who, type_id, source_id, target_id, metadata
    )
    svc.writes.notify()
    return respond({"data": link_item(linked.row), "meta": {"snapToken": linked.token}}, 201)


@_both("GET", LINKS)
@described(
    "List relationships, filtered, sorted and paged.",
    errors=(403,),
    query=list_query_parameters(sorts=LINK_SORTS, filters=LINK_FILTERS, created="createdAt"),
)
async def list_links(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Relationship rows (mirrors included), by creation time or by list position."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:list")
    query, filters = list_query(
        request,
        sorts=LINK_SORTS,
        default_sort="createdAt",
        filters=LINK_FILTERS,
        created="createdAt",
    )
    result = await svc.run(queries.list_links, rel, tenant_id, who, query, filters)
    return respond(
        {
            "data": [link_item(row) for row in result.rows],
            "meta": {"pagination": result.pagination},
        }
    )


@_both("GET", LINKS, "/{relationship_id}")
@described("One relationship.", errors=(403,))
async def get_link(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """One relationship row (404 when missing or not readable)."""
    svc = request.app[SERVICES]
    who = await principal(request, tenant_id, "relationship:read")
    row = await svc.run(svc.relations.row, tenant_id, who, request.match_info["relationship_id"])
    return respond({"data": link_item(row)})


@_both("DELETE", LINKS, "/{relationship_id}")
@described("Delete a relationship and its mirror in one write.", errors=(403,), status=204)
async def delete_link(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Delete the relationship and its mirror in one write."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:delete")
    relationship_id = request.match_info["relationship_id"]
    await svc.run(relationships.delete_link, rel, tenant_id, who, relationship_id)
    svc.writes.notify()
    return web.Response(status=204)
