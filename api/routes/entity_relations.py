"""Entity relations with metadata and Strapi-style connect/disconnect/set on their roles.

Served at ``/v1/tenants/{tenant_id}/entities/{entity}/relations[...]`` and verbatim at the
unscoped ``/core/api/v1/entities/{entity}/relations[...]`` (an API token's tenant; the default
tenant for the admin key). ``{entity}`` is ``type:id`` (``%3A`` decodes to ``:``) or a bare id,
and so is ``target_entity_id`` (``engine.relations.entities`` resolves bare ids); the entity is
the relation's source for writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from api.openapi import METADATA, ROLE_NAME, list_query_parameters
from api.relations_http import (
    ROLE,
    TenantHandler,
    body_object,
    check_metadata,
    described,
    entity_ref,
    list_query,
    on_both_bases,
    principal,
    relations_of,
)
from api.relations_views import entity_item, list_item
from api.request_io import respond
from api.services import SERVICES
from engine.relations import entities
from engine.relations.entities import DIRECTIONS, FILTERS, SORT_KEYS
from engine.relations.errors import FieldError, Invalid, NotFound
from engine.relations.model import ENTITY_ID, ENTITY_TYPE, Relation
from engine.relations.operations import Item, RoleOp

routes = web.RouteTableDef()

BASES = (
    "/v1/tenants/{tenant_id}/entities/{entity}/relations",
    "/core/api/v1/entities/{entity}/relations",
)
MAX_REFS = 1000
#: ``target_entity_id``: ``type:id``, or a bare id (no ``:``) typed by the relationship type.
TARGET_REF = {
    "type": "string",
    "pattern": f"^(?:{ENTITY_TYPE.pattern}:{ENTITY_ID.pattern}|[A-Za-z0-9_\\-@.+]{{1,128}})$",
    "description": "An entity reference `type:id`, or a bare id the relationship type types.",
}


def _both(method: str, suffix: str) -> Callable[[TenantHandler], TenantHandler]:
    return on_both_bases(routes, method, BASES, suffix)


def _ref(text: str, path: tuple[str | int, ...], errors: list[FieldError]) -> entities.Ref | None:
    """``type:id``, or a bare id (no ``:``) whose type is found later; None when malformed."""
    if ":" in text:
        return entity_ref(text, path, errors)
    if not ENTITY_ID.fullmatch(text):
        errors.append(
            FieldError(
                path,
                f"{path[-1]} must be an entity reference type:id or a bare id (letters, digits "
                "and _ - @ . : +, at most 128)",
            )
        )
        return None
    return text


def _path_ref(request: web.Request) -> entities.Ref:
    """The path's entity, ``type:id`` or a bare id (400 when malformed)."""
    errors: list[FieldError] = []
    ref = _ref(request.match_info["entity"], ("entity",), errors)
    if ref is None:
        raise Invalid(errors)
    return ref


async def _path_entity(
    request: web.Request, tenant_id: str, relation_id: str | None = None
) -> tuple[str, str]:
    """The path's entity typed: a bare id resolved across the object types that hold it (409
    when several do; 404 when none does)."""
    ref = _path_ref(request)
    if isinstance(ref, tuple):
        return ref
    svc = request.app[SERVICES]
    if relation_id is not None:
        found: tuple[str, str] = await svc.run(
            entities.resolve_or_404, relations_of(request), tenant_id, ref, relation_id
        )
        return found
    resolved = await svc.run(entities.resolve, relations_of(request), tenant_id, ref)
    if resolved is None:
        raise NotFound(f"no object type holds the id {ref}: send it as type:id")
    return resolved


def _direction(row: Relation, entity: tuple[str, str]) -> str:
    return "outgoing" if (row.entity_type, row.entity_id) == entity else "incoming"


