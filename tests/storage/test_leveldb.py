"""What only the LevelDB store has to get right: persistence across reopen, the directory lock,
closing, store-bound tokens, garbage collection, tenant deletion and surviving a killed writer.

Every test runs on a real LevelDB in ``tmp_path``. Where the contract is about bytes on disk (GC
and tenant deletion remove keys) the tests scan the database directly through ``store._db``,
building the prefixes with ``storage.keys`` so they check the documented layout.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plyvel
import pytest

from dsl.schema import AttributeType
from storage import keys, tokens
from storage.base import (
    Attribute,
    AttributeFilter,
    AttributeKey,
    AttributeValue,
    Changes,
    Record,
    Subject,
    TenantInfo,
    Tuple,
    TupleFilter,
)
from storage.errors import (
    InvalidToken,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    StoreClosed,
    StoreLocked,
    TenantNotFound,
)
from storage.leveldb import LevelDBReader, LevelDBStore

REPO_ROOT = Path(__file__).resolve().parents[2]
T1 = "t1"
WINDOW = 100.0  # seconds of history kept by the GC tests' stores
SCHEMA = "entity user {}\n\nentity doc {\n  relation viewer @user\n}\n"


def tup(text: str) -> Tuple:
    return Tuple.parse(text)


def attr(entity: str, name: str, kind: AttributeType, value: AttributeValue) -> Attribute:
    et, eid = entity.split(":")
    return Attribute(et, eid, name, kind, value)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[LevelDBStore]:
    s = LevelDBStore(data_dir, gc_interval=None, gc_window=WINDOW)
    yield s
    s.close()


# -- raw views of the database ---------------------------------------------------------------


def raw_items(store: LevelDBStore, prefix: bytes | None = None) -> dict[bytes, bytes]:
    it = store._db.iterator(prefix=prefix) if prefix else store._db.iterator()
    return dict(it)


def raw_keys(store: LevelDBStore, prefix: bytes) -> list[bytes]:
    return list(store._db.iterator(prefix=prefix, include_value=False))


def tuple_keys(store: LevelDBStore, tenant: str, t: Tuple) -> list[bytes]:
    """Every F, R and D key of any version of ``t``."""
    tp = keys.tenant_prefix(tenant)
    found = raw_keys(store, keys.forward_prefix(tp, *t))
    found += raw_keys(store, tp + keys.REVERSE + keys.reverse_body(t))
    marker = keys.FORWARD + keys.forward_body(t)
    dead = tp + keys.DEAD
    found += [k for k in raw_keys(store, dead) if k[len(dead) + 8 :].startswith(marker)]
    return found


def attribute_keys(store: LevelDBStore, tenant: str, key: AttributeKey) -> list[bytes]:
    """Every A and D key of any version of one attribute."""
    tp = keys.tenant_prefix(tenant)
    found = raw_keys(store, keys.attribute_prefix(tp, *key))
    marker = keys.ATTRIBUTES + keys.components(key)
    dead = tp + keys.DEAD
    found += [k for k in raw_keys(store, dead) if k[len(dead) + 8 :].startswith(marker)]
    return found


# -- a workload with history -----------------------------------------------------------------

ALICE = tup("doc:1#viewer@user:alice")
BOB = tup("doc:1#viewer@user:bob")
CAROL = tup("doc:1#viewer@user:carol")
OWNER = tup("doc:2#owner@user:alice")
PARENT = tup("doc:1#parent@folder:x")
FOLDER = tup("folder:x#viewer@group:g#member")
DAVE = tup("doc:3#viewer@user:dave")
PUBLIC = AttributeKey("doc", "1", "public")
LEVEL = AttributeKey("doc", "2", "level")
TAGS = AttributeKey("doc", "3", "tags")


def workload() -> list[Changes]:
    """Six writes (revisions 1..6) that create, delete, re-create and overwrite."""
    level = AttributeType.INTEGER
    return [
        Changes(
            write_tuples=[ALICE, BOB, OWNER, PARENT, FOLDER],
            write_attributes=[
                attr("doc:1", "public", AttributeType.BOOLEAN, True),
                attr("doc:2", "level", level, 1),
            ],
            put_records=[Record("meta", ("doc", "1"), b"v1")],
        ),
        Changes(delete_tuples=[BOB], write_attributes=[attr("doc:2", "level", level, 2)]),
        Changes(write_tuples=[CAROL], delete_attributes=[PUBLIC]),
        Changes(write_tuples=[BOB], delete_tuples=[OWNER]),
        Changes(
            delete_tuple_filters=[TupleFilter(entity_type="folder")],
            write_attributes=[attr("doc:2", "level", level, 3)],
        ),
        Changes(
            write_tuples=[DAVE],
            delete_tuples=[CAROL],
            write_attributes=[attr("doc:3", "tags", AttributeType.STRING_ARRAY, ["a", "b"])],
        ),
    ]


def write_all(store: LevelDBStore, batches: list[Changes], tenant: str = T1) -> list[str]:
    return [store.write(tenant, c) for c in batches]


def snapshot(reader: LevelDBReader) -> dict[str, Any]:
    """Everything a reader answers for the workload, as plain data (holds no reader)."""
    pages = []
    cursor = ""
    while True:
        page = reader.read_tuples(TupleFilter(entity_type="doc"), page_size=2, cursor=cursor)
        pages.append((page.items, page.cursor))
        cursor = page.cursor
        if not cursor:
            break
    attr_pages = []
    cursor = ""
    while True:
        apage = reader.read_attributes(AttributeFilter(), page_size=1, cursor=cursor)
        attr_pages.append((apage.items, apage.cursor))
        cursor = apage.cursor
        if not cursor:
            break
    return {
        "revision": reader.revision,
        "tuples": list(reader.iter_tuples(TupleFilter())),
        "by_subject": list(reader.iter_tuples(TupleFilter(subject_type="user"))),
        "pages": pages,
        "subjects": reader.subjects("doc", "1", "viewer"),
        "entity_ids": list(reader.entity_ids("doc", "viewer", Subject("user", "bob"))),
        "has": [reader.has_tuple(t) for t in (ALICE, BOB, CAROL, OWNER, FOLDER, DAVE)],
        "attributes": list(reader.iter_attributes(AttributeFilter())),
        "attr_pages": attr_pages,
        "doc2": reader.attributes("doc", "2"),
        "point": [reader.attribute(*k) for k in (PUBLIC, LEVEL, TAGS)],
    }


def snapshot_at(store: LevelDBStore, token: str, tenant: str = T1) -> dict[str, Any]:
    return snapshot(store.reader(tenant, token))


def far_future() -> float:
    """A ``now`` that makes every revision written so far older than the GC window."""
    return time.time() + 10 * WINDOW


# -- persistence -----------------------------------------------------------------------------


def test_reopened_store_keeps_everything(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None) as first:
        acme = first.create_tenant("acme", "Acme Corp")
        v1 = first.write_schema("acme", SCHEMA)
        v2 = first.write_schema("acme", SCHEMA + "// v2\n")
        write_all(first, workload())
        tokens_acme = write_all(first, workload(), tenant="acme")
        before = snapshot(first.reader("acme"))
        before_t1 = snapshot(first.reader(T1))
        head = first.head("acme")
        changes = first.changes("acme", "", limit=100)
        first_kinds = first.reader("acme").tuple_kinds()
        assert first_kinds

    with LevelDBStore(data_dir, gc_interval=None) as second:
        assert second.get_tenant("acme") == acme
        assert [t.id for t in second.list_tenants(page_size=10).items] == ["acme", T1]
        assert second.read_schema("acme") == v2
        assert second.schema_head("acme") == v2.version
        assert second.reader("acme").tuple_kinds() == first_kinds
        assert second.schema_head(T1) == ""
        assert second.read_schema("acme", v1.version) == v1
        assert second.list_schemas("acme", page_size=10).items == [v2, v1]
        assert snapshot(second.reader("acme")) == before
        assert snapshot(second.reader(T1)) == before_t1
        assert snapshot_at(second, head, "acme") == before
        assert second.head("acme") == head == tokens_acme[-1]
        assert second.changes("acme", "", limit=100) == changes
        assert second.reader("acme").record("meta", ("doc", "1")) == b"v1"


def test_revisions_continue_after_reopen_and_old_tokens_read_old_state(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None) as first:
        written = write_all(first, workload())
        old_states = [snapshot_at(first, t) for t in written]
        latest = first.revision

    with LevelDBStore(data_dir, gc_interval=None) as second:
        assert second.revision == latest == 6
        for token, state in zip(written, old_states, strict=True):
            assert snapshot_at(second, token) == state
        new = second.write(T1, Changes(write_tuples=[tup("doc:9#viewer@user:zed")]))
        assert second.reader(T1, new).revision == latest + 1
        assert second.reader(T1, written[-1]).has_tuple(tup("doc:9#viewer@user:zed")) is False
        assert second.reader(T1).has_tuple(tup("doc:9#viewer@user:zed")) is True

    with LevelDBStore(data_dir, gc_interval=None) as third:
        assert third.revision == latest + 1
        assert third.reader(T1, new).revision == latest + 1
        assert snapshot_at(third, written[0]) == old_states[0]


def test_gc_horizon_survives_reopen(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None, gc_window=WINDOW) as first:
        written = write_all(first, workload())
        stats = first.collect_garbage(now=far_future())
        assert stats.horizon == 6
    with LevelDBStore(data_dir, gc_interval=None, gc_window=WINDOW) as second:
        with pytest.raises(SnapshotExpired):
            second.reader(T1, written[0])
        assert second.reader(T1, written[-1]).revision == 6
        assert second.write(T1, Changes(write_tuples=[ALICE, tup("doc:7#viewer@user:x")]))
        assert second.revision == 7


def test_deleted_tenant_stays_deleted_after_reopen(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None) as first:
        first.create_tenant("gone")
        write_all(first, workload(), tenant="gone")
        first.delete_tenant("gone")
    with LevelDBStore(data_dir, gc_interval=None) as second:
        with pytest.raises(TenantNotFound):
            second.get_tenant("gone")
        assert raw_keys(second, keys.tenant_prefix("gone")) == []


# -- opening ---------------------------------------------------------------------------------


def test_second_open_of_an_open_directory_is_locked(data_dir: Path) -> None:
    first = LevelDBStore(data_dir, gc_interval=None)
    try:
        token = first.write(T1, Changes(write_tuples=[ALICE]))
        with pytest.raises(StoreLocked) as info:
            LevelDBStore(data_dir, gc_interval=None)
        assert str(data_dir) in str(info.value)
        # The failed open must not disturb the open store.
        assert first.reader(T1).has_tuple(ALICE)
        first.write(T1, Changes(write_tuples=[BOB]))
    finally:
        first.close()
    with LevelDBStore(data_dir, gc_interval=None) as second:
        assert second.reader(T1, token).has_tuple(ALICE)
        assert second.reader(T1).has_tuple(BOB)


def test_foreign_leveldb_is_refused_and_left_untouched(data_dir: Path) -> None:
    foreign = plyvel.DB(str(data_dir), create_if_missing=True)
    foreign.put(b"someone-else", b"data")
    foreign.close()
    with pytest.raises(StorageError, match="not a Stonetown store"):
        LevelDBStore(data_dir, gc_interval=None)
    # The refused open released the directory and wrote nothing.
    again = plyvel.DB(str(data_dir))
    try:
        assert dict(again.iterator()) == {b"someone-else": b"data"}
    finally:
        again.close()


def test_store_of_another_format_is_refused(data_dir: Path) -> None:
    LevelDBStore(data_dir, gc_interval=None).close()
    raw = plyvel.DB(str(data_dir))
    raw.put(keys.META + b"format", b"99")
    raw.close()
    with pytest.raises(StorageError, match="format 99"):
        LevelDBStore(data_dir, gc_interval=None)


# -- closing ---------------------------------------------------------------------------------

AFTER_CLOSE: list[tuple[str, Callable[[LevelDBStore, LevelDBReader], object]]] = [
    ("write", lambda s, r: s.write(T1, Changes(write_tuples=[BOB]))),
    ("transact", lambda s, r: s.transact(T1, lambda rd: Changes())),
    ("create_tenant", lambda s, r: s.create_tenant("other")),
    ("delete_tenant", lambda s, r: s.delete_tenant(T1)),
    ("write_schema", lambda s, r: s.write_schema(T1, SCHEMA)),
    ("collect_garbage", lambda s, r: s.collect_garbage()),
    ("list_tenants", lambda s, r: s.list_tenants(page_size=10)),
    ("get_tenant", lambda s, r: s.get_tenant(T1)),
    ("read_schema", lambda s, r: s.read_schema(T1)),
    ("list_schemas", lambda s, r: s.list_schemas(T1, page_size=10)),
    ("head", lambda s, r: s.head(T1)),
    ("changes", lambda s, r: s.changes(T1, "", limit=10)),
    ("reader", lambda s, r: s.reader(T1)),
    ("reader.has_tuple", lambda s, r: s.reader(T1).has_tuple(ALICE)),
    ("open-reader.subjects", lambda s, r: r.subjects("doc", "1", "viewer")),
    ("open-reader.relations", lambda s, r: r.relations("doc", "1", limit=10)),
    ("reader.tuple_kinds", lambda s, r: s.reader(T1).tuple_kinds()),
    ("schema_head", lambda s, r: s.schema_head(T1)),
    ("open-reader.attribute", lambda s, r: r.attribute(*LEVEL)),
    ("open-reader.iter_tuples", lambda s, r: list(r.iter_tuples(TupleFilter()))),
    ("open-reader.read_attributes", lambda s, r: r.read_attributes(AttributeFilter(), page_size=5)),
    ("open-reader.record", lambda s, r: r.record("meta", ("doc", "1"))),
]


@pytest.mark.parametrize(
    "operation", [op for _, op in AFTER_CLOSE], ids=[name for name, _ in AFTER_CLOSE]
)
def test_operations_after_close_raise_store_closed(
    store: LevelDBStore, operation: Callable[[LevelDBStore, LevelDBReader], object]
) -> None:
    write_all(store, workload())
    store.write_schema(T1, SCHEMA)
    reader = store.reader(T1)
    store.close()
    with pytest.raises(StoreClosed):
        operation(store, reader)


def test_close_is_idempotent_and_releases_the_directory(data_dir: Path) -> None:
    store = LevelDBStore(data_dir, gc_interval=None)
    store.write(T1, Changes(write_tuples=[ALICE]))
    store.close()
    store.close()
    with LevelDBStore(data_dir, gc_interval=None) as again:
        assert again.reader(T1).has_tuple(ALICE)


# -- tokens ----------------------------------------------------------------------------------


def test_snap_token_from_another_store_is_refused(tmp_path: Path, store: LevelDBStore) -> None:
    with LevelDBStore(tmp_path / "other", gc_interval=None) as other:
        foreign = other.write(T1, Changes(write_tuples=[ALICE]))
    store.write(T1, Changes(write_tuples=[ALICE]))  # same revision number, different store
    with pytest.raises(InvalidToken, match="different data store"):
        store.reader(T1, foreign)
    with pytest.raises(InvalidToken):
        store.changes(T1, foreign, limit=10)


def test_snap_token_beyond_the_latest_revision_is_refused(store: LevelDBStore) -> None:
    write_all(store, workload())
    future = tokens.encode_snap(store._store_id, store.revision + 1)
    with pytest.raises(InvalidToken, match="newer than"):
        store.reader(T1, future)
    with pytest.raises(InvalidToken):
        store.changes(T1, future, limit=10)
    assert store.reader(T1, tokens.encode_snap(store._store_id, store.revision)).revision == 6


@pytest.mark.parametrize("token", ["x", "AQ", "not a token", "\ud800"], ids=repr)
def test_malformed_snap_token_is_refused(store: LevelDBStore, token: str) -> None:
    with pytest.raises(InvalidToken):
        store.reader(T1, token)


# -- garbage collection ----------------------------------------------------------------------


def test_gc_removes_every_key_of_deleted_versions(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    deleted_at = {OWNER: 4, FOLDER: 5, CAROL: 6}
    for t in deleted_at:
        assert tuple_keys(store, T1, t), f"{t} should have versions before GC"
    bob_keys = raw_keys(store, keys.forward_prefix(keys.tenant_prefix(T1), *BOB))
    assert len(bob_keys) == 2  # live (re-created at 4) and history (deleted at 2)

    stats = store.collect_garbage(now=far_future())

    assert stats.horizon == 6
    assert stats.removed > 0
    for t in deleted_at:
        assert tuple_keys(store, T1, t) == [], f"{t} deleted before the horizon was kept"
    assert attribute_keys(store, T1, PUBLIC) == []
    # Overwritten values go, the live one stays: exactly one version each.
    assert len(attribute_keys(store, T1, LEVEL)) == 1
    assert len(attribute_keys(store, T1, TAGS)) == 1
    assert len(tuple_keys(store, T1, BOB)) == 2  # the live version: one F and one R key, no history
    tp = keys.tenant_prefix(T1)
    assert raw_keys(store, tp + keys.DEAD) == []
    assert raw_keys(store, tp + keys.CHANGES) == []  # every change log entry is <= the horizon
    assert snapshot_at(store, written[-1])["has"] == [True, True, False, False, False, True]


def test_gc_keeps_everything_inside_the_window(data_dir: Path) -> None:
    now = [time.time() - 10 * WINDOW]  # the injected clock starts far in the past
    with LevelDBStore(data_dir, gc_interval=None, gc_window=WINDOW, clock=lambda: now[0]) as s:
        written = write_all(s, workload())
        before = raw_items(s)
        stats = s.collect_garbage()  # now from the clock: every revision is inside the window
        assert stats.horizon == 0
        assert stats.removed == 0
        assert raw_items(s) == before
        assert snapshot_at(s, written[0])["has"][:2] == [True, True]

        now[0] = far_future()
        stats = s.collect_garbage()
        assert stats.horizon == 6
        assert tuple_keys(s, T1, OWNER) == []


def test_reads_below_the_horizon_raise_snapshot_expired(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    store.collect_garbage(now=far_future())
    for revision, token in enumerate(written[:-1], start=1):
        with pytest.raises(SnapshotExpired) as info:
            store.reader(T1, token)
        message = str(info.value)
        assert f"revision {revision}," in message
        assert "oldest readable revision is 6" in message
        assert "garbage collection" in message
    assert store.reader(T1, written[-1]).revision == 6
    assert store.reader(T1).revision == 6


def test_reads_at_or_after_the_horizon_are_unchanged_by_gc(store: LevelDBStore) -> None:
    batches = workload()
    early = write_all(store, batches[:3])
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    late = write_all(store, batches[3:])
    written = early + late
    before = {r: snapshot_at(store, t) for r, t in enumerate(written, start=1)}
    changes_before = store.changes(T1, written[2], limit=100)

    stats = store.collect_garbage(now=cutoff + WINDOW)

    assert stats.horizon == 3  # the newest revision older than the window
    assert stats.removed > 0  # BOB's version deleted at 2, the overwritten LEVEL, PUBLIC
    for r, token in enumerate(written, start=1):
        if r < 3:
            with pytest.raises(SnapshotExpired):
                store.reader(T1, token)
        else:
            assert snapshot_at(store, token) == before[r], f"revision {r} changed under GC"
    assert store.changes(T1, written[2], limit=100) == changes_before
    # Versions deleted after the horizon are still on disk for readers at 3..5.
    assert tuple_keys(store, T1, OWNER)
    assert tuple_keys(store, T1, FOLDER)
    assert tuple_keys(store, T1, CAROL)


def test_a_held_reader_pins_the_horizon(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    pinned = store.reader(T1, written[2])
    expected = snapshot(pinned)

    stats = store.collect_garbage(now=far_future())

    assert stats.horizon == 3
    assert snapshot(pinned) == expected
    assert tuple_keys(store, T1, OWNER)  # deleted at 4: visible to the pinned reader
    with pytest.raises(SnapshotExpired):
        store.reader(T1, written[1])

    del pinned
    gc.collect()
    stats = store.collect_garbage(now=far_future())
    assert stats.horizon == 6
    assert tuple_keys(store, T1, OWNER) == []
    with pytest.raises(SnapshotExpired):
        store.reader(T1, written[2])


def test_a_lazily_consumed_iterator_pins_its_reader(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    expected = list(store.reader(T1, written[2]).iter_tuples(TupleFilter()))
    assert len(expected) > 2
    it = store.reader(T1, written[2]).iter_tuples(TupleFilter())
    first = next(it)
    gc.collect()
    stats = store.collect_garbage(now=far_future())
    assert stats.horizon == 3
    assert [first, *it] == expected


def test_the_oldest_of_several_readers_sets_the_horizon(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    readers = [store.reader(T1, written[i]) for i in (4, 1, 3)]
    assert store.collect_garbage(now=far_future()).horizon == 2
    del readers[1]
    gc.collect()
    assert store.collect_garbage(now=far_future()).horizon == 4
    readers.clear()
    gc.collect()
    assert store.collect_garbage(now=far_future()).horizon == 6


def test_gc_never_removes_live_data(store: LevelDBStore) -> None:
    write_all(store, workload())
    store.write_schema(T1, SCHEMA)
    before = snapshot(store.reader(T1))
    schemas = store.list_schemas(T1, page_size=10)
    records = list(store.reader(T1).records("meta"))

    store.collect_garbage(now=far_future())
    store.collect_garbage(now=far_future())  # a second pass finds nothing more to remove

    assert snapshot(store.reader(T1)) == before
    assert store.list_schemas(T1, page_size=10) == schemas
    assert list(store.reader(T1).records("meta")) == records
    assert store.reader(T1).has_tuple(BOB)  # deleted, then re-created: the new version lives


def test_changes_before_and_after_gc(store: LevelDBStore) -> None:
    written = write_all(store, workload())
    all_changes = store.changes(T1, written[0], limit=100)
    assert [c.revision for c in all_changes] == [2, 3, 4, 5, 6]
    assert [c.token for c in all_changes] == written[1:]
    assert store.changes(T1, written[0], limit=2) == all_changes[:2]
    assert [c.revision for c in store.changes(T1, "", limit=100)] == [1, 2, 3, 4, 5, 6]

    pinned = store.reader(T1, written[3])
    assert store.collect_garbage(now=far_future()).horizon == 4

    for token in written[:3]:
        with pytest.raises(SnapshotExpired):
            store.changes(T1, token, limit=100)
    assert store.changes(T1, written[3], limit=100) == all_changes[3:]
    assert store.changes(T1, written[-1], limit=100) == []
    # No token: the oldest write still retained onwards (base.Store.changes).
    assert store.changes(T1, "", limit=100) == all_changes[3:]
    del pinned


def test_background_gc_collects_and_stops_on_close(data_dir: Path) -> None:
    store = LevelDBStore(data_dir, gc_interval=0.05, gc_window=0.0)
    try:
        store.write(T1, Changes(write_tuples=[ALICE, BOB]))
        store.write(T1, Changes(delete_tuples=[BOB]))
        deadline = time.monotonic() + 5.0
        while tuple_keys(store, T1, BOB) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tuple_keys(store, T1, BOB) == [], "the GC thread did not collect within 5 s"
        assert store.reader(T1).has_tuple(ALICE)
        assert len(tuple_keys(store, T1, ALICE)) == 2
    finally:
        store.close()
    assert store._gc._thread is not None
    assert not store._gc._thread.is_alive()


def test_close_wakes_the_gc_thread_instead_of_waiting_out_its_interval(data_dir: Path) -> None:
    store = LevelDBStore(data_dir, gc_interval=3600.0)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(30)  # a close that waited for the next round would take an hour
    assert not closer.is_alive(), "close waited for the GC interval"
    assert store._gc._thread is not None
    assert not store._gc._thread.is_alive()


# -- tenants ---------------------------------------------------------------------------------

NEIGHBOURS = ["a", "a.b", "ab", "a-b", "a:b"]


@pytest.mark.parametrize("victim", ["a", "ab", "a.b"])
def test_delete_tenant_removes_its_keys_and_only_its_keys(store: LevelDBStore, victim: str) -> None:
    for tenant in NEIGHBOURS:
        store.create_tenant(tenant, f"name of {tenant}")
        write_all(store, workload(), tenant=tenant)
        store.write_schema(tenant, SCHEMA)
    neighbours = {t: snapshot(store.reader(t)) for t in NEIGHBOURS if t != victim}
    before = raw_items(store)
    vp = keys.tenant_prefix(victim)
    assert raw_keys(store, vp), "the victim should own keys before deletion"

    info = store.delete_tenant(victim)

    assert info.id == victim
    assert info.name == f"name of {victim}"
    after = raw_items(store)
    assert [k for k in after if k.startswith(vp)] == []
    assert keys.tenant_registry_key(victim) not in after
    untouched = {
        k: v
        for k, v in before.items()
        if not k.startswith(vp) and k != keys.tenant_registry_key(victim)
    }
    assert after == untouched
    for tenant, state in neighbours.items():
        assert snapshot(store.reader(tenant)) == state
    with pytest.raises(TenantNotFound):
        store.reader(victim)
    with pytest.raises(TenantNotFound):
        store.delete_tenant(victim)


def test_recreated_tenant_is_empty(store: LevelDBStore) -> None:
    store.create_tenant("acme", "old")
    write_all(store, workload(), tenant="acme")
    store.write_schema("acme", SCHEMA)
    store.delete_tenant("acme")

    info = store.create_tenant("acme", "new")

    assert isinstance(info, TenantInfo)
    assert store.get_tenant("acme").name == "new"
    reader = store.reader("acme")
    assert list(reader.iter_tuples(TupleFilter())) == []
    assert list(reader.iter_attributes(AttributeFilter())) == []
    assert list(reader.records("meta")) == []
    assert store.changes("acme", "", limit=10) == []
    with pytest.raises(SchemaNotFound):
        store.read_schema("acme")


def test_opening_finishes_an_interrupted_tenant_delete(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None) as first:
        first.create_tenant("acme")
        first.create_tenant("acm")
        write_all(first, workload(), tenant="acme")
        for tenant in (T1, "acm"):
            first.write(tenant, Changes(write_tuples=[Tuple("doc", "1", "viewer", "user", "1")]))
    # Simulate a crash just after delete_tenant unregistered the tenant: its keys remain.
    raw = plyvel.DB(str(data_dir))
    raw.delete(keys.tenant_registry_key("acme"))
    raw.close()
    raw = plyvel.DB(str(data_dir))
    assert list(raw.iterator(prefix=keys.tenant_prefix("acme")))
    raw.close()
    with LevelDBStore(data_dir, gc_interval=None) as second:
        # Opening finishes the interrupted delete; other tenants are untouched.
        assert raw_keys(second, keys.tenant_prefix("acme")) == []
        for tenant in (T1, "acm"):
            assert second.reader(tenant).has_tuple(Tuple("doc", "1", "viewer", "user", "1"))
        with pytest.raises(TenantNotFound):
            second.get_tenant("acme")
        second.create_tenant("acme")
        assert list(second.reader("acme").iter_tuples(TupleFilter())) == []
        assert raw_keys(second, keys.tenant_prefix("acme")) == []


# -- sync ------------------------------------------------------------------------------------


def test_sync_store_writes_and_reads(data_dir: Path) -> None:
    with LevelDBStore(data_dir, gc_interval=None, sync=True) as s:
        written = write_all(s, workload())
        s.write_schema(T1, SCHEMA)
        expected = snapshot_at(s, written[2])
        assert s.reader(T1).has_tuple(DAVE)
    with LevelDBStore(data_dir, gc_interval=None, sync=True) as again:
        assert snapshot_at(again, written[2]) == expected
        assert again.read_schema(T1).text == SCHEMA


# -- a writer killed at random moments --------------------------------------------------------

WRITER = """\
import sys
import time

