"""The app factory: ``create_app(config)`` builds the aiohttp application.

The store (LevelDB in ``config.data_dir`` unless one is passed in), the engine and the worker
threads are opened by a cleanup context when the app starts and closed when it stops: in-flight
requests finish first (``shutdown_timeout``), then the workers drain, then the store closes, so
LevelDB is always closed cleanly. Nothing here is global: two apps in one process share nothing.

Concurrency model: handlers run on the event loop and do parsing and formatting there. A check
is first tried there under a budget of ``inline_dispatches`` dispatches (a cached answer needs
none), and a data write of at most ``inline_write_items`` items is made there when the store can
make it without waiting; a bigger one, and every other engine or store call, runs in the app's
thread pool (``Services.run``), so a slow check or a large write never blocks other requests.

Every route's handler is wrapped by ``middleware.Edge`` (request id, keys, the concurrency
limit, error bodies, metrics); unknown paths and methods are routed to wrapped 404 and 405
handlers, so every answer has the same shape.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiohttp import web
from aiohttp.web_urldispatcher import Resource

from api.config import Config, redacted_url
from api.connections import ConnectionGuard, Runner
from api.errors import method_not_allowed, not_found
from api.middleware import Edge, JsonAccessLogger, Metrics
from api.relations_http import (
    method_not_allowed_after_credentials,
    strapi_not_found,
    strapi_response,
)
from api.routes import (
    authzen,
    bundles,
    console,
    custom_objects,
    data,
    entity_relations,
    meta,
    permissions,
    records,
    registry,
    schemas,
    tenants,
    tokens,
    watch,
)
from api.services import CONFIG, METRICS, SERVICES, Services
from engine.engine import Engine, EngineConfig
from engine.hooks import RawWriter
from engine.relations.service import Relations
from storage.base import Store
from storage.leveldb import LevelDBStore

log = logging.getLogger("stonetown.server")
#: The app's edge (keys, concurrency limits): the gRPC server (api/grpc) passes its calls
#: through the same one, so both protocols share the limits.
EDGE = web.AppKey("edge", Edge)


def create_app(
    config: Config, *, store: Store | None = None, clock: Callable[[], float] = time.time
) -> web.Application:
    """Build the server. With ``store`` the caller owns it (it is not closed on shutdown);
    ``clock`` (seconds since the epoch) is the relations layer's: every time it writes (rows,
    types, tokens) and when API tokens expire."""
    metrics = Metrics()
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[METRICS] = metrics
    app.cleanup_ctx.append(functools.partial(_services, store=store, clock=clock))
    app.on_shutdown.append(_stop_streams)
    edge = Edge(
        metrics, config.max_concurrency, config.preshared_keys, stream_limit=config.max_streams
    )
    app[EDGE] = edge
    # aiohttp tries the routes under one fixed prefix in order: the hot ones go first.
    for module in (
        permissions,
        data,
        schemas,
        bundles,
        watch,
        tenants,
        meta,
        console,
        authzen,
    ):
        for route in module.routes:
            assert isinstance(route, web.RouteDef)
            # A watch stays open until its client leaves, mostly idle: it takes a slot of the
            # stream pool (max_streams). lookup-entity-stream ends when its lookup does, and
            # works the engine all along, so it counts as an ordinary request.
            handler = edge.wrap(route.handler, route.path, stream=module is watch)
            app.router.add_route(route.method, route.path, handler, **route.kwargs)
    # The relations layer authenticates itself (it also takes API tokens) and answers in
    # Strapi's error envelope.
    strapi_paths: set[str] = set()
    for module in (entity_relations, registry, records, tokens, custom_objects):
        # One path's methods must be added one after another to share a resource (and so a
        # 405 that lists them all).
        for route in sorted(
            module.routes, key=lambda r: r.path if isinstance(r, web.RouteDef) else ""
        ):
            assert isinstance(route, web.RouteDef)
            strapi_paths.add(route.path)
            handler = edge.wrap(route.handler, route.path, auth=False, render=strapi_response)
            app.router.add_route(route.method, route.path, handler, **route.kwargs)
    # Every other request gets the error shape too, through the edge: a known path asked with
    # another method (405, with Allow), and any other path (404).
    for resource in list(app.router.resources()):
        assert isinstance(resource, Resource)
        methods = [r.method for r in resource]
        if resource.canonical in strapi_paths:
            fallback = edge.wrap(
                method_not_allowed_after_credentials(methods),
                resource.canonical,
                auth=False,
                render=strapi_response,
            )
        else:
            fallback = edge.wrap(method_not_allowed(methods), resource.canonical)
        resource.add_route("*", fallback)
    for prefix in ("/xapi2", "/core"):
        app.router.add_route(
            "*",
            prefix + "/{path:.*}",
            edge.wrap(strapi_not_found, "unmatched", render=strapi_response),
        )
    app.router.add_route("*", "/{path:.*}", edge.wrap(not_found, "unmatched"))
    return app


async def _services(
    app: web.Application, *, store: Store | None, clock: Callable[[], float]
) -> AsyncIterator[None]:
    config = app[CONFIG]
    owned = store is None
    opened: Store = store or open_store(config)
    services = app[SERVICES] = services_for(config, opened, clock=clock)
    executor, relations = services.executor, services.relations
    try:
        if not opened.claims_complete:  # a store from before token claims: claim them once
            log.info("claiming the API tokens of every tenant (once per store)")
            await asyncio.get_running_loop().run_in_executor(executor, relations.claim_tokens)
        yield
    finally:
        executor.shutdown(wait=True)
        if owned:
            opened.close()
            where = redacted_url(config.database_url) if config.database_url else config.data_dir
            log.info("store closed: %s", where)


def services_for(config: Config, opened: Store, *, clock: Callable[[], float]) -> Services:
    """What the handlers use, over ``opened``: the engine, the relations layer and the raw
    writer with its hooks (also what ``stonetown import --database-url`` writes through)."""
    probe = _probe_of(opened)
    if probe is not None:
        # Every read of a database store is a round trip, which must never hold the event loop
        # (a database that stops answering would stall /healthz with it): checks and writes
        # go to threads.
        config = replace(config, inline_dispatches=0, inline_write_items=0)
    engine = Engine(
        opened,
        EngineConfig(
            check_cache_entries=config.check_cache_entries,
            read_cache_entries=config.read_cache_entries,
        ),
    )
    executor = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="stonetown-worker")
    relations = Relations(opened, engine, clock=clock)
    raw_writer = RawWriter(opened)
    relations.install(raw_writer)  # the engine writes raw data without knowing the layer
    return Services(config, opened, engine, executor, relations, raw_writer, probe=probe)


def open_store(config: Config) -> Store:
    """The store ``config`` names: its PostgreSQL database, else LevelDB in its data dir."""
    if config.database_url:
        # Imported only when asked for: a LevelDB server never loads the PostgreSQL driver.
        from storage.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(
            config.database_url,
            max_write_items=config.max_write_items,
            gc_window=config.gc_window_seconds,
            pool_size=config.db_pool_size,
            timeout_seconds=config.db_timeout_seconds,
            spin_seconds=config.db_spin_microseconds / 1e6,
            max_staleness=config.max_staleness_seconds,
        )
    return LevelDBStore(
        config.data_dir,
        max_write_items=config.max_write_items,
        gc_window=config.gc_window_seconds,
        resident_tuples=config.resident_tuples,
    )


def _probe_of(store: Store) -> Callable[[], None] | None:
    """What ``/healthz`` asks of the store: a database store's ``ping`` (raises
    ``StoreUnavailable`` when the database cannot be reached); None for an embedded store,
    which has nothing to reach."""
    ping = getattr(store, "ping", None)
    return ping if callable(ping) else None


async def _stop_streams(app: web.Application) -> None:
    """Ends watch streams, which would otherwise hold the shutdown until its timeout."""
    services = app.get(SERVICES)
    if services is not None:
        services.closing.set()
        services.writes.notify()


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner ``serve`` and the tests use: JSON access log, the configured shutdown wait,
    and the connection limits (``api.connections``)."""
    config = app[CONFIG]
    guard = ConnectionGuard(config.max_connections, config.header_timeout_seconds, app[METRICS])
    return Runner(
        app,
        guard,
        shutdown_timeout=config.shutdown_timeout,
        handler_args={
            "access_log_class": JsonAccessLogger,
            "access_log": logging.getLogger("stonetown.access") if config.access_log else None,
            "keepalive_timeout": config.keepalive_timeout_seconds,
            "auto_decompress": False,  # `request_io.parse` decodes bodies, within the size limit
        },
    )
