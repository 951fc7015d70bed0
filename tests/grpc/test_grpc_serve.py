"""The gRPC port: which one `stonetown serve` takes, and a port in use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.app import create_app, make_runner
from api.config import Config
from api.grpc.server import grpc_port_of, start_grpc
from tests.grpc.conftest import Server


@pytest.mark.parametrize(
    ("config", "port"),
    [
        (Config(), 3478),
        (Config(grpc_port=0), None),
        (Config(port=0), 0),  # a free HTTP port: a free gRPC port too
        (Config(port=0, grpc_port=5000), 5000),
        (Config(port=0, grpc_port=0), None),
    ],
    ids=["default", "disabled", "free-port", "free-http-given-grpc", "free-http-no-grpc"],
)
def test_the_grpc_port_serve_listens_on(config: Config, port: int | None) -> None:
    assert grpc_port_of(config) == port


def test_a_grpc_port_in_use_is_refused(server: Server, tmp_path: Path) -> None:
    """Another server's gRPC port is refused, as serve reports it (gRPC's default
    SO_REUSEPORT would bind it and share its calls)."""
    taken = int(server.grpc_address.rpartition(":")[2])

    async def start_on_the_taken_port() -> None:
        runner = make_runner(create_app(Config(data_dir=str(tmp_path), access_log=False)))
        await runner.setup()
        try:
            await start_grpc(runner.app, "127.0.0.1", taken)
        finally:
            await runner.cleanup()

    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken} \\(gRPC\\)"):
        asyncio.run(start_on_the_taken_port())
