"""Fleet bench: a mixed HTTP load (80% checks, 20% writes) on LevelDB in one process and on
PostgreSQL with one and with two worker processes, in one run, each target the way `stonetown
serve` runs it in production.

Targets, each a real ``stonetown serve`` subprocess (access log off, every other setting the
default), started one after another and stopped before the next:

* **leveldb**: ``--data-dir`` in a fresh temporary directory (one process: LevelDB is
  single-process).
* **postgres-1**, **postgres-2**: ``--database-url`` with ``--workers 1`` and ``--workers 2``
  (one port, SO_REUSEPORT), each on a fresh database.

PostgreSQL is a throwaway cluster this script starts (``tests/postgres.py``: a unix socket,
``fsync``, ``synchronous_commit`` and ``full_page_writes`` off, so commits cost less than in a
durable setting, as LevelDB's default ``sync=False`` writes cost less than ``sync=True``), or the
server given by ``--database-url`` (a role that may create databases: one per target is
created there and dropped afterwards).

Data and load: ``http_bench.py``'s Google-Docs-like dataset (1,000 users, 100 groups, 200
folders, 5,000 documents by default) is written through ``/data/write`` before each target's
run. The load generator is this process: ``--concurrency`` (48) keep-alive connections, one
request in flight each; every fifth request is a write of one new tuple (a viewer on a document
id no check asks about, so every expected answer stays right), the others are checks cycling
through 10,000 (document, user) questions with known answers, without a snap token (the latest
revision). Every write moves the revision, which keys the engine's caches, so most checks are
evaluated, not answered from the cache: this measures the store, not the cache. Every answer is
compared with the expected one; a wrong answer or a non-2xx status is an error. After
``--warmup`` seconds the load runs ``--duration`` (60) seconds; req/s counts the responses
completed inside that window, and latency is send to last byte, p50/p99 by nearest rank.

On a 2-core machine the server processes, PostgreSQL and this client share both cores, so the
ratio of two workers to one is bounded by what is left for the second worker; the report gives
the CPU time of each.

    .venv/bin/python bench/fleet_bench.py [--duration 60] [--warmup 5] [--concurrency 48]
        [--targets leveldb,postgres-1,postgres-2] [--database-url URL] [--write-every 5]
        [--setting STONETOWN_WORKER_THREADS=8]... [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.harness import LoadConnection, Server, percentiles_ms, progress, stop, take_response
from bench.http_bench import SCHEMA, check_body, generate, questions

ROOT = Path(__file__).resolve().parents[1]
STONETOWN = ROOT / ".venv" / "bin" / "stonetown"
READY = re.compile(r"stonetown serving on http://127\.0\.0\.1:(\d+) ")
ALLOWED = b'"CHECK_RESULT_ALLOWED"'
WRITE_EVERY = 5  # by default every fifth request is a write: 80% checks, 20% writes
TARGETS = ("leveldb", "postgres-1", "postgres-2")


# -- the servers ---------------------------------------------------------------------------------


def _tree_cpu_s(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its children so far, from /proc."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pids += [int(child) for child in children]
    return total


@contextmanager
def serving(args: list[str], workdir: Path, settings: dict[str, str]) -> Iterator[Server]:
    """``stonetown serve --port 0 *args`` with ``settings`` (``STONETOWN_*`` variables) until
    the block ends (SIGTERM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STONETOWN_")}
    env["STONETOWN_ACCESS_LOG"] = "false"
    env.update(settings)
    log = (workdir / "serve.stderr").open("w")
    proc = subprocess.Popen(
        [str(STONETOWN), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        found = READY.match(line)
        if found is None:
            raise RuntimeError(f"stonetown serve {args} did not start: {line!r}")
        yield Server(" ".join(args), proc, int(found[1]))
    finally:
        stop(proc, signal.SIGTERM, 60)
        log.close()


class Databases:
    """Fresh databases on the PostgreSQL server of ``admin_url`` (or on a throwaway cluster)."""

    def __init__(self, admin_url: str | None) -> None:
        self.cluster: Any = None
        if admin_url is None:
            from tests.postgres import PostgresServer  # noqa: PLC0415

            self.cluster = PostgresServer().start()
            admin_url = self.cluster.url("postgres")
        self.admin_url = admin_url
        self.created: list[str] = []

    def cpu_s(self) -> float | None:
        """CPU time of the throwaway cluster's processes so far (None for a server given by
        URL, which may be elsewhere)."""
        if self.cluster is None:
            return None
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        return _tree_cpu_s(postmaster)

    def create(self) -> str:
        name = f"fleet_bench_{os.urandom(6).hex()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        url = urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))
        done = subprocess.run(
            [str(STONETOWN), "migrate", "--database-url", url],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed: {done.stderr}")
        return url

    def close(self) -> None:
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                for name in self.created:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if self.cluster is not None:
                self.cluster.destroy()


# -- the load ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    tenant: str
    checks: list[bytes]
    expected: bytes  # b"1"/b"0" per check
    users: list[str]


class _Load:
    """``connections`` keep-alive connections, one request in flight each; every
    ``write_every``-th request a write (0: none), the rest checks; latency and errors of
    responses before the deadline."""

    def __init__(self, port: int, plan: Plan, connections: int, write_every: int) -> None:
        base = f"/v1/tenants/{plan.tenant}"
        head = "POST {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n"
        self.check_head = (head.format(f"{base}/permissions/check", port)).encode()
        self.write_head = (head.format(f"{base}/data/write", port)).encode()
        self.plan = plan
        self.connections = connections
        self.write_every = write_every
        self.next = 0
        self.checks = 0
        self.deadline = 0
        self.latencies: list[int] = []
        self.write_latencies: list[int] = []
        self.writes = 0
        self.non_2xx = 0
        self.wrong = 0
        self.first_error = ""
        self.idle = 0
        self.all_idle: asyncio.Future[None] | None = None

    def request(self) -> tuple[int, bytes]:
        """(check index, or -1 for a write; the request's bytes)."""
        n = self.next
        self.next = n + 1
        if self.write_every and n % self.write_every == self.write_every - 1:
            user = self.plan.users[n % len(self.plan.users)]
            body = (
                '{"metadata":{"schema_version":""},"tuples":[{"entity":{"type":"document",'
                f'"id":"fleet-{n}"}},"relation":"viewer","subject":{{"type":"user","id":"{user}"}}}}]}}'
            ).encode()
            return -1, b"%bContent-Length: %d\r\n\r\n%b" % (self.write_head, len(body), body)
        i = self.checks
        self.checks = i + 1
        body = self.plan.checks[i % len(self.plan.checks)]
        return i, b"%bContent-Length: %d\r\n\r\n%b" % (self.check_head, len(body), body)

    def finished(self, index: int, sent: int, status: int, body: bytes) -> bool:
        now = time.perf_counter_ns()
        if now > self.deadline:
            self.idle += 1
            if self.all_idle is not None and self.idle == self.connections:
                self.all_idle.set_result(None)
            return False
        self.latencies.append(now - sent)
        if index < 0:
            self.write_latencies.append(now - sent)
        wrong = False
        if not 200 <= status < 300:
            self.non_2xx += 1
        elif index < 0:
            self.writes += 1
        else:
            want = self.plan.expected[index % len(self.plan.checks)] == ord("1")
            wrong = (ALLOWED in body) != want
            self.wrong += wrong
        if (wrong or not 200 <= status < 300) and not self.first_error:
            self.first_error = f"{status} {body[:300]!r}"
        return True


async def _run_load(
    port: int, plan: Plan, seconds: float, concurrency: int, write_every: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = _Load(port, plan, concurrency, write_every)
    load.all_idle = loop.create_future()
    conns = []
    for _ in range(concurrency):
        _, conn = await loop.create_connection(lambda: LoadConnection(load), "127.0.0.1", port)
        conns.append(conn)
    cpu0 = time.process_time()
    start = time.perf_counter_ns()
    load.deadline = start + int(seconds * 1e9)
    for conn in conns:
        conn.send()
    await asyncio.wait_for(load.all_idle, seconds + 60)
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    lat = sorted(load.latencies)
    return {
        "requests": len(lat),
        "req_per_s": round(len(lat) / seconds),
        "writes": load.writes,
        "latency_ms": percentiles_ms(lat),
        "write_latency_ms": percentiles_ms(sorted(load.write_latencies)),
        "errors": load.non_2xx + load.wrong,
        "non_2xx": load.non_2xx,
        "wrong": load.wrong,
        "first_error": load.first_error,
        "client_cpu_s": round(time.process_time() - cpu0, 2),
    }


async def _post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    buf = bytearray()
    while (response := take_response(buf)) is None:
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError(f"{path}: connection closed")
        buf += chunk
    writer.close()
    return response


def prepare(srv: Server, plan: Plan, tuples: list[dict[str, Any]]) -> float:
    """The plan's tenant, schema and data, through the API; seconds the data writes took."""

    async def run() -> float:
        calls = [
            ("/v1/tenants/create", json.dumps({"id": plan.tenant, "name": plan.tenant})),
            (f"/v1/tenants/{plan.tenant}/schemas/write", json.dumps({"schema": SCHEMA})),
        ]
        for path, body in calls:
            status, answer = await _post(srv.port, path, body.encode())
            if status != 200:
                raise RuntimeError(f"{path}: {status} {answer[:300]!r}")
        started = time.perf_counter()
        for i in range(0, len(tuples), 1000):
            batch = json.dumps({"tuples": tuples[i : i + 1000]}).encode()
            status, answer = await _post(srv.port, f"/v1/tenants/{plan.tenant}/data/write", batch)
            if status != 200:
                raise RuntimeError(f"data write: {status} {answer[:300]!r}")
        return time.perf_counter() - started

    return asyncio.run(run())


def measure(
    name: str,
    srv: Server,
    plan: Plan,
    tuples: list[dict[str, Any]],
    args: argparse.Namespace,
    *,
    databases: Databases | None,
) -> dict[str, Any]:
    progress(f"{name}: loading {len(tuples):,} tuples")
    load_s = prepare(srv, plan, tuples)
    progress(f"{name}: warm-up {args.warmup:g}s")
    asyncio.run(_run_load(srv.port, plan, args.warmup, args.concurrency, args.write_every))
    progress(f"{name}: {args.duration:g}s of load")
    cpu0 = _tree_cpu_s(srv.proc.pid)
    db0 = databases.cpu_s() if databases is not None else None
    result = asyncio.run(
        _run_load(srv.port, plan, args.duration, args.concurrency, args.write_every)
    )
    result["server_cpu_s"] = round(_tree_cpu_s(srv.proc.pid) - cpu0, 2)
    db1 = databases.cpu_s() if databases is not None else None
    result["database_cpu_s"] = None if db0 is None or db1 is None else round(db1 - db0, 2)
    result["load_tuples_per_s"] = round(len(tuples) / load_s)
    progress(
        f"{name}: {result['req_per_s']:,} req/s, p50 {result['latency_ms']['p50']} ms, "
        f"p99 {result['latency_ms']['p99']} ms (writes: p50 "
        f"{result['write_latency_ms']['p50']} ms, p99 {result['write_latency_ms']['p99']} ms), "
        f"errors {result['errors']}"
    )
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    ds = generate(args.seed, args.users, args.groups, args.folders, args.docs)
    asked = questions(ds, random.Random(args.seed + 1), args.questions)
    plan_checks = [check_body(doc, user) for doc, user in asked]
    expected = bytes(ord("1") if user in ds.viewers[doc] else ord("0") for doc, user in asked)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        sys.exit(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    results: dict[str, Any] = {}
    settings = dict(setting.split("=", 1) for setting in args.setting)
    databases = Databases(args.database_url) if any(t != "leveldb" for t in targets) else None
    try:
        for target in targets:
            plan = Plan(f"bench-{target}", plan_checks, expected, ds.users)
            with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
                workdir = Path(tmp)
                if target == "leveldb":
                    serve_args = ["--data-dir", str(workdir / "data")]
                else:
                    assert databases is not None
                    workers = target.rsplit("-", 1)[1]
                    serve_args = ["--database-url", databases.create(), "--workers", workers]
                with serving(serve_args, workdir, settings) as srv:
                    db = None if target == "leveldb" else databases
                    results[target] = measure(target, srv, plan, ds.tuples, args, databases=db)
    finally:
        if databases is not None:
            databases.close()
    one, two = results.get("postgres-1"), results.get("postgres-2")
    summary: dict[str, Any] = {"targets": results, "concurrency": args.concurrency}
    summary["duration_s"] = args.duration
    summary["cpus"] = os.cpu_count()
    summary["write_every"] = args.write_every
    summary["settings"] = settings
    if one and two:
        summary["two_workers_over_one"] = round(two["req_per_s"] / max(one["req_per_s"], 1), 2)
    return summary


def report(summary: dict[str, Any]) -> str:
    lines = [
        f"mixed load: a write every {summary['write_every']} requests (0: none), "
        f"{summary['concurrency']} connections, "
        f"{summary['duration_s']:g}s, {summary['cpus']} CPUs",
        "| target | req/s | p50 ms | p99 ms | errors | server CPU s | database CPU s "
        "| client CPU s | load tuples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["targets"].items():
        db = "-" if r["database_cpu_s"] is None else r["database_cpu_s"]
        lines.append(
            f"| {name} | {r['req_per_s']:,} | {r['latency_ms']['p50']} | "
            f"{r['latency_ms']['p99']} | {r['errors']} | {r['server_cpu_s']} | {db} | "
            f"{r['client_cpu_s']} | {r['load_tuples_per_s']:,} |"
        )
    if "two_workers_over_one" in summary:
        lines.append(f"postgres 2 workers / 1 worker: {summary['two_workers_over_one']}x")
    for name, r in summary["targets"].items():
        if r["first_error"]:
            lines.append(f"{name}: first error: {r['first_error']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument(
        "--write-every",
        type=int,
        default=WRITE_EVERY,
        help="every Nth request is a write (default 5: 20%% writes; 0: checks only)",
    )
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--database-url", help="a PostgreSQL server to use (default: throwaway)")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="STONETOWN_NAME=VALUE",
        help="a server setting for every target, e.g. STONETOWN_WORKER_THREADS=8 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    summary = run(args)
    print(json.dumps(summary, indent=2) if args.json else report(summary))


if __name__ == "__main__":
    main()
