"""HTTP bench: Stonetown's ``POST /v1/tenants/t1/permissions/check`` against a bare aiohttp echo.

Both servers are measured on loopback in one run, the same way, so their ratio means something
on a noisy machine where absolute numbers do not (the target: Stonetown's check at least
75% of the echo's req/s, and its p99 under 10 ms):

* **echo**: a bare aiohttp app, one route at the same path, whose handler reads the body as JSON
  and returns it with ``web.json_response`` (no middleware).
* **stonetown**: ``api.app.create_app(Config(...))`` run by ``make_runner`` on a fresh LevelDB in
  a temporary directory, access log off, every other setting the default (as ``stonetown serve``
  runs it).
* **stonetown first pass** (unless ``--no-first-pass``): the same server, asked questions it has
  never answered (``--first-pass-questions``, 300,000 distinct (document, user) pairs, more than
  a run asks; the report says if a run got past them), so the top-level answer never comes from
  the check cache; sub-problems (a folder's viewers, a group's members) are cached as they would
  be in production.

Each server is a separate process (``python http_bench.py --serve KIND``): one event loop, no
workers, aiohttp's default asyncio loop, ``TCPSite`` on 127.0.0.1. The load generator is another
process: ``wrk`` (one thread, a Lua script cycling through the request bodies) when it is on
PATH, else the raw asyncio HTTP/1.1 keep-alive client in this file (``--client python``), which
parses only the status line and Content-Length, so it costs far less per request than the
servers. With two or more CPUs, the servers run on CPU 0 and the client on CPU 1
(``--no-pin`` leaves it to the OS). Both clients keep ``--concurrency`` connections busy (one
request in flight each), run ``--warmup`` seconds, then are started again for ``--duration``
seconds; req/s is the responses completed inside that window over its length, and latency is
send-to-last-byte per request (p50/p90/p99 nearest rank for the Python client, wrk's own
percentiles for wrk). The server's and the client's CPU time over the run are reported too: a
saturated server below 90% of a core was sharing its CPU (other jobs on the machine), and the
report says so.

Data: a Google-Docs-like schema (user; group with nested members; folder with parent, owner,
viewer; document with parent, owner, viewer; ``view = viewer or owner or parent.view``), 1,000
users, 100 groups, 200 folders, 5,000 documents by default, generated with ``--seed`` and written
through ``/schemas/write`` and ``/data/write`` before the run. The checks cycle through a fixed
list of 10,000 distinct (document, user) questions, half of them drawn from the document's
viewers (allowed) and half at random (nearly all denied), so after the first pass most answers
come from the revision-keyed check cache, as in production. Expected answers are computed here
by a direct evaluation of the same data. Before each target's warm-up the first ``--verify``
(1,000) questions are asked and every answer is compared with the expected one (the echo's with
the request); the Python client also checks every Stonetown answer during the timed run (wrk
counts statuses only). A wrong answer or a non-2xx status is an error.

    make bench-http
    .venv/bin/python bench/http_bench.py [--concurrency 32] [--duration 10] [--warmup 2]
        [--client auto|wrk|python] [--no-first-pass] [--no-pin] [--json]
        [--profile [--py-spy PATH]]    # py-spy the Stonetown server during its cached run

``--profile`` records the Stonetown server with py-spy (from PATH or ``--py-spy``) during the
cached run (``--gil``: only the thread holding the GIL, i.e. where the one core goes) and prints
the functions with the most samples; the numbers of that run are then marked as profiled, and
the raw stacks are kept in the printed temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from bench.harness import (
    BUSY_CPU_PCT,
    TENANT,
    LoadConnection,
    Server,
    add_common_arguments,
    find_py_spy,
    percentiles_ms,
    pin_cpus,
    profile_lines,
    profiled,
    progress,
    run_and_report,
    serve,
    server,
    stonetown_runner,
    summarise_profile,
)

CHECK_PATH = f"/v1/tenants/{TENANT}/permissions/check"
TARGET_RATIO = 0.75
TARGET_P99_MS = 10.0
WRITE_BATCH = 1000  # Config.max_write_items
CHECK_DEPTH = 20  # what a Permify client sends in metadata.depth
ALLOWED = b'"CHECK_RESULT_ALLOWED"'

SCHEMA = """
entity user {}

entity group {
    relation member @user @group#member
}

