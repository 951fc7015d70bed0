"""The relations layer's edge: Strapi's error envelope, who is asking, bodies and list queries.

Every relations route is wrapped by ``Edge`` with ``auth=False`` and ``render=strapi_response``:
the handler resolves the principal itself (``principal``), because the relations layer accepts
API tokens (``pat_...``) as well as the preshared keys, and its errors have Strapi's shape:

    {"data": null, "error": {"status", "name", "message", "details"}}

The order of refusals is the spec's: 401 (credentials), 404 (tenant, or a token of another
tenant), 403 (route scope), then what the handler finds.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from api.errors import ApiError, Handler, method_not_allowed, translate
from api.middleware import header_bytes, key_matches
from api.request_io import DOC_ATTRIBUTE, documented, path_tenant, read_body, respond
from api.services import SERVICES
from engine.relations.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    RelationsError,
    Unauthenticated,
)
from engine.relations.listing import DEFAULT_LIMIT, MAX_LIMIT, ListQuery
from engine.relations.model import ADMIN, Principal, split_ref
from engine.relations.service import Relations
from engine.suggest import suggest
from storage.base import DEFAULT_TENANT, check_tenant_id
from storage.errors import InvalidTenantId, TenantNotFound

log = logging.getLogger("stonetown.server")

MAX_BODY_BYTES = 1 << 20
ROLE = re.compile(r"[a-z][a-z0-9_]{0,254}")
METADATA_BYTES = 16_384
#: Reserved metadata keys (the relationship record's fields), checked wherever metadata is written.
RESERVED = {"label": 80, "notes": 2000, "since": 32}

_NAMES = {
    400: "ValidationError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def _errors(errors: Sequence[FieldError], name: str) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        item: dict[str, Any] = {"path": list(e.path), "message": e.message, "name": name}
        if e.value is not None:
            item["value"] = e.value
        if e.suggestions is not None:
            item["suggestions"] = list(e.suggestions)
        out.append(item)
    return out


def envelope(
    status: int,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    name = _NAMES.get(status, "ApplicationError")
    body = {
        "data": None,
        "error": {
            "status": status,
            "name": name,
            "message": message,
            "details": dict(details or {}),
        },
    }
    response = respond(body, status)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _field_details(errors: Sequence[FieldError], name: str) -> dict[str, Any]:
    if not errors:
        return {}
    details: dict[str, Any] = {"errors": _errors(errors, name)}
    if errors[0].suggestions is not None:
        details["suggestions"] = list(errors[0].suggestions)
    return details


def strapi_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """Any exception a relations handler raised, in Strapi's envelope: the status is the error
    table's (``api/errors.py``), the details Strapi's; 500s are logged."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return envelope(exc.status, exc.reason)
    if isinstance(exc, ConnectionResetError):
        return web.Response(status=499)
    known = translate(exc)
    if known is None:
        log.error("internal error on %s %s", request.method, request.path, exc_info=exc)
        return envelope(500, "internal error (logged)")
    status, message, headers = known.status, known.message, known.headers
    details: Mapping[str, Any] = {}
    match exc:
        case Invalid() | NotFound():
            message, details = exc.message, _field_details(exc.errors, _NAMES[status])
        case Conflict():
            message, details = exc.message, exc.details
        case Forbidden():
            message = exc.message
            details = {"missing_scopes": list(exc.missing_scopes)} if exc.missing_scopes else {}
        case Unauthenticated():
            message, headers = exc.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        case RelationsError():
            message = exc.message
        case TenantNotFound():
            message = f"tenant {exc.tenant} not found"
        case InvalidTenantId():
            message = str(exc)
            details = {"errors": _errors([FieldError(("tenant_id",), message)], _NAMES[status])}
    return envelope(status, message, details, headers)


async def strapi_not_found(request: web.Request) -> web.StreamResponse:
    raise NotFound(f"no such endpoint: {request.path}")


