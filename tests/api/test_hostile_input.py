"""Hostile rule bodies, rule calls, schema texts and request bodies cannot crash, freeze or
break the server.

Each case runs against `stonetown serve` as a subprocess (a crash of the server would otherwise
take the test run with it), with a watcher asking ``/healthz`` every 20 ms the whole time: the
server must stay up and answer it in under 100 ms while the hostile request is in flight.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dsl.rule_cost import (
    MAX_COMPREHENSIONS,
    MAX_RULE_BODY,
    MAX_RULE_NESTING,
    RULE_STEP_BUDGET,
)
from storage.leveldb import LevelDBStore
from tests.api.served import HealthWatch, Served, launch_server

HEALTHY_SECONDS = 0.1

SCHEMA = """
entity user {}
entity doc {
    relation viewer @user
    attribute tags string[]
    permission view = viewer
    permission tagged = fits(tags)
    permission pairs = distinct(tags)
    permission scan = listed(tags)
}
rule fits(tags string[]) { tags.exists(t, t == context.data.wanted) }
rule distinct(tags string[]) {
    context.data.items.all(a, context.data.items.all(b, a != b || true))
}
rule listed(tags string[]) { context.data.items.exists(x, x == -1) }
"""


@contextmanager
def watched(served: Served) -> Iterator[HealthWatch]:
    """The server stays up and ``/healthz`` stays fast for the whole block."""
    watch = HealthWatch(served.url, served.proc.pid)
    watch.start()
    try:
        yield watch
        slowest = watch.settle()
    finally:
        watch.stop()
    assert served.proc.poll() is None, f"the server died:\n{served.log()}"
    assert not watch.failures, watch.failures
    assert slowest < HEALTHY_SECONDS, f"/healthz took {slowest:.3f} s"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module (each test works in a tenant of its own)."""
    server = launch_server(tmp_path_factory.mktemp("hostile") / "data")
    yield server
    alive = server.proc.poll() is None
    if alive:
        server.stop()
    assert server.proc.stdout is not None
    server.proc.stdout.close()
    assert alive, f"the server died:\n{server.log()}"


