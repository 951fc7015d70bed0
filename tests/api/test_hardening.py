"""The server under hostile or careless clients, on real servers and real sockets: any bytes in
``Authorization``, credentials before a wrong method's 405, watch streams in a pool of their
own, connections that send nothing (or half a head), the connection cap, and API tokens that
resolve in a constant number of store reads however many tenants there are.

Timeouts and caps are configured small so the file runs in seconds; every socket read has a
timeout, so a server that fails to close a connection fails its test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx
import plyvel
import pytest
from aiohttp import web

from api.app import create_app, make_runner
from api.config import Config, ConfigError, load_config
from api.services import CONFIG, SERVICES
from engine.engine import Engine
from engine.relations.service import Relations
from storage import keys
from storage.base import RecordKey, TenantId
from storage.errors import TenantNotFound
from storage.leveldb import LevelDBStore
from tests.api.conftest import Server
from tests.api.relations_support import strapi_error, tenant_with_schema

ADMIN_KEY = "admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SCHEMA = """
entity user {}
entity contact {
    relation owner @user
    permission view = owner
    permission edit = owner
}
"""
CHECK = {
    "entity": {"type": "contact", "id": "1"},
    "permission": "view",
    "subject": {"type": "user", "id": "alice"},
}
CHECK_PATH = "/v1/tenants/t1/permissions/check"
RELATIONS_PATH = "/v1/tenants/t1/entities/contact:1/relations"
#: Long enough that a socket the server fails to close times out the read (and the test).
READ_TIMEOUT = 5.0
STONETOWN = str(Path(sys.executable).parent / "stonetown")
OPERATIONS = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(
    encoding="utf-8"
)


# -- raw HTTP ------------------------------------------------------------------------------


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    return sock


def request_bytes(method: str, path: str, headers: bytes = b"", body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: stonetown\r\nContent-Length: {len(body)}\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response (Content-Length framed) from ``sock``, read byte by byte up to the
    end of its head, so a pipelined answer after it stays unread."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise AssertionError(f"connection closed mid-head after {head!r}")
        head += byte
    lines = head.decode("latin-1").split("\r\n")[:-2]
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return status, headers, body


def exchange(
    port: int, method: str, path: str, headers: bytes = b"", body: bytes = b""
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection; the status, headers and JSON body."""
    with closing(connect(port)) as sock:
        sock.sendall(request_bytes(method, path, headers + b"Connection: close\r\n", body))
        status, found, raw = read_response(sock)
    return status, found, json.loads(raw) if raw else None


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (without answering) before READ_TIMEOUT."""
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def closed_now(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` already (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(READ_TIMEOUT)


def setup_tenant(client: httpx.Client, tenant: str = "t1") -> None:
    tenant_with_schema(client, SCHEMA, ADMIN, tenant)


def new_token(client: httpx.Client, tenant: str) -> str:
    body = {"name": "ci", "scopes": ["*"]}
    response = client.post(f"/v1/tenants/{tenant}/tokens", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["token"])


@pytest.fixture
def keyed(start_server: Callable[..., Server]) -> Server:
    server = start_server(preshared_keys=(ADMIN_KEY,))
    with server.client() as client:
        setup_tenant(client)
    return server


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One keyed server (tenant t1 with a schema) for the tests that only read."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    config = Config(data_dir=str(data_dir), access_log=False, preshared_keys=(ADMIN_KEY,))
    with serving(create_app(config)) as server:
        with server.client() as client:
            setup_tenant(client)
        yield server


# -- Authorization header bytes ------------------------------------------------------------

#: Header values aiohttp hands over as text the server must still refuse cleanly.
ODD_CREDENTIALS = [
    pytest.param(b"Bearer \xff\xfe\xfd", id="latin-1-bytes"),
    pytest.param(b"Bearer pat_\xe9\xff" + b"a" * 30, id="latin-1-api-token"),
    pytest.param(b"\xff\xfe admin-key", id="latin-1-scheme"),
    pytest.param("Bearer cl\u00e9".encode(), id="utf-8-non-ascii"),
    pytest.param(b"Bearer admin\tkey", id="tab"),
    pytest.param(b"Bearer " + b"x" * 8000, id="huge-within-the-line-limit"),
    pytest.param(b"Bearer pat_" + b"\xed\xa0\x80" * 10, id="encoded-surrogates"),
]


@pytest.mark.parametrize("credentials", ODD_CREDENTIALS)
def test_odd_authorization_bytes_get_a_401_in_the_permify_envelope(
    shared: Server, credentials: bytes
) -> None:
    body = json.dumps(CHECK).encode()
    status, headers, answer = exchange(
        port_of(shared), "POST", CHECK_PATH, b"Authorization: " + credentials + b"\r\n", body
    )
    assert status == 401, answer
    assert answer["code"] == 16 and answer["message"] == "invalid bearer token"
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("credentials", ODD_CREDENTIALS)
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", RELATIONS_PATH),
        ("GET", "/xapi2/data/relationship"),
        ("GET", "/v1/tenants/t1/tokens"),
        ("PATCH", RELATIONS_PATH),  # a wrong method authenticates first
    ],
    ids=["entity-relations", "verbatim-records", "tokens", "wrong-method"],
)
def test_odd_authorization_bytes_get_a_401_in_the_strapi_envelope(
    shared: Server, credentials: bytes, method: str, path: str
) -> None:
    status, headers, answer = exchange(
        port_of(shared), method, path, b"Authorization: " + credentials + b"\r\n"
    )
    assert status == 401, answer
    assert answer["data"] is None
    assert answer["error"]["name"] == "UnauthorizedError"
    assert headers["www-authenticate"].startswith("Bearer")


def test_an_odd_api_token_is_a_401_on_a_server_without_keys(server: Server) -> None:
    status, _, answer = exchange(
        port_of(server), "GET", RELATIONS_PATH, b"Authorization: Bearer pat_\xe9\xff\r\n"
    )
    assert status == 401, answer
    assert answer["error"]["message"] == "invalid token"


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(b"Bearer admin-key\x7f", id="delete"),
        pytest.param(b"Bearer admin\x00key", id="nul"),
        pytest.param(b"Bearer admin\x01key", id="start-of-heading"),
        pytest.param(b"Bearer admin\rkey", id="lone-carriage-return"),
        pytest.param(b"Bearer " + b"x" * 9000, id="past-the-line-limit"),
    ],
)
@pytest.mark.parametrize("path", [CHECK_PATH, RELATIONS_PATH])
def test_a_header_the_http_parser_refuses_is_a_400_in_the_permify_envelope(
    shared: Server, credentials: bytes, path: str
) -> None:
    port = port_of(shared)
    status, _, answer = exchange(port, "GET", path, b"Authorization: " + credentials + b"\r\n")
    assert status == 400, answer
    assert answer["code"] == 3
    assert answer["message"].startswith("malformed HTTP request: ")
    assert "admin" not in answer["message"]  # the offending header is not echoed
    assert exchange(port, "GET", "/healthz")[0] == 200


def test_the_right_key_still_passes_beside_the_odd_ones(shared: Server) -> None:
    status, _, answer = exchange(
        port_of(shared),
        "POST",
        CHECK_PATH,
        b"Authorization: Bearer admin-key\r\n",
        json.dumps(CHECK).encode(),
    )
    assert status == 200, answer


# -- credentials before a wrong method -----------------------------------------------------


@pytest.mark.parametrize(
    "method,path,strapi",
    [
        ("PATCH", RELATIONS_PATH, True),
        ("PUT", "/v1/tenants/t1/tokens", True),
        ("POST", "/xapi2/schema/relationship", True),
        ("GET", CHECK_PATH, False),
        ("DELETE", "/v1/tenants/t1/schemas/write", False),
    ],
    ids=["entity-relations", "tokens", "verbatim-records", "check", "schemas"],
)
def test_a_wrong_method_is_a_401_without_credentials_and_a_405_with_them(
    shared: Server, method: str, path: str, strapi: bool
) -> None:
    with shared.client() as client:
        anonymous = client.request(method, path)
        wrong_key = client.request(method, path, headers={"Authorization": "Bearer nope"})
        admin = client.request(method, path, headers=ADMIN)
    for refused in (anonymous, wrong_key):
        assert refused.status_code == 401, refused.text
        assert "allow" not in refused.headers
        if strapi:
            strapi_error(refused, 401)
        else:
            assert refused.json()["code"] == 16
    assert admin.status_code == 405, admin.text
    assert method not in admin.headers["allow"]
    if strapi:
        strapi_error(admin, 405)


def test_an_api_token_of_the_tenant_gets_the_405(shared: Server) -> None:
    with shared.client() as client:
        secret = new_token(client, "t1")
        answer = client.patch(RELATIONS_PATH, headers={"Authorization": f"Bearer {secret}"})
    strapi_error(answer, 405)


# -- watch streams have a pool of their own ------------------------------------------------


@contextmanager
def watch_stream(
    port: int, tenant: str = "t1"
) -> Iterator[tuple[int, dict[str, str], socket.socket]]:
    """A watch request on its own connection: its status and headers (the stream stays open
    while the context lasts, for a 200)."""
    with closing(connect(port)) as sock:
        body = json.dumps({"snap_token": ""}).encode()
        sock.sendall(request_bytes("POST", f"/v1/tenants/{tenant}/watch", ADMIN_HEADER, body))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"stream closed before its head: {data!r}"
            data += chunk
        lines = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        yield int(lines[0].split()[1]), headers, sock


ADMIN_HEADER = b"Authorization: Bearer admin-key\r\n"


def test_open_watch_streams_beyond_their_cap_get_429_and_ordinary_requests_still_answer(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(
        preshared_keys=(ADMIN_KEY,), max_streams=3, max_concurrency=2, watch_poll_seconds=0.05
    )
    port = port_of(server)
    with server.client() as client:
        setup_tenant(client)
    with ExitStack() as streams:
        for _ in range(3):
            status, _, _ = streams.enter_context(watch_stream(port))
            assert status == 200
        with watch_stream(port) as (status, headers, _):
            assert status == 429
            assert headers["retry-after"] == "1"
        with server.client(headers=ADMIN) as client:
            # More streams are open than max_concurrency: they must not hold its slots.
            for _ in range(5):
                answer = client.post(CHECK_PATH, json=CHECK)
                assert answer.status_code == 200, answer.text
            metrics = client.get("/metrics").text
        assert "stonetown_streams_open 3.0" in metrics
    # The streams' slots are free again once the server has seen their clients leave (at
    # its next poll).
    for _ in range(100):
        with watch_stream(port) as (status, _, _):
            if status == 200:
                break
        time.sleep(0.05)
    assert status == 200


# -- idle connections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GET /hea"],
    ids=["nothing", "half-a-head", "half-a-line"],
)
def test_a_connection_without_a_whole_head_is_closed_at_the_header_timeout(
    start_server: Callable[..., Server], sent: bytes
) -> None:
    # The idle timeout is far beyond the read timeout: only the header timeout can close it.
    server = start_server(header_timeout_seconds=0.3, keepalive_timeout_seconds=60)
    with closing(connect(port_of(server))) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert 'stonetown_http_connections_closed_early_total{reason="header_timeout"} 1.0' in metrics


def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(header_timeout_seconds=60, keepalive_timeout_seconds=0.3)
    with closing(connect(port_of(server))) as sock:
        sock.sendall(request_bytes("GET", "/healthz"))
        assert read_response(sock)[0] == 200
        assert closed_by_server(sock)


def test_a_request_outlasting_the_header_timeout_is_not_cut(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(
        preshared_keys=(ADMIN_KEY,), header_timeout_seconds=0.2, keepalive_timeout_seconds=0.2
    )
    with server.client(headers=ADMIN) as client:
        setup_tenant(client)
        with watch_stream(port_of(server)) as (status, _, sock):
            assert status == 200
            time.sleep(0.6)  # three header timeouts and three idle timeouts
            written = client.post(
                "/v1/tenants/t1/data/write",
                json={
                    "tuples": [
                        {
                            "entity": {"type": "contact", "id": "1"},
                            "relation": "owner",
                            "subject": {"type": "user", "id": "alice"},
                        }
                    ]
                },
            )
            assert written.status_code == 200, written.text
            line = b""
            while b"snap_token" not in line:
                chunk = sock.recv(65536)
                assert chunk, "the stream was closed"
                line += chunk
        assert written.json()["snap_token"].encode() in line


def test_a_pipelined_keep_alive_connection_is_served_whole(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(header_timeout_seconds=0.2)
    with closing(connect(port_of(server))) as sock:
        sock.sendall(request_bytes("GET", "/healthz") * 3)
        statuses = [read_response(sock)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]


def test_at_the_connection_cap_a_new_connection_evicts_the_oldest_silent_one(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(max_connections=10, header_timeout_seconds=60)
    port = port_of(server)
    with ExitStack() as stack:
        silent = [stack.enter_context(closing(connect(port))) for _ in range(10)]
        time.sleep(0.1)  # let the server accept them all, in order
        # Answered within READ_TIMEOUT, far inside the silent ones' header timeout: the room
        # was made by evicting one, not by waiting for one to time out.
        assert READ_TIMEOUT < 60
        status, _, _ = exchange(port, "GET", "/healthz")
        assert status == 200
        time.sleep(0.2)
        closed = [closed_now(sock) for sock in silent]
    assert closed == [True] + [False] * 9


def test_at_the_connection_cap_an_idle_keep_alive_connection_is_evicted_too(
    start_server: Callable[..., Server],
) -> None:
    # One request each, then held idle: without eviction, clients needing no credentials could
    # lock everyone out until the idle timeout.
    server = start_server(max_connections=5, header_timeout_seconds=60)
    port = port_of(server)
    with ExitStack() as stack:
        idle = []
        for _ in range(5):
            sock = stack.enter_context(closing(connect(port)))
            sock.sendall(request_bytes("GET", "/healthz"))
            assert read_response(sock)[0] == 200
            idle.append(sock)
        assert exchange(port, "GET", "/healthz")[0] == 200
        time.sleep(0.2)
        closed = [closed_now(sock) for sock in idle]
    assert closed == [True] + [False] * 4


def test_at_the_connection_cap_with_every_connection_mid_request_a_new_one_gets_503(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(max_connections=5, header_timeout_seconds=60)
    port = port_of(server)
    with ExitStack() as stack:
        for _ in range(5):  # each has sent a whole head and part of its body
            sock = stack.enter_context(closing(connect(port)))
            sock.sendall(
                b"POST /v1/tenants/t1/permissions/check HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
        time.sleep(0.1)  # let the server read the heads
        with closing(connect(port)) as refused:
            status, headers, body = read_response(refused)
            assert closed_by_server(refused)
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body)["message"] == "too many open connections (limit 5); retry shortly"
    assert exchange(port, "GET", "/healthz")[0] == 200  # room again once they left


def test_healthz_answers_fast_while_many_idle_sockets_are_open(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(header_timeout_seconds=60)
    port = port_of(server)
    with ExitStack() as stack:
        held = []
        for i in range(200):
            sock = stack.enter_context(closing(connect(port)))
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        time.sleep(0.2)
        # Each answered within READ_TIMEOUT (a hang bound, not a speed limit) while all 200 are
        # still open: none is closed, since the header timeout is a minute away.
        for _ in range(5):
            assert exchange(port, "GET", "/healthz")[0] == 200
        assert not any(closed_now(sock) for sock in held)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_idle_sockets_beyond_the_cap_hold_no_descriptors_of_the_server(
    start_server: Callable[..., Server],
) -> None:
    # The server runs in this process: its descriptors are what this process holds beyond the
    # clients' own sockets.
    server = start_server(max_connections=40, header_timeout_seconds=60)
    port = port_of(server)
    assert exchange(port, "GET", "/healthz")[0] == 200
    before = open_descriptors()
    with ExitStack() as stack:
        clients = [stack.enter_context(closing(connect(port))) for _ in range(200)]
        assert exchange(port, "GET", "/healthz")[0] == 200
        time.sleep(0.2)
        held_by_server = open_descriptors() - before - len(clients)
        assert held_by_server <= 40 + 2, held_by_server
        assert sum(closed_now(sock) for sock in clients) >= 200 - 40
    with server.client() as client:
        metrics = client.get("/metrics").text
    evicted = re.search(r'closed_early_total\{reason="evicted"\} (\d+)', metrics)
    assert evicted is not None and int(evicted[1]) >= 200 - 40


# -- API tokens in a constant number of reads ----------------------------------------------


class CountingStore(LevelDBStore):
    """A real LevelDB store that counts the calls that look up tenants or read their data."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, gc_interval=None)
        self.reads = 0

    def reader(
        self, tenant: str, token: str = "", *, prefetch: tuple[str, str] | None = None
    ) -> Any:
        self.reads += 1
        return super().reader(tenant, token, prefetch=prefetch)

    def list_tenants(self, *, page_size: int, cursor: str = "") -> Any:
        self.reads += 1
        return super().list_tenants(page_size=page_size, cursor=cursor)

    def get_tenant(self, tenant: str) -> Any:
        self.reads += 1
        return super().get_tenant(tenant)

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        self.reads += 1
        return super().claimant(namespace, key)


