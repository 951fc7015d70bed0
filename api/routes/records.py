"""Seed 003's relationship records (D1-D6): contact-to-contact relations as flat records.

Served at ``/v1/tenants/{tenant_id}/xapi2/data/relationship[/{id}]`` and
``/v1/tenants/{tenant_id}/xapi2/schema/relationship``, and for the default tenant verbatim at
the seed's ``/xapi2/...`` paths. A record is a view of a relation row whose type is one of the
data model's kinds, a registered ``(contact, kind, contact)`` type; ``label``, ``notes`` and
``since`` live in the row's metadata, and the mirror row (the inverse kind, written in the same
transaction) is a record of its own.

The data model is the tenant's ``Settings.data_model`` (None: the family answers 404). Before a
request is served, ``_model`` makes sure every kind has its type, registering the missing ones
(bidirectional, ``inverse_role = kinds[kind]``) on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api.boundary import respond
from api.openapi import list_query_parameters, matching, nullable, text
from api.relations_edge import (
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
from api.services import SERVICES
from engine.errors import SchemaNotFound
from engine.relations import registry
from engine.relations.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from engine.relations.listing import DEFAULT_LIMIT, MAX_LIMIT, ListPage, ListQuery
from engine.relations.model import ENTITY_ID, DataModel, Principal, Relation, RelationType
from engine.relations.service import Relations

routes = web.RouteTableDef()

DATA = ("/v1/tenants/{tenant_id}/xapi2/data/relationship", "/xapi2/data/relationship")
SCHEMA = ("/v1/tenants/{tenant_id}/xapi2/schema/relationship", "/xapi2/schema/relationship")
ID_MAX = 64
FILTERS = ("parent_id", "target_id", "kind", "status", "is_archived", "owned_by")
BOOLEANS = ("is_archived",)
SORTS = ("created_at", "kind")
DEFAULT_SORT = "kind"
#: For in-memory sorts: created_at carries the id, so rows of one kind come out exactly as the
#: index streams them ((created_at, id) in created_at's direction).
_SORT_KEYS: dict[str, Callable[[Relation], Any]] = {
    "kind": lambda r: r.relation,
    "created_at": lambda r: (r.created_at, r.id),
}
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


# -- the data model ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Model:
    """The tenant's data model with the registered type of every kind."""

    config: DataModel
    types: dict[str, RelationType]

    @property
    def ref_type(self) -> str:
        return self.config.ref_type

    @property
    def kinds(self) -> tuple[str, ...]:
        """In configured order (the enum's order)."""
        return tuple(self.config.kinds)

    @property
    def type_ids(self) -> frozenset[str]:
        return frozenset(rt.id for rt in self.types.values())

    def enum_message(self, field: str) -> str:
        return f"{field} must be one of the following values: {', '.join(self.kinds)}"


def _model(rel: Relations, tenant_id: str) -> Model:
    """The data model, its kinds' types registered (404 when disabled or the schema lacks them)."""
    config = rel.settings(tenant_id).data_model
    if config is None:
        raise NotFound("the relationship data model is not enabled for this tenant")
    found = _kind_types(rel.types(tenant_id), config)
    if len(found) == len(config.kinds):
        return Model(config, found)
    _require_schema(rel, tenant_id, config)
    for kind, inverse in config.kinds.items():
        if kind in found:
            continue
        request = registry.TypeRequest(
            kind="co_to_co",
            role=kind,
            source_type=config.ref_type,
            target_type=config.ref_type,
            source_field="parentCustomObjectType",
            target_field="childCustomObjectType",
            sent=frozenset({"bidirectional", "inverse_role"}),
            bidirectional=True,
            inverse_role=inverse,
        )
        try:
            rel.register_type(tenant_id, request)
        except Conflict:
            # Another request registered it (or its inverse) meanwhile; anything else stands.
            if registry.find(rel.types(tenant_id), config.ref_type, kind, config.ref_type) is None:
                raise
        except Invalid as exc:
            # E.g. a ref_type that is the tenant's person type: the family cannot be served.
            reasons = "; ".join(e.message for e in exc.errors)
            raise NotFound(f"cannot register the kind {kind}: {reasons}") from exc
        # Registering a kind also registers its inverse kind.
        found = _kind_types(rel.types(tenant_id), config)
    missing = [kind for kind in config.kinds if kind not in found]
    if missing:
        raise NotFound(f"no relationship type for the kinds {', '.join(missing)}")
    return Model(config, found)


