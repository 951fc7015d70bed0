"""The database going away under a running server: requests get 503 with ``Retry-After``
quickly (never a hang, never a wrong answer), ``/healthz`` says why, and the server recovers by
itself when the database is back.

The server reaches PostgreSQL through a TCP relay this test controls (the cluster itself stays
up for the other tests of the session): ``cut`` closes every relayed connection and refuses new
ones, as a database that went down does; ``freeze`` keeps the connections open but passes no
byte, as a database that hangs does; ``restore`` relays again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg.conninfo import conninfo_to_dict

from api.errors import UNAVAILABLE
from api.grpc.server import start_grpc
from storage.errors import StoreUnavailable
from storage.postgres.database import Database
from storage.postgres.watchdog import Watchdog
from tests.api.conftest import Server

#: The server's timeout for any database call.
TIMEOUT = 0.5
#: How soon an answer must come while the database is away or hangs: the timeout, once more
#: for a request queued behind busy workers (or a retry on a fresh connection), the watchdog's
#: grace, and room for a loaded machine.
BOUND = 6 * TIMEOUT
#: The server's worker threads; a burst of requests is larger.
WORKERS = 2

SCHEMA = """
entity user {}
entity document {
    relation viewer @user
    permission view = viewer
}
"""


class Relay:
    """TCP on 127.0.0.1 relayed to the cluster's unix socket, which the test can cut, freeze
    and restore."""

    def __init__(self, unix_path: str) -> None:
        self.unix_path = unix_path
        self.port = 0
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._frozen = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self.listen()

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.unix_path)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile: this one goes too
                    client.close()
                    upstream.close()
                    return
                self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # frozen: hold the bytes, as a dead network would
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and close every open one."""
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def freeze(self) -> None:
        """Keep every connection open and pass nothing (new ones are accepted, then hang)."""
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()
        if self._listener is None:
            self.listen()

    def close(self) -> None:
        self._flowing.set()
        self.cut()


@pytest.fixture
def relay(postgres_server: Any) -> Iterator[Relay]:
    relay = Relay(str(Path(postgres_server.socket_dir) / f".s.PGSQL.{postgres_server.port}"))
    yield relay
    relay.close()


def _relayed(relay: Relay, postgres_url: str) -> str:
    """``postgres_url`` reached through the relay."""
    params = conninfo_to_dict(postgres_url)
    return f"postgresql://{params['user']}@127.0.0.1:{relay.port}/{params['dbname']}"


@pytest.fixture
def relayed_server(
    relay: Relay, postgres_url: str, start_server: Callable[..., Server]
) -> Server:
    """A server whose database is ``postgres_url`` reached through the relay."""
    return start_server(
        database_url=_relayed(relay, postgres_url),
        db_timeout_seconds=TIMEOUT,
        db_pool_size=4,
        watch_poll_seconds=0.05,
        worker_threads=WORKERS,
    )


