"""Schemas: write (every error with its line:col), read (the compiled definition), list."""

from __future__ import annotations

from aiohttp import web

from api import models as m
from api.boundary import documented, parse, respond, tenant_of
from api.services import SERVICES
from dsl.compiler import load
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
    "Read a schema version (the head by default), compiled.",
    m.SchemaReadRequest,
    m.SchemaReadResponse,
    tag="Schema",
)
async def read(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.SchemaReadRequest)
    svc = request.app[SERVICES]
    _, schema = await svc.run(svc.engine.schema, tenant, body.metadata.schema_version)
    return respond({"schema": m.schema_json(schema)})


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

    def work() -> dict[str, object]:
        head = svc.store.schema_head(tenant)
        page = svc.store.list_schemas(
            tenant, page_size=body.page_size or DEFAULT_PAGE_SIZE, cursor=body.continuous_token
        )
        return {
            "head": head,
            "schemas": [
                {"version": s.version, "created_at": m.timestamp(s.created_at)} for s in page.items
            ],
            "continuous_token": page.cursor,
        }

    return respond(await svc.run(work))
