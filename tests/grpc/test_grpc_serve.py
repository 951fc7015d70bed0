"""`stonetown serve`'s gRPC port: the setting, and a port in use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from api.config import Config
from api.grpc.server import grpc_port_of
from tests.api.served import STONETOWN, environ
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


def test_a_grpc_port_in_use_fails_clearly(server: Server, tmp_path: Path) -> None:
    """Another server's gRPC port is refused (gRPC's default SO_REUSEPORT would share it)."""
    taken = server.grpc_address.rpartition(":")[2]
    second = subprocess.run(
        [STONETOWN, "serve", "--port", "0", "--grpc-port", taken, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ(),
        check=False,
    )
    assert second.returncode == 1, second.stderr
    assert second.stdout == ""
    assert f"cannot listen on 127.0.0.1:{taken} (gRPC)" in second.stderr
    assert "Traceback" not in second.stderr
