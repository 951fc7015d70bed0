"""Tenancy: create, list and delete tenants (no tenant prefix, as in Permify)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import models as m
from api.errors import bad_request
from api.request_io import documented, parse, respond, tenant_of, token_field
from api.services import SERVICES, Services
from storage.base import Page, TenantInfo

routes = web.RouteTableDef()
DEFAULT_PAGE_SIZE = 50
#: Ids the id pattern allows but no URL can name: clients remove these path segments (RFC 3986).
UNREACHABLE_IDS = frozenset({".", ".."})


def _tenant(info: TenantInfo) -> dict[str, str]:
    return {"id": info.id, "name": info.name, "created_at": m.timestamp(info.created_at)}


@routes.post("/v1/tenants/create")
@documented(
    "Create a tenant.", m.TenantCreateRequest, m.TenantResponse, tag="Tenancy", errors=(409,)
)
async def create(request: web.Request) -> web.Response:
    body = await parse(request, m.TenantCreateRequest)
    return respond(await create_tenant(request.app[SERVICES], body))


async def create_tenant(svc: Services, body: m.TenantCreateRequest) -> dict[str, Any]:
    """A created tenant in Permify's wire shape (the HTTP and gRPC routes')."""
    if body.id in UNREACHABLE_IDS:
        raise bad_request("id", f"{body.id!r} cannot be a tenant id: URLs cannot name it")
    info = await svc.run(svc.store.create_tenant, body.id, body.name)
    return {"tenant": _tenant(info)}


@routes.post("/v1/tenants/list")
@documented(
    "List tenants in id order, a page at a time.",
    m.PageRequest,
    m.TenantListResponse,
    tag="Tenancy",
)
async def list_tenants(request: web.Request) -> web.Response:
    body = await parse(request, m.PageRequest)
    return respond(await tenants_page(request.app[SERVICES], body))


async def tenants_page(svc: Services, body: m.PageRequest) -> dict[str, Any]:
    """A page of tenants in Permify's wire shape (the HTTP and gRPC routes')."""

    def work() -> Page[TenantInfo]:
        with token_field("continuous_token"):
            return svc.store.list_tenants(
                page_size=body.page_size or DEFAULT_PAGE_SIZE, cursor=body.continuous_token
            )

    page = await svc.run(work)
    return {"tenants": [_tenant(t) for t in page.items], "continuous_token": page.cursor}


@routes.delete("/v1/tenants/{id}")
@documented("Delete a tenant and everything it holds.", None, m.TenantDeleteResponse, tag="Tenancy")
async def delete(request: web.Request) -> web.Response:
    tenant = tenant_of(request, "id")
    await delete_tenant(request.app[SERVICES], tenant)
    return respond({"tenant_id": tenant})


async def delete_tenant(svc: Services, tenant: str) -> None:
    """Delete ``tenant`` and forget what the engine cached of it (the HTTP and gRPC routes')."""
    await svc.run(svc.store.delete_tenant, tenant)
    svc.engine.forget(tenant)
    svc.writes.notify()
