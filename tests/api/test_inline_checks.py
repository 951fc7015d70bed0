"""Checks answered on the event loop (small ones) and in worker threads (the rest) give the same
answers: the server's ``inline_dispatches`` only moves work, never changes it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import Server
from tests.api.support import tuple_json

SCHEMA = """
entity user {}
entity group { relation member @user @group#member }
entity doc {
    relation viewer @user @group#member
    relation owner @user
    permission view = viewer or owner
}
"""
CHAIN = [f"group:g{i}#member@group:g{i + 1}#member" for i in range(7)] + [
    "group:g7#member@user:ann",
    "doc:1#viewer@group:g0#member",
    "doc:2#owner@user:bob",
]


@pytest.mark.parametrize("inline", [0, 1, 64], ids=["threads-only", "tiny-budget", "default"])
def test_inline_budget_never_changes_answers(
    start_server: Callable[..., Server], inline: int
) -> None:
    server = start_server(inline_dispatches=inline)
    with server.client() as client:
        base = "/v1/tenants/t1"
        client.post(f"{base}/schemas/write", json={"schema": SCHEMA}).raise_for_status()
        token = client.post(
            f"{base}/data/write", json={"tuples": [tuple_json(t) for t in CHAIN]}
        ).json()["snap_token"]
        cases = [("1", "ann", True), ("1", "bob", False), ("2", "bob", True), ("2", "ann", False)]
        for _ in range(2):  # the second round comes from the cache
            for doc, user, allowed in cases:
                response = client.post(
                    f"{base}/permissions/check",
                    json={
                        "metadata": {"snap_token": token, "depth": 20},
                        "entity": {"type": "doc", "id": doc},
                        "permission": "view",
                        "subject": {"type": "user", "id": user},
                    },
                )
                assert response.status_code == 200, response.text
                expected = "CHECK_RESULT_ALLOWED" if allowed else "CHECK_RESULT_DENIED"
                assert response.json()["can"] == expected, (doc, user)
        # A depth error is still an error, inline or not.
        shallow = client.post(
            f"{base}/permissions/check",
            json={
                "metadata": {"snap_token": token, "depth": 3},
                "entity": {"type": "doc", "id": "1"},
                "permission": "view",
                "subject": {"type": "user", "id": "zed"},
            },
        )
        assert shallow.status_code == 400, shallow.text
        assert shallow.json()["details"][0]["reason"] == "ERROR_CODE_DEPTH_NOT_ENOUGH"
