"""Reading requests and writing responses: the body into a model, the path's tenant, the
request context, JSON out, and the per-endpoint description the OpenAPI document is built from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.web import RequestPayloadError
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, bad_request, error_body, from_validation_error, translate
from api.middleware import REQUEST_ID
from api.models import ContextIn
from api.services import CONFIG, SERVICES
from engine.types import EMPTY_CONTEXT, Context
from storage.base import check_tenant_id
from storage.errors import InvalidTenantId, InvalidToken

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
    #: Error statuses besides the ones every endpoint of its kind has (see ``api/openapi.py``).
    errors: tuple[int, ...] = ()
    #: The success status (201 for creates, 204 for deletes without a body).
    status: int = 200
    #: Relations routes (no models): the JSON Schema of the request body, which the handler
    #: reads by hand, and the answer's top-level fields.
    body: Mapping[str, Any] | None = None
    answers: tuple[str, ...] = ("data", "meta")
    #: The query parameters the handler reads, by name: the JSON Schema of each (all optional).
    query: Mapping[str, Mapping[str, Any]] | None = None


DOC_ATTRIBUTE = "__stonetown_doc__"


def documented(
    summary: str,
    request: type[BaseModel] | None,
    response: type[BaseModel] | None,
    *,
    streaming: bool = False,
    tag: str = "",
    media_type: str = "",
    errors: tuple[int, ...] = (),
    status: int = 200,
    body: Mapping[str, Any] | None = None,
    answers: tuple[str, ...] = ("data", "meta"),
    query: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[H], H]:
    """Attach an EndpointDoc to a handler (read by ``api/openapi.py`` from the router)."""

    def mark(handler: H) -> H:
        doc = EndpointDoc(
            summary,
            request,
            response,
            streaming,
            tag,
            media_type,
            errors,
            status,
            body,
            answers,
            query,
        )
        setattr(handler, DOC_ATTRIBUTE, doc)
        return handler

    return mark


#: Bodies up to this size are validated straight away: they cannot hold enough values to keep
#: the validator (which holds the GIL) busy for more than about 10 ms.
SMALL_BODY_BYTES = 64 << 10


async def parse(request: web.Request, model: type[M]) -> M:
    """The body as ``model``; an empty body is ``{}``. Bad input raises a 400 ApiError, and a
    body holding more than ``max_body_values`` JSON values a 413."""
    return validated(await json_body(request), model)


def body_now(request: web.Request) -> bytes | None:
    """The body, taken at once when all of it has arrived, it is small (``SMALL_BODY_BYTES``,
    and within the app's size limit) and it has no Content-Encoding: what `json_body` gives
    such a body, without its coroutines and read loop (the usual check body). None leaves the
    body unread, for `json_body`."""
    content = request.content
    size = content.total_bytes
    if (
        not content.is_eof()
        or size > SMALL_BODY_BYTES
        or size > request.client_max_size
        or hdrs.CONTENT_ENCODING in request.headers
    ):
        return None
    return content.read_nowait()


async def json_body(request: web.Request) -> bytes:
    """The body's bytes (``read_body``), refused with a 413 when they hold more than
    ``max_body_values`` JSON values: what ``parse`` validates."""
    raw = await read_body(request)
    if len(raw) > SMALL_BODY_BYTES:
        # A Python loop over the body's tokens: on a worker thread, so the event loop can run
        # between them.
        await request.app[SERVICES].run(_count_values, raw, request.app[CONFIG].max_body_values)
    return raw


def validated(raw: bytes, model: type[M]) -> M:
    """``raw`` (from ``json_body``) as ``model``; an empty body is ``{}``; a 400 ApiError for
    bad input."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


#: A string (its escapes removed first), or a character around which values start.
_JSON_TOKEN = re.compile(rb'"[^"]*"|[,:\[{]')


def _count_values(raw: bytes, limit: int) -> None:
    """413 when ``raw`` holds more than ``limit`` JSON values. Validating a request takes the
    validator about 1.5 µs a value, all of it holding the GIL (so a worker thread would stall
    the event loop as well): a 3 MB body of 30,000 tuples took 0.44 s. So values are counted
    first, without building them, stopping at the limit (at most about 50 ms for 4 MiB): one
    for each comma outside strings, and one for each object or array that does not open right
    inside another (a first member's or element's container: deep nesting counts once, and is
    refused by the validator's own depth limit). Text that is not JSON is left to the
    validator, which says what is wrong with it."""
    if raw.count(b",") + raw.count(b"[") + raw.count(b"{") < limit:
        return  # every value is counted at most once by one of these bytes (a fast bound)
    plain = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    count = 1
    previous = 0
    for token in _JSON_TOKEN.finditer(plain):
        char = plain[token.start()]
        if char == 44 or (char in (91, 123) and previous not in (58, 91, 123)):  # , [ {
            count += 1
            if count > limit:
                raise ApiError(
                    413,
                    "ERROR_CODE_VALIDATION",
                    f"the request body holds more than {limit:,} JSON values "
                    "(max_body_values); split the request",
                )
        previous = char


async def read_body(request: web.Request) -> bytes:
    """The request body, decoded per its Content-Encoding: 408 when it arrives slower than
    ``body_timeout_seconds``, 413 past ``max_body_bytes``, 400/415 for a body that cannot be
    read or decoded."""
    try:
        if request.content.is_eof():  # the whole body has arrived: the usual case
            raw = await request.read()
        else:  # a client still sending must not hold a request slot forever
            timeout = request.app[CONFIG].body_timeout_seconds
            try:
                raw = await asyncio.wait_for(request.read(), timeout)
            except TimeoutError:
                raise ApiError(
                    408,
                    "ERROR_CODE_VALIDATION",
                    f"the request body did not arrive within {timeout:g} s",
                    headers={"Connection": "close"},
                ) from None
    except RequestPayloadError as exc:  # e.g. broken chunked framing, a body cut short
        raise ApiError(
            400, "ERROR_CODE_VALIDATION", f"the request body could not be read: {exc}"
        ) from exc
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        raw = decode_body(raw, encoding, request.app[CONFIG].max_body_bytes)
    return raw


#: Content-Encodings a request body may have (``app.make_runner`` turns aiohttp's own decoding
#: off, so that these are bounded by the body limit and every failure gets the error shape).
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_body(raw: bytes, header: str, limit: int) -> bytes:
    """``raw`` decoded per its Content-Encoding header (codings listed in the order applied):
    415 for a coding other than gzip, deflate and identity, 413 past ``limit`` decoded bytes, 400
    for data that does not decode."""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    unknown = [c for c in codings if c != "identity" and c not in _DECODERS]
    if unknown:
        raise ApiError(
            415,
            "ERROR_CODE_VALIDATION",
            f"unsupported Content-Encoding {unknown[0]!r}: use gzip, deflate or identity",
        )
    for coding in reversed(codings):
        if coding != "identity":
            raw = _inflate(raw, _DECODERS[coding], coding, limit)
    return raw


def _inflate(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    out = bytearray()
    try:
        while True:  # gzip may hold several members, one after another
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise ApiError(
                    413, "ERROR_CODE_VALIDATION", f"request body too large: over {limit} bytes"
                )
            if not inflater.eof:
                raise zlib.error("the data ends early")
            data = inflater.unused_data
            if not data or wbits != _DECODERS["gzip"]:
                break
    except zlib.error as exc:
        raise ApiError(
            400, "ERROR_CODE_VALIDATION", f"the request body is not valid {coding} data: {exc}"
        ) from exc
    if data:
        raise ApiError(400, "ERROR_CODE_VALIDATION", f"data after the end of the {coding} body")
    return bytes(out)


def tenant_of(request: web.Request, name: str = "tenant_id") -> str:
    """The path's tenant id, checked against the tenant id pattern (400 otherwise)."""
    tenant = path_tenant(request, name)
    try:
        check_tenant_id(tenant)
    except InvalidTenantId as exc:
        raise bad_request(name, str(exc)) from None
    return tenant


def path_tenant(request: web.Request, name: str = "tenant_id") -> str:
    """The path's tenant id as sent, unchecked."""
    tenant = request.match_info[name]
    raw = request.raw_path
    if "#" in raw:
        # A raw `#` is not allowed in a request target, and aiohttp cuts the path there: without
        # this, `DELETE /v1/tenants/t1#x` would delete t1. (`raw_path` is the target as sent;
        # `request.url` would cost an absolute URL built per request.)
        tenant = f"{tenant}#{raw.partition('#')[2]}"
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


def encode_in_parts(data: dict[str, Any]) -> bytes:
    """``data`` as JSON, each item of its top-level lists encoded on its own. For a worker
    thread: one ``dumps`` of a 30 MB page holds the GIL for its whole length (0.3 s), while
    between items the event loop gets its turn."""
    parts: list[str] = []
    for key, value in data.items():
        if isinstance(value, list):
            items = ",".join([_dumps(item) for item in value])
            parts.append(f"{_dumps(key)}:[{items}]")
        else:
            parts.append(f"{_dumps(key)}:{_dumps(value)}")
    return ("{" + ",".join(parts) + "}").encode()


def respond_bytes(body: bytes) -> web.Response:
    """Already-encoded JSON out."""
    return web.Response(body=body, content_type="application/json")


def ndjson_stream(request: web.Request) -> web.StreamResponse:
    """A newline-delimited JSON stream, with the request id set before its headers go out."""
    headers = {"Content-Type": "application/x-ndjson"}
    request_id = request.get(REQUEST_ID)
    if request_id:
        headers["X-Request-Id"] = request_id
    return web.StreamResponse(headers=headers)


def ndjson_line(data: Any) -> bytes:
    return (_dumps(data) + "\n").encode()


def error_line(api: ApiError) -> bytes:
    """An error after a stream has started, as grpc-gateway writes it: ``{"error": {...}}``."""
    body = error_body(api.status, api.reason, api.message, api.violations)
    return ndjson_line({"error": {**body, "http_code": api.status}})


async def end_stream(
    response: web.StreamResponse, exc: Exception | None = None
) -> web.StreamResponse:
    """End a started stream: after ``exc`` (a known error, say a tenant deleted meanwhile) a
    last ``{"error": ...}`` line, then the end. A client that has left is nobody's error; an
    exception the error table does not know (a bug) is raised again."""
    api = None
    if exc is not None:
        api = translate(exc)
        if api is None:
            raise exc
    with contextlib.suppress(ConnectionResetError):  # the client may leave at any moment
        if api is not None:
            await response.write(error_line(api))
        await response.write_eof()
    return response
