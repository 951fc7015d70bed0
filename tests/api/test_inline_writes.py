"""Data writes made on the event loop (small ones, when the store can make them at once) and in
worker threads (the rest): ``inline_write_items`` only moves work, never changes it, and a write
that would wait for the store never waits on the event loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.services import SERVICES
from storage.base import Changes, SnapshotReader
from tests.api.conftest import Server
from tests.api.support import tuple_json

SCHEMA = """
entity user {}
entity doc {
    relation viewer @user
    permission view = viewer
}
"""
BASE = "/v1/tenants/t1"


def _viewers(doc: str, count: int) -> list[dict[str, Any]]:
    return [tuple_json(f"doc:{doc}#viewer@user:u{i}") for i in range(count)]


def _can(client: httpx.Client, doc: str, user: str, token: str = "") -> str:
    response = client.post(
        f"{BASE}/permissions/check",
        json={
            "metadata": {"snap_token": token},
            "entity": {"type": "doc", "id": doc},
            "permission": "view",
            "subject": {"type": "user", "id": user},
        },
    )
    assert response.status_code == 200, response.text
    can: str = response.json()["can"]
    return can


@pytest.mark.parametrize("inline", [0, 16], ids=["threads-only", "default"])
def test_inline_writes_never_change_what_is_written(
    start_server: Callable[..., Server], inline: int
) -> None:
    server = start_server(inline_write_items=inline)
    with server.client() as client:
        client.post(f"{BASE}/schemas/write", json={"schema": SCHEMA}).raise_for_status()
        for doc, count in (("a", 1), ("b", 16), ("c", 17), ("d", 200)):
            answer = client.post(f"{BASE}/data/write", json={"tuples": _viewers(doc, count)})
            assert answer.status_code == 200, answer.text
            token = answer.json()["snap_token"]
            assert _can(client, doc, f"u{count - 1}", token) == "CHECK_RESULT_ALLOWED"
            assert _can(client, doc, f"u{count}", token) == "CHECK_RESULT_DENIED"
        # A tuple the schema refuses is a 400 naming it, inline or not; nothing is written.
        bad = client.post(
            f"{BASE}/data/write",
            json={"tuples": [*_viewers("e", 2), tuple_json("doc:e#owner@user:u9")]},
        )
        assert bad.status_code == 400, bad.text
        assert "tuples[2]" in bad.text
        assert _can(client, "e", "u0") == "CHECK_RESULT_DENIED"


def test_a_small_write_that_would_wait_for_the_store_waits_in_a_thread(
    start_server: Callable[..., Server],
) -> None:
    """While another write holds the store, a small data write goes to a worker thread: the
    event loop keeps answering, and the write lands once the store is free."""
    server = start_server()
    store = server.app[SERVICES].store
    holding, release = threading.Event(), threading.Event()

    def hold(reader: SnapshotReader) -> Changes:
        holding.set()
        assert release.wait(30)
        return Changes()

    with server.client() as client:
        client.post(f"{BASE}/schemas/write", json={"schema": SCHEMA}).raise_for_status()
        _can(client, "a", "u0")  # the schema version is compiled: the write may go inline
        holder = threading.Thread(target=store.transact, args=("t1", hold))
        holder.start()
        answers: list[httpx.Response] = []
        try:
            assert holding.wait(10)

            def post_write() -> None:
                with server.client() as own:  # a client of its own thread
                    answers.append(
                        own.post(f"{BASE}/data/write", json={"tuples": _viewers("a", 1)})
                    )

            writer = threading.Thread(target=post_write)
            writer.start()
            writer.join(0.5)
            assert not answers  # waiting for the store...
            assert _can(client, "b", "u0") == "CHECK_RESULT_DENIED"  # ...but not on the loop
            health = client.get("/healthz")
            assert health.status_code == 200, health.text
            assert not answers
        finally:
            release.set()
            holder.join(10)
        writer.join(10)
        assert len(answers) == 1 and answers[0].status_code == 200, answers
        token = answers[0].json()["snap_token"]
        assert _can(client, "a", "u0", token) == "CHECK_RESULT_ALLOWED"
