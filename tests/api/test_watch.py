"""Watch over HTTP: a stream of the tenant's writes after a snap token, one NDJSON line per
write, in revision order; errors before the stream get a status, the server's shutdown ends it.

Every read of a stream has a timeout, so a stream that stalls fails its test instead of hanging
the suite.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from api import models as m
from tests.api.conftest import Server, shaped
from tests.api.support import finished_requests

SCHEMA = """
entity user {}
entity document {
    relation viewer @user
    attribute public boolean
    permission view = viewer or public
}
"""
TIMEOUT = httpx.Timeout(10.0)
_ids = itertools.count()


def tuple_json(doc: str, user: str) -> dict[str, Any]:
    return {
        "entity": {"type": "document", "id": doc},
        "relation": "viewer",
        "subject": {"type": "user", "id": user, "relation": ""},
    }


def public_json(doc: str, value: bool) -> dict[str, Any]:
    return {
        "entity": {"type": "document", "id": doc},
        "attribute": "public",
        "value": {"@type": "type.googleapis.com/base.v1.BooleanValue", "data": value},
    }


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


class Tenant:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.id = f"watch{next(_ids)}"
        ok(client.post("/v1/tenants/create", json={"id": self.id}))
        ok(self.post("schemas/write", {"schema": SCHEMA}))

    def post(self, endpoint: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(f"/v1/tenants/{self.id}/{endpoint}", json=body)

    def write(
        self, tuples: Sequence[dict[str, Any]] = (), attributes: Sequence[dict[str, Any]] = ()
    ) -> str:
        body = {"tuples": list(tuples), "attributes": list(attributes)}
        return str(ok(self.post("data/write", body))["snap_token"])

    def delete_viewer(self, doc: str) -> str:
        body = {"filter": {"entity": {"type": "document", "ids": [doc]}, "relation": "viewer"}}
        return str(ok(self.post("relationships/delete", body))["snap_token"])


class Watch:
    """An open watch stream; ``next()`` is its next line, parsed."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> dict[str, Any]:
        line = next(self._lines)
        return dict(json.loads(line))

    def rest(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines if line]


