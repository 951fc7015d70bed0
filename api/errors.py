"""Every error the API returns, and THE table that maps exceptions to HTTP statuses.

One table (`classify`) gives every known exception, the relations layer's included, its HTTP
status and Permify's ErrorCode name; two renderers format what it says: Permify's envelope here
(`response_for`), used by the Permify routes, and Strapi's (``api/relations_http.py``), used by
the relations routes.

Permify bodies have grpc-gateway's shape ``{"code": <gRPC code>, "message": "...",
"details": [...]}``. ``message`` says what was wrong in words; ``details`` carries a
``google.rpc.ErrorInfo`` whose ``reason`` is Permify's ErrorCode name (what programs should
match on) and, for bad input, a ``google.rpc.BadRequest`` naming the field. Where Permify answers
bad input with HTTP 500 (request validation, schema errors), Stonetown answers 400; a 500 means
a bug in Stonetown, is logged with its traceback, and never echoes internals to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from dsl.errors import SchemaError
from dsl.partial import PartialProblemCode, PartialWriteError
from engine import bundles
from engine import errors as engine_errors
from engine.relations import errors as relations_errors
from storage import errors as storage_errors

log = logging.getLogger("stonetown.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# gRPC status codes used in bodies (google.rpc.Code).
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

#: What a 503 for an unreachable database tells clients to wait before retrying.
RETRY_AFTER_SECONDS = "1"

_GRPC_FOR_STATUS = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    405: UNIMPLEMENTED,
    408: DEADLINE_EXCEEDED,
    409: ALREADY_EXISTS,
    410: OUT_OF_RANGE,
    413: RESOURCE_EXHAUSTED,
    415: INVALID_ARGUMENT,
    429: RESOURCE_EXHAUSTED,
    500: INTERNAL,
    503: UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class ApiError(Exception):
    """An error raised by the API layer itself, already carrying its status and reason."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.violations = tuple(violations)
        self.headers = headers or {}


def bad_request(field: str, description: str, reason: str = "ERROR_CODE_VALIDATION") -> ApiError:
    """400 naming the offending field."""
    return ApiError(
        400, reason, f"{field}: {description}", violations=[FieldViolation(field, description)]
    )


