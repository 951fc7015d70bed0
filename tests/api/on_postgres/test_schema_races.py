"""Partial schema writes through two servers on one database: each is a read-modify-write of
the head, conditional on the head it read, so none is lost when replicas race."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.api.conftest import Server

BASE = "entity user {}\nentity doc {\n    relation owner @user\n}\n"
EDITS = 12  # per server


def test_racing_partial_writes_through_two_replicas_all_land(
    start_server: Callable[..., Server],
) -> None:
    a, b = start_server(), start_server()  # two apps, one database, no lock in common
    with a.client() as ca, b.client() as cb:
        ca.post("/v1/tenants/t1/schemas/write", json={"schema": BASE}).raise_for_status()

        def add(which: int) -> int:
            client = ca if which % 2 else cb
            response = client.patch(
                "/v1/tenants/t1/schemas/partial-write",
                json={
                    "metadata": {"schema_version": ""},
                    "partials": {"doc": {"write": [f"relation r{which} @user"]}},
                },
            )
            return response.status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(add, range(2 * EDITS)))
        assert statuses == [200] * (2 * EDITS)
        text = cb.post("/v1/tenants/t1/schemas/read", json={}).json()
        schema = str(text)
        missing = [i for i in range(2 * EDITS) if f"r{i}" not in schema]
        assert not missing, f"partial writes lost: {missing}"
        listed = ca.post("/v1/tenants/t1/schemas/list", json={"page_size": 100}).json()
        assert len(listed["schemas"]) == 1 + 2 * EDITS