# -- who is asking ---------------------------------------------------------------------------


def relations_of(request: web.Request) -> Relations:
    return request.app[SERVICES].relations


def tenant(request: web.Request, default: str | None = None) -> str:
    """The path's tenant id as sent (``principal`` checks it, after the credentials, so a
    request without credentials gets 401 whatever its path)."""
    return default if default is not None else path_tenant(request)


def _checked_tenant(tenant_id: str) -> None:
    try:
        check_tenant_id(tenant_id)
    except InvalidTenantId as exc:
        raise Invalid.at(("tenant_id",), str(exc)) from None


async def principal(request: web.Request, tenant_id: str, scope: str | None) -> Principal:
    """Authenticate (401), check the tenant (404), then the route's scope (403)."""
    svc = request.app[SERVICES]
    who = await credentials(request, tenant_id)
    _checked_tenant(tenant_id)
    await svc.run(svc.store.get_tenant, tenant_id)
    if scope is not None and not who.allows(scope):
        raise Forbidden.missing(scope)
    return who


async def credentials(request: web.Request, tenant_id: str) -> Principal:
    """Who the ``Authorization`` header stands for (401 unless a preshared key, or an API token
    of ``tenant_id``; 404 for a live token of another tenant). Any header bytes are refused
    cleanly: aiohttp hands bytes that are not UTF-8 over as lone surrogates."""
    svc = request.app[SERVICES]
    keys = svc.config.preshared_keys
    header = request.headers.get("Authorization", "")
    if not header:
        if keys:
            raise Unauthenticated("missing bearer token: send `Authorization: Bearer <token>`")
        return ADMIN
    scheme, _, given = header.partition(" ")
    secret = given.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("invalid authorization: expected `Bearer <token>`")
    # The keys first: a preshared key may itself start with `pat_`.
    if key_matches(secret, tuple(header_bytes(key) for key in keys)):
        return ADMIN
    if secret.startswith("pat_"):
        _checked_tenant(tenant_id)
        return await svc.run(svc.relations.authenticate, tenant_id, secret)
    if keys:
        raise Unauthenticated("invalid token")
    return ADMIN


async def bare_tenant(request: web.Request, fallback: str | None) -> str:
    """The tenant of a path without one: an API token's own tenant (a token belongs to one);
    for the admin key (or no keys), ``fallback`` when the path has one (the seeds' verbatim
    paths serve ``t1``), else 400 saying what to send instead. Unknown credentials are 401."""
    svc = request.app[SERVICES]
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    secret = given.strip()
    if (
        scheme.lower() == "bearer"
        and secret.startswith("pat_")
        and not key_matches(secret, tuple(header_bytes(key) for key in svc.config.preshared_keys))
    ):
        return str(await svc.run(svc.relations.token_tenant, secret))
    if fallback is not None:
        return fallback
    await credentials(request, DEFAULT_TENANT)  # 401 for a stranger before the 400
    raise Invalid.at(
        ("tenant_id",),
        f"{request.path} takes its tenant from an API token, and the admin key belongs to no "
        f"tenant: use /v1/tenants/{{tenant_id}}{request.path}, or send an API token "
        "(Authorization: Bearer pat_...) of the tenant",
    )


def method_not_allowed_after_credentials(methods: Sequence[str]) -> Handler:
    """The 405 of a relations path, given only to a caller with credentials (a 401 first), so
    a wrong method does not tell a stranger which paths exist."""
    refuse = method_not_allowed(methods)

    async def handler(request: web.Request) -> web.StreamResponse:
        scoped = "tenant_id" in request.match_info
        tenant_id = tenant(request) if scoped else await bare_tenant(request, DEFAULT_TENANT)
        await credentials(request, tenant_id)
        return await refuse(request)

    return handler


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("token management needs the admin key; an API token cannot manage tokens")


# -- bodies ------------------------------------------------------------------------------------


