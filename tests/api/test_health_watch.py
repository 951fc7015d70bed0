"""The tool the hostile-input and fuzz tests watch the event loop with: it must see a held loop
and a blocked one, whatever the machine's load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import httpx
import pytest

from tests.api.served import HealthWatch

SERVER = textwrap.dedent(
    """
    import socket, sys, time
    from aiohttp import web

    async def healthz(request):
        return web.Response(text="ok")

    async def hold(request):  # computes on the event loop
        end = time.process_time() + float(request.query["s"])
        while time.process_time() < end:
            pass
        return web.Response(text="held")

    async def block(request):  # waits on the event loop without computing
        time.sleep(float(request.query["s"]))
        return web.Response(text="blocked")

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/hold", hold), web.get("/block", block)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    web.run_app(app, sock=sock, print=None)
    """
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}", proc.pid
    proc.terminate()
    proc.wait(30)
    proc.stdout.close()


def _slowest_around(server: tuple[str, int], path: str) -> float:
    url, pid = server
    watch = HealthWatch(url, pid)
    watch.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get(path).status_code == 200
        return watch.settle()
    finally:
        watch.stop()


def test_a_loop_held_by_computation_is_seen(server: tuple[str, int]) -> None:
    assert _slowest_around(server, "/hold?s=0.4") >= 0.3


def test_a_loop_blocked_without_computing_is_seen_past_the_blocked_bound(
    server: tuple[str, int],
) -> None:
    assert _slowest_around(server, f"/block?s={HealthWatch.BLOCKED_SECONDS + 0.3}") > (
        HealthWatch.BLOCKED_SECONDS
    )


def test_a_free_loop_answers_fast(server: tuple[str, int]) -> None:
    assert _slowest_around(server, "/healthz") < 0.1