from dsl.schema import AttributeType
from storage.base import Attribute, Changes, Tuple
from storage.leveldb import LevelDBStore

store = LevelDBStore(sys.argv[1], gc_interval=None)
n = store.revision + 1
out = sys.stdout
out.write(f"ready {n}\\n")
out.flush()
give_up = time.monotonic() + 30  # never outlive a parent that forgot us
while time.monotonic() < give_up:
    batch = Changes(
        write_tuples=[Tuple("doc", str(n), "viewer", "user", f"{n}-{i}") for i in range(10)],
        write_attributes=[Attribute("doc", str(n), "seq", AttributeType.INTEGER, n)],
    )
    token = store.write("t1", batch)
    out.write(f"{n} {token}\\n")  # acknowledged: the write has returned
    out.flush()
    n += 1
"""

CRASH_CYCLES = 16


def batch_subjects(n: int) -> list[Subject]:
    return [Subject("user", f"{n}-{i}") for i in range(10)]


def run_writer_until_killed(
    script: Path,
    data: Path,
    stderr_path: Path,
    *,
    kill_after: float,
    wait_ready: bool,
    while_running: Callable[[], None] = lambda: None,
) -> list[str]:
    """Start the writer, SIGKILL it ``kill_after`` seconds after it is ready (or after start),
    and return every complete line it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    lines: list[str] = []
    ready = threading.Event()
    with (
        stderr_path.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(script), str(data)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
            env=env,
            text=True,
        ) as proc,
    ):
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                lines.append(line)
                ready.set()

        reader = threading.Thread(target=pump)
        reader.start()
        try:
            if wait_ready:
                assert ready.wait(15), "the writer did not start within 15 s"
                while_running()
            time.sleep(kill_after)
            assert proc.poll() is None, (
                f"the writer exited by itself: {stderr_path.read_text()[-2000:]}"
            )
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            reader.join()
        assert proc.returncode == -signal.SIGKILL
    return [line for line in lines if line.endswith("\n")]