# THE table: exception class -> (HTTP status, Permify ErrorCode name). The most specific class
# wins (looked up along the exception's MRO).
_TABLE: dict[type[BaseException], tuple[int, str]] = {
    storage_errors.TenantNotFound: (404, "ERROR_CODE_TENANT_NOT_FOUND"),
    storage_errors.TenantExists: (409, "ERROR_CODE_UNIQUE_CONSTRAINT"),
    storage_errors.InvalidTenantId: (400, "ERROR_CODE_VALIDATION"),
    storage_errors.SchemaNotFound: (404, "ERROR_CODE_SCHEMA_NOT_FOUND"),
    storage_errors.InvalidToken: (400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"),
    storage_errors.SnapshotExpired: (400, "ERROR_CODE_SNAPSHOT_EXPIRED"),
    storage_errors.TooManyChanges: (400, "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED"),
    storage_errors.InvalidFilter: (400, "ERROR_CODE_VALIDATION"),
    storage_errors.Conflict: (409, "ERROR_CODE_SERIALIZATION"),
    storage_errors.StoreClosed: (503, "ERROR_CODE_DATASTORE"),
    storage_errors.StoreUnavailable: (503, "ERROR_CODE_DATASTORE"),
    engine_errors.InvalidRequest: (400, "ERROR_CODE_VALIDATION"),
    engine_errors.InvalidCursor: (400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"),
    engine_errors.SchemaNotFound: (404, "ERROR_CODE_SCHEMA_NOT_FOUND"),
    engine_errors.UnknownEntityType: (400, "ERROR_CODE_ENTITY_TYPE_NOT_FOUND"),
    engine_errors.UnknownPermission: (400, "ERROR_CODE_PERMISSION_NOT_FOUND"),
    engine_errors.DepthExceeded: (400, "ERROR_CODE_DEPTH_NOT_ENOUGH"),
    engine_errors.RuleError: (400, "ERROR_CODE_EXECUTION"),
    engine_errors.InvalidWrite: (400, "ERROR_CODE_VALIDATION"),
    engine_errors.EntityNotDefined: (400, "ERROR_CODE_ENTITY_DEFINITION_NOT_FOUND"),
    engine_errors.EntityIsSubject: (400, "ERROR_CODE_ENTITY_AND_SUBJECT_CANNOT_BE_EQUAL"),
    engine_errors.RelationNotDefined: (400, "ERROR_CODE_RELATION_DEFINITION_NOT_FOUND"),
    engine_errors.SubjectTypeNotAllowed: (400, "ERROR_CODE_SUBJECT_TYPE_NOT_FOUND"),
    engine_errors.AttributeNotDefined: (400, "ERROR_CODE_ATTRIBUTE_DEFINITION_NOT_FOUND"),
    engine_errors.AttributeTypeMismatch: (400, "ERROR_CODE_ATTRIBUTE_TYPE_MISMATCH"),
    SchemaError: (400, "ERROR_CODE_SCHEMA_COMPILE"),
    PartialWriteError: (400, "ERROR_CODE_VALIDATION"),
    bundles.BundleError: (400, "ERROR_CODE_VALIDATION"),
    bundles.InvalidBundle: (400, "ERROR_CODE_VALIDATION"),
    bundles.DuplicateBundle: (400, "ERROR_CODE_ALREADY_EXIST"),
    bundles.BundleNotFound: (404, "ERROR_CODE_BUNDLE_NOT_FOUND"),
    bundles.MissingArgument: (400, "ERROR_CODE_MISSING_ARGUMENT"),
    bundles.InvalidArgument: (400, "ERROR_CODE_INVALID_ARGUMENT"),
    bundles.BundleTooLarge: (400, "ERROR_CODE_MAX_DATA_PER_WRITE_EXCEEDED"),
    relations_errors.RelationsError: (400, "ERROR_CODE_VALIDATION"),
    relations_errors.Invalid: (400, "ERROR_CODE_VALIDATION"),
    relations_errors.NotFound: (404, "ERROR_CODE_NOT_FOUND"),
    relations_errors.Conflict: (409, "ERROR_CODE_CONFLICT"),
    relations_errors.Forbidden: (403, "ERROR_CODE_FORBIDDEN"),
    relations_errors.Unauthenticated: (401, "ERROR_CODE_UNAUTHENTICATED"),
}

#: Permify's ErrorCode names for what is wrong with a partial schema write.
_PARTIAL_REASONS: dict[PartialProblemCode, str] = {
    PartialProblemCode.ENTITY_NOT_FOUND: "ERROR_CODE_ENTITY_STATEMENT_NOT_FOUND",
    PartialProblemCode.REFERENCE_NOT_FOUND: "ERROR_CODE_REFERENCE_NOT_FOUND",
    PartialProblemCode.ALREADY_EXIST: "ERROR_CODE_ALREADY_EXIST",
    PartialProblemCode.SCHEMA_PARSE: "ERROR_CODE_SCHEMA_PARSE",
}


def classify(exc: BaseException) -> tuple[int, str] | None:
    """(status, reason) for a known exception, or None for a bug."""
    for cls in type(exc).__mro__:
        found = _TABLE.get(cls)
        if found is not None:
            return found
    return None


def reason_of(exc: BaseException) -> str:
    """The Permify ErrorCode name the table gives ``exc`` (ValueError if it is not there)."""
    found = classify(exc)
    if found is None:
        raise ValueError(f"{type(exc).__name__} is not in the error table")
    return found[1]


def error_body(
    status: int,
    reason: str,
    message: str,
    violations: Sequence[FieldViolation] = (),
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "stonetown",
            "metadata": metadata or {},
        }
    ]
    if violations:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "field_violations": [
                    {"field": v.field, "description": v.description} for v in violations
                ],
            }
        )
    return {"code": _GRPC_FOR_STATUS.get(status, INTERNAL), "message": message, "details": details}


