"""Schemas: write (every error with its line:col), read (the compiled definition), list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import models as m
from api.errors import ApiError, FieldViolation
from api.request_io import documented, parse, respond, tenant_of, token_field
from api.services import SERVICES, Services
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.partial import Partial, apply_partials
from dsl.schema import Schema
from engine.schema_races import SCHEMA_RACES, redone_while_moved
from storage.base import SchemaVersion, Store

routes = web.RouteTableDef()
DEFAULT_PAGE_SIZE = 50


def _write(store: Store, tenant: str, text: str) -> SchemaVersion:
    store.get_tenant(tenant)  # a missing tenant is a 404 even when the schema is also bad
    load(text)  # raises SchemaError with every diagnostic
    return store.write_schema(tenant, text)


@routes.post("/v1/tenants/{tenant_id}/schemas/write")
@documented(
    "Write a schema; it becomes the head. A schema that does not compile is a 400 listing "
    "every error with its line:col.",
    m.SchemaWriteRequest,
    m.SchemaVersionResponse,
    tag="Schema",
)
async def write(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.SchemaWriteRequest)
    svc = request.app[SERVICES]
    version = await svc.run(_write, svc.store, tenant, body.schema_)
    return respond({"schema_version": version.version})


@routes.post("/v1/tenants/{tenant_id}/schemas/read")
@documented(
    "Read a schema version (the head by default), compiled; `x_schema_text` (a Stonetown "
    "extension) is the text it was written as.",
    m.SchemaReadRequest,
    m.SchemaReadResponse,
    tag="Schema",
)
async def read(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.SchemaReadRequest)
    svc = request.app[SERVICES]
    version, schema = await svc.run(svc.engine.schema, tenant, body.metadata.schema_version)
    stored = await svc.run(svc.store.read_schema, tenant, version)
    # A schema near the size limit takes a few hundred ms to format: not on the event loop.
    return await svc.run(_read_response, schema, stored.text)


def _read_response(schema: Schema, text: str) -> web.Response:
    return respond({"schema": m.schema_json(schema), "x_schema_text": text})


@routes.post("/v1/tenants/{tenant_id}/schemas/list")
@documented(
    "List schema versions, newest first, a page at a time.",
    m.PageRequest,
    m.SchemaListResponse,
    tag="Schema",
)
async def list_schemas(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.PageRequest)
    svc = request.app[SERVICES]
    return respond(await svc.run(schemas_page, svc.store, tenant, body))


def schemas_page(store: Store, tenant: str, body: m.PageRequest) -> dict[str, Any]:
    """The schema head and a page of versions in Permify's wire shape (the HTTP and gRPC
    routes')."""
    head = store.schema_head(tenant)
    with token_field("continuous_token"):
        page = store.list_schemas(
            tenant, page_size=body.page_size or DEFAULT_PAGE_SIZE, cursor=body.continuous_token
        )
    return {
        "head": head,
        "schemas": [
            {"version": s.version, "created_at": m.timestamp(s.created_at)} for s in page.items
        ],
        "continuous_token": page.cursor,
    }


def _partial_write(svc: Services, tenant: str, base: str, partials: dict[str, Partial]) -> str:
    """Apply ``partials`` to version ``base`` (the head when empty) as the next head. The write
    is conditional on the head it read (``write_schema(parent=...)``), so a partial write that
    another replica's lands before is redone on the new head, never lost."""
    version = redone_while_moved(
        lambda head: _partial_write_on(svc, tenant, base, head, partials),
        svc.store.schema_head(tenant),
    )
    if version is None:
        raise ApiError(
            409,
            "ERROR_CODE_SERIALIZATION",
            f"the schema changed {SCHEMA_RACES} times during this partial write; try again",
        )
    return version


def _partial_write_on(
    svc: Services, tenant: str, base: str, head: str, partials: dict[str, Partial]
) -> str:
    with svc.schema_lock:  # one at a time in this process; across processes, by `parent`
        text = svc.store.read_schema(tenant, base or head).text
        try:
            new_text = apply_partials(text, partials)
        except SchemaError as exc:  # positions are in the new text, which the caller never saw
            raise ApiError(
                400,
                "ERROR_CODE_SCHEMA_COMPILE",
                "the schema after the partial write does not compile: "
                + "; ".join(f"{d} (in `{d.source_line.strip()}`)" for d in exc.diagnostics),
                violations=[
                    FieldViolation("partials", f"{d} (in `{d.source_line.strip()}`)")
                    for d in exc.diagnostics
                ],
            ) from exc
        return svc.store.write_schema(tenant, new_text, parent=head).version


@routes.patch("/v1/tenants/{tenant_id}/schemas/partial-write")
@documented(
    "Add, update and delete members of named entities of a schema version (the head by "
    "default), making a new version; every problem is reported at once.",
    m.PartialWriteRequest,
    m.SchemaVersionResponse,
    tag="Schema",
)
async def partial_write(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.PartialWriteRequest)
    svc = request.app[SERVICES]
    partials = {
        name: Partial(tuple(p.write), tuple(p.update), tuple(p.delete))
        for name, p in body.partials.items()
    }
    version = await svc.run(_partial_write, svc, tenant, body.metadata.schema_version, partials)
    return respond({"schema_version": version})
