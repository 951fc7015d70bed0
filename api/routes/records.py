"""The contact data model's relationship records: contact-to-contact relations as flat records.

Served at ``/v1/tenants/{tenant_id}/xapi2/data/relationship[/{id}]`` and
``/v1/tenants/{tenant_id}/xapi2/schema/relationship``, and for the default tenant verbatim at
the unscoped ``/xapi2/...`` paths. A record is a view of a relation row whose type is one of the
data model's kinds, a registered ``(contact, kind, contact)`` type; ``label``, ``notes`` and
``since`` live in the row's metadata, and the mirror row (the inverse kind, written in the same
transaction) is a record of its own.

The data model is the tenant's ``Settings.data_model`` (None: the family answers 404). The
handlers parse and render; ``engine.relations.records`` registers the kinds' types on first use,
checks access and plans the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.openapi import list_query_parameters, matching, nullable, text
from api.relations_http import (
    RESERVED,
    TenantHandler,
    body_object,
    check_string,
    described,
    list_query,
    on_both_bases,
    principal,
    relations_of,
)
from api.relations_views import record_item
from api.request_io import respond
from api.services import SERVICES
from engine.relations import records
from engine.relations.errors import FieldError, Invalid
from engine.relations.listing import DEFAULT_LIMIT, MAX_LIMIT
from engine.relations.model import ENTITY_ID, Principal
from engine.relations.records import BOOLEANS, DEFAULT_SORT, FILTERS, SORTS, Model

routes = web.RouteTableDef()

DATA = ("/v1/tenants/{tenant_id}/xapi2/data/relationship", "/xapi2/data/relationship")
SCHEMA = ("/v1/tenants/{tenant_id}/xapi2/schema/relationship", "/xapi2/schema/relationship")
ID_MAX = 64
_ENDPOINTS = (
    ("list", "GET", "/xapi2/data/relationship", "relationship:list"),
    ("get", "GET", "/xapi2/data/relationship/{id}", "relationship:read"),
    ("create", "POST", "/xapi2/data/relationship", "relationship:create"),
    ("update", "PATCH", "/xapi2/data/relationship/{id}", "relationship:update"),
    ("delete", "DELETE", "/xapi2/data/relationship/{id}", "relationship:delete"),
    ("schema", "GET", "/xapi2/schema/relationship", None),
)


def _both(
    method: str, bases: tuple[str, str], suffix: str = ""
) -> Callable[[TenantHandler], TenantHandler]:
    return on_both_bases(routes, method, bases, suffix)


async def _prepare(
    request: web.Request, tenant_id: str, scope: str | None
) -> tuple[Principal, Model]:
    """Who asks (401, 404 tenant, 403 scope), then the data model (404)."""
    svc = request.app[SERVICES]
    who = await principal(request, tenant_id, scope)
    model = await svc.run(records.model, relations_of(request), tenant_id)
    return who, model


# -- bodies ------------------------------------------------------------------------------------


def _texts(body: dict[str, Any], errors: list[FieldError]) -> dict[str, str | None]:
    """``label``/``notes``/``since`` present in ``body``: string or null within their limits."""
    sent: dict[str, str | None] = {}
    for name, limit in RESERVED.items():
        if name in body:
            before = len(errors)
            value = check_string(body[name], (name,), name, limit, errors, nullable=True)
            if len(errors) == before:
                sent[name] = value
    return sent


def _contact_id(body: dict[str, Any], name: str, errors: list[FieldError]) -> str | None:
    value = body.get(name)
    if value == "":
        value = None
    before = len(errors)
    text = check_string(value, (name,), name, ID_MAX, errors)
    if len(errors) > before or text is None:
        return None
    if not ENTITY_ID.fullmatch(text):
        errors.append(
            FieldError((name,), f"{name} must be an id of letters, digits and _ - @ . : +")
        )
        return None
    return text


@dataclass(frozen=True, slots=True)
class NewRecord:
    kind: str
    parent_id: str
    target_id: str
    metadata: dict[str, Any]


def _new_record(body: dict[str, Any], model: Model) -> NewRecord:
    """A new record's body: every problem reported at once; server-managed and unknown keys
    ignored."""
    errors: list[FieldError] = []
    kind = body.get("kind")
    if kind is None:
        errors.append(FieldError(("kind",), "kind is a required field"))
    elif not isinstance(kind, str) or kind not in model.config.kinds:
        errors.append(FieldError(("kind",), model.enum_message("kind")))
    texts = _texts(body, errors)
    parent_id = _contact_id(body, "parent_id", errors)
    target_id = _contact_id(body, "target_id", errors)
    if parent_id is not None and parent_id == target_id:
        errors.append(
            FieldError(("target_id",), "target_id must be a different contact than parent_id")
        )
    if errors:
        raise Invalid(errors)
    assert isinstance(kind, str) and parent_id is not None and target_id is not None
    metadata = {name: texts.get(name) for name in RESERVED}
    return NewRecord(kind, parent_id, target_id, metadata)


# -- records -------------------------------------------------------------------------------------


@_both("GET", DATA)
@described(
    "List relationship records (filters, sorts, keyset or offset paging).",
    errors=(403,),
    query=list_query_parameters(
        sorts=SORTS,
        filters=FILTERS,
        booleans=BOOLEANS,
        # What _normalized serves.
        sort="^(?:-?created_at|-?kind(?:,-?created_at)?)$",
    ),
)
async def list_records(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Records, filtered (repeat = IN, keys ANDed), sorted, offset or keyset paged."""
    svc = request.app[SERVICES]
    who, model = await _prepare(request, tenant_id, "relationship:list")
    query, filters = list_query(
        request,
        sorts=SORTS,
        default_sort=DEFAULT_SORT,
        filters=FILTERS,
        booleans=BOOLEANS,
    )
    result = await svc.run(
        records.list_records, relations_of(request), tenant_id, who, model, query, filters
    )
    return respond(
        {"data": [record_item(r) for r in result.rows], "meta": {"pagination": result.pagination}}
    )


