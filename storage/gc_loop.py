"""The garbage-collection thread every durable store runs: ``Store.collect_garbage`` every
``interval`` seconds, until the store closes."""

from __future__ import annotations

import logging
import threading

from storage.base import Store
from storage.errors import StoreClosed

log = logging.getLogger(__name__)


class GCLoop:
    """Collects ``store``'s garbage every ``interval`` seconds in a daemon thread (none when
    ``interval`` is None); ``stop`` ends it and waits for a pass under way."""

    def __init__(self, store: Store, interval: float | None) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if interval is not None:
            self._thread = threading.Thread(
                target=self._run, args=(store, interval), name="stonetown-gc", daemon=True
            )
            self._thread.start()

    def _run(self, store: Store, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                stats = store.collect_garbage()
                log.info("gc: horizon %d, removed %d versions", stats.horizon, stats.removed)
            except StoreClosed:
                return
            except Exception:
                log.exception("garbage collection failed; will retry")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
