"""Relations bench: contact relationship records created and listed through HTTP at 100k relations.

What is measured, on loopback, against one server:

* **the server**: ``api.app.create_app(Config(...))`` run by ``make_runner`` on a fresh LevelDB in
  a temporary directory, access log off, every other setting the default (as ``stonetown serve``
  runs it), in its own process (``python relations_bench.py --serve``): one event loop, no
  workers, ``TCPSite`` on 127.0.0.1. With two or more CPUs the server runs on CPU 0 and this
  process (the client) on CPU 1 (``--no-pin`` leaves it to the OS).
* **create throughput**: ``--relations`` (100,000) ``POST /v1/tenants/t1/xapi2/data/relationship``
  (record create) bodies ``{"kind", "parent_id", "target_id", "label"}``, sent by a raw asyncio
  HTTP/1.1 client in this file over ``--concurrency`` (16) keep-alive connections, one request
  in flight on each, every body sent once. creates/s is the creates over the time from the first
  send to the
  last response, overall and per ``--block`` (10,000) responses in completion order (so a store
  that slows as it grows shows as falling blocks); latency is send-to-last-byte per request
  (p50/p99 nearest rank). A status other than 201, or a 201 whose record is not the one asked
  for, is an error. Each create also writes the mirror row (the inverse kind, same transaction),
  so the store ends with twice as many rows as relations, and every record list below is over those
  rows: at the default size, 200,000 records.
* **list pages**: each page below is asked ``--repeats`` (200) times, one after another on one
  keep-alive connection (so the latency is the server's, not a queue's), with the default page
  size (``--page-limit`` 20, the records API's default); p50/p90/p99/max in ms. A page that is still
  being asked after ``--max-page-seconds`` (30) stops there and says how many it got. Record list
  pages: the first page in the default order (``kind``, then created_at, id); the first page with
  ``sort=created_at``; keyset pages ``sort=created_at&after=<id>`` at depth 1k, 10k, 50k, 99k and
  the last page (depth = rows before the page), one at 99k with ``limit=200``; a
  ``sort=-created_at`` keyset page at depth 50k; offset pages ``sort=created_at&offset=`` 1k,
  10k, 50k; ``kind=spouse``; ``parent_id=<the contact with most rows>``; and the entity's
  relation list (``GET /v1/tenants/t1/entities/contact:<id>/relations``) for the same contact.
  Depths that a smaller ``--relations`` does not reach are skipped.

Before the pages, the record list is walked once with ``sort=created_at&limit=200`` keyset
pages from the start to the end; the walk checks that every page but the last is full, ordered by
(created_at, id) and starts strictly after its cursor, and that the rows it returns are every
record exactly once (each relation and its mirror, with the inverse kind and the label sent).
The walk's rows are then the expected answers: each measured page's first answer must have
exactly the expected rows in the expected order and ``has_more``/``next_after`` to match (keyset
pages: ascending (created_at, id), or descending for ``-created_at``, and the first row strictly
after the cursor), and every repeat must return the same bytes. The entity relation list's
answer is checked for size, that it holds only the contact's outgoing rows, and its order by
relation type.

Targets: create >= 1,000/s through HTTP, and list page p50 < 10 ms with keyset
paging at any depth (the first pages and the keyset pages; offset pages are reported, not
judged). The server's CPU time over the create run is reported: a saturated server below 90% of
a core was sharing its CPU with other jobs, and the report says so.

Dataset (``--seed``): tenant t1, schema ``entity user {}`` and ``entity contact`` with ``owner
@user``, one relation ``@contact`` per kind of the 12 (partner spouse parent child sibling friend
colleague manager report mentor mentee other) and ``view``/``edit = owner``; ``--contacts``
(20,000) contacts ``c00000``...; relation i has kind ``KINDS[i % 12]`` between two distinct
random contacts with the lower-numbered one as parent, so no (parent, target, kind) repeats and
no mirror can equal a relation (mirrors point from higher to lower). Every type is
MANY_TO_MANY, so no cardinality is tripped.

    make bench-relations
    .venv/bin/python bench/relations_bench.py [--relations 100000] [--contacts 20000]
        [--concurrency 16] [--repeats 200] [--page-limit 20] [--seed 1] [--no-pin] [--json]
        [--profile create|pages [--py-spy PATH]]

``--profile PHASE`` records the server with py-spy (``--gil --nonblocking``, from PATH or
``--py-spy``) during that phase and prints the functions with the most samples; that phase's
numbers are then marked as profiled, and the raw stacks are kept in the printed directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.harness import (
    BUSY_CPU_PCT,
    TENANT,
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
    take_response,
)
from engine.relations.model import DEFAULT_KINDS

DATA_PATH = f"/v1/tenants/{TENANT}/xapi2/data/relationship"
SCHEMA_PATH = f"/v1/tenants/{TENANT}/xapi2/schema/relationship"
TARGET_CREATES_PER_S = 1000.0
TARGET_PAGE_P50_MS = 10.0
WALK_LIMIT = 200  # the spec's max page
KEYSET_DEPTHS = (1_000, 10_000, 50_000, 99_000)
DESC_DEPTH = 50_000
OFFSETS = (1_000, 10_000, 50_000)
FILTER_KIND = "spouse"

#: Seed 003's kind -> the inverse kind its mirror row gets.
INVERSE = DEFAULT_KINDS
KINDS = tuple(INVERSE)

SCHEMA = (
    "entity user {}\n\nentity contact {\n    relation owner @user\n"
    + "".join(f"    relation {kind} @contact\n" for kind in KINDS)
    + "\n    permission view = owner\n    permission edit = owner\n}\n"
)


# -- dataset ---------------------------------------------------------------------------------


class NewRelation(NamedTuple):
    kind: str
    parent_id: str
    target_id: str
    label: str


def generate(seed: int, n_contacts: int, n_relations: int) -> list[NewRelation]:
    """The relations to create, in sending order (see the module docstring)."""
    if n_contacts < 2 or n_relations > n_contacts * (n_contacts - 1) // 2 * len(KINDS) // 4:
        raise ValueError(
            f"{n_relations:,} distinct relations need more than {n_contacts:,} contacts"
        )
    rng = random.Random(seed)
    width = len(str(n_contacts - 1))
    contacts = [f"c{i:0{width}d}" for i in range(n_contacts)]
    used: set[tuple[int, int, str]] = set()
    out = []
    for i in range(n_relations):
        kind = KINDS[i % len(KINDS)]
        while True:
            a, b = sorted(rng.sample(range(n_contacts), 2))
            if (a, b, kind) not in used:
                used.add((a, b, kind))
                break
        out.append(NewRelation(kind, contacts[a], contacts[b], f"{kind} {i}"))
    return out


class Row(NamedTuple):
    """What the walk keeps of a record (created_at first: tuples sort as the list does)."""

    created_at: str
    id: str
    kind: str
    parent_id: str
    target_id: str
    is_mirror: bool
    label: str | None


def row_of(item: dict[str, Any]) -> Row:
    return Row(
        item["created_at"],
        item["id"],
        item["kind"],
        item["parent_id"],
        item["target_id"],
        item["is_mirror"],
        item["label"],
    )


# -- the client: raw HTTP/1.1 keep-alive, one request in flight per connection ---------------


class Connection(asyncio.Protocol):
    """One keep-alive connection, asked one request at a time (``take_response`` reads the
    answers)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        response = take_response(self.buf)
        if response is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    async def ask(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> Connection:
    _, conn = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return conn


def http_get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def http_post(path: str, port: int, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- phase 0: schema, and the data model's types registered -----------------------------------


async def setup(port: int) -> None:
    conn = await connect(port)
    try:
        body = json.dumps({"schema": SCHEMA}).encode()
        status, answer = await conn.ask(
            http_post(f"/v1/tenants/{TENANT}/schemas/write", port, body)
        )
        if status != 200:
            raise RuntimeError(f"schema write failed: {status} {answer[:500]!r}")
        # The first record request registers the kinds' types; keep that out of the timing.
        status, answer = await conn.ask(http_get(SCHEMA_PATH, port))
        if status != 200:
            raise RuntimeError(f"record schema request failed: {status} {answer[:500]!r}")
    finally:
        conn.close()


# -- phase 1: creates ------------------------------------------------------------------------


async def create_all(
    port: int, relations: list[NewRelation], concurrency: int, block: int
) -> dict[str, Any]:
    requests = [
        http_post(DATA_PATH, port, json.dumps(r._asdict(), separators=(",", ":")).encode())
        for r in relations
    ]
    done: list[tuple[int, int]] = []  # (finished ns, latency ns) in completion order
    statuses: Counter[int] = Counter()
    wrong = 0
    first_error = ""
    queue = iter(range(len(requests)))

    async def worker(conn: Connection) -> None:
        nonlocal wrong, first_error
        for i in queue:
            sent = time.perf_counter_ns()
            status, body = await conn.ask(requests[i])
            now = time.perf_counter_ns()
            done.append((now, now - sent))
            statuses[status] += 1
            if status != 201:
                first_error = first_error or f"{relations[i]} -> {status} {body[:300]!r}"
                continue
            data = json.loads(body)["data"]
            r = relations[i]
            if (
                data["kind"] != r.kind
                or data["parent_id"] != r.parent_id
                or data["target_id"] != r.target_id
                or data["label"] != r.label
                or data["is_mirror"]
                or not data["pair_id"]
            ):
                wrong += 1
                first_error = first_error or f"{r} -> {body[:300]!r}"

    conns = [await connect(port) for _ in range(concurrency)]
    cpu0 = time.process_time()
    start = time.perf_counter_ns()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        for c in conns:
            c.close()
    seconds = (time.perf_counter_ns() - start) / 1e9
    if first_error:
        print(f"create, first error: {first_error}", file=sys.stderr)
    blocks = []
    prev = start
    for b in range(0, len(done), block):
        chunk = done[b : b + block]
        end = chunk[-1][0]
        blocks.append(
            {
                "relations_after": b + len(chunk),
                "creates_per_s": round(len(chunk) / ((end - prev) / 1e9), 1),
                "latency_ms": percentiles_ms(sorted(lat for _, lat in chunk)),
            }
        )
        prev = end
    non_201 = sum(n for s, n in statuses.items() if s != 201)
    return {
        "creates": len(done),
        "seconds": round(seconds, 3),
        "creates_per_s": round(len(done) / seconds, 1),
        "latency_ms": percentiles_ms(sorted(lat for _, lat in done)),
        "errors": non_201 + wrong,
        "non_201": non_201,
        "wrong": wrong,
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "blocks": blocks,
        "client_cpu_s": round(time.process_time() - cpu0, 3),
    }


# -- phase 2: the walk -----------------------------------------------------------------------


async def walk(port: int, relations: list[NewRelation]) -> tuple[dict[str, Any], list[Row]]:
    """Every record once, by created_at keyset pages of WALK_LIMIT, checked as it goes."""
    conn = await connect(port)
    rows: list[Row] = []
    problems: list[str] = []
    latencies: list[int] = []
    after: str | None = None
    pages = 0
    start = time.perf_counter()
    try:
        while True:
            path = f"{DATA_PATH}?sort=created_at&limit={WALK_LIMIT}"
            if after is not None:
                path += f"&after={after}"
            sent = time.perf_counter_ns()
            status, body = await conn.ask(http_get(path, port))
            latencies.append(time.perf_counter_ns() - sent)
            pages += 1
            if status != 200:
                problems.append(f"page {pages}: status {status} {body[:300]!r}")
                break
            answer = json.loads(body)
            page = [row_of(item) for item in answer["data"]]
            more = answer["meta"]["pagination"]["has_more"]
            next_after = answer["meta"]["pagination"].get("next_after")
            if more and len(page) != WALK_LIMIT:
                problems.append(f"page {pages}: {len(page)} rows, has_more true")
            if page != sorted(page) or len({r.id for r in page}) != len(page):
                problems.append(f"page {pages}: not in strictly ascending (created_at, id)")
            if rows and page and page[0][:2] <= rows[-1][:2]:
                problems.append(f"page {pages}: first row not after the cursor {after}")
            if more and next_after != (page[-1].id if page else None):
                problems.append(f"page {pages}: next_after {next_after!r} is not the last id")
            rows += page
            if not more or not page:
                break
            after = next_after
            if len(problems) > 20:
                break
    finally:
        conn.close()
    seconds = time.perf_counter() - start
    expected = Counter[tuple[str, str, str, str | None]]()
    for r in relations:
        expected[(r.parent_id, r.target_id, r.kind, r.label)] += 1
        expected[(r.target_id, r.parent_id, INVERSE[r.kind], r.label)] += 1
    got = Counter((r.parent_id, r.target_id, r.kind, r.label) for r in rows)
    ids = Counter(r.id for r in rows)
    repeated = sum(1 for n in ids.values() if n > 1)
    missing = sum((expected - got).values())
    extra = sum((got - expected).values())
    mirrors = sum(r.is_mirror for r in rows)
    if repeated:
        problems.append(f"{repeated} ids came more than once")
    if missing or extra:
        problems.append(f"{missing} expected records missing, {extra} unexpected")
    if mirrors != len(relations):
        problems.append(f"{mirrors} mirror rows, expected {len(relations)}")
    result = {
        "pages": pages,
        "limit": WALK_LIMIT,
        "rows": len(rows),
        "expected_rows": 2 * len(relations),
        "mirrors": mirrors,
        "seconds": round(seconds, 2),
        "latency_ms": percentiles_ms(sorted(latencies)),
        "every_record_once": not problems,
        "problems": problems[:20],
    }
    return result, rows


# -- phase 3: pages --------------------------------------------------------------------------


@dataclass(slots=True)
class Page:
    """One measured page: its path, and how to check its first answer."""

    name: str
    path: str
    check: Callable[[dict[str, Any]], list[str]]
    judged: bool  # counts toward the p50 target


def expect_rows(
    expected: list[Row],
    more: bool,
    *,
    cursor: Row | None = None,
    descending: bool = False,
    created: bool = False,
) -> Callable[[dict[str, Any]], list[str]]:
    """A check: exactly ``expected`` (ids, in order), ``has_more`` == ``more``, and for keyset
    pages the order and the first row strictly past ``cursor``."""

    def check(answer: dict[str, Any]) -> list[str]:
        problems = []
        got = [row_of(item) for item in answer["data"]]
        pagination = answer["meta"]["pagination"]
        if len(got) != len(expected):
            problems.append(f"{len(got)} rows, expected {len(expected)}")
        if [r.id for r in got] != [r.id for r in expected]:
            problems.append("not the expected rows in the expected order")
        if pagination["has_more"] != more:
            problems.append(f"has_more {pagination['has_more']}, expected {more}")
        if created:
            keys = [r[:2] for r in got]
            if keys != sorted(keys, reverse=descending) or len(set(keys)) != len(keys):
                way = "descending" if descending else "ascending"
                problems.append(f"not in strictly {way} (created_at, id)")
            want_next = got[-1].id if more and got else None
            if pagination.get("next_after") != want_next:
                problems.append(f"next_after {pagination.get('next_after')!r} != {want_next!r}")
        if cursor is not None and got:
            past = got[0][:2] < cursor[:2] if descending else got[0][:2] > cursor[:2]
            if not past:
                problems.append(f"first row is not strictly after the cursor {cursor.id}")
        return problems

    return check


def expect_entity(contact: str, outgoing: list[Row], limit: int) -> Callable[..., list[str]]:
    """The entity relation list (direction both, default order relation_type, position,
    created_at): incoming rows with a pair are left out, so exactly the contact's outgoing rows,
    by relation type."""
    ids = {r.id for r in outgoing}

    def check(answer: dict[str, Any]) -> list[str]:
        problems = []
        data = answer["data"]
        if len(data) != min(limit, len(outgoing)):
            problems.append(f"{len(data)} rows, expected {min(limit, len(outgoing))}")
        if any(item["id"] not in ids for item in data):
            problems.append(f"rows that are not contact:{contact}'s outgoing rows")
        if any(item["direction"] != "outgoing" for item in data):
            problems.append("rows not marked outgoing")
        kinds = [item["relation_type"] for item in data]
        if kinds != sorted(kinds):
            problems.append("not ordered by relation_type")
        if answer["meta"]["pagination"]["has_more"] != (len(outgoing) > limit):
            problems.append("has_more wrong")
        return problems

    return check


def plan_pages(rows: list[Row], limit: int) -> tuple[list[Page], dict[str, Any]]:
    """The pages to measure and their expected answers, from the walk's rows."""
    asc = sorted(rows)
    desc = asc[::-1]
    n = len(asc)
    by_kind = sorted(rows, key=lambda r: (r.kind, r.created_at, r.id))
    base = DATA_PATH
    pages = [
        Page(
            "records first page, default sort (kind)",
            base,
            expect_rows(by_kind[:limit], n > limit),
            judged=True,
        ),
        Page(
            "records first page, sort=created_at",
            f"{base}?sort=created_at",
            expect_rows(asc[:limit], n > limit, created=True),
            judged=True,
        ),
    ]

    def keyset(depth: int, size: int, *, descending: bool = False) -> Page:
        order = desc if descending else asc
        cursor = order[depth - 1]
        sign = "-" if descending else ""
        suffix = f"&limit={size}" if size != limit else ""
        return Page(
            f"records keyset sort={sign}created_at, depth {depth:,}"
            + (f", limit {size}" if suffix else ""),
            f"{base}?sort={sign}created_at&after={cursor.id}{suffix}",
            expect_rows(
                order[depth : depth + size],
                n > depth + size,
                cursor=cursor,
                descending=descending,
                created=True,
            ),
            judged=True,
        )

    skipped = []
    for depth in KEYSET_DEPTHS:
        if depth < n:
            pages.append(keyset(depth, limit))
        else:
            skipped.append(f"keyset depth {depth:,}")
    if n > limit:
        pages.append(keyset(n - limit, limit))
        pages[-1].name += " (last page)"
    deepest = max((d for d in KEYSET_DEPTHS if d < n), default=0)
    if deepest:
        pages.append(keyset(deepest, WALK_LIMIT))
    if n > DESC_DEPTH:
        pages.append(keyset(DESC_DEPTH, limit, descending=True))
    else:
        skipped.append(f"-created_at keyset depth {DESC_DEPTH:,}")
    for offset in OFFSETS:
        if offset >= n:
            skipped.append(f"offset {offset:,}")
            continue
        pages.append(
            Page(
                f"records offset={offset:,}, sort=created_at",
                f"{base}?sort=created_at&offset={offset}",
                expect_rows(asc[offset : offset + limit], n > offset + limit, created=True),
                judged=False,
            )
        )
    spouses = [r for r in by_kind if r.kind == FILTER_KIND]
    pages.append(
        Page(
            f"records kind={FILTER_KIND}",
            f"{base}?kind={FILTER_KIND}",
            expect_rows(spouses[:limit], len(spouses) > limit),
            judged=True,
        )
    )
    per_parent = Counter(r.parent_id for r in rows)
    contact, degree = min(per_parent.items(), key=lambda kv: (-kv[1], kv[0]))
    outgoing = [r for r in by_kind if r.parent_id == contact]
    pages.append(
        Page(
            f"records parent_id={contact} ({degree} rows)",
            f"{base}?parent_id={contact}",
            expect_rows(outgoing[:limit], degree > limit),
            judged=True,
        )
    )
    pages.append(
        Page(
            f"entity relations contact:{contact} relations",
            f"/v1/tenants/{TENANT}/entities/contact:{contact}/relations",
            expect_entity(contact, outgoing, limit),
            judged=True,
        )
    )
    info = {
        "rows": n,
        "contact": contact,
        "contact_rows": degree,
        "kind_rows": len(spouses),
        "skipped": skipped,
    }
    return pages, info


async def measure_pages(
    port: int, pages: list[Page], repeats: int, max_seconds: float
) -> list[dict[str, Any]]:
    conn = await connect(port)
    out = []
    try:
        for page in pages:
            request = http_get(page.path, port)
            first: bytes | None = None
            problems: list[str] = []
            latencies: list[int] = []
            non_200 = differ = 0
            deadline = time.perf_counter() + max_seconds
            for _ in range(repeats):
                sent = time.perf_counter_ns()
                status, body = await conn.ask(request)
                latencies.append(time.perf_counter_ns() - sent)
                if status != 200:
                    non_200 += 1
                    if not problems:
                        problems.append(f"status {status}: {body[:300]!r}")
                elif first is None:
                    first = body
                    problems += page.check(json.loads(body))
                elif body != first:
                    differ += 1
                if time.perf_counter() > deadline:
                    break
            if differ:
                problems.append(f"{differ} repeats answered differently from the first")
            lat = percentiles_ms(sorted(latencies))
            out.append(
                {
                    "name": page.name,
                    "path": page.path,
                    "asks": len(latencies),
                    "latency_ms": lat,
                    "rows": len(json.loads(first)["data"]) if first else 0,
                    "non_200": non_200,
                    "verified": not problems and not non_200,
                    "problems": problems,
                    "judged": page.judged,
                }
            )
            progress(f"  {page.name}: p50 {lat['p50']} ms")
    finally:
        conn.close()
    return out


# -- orchestration ---------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    wall = time.perf_counter()
    server_cpu, client_cpu = pin_cpus(args.no_pin)
    pinned = server_cpu is not None
    spy = find_py_spy(args.py_spy) if args.profile else None

    progress("generating the dataset")
    relations = generate(args.seed, args.contacts, args.relations)
    result: dict[str, Any] = {
        "bench": "relations",
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "pinning": f"server on CPU {server_cpu}, client on CPU {client_cpu}" if pinned else "none",
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "dataset": {
            "seed": args.seed,
            "contacts": args.contacts,
            "relations": len(relations),
            "rows": 2 * len(relations),
            "kinds": len(KINDS),
        },
        "concurrency": args.concurrency,
        "page_limit": args.page_limit,
        "repeats": args.repeats,
    }
    with (
        tempfile.TemporaryDirectory(prefix="relations-bench-db-", dir=args.dir) as db,
        server("stonetown", __file__, "--serve", "--data-dir", db, cpu=server_cpu) as srv,
    ):
        asyncio.run(setup(srv.port))
        progress(
            f"creating {len(relations):,} relations, {args.concurrency} connections (creates)"
        )
        cpu0 = srv.cpu_s()
        with profiled(spy if args.profile == "create" else None, srv.proc.pid, workdir / "c.txt"):
            create = asyncio.run(create_all(srv.port, relations, args.concurrency, args.block))
        create["server_cpu_pct"] = round(100 * (srv.cpu_s() - cpu0) / create["seconds"])
        create["client_cpu_pct"] = round(100 * create["client_cpu_s"] / create["seconds"])
        if args.profile == "create":
            create["profile"] = summarise_profile(workdir / "c.txt")
        result["create"] = create
        progress(f"  {create['creates_per_s']:,.0f} creates/s, {create['errors']} errors")

        progress(f"walking the record list by keyset pages of {WALK_LIMIT}")
        result["walk"], rows = asyncio.run(walk(srv.port, relations))
        progress(f"  {result['walk']['rows']:,} rows, ok: {result['walk']['every_record_once']}")

        pages, info = plan_pages(rows, args.page_limit)
        result["pages_info"] = info
        progress(f"{len(pages)} pages, {args.repeats} asks each")
        with profiled(spy if args.profile == "pages" else None, srv.proc.pid, workdir / "p.txt"):
            result["pages"] = asyncio.run(
                measure_pages(srv.port, pages, args.repeats, args.max_page_seconds)
            )
        if args.profile == "pages":
            result["pages_profile"] = summarise_profile(workdir / "p.txt")
    judged = [p for p in result["pages"] if p["judged"]]
    worst = max(judged, key=lambda p: p["latency_ms"]["p50"])
    result["target"] = {
        "creates_per_s_min": TARGET_CREATES_PER_S,
        "page_p50_ms_max": TARGET_PAGE_P50_MS,
        "creates_ok": create["creates_per_s"] >= TARGET_CREATES_PER_S and not create["errors"],
        "pages_ok": worst["latency_ms"]["p50"] < TARGET_PAGE_P50_MS,
        "worst_judged_page": worst["name"],
        "worst_judged_p50_ms": worst["latency_ms"]["p50"],
        "all_verified": result["walk"]["every_record_once"]
        and all(p["verified"] for p in result["pages"]),
    }
    result["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    return result


# -- report ----------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> str:
    ds, c, w, info = r["dataset"], r["create"], r["walk"], r["pages_info"]
    lat = c["latency_ms"]
    tgt = r["target"]
    load0 = ", ".join(f"{x:g}" for x in r["load_at_start"])
    load1 = ", ".join(f"{x:g}" for x in r["load_at_end"])
    lines = [
        "Relations bench: contact relationship records (create, list) and entity relations "
        f"on 127.0.0.1; python {r['python']}, "
        f"aiohttp {r['aiohttp']}; {r['cpus']} CPUs, pinning: {r['pinning']}; "
        f"load average {load0} at start, {load1} at end",
        f"dataset (seed {ds['seed']}): {ds['contacts']:,} contacts, {ds['relations']:,} relations "
        f"over {ds['kinds']} kinds, created one per POST; each create also writes its mirror row, "
        f"so the store and every record list hold {ds['rows']:,} records",
        "",
        f"create (POST, {r['concurrency']} keep-alive connections): {c['creates']:,} in "
        f"{c['seconds']:.1f} s = {c['creates_per_s']:,.0f}/s; latency p50 {lat['p50']:.2f} ms, "
        f"p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms; errors {c['errors']} "
        f"(non-201 {c['non_201']}, wrong record {c['wrong']}); server CPU {c['server_cpu_pct']}%, "
        f"client CPU {c['client_cpu_pct']}%" + (" [profiled]" if "profile" in c else ""),
        f"  {'relations so far':>18}{'creates/s':>11}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for b in c["blocks"]:
        bl = b["latency_ms"]
        lines.append(
            f"  {b['relations_after']:>18,}{b['creates_per_s']:>11,.0f}{bl['p50']:>9.2f}"
            f"{bl['p99']:>9.2f}"
        )
    wl = w["latency_ms"]
    lines += [
        "",
        f"walk: {w['pages']:,} keyset pages of {w['limit']} (sort=created_at) in {w['seconds']} s "
        f"(page p50 {wl['p50']:.2f} ms, p99 {wl['p99']:.2f} ms): {w['rows']:,} rows of "
        f"{w['expected_rows']:,} expected, {w['mirrors']:,} mirrors; every record exactly once, "
        f"in order, each page after its cursor: {'OK' if w['every_record_once'] else 'FAILED'}",
    ]
    lines += [f"  problem: {p}" for p in w["problems"]]
    lines += [
        "",
        f"list pages: limit {r['page_limit']} unless named, each asked up to {r['repeats']} times "
        "in a row on one connection; * = judged against the p50 target",
        f"  {'page':<52}{'asks':>6}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'rows':>6}  verified",
    ]
    for p in r["pages"]:
        pl = p["latency_ms"]
        mark = "*" if p["judged"] else " "
        lines.append(
            f"{mark} {p['name']:<52}{p['asks']:>6}{pl['p50']:>8.2f}{pl['p90']:>8.2f}"
            f"{pl['p99']:>8.2f}{pl['max']:>8.1f}{p['rows']:>6}  "
            + ("OK" if p["verified"] else "FAILED: " + "; ".join(p["problems"]))
        )
    if info["skipped"]:
        lines.append(f"  skipped (past the {info['rows']:,} rows): {', '.join(info['skipped'])}")
    lines += [
        "",
        f"targets: create {c['creates_per_s']:,.0f}/s (>= {tgt['creates_per_s_min']:,.0f}/s, "
        f"no errors) {'OK' if tgt['creates_ok'] else 'MISSED'}; judged page p50 worst "
        f"{tgt['worst_judged_p50_ms']:.2f} ms on {tgt['worst_judged_page']!r} "
        f"(< {tgt['page_p50_ms_max']:g} ms) {'OK' if tgt['pages_ok'] else 'MISSED'}; "
        f"answers {'all verified' if tgt['all_verified'] else 'NOT all verified'}",
    ]
    if c["server_cpu_pct"] < BUSY_CPU_PCT:
        lines.append(
            f"note: the server used {c['server_cpu_pct']}% of a core during the creates: either "
            "it waited (on the store, or the client), or something else ran on its CPU"
        )
    if "profile" in c:
        lines += profile_lines("server, create phase", c["profile"])
    if "pages_profile" in r:
        lines += profile_lines("server, page phase", r["pages_profile"])
    lines.append(f"wall {r['wall_s']} s")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relations", type=int, default=100_000, help="record creates (100,000)")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16, help="create connections (16)")
    parser.add_argument("--block", type=int, default=10_000, help="creates per reported block")
    parser.add_argument("--repeats", type=int, default=200, help="asks per measured page")
    parser.add_argument("--max-page-seconds", type=float, default=30.0)
    parser.add_argument("--page-limit", type=int, default=20, help="limit of the measured pages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", choices=("create", "pages"), help="py-spy the server")
    add_common_arguments(parser)
    # The server process this script starts.
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(lambda: stonetown_runner(args.data_dir), args.cpu)
        return
    if args.relations < 1 or args.concurrency < 1 or args.repeats < 1 or args.block < 1:
        parser.error("--relations, --concurrency, --repeats and --block must be >= 1")
    if not 1 <= args.page_limit <= WALK_LIMIT:
        parser.error(f"--page-limit must be 1..{WALK_LIMIT}")
    run_and_report(args, "relations-bench-", run, report)


if __name__ == "__main__":
    main()
