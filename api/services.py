"""What handlers share: the app's keys and ``Services`` (store, engine, raw writer, worker
threads)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from aiohttp import web

from api.config import Config
from api.middleware import Metrics
from engine.engine import Engine
from engine.errors import OverBudget
from engine.hooks import RawWriter
from engine.relations.service import Relations
from engine.types import CheckResult, Entity, RequestOptions
from storage.base import Store, Subject
from storage.errors import StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")


class WriteSignal:
    """Wakes watch streams when this server lands a write (other writers are seen by polling)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


@dataclass(slots=True)
class Services:
    """What handlers use: the store, the engine (and the relations layer over both), the raw
    writer and the thread pool they run in."""

    config: Config
    store: Store
    engine: Engine
    executor: ThreadPoolExecutor
    relations: Relations
    #: Raw data writes (the data API, bundles), with the hooks of the layers above the engine.
    raw_writer: RawWriter
    writes: WriteSignal = field(default_factory=WriteSignal)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: Serialises partial schema writes: each reads the head and writes the next version.
    schema_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Raises ``StoreUnavailable`` when the store's database cannot be reached (``/healthz``
    #: asks it); None for a store with nothing to reach.
    probe: Callable[[], None] | None = None

    async def unreachable(self) -> str | None:
        """Why the store's database cannot be reached now, or None when it can (or the store
        has none). Asked in the loop's own threads, not the workers, so a busy server still
        answers at once; the probe gives up after the store's timeout, and the wait here only
        bounds a probe that hangs."""
        if self.probe is None:
            return None
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self.probe), self.config.db_timeout_seconds + 1
            )
        except (StoreUnavailable, TimeoutError) as exc:
            return f"database unreachable: {exc or 'no answer in time'}"
        return None

    async def check(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        subject: Subject,
        options: RequestOptions,
    ) -> CheckResult:
        """A check, tried on the event loop first (`check_inline`), else in a worker thread,
        which goes on from what the first try proved."""
        found = self.check_inline(tenant, entity, permission, subject, options)
        if found is not None:
            return found
        return await self.run(self.engine.check, tenant, entity, permission, subject, options)

    def check_inline(
        self,
        tenant: str,
        entity: Entity,
        permission: str,
        subject: Subject,
        options: RequestOptions,
    ) -> CheckResult | None:
        """A check answered here, on the event loop, or None when it needs more than
        ``inline_dispatches`` dispatches (0: every one), for a worker thread. Most checks are a
        cache hit or a few µs of reads, and answered here they skip the hand-off to a thread,
        which costs more than they do."""
        budget = self.config.inline_dispatches
        if not budget:
            return None
        try:
            return self.engine.check(
                tenant, entity, permission, subject, options, max_dispatches=budget
            )
        except OverBudget:
            return None

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a synchronous engine or store call in the worker threads.

        With a database store (a ``probe``), a call that has not started within
        ``db_timeout_seconds`` (every worker is busy, e.g. waiting on a database that stopped
        answering) is dropped and raises ``StoreUnavailable``: queued requests get 503 in
        bounded time too. A call that started is bounded by the store's own deadlines."""
        loop = asyncio.get_running_loop()
        if self.probe is None:
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
        job = self.executor.submit(fn, *args, **kwargs)
        timer = loop.call_later(self.config.db_timeout_seconds, job.cancel)  # no-op once running
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.cancelled() and not (task and task.cancelling()):  # dropped, not abandoned
                raise StoreUnavailable(
                    f"no worker free within {self.config.db_timeout_seconds:g} s (the database "
                    "is slow or not answering); retry later"
                ) from None
            raise
        finally:
            timer.cancel()


CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", Services)
METRICS = web.AppKey("metrics", Metrics)