def _kind_types(types: list[RelationType], config: DataModel) -> dict[str, RelationType]:
    ref = config.ref_type
    return {
        kind: rt
        for kind in config.kinds
        if (rt := registry.find(types, ref, kind, ref)) is not None
    }


def _require_schema(rel: Relations, tenant_id: str, config: DataModel) -> None:
    ref = config.ref_type
    roles = list(dict.fromkeys([*config.kinds, *config.kinds.values()]))
    needed = (
        f"the relationship data model needs the schema to declare entity {ref} with the "
        f"relations {', '.join(roles)}, each allowing @{ref}"
    )
    try:
        schema = rel.engine.schema(tenant_id)[1]
    except SchemaNotFound:
        raise NotFound(f"tenant {tenant_id} has no schema yet: {needed}") from None
    if schema.entity(ref) is None:
        raise NotFound(f"the schema has no entity {ref}: {needed}")
    missing = [role for role in roles if not registry.declared(schema, ref, role, ref)]
    if missing:
        raise NotFound(f"the schema lacks {ref} relations {', '.join(missing)}: {needed}")


async def _prepare(
    request: web.Request, tenant_id: str, scope: str | None
) -> tuple[Principal, Model]:
    """Who asks (401, 404 tenant, 403 scope), then the data model (404)."""
    svc = request.app[SERVICES]
    who = await principal(request, tenant_id, scope)
    model = await svc.run(_model, relations_of(request), tenant_id)
    return who, model


def _record(
    rel: Relations, tenant_id: str, who: Principal, model: Model, record_id: str
) -> Relation:
    """A record by id: 404 when missing, unreadable, or not of the data model's kinds."""
    row = rel.row(tenant_id, who, record_id)
    if row.type_id not in model.type_ids:
        raise NotFound(f"relation {record_id} not found")
    return row


def _writable(
    rel: Relations, tenant_id: str, who: Principal, model: Model, record_id: str
) -> Relation:
    row = _record(rel, tenant_id, who, model, record_id)
    if not rel.writable(tenant_id, who, row):
        raise Forbidden(f"{who.subject} may read relationship {record_id} but not change it")
    return row


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
    """D3's body: every problem reported at once; server-managed and unknown keys ignored."""
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


# -- D1-D5 -------------------------------------------------------------------------------------


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
    """D1: records, filtered (repeat = IN, keys ANDed), sorted, offset or keyset paged."""
    svc = request.app[SERVICES]
    who, model = await _prepare(request, tenant_id, "relationship:list")
    query, filters = list_query(
        request,
        sorts=SORTS,
        default_sort=DEFAULT_SORT,
        filters=FILTERS,
        booleans=BOOLEANS,
    )
    unknown = [k for k in filters.get("kind", ()) if k not in model.config.kinds]
    if unknown:
        raise Invalid.at(("kind",), model.enum_message("kind"), value=unknown[0])
    query = _normalized(query)
    result = await svc.run(
        _list, relations_of(request), tenant_id, who, model, query=query, filters=filters
    )
    return respond(
        {"data": [record_item(r) for r in result.rows], "meta": {"pagination": result.pagination}}
    )


def _normalized(query: ListQuery) -> ListQuery:
    """Sorts D1 serves: ``[-]created_at`` or ``[-]kind[,[-]created_at]``; a lone ``kind``
    continues with created_at in its direction (``-kind`` is the default order reversed)."""
    sort = query.sort
    names = [name for name, _ in sort]
    if names not in (["created_at"], ["kind"], ["kind", "created_at"]):
        raise Invalid.at(
            ("sort",),
            "sort must be created_at, kind, or kind,created_at (a '-' prefix reverses a key; "
            "id breaks ties)",
        )
    if names == ["kind"]:
        sort = (sort[0], ("created_at", sort[0][1]))
    return ListQuery(limit=query.limit, offset=query.offset, after=query.after, sort=sort)