def error_response(
    status: int,
    reason: str,
    message: str,
    violations: Sequence[FieldViolation] = (),
    *,
    headers: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(status, reason, message, violations, metadata), status=status, headers=headers
    )


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def from_validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """Pydantic's errors as field violations: ``metadata.depth: must be >= 3``."""
    violations = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        where = _loc([p for p in err["loc"] if p not in {"function-after", "function-before"}])
        if prefix:
            where = f"{prefix}.{where}" if where != "body" else prefix
        message = err["msg"]
        if err["type"] == "json_invalid":
            where, message = "body", f"not valid JSON ({message})"
        elif err["type"] == "model_type" and where == "body":
            message = "the body must be a JSON object"
        violations.append(FieldViolation(where, message))
    text = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return ApiError(400, "ERROR_CODE_VALIDATION", text, violations=violations)


def _schema_error(exc: SchemaError) -> ApiError:
    violations = [
        FieldViolation("schema", f"{d.line}:{d.column}: {d.message}") for d in exc.diagnostics
    ]
    text = "; ".join(v.description for v in violations) or str(exc)
    reason = "ERROR_CODE_SCHEMA_COMPILE"
    return ApiError(400, reason, f"the schema does not compile: {text}", violations=violations)


def _partial_error(exc: PartialWriteError) -> ApiError:
    violations = [FieldViolation(p.location, p.message) for p in exc.problems]
    return ApiError(400, _PARTIAL_REASONS[exc.code], str(exc), violations=violations)


def translate(exc: BaseException) -> ApiError | None:
    """An ApiError for any exception the table or the request reader knows; None for a bug."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation_error(exc)
    if isinstance(exc, SchemaError):
        return _schema_error(exc)
    if isinstance(exc, PartialWriteError):
        return _partial_error(exc)
    found = classify(exc)
    if found is None:
        return None
    status, reason = found
    headers = None
    if isinstance(exc, storage_errors.StoreUnavailable):
        # The database is away, not the request wrong: the same request may succeed soon.
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    return ApiError(status, reason, str(exc) or reason, headers=headers)


def _http_exception(exc: web.HTTPException) -> ApiError:
    # Unknown paths and methods never get here: app.py routes them to `not_found` and
    # `method_not_allowed`. What aiohttp still raises inside a handler is 413 from reading a
    # body over the limit.
    status = exc.status
    if status == 413:
        return ApiError(413, "ERROR_CODE_VALIDATION", f"request body too large: {exc.text or ''}")
    return ApiError(status, "ERROR_CODE_VALIDATION", exc.reason)


def response_for(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The response for an exception a handler raised: the error body for everything known, a
    logged 500 for bugs. A non-error HTTPException (a redirect) is raised again."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        api = _http_exception(exc)
    elif isinstance(exc, ConnectionResetError):
        # The client left mid-request (e.g. while sending the body): no one to answer, not a bug.
        log.info("client gone during %s %s", request.method, request.path)
        return web.Response(status=499)  # nginx's "client closed request", for logs and metrics
    else:
        found = translate(exc)
        if found is None:
            log.error("internal error on %s %s", request.method, request.path, exc_info=exc)
            return error_response(500, "ERROR_CODE_INTERNAL", "internal error (logged)")
        api = found
    return error_response(api.status, api.reason, api.message, api.violations, headers=api.headers)


async def not_found(request: web.Request) -> web.StreamResponse:
    """Every path no route serves."""
    raise ApiError(404, "ERROR_CODE_NOT_FOUND", f"no such endpoint: {request.path}")


def method_not_allowed(methods: Sequence[str]) -> Handler:
    """The handler of a known path asked with a method it does not serve."""
    allow = ", ".join(sorted(methods))

    async def handler(request: web.Request) -> web.StreamResponse:
        raise ApiError(
            405,
            "ERROR_CODE_NOT_IMPLEMENTED",
            f"method {request.method} not allowed on {request.path}: use {allow}",
            headers={"Allow": allow},
        )

    return handler