async def body_object(request: web.Request) -> dict[str, Any]:
    """The JSON object body: 413 past 1 MiB, 400 unless it is valid JSON and an object (no
    NaN or infinities, no lone surrogates: nothing that could not be stored and sent back)."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise _too_large()
    raw = await read_body(request)
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large()
    if not raw.strip():
        raise Invalid.at((), "Body must be a JSON object")
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        json.dumps(data, ensure_ascii=False).encode()
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise Invalid.at((), "Invalid JSON body") from exc
    if not isinstance(data, dict):
        raise Invalid.at((), "Body must be a JSON object")
    return data


def _too_large() -> ApiError:
    return ApiError(
        413, "ERROR_CODE_VALIDATION", f"the request body is larger than {MAX_BODY_BYTES} bytes"
    )


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_metadata(
    value: object, path: tuple[str | int, ...], errors: list[FieldError]
) -> dict[str, Any] | None:
    """``metadata``: an object or null, at most 16 KiB serialized, reserved keys checked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append(FieldError(path, f"{path[-1]} must be an object or null"))
        return None
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_BYTES:
        errors.append(
            FieldError(
                path, f"{path[-1]} must be at most {METADATA_BYTES} bytes of JSON (got {size})"
            )
        )
    for key, limit in RESERVED.items():
        if key in value:
            check_string(value[key], (*path, key), key, limit, errors, nullable=True)
    return value


