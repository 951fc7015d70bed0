"""gRPC bench: a unary Permission.Check over gRPC against the same check over HTTP, one server,
same run.

The server is ``stonetown serve`` itself (a subprocess on a fresh LevelDB in a temporary
directory, access log off, every other setting the default), which serves HTTP and gRPC from one
event loop, so both protocols are measured on the same process, caches and data. Data and
questions are the HTTP bench's (``bench/http_bench.py``: a Google-Docs-like model of about
19,000 tuples written through ``/data/write``; 10,000 fixed (document, user) questions, about
half allowed, cycled, so after the first pass most answers come from the check cache).

Beside them, the same gRPC load against a bare ``grpc.aio`` server (this script, ``--serve-bare``:
one generic handler that returns a fixed answer, no parsing, in its own process on the server's
CPU): what a call costs ``grpc.aio`` itself, client and server, so the gRPC figure can be read
as a share of it, as the HTTP bench reads its figure against a bare aiohttp echo.

Load: one client process, ``--concurrency`` requests in flight. HTTP uses the HTTP bench's raw
asyncio HTTP/1.1 client (``--concurrency`` keep-alive connections); gRPC uses ``grpc.aio`` on one
channel (HTTP/2, ``--concurrency`` concurrent calls), requests serialized beforehand and answers
read from their first bytes, so the client costs as little as it can. With two or more CPUs the
server runs on CPU 0 and the client on CPU 1 (``--no-pin`` leaves it to the OS); the client's CPU
time is reported, since a client near 100% of its core limits what it measures. Each round runs
HTTP and gRPC, then the bare server: ``--warmup`` seconds, then ``--duration`` seconds measured;
req/s is the answers completed inside that window over its length, latency is per call
(p50/p99, nearest rank). Before the rounds every question is asked once over gRPC, so both
protocols meet the same warm caches; rounds alternate which protocol goes first. Every answer
is checked against the expected one; a wrong answer or a failed call is an error.

    .venv/bin/python bench/grpc_bench.py [--concurrency 32] [--duration 8] [--warmup 2]
        [--rounds 2] [--no-pin] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from api.grpc.generated.base.v1 import base_pb2 as base
from api.grpc.generated.base.v1 import service_pb2 as pb
from bench.harness import Server, percentiles_ms, pin_cpus, progress, stop
from bench.http_bench import (
    CHECK_DEPTH,
    TENANT,
    _run_load,
    generate,
    load_data,
    questions,
    write_files,
)

STONETOWN = Path(sys.executable).parent / "stonetown"
READY = re.compile(r"stonetown serving on http://127\.0\.0\.1:(\d+) ")
GRPC_LINE = re.compile(r"gRPC serving on 127\.0\.0\.1:(\d+)")
#: The first bytes of an answer: field 1 (can), varint ALLOWED (1) or DENIED (2).
ALLOWED_PREFIX = bytes([0x08, base.CHECK_RESULT_ALLOWED])


def start_server(data_dir: Path, cpu: int | None) -> tuple[Server, str, subprocess.Popen[str]]:
    """``stonetown serve`` on free ports: (its HTTP side as a harness Server, the gRPC
    address, the process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    env["STONETOWN_ACCESS_LOG"] = "false"
    log = data_dir.parent / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(STONETOWN), "serve", "--port", "0", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            # Pinned before the server starts any thread.
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,  # noqa: PLW1509
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found, grpc_found = READY.match(line), GRPC_LINE.search(log.read_text())
    if found is None or grpc_found is None:
        stop(proc, 15, 10)
        raise RuntimeError(f"stonetown serve did not start: {line!r}\n{log.read_text()}")
    return Server("stonetown", proc, int(found[1])), f"127.0.0.1:{grpc_found[1]}", proc


def start_bare(cpu: int | None) -> tuple[str, subprocess.Popen[str]]:
    """This script's bare gRPC server (``--serve-bare``): its address and process."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare"],
        stdout=subprocess.PIPE,
        text=True,
        # Pinned before the server starts any thread.
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,  # noqa: PLW1509
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        stop(proc, 15, 10)
        raise RuntimeError(f"the bare gRPC server did not start (said {line!r})")
    return f"127.0.0.1:{line.split()[1]}", proc


async def _serve_bare() -> None:
    """A grpc.aio server whose one method answers every call with the same allowed check."""
    answer = pb.PermissionCheckResponse(can=base.CHECK_RESULT_ALLOWED).SerializeToString()

    async def check(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return answer

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        check, request_deserializer=_same, response_serializer=_same
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("base.v1.Permission", {"Check": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ready {port}", flush=True)
    await server.wait_for_termination()


def _grpc_request(doc: str, user: str) -> bytes:
    return pb.PermissionCheckRequest(
        tenant_id=TENANT,
        metadata=pb.PermissionCheckRequestMetadata(depth=CHECK_DEPTH),
        entity=base.Entity(type="document", id=doc),
        permission="view",
        subject=base.Subject(type="user", id=user),
    ).SerializeToString()


def _same(data: bytes) -> bytes:
    return data


async def _grpc_load(
    address: str,
    requests: list[bytes],
    expected: bytes,
    *,
    offset: int,
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    latencies: list[int] = []
    failed = wrong = 0
    next_index = offset
    async with grpc.aio.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/base.v1.Permission/Check", request_serializer=_same, response_deserializer=_same
        )
        await check(requests[0])  # the connection is up before the clock starts
        cpu0 = time.process_time()
        start = time.perf_counter_ns()
        deadline = start + int(seconds * 1e9)

        async def worker() -> None:
            nonlocal next_index, failed, wrong
            while True:
                i = next_index
                next_index += 1
                sent = time.perf_counter_ns()
                try:
                    answer = await check(requests[i % len(requests)])
                except grpc.aio.AioRpcError:
                    failed += 1
                    answer = b""
                now = time.perf_counter_ns()
                if now > deadline:
                    return
                latencies.append(now - sent)
                if (
                    expected
                    and answer
                    and answer.startswith(ALLOWED_PREFIX)
                    != (expected[i % len(requests)] == ord("1"))
                ):
                    wrong += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = time.process_time() - cpu0
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "seconds": seconds,
        "latency_ms": percentiles_ms(lat),
        "failed": failed,
        "wrong": wrong,
        "next_index": next_index,
        "client_cpu_s": round(cpu, 3),
    }


async def _ask_all(address: str, requests: list[bytes], expected: bytes, concurrency: int) -> int:
    """Every question once over gRPC (so both protocols then meet warm caches); wrong answers."""
    wrong = 0
    gate = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/base.v1.Permission/Check", request_serializer=_same, response_deserializer=_same
        )

        async def ask(i: int) -> None:
            nonlocal wrong
            async with gate:
                answer = await check(requests[i])
            wrong += answer.startswith(ALLOWED_PREFIX) != (expected[i] == ord("1"))

        await asyncio.gather(*(ask(i) for i in range(len(requests))))
    return wrong


def _summary(run: dict[str, Any], server_cpu_s: float) -> dict[str, Any]:
    return {
        "req_s": round(run["requests"] / run["seconds"]),
        "p50_ms": run["latency_ms"]["p50"],
        "p99_ms": run["latency_ms"]["p99"],
        "errors": run.get("failed", 0) + run.get("non_2xx", 0) + run.get("socket_errors", 0),
        "wrong": run["wrong"],
        "server_cpu": round(server_cpu_s / run["seconds"], 2),
        "client_cpu": round(run["client_cpu_s"] / run["seconds"], 2),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server_cpu, _ = pin_cpus(args.no_pin)
    progress("generating the dataset and the questions")
    ds = generate(args.seed, 1000, 100, 200, 5000)
    cycle = questions(ds, random.Random(args.seed + 1), 10_000)
    _, bodies, expected = write_files(workdir, "cycle", cycle, ds)
    requests = [_grpc_request(doc, user) for doc, user in cycle]
    bare_address, bare = start_bare(server_cpu)
    srv, address, proc = start_server(workdir / "data", server_cpu)
    result: dict[str, Any] = {"bench": "grpc", "concurrency": args.concurrency, "rounds": []}
    try:
        progress(f"loading {len(ds.tuples):,} tuples through /data/write")
        result["load"] = load_data(srv, ds)
        progress(f"first pass: each of the {len(requests):,} questions once, answers checked")
        result["first_pass_wrong"] = asyncio.run(
            _ask_all(address, requests, expected, args.concurrency)
        )
        offsets = {"http": 0, "grpc": 0, "bare": 0}
        for round_no in range(args.rounds):
            measured: dict[str, Any] = {}
            # Odd rounds ask gRPC first, so that neither protocol always follows the other.
            order = ("http", "grpc") if round_no % 2 == 0 else ("grpc", "http")
            for kind in (*order, "bare"):
                for phase, seconds in (("warm-up", args.warmup), ("run", args.duration)):
                    progress(f"round {round_no + 1}: {kind} {phase} ({seconds:g} s)")
                    cpu_of = srv.cpu_s if kind != "bare" else Server("bare", bare, 0).cpu_s
                    cpu0 = cpu_of()
                    if kind == "http":
                        out = asyncio.run(
                            _run_load(
                                "127.0.0.1",
                                srv.port,
                                bodies,
                                expected,
                                offset=offsets[kind],
                                seconds=seconds,
                                concurrency=args.concurrency,
                            )
                        )
                    else:
                        out = asyncio.run(
                            _grpc_load(
                                address if kind == "grpc" else bare_address,
                                requests,
                                expected if kind == "grpc" else b"",  # bare: always allowed
                                offset=offsets[kind],
                                seconds=seconds,
                                concurrency=args.concurrency,
                            )
                        )
                    offsets[kind] = out["next_index"]
                    if phase == "run":
                        measured[kind] = _summary(out, cpu_of() - cpu0)
            measured["grpc_over_http"] = round(
                measured["grpc"]["req_s"] / max(1, measured["http"]["req_s"]), 2
            )
            measured["grpc_over_bare"] = round(
                measured["grpc"]["req_s"] / max(1, measured["bare"]["req_s"]), 2
            )
            result["rounds"].append(measured)
    finally:
        stop(proc, 15, 30)
        stop(bare, 15, 10)
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"check over gRPC vs HTTP, one stonetown serve, {result['concurrency']} in flight",
        "| round | protocol | req/s | p50 | p99 | errors | wrong | server CPU | client CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, measured in enumerate(result["rounds"], 1):
        for kind in ("http", "grpc", "bare"):
            m = measured[kind]
            lines.append(
                f"| {n} | {kind} | {m['req_s']:,} | {m['p50_ms']} ms | {m['p99_ms']} ms | "
                f"{m['errors']} | {m['wrong']} | {m['server_cpu']} | {m['client_cpu']} |"
            )
        lines.append(f"| {n} | gRPC/HTTP req/s | {measured['grpc_over_http']} | | | | | | |")
        lines.append(f"| {n} | gRPC/bare req/s | {measured['grpc_over_bare']} | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--rounds", type=int, default=2, help="HTTP-then-gRPC rounds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="leave CPUs to the OS")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(_serve_bare())
        return
    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        result = run(args, Path(tmp))
    print(json.dumps(result) if args.json else report(result))


if __name__ == "__main__":
    main()
