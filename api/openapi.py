"""The OpenAPI 3.1 document of everything the app serves, built from its router: each handler's
``@documented`` description and the pydantic models of ``api/models.py``. Also the HTML docs page,
rendered from the same document on the server (it works offline: no scripts, no CDN)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.middleware import OPEN_PATHS, UNLIMITED_PATHS
from api.models import ErrorResponse, HealthResponse, StrapiErrorResponse, StreamErrorLine
from api.relations_http import METADATA_BYTES, RESERVED, ROLE
from api.request_io import DOC_ATTRIBUTE, EndpointDoc
from api.services import CONFIG
from engine.relations.listing import DEFAULT_LIMIT, MAX_LIMIT
from engine.relations.model import ENTITY_ID, ENTITY_TYPE
from storage.base import TENANT_ID_PATTERN

REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Invalid input: the message and details say which field and why.",
    "401": "Missing or invalid bearer key or API token (when keys are configured).",
    "403": "The API token lacks a scope (details.missing_scopes) or access to the entity.",
    "404": "Tenant, schema version, bundle or relations-layer resource not found.",
    "413": "Request body larger than the configured limit.",
    "408": "The request body did not arrive within the configured time.",
    "409": "Already exists, or (relations layer) a conflict named by details.code.",
    "415": "A Content-Encoding other than gzip, deflate and identity.",
    "429": "Too many requests in flight; retry after the Retry-After seconds.",
    "503": "The server is shutting down, or its database cannot be reached (retry after the "
    "Retry-After seconds).",
}
#: Keywords of a request schema that `{}` cannot satisfy (as models.py writes them).
_NOT_EMPTY = frozenset({"required", "anyOf", "allOf", "oneOf"})


def matching(pattern: re.Pattern[str], **more: Any) -> dict[str, Any]:
    """A string the server's ``pattern.fullmatch`` accepts."""
    return {"type": "string", "pattern": f"^(?:{pattern.pattern})$", **more}


def nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"anyOf": [dict(schema), {"type": "null"}]}


def text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    """A string of ``min_length`` to ``max_length`` characters (code points, as Python counts)."""
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    return schema


#: The relations layer's entity reference ``type:id`` (``model.split_ref``), in paths and bodies.
ENTITY_REF = {
    "type": "string",
    "pattern": f"^{ENTITY_TYPE.pattern}:{ENTITY_ID.pattern}$",
    "description": "An entity reference `type:id`.",
}
#: A relation (role) name in the relations layer.
ROLE_NAME = matching(ROLE)
#: A relation's ``metadata``: an object or null; the reserved keys are checked, the rest is free.
METADATA = nullable(
    {
        "type": "object",
        "description": f"At most {METADATA_BYTES} bytes as compact JSON.",
        "properties": {key: nullable(text(limit)) for key, limit in RESERVED.items()},
    }
)
#: The schema of each path parameter, by name (``request_io.tenant_of`` checks a tenant id and the
#: relations handlers an entity: 400 otherwise); any other one names a resource (404 if unknown).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "tenant_id": matching(TENANT_ID_PATTERN),
    "id": matching(TENANT_ID_PATTERN),  # DELETE /v1/tenants/{id}
    "entity": ENTITY_REF,
}
OTHER_PARAMETER = {"type": "string", "minLength": 1}


