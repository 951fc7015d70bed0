"""One `stonetown serve` subprocess per test session (per xdist worker), serving HTTP and gRPC
with a preshared key and one stream slot, and a grpcio client for it.

Every test works in a tenant of its own, so the tests share the server without seeing each
other's data.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from google.protobuf.message import Message

from api.grpc.generated.base.v1 import service_pb2 as pb
from tests.api.served import Served, launch_server

KEY = "grpc-test-key"
R = TypeVar("R", bound=Message)
_GRPC_LINE = re.compile(r"gRPC serving on 127\.0\.0\.1:(\d+)")
_tenants = itertools.count(1)


@dataclass
class Server:
    served: Served
    grpc_address: str

    @property
    def http_url(self) -> str:
        return self.served.url


class Client:
    """Permify's methods by name over one grpcio channel, the key sent as the SDKs send it."""

    def __init__(self, channel: grpc.Channel, key: str | None = KEY) -> None:
        self.channel = channel
        self.metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()

    def call(self, method: str, request: Message, response: type[R]) -> R:
        """``method`` as ``Service/Method``, e.g. ``Permission/Check``."""
        rpc = self.channel.unary_unary(
            f"/base.v1.{method}",
            request_serializer=_serialize,
            response_deserializer=response.FromString,
        )
        result: R = rpc(request, metadata=self.metadata, timeout=30)
        return result

    def stream(self, method: str, request: Message, response: type[R]) -> Any:
        """A server stream's iterator (a grpc.Call too: ``cancel()`` ends it)."""
        rpc = self.channel.unary_stream(
            f"/base.v1.{method}",
            request_serializer=_serialize,
            response_deserializer=response.FromString,
        )
        return rpc(request, metadata=self.metadata, timeout=30)

    def tenant(self) -> str:
        """A new tenant, for one test's data."""
        tenant = f"g{next(_tenants)}"
        self.call(
            "Tenancy/Create",
            pb.TenantCreateRequest(id=tenant, name=tenant),
            pb.TenantCreateResponse,
        )
        return tenant


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("grpc") / "data"
    served = launch_server(
        data_dir,
        "--preshared-key",
        KEY,
        env={
            "STONETOWN_MAX_STREAMS": "1",
            # A cancelled watch frees its slot when it next wakes: soon, here.
            "STONETOWN_WATCH_POLL_SECONDS": "0.1",
            "STONETOWN_ACCESS_LOG": "false",
        },
    )
    try:
        found = _GRPC_LINE.search(served.log())
        assert found, f"no gRPC address in the log:\n{served.log()}"
        yield Server(served, f"127.0.0.1:{found[1]}")
    finally:
        # Stopping also stops gRPC (with whatever streams the tests left open) and must be clean.
        assert served.stop() == 0, served.log()
        if served.proc.stdout is not None:
            served.proc.stdout.close()
        assert "Traceback" not in served.log()


@pytest.fixture(scope="session")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_address) as opened:
        yield opened


@pytest.fixture(scope="session")
def client(channel: grpc.Channel) -> Client:
    return Client(channel)


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as opened:
        yield opened


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def wait_for_no_streams(http: httpx.Client) -> None:
    """Until no stream holds the server's one stream slot: a cancelled watch frees it when the
    server next looks (within watch_poll_seconds)."""
    for _ in range(300):
        text = http.get("/metrics").text
        found = re.search(r"^stonetown_streams_open (\S+)$", text, re.MULTILINE)
        assert found is not None
        if float(found[1]) == 0:
            return
        time.sleep(0.01)
    raise AssertionError("a stream is still open after 3 s")
