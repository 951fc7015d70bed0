"""Data bundles: write, read and delete a tenant's bundles, and run one (``engine.bundles``
holds the rules: templates, the component checks that keep arguments from changing what a string
means, and the one atomic write of a run)."""

from __future__ import annotations

from aiohttp import web

from api import models as m
from api.request_io import documented, parse, respond, tenant_of
from api.services import SERVICES, Services
from engine.bundles import (
    DataBundle,
    Operation,
    delete_bundle,
    read_bundle,
    run_bundle,
    write_bundles,
)
from storage.base import SnapToken

routes = web.RouteTableDef()


def _bundle(item: m.BundleIn) -> DataBundle:
    return DataBundle(
        item.name,
        tuple(item.arguments),
        tuple(
            Operation(
                relationships_write=tuple(op.relationships_write),
                relationships_delete=tuple(op.relationships_delete),
                attributes_write=tuple(op.attributes_write),
                attributes_delete=tuple(op.attributes_delete),
            )
            for op in item.operations
        ),
    )


def _bundle_json(bundle: DataBundle) -> dict[str, object]:
    return {
        "name": bundle.name,
        "arguments": list(bundle.arguments),
        "operations": [
            {
                "relationships_write": list(op.relationships_write),
                "relationships_delete": list(op.relationships_delete),
                "attributes_write": list(op.attributes_write),
                "attributes_delete": list(op.attributes_delete),
            }
            for op in bundle.operations
        ],
    }


def _write(svc: Services, tenant: str, bundles: list[DataBundle]) -> list[str]:
    svc.store.get_tenant(tenant)  # a missing tenant is a 404 even when a bundle is also bad
    return write_bundles(svc.store, tenant, bundles)


def _run(svc: Services, tenant: str, name: str, arguments: dict[str, str]) -> SnapToken:
    # The bundle is looked up before the schema, so an unknown bundle is BUNDLE_NOT_FOUND even
    # in a tenant without a schema (as in Permify).
    read_bundle(svc.store, tenant, name)
    schema = svc.engine.compiled(tenant).schema
    return run_bundle(svc.raw_writer, schema, tenant, name, arguments)


@routes.post("/v1/tenants/{tenant_id}/bundle/write")
@documented(
    "Create or replace bundles by name, in one atomic write. Every template is checked: its "
    "shape, its literal text and its arguments; every problem is reported.",
    m.BundleWriteRequest,
    m.BundleWriteResponse,
    tag="Bundle",
)
async def write(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.BundleWriteRequest)
    svc = request.app[SERVICES]
    names = await svc.run(_write, svc, tenant, [_bundle(b) for b in body.bundles])
    return respond({"names": names})


@routes.post("/v1/tenants/{tenant_id}/bundle/read")
@documented(
    "Read a bundle as it was written.", m.BundleNameRequest, m.BundleReadResponse, tag="Bundle"
)
async def read(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.BundleNameRequest)
    svc = request.app[SERVICES]
    bundle = await svc.run(read_bundle, svc.store, tenant, body.name)
    return respond({"bundle": _bundle_json(bundle)})


@routes.post("/v1/tenants/{tenant_id}/bundle/delete")
@documented("Delete a bundle.", m.BundleNameRequest, m.BundleDeleteResponse, tag="Bundle")
async def delete(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.BundleNameRequest)
    svc = request.app[SERVICES]
    name = await svc.run(delete_bundle, svc.store, tenant, body.name)
    return respond({"name": name})


@routes.post("/v1/tenants/{tenant_id}/data/run-bundle")
@documented(
    "Run a bundle with its arguments: every change, checked against the head schema, at one "
    "new snapshot; nothing is written on any error.",
    m.RunBundleRequest,
    m.SnapTokenResponse,
    tag="Data",
)
async def run(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    body = await parse(request, m.RunBundleRequest)
    svc = request.app[SERVICES]
    token = await svc.run(_run, svc, tenant, body.name, body.arguments)
    svc.writes.notify()
    return respond({"snap_token": token})