@contextmanager
def serving(app: web.Application) -> Iterator[Server]:
    """``app`` served on 127.0.0.1 from a thread of its own, through ``make_runner`` as
    ``serve`` runs it."""
    loop = asyncio.new_event_loop()
    runner = make_runner(app)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield Server(f"http://127.0.0.1:{runner.addresses[0][1]}", app[CONFIG], app, loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def unknown_token_reads(path: Path, tenants: int) -> int:
    """Store reads spent on one request with an unknown API token, on a store of ``tenants``
    tenants that each hold a token."""
    store = CountingStore(path)
    try:
        app = create_app(
            Config(data_dir=str(path), access_log=False, preshared_keys=(ADMIN_KEY,)), store=store
        )
        with serving(app) as server, server.client() as client:
            relations = app[SERVICES].relations
            for i in range(tenants):
                tenant = "t1" if i == 0 else f"tenant{i}"
                if i:
                    store.create_tenant(tenant)
                relations.create_token(tenant, "ci", ["*"], None, None)
            store.reads = 0
            answer = client.get(RELATIONS_PATH, headers={"Authorization": "Bearer pat_" + "x" * 32})
            reads = store.reads
        strapi_error(answer, 401)
        assert answer.json()["error"]["message"] == "invalid token"
        return reads
    finally:
        store.close()


def test_an_unknown_api_token_costs_the_same_few_reads_whatever_the_number_of_tenants(
    tmp_path: Path,
) -> None:
    few = unknown_token_reads(tmp_path / "few", 3)
    many = unknown_token_reads(tmp_path / "many", 300)
    assert few == many
    assert many <= 3


def test_a_token_answers_on_its_tenant_and_is_a_404_elsewhere_until_revoked_or_deleted(
    keyed: Server,
) -> None:
    store = keyed.app[SERVICES].store
    with keyed.client() as client:
        setup_tenant(client, "other")
        secret = new_token(client, "t1")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        assert store.claimant("tok", (digest,)) == "t1"
        own = client.get(RELATIONS_PATH, headers={"Authorization": f"Bearer {secret}"})
        assert own.status_code == 200, own.text
        elsewhere = client.get(
            "/v1/tenants/other/entities/contact:1/relations",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert strapi_error(elsewhere, 404)["message"] == "tenant other not found"

        token_id = client.get("/v1/tenants/t1/tokens", headers=ADMIN).json()["data"][0]["id"]
        revoked = client.delete(f"/v1/tenants/t1/tokens/{token_id}", headers=ADMIN)
        assert revoked.status_code == 204, revoked.text
        assert store.claimant("tok", (digest,)) is None
        own = client.get(RELATIONS_PATH, headers={"Authorization": f"Bearer {secret}"})
        assert strapi_error(own, 401)["message"] == "the token is expired or revoked"
        elsewhere = client.get(
            "/v1/tenants/other/entities/contact:1/relations",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert strapi_error(elsewhere, 401)["message"] == "invalid token"

        live = new_token(client, "other")
        live_digest = hashlib.sha256(live.encode()).hexdigest()
        deleted = client.delete("/v1/tenants/other", headers=ADMIN)
        assert deleted.status_code == 200, deleted.text
        assert store.claimant("tok", (live_digest,)) is None
        answer = client.get(RELATIONS_PATH, headers={"Authorization": f"Bearer {live}"})
        assert strapi_error(answer, 401)["message"] == "invalid token"


def _store_from_before_claims(path: Path) -> str:
    """A LevelDB store whose tenant ``a`` holds a token, with the token's claim and the store's
    completeness mark removed, as a store written before claims existed; the token's secret."""
    store = LevelDBStore(path, gc_interval=None)
    store.create_tenant("a")
    store.create_tenant("b")
    _, secret = Relations(store, Engine(store)).create_token("a", "ci", ["*"], None, None)
    store.close()
    db = plyvel.DB(str(path))
    try:
        claims = [*db.iterator(prefix=keys.CLAIMS, include_value=False)]
        marks = [
            key
            for key in db.iterator(prefix=keys.TENANT, include_value=False)
            if keys.TENANT_CLAIMS + keys.component("tok") in key
        ]
        assert len(claims) == len(marks) == 1
        for key in (*claims, *marks, keys.META + b"claims-complete"):
            db.delete(key)
    finally:
        db.close()
    return secret


def test_a_store_from_before_claims_has_its_tokens_claimed_when_the_server_starts(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    path = tmp_path / "old"
    secret = _store_from_before_claims(path)
    old = LevelDBStore(path, gc_interval=None)
    assert not old.claims_complete
    old.close()
    server = start_server(data_dir=str(path), preshared_keys=(ADMIN_KEY,))
    store = server.app[SERVICES].store
    assert store.claims_complete
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert store.claimant("tok", (digest,)) == "a"
    with server.client() as client:
        for tenant in ("a", "b"):
            answer = client.post(
                f"/v1/tenants/{tenant}/schemas/write", json={"schema": SCHEMA}, headers=ADMIN
            )
            assert answer.status_code == 200, answer.text
        own = client.get(
            "/v1/tenants/a/entities/contact:1/relations",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert own.status_code == 200, own.text
        elsewhere = client.get(
            "/v1/tenants/b/entities/contact:1/relations",
            headers={"Authorization": f"Bearer {secret}"},
        )
        strapi_error(elsewhere, 404)


def test_a_store_from_before_claims_used_without_a_server_claims_on_first_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old"
    secret = _store_from_before_claims(path)
    store = LevelDBStore(path, gc_interval=None)
    try:
        relations = Relations(store, Engine(store))
        with pytest.raises(TenantNotFound):
            relations.authenticate("b", secret)
        assert store.claims_complete
        assert relations.authenticate("a", secret).allows("relationship:list")
    finally:
        store.close()
    reopened = LevelDBStore(path, gc_interval=None)
    assert reopened.claims_complete  # the mark is durable
    reopened.close()


# -- settings ------------------------------------------------------------------------------


def test_every_setting_is_in_the_operations_configuration_table() -> None:
    table = OPERATIONS.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)}
    missing = [f.name for f in fields(Config) if f.name not in documented]
    assert missing == []


@pytest.mark.parametrize(
    "name,value,parsed",
    [
        ("max_streams", "7", 7),
        ("max_connections", "99", 99),
        ("header_timeout_seconds", "2.5", 2.5),
        ("keepalive_timeout_seconds", "30", 30.0),
    ],
)
def test_the_connection_settings_come_from_the_environment(
    name: str, value: str, parsed: object
) -> None:
    config = load_config(environ={f"STONETOWN_{name.upper()}": value})
    assert getattr(config, name) == parsed


@pytest.mark.parametrize(
    "name,value",
    [
        ("max_streams", 0),
        ("max_connections", 0),
        ("header_timeout_seconds", 0.0),
        ("keepalive_timeout_seconds", -1.0),
    ],
)
def test_a_connection_setting_out_of_range_is_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        replace(Config(), **{name: value})