def differences(actual: list[int], expected: list[int]) -> str:
    """A short account of how two long lists differ (pytest's own diff of a list of thousands
    of items takes minutes and gigabytes)."""
    if actual == expected:
        return ""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    return (
        f"{len(actual)} items, expected {len(expected)}; missing {missing[:10]}, "
        f"unexpected {extra[:10]}, in order: {actual == sorted(actual)}"
    )


def check_after_crash(store: LevelDBStore, acked: list[tuple[int, str]], since: int) -> int:
    """Check the store a killed writer left; return its latest revision."""
    latest = int(store.revision)
    expected = list(range(1, latest + 1))
    tp = keys.tenant_prefix(T1)
    revisions = [
        keys.revision_of(k[len(keys.REVISIONS) :]) for k in raw_keys(store, keys.REVISIONS)
    ]
    problem = differences(revisions, expected)
    assert not problem, f"revision log is not 1..{latest}: {problem}"
    change_log = [keys.revision_of(k[len(tp) + 1 :]) for k in raw_keys(store, tp + keys.CHANGES)]
    problem = differences(change_log, expected)
    assert not problem, f"change log is not 1..{latest}: {problem}"

    reader = store.reader(T1)
    seqs = {a.entity_id: a.value for a in reader.iter_attributes(AttributeFilter("doc"))}
    wrong = [(eid, v) for eid, v in seqs.items() if str(v) != eid]
    assert not wrong, f"attributes holding another batch's number: {wrong[:10]}"
    problem = differences(sorted(int(eid) for eid in seqs), expected)
    assert not problem, f"attribute batches are not 1..{latest}: {problem}"
    for n in range(since + 1, latest + 3):
        want = batch_subjects(n) if n <= latest else []
        assert reader.subjects("doc", str(n), "viewer") == want, f"batch {n} is partial"

    for n, token in acked:
        assert n <= latest, f"acknowledged batch {n} lost (latest revision {latest})"
        at = store.reader(T1, token)
        assert at.revision == n
        assert at.subjects("doc", str(n), "viewer") == batch_subjects(n)
        seq = at.attribute("doc", str(n), "seq")
        assert seq is not None
        assert seq.value == n
        assert at.attribute("doc", str(n + 1), "seq") is None
        assert not at.has_tuple(Tuple("doc", str(n + 1), "viewer", "user", f"{n + 1}-0"))
    return latest


