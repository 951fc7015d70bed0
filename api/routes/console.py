"""The browser console: its page and static files (`api/console/`), and the one endpoint it
needs that Permify's API lacks, validating a schema without saving it.

The page and its files need no key (they hold no data: the page asks the user for the key and
sends it with every API call); ``api.middleware.OPEN_PATHS`` lists their two paths. Everything
the page shows it reads through the public HTTP API, as any other client would.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from api.errors import ApiError
from api.models.console import SchemaValidateRequest, SchemaValidateResponse
from api.request_io import documented, parse, respond
from api.services import SERVICES
from dsl.compiler import load
from dsl.errors import SchemaError

routes = web.RouteTableDef()
#: The console's files (in ``api/console/``) by name, with their content types: only these are
#: served, so no path can name anything else.
ASSETS = {
    "console.css": "text/css",
    "main.js": "text/javascript",
    "api.js": "text/javascript",
    "dom.js": "text/javascript",
    "schema.js": "text/javascript",
    "graph.js": "text/javascript",
    "data.js": "text/javascript",
    "check.js": "text/javascript",
    "relations.js": "text/javascript",
    "watch.js": "text/javascript",
}
#: The page loads nothing from elsewhere and runs no inline script.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def _read(name: str) -> bytes:
    return files("api").joinpath("console", name).read_bytes()


@routes.get("/console")
@documented(
    "The browser console (needs no key; it asks for one and sends it on its API calls).",
    None,
    None,
    tag="Console",
    media_type="text/html",
)
async def page(request: web.Request) -> web.Response:
    body = await request.app[SERVICES].run(_read, "index.html")
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_HEADERS)


@routes.get("/console/{asset}")
@documented(
    "A static file of the console: its scripts and style sheet (needs no key).",
    None,
    None,
    tag="Console",
    media_type="*/*",
)
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(404, "ERROR_CODE_NOT_FOUND", f"the console has no file {name!r}")
    body = await request.app[SERVICES].run(_read, name)
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_HEADERS)


def _validate(text: str) -> dict[str, object]:
    try:
        load(text)
    except SchemaError as exc:
        found = [
            {"line": d.line, "column": d.column, "message": d.message} for d in exc.diagnostics
        ]
        return {"valid": False, "diagnostics": found}
    return {"valid": True, "diagnostics": []}


@routes.post("/v1/schemas/validate")
@documented(
    "Validate a schema without saving it (a Stonetown extension): 200 with every problem "
    "found, each at its line:column, or `valid: true`.",
    SchemaValidateRequest,
    SchemaValidateResponse,
    tag="Schema",
)
async def validate(request: web.Request) -> web.Response:
    body = await parse(request, SchemaValidateRequest)
    svc = request.app[SERVICES]
    return respond(await svc.run(_validate, body.schema_))