@pytest.fixture
def client(served: Served, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client whose requests go to a new tenant, named after the test."""
    tenant = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    with httpx.Client(base_url=f"{served.url}/v1/tenants/{tenant}/", timeout=30) as client:
        created = httpx.post(
            f"{served.url}/v1/tenants/create", json={"id": tenant, "name": tenant}, timeout=30
        )
        assert created.status_code == 200, created.text
        yield client


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, json=body)


def _rule_schema(body: str) -> str:
    return f"entity user {{}}\nrule r(x integer) {{\n{body}\n}}\n"


def _messages(response: httpx.Response) -> str:
    return str(response.json())


def _check(client: httpx.Client, permission: str, data: dict[str, Any]) -> httpx.Response:
    return _post(
        client,
        "permissions/check",
        {
            "entity": {"type": "doc", "id": "1"},
            "permission": permission,
            "subject": {"type": "user", "id": "u"},
            "context": {"data": data},
        },
    )


def _setup(client: httpx.Client) -> None:
    assert _post(client, "schemas/write", {"schema": SCHEMA}).status_code == 200
    written = _post(
        client,
        "data/write",
        {
            "attributes": [
                {
                    "entity": {"type": "doc", "id": "1"},
                    "attribute": "tags",
                    "value": {"@type": "type.googleapis.com/base.v1.StringArrayValue",
                              "data": ["a", "b"]},
                }
            ]
        },
    )
    assert written.status_code == 200, written.text


def test_a_rule_body_that_crashed_the_cel_parser_is_a_schema_error(
    served: Served, client: httpx.Client
) -> None:
    # ~14,000 chained additions overflowed the CEL library's parser stack (SIGSEGV).
    body = "0\n" + "+ 1\n" * 14_000 + "> 0"
    with watched(served):
        response = _post(client, "schemas/write", {"schema": _rule_schema(body)})
    assert response.status_code == 400
    assert f"2:20: rule body is longer than {MAX_RULE_BODY} characters" in _messages(response)


def test_a_deeply_chained_rule_within_the_size_limit_is_refused_at_its_position(
    served: Served, client: httpx.Client
) -> None:
    body = "0" + " + 1" * (MAX_RULE_NESTING + 5) + " > 0"
    with watched(served):
        response = _post(client, "schemas/write", {"schema": _rule_schema(body)})
    assert response.status_code == 400
    assert f"at most {MAX_RULE_NESTING} are allowed" in _messages(response)


def _nested(levels: int, over: str) -> str:
    body = "true"
    for level in range(levels):
        body = f"{over}.all(v{level}, {body})"
    return body


def test_nested_comprehensions_are_refused_when_written(
    served: Served, client: httpx.Client
) -> None:
    # 400 bytes that took the library 43 s to run once: 8 nested loops over 10 elements.
    ten = str(list(range(10)))
    hundred = str(list(range(100)))
    with watched(served):
        deep = _post(client, "schemas/write", {"schema": _rule_schema(_nested(8, ten))})
        # Three loops over 100 elements: a million steps.
        costly = _post(client, "schemas/write", {"schema": _rule_schema(_nested(3, hundred))})
    assert deep.status_code == 400
    assert f"nests comprehensions more than {MAX_COMPREHENSIONS} deep" in _messages(deep)
    assert costly.status_code == 400
    assert "rule body is too expensive" in _messages(costly)


def test_a_rule_call_over_the_step_budget_is_a_400_not_a_freeze(
    served: Served, client: httpx.Client
) -> None:
    items = list(range(5_000))  # quadratic: 25 million steps, far over the budget
    _setup(client)
    with watched(served):
        response = _check(client, "pairs", {"items": items})
    assert response.status_code == 400, response.text
    assert "over the budget" in response.json()["message"]
    assert f"{RULE_STEP_BUDGET:,}" in response.json()["message"]


def test_rule_calls_at_the_budget_leave_the_event_loop_free(
    served: Served, client: httpx.Client
) -> None:
    # A linear scan priced just under the budget: each call runs, on a worker thread, for as
    # long as any call may; a stream of them must not slow /healthz.
    items = list(range(RULE_STEP_BUDGET // 20))
    _setup(client)
    with watched(served) as watcher:
        deadline = time.monotonic() + 1.5
        answered = 0
        while time.monotonic() < deadline:
            response = _check(client, "scan", {"items": items})
            assert response.status_code == 200, response.text
            assert response.json()["can"] == "CHECK_RESULT_DENIED"
            answered += 1
    assert answered > 1
    assert watcher.answers > 10


def test_a_large_context_costs_nothing_to_a_rule_that_does_not_read_it(
    served: Served, client: httpx.Client
) -> None:
    # Only the context.data keys a body names are handed to the library.
    unread = {"wanted": "b", "noise": list(range(20_000))}  # 200,000 steps to bind
    _setup(client)
    response = _check(client, "tagged", unread)
    assert response.status_code == 200, response.text
    assert response.json()["can"] == "CHECK_RESULT_ALLOWED"


def test_a_stored_schema_with_a_hostile_rule_is_a_clear_error_until_replaced(
    tmp_path: Path, launch: Callable[..., Served]
) -> None:
    # A schema stored before the limits existed never reaches the CEL library: every use of it
    # is a 4xx naming the limit, the server stays up, and writing a new schema mends the tenant.
    hostile = "0\n" + "+ 1\n" * 14_000 + "> 0"
    text = (
        "entity user {}\n"
        "entity doc {\n"
        "    relation viewer @user\n"
        "    permission view = viewer\n"
        "    permission odd = r(n)\n"
        "    attribute n integer\n"
        "}\n"
        f"rule r(n integer) {{ {hostile} }}\n"
    )
    store = LevelDBStore(str(tmp_path / "data"))
    try:
        store.write_schema("t1", text)
    finally:
        store.close()
    served = launch("data")
    with watched(served), httpx.Client(base_url=f"{served.url}/v1/tenants/t1/") as client:
        refused = [_check(client, "view", {}), _check(client, "odd", {})]
        mended = _post(client, "schemas/write", {"schema": SCHEMA})
        view = _check(client, "view", {})
    for response in refused:
        assert 400 <= response.status_code < 500, response.text
        assert f"rule body is longer than {MAX_RULE_BODY} characters" in response.text
    assert mended.status_code == 200, mended.text
    assert view.status_code == 200, view.text
    assert view.json()["can"] == "CHECK_RESULT_DENIED"


def test_a_body_of_too_many_values_is_a_413_before_it_is_validated(
    served: Served, client: httpx.Client
) -> None:
    # 30,000 contextual tuples (3 MB): validating them held the GIL for 0.44 s, and /healthz
    # waited 1.5 s behind a check carrying them.
    tuples = [
        {
            "entity": {"type": "doc", "id": str(i)},
            "relation": "viewer",
            "subject": {"type": "user", "id": str(i)},
        }
        for i in range(30_000)
    ]
    check = {
        "entity": {"type": "doc", "id": "1"},
        "permission": "view",
        "subject": {"type": "user", "id": "u"},
        "context": {"tuples": tuples},
    }
    # Encoded once, here: the watcher shares this process, and encoding 3 MB holds its GIL.
    body = json.dumps(check).encode()
    _setup(client)
    with watched(served):
        for _ in range(3):
            refused = client.post(
                "permissions/check",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 413, refused.text
            assert "more than 25,000 JSON values" in refused.json()["message"]
    # A full write (1,000 tuples, the most one write may hold) is well within it.
    written = _post(client, "data/write", {"tuples": tuples[:1000]})
    assert written.status_code == 200, written.text


def test_a_schema_of_nested_parentheses_does_not_stall_the_event_loop(
    served: Served, client: httpx.Client
) -> None:
    # The compiled parser shifted 250,000 `(` in one call holding the GIL for 0.26 s.
    depth = 250_000
    text = (
        "entity user {}\nentity doc {\n    relation viewer @user\n    permission view = "
        + "(" * depth + "viewer" + ")" * depth + "\n}\n"
    )
    body = json.dumps({"schema": text}).encode()
    with watched(served):
        written = client.post(
            "schemas/write",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert written.status_code in (200, 400), written.text