def _check(client: httpx.Client) -> httpx.Response:
    body = {
        "entity": {"type": "document", "id": "1"},
        "permission": "view",
        "subject": {"type": "user", "id": "ann"},
    }
    return client.post("/v1/tenants/t1/permissions/check", json=body)


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _assert_unavailable(response: httpx.Response, took: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    assert response.json()["code"] == UNAVAILABLE
    assert took < BOUND, f"answered after {took:.1f}s"


def _recovers(client: httpx.Client, within: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        response = _check(client)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        assert response.status_code == 503, response.text  # never another answer meanwhile
        time.sleep(0.1)


VIEWER_BOB = {
    "entity": {"type": "document", "id": "1"},
    "relation": "viewer",
    "subject": {"type": "user", "id": "bob"},
}


def _seed(client: httpx.Client) -> None:
    assert client.post("/v1/tenants/t1/schemas/write", json={"schema": SCHEMA}).status_code == 200
    tuples = [
        {
            "entity": {"type": "document", "id": "1"},
            "relation": "viewer",
            "subject": {"type": "user", "id": "ann"},
        }
    ]
    write = client.post("/v1/tenants/t1/data/write", json={"tuples": tuples})
    assert write.status_code == 200, write.text


def test_a_lost_database_is_503_with_retry_after_and_the_server_recovers(
    relay: Relay, relayed_server: Server
) -> None:
    with relayed_server.client() as client:
        _seed(client)
        assert _check(client).json()["can"] == "CHECK_RESULT_ALLOWED"
        relay.cut()
        for _ in range(2):  # a broken pooled connection, then no connection at all
            _assert_unavailable(*_timed(lambda: _check(client)))
        write = client.post("/v1/tenants/t1/data/write", json={"tuples": []})
        assert write.status_code == 503, write.text
        listing = client.get("/v1/tenants/t1/relationship-types")  # the relations layer's edge
        assert listing.status_code == 503, listing.text
        assert listing.headers["Retry-After"].isdigit()
        assert listing.json()["error"]["name"] == "ServiceUnavailableError"
        health, took = _timed(lambda: client.get("/healthz"))
        assert health.status_code == 503
        assert health.json()["status"] == "NOT_SERVING"
        assert "database" in health.json()["reason"]
        assert took < BOUND
        relay.restore()
        recovered = _recovers(client)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["can"] == "CHECK_RESULT_ALLOWED"
        assert client.get("/healthz").json() == {"status": "SERVING"}


@pytest.mark.parametrize("loss", ["cut", "freeze"])
def test_a_watch_ends_with_an_unavailable_line_and_resumes_from_its_token_once_back(
    relay: Relay, relayed_server: Server, loss: str
) -> None:
    with relayed_server.client() as client:
        _seed(client)
        token = client.post("/v1/tenants/t1/data/write", json={"tuples": []}).json()["snap_token"]
        with client.stream(
            "POST", "/v1/tenants/t1/watch", json={"snap_token": token}, timeout=10
        ) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            getattr(relay, loss)()
            started = time.monotonic()
            last = json.loads(next(line for line in lines if line))
            took = time.monotonic() - started
        assert last["error"]["code"] == UNAVAILABLE, last
        assert took < BOUND, f"the watch ended after {took:.1f}s"
        assert last["error"]["http_code"] == 503
        relay.restore()
        assert _recovers(client).status_code == 200
        write = client.post("/v1/tenants/t1/data/write", json={"tuples": [VIEWER_BOB]})
        with client.stream(
            "POST", "/v1/tenants/t1/watch", json={"snap_token": token}, timeout=10
        ) as resumed:
            first = json.loads(next(line for line in resumed.iter_lines() if line))
        assert first["result"]["changes"]["snap_token"] == write.json()["snap_token"]


def test_healthz_answers_in_bounded_time_while_the_database_hangs(
    relay: Relay, relayed_server: Server
) -> None:
    with relayed_server.client() as client:
        _seed(client)
        relay.freeze()
        health, took = _timed(lambda: client.get("/healthz"))
        assert health.status_code == 503, health.text
        assert "database" in health.json()["reason"]
        assert took < BOUND
        relay.restore()
        assert _recovers(client).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_hung_database_is_503_with_retry_after_in_bounded_time_and_the_server_recovers(
    relay: Relay, relayed_server: Server
) -> None:
    """Connections that stay open but carry nothing (a frozen server, a network dropping
    packets): the server's ``statement_timeout`` never fires, the client-side deadline does."""
    with relayed_server.client() as client:
        _seed(client)
        assert _check(client).json()["can"] == "CHECK_RESULT_ALLOWED"
        relay.freeze()
        _assert_unavailable(*_timed(lambda: _check(client)))

        def write() -> httpx.Response:
            return client.post("/v1/tenants/t1/data/write", json={"tuples": [VIEWER_BOB]})

        _assert_unavailable(*_timed(write))
        listing, took = _timed(lambda: client.get("/v1/tenants/t1/relationship-types"))
        assert listing.status_code == 503, listing.text
        assert listing.headers["Retry-After"].isdigit()
        assert listing.json()["error"]["name"] == "ServiceUnavailableError"
        assert took < BOUND, f"answered after {took:.1f}s"
        # More requests at once than worker threads: those queued behind the blocked workers
        # are answered in bounded time too.
        burst = [lambda: _check(client), write] * (3 * WORKERS)
        with ThreadPoolExecutor(len(burst)) as pool:
            answers = list(pool.map(_timed, burst))
        for answer in answers:
            _assert_unavailable(*answer)
        relay.restore()
        recovered = _recovers(client)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["can"] == "CHECK_RESULT_ALLOWED"
        written = write()
        assert written.status_code == 200, written.text
        body = {**VIEWER_BOB, "permission": "view"}
        del body["relation"]
        can = client.post("/v1/tenants/t1/permissions/check", json=body)
        assert can.json()["can"] == "CHECK_RESULT_ALLOWED"
        assert client.get("/healthz").json() == {"status": "SERVING"}


def test_a_transaction_on_a_hung_database_ends_at_its_deadline_and_its_connection_is_dropped(
    relay: Relay, postgres_url: str
) -> None:
    db = Database(_relayed(relay, postgres_url), pool_size=2, timeout_seconds=TIMEOUT)
    try:
        with db.transaction() as first, db.transaction() as second:  # two pooled connections
            first.execute("SELECT 1")
            second.execute("SELECT 1")
        relay.freeze()
        # Without a deadline of its own, the store would wait forever: cutting the connections
        # later fails the test instead (with another message, and too late).
        backstop = threading.Timer(4 * BOUND, relay.cut)
        backstop.start()
        try:
            for pipeline in (True, False):  # the COMMIT's wait, a statement's (or BEGIN's)
                started = time.monotonic()
                with (
                    pytest.raises(StoreUnavailable, match="did not answer"),
                    db.transaction(pipeline=pipeline) as conn,
                ):
                    conn.execute("SELECT 1")
                assert time.monotonic() - started < BOUND
        finally:
            backstop.cancel()
        relay.restore()
        # Both connections again, without a retry: a shut-down connection handed out again
        # would fail ("connection failed"); only waiting for new ones is allowed.
        deadline = time.monotonic() + 15
        while True:
            try:
                with db.transaction() as first, db.transaction() as second:
                    assert first.execute("SELECT 1").fetchall() == [(1,)]
                    assert second.execute("SELECT 1").fetchall() == [(1,)]
                break
            except StoreUnavailable as exc:
                assert "no database connection" in str(exc), exc
                assert time.monotonic() < deadline, "the pool never came back"
                time.sleep(0.1)
    finally:
        db.close()


def test_a_call_overtaken_by_its_deadline_as_it_ends_leaves_its_connection_closed(
    postgres_url: str,
) -> None:
    """The watchdog shuts a connection down just as its call returns: the connection must not
    go back to the pool looking healthy."""
    now = [0.0]
    watchdog = Watchdog(1.0, grace=0.02, clock=lambda: now[0])
    try:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            watchdog.arm(conn)
            assert conn.execute("SELECT 1").fetchall() == [(1,)]
            now[0] = 2.0  # the deadline passes before the call is disarmed
            peek = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                peek.settimeout(BOUND)
                assert peek.recv(1, socket.MSG_PEEK) == b""  # shut down by the watchdog
            finally:
                peek.close()
            assert not conn.closed
            watchdog.disarm(conn)
            assert conn.closed
    finally:
        watchdog.close()


def test_grpc_health_says_not_serving_while_the_database_is_away(
    relay: Relay, relayed_server: Server
) -> None:
    started = asyncio.run_coroutine_threadsafe(
        start_grpc(relayed_server.app, "127.0.0.1", 0), relayed_server.loop
    ).result(10)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            ask = health_pb2.HealthCheckRequest(service="")
            assert stub.Check(ask, timeout=BOUND).status == health_pb2.HealthCheckResponse.SERVING
            relay.cut()
            answer = stub.Check(ask, timeout=BOUND)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            relay.restore()
            deadline = time.monotonic() + 15
            while stub.Check(ask, timeout=BOUND).status != health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "gRPC health never recovered"
                time.sleep(0.1)
    finally:
        asyncio.run_coroutine_threadsafe(started.stop(1), relayed_server.loop).result(10)