@_both("GET", DATA, "/{record_id}")
@described("One relationship record.", errors=(403,))
async def get_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """One record (404 when missing or not readable: the two are not told apart)."""
    svc = request.app[SERVICES]
    who, model = await _prepare(request, tenant_id, "relationship:read")
    record_id = request.match_info["record_id"]
    row = await svc.run(records.record, relations_of(request), tenant_id, who, model, record_id)
    return respond({"data": record_item(row)})


@_both("POST", DATA)
@described(
    "Create a relationship record and its mirror.",
    errors=(403, 409, 413),
    status=201,
    body={
        "type": "object",
        "required": ["kind", "parent_id", "target_id"],
        "properties": {
            "kind": {
                "type": "string",
                "description": "One of the data model's kinds (listed by the schema endpoint).",
            },
            **{name: nullable(text(limit)) for name, limit in RESERVED.items()},
            "parent_id": matching(ENTITY_ID, maxLength=ID_MAX),
            "target_id": matching(ENTITY_ID, maxLength=ID_MAX, description="Not parent_id."),
        },
    },
)
async def create_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Relate two contacts; the mirror (inverse kind) is written in the same transaction."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:create")
    new = _new_record(await body_object(request), model)
    linked = await svc.run(
        records.create,
        rel,
        tenant_id,
        who,
        model,
        new.kind,
        (new.parent_id, new.target_id),
        new.metadata,
    )
    svc.writes.notify()
    return respond({"data": record_item(linked.row), "meta": {"snap_token": linked.token}}, 201)