def check_every_batch_is_whole(store: LevelDBStore, latest: int) -> None:
    groups: dict[str, list[Tuple]] = {}
    for t in store.reader(T1).iter_tuples(TupleFilter(entity_type="doc")):
        groups.setdefault(t.entity_id, []).append(t)
    problem = differences(sorted(int(eid) for eid in groups), list(range(1, latest + 1)))
    assert not problem, f"tuple batches are not 1..{latest}: {problem}"
    for eid, ts in groups.items():
        want = [Tuple("doc", eid, "viewer", "user", f"{eid}-{i}") for i in range(10)]
        assert sorted(ts) == want, f"batch {eid} is partial"
    # Nothing on disk beyond what the readers see: no stray version of an unfinished write.
    tp = keys.tenant_prefix(T1)
    for kind, per_batch in ((keys.FORWARD, 10), (keys.REVERSE, 10), (keys.ATTRIBUTES, 1)):
        # Nothing is ever deleted, so every key is live: its value starts with the revision
        # that created it.
        created = [keys.revision_of(v[:8]) for v in raw_items(store, tp + kind).values()]
        assert len(created) == per_batch * latest, f"{kind!r} holds {len(created)} keys"
        assert max(created) == latest, f"{kind!r} holds a version newer than {latest}"
    assert raw_keys(store, tp + keys.DEAD) == []


