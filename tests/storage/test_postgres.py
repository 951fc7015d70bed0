"""What only the PostgreSQL store has: several processes' stores over one database (revision
order under concurrent writers, tokens honoured across them), migrations, and the database
going away and coming back. Everything the other backends share is in test_conformance.py."""

from __future__ import annotations

import random
import struct
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from dsl.schema import AttributeType
from storage import tokens
from storage.base import (
    DEFAULT_TENANT,
    Attribute,
    Changes,
    Record,
    SnapshotReader,
    Subject,
    Tuple,
    TupleFilter,
)
from storage.errors import (
    Conflict,
    DatabaseOutdated,
    InvalidToken,
    SnapshotExpired,
    StoreUnavailable,
    TenantNotFound,
)
from storage.postgres import LATEST_VERSION, PostgresStore, migrate, schema_version
from storage.postgres.database import MAX_SPIN_SECONDS, Database, PooledConnection, PreparedRead
from storage.postgres.reader import ENTITY_ROWS, LEVEL_ENTITIES, WALK_ENTITIES, PostgresReader
from storage.postgres.store import AT_HEAD
from tests.postgres import PostgresServer

TENANT = DEFAULT_TENANT
INT = AttributeType.INTEGER


def replicas(url: str, count: int) -> list[PostgresStore]:
    """``count`` stores on one database, as ``count`` server processes would open them."""
    return [PostgresStore(url, gc_interval=None, pool_size=4) for _ in range(count)]


