"""What every request passes through (`Edge`, wrapped around each route's handler): the
request id, bearer-key authentication, the concurrency limit, turning exceptions into error
bodies (``errors.response_for``), and metrics; and the JSON access log.

Metrics are plain counters updated on the event loop (the only thread that handles requests)
and turned into Prometheus families when ``/metrics`` is scraped: no locks on the hot path.
"""

from __future__ import annotations

import functools
import hmac
import itertools
import json
import logging
import secrets
from bisect import bisect_left
from collections.abc import Callable, Iterator
from time import perf_counter
from time import time as wall_clock

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from multidict import istr
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api.errors import ApiError, Handler, response_for

REQUEST_ID = web.RequestKey("stonetown.request_id", str)
#: The request id's header, as a case-insensitive name made once (not per lookup).
X_REQUEST_ID = istr("X-Request-Id")
ROUTE = web.RequestKey("stonetown.route", str)
#: Paths that need no key: load balancers probe /healthz, and the console's page and files hold
#: no data (the page asks for the key and sends it on its API calls).
OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/console",
        "/console/{asset}",
        # AuthZEN's discovery document: endpoint URLs only, built from the path (no tenant is
        # looked up, so it says nothing of which tenants exist).
        "/.well-known/authzen-configuration",
        "/.well-known/authzen-configuration/v1/tenants/{tenant_id}",
    }
)
#: Paths outside the concurrency limit, so an overloaded server still answers probes.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
#: Latency histogram bounds, seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
CHECK_RESULTS = ("allowed", "denied", "error")


class Metrics:
    """The server's metrics (one per app), exported through a registry of its own."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.streams = 0
        #: Connection limits (``api.connections``): open now, and how many were turned away.
        self.connections_open = 0
        self.connections_refused = 0
        self.connections_evicted = 0
        self.header_timeouts = 0
        #: Each route's counts, by its path template.
        self._routes: dict[str, RouteCounts] = {}
        self._checks = dict.fromkeys(CHECK_RESULTS, 0)
        self.registry = CollectorRegistry()
        self.registry.register(_Exporter(self))

    def route(self, route: str) -> RouteCounts:
        """The counts of ``route`` (a path template), made on first use: a handler takes its
        route's once, so a request need not look it up."""
        found = self._routes.get(route)
        if found is None:
            found = self._routes[route] = RouteCounts()
        return found

    def count_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.route(route).count(method, status, seconds)

    def count_check(self, result: str) -> None:
        self._checks[result] += 1

    def families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "stonetown_http_requests",
            "HTTP requests by route, method and status.",
            labels=["route", "method", "status"],
        )
        routes = sorted(self._routes.items())
        for route, counts in routes:
            for (method, status), count in sorted(counts.requests.items()):
                requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "stonetown_http_request_duration_seconds",
            "Time to the response's first byte, by route.",
            labels=["route"],
        )
        for route, counts in routes:
            if not counts.requests:
                continue
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], counts.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([route], buckets, counts.seconds)
        yield latency
        yield GaugeMetricFamily(
            "stonetown_http_requests_in_flight", "Requests being handled.", value=self.in_flight
        )
        yield GaugeMetricFamily(
            "stonetown_streams_open", "Long-lived streams (watch) open.", value=self.streams
        )
        yield GaugeMetricFamily(
            "stonetown_http_connections_open", "HTTP connections open.", value=self.connections_open
        )
        closed = CounterMetricFamily(
            "stonetown_http_connections_closed_early",
            "Connections closed by the connection limits: refused at the cap, evicted to make "
            "room (a connection waiting for a request head), or past the header timeout.",
            labels=["reason"],
        )
        closed.add_metric(["refused"], self.connections_refused)
        closed.add_metric(["evicted"], self.connections_evicted)
        closed.add_metric(["header_timeout"], self.header_timeouts)
        yield closed
        checks = CounterMetricFamily(
            "stonetown_checks", "Permission checks answered, by result.", labels=["result"]
        )
        for result, count in self._checks.items():
            checks.add_metric([result], count)
        yield checks


