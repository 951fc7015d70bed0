"""Reading requests and writing responses: the body into a model, the path's tenant, the
request context, JSON out, and the per-endpoint description the OpenAPI document is built from.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, bad_request, error_body, from_validation_error
from api.models import ContextIn
from engine.types import EMPTY_CONTEXT, Context
from storage.base import TENANT_ID_PATTERN
from storage.errors import InvalidToken

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class EndpointDoc:
    """What the OpenAPI document says about one handler."""

    summary: str
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    streaming: bool = False
    tag: str = ""
    #: The response's media type when it is not JSON (``response`` is then None).
    media_type: str = ""


DOC_ATTRIBUTE = "__stonetown_doc__"


def documented(
    summary: str,
    request: type[BaseModel] | None,
    response: type[BaseModel] | None,
    *,
    streaming: bool = False,
    tag: str = "",
    media_type: str = "",
) -> Callable[[H], H]:
    """Attach an EndpointDoc to a handler (read by ``api/openapi.py`` from the router)."""

    def mark(handler: H) -> H:
        doc = EndpointDoc(summary, request, response, streaming, tag, media_type)
        setattr(handler, DOC_ATTRIBUTE, doc)
        return handler

    return mark


async def parse(request: web.Request, model: type[M]) -> M:
    """The body as ``model``; an empty body is ``{}``. Bad input raises a 400 ApiError."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


def tenant_of(request: web.Request, name: str = "tenant_id") -> str:
    """The path's tenant id, checked against the tenant id pattern (400 otherwise)."""
    tenant = request.match_info[name]
    raw = request.raw_path
    if "#" in raw:
        # A raw `#` is not allowed in a request target, and aiohttp cuts the path there: without
        # this, `DELETE /v1/tenants/t1#x` would delete t1. (`raw_path` is the target as sent;
        # `request.url` would cost an absolute URL built per request.)
        tenant = f"{tenant}#{raw.partition('#')[2]}"
    if not TENANT_ID_PATTERN.fullmatch(tenant):
        raise bad_request(
            name,
            f"invalid tenant id {tenant!r}: expected 1 to 128 characters from letters, "
            "digits and _ - @ . : +",
        )
    return tenant


@contextlib.contextmanager
def token_field(field: str) -> Iterator[None]:
    """Inside, a token the store did not issue is a 400 naming ``field`` (the store cannot
    tell which of a request's tokens it was handed)."""
    try:
        yield
    except InvalidToken as exc:
        raise invalid_token(field, exc) from exc


def invalid_token(field: str, exc: InvalidToken) -> ApiError:
    return bad_request(field, str(exc), "ERROR_CODE_INVALID_CONTINUOUS_TOKEN")


def context_of(context: ContextIn | None) -> Context:
    """The engine's Context; a contextual attribute whose value does not fit its type is a 400."""
    if context is None or not (context.tuples or context.attributes or context.data):
        return EMPTY_CONTEXT
    attributes = []
    for i, attribute in enumerate(context.attributes):
        try:
            attributes.append(attribute.to_attribute())
        except ValueError as exc:
            raise bad_request(f"context.attributes[{i}].value", str(exc)) from exc
    return Context(
        tuples=tuple(t.to_tuple() for t in context.tuples),
        attributes=tuple(attributes),
        data=context.data,
    )


def respond(data: Any, status: int = 200) -> web.Response:
    """JSON out (UTF-8, compact); NaN/Infinity are never produced by the models."""
    return web.Response(body=_dumps(data).encode(), status=status, content_type="application/json")


def respond_bytes(body: bytes) -> web.Response:
    """Already-encoded JSON out."""
    return web.Response(body=body, content_type="application/json")


def ndjson_line(data: Any) -> bytes:
    return (_dumps(data) + "\n").encode()


def error_line(api: ApiError) -> bytes:
    """An error after a stream has started, as grpc-gateway writes it: ``{"error": {...}}``."""
    body = error_body(api.status, api.reason, api.message, api.violations)
    return ndjson_line({"error": {**body, "http_code": api.status}})
