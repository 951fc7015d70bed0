"""Connection limits, below the request edge: how many connections may be open at once, and
how long a new one may take to send its first request head.

A client that connects and then sends nothing, or half a request head, costs a file descriptor
and a parser for as long as it is held, and needs no credentials to do so. So:

* **header timeout**: a new connection must send a complete request head within
  ``header_timeout`` seconds, or it is closed;
* **idle timeout**: after an answer, the next request head must be complete within aiohttp's
  ``keepalive_timeout``, or the connection is closed (aiohttp arms the same timer when a
  connection opens, so it also bounds the first head);
* **connection cap**: at ``max_connections`` open, a new connection closes the oldest one that
  is waiting for a request head (a silent or slow new client, or a keep-alive connection idle
  between requests) to make room; when every open connection is in the middle of a request,
  the new one is answered 503 and closed at once. So clients that send one request each and
  then hold their connections idle cannot lock others out.

``Runner`` installs this under aiohttp's ``AppRunner``: its server makes a `_Connection` (an
aiohttp ``RequestHandler`` that also reports to the `ConnectionGuard`) per accepted socket, so
every site the runner serves is guarded.

Concurrency model: everything here runs on the event loop; counts are plain attributes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from api.errors import error_body, error_response
from api.middleware import Metrics

log = logging.getLogger("stonetown.server")


class ConnectionGuard:
    """One server's connection limits and the connections they count."""

    def __init__(self, max_connections: int, header_timeout: float, metrics: Metrics) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.metrics = metrics
        #: Connections open and counted against the cap.
        self.open: set[_Connection] = set()
        #: The open connections waiting for a request head (new, or idle between requests),
        #: longest waiting first.
        self.waiting: dict[_Connection, None] = {}
        body = error_body(
            503,
            "ERROR_CODE_RATE_LIMIT_EXCEEDED",
            f"too many open connections (limit {max_connections}); retry shortly",
        )
        payload = json.dumps(body).encode()
        #: What a refused connection gets before it is closed.
        self.refusal = (
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Content-Type: application/json\r\n"
            b"Retry-After: 1\r\n"
            b"Connection: close\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )

    def admit(self, connection: _Connection) -> bool:
        """Count ``connection`` in, making room by closing the connection that has waited
        longest for a request head; False when there is none to close (refuse the new one)."""
        if len(self.open) >= self.max_connections:
            if not self.waiting:
                self.metrics.connections_refused += 1
                return False
            oldest = next(iter(self.waiting))
            self.release(oldest)
            self.metrics.connections_evicted += 1
            oldest.force_close()
        self.open.add(connection)
        self.waiting[connection] = None
        self.metrics.connections_open = len(self.open)
        return True

    def headed(self, connection: _Connection) -> None:
        """``connection`` finished a request head: it is busy until its answer is sent."""
        self.waiting.pop(connection, None)

    def idle(self, connection: _Connection) -> None:
        """``connection`` sent its answer and waits for its next request head."""
        if connection in self.open:
            self.waiting[connection] = None

    def release(self, connection: _Connection) -> None:
        """``connection`` is closed (or closing): it no longer counts."""
        self.open.discard(connection)
        self.waiting.pop(connection, None)
        self.metrics.connections_open = len(self.open)


class _Connection(web.RequestHandler):
    """aiohttp's handler of one connection, admitted by the guard and closed when its first
    request head is not complete within the header timeout; it tells the guard when it starts
    and stops waiting for a head.

    A head is complete when aiohttp's parser has made a request of it (or an error answer, for
    a head it cannot parse): after the bytes are fed to it, a request is queued."""

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if not guard.admit(self):
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(guard.refusal)
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(guard.header_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        web.RequestHandler.data_received(self, data)  # not super(): this runs per request
        if self._messages and self in self._guard.waiting:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            self._guard.headed(self)

    def log_access(
        self, request: BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        """Called by aiohttp once each answer is sent: unless another request is already
        queued (pipelined), the connection now waits for its next head."""
        web.RequestHandler.log_access(self, request, response, time)
        if not self._messages:
            self._guard.idle(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return  # refused in connection_made: aiohttp never saw it
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._guard.release(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (a control character in a header,
        a line past ``max_line_size``, ...), in the Permify error envelope. That is the
        client's mistake, so it is logged at debug level, not as a server error."""
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.debug("malformed request from %s: %s", request.remote, message, exc_info=exc)
        if request.writer.output_size > 0:  # an answer is on its way: the connection is broken
            raise ConnectionError("response already started; cannot send an error as well")
        if status >= 500:
            response = error_response(500, "ERROR_CODE_INTERNAL", "internal error (logged)")
        else:
            what = (message or "").strip().splitlines()[0].rstrip(":") if message else ""
            text = f"malformed HTTP request: {what}" if what else "malformed HTTP request"
            response = error_response(status, "ERROR_CODE_VALIDATION", text)
        response.force_close()
        return response

    def _head_late(self) -> None:
        self._head_timer = None
        self._guard.metrics.header_timeouts += 1
        self._guard.release(self)
        self.force_close()


class GuardedServer(web.Server):
    """aiohttp's server, making a `_Connection` per accepted socket."""

    def __init__(
        self, template: web.Server, guard: ConnectionGuard, handler_args: Mapping[str, Any]
    ) -> None:
        super().__init__(
            template.request_handler,
            request_factory=template.request_factory,
            handler_cancellation=template.handler_cancellation,
            **handler_args,
        )
        self._guard = guard
        self._handler_args = dict(handler_args)

    def __call__(self) -> web.RequestHandler:
        loop = asyncio.get_running_loop()
        return _Connection(self, self._guard, loop=loop, **self._handler_args)


class Runner(web.AppRunner):
    """aiohttp's ``AppRunner``, serving through a `GuardedServer`; ``handler_args`` go to each
    connection's ``RequestHandler`` (access log, ``keepalive_timeout``, ...)."""

    def __init__(
        self,
        app: web.Application,
        guard: ConnectionGuard,
        *,
        shutdown_timeout: float,
        handler_args: Mapping[str, Any],
    ) -> None:
        super().__init__(
            app, handle_signals=False, shutdown_timeout=shutdown_timeout, **handler_args
        )
        self.guard = guard
        self._handler_args = dict(handler_args)

    async def _make_server(self) -> web.Server:
        # The app's own server (built after its startup hooks ran) names the request handler
        # and factory; ours serves them, through guarded connections.
        template = await super()._make_server()
        return GuardedServer(template, self.guard, self._handler_args)
