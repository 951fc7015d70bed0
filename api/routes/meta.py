"""Health, Prometheus metrics, the OpenAPI document and the docs page."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import models as m
from api import openapi
from api.request_io import documented, respond
from api.services import METRICS, SERVICES

routes = web.RouteTableDef()


def _version() -> str:
    try:
        return version("stonetown")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


@routes.get("/healthz")
@documented(
    "Liveness and readiness (a database store is asked too); needs no key.",
    None,
    m.HealthResponse,
    tag="Health",
)
async def health(request: web.Request) -> web.Response:
    svc = request.app.get(SERVICES)
    if svc is None or svc.closing.is_set():
        return respond({"status": "NOT_SERVING", "reason": "shutting down"}, status=503)
    reason = await svc.unreachable()
    if reason is not None:
        return respond({"status": "NOT_SERVING", "reason": reason}, status=503)
    return respond({"status": "SERVING"})


@routes.get("/metrics")
@documented(
    "Prometheus metrics: requests by route, method and status; latency; checks by result.",
    None,
    None,
    tag="Health",
    media_type=CONTENT_TYPE_LATEST,
)
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json")
@documented("This OpenAPI 3.1 document.", None, None, tag="Docs", media_type="application/json")
async def openapi_json(request: web.Request) -> web.Response:
    return respond(openapi.build(request.app, version=_version()))


@routes.get("/docs")
@documented("The API reference as an HTML page.", None, None, tag="Docs", media_type="text/html")
async def docs(request: web.Request) -> web.Response:
    page = openapi.render_html(openapi.build(request.app, version=_version()))
    return web.Response(text=page, content_type="text/html")