@_both("GET", "")
@described(
    "List an entity's relations (outgoing, incoming or both), paged.",
    errors=(403,),
    query=list_query_parameters(
        sorts=SORT_KEYS, filters=FILTERS, extra={"direction": {"enum": list(DIRECTIONS)}}
    ),
)
async def list_relations(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """The entity's outgoing and incoming relations."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:list")
    ref = _path_ref(request)
    entity = await svc.run(entities.resolve, rel, tenant_id, ref)
    if entity is not None:
        await svc.run(entities.known, rel, tenant_id, entity)
    query, filters = list_query(
        request,
        sorts=SORT_KEYS,
        default_sort="relation_type,position,created_at",
        filters=FILTERS,
        extra=("direction",),
    )
    direction = request.query.get("direction", "both")
    if direction not in DIRECTIONS or len(request.query.getall("direction", [])) > 1:
        raise Invalid.at(
            ("direction",),
            "direction must be one of the following values: outgoing, incoming, both",
        )
    if entity is None:  # a bare id no object type holds: an entity without relations
        empty = await svc.run(rel.list_sorted, tenant_id, [], query, lambda _r: True, SORT_KEYS)
        return respond({"data": [], "meta": {"pagination": empty.pagination}})
    result, directions = await svc.run(
        entities.list_relations, rel, tenant_id, who, entity, direction, query, filters
    )
    return respond(
        {
            "data": [entity_item(r, directions[r.id]) for r in result.rows],
            "meta": {"pagination": result.pagination},
        }
    )


@_both("POST", "")
@described(
    "Relate the entity to a target; the mirror is written for bidirectional types.",
    errors=(403, 409, 413),
    status=201,
    body={
        "type": "object",
        "required": ["target_entity_id", "relation_type"],
        "properties": {
            "target_entity_id": TARGET_REF,
            "relation_type": ROLE_NAME,
            "metadata": METADATA,
        },
    },
)
async def create_relation(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Relate the entity to a target (and write the mirror for bidirectional types)."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:create")
    path_ref = _path_ref(request)
    if isinstance(path_ref, tuple):
        await svc.run(entities.writable, rel, tenant_id, who, path_ref)
    body = await body_object(request)
    errors: list[FieldError] = []
    target: entities.Ref | None = None
    raw_target = body.get("target_entity_id")
    if raw_target is None:
        errors.append(FieldError(("target_entity_id",), "target_entity_id is a required field"))
    elif not isinstance(raw_target, str):
        errors.append(FieldError(("target_entity_id",), "target_entity_id must be a string"))
    else:
        target = _ref(raw_target, ("target_entity_id",), errors)
    role = body.get("relation_type")
    if role is None:
        errors.append(FieldError(("relation_type",), "relation_type is a required field"))
    elif not isinstance(role, str):
        errors.append(FieldError(("relation_type",), "relation_type must be a string"))
    elif not registry_role(role):
        errors.append(
            FieldError(
                ("relation_type",), "relation_type must match [a-z][a-z0-9_]* (1-255 characters)"
            )
        )
        role = None
    metadata = check_metadata(body.get("metadata"), ("metadata",), errors)
    if target is not None and target == path_ref:
        errors.append(FieldError(("target_entity_id",), "an entity cannot be related to itself"))
    if errors:
        raise Invalid(errors)
    assert target is not None and isinstance(role, str)
    entity, typed_target = await svc.run(
        entities.typed_for_role, rel, tenant_id, path_ref, role, target
    )
    if not isinstance(path_ref, tuple):
        await svc.run(entities.writable, rel, tenant_id, who, entity)
    if typed_target == entity:
        raise Invalid.at(("target_entity_id",), "an entity cannot be related to itself")
    linked = await svc.run(
        entities.relate, rel, tenant_id, who, entity, role, typed_target, metadata
    )
    svc.writes.notify()
    return respond(
        {"data": entity_item(linked.row, "outgoing"), "meta": {"snap_token": linked.token}}, 201
    )


def registry_role(role: str) -> bool:
    return bool(ROLE.fullmatch(role))


@_both("GET", "/{relation_id}")
@described("One relation of the entity.", errors=(403,))
async def get_relation(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """One relation of the entity."""
    svc = request.app[SERVICES]
    who = await principal(request, tenant_id, "relationship:read")
    relation_id = request.match_info["relation_id"]
    entity = await _path_entity(request, tenant_id, relation_id)
    row = await svc.run(
        entities.relation_of, relations_of(request), tenant_id, who, entity, relation_id
    )
    return respond({"data": entity_item(row, _direction(row, entity))})


@_both("PATCH", "/{relation_id}")
@described(
    "Replace a relation's metadata (on both rows of a pair).",
    errors=(403, 413),
    body={"type": "object", "properties": {"metadata": METADATA}},
)
async def patch_relation(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Replace the metadata (on both rows of a pair); without ``metadata``, a no-op."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:update")
    relation_id = request.match_info["relation_id"]
    entity = await _path_entity(request, tenant_id, relation_id)
    row = await svc.run(entities.writable_relation, rel, tenant_id, who, entity, relation_id)
    body = await body_object(request)
    if "metadata" not in body:
        return respond(
            {"data": entity_item(row, _direction(row, entity)), "meta": {"snap_token": None}}
        )
    errors: list[FieldError] = []
    metadata = check_metadata(body["metadata"], ("metadata",), errors)
    if errors:
        raise Invalid(errors)
    updated, token = await svc.run(entities.set_metadata, rel, tenant_id, row.id, metadata)
    svc.writes.notify()
    return respond(
        {"data": entity_item(updated, _direction(updated, entity)), "meta": {"snap_token": token}}
    )


@_both("DELETE", "/{relation_id}")
@described(
    "Delete a relation and its mirror in one write.",
    errors=(403,),
    answers=("message", "snap_token"),
)
async def delete_relation(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Delete the relation and its mirror in one write."""
    svc = request.app[SERVICES]
    who = await principal(request, tenant_id, "relationship:delete")
    relation_id = request.match_info["relation_id"]
    entity = await _path_entity(request, tenant_id, relation_id)
    token = await svc.run(
        entities.unrelate, relations_of(request), tenant_id, who, entity, relation_id
    )
    svc.writes.notify()
    return respond({"message": "Relation removed successfully", "snap_token": token})


# -- connect / disconnect / set --------------------------------------------------------------------

_OP_KEYS = ("connect", "disconnect", "set", "options")
_POSITION_KEYS = ("before", "after", "start", "end")

# The body for the OpenAPI document: what ``_role_op``, ``_items`` and ``_position`` accept.
_REF = {
    "anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}],
    "description": "A relation id, or a target `type:id`.",
}
_POSITION = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {
        "before": _REF,
        "after": _REF,
        "start": {"const": True},
        "end": {"const": True},
    },
    "additionalProperties": False,
}


