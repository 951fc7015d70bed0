"""The gRPC server: Permify's services (``base.v1``) on ``grpc.aio``, in the HTTP server's process
and event loop, over the same app: its ``Services`` (store, engine and caches, worker threads),
its keys and its concurrency limits, counted together with HTTP's.

Every method goes through ``GrpcEdge``, the gRPC twin of ``middleware.Edge``: a bearer key in the
``authorization`` metadata (when keys are configured), a slot of the shared request pool (Watch:
of the stream pool), the metrics, and every exception rendered by ``api/grpc/status.py``. The
standard health service (``grpc.health.v1``) and server reflection are served beside it and
need no key, as ``/healthz`` needs none.

The services are registered from the descriptors of ``proto/base/v1/service.proto`` (no
generated servicer classes): ``methods`` names the implementation of each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from api.app import EDGE
from api.config import DEFAULT_GRPC_PORT, Config
from api.errors import ApiError, bad_request
from api.grpc.generated.base.v1 import service_pb2 as pb
from api.grpc.servicers import Servicers
from api.grpc.status import grpc_error
from api.middleware import Edge, Metrics, _busy, key_matches
from api.services import METRICS, SERVICES, Services

log = logging.getLogger("stonetown.grpc")

PACKAGE = "base.v1"
Unary = Callable[[Any], Awaitable[Message]]
Decoder = Callable[[bytes], Message]
Streaming = Callable[[Any], AsyncIterator[Message]]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: where it is (``/base.v1.Permission/Check``) and what answers it."""

    service: str
    name: str
    unary: Unary | None = None
    streaming: Streaming | None = None
    #: A long-lived stream (Watch), which takes a slot of the stream pool.
    long_lived: bool = False

    @property
    def path(self) -> str:
        return f"/{PACKAGE}.{self.service}/{self.name}"


def methods(s: Servicers) -> list[Method]:
    """Every method of Permify's services and its implementation."""
    return [
        Method("Permission", "Check", s.check),
        Method("Permission", "BulkCheck", s.bulk_check),
        Method("Permission", "Expand", s.expand),
        Method("Permission", "LookupEntity", s.lookup_entity),
        Method("Permission", "LookupEntityStream", streaming=s.lookup_entity_stream),
        Method("Permission", "LookupSubject", s.lookup_subject),
        Method("Permission", "SubjectPermission", s.subject_permission),
        Method("Watch", "Watch", streaming=s.watch, long_lived=True),
        Method("Schema", "Write", s.schema_write),
        Method("Schema", "PartialWrite", s.schema_partial_write),
        Method("Schema", "Read", s.schema_read),
        Method("Schema", "List", s.schema_list),
        Method("Data", "Write", s.data_write),
        Method("Data", "WriteRelationships", s.write_relationships),
        Method("Data", "ReadRelationships", s.read_relationships),
        Method("Data", "ReadAttributes", s.read_attributes),
        Method("Data", "Delete", s.data_delete),
        Method("Data", "DeleteRelationships", s.delete_relationships),
        Method("Data", "RunBundle", s.run_bundle),
        Method("Bundle", "Write", s.bundle_write),
        Method("Bundle", "Read", s.bundle_read),
        Method("Bundle", "Delete", s.bundle_delete),
        Method("Tenancy", "Create", s.tenant_create),
        Method("Tenancy", "Delete", s.tenant_delete),
        Method("Tenancy", "List", s.tenant_list),
    ]


def _authenticate(context: grpc.aio.ServicerContext[Any, Any], keys: tuple[bytes, ...]) -> None:
    """As the HTTP edge: 401 (UNAUTHENTICATED) without ``authorization: Bearer <key>``."""
    header = ""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            header = value
            break
    scheme, _, given = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "ERROR_CODE_MISSING_BEARER_TOKEN",
            "missing bearer token: send the metadata `authorization: Bearer <key>`",
        )
    if scheme.lower() != "bearer" or not key_matches(given.strip(), keys):
        raise ApiError(401, "ERROR_CODE_INVALID_BEARER_TOKEN", "invalid bearer token")