def list_query_parameters(
    *,
    sorts: Iterable[str],
    filters: Iterable[str],
    booleans: Iterable[str] = (),
    sort: str | None = None,
    created: str = "created_at",
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The query parameters ``relations_edge.list_query`` reads, as the document shows them:
    paging, ``sort`` (``sort``: a pattern narrower than ``key[,key...]``, where the handler
    allows fewer orders), each filter (repeatable, ORed) and ``extra``."""
    keys = "|".join(sorted(sorts))
    repeatable = {"type": "array", "items": {"type": "string", "minLength": 1}}
    yes_no = {"type": "array", "items": {"enum": ["true", "false"]}}
    return {
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10**40 - 1,
            "description": f"Rows per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT} given).",
        },
        "offset": {"type": "integer", "minimum": 0, "maximum": 10**12 - 1},
        "after": {
            "type": "string",
            "minLength": 1,
            "description": "Keyset paging: the id of a row of this list; not with offset, and "
            f"only with the list sorted by {created} (the default then).",
        },
        "sort": {
            "type": "string",
            "pattern": sort or f"^-?(?:{keys})(?:,-?(?:{keys}))*$",
            "description": "Keys separated by commas; a `-` reverses one.",
        },
        **{name: yes_no if name in set(booleans) else repeatable for name in filters},
        **{name: dict(schema) for name, schema in (extra or {}).items()},
    }


#: Routes tagged so answer in Strapi's error envelope and read free-form JSON objects.
RELATIONS_TAG = "relations"


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
        (ErrorResponse, "serialization"): None,
        (StrapiErrorResponse, "serialization"): None,
        (StreamErrorLine, "serialization"): None,
        (HealthResponse, "serialization"): None,
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
        relations = doc.tag == RELATIONS_TAG
        error_model = StrapiErrorResponse if relations else ErrorResponse
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "operationId": _operation_id(method, path),
            "tags": [doc.tag] if doc.tag else [],
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": PATH_PARAMETERS.get(name, OTHER_PARAMETER),
                }
                for name in _path_parameters(path)
            ]
            + [
                {"name": name, "in": "query", "required": False, "schema": dict(schema)}
                for name, schema in (doc.query or {}).items()
            ],
            "responses": {
                code: {
                    "description": _ERRORS[code],
                    "content": {
                        "application/json": {"schema": keys[(error_model, "serialization")]}
                    },
                }
                for code in _error_codes(path, doc)
            },
        }
        if path in OPEN_PATHS:
            operation["security"] = []
        if path == "/healthz":  # not the error shape: the health body, saying NOT_SERVING
            operation["responses"]["503"]["content"]["application/json"]["schema"] = keys[
                (HealthResponse, "serialization")
            ]
        if relations and method in ("post", "put", "patch"):
            # No body is a 400 there (``relations_edge.body_object``): always required.
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": dict(doc.body or {"type": "object"})}},
            }
        if doc.request is not None:
            request_schema = components[keys[(doc.request, "validation")]["$ref"].split("/")[-1]]
            operation["requestBody"] = {
                # No body reads as `{}`: optional only where `{}` is a valid request.
                "required": bool(_NOT_EMPTY.intersection(request_schema)),
                "content": {"application/json": {"schema": keys[(doc.request, "validation")]}},
            }
        if doc.response is not None and doc.streaming:
            line = components[keys[(doc.response, "serialization")]["$ref"].rsplit("/", 1)[-1]]
            error = components["StreamErrorLine"]["properties"]["error"]
            operation["responses"]["200"] = {
                "description": "One JSON object per line: each a `result`, but the last may "
                "be an `error` (the stream failed after it started).",
                "content": {"application/x-ndjson": {"schema": _line_or_error(line, error)}},
            }
        elif doc.response is not None:
            operation["responses"]["200"] = {
                "description": "OK",
                "content": {"application/json": {"schema": keys[(doc.response, "serialization")]}},
            }
        elif doc.status == 204:
            operation["responses"]["204"] = {"description": "Done; no content"}
        elif relations:
            schema = {"type": "object", "properties": {name: {} for name in doc.answers}}
            operation["responses"][str(doc.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": schema}},
            }
        elif doc.media_type:
            schema = (
                {"type": "object"} if doc.media_type == "application/json" else {"type": "string"}
            )
            operation["responses"][str(doc.status)] = {
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
            "in responses, unknown request fields ignored; requests may also spell a field in "
            "lowerCamelCase, and the proto name wins when both are given).",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        # A key is needed only where the server was started with keys.
        "security": [{"bearer": []}] if app[CONFIG].preshared_keys else [{"bearer": []}, {}],
        "paths": paths,
    }


def _line_or_error(line: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """A stream line's schema: the line model's one ``result``, or an ``error``."""
    [result] = line["required"]
    return {
        "type": "object",
        "title": line.get("title", ""),
        "properties": {result: line["properties"][result], "error": error},
        "additionalProperties": False,
        "oneOf": [{"required": [result]}, {"required": ["error"]}],
    }


def _error_codes(path: str, doc: EndpointDoc) -> list[str]:
    """The error statuses the endpoint can answer with."""
    codes = []
    if doc.tag == RELATIONS_TAG:
        return sorted({"400", "401", "404", "429", "503", *(str(code) for code in doc.errors)})
    if doc.request is not None or _path_parameters(path):
        codes.append("400")
    if path not in OPEN_PATHS:
        codes.append("401")
    if _path_parameters(path):
        codes.append("404")
    codes.extend(str(code) for code in doc.errors)
    if doc.request is not None:
        codes.extend(("408", "413", "415"))
    if path not in UNLIMITED_PATHS:
        codes.append("429")
    if path.startswith("/v1/") or path == "/healthz":
        codes.append("503")
    return sorted(codes)


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
                schema = next(iter(body["content"].values()))["schema"]
                ref = schema.get("$ref")
                if ref is not None:
                    schema = schemas.get(ref.rsplit("/", 1)[-1], {})
                fields = ", ".join(f"<code>{esc(n)}</code>" for n in schema.get("properties", {}))
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
