"""A client-side deadline for database calls, which a server that stopped answering cannot
ignore (``statement_timeout`` is enforced by the server, so a frozen one never does).

One thread per store watches a registry {connection: deadline}. A call registers its connection
before it starts (a dict entry under a lock: no thread or timer per call) and removes it when it
ends. A call still registered past its deadline has its connection's socket shut down: the
blocked libpq read or write wakes with an error (psycopg raises ``OperationalError``, in
pipeline mode too), the connection is broken, so the pool discards it instead of handing it out
again, and ``guard`` turns the error into ``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from storage.errors import StoreUnavailable

log = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]


class Watchdog:
    """Shuts down the connections of calls running past their deadline."""

    def __init__(
        self,
        timeout: float,
        *,
        grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: How long a call may run: its deadline is ``timeout + grace`` after it starts.
        self.timeout = timeout
        self.grace = grace
        self._allowed = timeout + grace
        self._clock = clock
        self._lock = threading.Lock()
        self._deadlines: dict[Connection, float] = {}
        #: Connections shut down by the watchdog whose call has not ended yet.
        self._killed: set[Connection] = set()
        self._stop = threading.Event()
        #: Deadlines are checked this often, so an overdue call ends within half the grace.
        self._interval = grace / 2
        self._thread = threading.Thread(
            target=self._watch, name="stonetown-db-watchdog", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def arm(self, conn: Connection) -> None:
        """Start the deadline of a call on ``conn``; ``disarm`` (or ``failed``) when it ends."""
        with self._lock:
            self._deadlines[conn] = self._clock() + self._allowed

    def disarm(self, conn: Connection) -> None:
        """The call on ``conn`` ended well. If the watchdog shut it down as it finished, it is
        closed, so the pool drops it rather than handing a dead connection to the next call."""
        with self._lock:
            self._deadlines.pop(conn, None)
            if not self._killed or conn not in self._killed:
                return
            self._killed.discard(conn)
        conn.close()

    def failed(self, conn: Connection, exc: psycopg.Error) -> None:
        """The call on ``conn`` raised ``exc``: raise StoreUnavailable instead if the watchdog
        shut it down, else return (the caller re-raises)."""
        with self._lock:
            self._deadlines.pop(conn, None)
            if conn not in self._killed:
                return
            self._killed.discard(conn)
        raise StoreUnavailable(
            f"the database did not answer within {self.timeout:g} s; retry later"
        ) from exc

    @contextmanager
    def guard(self, conn: Connection) -> Iterator[None]:
        """The block under the deadline (``arm``, then ``disarm`` or ``failed``)."""
        self.arm(conn)
        try:
            yield
        except psycopg.Error as exc:
            self.failed(conn, exc)
            raise
        self.disarm(conn)

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            now = self._clock()
            with self._lock:
                overdue = [c for c, deadline in self._deadlines.items() if deadline <= now]
                for conn in overdue:
                    # Under the lock: the call cannot end and hand the connection to another.
                    del self._deadlines[conn]
                    self._killed.add(conn)
                    _shut_down(conn)
            if overdue:
                log.warning(
                    "%d database call(s) ran past %g s: their connections are shut down",
                    len(overdue),
                    self._allowed,
                )


def _shut_down(conn: Connection) -> None:
    """Shut down the socket under ``conn`` without closing libpq's descriptor (a duplicate shares
    the connection): whoever waits on it wakes up to an error."""
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