def test_killed_writer_loses_no_acknowledged_write_and_leaves_no_partial_batch(
    tmp_path: Path,
) -> None:
    """A writer process is SIGKILLed at random moments, again and again on one directory.

    After each kill: every write it acknowledged (printed after ``write`` returned) is there at
    latest and at its own token, every batch is whole (10 tuples and the attribute, or nothing),
    and revisions run 1..latest without a gap, so each restart continues the numbering.
    """
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    data = tmp_path / "data"
    LevelDBStore(data, gc_interval=None).close()
    latest = 0
    every_ack: list[tuple[int, str]] = []

    def the_directory_is_locked() -> None:
        with pytest.raises(StoreLocked):
            LevelDBStore(data, gc_interval=None)

    for cycle in range(CRASH_CYCLES):
        # Most kills land mid-stream; every fourth may land while the writer is still
        # importing, opening or recovering the log.
        wait_ready = cycle % 4 != 3
        lines = run_writer_until_killed(
            script,
            data,
            tmp_path / f"writer-{cycle}.err",
            kill_after=rng.uniform(0.02, 0.3) if wait_ready else rng.uniform(0.0, 0.2),
            wait_ready=wait_ready,
            while_running=the_directory_is_locked if cycle == 0 else lambda: None,
        )
        context = f"(seed {seed}, cycle {cycle})"
        if lines:
            assert lines[0] == f"ready {latest + 1}\n", context
        acked = [(int(n), token) for n, token in (line.split() for line in lines[1:])]
        assert [n for n, _ in acked] == list(range(latest + 1, latest + 1 + len(acked))), context
        with LevelDBStore(data, gc_interval=None) as store:
            try:
                latest = check_after_crash(store, acked, latest)
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}") from exc
        every_ack += acked

    assert latest >= CRASH_CYCLES, f"the writers barely wrote (seed {seed})"
    with LevelDBStore(data, gc_interval=None) as store:
        check_every_batch_is_whole(store, latest)
        for n, token in every_ack[:: max(1, len(every_ack) // 200)]:
            assert store.reader(T1, token).subjects("doc", str(n), "viewer") == batch_subjects(n)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_write_items": 0}, "max_write_items"),
        ({"gc_window": -1.0}, "gc_window"),
        ({"gc_interval": 0.0}, "gc_interval"),
    ],
    ids=["max_write_items", "gc_window", "gc_interval"],
)
def test_nonsense_options_are_refused(
    data_dir: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LevelDBStore(data_dir, **options)


def test_closing_from_inside_a_transaction_is_refused_not_a_deadlock(store: LevelDBStore) -> None:
    def build(reader: Any) -> Changes:
        store.close()
        return Changes()

    with pytest.raises(StorageError, match="may not close"):
        store.transact(T1, build)
    assert store.reader(T1).revision == 0