def _item_schema(*, position: bool) -> dict[str, Any]:
    """An item: a ref, null (skipped) or ``{id[, position]}`` (a position only to connect)."""
    properties = {"id": _REF, "position": _POSITION} if position else {"id": _REF}
    entry = {"type": "object", "required": ["id"], "properties": properties}
    return {"anyOf": [_REF, {"type": "null"}, {**entry, "additionalProperties": False}]}


def _items_schema(*, position: bool) -> dict[str, Any]:
    item = _item_schema(position=position)
    return {"anyOf": [{"type": "array", "items": item}, item]}


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


_ROLE_OPERATION = {
    "description": "null or a list clears the role (a list sets it); an object connects, "
    "disconnects or sets (`set` not with `connect` or `disconnect`).",
    "anyOf": [
        {"type": "null"},
        {"type": "array", "items": _item_schema(position=False)},
        _REF,
        {
            "type": "object",
            "properties": {
                "connect": _items_schema(position=True),
                "disconnect": _items_schema(position=False),
                "set": _items_schema(position=False),
                "options": {
                    "anyOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "properties": {"strict": {"type": "boolean"}},
                            "additionalProperties": False,
                        },
                    ]
                },
            },
            "additionalProperties": False,
            "not": {"allOf": [_given("set"), {"anyOf": [_given("connect"), _given("disconnect")]}]},
        },
    ],
}


def _is_ref(value: object) -> bool:
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def _items(
    value: object, path: tuple[str | int, ...], section: str, errors: list[FieldError]
) -> list[Item]:
    values = value if isinstance(value, list) else [value]
    items: list[Item] = []
    for index, raw in enumerate(values):
        here = (*path, index) if isinstance(value, list) else path
        if raw is None:
            continue
        if _is_ref(raw):
            items.append(Item(raw, here))
            continue
        if not isinstance(raw, dict):
            errors.append(FieldError(here, "an item must be an id, type:id, or {id, position}"))
            continue
        unknown = [k for k in raw if k not in ("id", "position")]
        for key in unknown:
            errors.append(FieldError((*here, key), f'Invalid key "{key}"'))
        ref = raw.get("id")
        if not _is_ref(ref):
            errors.append(FieldError((*here, "id"), "id must be an id or type:id"))
            continue
        position = raw.get("position")
        if "position" in raw and section != "connect":
            errors.append(FieldError((*here, "position"), f"position is not allowed in {section}"))
            continue
        if position is not None or "position" in raw:
            position = _position(position, (*here, "position"), errors)
            if position is None:
                continue
        items.append(Item(ref, here, position))  # type: ignore[arg-type]
    return items