class GrpcEdge:
    """What every gRPC call passes through (see the module's docstring)."""

    def __init__(self, edge: Edge, metrics: Metrics) -> None:
        self.edge = edge
        self.metrics = metrics

    def _enter(self, context: grpc.aio.ServicerContext[Any, Any], long_lived: bool) -> None:
        """Authenticates and takes a slot; raises ApiError when either fails."""
        edge = self.edge
        if edge.keys:
            _authenticate(context, edge.keys)
        if long_lived:
            if edge.streams >= edge.stream_limit:
                raise _busy("open streams", edge.stream_limit)
            edge.streams += 1
            self.metrics.streams = edge.streams
        else:
            if edge.active >= edge.limit:
                raise _busy("requests in flight", edge.limit)
            edge.active += 1

    def _leave(self, long_lived: bool) -> None:
        edge = self.edge
        if long_lived:
            edge.streams -= 1
            self.metrics.streams = edge.streams
        else:
            edge.active -= 1

    def _count(self, path: str, status: int, started: float) -> None:
        self.metrics.count_request(path, "GRPC", status, perf_counter() - started)

    def unary(
        self, method: Method, fn: Unary, decode: Decoder
    ) -> Callable[..., Awaitable[Message]]:
        path = method.path

        async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
            started = perf_counter()
            self.metrics.in_flight += 1
            entered = False
            try:
                self._enter(context, False)
                entered = True
                response = await fn(decode(raw))
            except Exception as exc:
                error = grpc_error(exc, path)
                self._count(path, error.http_status, started)
                await context.abort(error.code, error.message, error.trailing_metadata)
            finally:
                if entered:
                    self._leave(False)
                self.metrics.in_flight -= 1
            self._count(path, 200, started)
            return response

        return handler

    def streaming(
        self, method: Method, fn: Streaming, decode: Decoder
    ) -> Callable[..., AsyncIterator[Message]]:
        path, long_lived = method.path, method.long_lived

        async def handler(
            raw: bytes, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            started = perf_counter()
            self.metrics.in_flight += 1
            entered = False
            try:
                self._enter(context, long_lived)
                entered = True
                async for item in fn(decode(raw)):
                    yield item
            except Exception as exc:
                error = grpc_error(exc, path)
                self._count(path, error.http_status, started)
                await context.abort(error.code, error.message, error.trailing_metadata)
            finally:
                if entered:
                    self._leave(long_lived)
                self.metrics.in_flight -= 1
            self._count(path, 200, started)

        return handler


def _handlers(edge: GrpcEdge, servicers: Servicers) -> list[grpc.GenericRpcHandler]:
    by_path = {m.path: m for m in methods(servicers)}
    handlers: list[grpc.GenericRpcHandler] = []
    for service in pb.DESCRIPTOR.services_by_name.values():
        table: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for described in service.methods:
            method = by_path[f"/{service.full_name}/{described.name}"]
            decode = _decoder(_message_class(described.input_type.name))
            if method.unary is not None:
                assert not described.server_streaming, method.path
                table[described.name] = grpc.unary_unary_rpc_method_handler(
                    edge.unary(method, method.unary, decode),
                    response_serializer=_serialize,
                )
            else:
                assert method.streaming is not None and described.server_streaming, method.path
                table[described.name] = grpc.unary_stream_rpc_method_handler(
                    edge.streaming(method, method.streaming, decode),
                    response_serializer=_serialize,
                )
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, table))
    return handlers


def _decoder(cls: type[Message]) -> Decoder:
    """Reads a request inside the edge (grpcio's own deserializer would answer bytes that are
    not the message with INTERNAL): bytes that do not parse are a 400 (INVALID_ARGUMENT)."""
    name = cls.DESCRIPTOR.name

    def decode(raw: bytes) -> Message:
        try:
            return cls.FromString(raw)
        except DecodeError as exc:
            raise bad_request("body", f"not a valid {name} message: {exc}") from exc

    return decode


def _message_class(name: str) -> type[Message]:
    """A request message's class (every request is declared in service.proto)."""
    found: type[Message] = getattr(pb, name)
    return found


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class _Health(health.aio.HealthServicer):
    """grpc.health.v1 as ``/healthz`` answers: a store whose database cannot be reached makes
    every service NOT_SERVING while it lasts."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self._services = services

    async def Check(  # noqa: N802 - the generated service's method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        answer = await super().Check(request, context)
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            reason = await self._services.unreachable()
            if reason is not None:
                return health_pb2.HealthCheckResponse(
                    status=health_pb2.HealthCheckResponse.NOT_SERVING
                )
        return answer


class GrpcServer:
    """A started gRPC server and the port it listens on."""

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        checker: health.aio.HealthServicer,
        app: web.Application,
    ) -> None:
        self.server = server
        self.port = port
        self._health = checker
        self._app = app

    async def stop(self, grace: float) -> None:
        """Stop taking calls: health says NOT_SERVING, watch streams end (as the app's
        shutdown ends HTTP's), calls in flight get ``grace`` seconds."""
        await self._health.enter_graceful_shutdown()
        services = self._app[SERVICES]
        services.closing.set()
        services.writes.notify()
        await self.server.stop(grace)


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc(
    app: web.Application, host: str, port: int, *, reuse_port: bool = False
) -> GrpcServer:
    """Serve ``app``'s services (the app must have started) over gRPC on ``host:port`` (0 picks
    a free port). ``reuse_port`` lets several processes listen on one port (serve's workers);
    otherwise a port in use is an error, as over HTTP. OSError when it cannot listen."""
    server = grpc.aio.server(
        options=[
            # gRPC's default is on: a second server would bind a port in use and share its calls.
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_receive_message_length", app[SERVICES].config.max_body_bytes),
        ]
    )
    servicers = Servicers(app[SERVICES], app[METRICS])
    server.add_generic_rpc_handlers(_handlers(GrpcEdge(app[EDGE], app[METRICS]), servicers))
    checker = _Health(app[SERVICES])
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names: Sequence[str] = [s.full_name for s in pb.DESCRIPTOR.services_by_name.values()]
    for name in ("", *names):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as exc:  # grpcio raises where older versions returned 0
        raise OSError(f"cannot listen on {where} (gRPC): {exc}") from exc
    if not bound:
        raise OSError(f"cannot listen on {where} (gRPC)")
    await server.start()
    log.info("gRPC serving on %s", address(host, bound))
    return GrpcServer(server, bound, checker, app)


def grpc_port_of(config: Config) -> int | None:
    """The port ``serve`` listens on for gRPC: None when disabled (``grpc_port`` 0), and a free
    one (0) when HTTP takes a free port and ``grpc_port`` is the default, so that servers started
    on free ports (tests, several at once) never contend for 3478."""
    if config.grpc_port == 0:
        return None
    if config.port == 0 and config.grpc_port == DEFAULT_GRPC_PORT:
        return 0
    return config.grpc_port
