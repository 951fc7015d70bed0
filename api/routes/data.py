"""Data: write tuples and attributes (validated against the schema), read them a page at a time
at a snap token, and delete them by filter. Every write is one atomic store write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from api import models as m
from api.errors import ApiError, FieldViolation, bad_request, reason_of
from api.models.plain_writes import plain_write
from api.request_io import (
    documented,
    encode_in_parts,
    json_body,
    parse,
    respond,
    respond_bytes,
    tenant_of,
    token_field,
    validated,
)
from api.services import SERVICES, Services
from engine.errors import InvalidWrite
from engine.hooks import Refused
from engine.writes import check_attribute, check_tuple
from storage.base import Attribute, AttributeFilter, Changes, Store, Tuple, TupleFilter

routes = web.RouteTableDef()
DEFAULT_PAGE_SIZE = 50


def _invalid(field: str, exc: InvalidWrite) -> ApiError:
    reason = reason_of(exc)
    return ApiError(400, reason, f"{field}: {exc}", violations=[FieldViolation(field, str(exc))])


def _attributes(items: Sequence[m.AttributeIn]) -> list[Attribute]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(item.to_attribute())
        except ValueError as exc:
            raise bad_request(f"attributes[{i}].value", str(exc)) from exc
    return out


def _write(
    svc: Services, tenant: str, version: str, tuples: list[Tuple], attributes: list[Attribute]
) -> str:
    """Validate every item against the schema version, then write them all at one revision."""
    token = _write_items(svc, tenant, version, tuples, attributes, wait=True)
    assert token is not None
    return token


def _write_items(
    svc: Services,
    tenant: str,
    version: str,
    tuples: list[Tuple],
    attributes: list[Attribute],
    *,
    wait: bool,
) -> str | None:
    """`_write`; without ``wait``, None (having written nothing) where it would wait: for a
    schema version not compiled yet, or a store that cannot write at once."""
    if wait:
        schema = svc.engine.compiled(tenant, version).schema
    else:
        compiled = svc.engine.compiled_already(tenant, version)
        if compiled is None:
            return None
        schema = compiled.schema
    for i, t in enumerate(tuples):
        try:
            check_tuple(schema, t)
        except InvalidWrite as exc:
            raise _invalid(f"tuples[{i}]", exc) from exc
    for i, a in enumerate(attributes):
        try:
            check_attribute(schema, a)
        except InvalidWrite as exc:
            raise _invalid(f"attributes[{i}]", exc) from exc
    changes = Changes(write_tuples=tuples, write_attributes=attributes)
    try:
        if wait:
            return svc.raw_writer.write(tenant, changes)
        return svc.raw_writer.write_now(tenant, changes)
    except Refused as exc:  # a write hook's refusal, naming the item (e.g. one side of a pair)
        raise _invalid(exc.field or "tuples", exc) from exc


async def _write_response(
    request: web.Request, tenant: str, version: str, tuples: list[Tuple], attrs: list[Attribute]
) -> web.Response:
    token = await write_data(request.app[SERVICES], tenant, version, tuples, attrs)
    return respond({"snap_token": token})


async def write_data(
    svc: Services, tenant: str, version: str, tuples: list[Tuple], attrs: list[Attribute]
) -> str:
    """A data write within ``max_write_items``, its snap token (the HTTP and gRPC routes')."""
    limit = svc.config.max_write_items
    if len(tuples) + len(attrs) > limit:
        raise ApiError(
            400,
            "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED",
            f"a write may hold at most {limit} tuples and attributes together; "
            f"this one has {len(tuples) + len(attrs)}",
        )
    token = None
    if len(tuples) + len(attrs) <= svc.config.inline_write_items:
        # On the event loop, as a small check is: a few µs of work, where handing it to a
        # thread would cost more and, under load, wait for the interpreter lock.
        token = _write_items(svc, tenant, version, tuples, attrs, wait=False)
    if token is None:
        token = await svc.run(_write, svc, tenant, version, tuples, attrs)
    svc.writes.notify()
    return token


@routes.post("/v1/tenants/{tenant_id}/data/write")
@documented(
    "Write tuples and attributes at one new snapshot (attributes are upserts).",
    m.DataWriteRequest,
    m.SnapTokenResponse,
    tag="Data",
)
async def write(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    raw = await json_body(request)
    plain = plain_write(raw, tuples_required=False)  # a bulk import's body, read faster
    if plain is not None:
        return await _write_response(request, tenant, plain.schema_version, plain.tuples, [])
    body = validated(raw, m.DataWriteRequest)
    tuples = [t.to_tuple() for t in body.tuples]
    return await _write_response(
        request, tenant, body.metadata.schema_version, tuples, _attributes(body.attributes)
    )


@routes.post("/v1/tenants/{tenant_id}/relationships/write")
@documented(
    "Write tuples at one new snapshot.",
    m.RelationshipsWriteRequest,
    m.SnapTokenResponse,
    tag="Data",
)
async def write_relationships(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    raw = await json_body(request)
    plain = plain_write(raw, tuples_required=True)
    if plain is not None:
        return await _write_response(request, tenant, plain.schema_version, plain.tuples, [])
    body = validated(raw, m.RelationshipsWriteRequest)
    tuples = [t.to_tuple() for t in body.tuples]
    return await _write_response(request, tenant, body.metadata.schema_version, tuples, [])


def tuple_filter(f: m.TupleFilterIn) -> TupleFilter:
    relation = f.subject.relation
    return TupleFilter(
        entity_type=f.entity.type,
        entity_ids=tuple(f.entity.ids),
        relation=f.relation,
        subject_type=f.subject.type,
        subject_ids=tuple(f.subject.ids),
        # "" matches any subject relation (Permify); "..." asks for plain subjects only.
        subject_relation=None if relation == "" else ("" if relation == "..." else relation),
    )


def attribute_filter(f: m.AttributeFilterIn) -> AttributeFilter:
    return AttributeFilter(
        entity_type=f.entity.type, entity_ids=tuple(f.entity.ids), names=tuple(f.attributes)
    )


@routes.post("/v1/tenants/{tenant_id}/data/relationships/read")
@documented(
    "Read tuples matching a filter at a snap token, a page at a time.",
    m.RelationshipsReadRequest,
    m.RelationshipsReadResponse,
    tag="Data",
)
async def read_relationships(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.RelationshipsReadRequest)
    svc = request.app[SERVICES]
    return respond_bytes(
        await svc.run(lambda: encode_in_parts(relationships_page(svc.store, tenant, body)))
    )


def relationships_page(
    store: Store, tenant: str, body: m.RelationshipsReadRequest
) -> dict[str, Any]:
    """One page of read-relationships in Permify's wire shape (and ``x_snap_token``): what
    the HTTP and gRPC routes answer."""
    with token_field("metadata.snap_token"):
        reader = store.reader(tenant, body.metadata.snap_token)
    with token_field("continuous_token"):
        page = reader.read_tuples(
            tuple_filter(body.filter),
            page_size=body.page_size or DEFAULT_PAGE_SIZE,
            cursor=body.continuous_token,
        )
    return {
        "tuples": [m.tuple_json(t) for t in page.items],
        "continuous_token": page.cursor,
        "x_snap_token": reader.token,
    }


@routes.post("/v1/tenants/{tenant_id}/data/attributes/read")
@documented(
    "Read attributes matching a filter at a snap token, a page at a time.",
    m.AttributesReadRequest,
    m.AttributesReadResponse,
    tag="Data",
)
async def read_attributes(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.AttributesReadRequest)
    svc = request.app[SERVICES]
    return respond_bytes(
        await svc.run(lambda: encode_in_parts(attributes_page(svc.store, tenant, body)))
    )


def attributes_page(store: Store, tenant: str, body: m.AttributesReadRequest) -> dict[str, Any]:
    """One page of read-attributes in Permify's wire shape (and ``x_snap_token``)."""
    with token_field("metadata.snap_token"):
        reader = store.reader(tenant, body.metadata.snap_token)
    with token_field("continuous_token"):
        page = reader.read_attributes(
            attribute_filter(body.filter),
            page_size=body.page_size or DEFAULT_PAGE_SIZE,
            cursor=body.continuous_token,
        )
    return {
        "attributes": [m.attribute_json(a) for a in page.items],
        "continuous_token": page.cursor,
        "x_snap_token": reader.token,
    }


async def delete_data(svc: Services, tenant: str, changes: Changes) -> str:
    """A raw delete, its snap token (the HTTP and gRPC routes'). The raw writer runs the write
    hooks (a layer's records beside the deleted tuples)."""
    token = await svc.run(svc.raw_writer.write, tenant, changes)
    svc.writes.notify()
    return token


def data_deletes(body: m.DataDeleteRequest) -> Changes:
    """What a data/delete request deletes; 400 when both filters are empty."""
    if body.tuple_filter.is_empty and body.attribute_filter.is_empty:
        raise bad_request(
            "tuple_filter",
            "give a non-empty tuple_filter or attribute_filter (an empty one would match "
            "everything; delete the tenant to remove all its data)",
        )
    changes = Changes()
    if not body.tuple_filter.is_empty:
        changes.delete_tuple_filters.append(tuple_filter(body.tuple_filter))
    if not body.attribute_filter.is_empty:
        changes.delete_attribute_filters.append(attribute_filter(body.attribute_filter))
    return changes


def relationship_deletes(body: m.RelationshipsDeleteRequest) -> Changes:
    """What a relationships/delete request deletes; 400 when its filter is empty."""
    if body.filter.is_empty:
        raise bad_request(
            "filter", "give a non-empty filter (an empty one would match every tuple)"
        )
    return Changes(delete_tuple_filters=[tuple_filter(body.filter)])


@routes.post("/v1/tenants/{tenant_id}/data/delete")
@documented(
    "Delete the tuples and attributes matching filters, at one new snapshot.",
    m.DataDeleteRequest,
    m.SnapTokenResponse,
    tag="Data",
)
async def delete(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.DataDeleteRequest)
    token = await delete_data(request.app[SERVICES], tenant, data_deletes(body))
    return respond({"snap_token": token})


@routes.post("/v1/tenants/{tenant_id}/relationships/delete")
@documented(
    "Delete the tuples matching a filter, at one new snapshot.",
    m.RelationshipsDeleteRequest,
    m.SnapTokenResponse,
    tag="Data",
)
async def delete_relationships(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.RelationshipsDeleteRequest)
    token = await delete_data(request.app[SERVICES], tenant, relationship_deletes(body))
    return respond({"snap_token": token})
