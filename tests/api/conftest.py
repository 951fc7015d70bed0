"""A real Stonetown server on 127.0.0.1 (LevelDB in a temp dir), run in a background thread
with its own event loop, and a real HTTP client talking to it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from api.app import create_app, make_runner
from api.config import Config
from api.models import Out
from tests.api.served import launch  # noqa: F401  (a fixture, shared with the suite)


@dataclass
class Server:
    url: str
    config: Config
    app: web.Application
    loop: asyncio.AbstractEventLoop

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


class _Thread:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.app = create_app(config, clock=clock)
        self.runner = make_runner(self.app)
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> Server:
        self.thread.start()
        self.ready.wait(30)
        if self.error is not None:
            raise self.error
        return Server(f"http://127.0.0.1:{self.port}", self.config, self.app, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with given Config fields (each on its own data dir), and the clock their
    API tokens are made, revoked and expire by; stopped at teardown."""
    started: list[_Thread] = []

    def start(*, clock: Callable[[], float] = time.time, **fields: Any) -> Server:
        data_dir = tmp_path / f"data{len(started)}"
        config = replace(Config(data_dir=str(data_dir), port=0, access_log=False), **fields)
        thread = _Thread(config, clock)
        started.append(thread)
        return thread.start()

    yield start
    for thread in reversed(started):
        thread.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def shaped(model: type[Out], data: Any) -> Any:
    """``data`` after checking it has exactly the response model's shape; returns it."""
    model.model_validate(data)
    return data


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a module's tests (each test works in tenants of its own)."""
    data_dir = tmp_path_factory.mktemp("module-data")
    thread = _Thread(Config(data_dir=str(data_dir), port=0, access_log=False))
    yield thread.start()
    thread.stop()


@pytest.fixture
def stoppable_server(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Callable[[], None]]]]:
    """Like ``start_server``, but also hands back a function that stops the server mid-test
    (a graceful shutdown, as in production; it returns once the server has stopped)."""
    started: list[_Thread] = []

    def start(**fields: Any) -> tuple[Server, Callable[[], None]]:
        data_dir = tmp_path / f"stoppable{len(started)}"
        config = replace(Config(data_dir=str(data_dir), port=0, access_log=False), **fields)
        thread = _Thread(config)
        started.append(thread)
        return thread.start(), thread.stop

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """The URL of a port nothing listens on, held by this test for its whole run (bound, never
    listening), so that no server of a test running alongside can be given it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"