def check_string(
    value: object,
    path: tuple[str | int, ...],
    name: str,
    limit: int,
    errors: list[FieldError],
    *,
    nullable: bool = False,
    minimum: int = 0,
) -> str | None:
    if value is None:
        if not nullable:
            errors.append(FieldError(path, f"{name} is a required field"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(path, f"{name} must be a string"))
        return None
    if len(value) > limit:
        errors.append(FieldError(path, f"{name} must be at most {limit} characters"))
        return None
    if len(value) < minimum:
        errors.append(FieldError(path, f"{name} must be at least {minimum} characters"))
        return None
    return value


def entity_ref(
    text: str, path: tuple[str | int, ...], errors: list[FieldError]
) -> tuple[str, str] | None:
    """``type:id`` split at the first ``:`` (400 unless both parts are well formed)."""
    parts = split_ref(text)
    if parts is None:
        errors.append(
            FieldError(
                path,
                f"{path[-1]} must be an entity reference type:id (type [a-z][a-z0-9_]*, "
                "id of letters, digits and _ - @ . : +)",
            )
        )
        return None
    return parts


# -- lists -------------------------------------------------------------------------------------

PAGING = ("limit", "offset", "after", "sort")


def list_query(
    request: web.Request,
    *,
    sorts: Iterable[str],
    default_sort: str,
    filters: Iterable[str],
    booleans: Iterable[str] = (),
    extra: Iterable[str] = (),
    created: str = "created_at",
) -> tuple[ListQuery, dict[str, list[str]]]:
    """Paging, sort and filters of a list request (every problem reported at once)."""
    query = request.query
    errors: list[FieldError] = []
    allowed_filters = set(filters)
    allowed_sorts = set(sorts)
    known = {*allowed_filters, *PAGING, *extra}
    for key in query:
        if key not in known:
            close = suggest(key, sorted(known))
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            errors.append(
                FieldError(
                    (key,),
                    f"unknown query parameter {key}{hint} (known: {', '.join(sorted(known))})",
                    value=key,
                    suggestions=close,
                )
            )
    for key in PAGING:
        if len(query.getall(key, [])) > 1:
            errors.append(FieldError((key,), f"{key} may be given only once"))
    limit = DEFAULT_LIMIT
    if "limit" in query:
        text = query["limit"]
        if not re.fullmatch(r"[0-9]{1,40}", text) or int(text) < 1:
            errors.append(FieldError(("limit",), "limit must be an integer of at least 1"))
        else:
            limit = min(int(text), MAX_LIMIT)
    offset: int | None = None
    if "offset" in query:
        text = query["offset"]
        if not re.fullmatch(r"[0-9]{1,12}", text):
            errors.append(FieldError(("offset",), "offset must be an integer of at least 0"))
        else:
            offset = int(text)
    after = query.get("after")
    if after is not None and not after:
        errors.append(FieldError(("after",), "after must not be empty"))
    if after is not None and "offset" in query:
        errors.append(FieldError(("after",), "after and offset cannot be used together"))
    sort_text = query.get("sort", "")
    if "sort" in query and not sort_text:
        errors.append(FieldError(("sort",), "sort must not be empty"))
    sort: list[tuple[str, bool]] = []
    for part in (sort_text or default_sort).split(","):
        name = part[1:] if part.startswith("-") else part
        if name not in allowed_sorts:
            errors.append(
                FieldError(
                    ("sort",),
                    f"cannot sort by {name!r}: sort keys are {', '.join(sorted(allowed_sorts))}",
                )
            )
        sort.append((name, part.startswith("-")))
    if after is not None and not errors:
        if not sort_text:
            sort = [(created, False)]
        elif sort[0][0] != created:
            errors.append(
                FieldError(("after",), f"after needs a list sorted by {created} or -{created}")
            )
    found: dict[str, list[str]] = {}
    bools = set(booleans)
    for key in allowed_filters:
        values = query.getall(key, [])
        if not values:
            continue
        for value in values:
            if not value:
                errors.append(FieldError((key,), f"{key} must not be empty"))
            elif key in bools and value not in ("true", "false"):
                errors.append(FieldError((key,), f"{key} must be true or false"))
        found[key] = values
    if errors:
        raise Invalid(errors)
    return ListQuery(limit=limit, offset=offset, after=after, sort=tuple(sort)), found


def described(
    summary: str,
    *,
    errors: tuple[int, ...] = (),
    status: int = 200,
    body: Mapping[str, Any] | None = None,
    answers: tuple[str, ...] = ("data", "meta"),
    query: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Any], Any]:
    """``documented`` for a relations route: a JSON object in (``body``, the JSON Schema of what
    the handler accepts; see the pieces in ``api/openapi.py``) and out (top-level ``answers``),
    Strapi's error envelope; ``query``: the query parameters a list reads."""
    return documented(
        summary,
        None,
        None,
        tag="relations",
        media_type="application/json",
        errors=errors,
        status=status,
        body=body,
        answers=answers,
        query=query,
    )


TenantHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def on_both_bases(
    routes: web.RouteTableDef,
    method: str,
    bases: tuple[str, str],
    suffix: str = "",
    *,
    fallback: str | None = DEFAULT_TENANT,
) -> Callable[[TenantHandler], TenantHandler]:
    """Register a ``(request, tenant_id)`` handler under ``bases[0]`` (a path with
    ``{tenant_id}``) and ``bases[1]`` (the unscoped path, which serves an API token's tenant,
    and for the admin key ``fallback``: the default tenant on the seeds' verbatim paths, a 400
    where it is None; see `bare_tenant`). Both routes keep the handler's name, docstring and
    OpenAPI description."""

    def register(handler: TenantHandler) -> TenantHandler:
        async def scoped(request: web.Request) -> web.StreamResponse:
            return await handler(request, tenant(request))

        async def default(request: web.Request) -> web.StreamResponse:
            return await handler(request, await bare_tenant(request, fallback))

        for base, wrapped in zip(bases, (scoped, default), strict=True):
            wrapped.__doc__ = handler.__doc__
            wrapped.__name__ = handler.__name__
            doc = getattr(handler, DOC_ATTRIBUTE, None)
            if doc is not None:
                setattr(wrapped, DOC_ATTRIBUTE, doc)
            routes.route(method, base + suffix)(wrapped)
        return handler

    return register