@_both("PATCH", DATA, "/{record_id}")
@described(
    "Change a record's label, notes or since (on both rows of the pair).",
    errors=(403, 413),
    body={
        "type": "object",
        "properties": {name: nullable(text(limit)) for name, limit in RESERVED.items()},
    },
)
async def patch_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Change label/notes/since (on both rows of the pair); everything else is ignored."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:update")
    record_id = request.match_info["record_id"]
    await svc.run(records.writable, rel, tenant_id, who, model, record_id)
    body = await body_object(request)
    errors: list[FieldError] = []
    sent = _texts(body, errors)
    if errors:
        raise Invalid(errors)

    updated, token = await svc.run(records.update, rel, tenant_id, model, record_id, sent)
    svc.writes.notify()
    return respond({"data": record_item(updated), "meta": {"snap_token": token}})


@_both("DELETE", DATA, "/{record_id}")
@described("Delete a record and its mirror.", errors=(403,), status=204)
async def delete_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """Delete the record and its mirror in one write."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:delete")
    record_id = request.match_info["record_id"]
    await svc.run(records.delete, rel, tenant_id, who, model, record_id)
    svc.writes.notify()
    return web.Response(status=204)


# -- the record schema -----------------------------------------------------------------------------


@_both("GET", SCHEMA)
@described("The record model: fields, limits, filters, sorts, paging and scopes.", errors=())
async def record_schema(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """The record's fields, filters, sorts, page sizes and the scope of every endpoint."""
    who, model = await _prepare(request, tenant_id, None)
    del who
    base = "" if "tenant_id" not in request.match_info else f"/v1/tenants/{tenant_id}"
    return respond({"data": describe(model, base)})


def _field(
    name: str,
    kind: str,
    *,
    required: bool = False,
    create: bool = False,
    patch: bool = False,
    nullable: bool = False,
    max_length: int | None = None,
    enum: list[str] | None = None,
    pattern: str | None = None,
    ref: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "required": required,
        "create": create,
        "patch": patch,
        "nullable": nullable,
        "server_managed": not (create or patch),
        "max_length": max_length,
        "enum": enum,
        "pattern": pattern,
        "ref": ref,
    }


def describe(model: Model, base: str) -> dict[str, Any]:
    """The record schema document. Every field entry has the same keys (null where one does
    not apply)."""
    ref = model.ref_type
    id_pattern = f"^{ENTITY_ID.pattern}$"
    texts = [
        _field(name, "string", create=True, patch=True, nullable=True, max_length=limit)
        for name, limit in RESERVED.items()
    ]
    fields = [
        _field("id", "string"),
        _field("kind", "enum", required=True, create=True, enum=list(model.kinds)),
        *texts,
        *(
            _field(
                name,
                "string",
                required=True,
                create=True,
                max_length=ID_MAX,
                pattern=id_pattern,
                ref=ref,
            )
            for name in ("parent_id", "target_id")
        ),
        _field("status", "string"),
        _field("is_archived", "boolean"),
        _field("owned_by", "string", nullable=True),
        _field("pair_id", "string", nullable=True),
        _field("is_mirror", "boolean"),
        _field("created_at", "datetime"),
        _field("updated_at", "datetime"),
    ]
    return {
        "model": model.config.model,
        "ref_type": ref,
        "mirror_hook": model.config.mirror_hook,
        "inverse_kinds": dict(model.config.kinds),
        "fields": fields,
        "filters": [
            {
                "name": name,
                "type": "boolean" if name == "is_archived" else "string",
                "repeatable": True,
                "enum": list(model.kinds) if name == "kind" else None,
            }
            for name in FILTERS
        ],
        "sort": {
            "keys": list(SORTS),
            "default": DEFAULT_SORT,
            "tiebreakers": ["created_at", "id"],
            "descending_prefix": "-",
        },
        "pagination": {
            "default_limit": DEFAULT_LIMIT,
            "max_limit": MAX_LIMIT,
            "offset": True,
            "keyset": {"param": "after", "sorts": ["created_at", "-created_at"]},
        },
        "endpoints": [
            {"operation": op, "method": method, "path": base + path, "scope": scope}
            for op, method, path, scope in _ENDPOINTS
        ],
    }
