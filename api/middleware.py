"""What every request passes through: metrics and the access log's fields, the concurrency limit,
and bearer-key authentication.

Order (outermost first, see ``app.py``): ``observe`` (times the request, counts it by route and
status, sets the request id), then the error middleware (``errors.py``: every exception becomes
an error body), then ``guard`` (429 over the concurrency limit, 401 without a valid key).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from time import perf_counter
from time import time as wall_clock

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api.errors import ApiError, Handler

REQUEST_ID = web.RequestKey("stonetown.request_id", str)
ROUTE = web.RequestKey("stonetown.route", str)
#: Paths that need no key (load balancers probe them).
OPEN_PATHS = frozenset({"/healthz"})
#: Paths outside the concurrency limit, so an overloaded server still answers probes.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})


@dataclass(slots=True)
class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Counter = field(init=False)
    latency: Histogram = field(init=False)
    in_flight: Gauge = field(init=False)
    checks: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "stonetown_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stonetown_http_request_duration_seconds",
            "Time to the response's first byte, by route.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "stonetown_http_requests_in_flight", "Requests being handled.", registry=self.registry
        )
        self.checks = Counter(
            "stonetown_checks",
            "Permission checks answered, by result.",
            ["result"],
            registry=self.registry,
        )


@dataclass(slots=True)
class Limiter:
    """Counts requests in flight; one per app."""

    limit: int
    active: int = 0


def _route(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def observe(metrics: Metrics) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if 0 < len(incoming) <= 128 else secrets.token_hex(8)
        request[REQUEST_ID] = request_id
        route = _route(request)
        request[ROUTE] = route
        started = perf_counter()
        metrics.in_flight.inc()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-Id"] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.in_flight.dec()
            metrics.latency.labels(route).observe(perf_counter() - started)
            metrics.requests.labels(route, request.method, str(status)).inc()

    return observe_middleware


def guard(limiter: Limiter, keys: tuple[str, ...]) -> web.middleware:  # type: ignore[valid-type]
    """429 beyond ``limiter.limit`` requests in flight; 401 unless a configured key is given."""
    encoded = tuple(key.encode() for key in keys)

    @web.middleware
    async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if encoded and path not in OPEN_PATHS:
            _authenticate(request, encoded)
        if path in UNLIMITED_PATHS:
            return await handler(request)
        if limiter.active >= limiter.limit:
            raise ApiError(
                429,
                "ERROR_CODE_RATE_LIMIT_EXCEEDED",
                f"too many requests in flight (limit {limiter.limit}); retry shortly",
                headers={"Retry-After": "1"},
            )
        limiter.active += 1
        try:
            return await handler(request)
        finally:
            limiter.active -= 1

    return guard_middleware


def _authenticate(request: web.Request, keys: tuple[bytes, ...]) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "ERROR_CODE_MISSING_BEARER_TOKEN",
            "missing bearer token: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = given.strip().encode()
    # Compare with every key so the time taken says nothing about which one (or how much) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    if scheme.lower() != "bearer" or not matched:
        raise ApiError(
            401,
            "ERROR_CODE_INVALID_BEARER_TOKEN",
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


class JsonAccessLogger(AbstractAccessLogger):
    """One JSON object per request on the ``stonetown.access`` logger."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        record = {
            "ts": round(wall_clock(), 3),
            "request_id": request.get(REQUEST_ID, ""),
            "remote": request.remote,
            "method": request.method,
            "path": request.path,
            "route": request.get(ROUTE, ""),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 3),
            "user_agent": request.headers.get("User-Agent", ""),
        }
        self.logger.info(json.dumps(record, ensure_ascii=False))

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