class RouteCounts:
    """One route's requests by (method, status), and their latency histogram."""

    __slots__ = ("buckets", "requests", "seconds")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        #: Per-bucket counts (the last one is +Inf), and the sum of seconds.
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.seconds = 0.0

    def count(self, method: str, status: int, seconds: float) -> None:
        key = (method, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.seconds += seconds


class _Exporter(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()


class Edge:
    """What every request passes through, wrapped around each route's handler: the request id,
    401 unless a configured key is given (but on OPEN_PATHS), 429 beyond ``limit`` requests in
    flight (but on UNLIMITED_PATHS), every exception an error body, and the metrics.

    Long-lived streams (watch: open until the client leaves) have a pool of their own, 429
    beyond ``stream_limit`` open at once, so idle streams can never take the slots that ordinary
    requests need.

    A wrapper rather than an aiohttp middleware: a middleware costs two more coroutine layers on
    every request (measured: about 3% of check throughput), and the route's path is known when
    wrapping, so it need not be looked up per request. `app.py` also routes unknown paths and
    methods to wrapped handlers, so every answer goes through here.
    """

    def __init__(
        self, metrics: Metrics, limit: int, keys: tuple[str, ...], *, stream_limit: int
    ) -> None:
        self.metrics = metrics
        self.limit = limit
        self.stream_limit = stream_limit
        self.keys = tuple(header_bytes(key) for key in keys)
        self.active = 0  # requests in flight that count against the limit
        self.streams = 0  # long-lived streams open, which count against stream_limit only
        self._id_prefix = secrets.token_hex(4) + "-"
        self._ids = itertools.count(1)

    def wrap(
        self,
        handler: Handler,
        route: str,
        *,
        auth: bool = True,
        render: Callable[[web.Request, Exception], web.StreamResponse] = response_for,
        stream: bool = False,
    ) -> Handler:
        """``handler`` behind the edge; ``route`` is its path template (the metrics label).

        ``auth=False`` leaves authentication to the handler and ``render`` shapes its errors
        (the relations layer: API tokens, Strapi's envelope). ``stream=True`` marks a
        long-lived stream: it takes a slot of the stream pool instead of the request pool."""
        metrics = self.metrics
        counts = metrics.route(route)
        keys = self.keys if auth else ()
        limited = route not in UNLIMITED_PATHS and not stream
        open_path = route in OPEN_PATHS
        id_prefix, ids = self._id_prefix, self._ids

        async def edge(request: web.Request) -> web.StreamResponse:
            started = perf_counter()
            incoming = request.headers.get(X_REQUEST_ID, "")
            request_id = incoming if 0 < len(incoming) <= 128 else f"{id_prefix}{next(ids):x}"
            request[REQUEST_ID] = request_id
            request[ROUTE] = route
            metrics.in_flight += 1
            counted = streaming = False
            try:
                if keys and not open_path:
                    _authenticate(request, keys)
                if limited:
                    if self.active >= self.limit:
                        raise _busy("requests in flight", self.limit)
                    self.active += 1
                    counted = True
                elif stream:
                    if self.streams >= self.stream_limit:
                        raise _busy("open streams", self.stream_limit)
                    self.streams += 1
                    metrics.streams = self.streams
                    streaming = True
                response = await handler(request)
            except Exception as exc:
                response = render(request, exc)
            finally:
                if counted:
                    self.active -= 1
                if streaming:
                    self.streams -= 1
                    metrics.streams = self.streams
                metrics.in_flight -= 1
            if not response.prepared:  # a stream sent its headers already, with the id
                response.headers[X_REQUEST_ID] = request_id
            counts.count(request.method, response.status, perf_counter() - started)
            return response

        functools.update_wrapper(edge, handler)  # keeps the OpenAPI description
        return edge


def _busy(what: str, limit: int) -> ApiError:
    """429 for a full pool (requests in flight, open streams), with a retry hint."""
    return ApiError(
        429,
        "ERROR_CODE_RATE_LIMIT_EXCEEDED",
        f"too many {what} (limit {limit}); retry shortly",
        headers={"Retry-After": "1"},
    )


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
    if scheme.lower() != "bearer" or not key_matches(given.strip(), keys):
        raise ApiError(
            401,
            "ERROR_CODE_INVALID_BEARER_TOKEN",
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def header_bytes(text: str) -> bytes:
    """``text`` as bytes, whatever it holds. aiohttp decodes header bytes that are not UTF-8
    to lone surrogates (``surrogateescape``), which a plain ``encode()`` refuses; this encoding
    is injective, so two strings are equal exactly when their bytes are."""
    return text.encode("utf-8", "surrogatepass")


def key_matches(given: str, keys: tuple[bytes, ...]) -> bool:
    """Whether ``given`` is one of ``keys`` (each from ``header_bytes``). Every key is compared,
    so the time taken says nothing about which one (or how much) matched."""
    token = header_bytes(given)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return matched


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