@contextmanager
def watching(client: httpx.Client, tenant: str, snap_token: str) -> Iterator[Watch]:
    path = f"/v1/tenants/{tenant}/watch"
    with client.stream("POST", path, json={"snap_token": snap_token}, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        yield Watch(response)


def changes(line: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The line's snap token and data changes, after checking the line's shape."""
    shaped(m.WatchLine, line)
    found = line["result"]["changes"]
    return found["snap_token"], found["data_changes"]


@pytest.fixture(scope="module")
def client(module_server: Server) -> Iterator[httpx.Client]:
    with module_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def writer(module_server: Server) -> Iterator[httpx.Client]:
    """A second connection, to write while a stream is open."""
    with module_server.client() as c:
        yield c


def test_watch_sends_each_later_write_as_one_line_in_order(
    client: httpx.Client, writer: httpx.Client
) -> None:
    tenant = Tenant(writer)
    start = tenant.write([tuple_json("1", "alice")])
    written = tenant.write([tuple_json("2", "bob")], [public_json("2", True)])
    with watching(client, tenant.id, start) as watch:
        deleted = tenant.delete_viewer("1")
        first, second = watch.next(), watch.next()
    assert changes(first) == (
        written,
        [
            {"operation": "OPERATION_CREATE", "tuple": tuple_json("2", "bob")},
            {"operation": "OPERATION_CREATE", "attribute": public_json("2", True)},
        ],
    )
    assert changes(second) == (
        deleted,
        [{"operation": "OPERATION_DELETE", "tuple": tuple_json("1", "alice")}],
    )


def test_watch_from_an_empty_token_sends_only_later_writes(
    client: httpx.Client, writer: httpx.Client
) -> None:
    tenant = Tenant(writer)
    tenant.write([tuple_json("1", "alice")])
    with watching(client, tenant.id, "") as watch:
        later = tenant.write([tuple_json("2", "bob")])
        line = watch.next()
    assert changes(line) == (
        later,
        [{"operation": "OPERATION_CREATE", "tuple": tuple_json("2", "bob")}],
    )


def test_watch_resumes_after_a_token_it_sent(client: httpx.Client, writer: httpx.Client) -> None:
    tenant = Tenant(writer)
    with watching(client, tenant.id, "") as watch:
        tokens = [tenant.write([tuple_json(str(i), "alice")]) for i in range(4)]
        sent = [changes(watch.next())[0] for _ in tokens]
    assert sent == tokens
    with watching(client, tenant.id, sent[1]) as watch:
        resumed = [changes(watch.next())[0] for _ in range(2)]
    assert resumed == tokens[2:]


def test_watch_token_reads_the_data_as_of_that_write(
    client: httpx.Client, writer: httpx.Client
) -> None:
    tenant = Tenant(writer)
    with watching(client, tenant.id, "") as watch:
        tenant.write([tuple_json("1", "alice")])
        tenant.delete_viewer("1")
        granted, _ = changes(watch.next())
        revoked, _ = changes(watch.next())
    check = {
        "entity": {"type": "document", "id": "1"},
        "permission": "view",
        "subject": {"type": "user", "id": "alice"},
    }
    at_grant = ok(tenant.post("permissions/check", {**check, "metadata": {"snap_token": granted}}))
    at_revoke = ok(tenant.post("permissions/check", {**check, "metadata": {"snap_token": revoked}}))
    assert (at_grant["can"], at_revoke["can"]) == (m.CHECK_ALLOWED, m.CHECK_DENIED)


def test_watch_sends_an_attribute_upsert_as_delete_then_create(
    client: httpx.Client, writer: httpx.Client
) -> None:
    tenant = Tenant(writer)
    tenant.write(attributes=[public_json("1", True)])
    with watching(client, tenant.id, "") as watch:
        token = tenant.write(attributes=[public_json("1", False)])
        line = watch.next()
    assert changes(line) == (
        token,
        [
            {"operation": "OPERATION_DELETE", "attribute": public_json("1", True)},
            {"operation": "OPERATION_CREATE", "attribute": public_json("1", False)},
        ],
    )


@pytest.mark.parametrize(
    ("tenant", "token", "status", "reason"),
    [
        pytest.param("", "not a token", 400, "ERROR_CODE_INVALID_CONTINUOUS_TOKEN", id="bad_token"),
        pytest.param("no-such-tenant", "", 404, "ERROR_CODE_TENANT_NOT_FOUND", id="unknown_tenant"),
        pytest.param("bad tenant", "", 400, "ERROR_CODE_VALIDATION", id="invalid_tenant_id"),
    ],
)
def test_watch_errors_get_a_status_before_the_stream_starts(
    client: httpx.Client, writer: httpx.Client, tenant: str, token: str, status: int, reason: str
) -> None:
    tenant = tenant or Tenant(writer).id
    path = f"/v1/tenants/{tenant}/watch"
    with client.stream("POST", path, json={"snap_token": token}, timeout=TIMEOUT) as response:
        response.read()
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = shaped(m.ErrorResponse, response.json())
    assert body["details"][0]["reason"] == reason
    if token:
        assert body["message"].startswith("snap_token: ")


def test_watch_token_of_another_tenant_is_rejected(
    client: httpx.Client, writer: httpx.Client
) -> None:
    one, other = Tenant(writer), Tenant(writer)
    token = other.write([tuple_json("1", "alice")])
    one.write([tuple_json("1", "bob")])
    path = f"/v1/tenants/{one.id}/watch"
    with client.stream("POST", path, json={"snap_token": token}, timeout=TIMEOUT) as response:
        if response.status_code == 200:  # a token may happen to decode: it must leak nothing
            lines = []
            one.write([tuple_json("2", "bob")])
            lines.append(json.loads(next(response.iter_lines())))
            data_changes = changes(lines[0])[1]
            assert all(c["tuple"]["subject"]["id"] == "bob" for c in data_changes)
        else:
            response.read()
            assert response.status_code == 400, response.text


def test_watch_ends_with_an_error_line_when_its_tenant_is_deleted(
    client: httpx.Client, writer: httpx.Client
) -> None:
    tenant = Tenant(writer)
    with watching(client, tenant.id, "") as watch:
        tenant.write([tuple_json("1", "alice")])
        changes(watch.next())
        ok(writer.delete(f"/v1/tenants/{tenant.id}"))
        rest = watch.rest()
    assert len(rest) == 1, rest
    error = rest[0]["error"]
    assert error["http_code"] == 404
    assert error["details"][0]["reason"] == "ERROR_CODE_TENANT_NOT_FOUND"


WATCH_ROUTE = "/v1/tenants/{tenant_id}/watch"


def test_watch_client_leaving_is_no_error(
    start_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server()  # its own, so that no other stream ends meanwhile
    with server.client() as client, server.client() as writer:
        tenant = Tenant(writer)
        before = finished_requests(writer, WATCH_ROUTE)
        with caplog.at_level(logging.ERROR, logger="stonetown"):
            with watching(client, tenant.id, "") as watch:
                tenant.write([tuple_json("1", "alice")])
                changes(watch.next())
            tenant.write([tuple_json("2", "alice")])  # wakes the watcher: nobody is there
            deadline = time.monotonic() + 10
            finished = sum(before.values())
            while sum(finished_requests(writer, WATCH_ROUTE).values()) == finished:
                assert time.monotonic() < deadline, "the watch never noticed its client left"
                time.sleep(0.02)
        after = finished_requests(writer, WATCH_ROUTE)
    assert after.get("200", 0) - before.get("200", 0) == 1, after
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_watch_stream_ends_cleanly_when_the_server_shuts_down(
    stoppable_server: Callable[..., tuple[Server, Callable[[], None]]],
) -> None:
    server, stop = stoppable_server(shutdown_timeout=20.0, watch_poll_seconds=30.0)
    with server.client() as writer, server.client() as client:
        tenant = Tenant(writer)
        with watching(client, tenant.id, "") as watch:
            token = tenant.write([tuple_json("1", "alice")])
            assert changes(watch.next())[0] == token
            stopper = threading.Thread(target=stop)
            started = time.monotonic()
            stopper.start()
            rest = watch.rest()  # returns only once the server has ended the response cleanly
            elapsed = time.monotonic() - started
        stopper.join(30)
    assert rest == []
    assert elapsed < 10, f"the stream held the shutdown for {elapsed:.1f}s"
    assert not stopper.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=5)