def test_a_reader_at_revision_r_never_later_sees_a_write_at_or_below_r_appear(
    postgres_url: str,
) -> None:
    """Writers on three replicas race readers on the same three. Every snapshot a reader took
    (its revision and what it saw) must hold exactly the writes with revisions up to its own,
    read again at the end on another replica: a write given a revision at or below a reader's
    that committed after the reader looked (what allocating revisions from a sequence, in
    begin order, would allow) fails it."""
    stores = replicas(postgres_url, 3)
    written: dict[str, int] = {}  # entity id -> the revision its write got
    seen: list[tuple[int, frozenset[str]]] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        rng = random.Random(w)
        mine, other = stores[w % 3], stores[(w + 1) % 3]
        try:
            for i in range(25):
                eid = f"{w}-{i}"
                # Writes of different sizes take different times to commit.
                padding = [
                    Tuple("doc", f"{eid}-{k}", "pad", "user", "u") for k in range(rng.randrange(40))
                ]
                token = mine.write(
                    TENANT,
                    Changes(write_tuples=[Tuple("doc", eid, "viewer", "user", "u"), *padding]),
                )
                # Read-your-writes across replicas: the token is honoured by another one.
                there = other.reader(TENANT, token)
                assert there.has_tuple(Tuple("doc", eid, "viewer", "user", "u"))
                written[eid] = int(there.revision)
        except BaseException as exc:
            failures.append(exc)

    def reader(k: int) -> None:
        store = stores[k % 3]
        try:
            while not done.is_set():
                r = store.reader(TENANT)
                ids = frozenset(
                    t.entity_id
                    for t in r.iter_tuples(TupleFilter(entity_type="doc", relation="viewer"))
                )
                seen.append((int(r.revision), ids))
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    _race(writers, readers, done)
    try:
        assert not failures, failures
        revisions = sorted(written.values())
        assert revisions == list(range(1, len(revisions) + 1))  # one each, none lost
        assert len(seen) > 10
        for revision, ids in seen:
            expected = {eid for eid, at in written.items() if at <= revision}
            assert ids == expected, (
                f"a reader at revision {revision} saw {sorted(ids ^ expected)} differ"
            )
        last = stores[2].reader(TENANT)
        for revision, ids in seen[:: max(1, len(seen) // 20)]:
            token = last.token if revision == last.revision else None
            again = stores[2].reader(TENANT, token or _token(stores[2], revision))
            got = frozenset(
                t.entity_id
                for t in again.iter_tuples(TupleFilter(entity_type="doc", relation="viewer"))
            )
            assert got == ids  # repeatable on any replica
    finally:
        for store in stores:
            store.close()


def _token(store: PostgresStore, revision: int) -> str:
    return tokens.encode_snap(store._store_id, revision)


def test_racing_one_to_one_transactions_on_two_replicas_commit_exactly_once(
    postgres_url: str,
) -> None:
    stores = replicas(postgres_url, 2)
    barrier = threading.Barrier(10)
    winners: list[int] = []

    def claim(n: int) -> None:
        def build(reader: SnapshotReader) -> Changes:
            if reader.record("slot", ("doc", "1")) is not None:
                raise Conflict("taken")
            return Changes(
                write_tuples=[Tuple("doc", "1", "owner", "user", str(n))],
                put_records=[Record("slot", ("doc", "1"), str(n).encode())],
            )

        barrier.wait()
        try:
            stores[n % 2].transact(TENANT, build)
            winners.append(n)
        except Conflict:
            pass

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(winners) == 1
        for store in stores:
            r = store.reader(TENANT)
            assert [s.id for s in r.subjects("doc", "1", "owner")] == [str(winners[0])]
    finally:
        for store in stores:
            store.close()


def test_with_max_staleness_a_token_still_reads_its_write_on_another_replica(
    postgres_url: str,
) -> None:
    writer = PostgresStore(postgres_url, gc_interval=None)
    lagging = PostgresStore(postgres_url, gc_interval=None, max_staleness=60.0)
    try:
        before = lagging.reader(TENANT).revision
        token = writer.write(
            TENANT, Changes(write_tuples=[Tuple("doc", "1", "viewer", "user", "u")])
        )
        # Without a token, a head up to 60 s old may answer...
        assert lagging.reader(TENANT).revision == before
        # ...but a token newer than it is looked up afresh: read-your-writes across replicas.
        assert lagging.reader(TENANT, token).has_tuple(Tuple("doc", "1", "viewer", "user", "u"))
        assert lagging.reader(TENANT).revision > before
    finally:
        writer.close()
        lagging.close()


def test_reads_past_the_walk_bounds_are_exact(postgres_url: str) -> None:
    """A chain of groups longer than one walk loads, and a group with more members than an
    entity kept whole: every read still sees exactly its tuples."""
    chain = WALK_ENTITIES * 2
    tuples = [Tuple("doc", "1", "viewer", "group", "g0", "member")]
    for i in range(chain):
        tuples.append(Tuple("group", f"g{i}", "member", "group", f"g{i + 1}", "member"))
        tuples.append(Tuple("group", f"g{i}", "member", "user", f"u{i}"))
    big = [Tuple("group", "g7", "member", "user", f"big{k:04}") for k in range(ENTITY_ROWS)]
    with PostgresStore(postgres_url, gc_interval=None) as store:
        store.write(TENANT, Changes(write_tuples=tuples + big, unbounded=True))
        expected: dict[tuple[str, str, str], list[Tuple]] = {}
        for t in tuples + big:
            expected.setdefault((t.entity_type, t.entity_id, t.relation), []).append(t)
        r = store.reader(TENANT)
        for i in range(chain):
            key = ("group", f"g{i}", "member")
            assert r.subjects(*key) == sorted(t.subject for t in expected[key])
        assert r.relations("group", "g7", limit=64) is None
        assert len(r.subject_set("group", "g7", "member")) == ENTITY_ROWS + 2
        assert [list(s) for s in r.relations("doc", "1", limit=64).values()] == [  # type: ignore[union-attr]
            [tuples[0].subject]
        ]


def test_an_entity_read_with_the_head_is_exactly_its_tuples_at_that_head(
    postgres_url: str,
) -> None:
    """``prefetch``: an entity past the row bound (then read relation by relation), one without
    tuples, and one whose tuples were deleted and written again, each read in the head's
    statement, answer as the same reads without it. A request with an older snap token gets
    its entity as of the token, with no read of its own; one round reads each entity at the
    revision its request wants, or the head when that is newer."""
    big = [Tuple("group", "big", "member", "user", f"u{k:04}") for k in range(ENTITY_ROWS + 3)]
    with PostgresStore(postgres_url, gc_interval=None) as store:
        store.write(TENANT, Changes(write_tuples=big, unbounded=True))
        gone = Tuple("doc", "1", "viewer", "user", "a")
        token = store.write(
            TENANT, Changes(write_tuples=[gone, Tuple("doc", "1", "owner", "user", "b")])
        )
        store.write(TENANT, Changes(delete_tuples=[gone]))
        for entity in (("group", "big"), ("doc", "none"), ("doc", "1")):
            store._latest.clear()  # a fresh reader, so that the entity is read with the head
            r = store.reader(TENANT, prefetch=entity)
            assert r._prefetched.keys() == {entity}
            plain = PostgresReader(store, TENANT, r._pk, r.revision)
            for relation in ("member", "viewer", "owner"):
                assert r.subjects(*entity, relation) == plain.subjects(*entity, relation)
            got = r.relations(*entity, limit=ENTITY_ROWS + 10)
            want = plain.relations(*entity, limit=ENTITY_ROWS + 10)
            assert (got is None) == (want is None)
            if got is not None and want is not None:
                assert {k: list(v) for k, v in got.items()} == {k: list(v) for k, v in want.items()}
        assert r.subjects("doc", "1", "viewer") == []  # deleted before the head
        assert (
            len(store.reader(TENANT, prefetch=("group", "big")).subjects("group", "big", "member"))
            == ENTITY_ROWS + 3
        )
        at_token = store.reader(TENANT, token, prefetch=("doc", "1"))
        assert at_token.revision < r.revision
        assert at_token._prefetched.keys() == {("doc", "1")}
        before = store.reads
        assert at_token.subjects("doc", "1", "viewer") == [gone.subject]  # as of the token
        assert store.reads == before
        head = int(r.revision)
        wanted = [
            ("doc", "1", int(at_token.revision)),
            ("doc", "1", AT_HEAD),
            ("doc", "1", head + 9),
        ]
        state, loaded = store._query_head(TENANT, wanted)
        assert state.revision == head
        viewers = [(loaded[w] or {}).get("viewer", []) for w in wanted]
        assert viewers == [[gone.subject], [], []]
        for revision in (head + 1, 2**64 - 1):  # newer than the head, or than any BIGINT
            with pytest.raises(InvalidToken):
                store.reader(
                    TENANT, tokens.encode_snap(store._store_id, revision), prefetch=("doc", "1")
                )


def test_a_walk_reads_a_level_per_round_trip_at_the_readers_revision(postgres_url: str) -> None:
    """Reading a document loads the folders and groups it leads to that the reader lacks, one
    read per level (a level wider than one read takes its first LEVEL_ENTITIES, a group past
    the row bound ends its branch, a cycle of groups ends): then each answers with no read.
    Every answer is exactly the entity's tuples at the reader's revision, at the head and at an
    older token whose entities a later write touched; entities read with the head are walked
    to without a read."""
    depth = 5
    wide = LEVEL_ENTITIES + 4
    tuples = [Tuple("doc", "1", "owner", "user", "o"), Tuple("doc", "1", "parent", "folder", "f0")]
    tuples += [Tuple("folder", f"f{i}", "parent", "folder", f"f{i + 1}") for i in range(depth)]
    tuples += [Tuple("folder", "f0", "viewer", "group", f"w{k:02}", "member") for k in range(wide)]
    tuples += [Tuple("group", f"w{k:02}", "member", "user", f"u{k}") for k in range(wide)]
    tuples += [
        Tuple("folder", "f3", "viewer", "user", "gone"),
        Tuple("folder", f"f{depth}", "viewer", "group", "a", "member"),
        Tuple("group", "a", "member", "group", "b", "member"),
        Tuple("group", "b", "member", "group", "a", "member"),
    ]
    tuples += [Tuple("group", "b", "member", "user", f"x{k:04}") for k in range(ENTITY_ROWS)]
    added = [
        Tuple("folder", "f2", "viewer", "user", "late"),
        Tuple("group", "a", "member", "user", "late"),
    ]
    deleted = [
        Tuple("folder", "f3", "viewer", "user", "gone"),
        Tuple("group", "w03", "member", "user", "u3"),
    ]
    entities = sorted({(t.entity_type, t.entity_id) for t in tuples})
    relations = sorted({t.relation for t in tuples})

    def expect(r: PostgresReader, model: set[Tuple]) -> None:
        for entity_type, entity_id in entities:
            for relation in relations:
                want = sorted(
                    t.subject
                    for t in model
                    if (t.entity_type, t.entity_id, t.relation)
                    == (entity_type, entity_id, relation)
                )
                assert r.subjects(entity_type, entity_id, relation) == want, (entity_id, relation)

    # Levels: f0 | f1 and the first 15 groups on f0 | f2 | f3 | f4 | f5 | a | b (too big to
    # keep: not walked on).
    levels = depth + 3
    walked = [("folder", f"f{i}") for i in range(depth + 1)] + [("group", "a")]
    walked += [("group", f"w{k:02}") for k in range(LEVEL_ENTITIES - 1)]
    with PostgresStore(postgres_url, gc_interval=None) as writer:
        token = writer.write(TENANT, Changes(write_tuples=tuples, unbounded=True))
        writer.write(TENANT, Changes(write_tuples=added, delete_tuples=deleted))
    with PostgresStore(postgres_url, gc_interval=None) as store:  # a replica holding nothing
        r = store.reader(TENANT, prefetch=("doc", "1"))
        store._inner_types(r._pk)  # the tuple kinds: read once per store, not per walk
        before = store.reads
        assert r.subjects("doc", "1", "parent") == [Subject("folder", "f0")]
        assert store.reads - before == levels
        for entity in walked:
            r.relations(*entity, limit=64)
        assert store.reads - before == levels
        expect(r, set(tuples) - set(deleted) | set(added))
        at_token = store.reader(TENANT, token)
        expect(at_token, set(tuples))  # as if the later write had not happened
    with PostgresStore(postgres_url, gc_interval=None) as store:
        # Two requests' entities read with one head (a round), handed on as store.reader does.
        state, loaded = store._query_head(
            TENANT, [("doc", "1", AT_HEAD), ("folder", "f0", AT_HEAD)]
        )
        r = store._open_reader(TENANT, "", state, state.revision)
        r.offer(
            {
                (entity_type, entity_id): found
                for (entity_type, entity_id, _), found in loaded.items()
            }
        )
        store._inner_types(r._pk)
        before = store.reads
        r.relations("doc", "1", limit=64)
        assert store.reads - before == levels - 1  # f0 came with the head
        expect(r, set(tuples) - set(deleted) | set(added))


# -- migrations -------------------------------------------------------------------------------


@pytest.fixture
def bare_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database no migration has touched."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def test_migrations_from_several_processes_at_once_apply_each_step_once(bare_url: str) -> None:
    with pytest.raises(DatabaseOutdated, match="stonetown migrate"):
        PostgresStore(bare_url, gc_interval=None)
    assert schema_version(bare_url) == 0
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        results.append(migrate(bare_url))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    applied = sorted(v for found in results for v in found)
    assert applied == list(range(1, LATEST_VERSION + 1))  # every step, each by one migrator
    assert schema_version(bare_url) == LATEST_VERSION
    assert migrate(bare_url) == []  # idempotent
    with psycopg.connect(bare_url) as conn:
        assert conn.execute("SELECT count(*) FROM stonetown_tenants").fetchone() == (1,)
    with PostgresStore(bare_url, gc_interval=None) as store:
        assert store.get_tenant(TENANT).id == TENANT


def test_a_database_newer_than_the_server_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "INSERT INTO stonetown_migrations (version, applied_at) VALUES (%s, 0)",
            (LATEST_VERSION + 1,),
        )
    with pytest.raises(Exception, match="newer than this server"):
        PostgresStore(postgres_url, gc_interval=None)


# -- the database going away ------------------------------------------------------------------


def _refuse_connections(postgres_server: PostgresServer, url: str, refuse: bool) -> None:
    """Make the database at ``url`` refuse new connections and drop the open ones (what a
    database going away looks like to its clients), or accept them again."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    postgres_server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not refuse).lower()}')
    if refuse:
        postgres_server.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )


def test_a_database_gone_away_is_unavailable_at_once_and_back_without_a_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresStore(postgres_url, gc_interval=None, timeout_seconds=0.5, pool_size=2)
    try:
        token = store.write(
            TENANT, Changes(write_tuples=[Tuple("doc", "1", "viewer", "user", "u")])
        )
        store.ping()
        _refuse_connections(postgres_server, postgres_url, True)
        for call in (
            store.ping,
            lambda: store.reader(TENANT),
            lambda: store.write(
                TENANT, Changes(write_tuples=[Tuple("doc", "2", "viewer", "user", "u")])
            ),
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                call()
            assert time.monotonic() - started < 2  # about the timeout, never a hang
        _refuse_connections(postgres_server, postgres_url, False)
        # Back at once: the first request after makes a new connection.
        assert store.reader(TENANT, token).has_tuple(Tuple("doc", "1", "viewer", "user", "u"))
        # Pooled connections broken under it (a restart) cost a retry, not a failed request.
        postgres_server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            f"'{psycopg.conninfo.conninfo_to_dict(postgres_url)['dbname']}'"
        )
        assert store.reader(TENANT, token).has_tuple(Tuple("doc", "1", "viewer", "user", "u"))
    finally:
        store.close()
    _refuse_connections(postgres_server, postgres_url, True)
    try:
        with pytest.raises(StoreUnavailable):
            PostgresStore(postgres_url, gc_interval=None, timeout_seconds=0.5)
    finally:
        _refuse_connections(postgres_server, postgres_url, False)


def test_readers_at_successive_revisions_reuse_only_what_no_write_touched(
    postgres_url: str,
) -> None:
    """Each new latest reader takes over the previous one's reads but for the entities written
    since: checked against a model after every write of a random history, on the very reads
    (relations, subjects, attributes) the engine makes."""
    rng = random.Random(7)
    docs = [str(i) for i in range(6)]
    model: set[Tuple] = set()
    attributes: dict[str, int] = {}
    with PostgresStore(postgres_url, gc_interval=None) as store:
        for step in range(60):
            r = store.reader(TENANT)
            for d in docs:
                want = sorted(
                    t.subject for t in model if t.entity_id == d and t.relation == "viewer"
                )
                assert r.subjects("doc", d, "viewer") == want, (step, d)
                found = r.relations("doc", d, limit=64)
                assert found is not None
                assert list(found.get("viewer", [])) == want
                got = r.attribute("doc", d, "rank")
                assert (got.value if got else None) == attributes.get(d)
            t = Tuple("doc", rng.choice(docs), "viewer", "user", str(rng.randrange(4)))
            d = rng.choice(docs)
            if t in model:
                model.discard(t)
                store.write(TENANT, Changes(delete_tuples=[t]))
            elif step % 5 == 4:
                attributes[d] = step
                store.write(
                    TENANT, Changes(write_attributes=[Attribute("doc", d, "rank", INT, step)])
                )
            else:
                model.add(t)
                store.write(TENANT, Changes(write_tuples=[t]))


def test_requests_naming_one_snap_token_share_a_reader_yet_a_deleted_tenant_is_refused(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url, gc_interval=None)
    try:
        first = store.write(
            TENANT, Changes(write_tuples=[Tuple("doc", "1", "viewer", "user", "u")])
        )
        store.write(TENANT, Changes(write_tuples=[Tuple("doc", "2", "viewer", "user", "u")]))
        at_first = store.reader(TENANT, first)
        assert store.reader(TENANT, first) is at_first  # what it loaded serves the next request
        assert at_first.has_tuple(Tuple("doc", "1", "viewer", "user", "u"))
        assert not at_first.has_tuple(Tuple("doc", "2", "viewer", "user", "u"))
        head = store.head(TENANT)
        latest = store.reader(TENANT)
        assert store.reader(TENANT, head) is latest  # the head's token: the latest reader
        store.delete_tenant(TENANT)
        with pytest.raises(TenantNotFound):
            store.reader(TENANT, first)
        store.create_tenant(TENANT)  # a new incarnation: the old token names none of its state
        with pytest.raises((SnapshotExpired, InvalidToken)):
            store.reader(TENANT, first)
    finally:
        store.close()


def test_a_write_acknowledged_before_a_request_starts_is_visible_to_it(
    postgres_url: str,
) -> None:
    """Concurrent requests share reads of the tenant's head, each read with the entities they
    asked for (``prefetch``). A request must never share a read sent before it arrived: that
    read may predate a write acknowledged in between. Writers on each of two replicas read, right
    after each acknowledgement, on the other one, while readers keep the head being read there;
    every request must see the newest write acknowledged before it started, entity included."""
    stores = replicas(postgres_url, 2)
    lock = threading.Lock()
    acked = [(0, "")]  # the newest acknowledged write: its revision and document
    done = threading.Event()
    failures: list[BaseException] = []
    requests = [0, 0]

    def ask(k: int, revision: int, eid: str) -> None:
        r = stores[k].reader(TENANT, prefetch=("doc", eid) if eid else None)
        requests[k] += 1
        assert int(r.revision) >= revision, f"replica {k} read {r.revision} after {revision}"
        if eid:
            assert r.subjects("doc", eid, "viewer") == [Subject("user", "u", "")], eid

    def writer(w: int) -> None:
        mine, other = stores[w % 2], (w + 1) % 2
        try:
            for i in range(40):
                eid = f"{w}-{i}"
                token = mine.write(
                    TENANT, Changes(write_tuples=[Tuple("doc", eid, "viewer", "user", "u")])
                )
                revision = tokens.decode_snap(mine._store_id, token)
                with lock:
                    acked[0] = max(acked[0], (revision, eid))
                ask(other, revision, eid)  # starts after the acknowledgement
        except BaseException as exc:
            failures.append(exc)

    def reader(k: int) -> None:
        try:
            while not done.is_set():
                revision, eid = acked[0]
                ask(k % 2, revision, eid)
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    try:
        _race(writers, readers, done)
        assert not failures, failures[:3]
        # Every request was answered by a head read of its own or a shared one (how many were
        # shared depends on how the threads overlapped, so only the bound is asserted).
        for k, store in enumerate(stores):
            assert 0 < store.head_reads <= requests[k], (store.head_reads, requests[k])
    finally:
        done.set()
        for store in stores:
            store.close()


def _race(
    writers: list[threading.Thread], readers: list[threading.Thread], done: threading.Event
) -> None:
    """Run the writers and the readers together: the readers read until the writers are done
    (``done`` is set after the last writer ends)."""
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()


# -- waiting for answers: poll first, then sleep ------------------------------------------------


def _cpu_and_wall(read: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    read()
    return time.thread_time() - cpu, time.perf_counter() - wall


def test_a_read_polls_for_its_answer_for_at_most_its_spin_then_sleeps(postgres_url: str) -> None:
    with PooledConnection.connect(postgres_url, autocommit=True) as conn:
        assert conn.read("SELECT %s::int", (7,), spin=0.001) == [(7,)]
        # An answer due within the spin is polled for: the thread spends the wait on a core.
        spun, _ = _cpu_and_wall(lambda: conn.read("SELECT pg_sleep(0.02)", (), spin=0.2))
        slept, _ = _cpu_and_wall(lambda: conn.read("SELECT pg_sleep(0.02)", (), spin=0.0))
        assert spun > 0.005 > slept
        # One due after it: polled for the spin, then slept on.
        cpu, wall = _cpu_and_wall(lambda: conn.read("SELECT pg_sleep(0.3)", (), spin=0.001))
        assert wall >= 0.3 and cpu < 0.1
        assert conn.read("SELECT 1", ()) == [(1,)]


def test_the_spin_is_bounded(postgres_url: str) -> None:
    with pytest.raises(ValueError, match=r"spin_seconds must be 0 to 0\.001"):
        PostgresStore(postgres_url, spin_seconds=0.002)
    with PostgresStore(postgres_url, spin_seconds=MAX_SPIN_SECONDS, gc_interval=None) as store:
        store.write_schema(TENANT, "entity user {}")
        assert store.reader(TENANT).revision == store.reader(TENANT).revision


def test_a_read_polls_only_while_no_other_thread_of_the_process_reads(postgres_url: str) -> None:
    with PostgresStore(postgres_url, gc_interval=None) as store:
        db = store._db
        assert db.spin > 0
        polled = db.polled
        db.rows("SELECT 1")
        assert db.polled == polled + 1
        started = threading.Event()
        slow = threading.Thread(
            target=lambda: (started.set(), db.rows("SELECT pg_sleep(0.5)")), daemon=True
        )
        slow.start()
        try:
            started.wait()
            time.sleep(0.1)  # the other thread is inside its read
            db.rows("SELECT 1")
            assert db.polled == polled + 2  # the other thread's read polled; this one did not
        finally:
            slow.join()
        db.rows("SELECT 1")
        assert db.polled == polled + 3


# -- prepared reads: the engine's hot statements through libpq ----------------------------------

#: Every parameter type a prepared read takes, NULL and the extremes included, and the column
#: types the engine's statements return (bigint, integer, bytea, an array of bytea).
_ECHO = PreparedRead(
    "SELECT %s::bytea, %s::bigint, 1 / %s::bigint, ARRAY[%s::bytea, NULL]"
    " FROM generate_series(1, %s::bigint) AS n",
    "bqqbq",
)


def _prepared_count(conn: psycopg.Connection[tuple[object, ...]], name: bytes) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE name = %s", (name.decode(),)
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    "params",
    [
        (b"a\x00\xff", 2**63 - 1, 1, b"", 2),
        (None, -(2**63), -1, None, 1),
        (b"x" * 10_000, 0, 7, "é".encode(), 0),
    ],
)
def test_a_prepared_read_answers_as_psycopg_does_prepared_once_per_connection(
    postgres_url: str, params: tuple[object, ...]
) -> None:
    with PooledConnection.connect(postgres_url, autocommit=True) as conn:
        through_psycopg = conn.execute(_ECHO.sql, params, binary=True).fetchall()
        assert conn.read(_ECHO, params) == through_psycopg
        assert conn.read(_ECHO, params, spin=0.001) == through_psycopg
        # The name comes from the text: another object of the same statement is not prepared
        # again (a second PREPARE of the name would fail).
        again = PreparedRead(_ECHO.sql, "bqqbq")
        assert again.name == _ECHO.name
        assert conn.read(again, params) == through_psycopg
        assert _prepared_count(conn, _ECHO.name) == 1
        # A read inside a transaction goes through psycopg, with the same answer.
        db = Database(postgres_url, pool_size=1, timeout_seconds=5)
        try:
            assert db.rows(_ECHO, params) == through_psycopg
            with db.transaction() as tx:
                assert db.rows(_ECHO, params, tx) == through_psycopg
        finally:
            db.close()


def test_a_prepared_read_sends_only_the_types_it_declares(postgres_url: str) -> None:
    with pytest.raises(ValueError, match=r"parameter types 'bb' \(b: bytea, q: bigint\) for 1 "):
        PreparedRead("SELECT %s::bytea", "bb")
    with pytest.raises(ValueError, match="parameter types 's'"):
        PreparedRead("SELECT %s::text", "s")
    with pytest.raises(ValueError, match="no %% escapes"):
        PreparedRead("SELECT '%%' || %s::bytea", "b")
    with PooledConnection.connect(postgres_url, autocommit=True) as conn:
        good = (b"a", 1, 1, b"b", 1)
        for bad, message in [
            (("a", 1, 1, b"b", 1), "bytes or buffer expected, got <class 'str'>"),
            ((1, 1, 1, b"b", 1), "bytes or buffer expected, got <class 'int'>"),
            ((b"a", 1, 1, b"b"), "5 parameters expected, got 4"),
        ]:
            with pytest.raises(TypeError, match=message):
                conn.read(_ECHO, bad)
        with pytest.raises(struct.error):
            conn.read(_ECHO, (b"a", b"1", 1, b"b", 1))
        with pytest.raises(struct.error):
            conn.read(_ECHO, (b"a", 2**63, 1, b"b", 1))
        assert conn.read(_ECHO, good) == [(b"a", 1, 1, [b"b", None])]  # nothing was sent


def test_a_prepared_read_failing_in_the_database_raises_as_psycopg_would(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with PooledConnection.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
            conn.read(_ECHO, (b"a", 1, 0, b"b", 1))
        assert conn.read(_ECHO, (b"a", 1, 1, b"b", 1)) == [(b"a", 1, 1, [b"b", None])]
    sleep = PreparedRead("SELECT 1 FROM pg_sleep(%s::bigint / 1000.0)", "q")
    db = Database(postgres_url, pool_size=2, timeout_seconds=0.2)
    try:
        assert db.rows(sleep, (1,)) == [(1,)]
        with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.2 s"):
            db.rows(sleep, (1000,))
        # A restart breaks the pooled connections: the read goes on with a new one, which
        # prepares the statement for itself.
        postgres_server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            f"'{psycopg.conninfo.conninfo_to_dict(postgres_url)['dbname']}' AND pid <> "
            "pg_backend_pid()"
        )
        assert db.rows(sleep, (1,)) == [(1,)]
    finally:
        db.close()


def test_a_prepared_read_deallocated_under_it_is_prepared_again(postgres_url: str) -> None:
    params = (b"a", 1, 1, b"b", 1)
    answer = [(b"a", 1, 1, [b"b", None])]
    with PooledConnection.connect(postgres_url, autocommit=True) as conn:
        assert conn.read(_ECHO, params) == answer
        conn.execute("DEALLOCATE ALL")
        assert _prepared_count(conn, _ECHO.name) == 0
        assert conn.read(_ECHO, params) == answer
        assert _prepared_count(conn, _ECHO.name) == 1
        # psycopg deallocates every statement of a connection where it prepared one of its
        # own when a transaction there rolls back (as a write's failed savepoint does).
        conn.execute("SELECT 1", prepare=True)
        with pytest.raises(ZeroDivisionError), conn.transaction():
            conn.execute("SELECT 2")
            raise ZeroDivisionError
        assert _prepared_count(conn, _ECHO.name) == 0
        assert conn.read(_ECHO, params) == answer