entity folder {
    relation parent @folder
    relation owner @user
    relation viewer @user @group#member

    permission view = viewer or owner or parent.view
}

entity document {
    relation parent @folder
    relation owner @user
    relation viewer @user @group#member

    permission view = viewer or owner or parent.view
}
"""

# -- dataset ---------------------------------------------------------------------------------

WireTuple = dict[str, Any]


@dataclass(slots=True)
class Dataset:
    """The tuples in Permify's wire shape, and who can view each document (computed here)."""

    tuples: list[WireTuple]
    users: list[str]
    documents: list[str]
    viewers: dict[str, frozenset[str]]
    counts: dict[str, int] = field(default_factory=dict)


def _tuple(etype: str, eid: str, rel: str, stype: str, sid: str, *, srel: str = "") -> WireTuple:
    return {
        "entity": {"type": etype, "id": eid},
        "relation": rel,
        "subject": {"type": stype, "id": sid, "relation": srel},
    }


def generate(seed: int, n_users: int, n_groups: int, n_folders: int, n_docs: int) -> Dataset:
    """A fixed dataset for a seed: groups nested only in earlier groups and folders below earlier
    folders (so both are acyclic), each document with an owner, a folder and 0-3 viewers."""
    rng = random.Random(seed)
    users = [f"user-{i:05d}" for i in range(n_users)]
    groups = [f"group-{i:04d}" for i in range(n_groups)]
    folders = [f"folder-{i:04d}" for i in range(n_folders)]
    docs = [f"doc-{i:05d}" for i in range(n_docs)]
    tuples: list[WireTuple] = []
    kinds: Counter[str] = Counter()

    def add(kind: str, t: WireTuple) -> None:
        kinds[kind] += 1
        tuples.append(t)

    # Groups: 5-20 direct users each; 30% are also members of one earlier group.
    members: list[set[str]] = []
    children: list[list[int]] = [[] for _ in groups]
    for j, g in enumerate(groups):
        direct = set(rng.sample(users, rng.randint(5, 20)))
        members.append(direct)
        for u in sorted(direct):
            add("group#member@user", _tuple("group", g, "member", "user", u))
        if j and rng.random() < 0.3:
            parent = rng.randrange(j)
            children[parent].append(j)
            add(
                "group#member@group#member",
                _tuple("group", groups[parent], "member", "group", g, srel="member"),
            )
    for j in reversed(range(len(groups))):  # children have higher indexes: final before parents
        for c in children[j]:
            members[j] |= members[c]

    def grantee(kind: str, etype: str, eid: str) -> set[str]:
        if rng.random() < 0.3:
            j = rng.randrange(len(groups))
            add(
                f"{kind}@group#member",
                _tuple(etype, eid, "viewer", "group", groups[j], srel="member"),
            )
            return members[j]
        u = rng.choice(users)
        add(f"{kind}@user", _tuple(etype, eid, "viewer", "user", u))
        return {u}

    # Folders: the first 10 are roots, every other one sits below an earlier folder.
    folder_view: list[frozenset[str]] = []
    for i, f in enumerate(folders):
        owner = rng.choice(users)
        add("folder#owner@user", _tuple("folder", f, "owner", "user", owner))
        view = {owner}
        if i >= 10:
            parent = rng.randrange(i)
            add("folder#parent@folder", _tuple("folder", f, "parent", "folder", folders[parent]))
            view |= folder_view[parent]
        if rng.random() < 0.3:
            view |= grantee("folder#viewer", "folder", f)
        folder_view.append(frozenset(view))

    viewers: dict[str, frozenset[str]] = {}
    for d in docs:
        owner = rng.choice(users)
        parent = rng.randrange(len(folders))
        add("document#owner@user", _tuple("document", d, "owner", "user", owner))
        add("document#parent@folder", _tuple("document", d, "parent", "folder", folders[parent]))
        view = {owner} | folder_view[parent]
        for _ in range(rng.randint(0, 3)):
            view |= grantee("document#viewer", "document", d)
        viewers[d] = frozenset(view)
    rng.shuffle(tuples)
    return Dataset(tuples, users, docs, viewers, dict(sorted(kinds.items())))