def _list(
    rel: Relations,
    tenant_id: str,
    who: Principal,
    model: Model,
    *,
    query: ListQuery,
    filters: dict[str, list[str]],
) -> ListPage:
    kinds = set(filters.get("kind", model.kinds))
    type_ids = {rt.id for kind, rt in model.types.items() if kind in kinds}
    ref = model.ref_type
    parents = set(filters.get("parent_id", ()))
    targets = set(filters.get("target_id", ()))
    statuses = set(filters.get("status", ()))
    archived = {value == "true" for value in filters.get("is_archived", ())}
    owners = set(filters.get("owned_by", ()))
    visible = rel.visible_filter(tenant_id, who)

    def keep(row: Relation) -> bool:
        return (
            row.type_id in type_ids
            and (not parents or row.entity_id in parents)
            and (not targets or row.subject_id in targets)
            and (not statuses or row.status in statuses)
            and (not archived or row.is_archived in archived)
            and (not owners or (row.owned_by or "") in owners)
            and visible(row)
        )

    if parents or targets:
        # Only the named contacts' rows can match: collect those and sort them in memory.
        candidates = rel.candidates(
            tenant_id,
            sources=[(ref, p) for p in sorted(parents)],
            targets=[(ref, t) for t in sorted(targets)],
        )
        return rel.list_sorted(tenant_id, candidates, query, keep, _SORT_KEYS)
    if query.created_order is not None:
        return rel.list_by_created(tenant_id, query, keep, sorted(type_ids))
    by_kind = [model.types[kind].id for kind in sorted(model.types) if kind in kinds]
    return rel.list_concatenated(tenant_id, by_kind, query, keep)


@_both("GET", DATA, "/{record_id}")
@described("One relationship record.", errors=(403,))
async def get_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """D2: one record (404 when missing or not readable: the two are not told apart)."""
    svc = request.app[SERVICES]
    who, model = await _prepare(request, tenant_id, "relationship:read")
    record_id = request.match_info["record_id"]
    row = await svc.run(_record, relations_of(request), tenant_id, who, model, record_id)
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
    """D3: relate two contacts; the mirror (inverse kind) is written in the same transaction."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:create")
    new = _new_record(await body_object(request), model)
    ref = model.ref_type
    if who.subject is not None:
        permission = (await svc.run(rel.settings, tenant_id)).write_permission
        errors = [
            FieldError((name,), f"{name} must reference a {ref} you own")
            for name, contact in (("parent_id", new.parent_id), ("target_id", new.target_id))
            if not await svc.run(rel.allowed, tenant_id, who, (ref, contact), permission)
        ]
        if errors:
            raise Invalid(errors)
    linked = await svc.run(
        rel.link,
        tenant_id,
        who,
        model.types[new.kind].id,
        (ref, new.parent_id),
        (ref, new.target_id),
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
    """D4: change label/notes/since (on both rows of the pair); everything else is ignored."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:update")
    record_id = request.match_info["record_id"]
    await svc.run(_writable, rel, tenant_id, who, model, record_id)
    body = await body_object(request)
    errors: list[FieldError] = []
    sent = _texts(body, errors)
    if errors:
        raise Invalid(errors)

    def change(current: Relation) -> dict[str, Any] | None:
        metadata = dict(current.metadata or {})
        if all(metadata.get(name) == value for name, value in sent.items()):
            return None
        metadata.update(sent)
        return metadata

    def still_a_record(current: Relation) -> None:
        if current.type_id not in model.type_ids:
            raise NotFound(f"relation {record_id} not found")

    updated, token = await svc.run(rel.update, tenant_id, record_id, still_a_record, change)
    svc.writes.notify()
    return respond({"data": record_item(updated), "meta": {"snap_token": token}})


@_both("DELETE", DATA, "/{record_id}")
@described("Delete a record and its mirror.", errors=(403,), status=204)
async def delete_record(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """D5: delete the record and its mirror in one write."""
    svc = request.app[SERVICES]
    rel = relations_of(request)
    who, model = await _prepare(request, tenant_id, "relationship:delete")
    record_id = request.match_info["record_id"]
    await svc.run(_writable, rel, tenant_id, who, model, record_id)
    await svc.run(rel.unlink, tenant_id, record_id, lambda _row: None)
    svc.writes.notify()
    return web.Response(status=204)


# -- D6 ----------------------------------------------------------------------------------------


@_both("GET", SCHEMA)
@described("The record model: fields, limits, filters, sorts, paging and scopes.", errors=())
async def record_schema(request: web.Request, tenant_id: str) -> web.StreamResponse:
    """D6: the record's fields, filters, sorts, page sizes and the scope of every endpoint."""
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
    """D6's document. Every field entry has the same keys (null where one does not apply)."""
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