def _position(
    value: object, path: tuple[str | int, ...], errors: list[FieldError]
) -> dict[str, Any] | None:
    message = "position must have exactly one of before, after, start: true, end: true"
    if not isinstance(value, dict) or len(value) != 1:
        errors.append(FieldError(path, message))
        return None
    ((key, anchor),) = value.items()
    if key not in _POSITION_KEYS:
        errors.append(FieldError((*path, key), f'Invalid key "{key}"'))
        return None
    if key in ("start", "end") and anchor is not True:
        errors.append(FieldError((*path, key), f"{key} must be true"))
        return None
    if key in ("before", "after") and not _is_ref(anchor):
        errors.append(FieldError((*path, key), f"{key} must be an id or type:id"))
        return None
    return {key: anchor}


def _role_op(role: str, value: object, errors: list[FieldError]) -> RoleOp | None:
    path: tuple[str | int, ...] = ("data", role)
    if value is None:
        return RoleOp(role, "set")
    if isinstance(value, list) or _is_ref(value):
        return RoleOp(role, "set", set_items=tuple(_items(value, path, "set", errors)))
    if not isinstance(value, dict):
        errors.append(
            FieldError(
                path, f"{role} must be a list, an id, null or an object of connect/disconnect/set"
            )
        )
        return None
    for key in value:
        if key not in _OP_KEYS:
            errors.append(FieldError((*path, key), f'Invalid key "{key}"'))
    strict = True
    options = value.get("options")
    if options is not None:
        if not isinstance(options, dict):
            errors.append(FieldError((*path, "options"), "options must be an object"))
        else:
            for key in options:
                if key != "strict":
                    errors.append(FieldError((*path, "options", key), f'Invalid key "{key}"'))
            if "strict" in options:
                if not isinstance(options["strict"], bool):
                    errors.append(
                        FieldError((*path, "options", "strict"), "strict must be a boolean")
                    )
                else:
                    strict = options["strict"]
    if value.get("set") is not None:
        if value.get("connect") is not None or value.get("disconnect") is not None:
            errors.append(
                FieldError(path, "set cannot be used in combination with connect or disconnect")
            )
            return None
        return RoleOp(
            role, "set", set_items=tuple(_items(value["set"], (*path, "set"), "set", errors))
        )
    if (
        "set" in value
        and value["set"] is None
        and value.get("connect") is None
        and value.get("disconnect") is None
    ):
        return RoleOp(role, "set")
    connect = (
        _items(value.get("connect"), (*path, "connect"), "connect", errors)
        if value.get("connect") is not None
        else []
    )
    disconnect = (
        _items(value.get("disconnect"), (*path, "disconnect"), "disconnect", errors)
        if value.get("disconnect") is not None
        else []
    )
    return RoleOp(
        role, "partial", connect=tuple(connect), disconnect=tuple(disconnect), strict=strict
    )


@_both("PUT", "")
@described(
    "Strapi-style connect / disconnect / set on the entity's roles, in one write.",
    errors=(403, 409, 413),
    body={
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "object",
                "description": f"role: operation; at most {MAX_REFS} refs in all.",
                "additionalProperties": _ROLE_OPERATION,
            }
        },
    },
)
async def operate(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Connect / disconnect / set on the entity's roles, all in one write."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who = await principal(request, tenant_id, "relationship:update")
    entity = await _path_entity(request, tenant_id)
    await svc.run(entities.writable, rel, tenant_id, who, entity)
    body = await body_object(request)
    data = body.get("data")
    if not isinstance(data, dict):
        raise Invalid.at(("data",), "data must be an object of role: operation")
    errors: list[FieldError] = []
    ops = [op for role, value in data.items() if (op := _role_op(role, value, errors)) is not None]
    refs = sum(
        len(op.set_items)
        + len(op.connect)
        + len(op.disconnect)
        + sum(
            1
            for i in op.connect
            if i.position and ("before" in i.position or "after" in i.position)
        )
        for op in ops
    )
    if refs > MAX_REFS:
        errors.append(FieldError(("data",), f"at most {MAX_REFS} refs per request (got {refs})"))
    if errors:
        raise Invalid(errors)
    result, token = await svc.run(entities.operate, rel, tenant_id, who, entity, ops)
    svc.writes.notify()
    return respond(
        {
            "data": {role: [list_item(r) for r in rows] for role, rows in result.items()},
            "meta": {"snap_token": token},
        }
    )