def questions(
    ds: Dataset, rng: random.Random, n: int, exclude: frozenset[tuple[str, str]] = frozenset()
) -> list[tuple[str, str]]:
    """``n`` distinct (document, user) pairs not in ``exclude``, shuffled: half (or every one
    left, if fewer) drawn from the allowed pairs, the rest a random user on a random document
    (denied unless that user happens to view it)."""
    if n > len(ds.documents) * len(ds.users) // 2:
        raise ValueError(f"{n:,} distinct questions is too many for this dataset")
    allowed = [
        (doc, user)
        for doc in ds.documents
        for user in sorted(ds.viewers[doc])
        if (doc, user) not in exclude
    ]
    rng.shuffle(allowed)
    out = allowed[: n // 2]
    seen = set(exclude).union(out)
    while len(out) < n:
        pair = (rng.choice(ds.documents), rng.choice(ds.users))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    rng.shuffle(out)
    return out


def check_body(doc: str, user: str) -> bytes:
    """The request a Permify client sends (ids here never need JSON escaping)."""
    return (
        f'{{"metadata":{{"snap_token":"","schema_version":"","depth":{CHECK_DEPTH}}},'
        f'"entity":{{"type":"document","id":"{doc}"}},"permission":"view",'
        f'"subject":{{"type":"user","id":"{user}","relation":""}}}}'
    ).encode()


# -- servers (each in its own process: http_bench.py --serve echo|stonetown) -----------------


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


def _runner(kind: str, data_dir: str) -> web.AppRunner:
    if kind == "echo":
        app = web.Application()
        app.router.add_post(CHECK_PATH, _echo)
        return web.AppRunner(app, access_log=None, handle_signals=False)
    return stonetown_runner(data_dir)


def start_server(kind: str, data_dir: str, cpu: int | None) -> AbstractContextManager[Server]:
    """The ``kind`` server in its own process (this script with ``--serve kind``)."""
    return server(kind, __file__, "--serve", kind, "--data-dir", data_dir, cpu=cpu)


# -- the Python load generator (its own process: http_bench.py --load-python ...) ------------


class _Load:
    """Keeps ``concurrency`` keep-alive connections busy, one request in flight on each, and
    records the latency of every response completed before the deadline."""

    def __init__(
        self,
        host: str,
        port: int,
        bodies: list[bytes],
        expected: bytes,
        *,
        offset: int,
        connections: int,
    ) -> None:
        self.connections = connections
        self.head = (
            f"POST {CHECK_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.bodies = bodies
        self.expected = expected  # b"1"/b"0" per body (Stonetown), or empty: status only
        self.next = offset
        self.deadline = 0
        self.latencies: list[int] = []
        self.non_2xx = 0
        self.wrong = 0
        self.checked = 0
        self.late = 0
        self.idle = 0
        self.all_idle: asyncio.Future[None] | None = None

    def request(self) -> tuple[int, bytes]:
        i = self.next
        self.next = i + 1
        body = self.bodies[i % len(self.bodies)]
        return i, b"%b%d\r\n\r\n%b" % (self.head, len(body), body)

    def finished(self, i: int, sent: int, status: int, body: bytes) -> bool:
        """Record one response; True if the connection should send another request."""
        now = time.perf_counter_ns()
        if now > self.deadline:
            self.late += 1
            self.idle += 1
            if self.all_idle is not None and self.idle == self.connections:
                self.all_idle.set_result(None)
            return False
        self.latencies.append(now - sent)
        if not 200 <= status < 300:
            self.non_2xx += 1
        elif self.expected:
            self.checked += 1
            want = self.expected[i % len(self.bodies)] == ord("1")
            if (ALLOWED in body) != want:
                self.wrong += 1
        return True


async def _run_load(
    host: str,
    port: int,
    bodies: list[bytes],
    expected: bytes,
    *,
    offset: int,
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = _Load(host, port, bodies, expected, offset=offset, connections=concurrency)
    load.all_idle = loop.create_future()
    conns = []
    for _ in range(concurrency):
        _, conn = await loop.create_connection(lambda: LoadConnection(load), host, port)
        conns.append(conn)
    cpu0 = time.process_time()
    start = time.perf_counter_ns()
    load.deadline = start + int(seconds * 1e9)
    for conn in conns:
        conn.send()
    await asyncio.wait_for(load.all_idle, seconds + 30)
    elapsed = (load.deadline - start) / 1e9
    cpu = time.process_time() - cpu0
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    lat = sorted(load.latencies)
    return {
        "requests": len(lat),
        "seconds": elapsed,
        "latency_ms": percentiles_ms(lat),
        "non_2xx": load.non_2xx,
        "wrong": load.wrong,
        "checked": load.checked,
        "socket_errors": 0,
        "next_index": load.next,
        "client_cpu_s": round(cpu, 3),
    }


def load_python_main(args: argparse.Namespace) -> None:
    bodies = Path(args.bodies).read_bytes().splitlines()
    expected = Path(args.expected).read_bytes() if args.expected else b""
    result = asyncio.run(
        _run_load(
            "127.0.0.1",
            args.port,
            bodies,
            expected,
            offset=args.offset,
            seconds=args.seconds,
            concurrency=args.concurrency,
        )
    )
    print(json.dumps(result))


# -- wrk -------------------------------------------------------------------------------------

# One thread, so one Lua state walks the bodies in order from `offset`; done() prints the same
# fields as the Python client (wrk counts only statuses > 399 as status errors).
WRK_SCRIPT = r"""
local bodies = {}
local path = "/"
local headers = {["Content-Type"] = "application/json"}
offset = 0
counter = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  offset = tonumber(args[2])
  path = args[3]
end

function request()
  local i = (offset + counter) % #bodies + 1
  counter = counter + 1
  return wrk.format("POST", path, headers, bodies[i])
end

function done(summary, latency, requests)
  local sent = 0
  local first = 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("counter")
    first = t:get("offset")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"status_errors":%d,"socket_errors":%d,"next_index":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout,
    first + sent))
end
"""


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


# -- orchestration ---------------------------------------------------------------------------


async def _post_all(url: str, bodies: list[bytes], concurrency: int) -> list[tuple[int, bytes]]:
    """POST every body to ``url`` with ``concurrency`` requests in flight; (status, body)s."""
    out: list[tuple[int, bytes]] = [(0, b"")] * len(bodies)
    queue = iter(enumerate(bodies))
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for i, body in queue:
                async with session.post(url, data=body, headers=headers) as resp:
                    out[i] = (resp.status, await resp.read())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def load_data(srv: Server, ds: Dataset) -> dict[str, Any]:
    """Schema, then the tuples in writes of WRITE_BATCH, through the HTTP API."""
    base = f"{srv.url}/v1/tenants/{TENANT}"
    schema = json.dumps({"schema": SCHEMA}).encode()
    ((status, body),) = asyncio.run(_post_all(f"{base}/schemas/write", [schema], 1))
    if status != 200:
        raise RuntimeError(f"schema write failed: {status} {body[:500]!r}")
    batches = [
        json.dumps({"tuples": ds.tuples[i : i + WRITE_BATCH]}).encode()
        for i in range(0, len(ds.tuples), WRITE_BATCH)
    ]
    t0 = time.perf_counter()
    for status, body in asyncio.run(_post_all(f"{base}/data/write", batches, 1)):
        if status != 200:
            raise RuntimeError(f"data write failed: {status} {body[:500]!r}")
    seconds = time.perf_counter() - t0
    return {
        "tuples": len(ds.tuples),
        "writes": len(batches),
        "seconds": round(seconds, 2),
        "tuples_per_s": round(len(ds.tuples) / seconds),
    }


def verify(srv: Server, bodies: list[bytes], expected: bytes, concurrency: int) -> dict[str, int]:
    """Ask ``bodies`` once; count non-2xx and wrong answers (echo: the request back)."""
    answers = asyncio.run(_post_all(f"{srv.url}{CHECK_PATH}", bodies, concurrency))
    non_2xx = wrong = 0
    first_error = ""
    for i, (status, body) in enumerate(answers):
        if not 200 <= status < 300:
            non_2xx += 1
        elif srv.kind == "echo":
            wrong += json.loads(body) != json.loads(bodies[i])
        else:
            wrong += (ALLOWED in body) != (expected[i] == ord("1"))
        if non_2xx + wrong and not first_error:
            first_error = f"{bodies[i]!r} -> {status} {body[:300]!r}"
    if first_error:
        print(f"verification of {srv.kind}, first error: {first_error}", file=sys.stderr)
    return {"asked": len(bodies), "non_2xx": non_2xx, "wrong": wrong}


@dataclass(slots=True)
class Plan:
    client: str
    wrk: str
    concurrency: int
    warmup: float
    duration: float
    client_cpu: int | None
    workdir: Path
    n_verify: int
    profile: str | None = None


def run_client(
    plan: Plan,
    srv: Server,
    files: tuple[Path, Path],
    *,
    offset: int,
    seconds: float,
    check: bool,
) -> dict[str, Any]:
    """One load phase in a fresh client process; the Python client's result shape."""
    bodies, expected = files
    if plan.client == "wrk":
        script = plan.workdir / "bench.lua"
        script.write_text(WRK_SCRIPT)
        cmd = [
            plan.wrk, "-t1", f"-c{plan.concurrency}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), srv.url, "--",
            str(bodies), str(offset), CHECK_PATH,
        ]  # fmt: skip
    else:
        cmd = [
            sys.executable, __file__, "--load-python", "--port", str(srv.port),
            "--bodies", str(bodies), "--offset", str(offset), "--seconds", str(seconds),
            "--concurrency", str(plan.concurrency),
        ]  # fmt: skip
        if check:
            cmd += ["--expected", str(expected)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{plan.client} failed ({out.returncode}): {out.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if plan.client == "python":
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    line = next(x for x in out.stdout.splitlines() if x.startswith("WRKJSON "))
    w = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests": w["requests"],
        "seconds": w["duration_us"] / 1e6,
        "latency_ms": {k: round(w[f"{k}_us"] / 1000, 3) for k in ("p50", "p90", "p99", "max")},
        "non_2xx": w["status_errors"],
        "wrong": 0,
        "checked": 0,
        "socket_errors": w["socket_errors"],
        "next_index": w["next_index"],
        "client_cpu_s": round(cpu, 3),
    }


def measure(
    plan: Plan,
    srv: Server,
    files: tuple[Path, Path],
    bodies: list[bytes],
    expected: bytes,
    *,
    check: bool,
    profile: bool = False,
) -> dict[str, Any]:
    """Verify the first answers, warm up, then the timed run (optionally under py-spy)."""
    n = min(plan.n_verify, len(bodies))
    verified = verify(srv, bodies[:n], expected[:n], plan.concurrency)
    offset = n
    if plan.warmup > 0:
        warm = run_client(plan, srv, files, offset=offset, seconds=plan.warmup, check=check)
        offset = warm["next_index"]
    spy = plan.profile if profile else None
    raw = plan.workdir / "stonetown.pyspy.txt"
    with profiled(spy, srv.proc.pid, raw, nonblocking=False):
        cpu0 = srv.cpu_s()
        timed = run_client(plan, srv, files, offset=offset, seconds=plan.duration, check=check)
        server_cpu = srv.cpu_s() - cpu0
    secs = timed["seconds"]
    result = {
        "requests": timed["requests"],
        "req_per_s": round(timed["requests"] / secs, 1),
        "seconds": round(secs, 3),
        "latency_ms": timed["latency_ms"],
        "errors": timed["non_2xx"]
        + timed["wrong"]
        + timed["socket_errors"]
        + verified["non_2xx"]
        + verified["wrong"],
        "non_2xx": timed["non_2xx"],
        "wrong": timed["wrong"],
        "socket_errors": timed["socket_errors"],
        "answers_checked_in_run": timed["checked"],
        "verified": verified,
        "questions": len(bodies),
        "first_index": offset,
        "next_index": timed["next_index"],
        "wrapped": timed["next_index"] > len(bodies),
        "server_cpu_pct": round(100 * server_cpu / secs),
        "client_cpu_pct": round(100 * timed["client_cpu_s"] / secs),
    }
    if spy is not None:
        result["profile"] = summarise_profile(raw, top=15)
        result["profiled"] = True
    return result


def write_files(
    workdir: Path, name: str, qs: list[tuple[str, str]], ds: Dataset
) -> tuple[tuple[Path, Path], list[bytes], bytes]:
    bodies = [check_body(doc, user) for doc, user in qs]
    expected = bytes(ord("1") if user in ds.viewers[doc] else ord("0") for doc, user in qs)
    b, e = workdir / f"{name}.bodies", workdir / f"{name}.expected"
    b.write_bytes(b"\n".join(bodies) + b"\n")
    e.write_bytes(expected)
    return (b, e), bodies, expected


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    wall = time.perf_counter()
    wrk = shutil.which("wrk") or ""
    client = args.client if args.client != "auto" else ("wrk" if wrk else "python")
    if client == "wrk" and not wrk:
        sys.exit("--client wrk: no wrk on PATH (Debian: apt-get install wrk)")
    # This process asks the verification questions; the clients it starts inherit its CPU.
    server_cpu, client_cpu = pin_cpus(args.no_pin)
    pinned = server_cpu is not None
    spy = find_py_spy(args.py_spy) if args.profile else None
    plan = Plan(
        client, wrk, args.concurrency, args.warmup, args.duration, client_cpu, workdir,
        args.verify, spy,
    )  # fmt: skip

    progress("generating the dataset and the questions")
    ds = generate(args.seed, args.users, args.groups, args.folders, args.documents)
    rng = random.Random(args.seed + 1)
    cycle = questions(ds, rng, args.questions)
    cycle_files, cycle_bodies, cycle_expected = write_files(workdir, "cycle", cycle, ds)
    result: dict[str, Any] = {
        "bench": "http",
        "path": CHECK_PATH,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "client": client if client == "python" else f"wrk {wrk_version(wrk)}",
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "event_loop": "asyncio default (asyncio.run, no uvloop)",
        "cpus": os.cpu_count(),
        "pinning": f"servers on CPU {server_cpu}, client on CPU {client_cpu}" if pinned else "none",
        "load1_at_start": round(os.getloadavg()[0], 2),
        "dataset": {
            "seed": args.seed,
            "users": args.users,
            "groups": args.groups,
            "folders": args.folders,
            "documents": args.documents,
            "tuples": len(ds.tuples),
            "composition": ds.counts,
            "questions": len(cycle),
            "allowed_pct": round(100 * cycle_expected.count(b"1") / len(cycle), 1),
        },
        "targets": {},
    }
    targets = result["targets"]

    progress(f"echo server: verify, warm up {args.warmup:g} s, run {args.duration:g} s ({client})")
    with start_server("echo", "", server_cpu) as echo:
        targets["echo"] = measure(
            plan, echo, cycle_files, cycle_bodies, cycle_expected, check=False
        )

    first_files: tuple[Path, Path] | None = None
    if not args.no_first_pass:
        first = questions(ds, rng, args.first_pass_questions, frozenset(cycle))
        first_files, first_bodies, first_expected = write_files(workdir, "first", first, ds)
        result["dataset"]["first_pass_questions"] = len(first)
        result["dataset"]["first_pass_allowed_pct"] = round(
            100 * first_expected.count(b"1") / len(first), 1
        )
    with (
        tempfile.TemporaryDirectory(prefix="http-bench-db-", dir=args.dir) as db,
        start_server("stonetown", db, server_cpu) as st,
    ):
        progress(f"stonetown server: loading {len(ds.tuples):,} tuples through /data/write")
        result["load"] = load_data(st, ds)
        progress("stonetown check (cycling through the cached questions)")
        targets["stonetown"] = measure(
            plan, st, cycle_files, cycle_bodies, cycle_expected, check=True, profile=bool(spy)
        )
        if first_files is not None:
            progress("stonetown check, first pass (questions never asked before)")
            targets["stonetown_first_pass"] = measure(
                plan, st, first_files, first_bodies, first_expected, check=True
            )
    echo_rps = targets["echo"]["req_per_s"]
    st = targets["stonetown"]
    result["ratio"] = round(st["req_per_s"] / echo_rps, 3) if echo_rps else 0.0
    result["target"] = {
        "ratio_min": TARGET_RATIO,
        "p99_ms_max": TARGET_P99_MS,
        "ratio_ok": result["ratio"] >= TARGET_RATIO,
        "p99_ok": st["latency_ms"]["p99"] < TARGET_P99_MS,
    }
    if "stonetown_first_pass" in targets:
        fp = targets["stonetown_first_pass"]["req_per_s"]
        result["first_pass_ratio"] = round(fp / echo_rps, 3) if echo_rps else 0.0
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    return result


# -- report ----------------------------------------------------------------------------------

LABELS = {
    "echo": "echo (bare aiohttp)",
    "stonetown": "stonetown check, cached",
    "stonetown_first_pass": "stonetown check, 1st pass",
}


def report(r: dict[str, Any]) -> str:
    ds, load = r["dataset"], r["load"]
    lines = [
        f"HTTP bench: POST {r['path']} on 127.0.0.1, {r['concurrency']} keep-alive connections, "
        f"{r['duration_s']:g} s per target after {r['warmup_s']:g} s warm-up",
        f"client {r['client']}; python {r['python']}, aiohttp {r['aiohttp']}, "
        f"{r['event_loop']}; {r['cpus']} CPUs, pinning: {r['pinning']}; "
        f"load average at start {r['load1_at_start']}",
        f"dataset (seed {ds['seed']}): {ds['users']:,} users, {ds['groups']:,} groups, "
        f"{ds['folders']:,} folders, {ds['documents']:,} documents = {ds['tuples']:,} tuples, "
        f"written in {load['writes']} /data/write calls in {load['seconds']} s "
        f"({load['tuples_per_s']:,} tuples/s)",
        f"questions: {ds['questions']:,} cycled ({ds['allowed_pct']}% allowed)"
        + (
            f"; first pass: {ds['first_pass_questions']:,} distinct others "
            f"({ds['first_pass_allowed_pct']}% allowed)"
            if "first_pass_questions" in ds
            else ""
        ),
        "",
        f"  {'target':<27}{'requests':>9}{'req/s':>9}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
        f"{'max ms':>8}{'errors':>7}{'srv CPU':>9}{'cli CPU':>9}",
    ]
    for name, t in r["targets"].items():
        lat = t["latency_ms"]
        mark = " [profiled]" if t.get("profiled") else ""
        lines.append(
            f"  {LABELS[name]:<27}{t['requests']:>9,}{t['req_per_s']:>9,.0f}{lat['p50']:>8.2f}"
            f"{lat['p90']:>8.2f}{lat['p99']:>8.2f}{lat['max']:>8.1f}{t['errors']:>7}"
            f"{t['server_cpu_pct']:>8}%{t['client_cpu_pct']:>8}%{mark}"
        )
    tgt = r["target"]
    st = r["targets"]["stonetown"]
    lines += [
        "",
        f"stonetown/echo req/s: {r['ratio']:.2f} (target >= {tgt['ratio_min']:.2f}) "
        f"{'OK' if tgt['ratio_ok'] else 'MISSED'}; stonetown p99 {st['latency_ms']['p99']:.2f} ms "
        f"(target < {tgt['p99_ms_max']:g} ms) {'OK' if tgt['p99_ok'] else 'MISSED'}"
        + (f"; first pass/echo {r['first_pass_ratio']:.2f}" if "first_pass_ratio" in r else ""),
    ]
    checks = []
    for name, t in r["targets"].items():
        v = t["verified"]
        line = f"{name} {v['asked']:,} asked, {v['wrong']} wrong, {v['non_2xx']} non-2xx"
        if t["answers_checked_in_run"]:
            line += f", {t['answers_checked_in_run']:,} checked in the run"
        if t["wrapped"] and name == "stonetown_first_pass":
            line += " [ran past the last distinct question: raise --first-pass-questions]"
        checks.append(line)
    lines.append("answers verified before warm-up: " + "; ".join(checks))
    lines.append(
        "errors = non-2xx + wrong answers + socket errors; CPU = process CPU time / run time "
        "(100% = one core)"
    )
    starved = [LABELS[n] for n, t in r["targets"].items() if t["server_cpu_pct"] < BUSY_CPU_PCT]
    if starved:
        lines.append(
            f"WARNING: the server of {', '.join(starved)} got less than {BUSY_CPU_PCT}% of a "
            "core while the client kept it busy: something else ran on its CPU, so those "
            "numbers are low; run again on a quiet machine"
        )
    if "profile" in st:
        lines += profile_lines("stonetown server", st["profile"])
    lines.append(f"wall {r['wall_s']} s")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each target")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-first-pass", action="store_true", help="skip the first-pass run")
    parser.add_argument("--verify", type=int, default=1000, help="answers checked before warm-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--questions", type=int, default=10_000, help="cycled check questions")
    parser.add_argument("--first-pass-questions", type=int, default=300_000)
    parser.add_argument("--profile", action="store_true", help="py-spy the Stonetown server")
    add_common_arguments(parser)
    # The child processes this script starts.
    parser.add_argument("--serve", choices=("echo", "stonetown"), help=argparse.SUPPRESS)
    parser.add_argument("--load-python", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--expected", help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(lambda: _runner(args.serve, args.data_dir), args.cpu)
        return
    if args.load_python:
        load_python_main(args)
        return
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--concurrency must be >= 1, --duration > 0, --warmup >= 0")
    run_and_report(args, "http-bench-", run, report)


if __name__ == "__main__":
    main()
