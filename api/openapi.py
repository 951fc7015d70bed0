"""The OpenAPI 3.1 document of everything the app serves, built from its router: each handler's
``@documented`` description and the pydantic models of ``api/models.py``. Also the HTML docs page,
rendered from the same document on the server (it works offline: no scripts, no CDN)."""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.boundary import DOC_ATTRIBUTE, EndpointDoc
from api.middleware import OPEN_PATHS, UNLIMITED_PATHS
from api.models import ErrorResponse

REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Invalid input: the message and details say which field and why.",
    "401": "Missing or invalid bearer key (when keys are configured).",
    "404": "Tenant, schema version or bundle not found.",
    "413": "Request body larger than the configured limit.",
    "429": "Too many requests in flight; retry after the Retry-After seconds.",
}


def _endpoints(app: web.Application) -> list[tuple[str, str, EndpointDoc]]:
    found = []
    for route in app.router.routes():
        doc = getattr(route.handler, DOC_ATTRIBUTE, None)
        if isinstance(doc, EndpointDoc) and route.resource is not None:
            found.append((route.method.lower(), route.resource.canonical, doc))
    return sorted(found, key=lambda e: (e[1], e[0]))


def build(app: web.Application, *, version: str) -> dict[str, Any]:
    endpoints = _endpoints(app)
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorResponse, "serialization"): None
    }
    for _, _, doc in endpoints:
        if doc.request is not None:
            models[(doc.request, "validation")] = None
        if doc.response is not None:
            models[(doc.response, "serialization")] = None
    keys, definitions = models_json_schema(
        list(models),
        ref_template=REF,
        by_alias=True,
    )
    components = definitions.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for method, path, doc in endpoints:
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "operationId": _operation_id(method, path),
            "tags": [doc.tag] if doc.tag else [],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _path_parameters(path)
            ],
            "responses": {
                code: {
                    "description": _ERRORS[code],
                    "content": {
                        "application/json": {"schema": keys[(ErrorResponse, "serialization")]}
                    },
                }
                for code in _error_codes(path, doc)
            },
        }
        if path in OPEN_PATHS:
            operation["security"] = []
        if doc.request is not None:
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": keys[(doc.request, "validation")]}},
            }
        if doc.response is not None:
            media = "application/x-ndjson" if doc.streaming else "application/json"
            operation["responses"]["200"] = {
                "description": "One JSON object per line." if doc.streaming else "OK",
                "content": {media: {"schema": keys[(doc.response, "serialization")]}},
            }
        elif doc.media_type:
            schema = (
                {"type": "object"} if doc.media_type == "application/json" else {"type": "string"}
            )
            operation["responses"]["200"] = {
                "description": "OK",
                "content": {doc.media_type: {"schema": schema}},
            }
        else:
            operation["responses"]["200"] = {"description": "OK"}
        if method == "head":  # the GET's headers, without a body
            for response in operation["responses"].values():
                response.pop("content", None)
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Stonetown",
            "version": version,
            "description": "Permify-compatible authorization API (proto field names, every field "
            "in responses, unknown request fields ignored).",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }


def _error_codes(path: str, doc: EndpointDoc) -> list[str]:
    """The error statuses the endpoint can answer with."""
    codes = []
    if doc.request is not None or _path_parameters(path):
        codes.append("400")
    if path not in OPEN_PATHS:
        codes.append("401")
    if _path_parameters(path):
        codes.append("404")
    if doc.request is not None:
        codes.append("413")
    if path not in UNLIMITED_PATHS:
        codes.append("429")
    return codes


def _operation_id(method: str, path: str) -> str:
    words = path.strip("/").replace("{", "").replace("}", "").replace("-", "_").split("/")
    return "_".join([method, *words])


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def render_html(document: dict[str, Any]) -> str:
    """The docs page: every endpoint with its summary and request fields, grouped by tag."""
    esc = html.escape
    schemas = document["components"]["schemas"]
    rows: list[str] = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            fields = ""
            body = op.get("requestBody")
            if body:
                ref = next(iter(body["content"].values()))["schema"].get("$ref", "")
                props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
                fields = ", ".join(f"<code>{esc(n)}</code>" for n in props)
            rows.append(
                f"<tr><td>{esc(', '.join(op['tags']))}</td><td><b>{esc(method.upper())}</b></td>"
                f"<td><code>{esc(path)}</code></td><td>{esc(op['summary'])}</td>"
                f"<td>{fields}</td></tr>"
            )
    title = esc(document["info"]["title"])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title} API</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "vertical-align:top}</style></head><body>"
        f"<h1>{title} API {esc(document['info']['version'])}</h1>"
        f"<p>{esc(document['info']['description'])} Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a>. Errors: <code>{code, message, details}"
        "</code>; <code>details[0].reason</code> is Permify's error code.</p>"
        "<table><tr><th>area</th><th>method</th><th>path</th><th>what</th>"
        "<th>request fields</th></tr>" + "".join(rows) + "</table></body></html>"
    )
