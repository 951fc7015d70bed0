"""The product store: tuples, attributes, schemas and records in LevelDB (plyvel).

Every write is one LevelDB ``WriteBatch`` that also appends the revision log and the tenant's
change log, so a crash leaves each write wholly present or wholly absent. A live tuple or
attribute is one exact key holding the revision that created it; its earlier versions sit in a
history key beside it as (created, deleted) revision pairs (``keys.py`` has the layout). A reader
at revision T keeps the version with ``created <= T < deleted``.

Concurrency model:

* Writes (``write``, ``transact``, tenant and schema changes) are serialised by one lock; a
  write becomes visible to new readers when the batch is in LevelDB and the in-memory latest
  revision moves. Readers never lock: LevelDB is safe for concurrent readers and one writer, and a
  reader filters by its revision, so it sees the same state however many writes land meanwhile.
* Every call is synchronous and short (µs for point reads; a page for paginated reads). Callers
  on an event loop run long jobs (bulk imports, whole-tenant scans, tenant deletion, GC) in a
  thread. plyvel releases the GIL inside LevelDB calls.
* Garbage collection runs in a background thread every ``gc_interval`` seconds. It removes only
  versions deleted at or before the horizon: the newest revision older than ``gc_window`` and
  no newer than any live reader's revision. Readers below the horizon are refused with
  SnapshotExpired, so no reader ever sees a half-collected state.
* ``sync=False`` (the default) survives a process crash: LevelDB hands each batch to the OS
  before the write returns. ``sync=True`` also fsyncs each write, surviving power loss, at the
  cost of one disk flush per write (see the README for numbers).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import plyvel

from dsl.schema import AttributeType
from storage import keys, tokens
from storage.base import (
    DEFAULT_GC_WINDOW_SECONDS,
    DEFAULT_MAX_WRITE_ITEMS,
    DEFAULT_TENANT,
    Attribute,
    AttributeFilter,
    Change,
    Changes,
    ChangeSet,
    GCStats,
    Operation,
    Page,
    Record,
    RecordKey,
    Revision,
    SchemaVersion,
    SnapshotReader,
    SnapToken,
    Subject,
    SubjectSet,
    TenantId,
    TenantInfo,
    Tuple,
    TupleFilter,
    TupleKind,
    check_page_size,
    check_tenant_id,
)
from storage.errors import (
    InvalidToken,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    StoreClosed,
    StoreLocked,
    TenantExists,
    TenantNotFound,
)
from storage.keys import (
    ESCAPED_NUL,
    HISTORY,
    SEPARATOR,
    TERMINATOR,
    component,
    components,
    rev8,
    split,
)

log = logging.getLogger(__name__)
# Builds a NamedTuple from a list without the Python-level __new__ (the read loops are hot).
_new_tuple = tuple.__new__
ItemT = TypeVar("ItemT")

FORMAT = b"1"
_FORMAT_KEY = keys.META + b"format"
_STORE_ID_KEY = keys.META + b"store-id"
_HORIZON_KEY = keys.META + b"gc-horizon"
#: Present once every claim is written (at creation; after a backfill in older stores).
_CLAIMS_COMPLETE_KEY = keys.META + b"claims-complete"
_DELETE_CHUNK = 10_000
_GC_CHUNK = 1_000
_CREATE = b"\x01"
_DELETE = b"\x02"


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _encode_value(attr: Attribute) -> bytes:
    return bytes([attr.type.value]) + json.dumps(attr.value, separators=(",", ":")).encode()


def _decode_attribute(parts: list[str], payload: bytes) -> Attribute:
    et, eid, name = parts
    return Attribute(et, eid, name, AttributeType(payload[0]), json.loads(payload[1:]))


class LevelDBStore:
    """A ``Store`` over one LevelDB directory; open one per directory per process."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_write_items: int = DEFAULT_MAX_WRITE_ITEMS,
        gc_window: float = DEFAULT_GC_WINDOW_SECONDS,
        gc_interval: float | None = 600.0,
        sync: bool = False,
        cache_bytes: int = 64 << 20,
        write_buffer_bytes: int = 8 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_write_items < 1:
            raise ValueError("max_write_items must be at least 1")
        if gc_window < 0:
            raise ValueError("gc_window must not be negative")
        if gc_interval is not None and gc_interval <= 0:
            raise ValueError("gc_interval must be positive (None turns the GC thread off)")
        self._path = Path(path)
        self._max_write_items = max_write_items
        self._gc_window = gc_window
        self._sync = sync
        self._clock = clock
        try:
            self._db: Any = plyvel.DB(
                str(self._path),
                create_if_missing=True,
                lru_cache_size=cache_bytes,
                write_buffer_size=write_buffer_bytes,
                # Every write asks "is this tuple already there?" with an exact get: bloom
                # filters answer most of those without reading a block. Uncompressed 16 KiB
                # blocks cost disk (about 130 bytes per tuple) but make those gets and the
                # writes cheaper: 95k -> 204k tuples/s on a 1M load (bench/storage_bench.py).
                bloom_filter_bits=10,
                compression=None,
                block_size=16 << 10,
            )
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"data directory {self._path} is already open in another process or store "
                    "(its LevelDB LOCK is held); stop that one or choose another --data-dir"
                ) from exc
            raise StorageError(f"cannot open data directory {self._path}: {exc}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"cannot open data directory {self._path}: {exc}") from exc

        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._pin_lock = threading.Lock()
        self._readers: weakref.WeakSet[LevelDBReader] = weakref.WeakSet()
        self._closed = False
        try:
            self._initialise()
        except BaseException:
            self._db.close()
            raise
        self._gc_stop = threading.Event()
        self._gc_thread: threading.Thread | None = None
        if gc_interval is not None:
            self._gc_thread = threading.Thread(
                target=self._gc_loop, args=(gc_interval,), name="stonetown-gc", daemon=True
            )
            self._gc_thread.start()

    # -- opening and closing -------------------------------------------------------------

    def _initialise(self) -> None:
        db = self._db
        fmt = db.get(_FORMAT_KEY)
        if fmt is None:
            if next(db.iterator(include_value=False), None) is not None:
                raise StorageError(f"{self._path} holds a LevelDB that is not a Stonetown store")
            store_id = os.urandom(tokens.STORE_ID_BYTES)
            with db.write_batch(sync=True) as batch:
                batch.put(_FORMAT_KEY, FORMAT)
                batch.put(_STORE_ID_KEY, store_id)
                batch.put(_HORIZON_KEY, rev8(0))
                batch.put(_CLAIMS_COMPLETE_KEY, b"")
                batch.put(
                    keys.tenant_registry_key(DEFAULT_TENANT), self._tenant_value("", self._now_ns())
                )
        elif fmt != FORMAT:
            raise StorageError(
                f"{self._path} uses store format {fmt.decode(errors='replace')}, "
                f"this version reads format {FORMAT.decode()}"
            )
        self._store_id: bytes = db.get(_STORE_ID_KEY)
        self._horizon = keys.revision_of(db.get(_HORIZON_KEY))
        self._claims_complete = db.get(_CLAIMS_COMPLETE_KEY) is not None
        last = next(db.iterator(prefix=keys.REVISIONS, reverse=True, include_value=False), None)
        self._revision = keys.revision_of(last[len(keys.REVISIONS) :]) if last else 0
        self._last_commit_ns = 0
        self._tenants: dict[str, bytes] = {}
        # tenant -> newest schema version, filled on first use; changed under the write lock.
        self._schema_heads: dict[str, str] = {}
        # tenant -> a reader at the latest revision, handed to every request that names none.
        self._latest_readers: dict[str, LevelDBReader] = {}
        # tenant -> its tuple kinds (keyspace K), loaded on first use under the write lock.
        self._kinds: dict[str, frozenset[TupleKind]] = {}
        for key in db.iterator(prefix=keys.TENANTS, include_value=False):
            (tenant,) = split(key[len(keys.TENANTS) :])
            self._tenants[tenant] = keys.tenant_prefix(tenant)
        self._finish_interrupted_deletes()

    def _finish_interrupted_deletes(self) -> None:
        """Remove the keys of tenants that are no longer registered: what a crash during
        ``delete_tenant`` leaves behind. One seek per tenant present on disk."""
        registered = set(self._tenants.values())
        it = self._db.raw_iterator()
        it.seek(keys.TENANT)
        while it.valid():
            key = it.key()
            if not key.startswith(keys.TENANT):
                break
            tp = key[: key.index(TERMINATOR, 1) + len(TERMINATOR)]
            end = keys.prefix_end(tp)
            if tp not in registered:
                (tenant,) = split(tp[1:])
                log.warning("removing the rest of deleted tenant %r (interrupted delete)", tenant)
                self._delete_range(tp, end)
            it.seek(end)

    def close(self) -> None:
        """Stop the GC thread and close LevelDB; later calls raise StoreClosed."""
        if self._closed:
            return
        if self._writer == threading.get_ident():
            raise StorageError("a transact build function may not close the store")
        self._gc_stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join()
        with self._write_lock:
            self._closed = True
            self._db.close()

    def __enter__(self) -> LevelDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def max_write_items(self) -> int:
        return self._max_write_items

    def _now_ns(self) -> int:
        return int(self._clock() * 1e9)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _prefix(self, tenant: str) -> bytes:
        self._check_open()
        tp = self._tenants.get(tenant)
        if tp is None:
            check_tenant_id(tenant)
            raise TenantNotFound(tenant)
        return tp

    # -- tenants ---------------------------------------------------------------------------

    @staticmethod
    def _tenant_value(name: str, created_ns: int) -> bytes:
        return rev8(created_ns) + name.encode("utf-8", "surrogatepass")

    @staticmethod
    def _tenant_info(tenant: str, value: bytes) -> TenantInfo:
        return TenantInfo(
            TenantId(tenant),
            value[8:].decode("utf-8", "surrogatepass"),
            _utc(keys.revision_of(value[:8])),
        )

    def create_tenant(self, tenant: str, name: str = "") -> TenantInfo:
        check_tenant_id(tenant)
        with self._locked():
            if tenant in self._tenants:
                raise TenantExists(tenant)
            tp = keys.tenant_prefix(tenant)
            value = self._tenant_value(name, self._now_ns())
            self._db.put(keys.tenant_registry_key(tenant), value, sync=self._sync)
            self._tenants[tenant] = tp
        return self._tenant_info(tenant, value)

    def get_tenant(self, tenant: str) -> TenantInfo:
        self._prefix(tenant)
        value = self._db.get(keys.tenant_registry_key(tenant))
        if value is None:
            raise TenantNotFound(tenant)
        return self._tenant_info(tenant, value)

    def list_tenants(self, *, page_size: int, cursor: str = "") -> Page[TenantInfo]:
        check_page_size(page_size)
        self._check_open()
        query = tokens.fingerprint("tenants")
        start = keys.TENANTS
        if cursor:
            position = tokens.decode_cursor(query, cursor)
            start = keys.TENANTS + position
        items: list[TenantInfo] = []
        for key, value in self._db.iterator(
            start=start, stop=keys.prefix_end(keys.TENANTS), include_start=not cursor
        ):
            if len(items) == page_size:
                return Page(items, tokens.encode_cursor(query, component(items[-1].id)))
            (tenant,) = split(key[len(keys.TENANTS) :])
            items.append(self._tenant_info(tenant, value))
        return Page(items, "")

    def delete_tenant(self, tenant: str) -> TenantInfo:
        with self._locked():
            info = self.get_tenant(tenant)
            tp = self._tenants.pop(tenant)
            self._schema_heads.pop(tenant, None)
            self._kinds.pop(tenant, None)
            self._latest_readers.pop(tenant, None)
            # Unregister and release the tenant's claims first, in one batch: from here on no
            # call can reach the tenant, and the next open finishes the range delete below if a
            # crash interrupts it.
            held = tenant.encode("utf-8", "surrogatepass")
            marks = tp + keys.TENANT_CLAIMS
            with self._db.write_batch(sync=self._sync) as batch:
                batch.delete(keys.tenant_registry_key(tenant))
                for mark in self._db.iterator(prefix=marks, include_value=False):
                    claim = keys.CLAIMS + mark[len(marks) :]
                    if self._db.get(claim) == held:
                        batch.delete(claim)
            self._delete_range(tp, keys.prefix_end(tp))
        return info

    def _delete_range(self, start: bytes, stop: bytes) -> int:
        removed = 0
        while True:
            chunk = list(
                itertools.islice(
                    self._db.iterator(start=start, stop=stop, include_value=False), _DELETE_CHUNK
                )
            )
            if not chunk:
                return removed
            with self._db.write_batch(sync=self._sync) as batch:
                for key in chunk:
                    batch.delete(key)
            removed += len(chunk)
            start = chunk[-1] + b"\x00"  # the next possible key: skip the fresh tombstones

    # -- schemas ---------------------------------------------------------------------------

    def write_schema(self, tenant: str, text: str) -> SchemaVersion:
        with self._locked():
            tp = self._prefix(tenant)
            head = self._head_schema(tp)
            now_ns = self._now_ns()
            version = tokens.new_schema_version(head.version if head else "", now_ns // 1_000_000)
            self._db.put(
                keys.schema_key(tp, version),
                rev8(now_ns) + text.encode("utf-8", "surrogatepass"),
                sync=self._sync,
            )
            self._schema_heads[tenant] = version
        return SchemaVersion(version, _utc(now_ns), text)

    @staticmethod
    def _schema(version: str, value: bytes) -> SchemaVersion:
        return SchemaVersion(
            version,
            _utc(keys.revision_of(value[:8])),
            value[8:].decode("utf-8", "surrogatepass"),
        )

    def _head_schema(self, tp: bytes) -> SchemaVersion | None:
        prefix = tp + keys.SCHEMAS
        for key, value in self._db.iterator(prefix=prefix, reverse=True):
            (version,) = split(key[len(prefix) :])
            return self._schema(version, value)
        return None

    def schema_head(self, tenant: str) -> str:
        self._prefix(tenant)
        found = self._schema_heads.get(tenant)
        if found is None:
            with self._locked():
                head = self._head_schema(self._prefix(tenant))
                found = self._schema_heads[tenant] = head.version if head else ""
        return found

    def read_schema(self, tenant: str, version: str = "") -> SchemaVersion:
        tp = self._prefix(tenant)
        if not version:
            head = self._head_schema(tp)
            if head is None:
                raise SchemaNotFound(f"tenant {tenant!r} has no schema yet: write one first")
            return head
        value = self._db.get(keys.schema_key(tp, version))
        if value is None:
            raise SchemaNotFound(f"tenant {tenant!r} has no schema version {version!r}")
        return self._schema(version, value)

    def list_schemas(self, tenant: str, *, page_size: int, cursor: str = "") -> Page[SchemaVersion]:
        check_page_size(page_size)
        tp = self._prefix(tenant)
        prefix = tp + keys.SCHEMAS
        query = tokens.fingerprint("schemas", tenant)
        stop = keys.prefix_end(prefix)
        if cursor:
            last = tokens.decode_cursor(query, cursor).decode("ascii", "replace")
            stop = prefix + component(last)
        items: list[SchemaVersion] = []
        for key, value in self._db.iterator(start=prefix, stop=stop, reverse=True):
            (version,) = split(key[len(prefix) :])
            if len(items) == page_size:
                return Page(items, tokens.encode_cursor(query, items[-1].version.encode()))
            items.append(self._schema(version, value))
        return Page(items, "")

    # -- writes ----------------------------------------------------------------------------

    def _locked(self) -> _WriteLock:
        return _WriteLock(self)

    def write(self, tenant: str, changes: Changes) -> SnapToken:
        with self._locked():
            return self._apply(self._prefix(tenant), tenant, changes)

    def transact(self, tenant: str, build: Callable[[SnapshotReader], Changes]) -> SnapToken:
        with self._locked():
            tp = self._prefix(tenant)
            changes = build(self.reader(tenant))
            return self._apply(tp, tenant, changes)

    def _apply(self, tp: bytes, tenant: str, changes: Changes) -> SnapToken:
        changes.check(self._max_write_items)
        db = self._db
        get = db.get
        revision = self._revision + 1
        rb = rev8(revision)
        batch = db.write_batch(sync=self._sync)
        put = batch.put
        try:
            writes = dict.fromkeys(changes.write_tuples)
            deletes = dict.fromkeys(t for t in changes.delete_tuples if t not in writes)
            if changes.delete_tuple_filters:
                before = LevelDBReader(self, tp, TenantId(tenant), Revision(self._revision))
                for flt in changes.delete_tuple_filters:
                    for t in before.iter_tuples(flt):
                        if t not in writes:
                            deletes[t] = None
            fwd = tp + keys.FORWARD
            rev = tp + keys.REVERSE
            bodies = []
            for t in deletes:
                body = keys.forward_body(t)
                created = get(fwd + body)
                if created is None:
                    continue
                history = (get(fwd + body + HISTORY) or b"") + created + rb
                rbody = keys.reverse_body(t)
                batch.delete(fwd + body)
                batch.delete(rev + rbody)
                put(fwd + body + HISTORY, history)
                put(rev + rbody + HISTORY, history)
                put(keys.dead_key(tp, revision, keys.FORWARD, body), b"")
                bodies.append(body)
            deleted_tuples = sorted(bodies)
            attr_deleted: list[tuple[bytes, bytes]] = []
            attr_created: list[tuple[bytes, bytes]] = []

            attr_writes = {a.key: a for a in changes.write_attributes}
            attr_deletes = dict.fromkeys(
                k for k in changes.delete_attributes if k not in attr_writes
            )
            if changes.delete_attribute_filters:
                before = LevelDBReader(self, tp, TenantId(tenant), Revision(self._revision))
                for aflt in changes.delete_attribute_filters:
                    for a in before.iter_attributes(aflt):
                        if a.key not in attr_writes:
                            attr_deletes[a.key] = None
            apfx = tp + keys.ATTRIBUTES
            for k in attr_deletes:
                body = components(k)
                current = get(apfx + body)
                if current is not None:
                    self._retire_attribute(batch, tp, body, current, revision)
                    batch.delete(apfx + body)
                    attr_deleted.append((body, current))

            created_tuples: list[bytes] = []
            forward_body, reverse_body = keys.forward_body, keys.reverse_body
            add = created_tuples.append
            # In key order: LevelDB's lookups and inserts are cheaper with locality.
            for body, t in sorted([(forward_body(t), t) for t in writes]):
                key = fwd + body
                if get(key) is None:
                    put(key, rb)
                    put(rev + reverse_body(t), rb)
                    add(body)

            known = self._tenant_kinds(tenant, tp)
            new_kinds = {(t[0], t[2], t[3], t[5]) for t in writes} - known
            for kind in new_kinds:
                put(tp + keys.KINDS + components(kind), b"")

            for k, a in attr_writes.items():
                body = components(k)
                payload = _encode_value(a)
                current = get(apfx + body)
                if current is not None:
                    old = current[8:]
                    if old == payload or _decode_attribute(list(k), old).same_value(a):
                        continue
                    self._retire_attribute(batch, tp, body, current, revision)
                    attr_deleted.append((body, current))
                put(apfx + body, rb + payload)
                attr_created.append((body, rb + payload))

            for keyspace, parts in changes.delete_records:
                batch.delete(keys.record_prefix(tp, keyspace, parts))
            for record in changes.put_records:
                put(keys.record_prefix(tp, record.keyspace, record.key), record.value)
            if changes.delete_claims or changes.put_claims:
                self._apply_claims(batch, tp, tenant, changes)

            log = _change_log(deleted_tuples, attr_deleted, created_tuples, attr_created)
            if log:
                put(keys.change_key(tp, revision), log)
            now_ns = max(self._now_ns(), self._last_commit_ns)
            put(keys.REVISIONS + rb, rev8(now_ns) + component(tenant))
            batch.write()
        except plyvel.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc
        except RuntimeError as exc:
            if self._closed:
                raise StoreClosed("the store is closed") from exc
            raise
        self._last_commit_ns = now_ns
        self._revision = revision
        if new_kinds:
            self._kinds[tenant] = known | new_kinds
        return tokens.encode_snap(self._store_id, revision)

    def _apply_claims(self, batch: Any, tp: bytes, tenant: str, changes: Changes) -> None:
        """Release, then put, the writing tenant's claims; the caller holds the write lock."""
        held = tenant.encode("utf-8", "surrogatepass")
        for namespace, parts in changes.delete_claims:
            claim = keys.claim_key(namespace, parts)
            if self._db.get(claim) == held:  # another tenant's claim of the key stays
                batch.delete(claim)
            batch.delete(keys.tenant_claim_key(tp, namespace, parts))
        for namespace, parts in changes.put_claims:
            batch.put(keys.claim_key(namespace, parts), held)
            batch.put(keys.tenant_claim_key(tp, namespace, parts), b"")

    # -- claims ----------------------------------------------------------------------------

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        self._check_open()
        try:
            held: bytes | None = self._db.get(keys.claim_key(namespace, key))
        except RuntimeError as exc:
            raise _closed() from exc
        return None if held is None else TenantId(held.decode("utf-8", "surrogatepass"))

    @property
    def claims_complete(self) -> bool:
        return self._claims_complete

    def mark_claims_complete(self) -> None:
        with self._locked():
            self._db.put(_CLAIMS_COMPLETE_KEY, b"", sync=True)
            self._claims_complete = True

    def _tenant_kinds(self, tenant: str, tp: bytes) -> frozenset[TupleKind]:
        """The tenant's tuple kinds; the caller holds the write lock."""
        found = self._kinds.get(tenant)
        if found is None:
            prefix = tp + keys.KINDS
            found = frozenset(
                (et, rel, st, srel)
                for key in self._db.iterator(prefix=prefix, include_value=False)
                for et, rel, st, srel in [split(key[len(prefix) :])]
            )
            self._kinds[tenant] = found
        return found

    def tuple_kinds(self, tenant: str) -> frozenset[TupleKind]:
        found = self._kinds.get(tenant)
        if found is None:
            with self._locked():
                found = self._tenant_kinds(tenant, self._prefix(tenant))
        return found

    def _retire_attribute(
        self, batch: Any, tp: bytes, body: bytes, current: bytes, revision: int
    ) -> None:
        """Move the live version ``current`` of attribute ``body`` into its history."""
        key = tp + keys.ATTRIBUTES + body + HISTORY
        payload = current[8:]
        entry = current[:8] + rev8(revision) + len(payload).to_bytes(4, "big") + payload
        batch.put(key, (self._db.get(key) or b"") + entry)
        batch.put(keys.dead_key(tp, revision, keys.ATTRIBUTES, body), b"")

    # -- reads -----------------------------------------------------------------------------

    def reader(self, tenant: str, token: str = "") -> LevelDBReader:
        tp = self._prefix(tenant)
        if not token:
            # Readers are immutable: requests at the latest revision share one (still pinned,
            # as it is referenced here until the next write).
            latest = self._latest_readers.get(tenant)
            if latest is not None and latest._revision == self._revision and latest._tp is tp:
                return latest
        revision = self._decode_token(token, self._revision) if token else -1
        with self._pin_lock:
            # The latest revision is read under the pin lock so that GC cannot move the
            # horizon past it between reading it and pinning it.
            if revision < 0:
                revision = self._revision
            elif revision < self._horizon:
                raise self._expired(revision)
            reader = LevelDBReader(self, tp, TenantId(tenant), Revision(revision))
            self._readers.add(reader)
            if not token:
                self._latest_readers[tenant] = reader
        return reader

    def _decode_token(self, token: str, latest: int) -> int:
        revision = tokens.decode_snap(self._store_id, token)
        if revision > latest:
            raise InvalidToken(
                f"snap token names revision {revision}, newer than this store's latest {latest}"
            )
        return revision

    def _expired(self, revision: int) -> SnapshotExpired:
        return SnapshotExpired(
            f"snap token names revision {revision}, which garbage collection has removed: "
            f"the oldest readable revision is {self._horizon} "
            f"(history is kept for {self._gc_window:g} s); read without a token for the latest"
        )

    def head(self, tenant: str) -> SnapToken:
        self._prefix(tenant)
        return tokens.encode_snap(self._store_id, self._revision)

    def changes(self, tenant: str, after: str, *, limit: int) -> list[ChangeSet]:
        tp = self._prefix(tenant)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        start = 0
        if after:
            pin = self.reader(tenant, after)  # keeps GC from trimming the log while we read
            start = pin.revision
        prefix = tp + keys.CHANGES
        out: list[ChangeSet] = []
        for key, value in self._db.iterator(
            start=prefix + rev8(start + 1), stop=keys.prefix_end(prefix)
        ):
            if len(out) == limit:
                break
            revision = keys.revision_of(key[len(prefix) :])
            out.append(
                ChangeSet(
                    Revision(revision),
                    tokens.encode_snap(self._store_id, revision),
                    tuple(_decode_entries(value)),
                )
            )
        return out

    @property
    def revision(self) -> Revision:
        return Revision(self._revision)

    # -- garbage collection ----------------------------------------------------------------

    def _gc_loop(self, interval: float) -> None:
        while not self._gc_stop.wait(interval):
            try:
                stats = self.collect_garbage()
                log.info("gc: horizon %d, removed %d versions", stats.horizon, stats.removed)
            except StoreClosed:
                return
            except Exception:
                log.exception("garbage collection failed; will retry")

    def collect_garbage(self, *, now: float | None = None) -> GCStats:
        self._check_open()
        cutoff_ns = int(((self._clock() if now is None else now) - self._gc_window) * 1e9)
        candidate = self._horizon
        for key, value in self._db.iterator(
            start=keys.REVISIONS + rev8(self._horizon), stop=keys.prefix_end(keys.REVISIONS)
        ):
            if keys.revision_of(value[:8]) > cutoff_ns:
                break
            candidate = keys.revision_of(key[len(keys.REVISIONS) :])
        with self._pin_lock:
            # The shared latest readers of older revisions pin nothing anyone asked for.
            for tenant, latest in list(self._latest_readers.items()):
                if latest._revision != self._revision:
                    del self._latest_readers[tenant]
            pinned = [r.revision for r in list(self._readers)]
            # Never past the published latest revision: a batch already in the revision log
            # may not be visible to readers yet.
            horizon = max(self._horizon, min([candidate, self._revision, *pinned]))
            if horizon > self._horizon:
                self._db.put(_HORIZON_KEY, rev8(horizon), sync=self._sync)
                self._horizon = horizon
        removed = 0
        stop = rev8(horizon + 1)
        for tp in list(self._tenants.values()):
            removed += self._collect_tenant(tp, stop)
            self._delete_range(tp + keys.CHANGES, tp + keys.CHANGES + stop)
        self._delete_range(keys.REVISIONS, keys.REVISIONS + rev8(horizon))
        return GCStats(Revision(horizon), removed)

    def _collect_tenant(self, tp: bytes, stop: bytes) -> int:
        """Trim every history marked in the tenant's D range below ``stop``; each chunk runs
        under the write lock, since a write may be appending to the same histories."""
        dead = tp + keys.DEAD
        horizon = rev8(keys.revision_of(stop) - 1)
        removed = 0
        start = dead
        while True:
            with self._locked():
                chunk = list(
                    itertools.islice(
                        self._db.iterator(start=start, stop=dead + stop, include_value=False),
                        _GC_CHUNK,
                    )
                )
                if not chunk:
                    return removed
                start = chunk[-1] + b"\x00"
                trimmed: set[bytes] = set()
                with self._db.write_batch(sync=self._sync) as batch:
                    for key in chunk:
                        kind, body = key[len(dead) + 8 : len(dead) + 9], key[len(dead) + 9 :]
                        batch.delete(key)
                        hkey = tp + kind + body + HISTORY
                        if hkey in trimmed:
                            continue
                        history = self._db.get(hkey) or b""
                        if kind == keys.FORWARD:
                            kept = _trim_tuple_history(history, horizon)
                            removed += (len(history) - len(kept)) // 16
                            rkey = (
                                tp
                                + keys.REVERSE
                                + keys.reverse_body(keys.tuple_from_forward(body))
                                + HISTORY
                            )
                            _put_or_delete(batch, rkey, kept)
                        else:
                            kept = _trim_attribute_history(history, horizon)
                            removed += sum(1 for _ in _attribute_versions(history)) - sum(
                                1 for _ in _attribute_versions(kept)
                            )
                        _put_or_delete(batch, hkey, kept)
                        trimmed.add(hkey)


def _put_or_delete(batch: Any, key: bytes, value: bytes) -> None:
    if value:
        batch.put(key, value)
    else:
        batch.delete(key)


class _WriteLock:
    """The store's write lock, refusing a nested write from a ``transact`` build function
    (which would deadlock, or if allowed would not be atomic with the transaction)."""

    __slots__ = ("_store",)

    def __init__(self, store: LevelDBStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        if store._writer == threading.get_ident():
            raise StorageError(
                "a transact build function may not write: return the changes instead"
            )
        store._write_lock.acquire()
        if store._closed:
            store._write_lock.release()
            raise StoreClosed("the store is closed")
        store._writer = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self._store._writer = None
        self._store._write_lock.release()


def _attribute_data(body: bytes, value: bytes) -> bytes:
    """A change-log record of an attribute: its key body and the payload of ``value``."""
    return len(body).to_bytes(4, "big") + body + value[8:]


def _change_log(
    deleted_tuples: list[bytes],
    deleted_attributes: list[tuple[bytes, bytes]],
    created_tuples: list[bytes],
    created_attributes: list[tuple[bytes, bytes]],
) -> bytes:
    """One write's change-log value: tuple deletes, attribute deletes, tuple creates and
    attribute creates, each in key order (the tuple creates are already sorted)."""
    log = []
    if deleted_tuples:
        log.append(_entry(_DELETE, keys.FORWARD, b"".join(deleted_tuples)))
    for body, value in sorted(deleted_attributes):
        log.append(_entry(_DELETE, keys.ATTRIBUTES, _attribute_data(body, value)))
    if created_tuples:
        log.append(_entry(_CREATE, keys.FORWARD, b"".join(created_tuples)))
    for body, value in sorted(created_attributes):
        log.append(_entry(_CREATE, keys.ATTRIBUTES, _attribute_data(body, value)))
    return b"".join(log)


def _entry(op: bytes, kind: bytes, data: bytes) -> bytes:
    return op + kind + len(data).to_bytes(4, "big") + data


def _decode_entries(raw: bytes) -> Iterator[Change]:
    pos = 0
    while pos < len(raw):
        op = Operation.CREATE if raw[pos : pos + 1] == _CREATE else Operation.DELETE
        kind = raw[pos + 1 : pos + 2]
        n = int.from_bytes(raw[pos + 2 : pos + 6], "big")
        data = raw[pos + 6 : pos + 6 + n]
        pos += 6 + n
        if kind == keys.FORWARD:
            parts = split(data)
            for i in range(0, len(parts), 6):
                yield Change(op, Tuple(*parts[i : i + 6]))
        else:
            m = int.from_bytes(data[:4], "big")
            yield Change(op, _decode_attribute(split(data[4 : 4 + m]), data[4 + m :]))


def _visible_pair(history: bytes, rb: bytes) -> bool:
    """Whether a tuple history (created8, deleted8 pairs) has a version visible at ``rb``."""
    for i in range(0, len(history), 16):  # noqa: SIM110 - a plain loop is cheaper than any()
        if history[i : i + 8] <= rb < history[i + 8 : i + 16]:
            return True
    return False


def _attribute_versions(history: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(created8, deleted8, payload) of each entry of an attribute history."""
    pos = 0
    while pos < len(history):
        n = int.from_bytes(history[pos + 16 : pos + 20], "big")
        yield history[pos : pos + 8], history[pos + 8 : pos + 16], history[pos + 20 : pos + 20 + n]
        pos += 20 + n


def _visible_payload(history: bytes, rb: bytes) -> bytes | None:
    for created, deleted, payload in _attribute_versions(history):
        if created <= rb < deleted:
            return payload
    return None


def _trim_tuple_history(history: bytes, horizon: bytes) -> bytes:
    return b"".join(
        history[i : i + 16] for i in range(0, len(history), 16) if history[i + 8 : i + 16] > horizon
    )


def _trim_attribute_history(history: bytes, horizon: bytes) -> bytes:
    return b"".join(
        created + deleted + len(payload).to_bytes(4, "big") + payload
        for created, deleted, payload in _attribute_versions(history)
        if deleted > horizon
    )


_PLAIN_END = TERMINATOR + TERMINATOR  # a subject body whose relation is empty


def _decode_subject(body: bytes) -> Subject:
    if ESCAPED_NUL in body:
        return _new_tuple(Subject, split(body))
    parts = body.decode("utf-8", "surrogatepass").split(SEPARATOR)
    parts.pop()
    return _new_tuple(Subject, parts)


class _RawSubjects:
    """A `SubjectSet` kept as the subjects' key bytes: membership needs no decoding, and the
    bytes (unlike tuples) are no work for the garbage collector."""

    __slots__ = ("_bodies", "_lookup", "usersets")

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies
        self._lookup: list[bytes] | frozenset[bytes] = (
            bodies if len(bodies) < 9 else frozenset(bodies)
        )
        usersets = [b for b in bodies if not b.endswith(_PLAIN_END)]
        self.usersets: Sequence[Subject] = (
            [_decode_subject(b) for b in usersets] if usersets else ()
        )

    def has(self, token: object) -> bool:
        return token in self._lookup

    def __len__(self) -> int:
        return len(self._bodies)

    def __iter__(self) -> Iterator[Subject]:
        return map(_decode_subject, self._bodies)


class LevelDBReader:
    """A ``SnapshotReader``: one tenant at one revision. Cheap to create; hold it for the
    duration of a request (while it is referenced, GC keeps everything it can see)."""

    __slots__ = ("__weakref__", "_db", "_local", "_rb", "_revision", "_store", "_tenant", "_tp")

    def __init__(self, store: LevelDBStore, tp: bytes, tenant: TenantId, revision: Revision):
        self._store = store
        self._db = store._db
        self._tp = tp
        self._tenant = tenant
        self._revision = revision
        self._rb = rev8(revision)
        # One raw iterator per thread, re-seeked for every engine read: seeking is much cheaper
        # than making an iterator. It sees the database as of its creation, which is after this
        # reader's revision was published, so filtering by the revision stays exact.
        self._local = threading.local()

    def _seek(self, prefix: bytes) -> Any:
        it = getattr(self._local, "it", None)
        if it is None:
            it = self._local.it = self._db.raw_iterator()
        it.seek(prefix)
        return it

    @property
    def tenant(self) -> TenantId:
        return self._tenant

    @property
    def revision(self) -> Revision:
        return self._revision

    @property
    def token(self) -> SnapToken:
        return tokens.encode_snap(self._store._store_id, self._revision)

    def _current(self) -> bool:
        """False once the tenant is deleted (even if an equal id was created again since):
        a reader of a deleted tenant sees nothing, never a half-deleted or newer tenant."""
        return self._store._tenants.get(self._tenant) is self._tp

    # -- engine reads ------------------------------------------------------------------
    # plyvel raises RuntimeError once the database is closed; every read translates it.

    # subjects and entity_ids are _scan specialised by hand: they are the engine's inner loop.

    def subjects(self, entity_type: str, entity_id: str, relation: str) -> list[Subject]:
        return list(self.subject_set(entity_type, entity_id, relation))

    def subject_token(self, subject: Subject) -> object:
        return components(subject)

    def subject_set(self, entity_type: str, entity_id: str, relation: str) -> SubjectSet:
        prefix = keys.forward_prefix(self._tp, entity_type, entity_id, relation)
        n = len(prefix)
        rb = self._rb
        bodies: list[bytes] = []
        if not self._current():
            return _RawSubjects(bodies)
        add = bodies.append
        try:
            it = self._seek(prefix)
            while it.valid():
                key, value = it.item()
                if not key.startswith(prefix):
                    break
                if key[-1] == 1:  # live key: the value is its creation revision
                    if value <= rb:
                        add(key[n:])
                elif _visible_pair(value, rb):
                    add(key[n:-1])
                it.next()
        except RuntimeError as exc:
            raise _closed() from exc
        return _RawSubjects(bodies)

    def tuple_kinds(self) -> frozenset[TupleKind]:
        if not self._current():
            return frozenset()
        return self._store.tuple_kinds(self._tenant)

    def relations(
        self, entity_type: str, entity_id: str, *, limit: int
    ) -> dict[str, SubjectSet] | None:
        prefix = keys.forward_prefix(self._tp, entity_type, entity_id)
        n = len(prefix)
        rb = self._rb
        grouped: dict[bytes, list[bytes]] = {}
        if not self._current():
            return {}
        found = 0
        scanned = 0
        try:
            it = self._seek(prefix)
            while it.valid():
                key, value = it.item()
                if not key.startswith(prefix):
                    break
                it.next()
                scanned += 1
                if scanned > 4 * limit:  # mostly history: not worth it either
                    return None
                if key[-1] == 1:
                    if value > rb:
                        continue
                    body = key[n:]
                elif _visible_pair(value, rb):
                    body = key[n:-1]
                else:
                    continue
                found += 1
                if found > limit:
                    return None
                end = body.index(TERMINATOR)
                relation = body[:end]
                bodies = grouped.get(relation)
                if bodies is None:
                    bodies = grouped[relation] = []
                bodies.append(body[end + 2 :])
        except RuntimeError as exc:
            raise _closed() from exc
        return {
            (
                split(relation + TERMINATOR)[0]
                if ESCAPED_NUL in relation
                else relation.decode("utf-8", "surrogatepass")
            ): _RawSubjects(bodies)
            for relation, bodies in grouped.items()
        }

    def has_tuple(self, t: Tuple) -> bool:
        key = self._tp + keys.FORWARD + keys.forward_body(t)
        rb = self._rb
        if not self._current():
            return False
        try:
            created = self._db.get(key)
            if created is not None and created <= rb:
                return True
            history = self._db.get(key + HISTORY)
        except RuntimeError as exc:
            raise _closed() from exc
        return history is not None and _visible_pair(history, rb)

    def entity_ids(self, entity_type: str, relation: str, subject: Subject) -> Iterator[str]:
        st, sid, srel = subject
        prefix = keys.reverse_prefix(self._tp, st, sid, srel, entity_type, relation)
        n = len(prefix)
        rb = self._rb
        if not self._current():
            return
        try:
            for key, value in self._db.iterator(prefix=prefix):
                if key[-1] == 1:
                    if value <= rb:
                        yield split(key[n:])[0]
                elif _visible_pair(value, rb):
                    yield split(key[n:-1])[0]
        except RuntimeError as exc:
            raise _closed() from exc

    def attribute(self, entity_type: str, entity_id: str, name: str) -> Attribute | None:
        key = keys.attribute_prefix(self._tp, entity_type, entity_id, name)
        rb = self._rb
        if not self._current():
            return None
        try:
            current = self._db.get(key)
            if current is not None and current[:8] <= rb:
                payload: bytes | None = current[8:]
            else:
                history = self._db.get(key + HISTORY)
                payload = None if history is None else _visible_payload(history, rb)
        except RuntimeError as exc:
            raise _closed() from exc
        if payload is None:
            return None
        return _decode_attribute([entity_type, entity_id, name], payload)

    def attributes(self, entity_type: str, entity_id: str) -> list[Attribute]:
        prefix = keys.ATTRIBUTES + components((entity_type, entity_id))
        return [
            _decode_attribute(split(body[1:]), payload)
            for _, body, payload in self._scan([prefix], None, attributes=True)
        ]

    # -- filtered, paginated reads -----------------------------------------------------

    def _scan(
        self, prefixes: Iterable[bytes], resume: bytes | None, *, attributes: bool
    ) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(position, body, payload) of each version visible under each prefix (relative to
        the tenant, sorted and disjoint), strictly after ``resume``.

        ``body`` is the key after the tenant without the history byte; ``position`` is
        ``body + HISTORY``, the last key of that tuple or attribute, so resuming after it skips
        both its keys even if a write has since moved its live version into history."""
        tp = self._tp
        n = len(tp)
        rb = self._rb
        if not self._current():
            return
        for rel in prefixes:
            start, stop = tp + rel, tp + keys.prefix_end(rel)
            include_start = True
            if resume is not None:
                if tp + resume >= stop:
                    continue
                if tp + resume >= start:
                    start, include_start = tp + resume, False
            try:
                for key, value in self._db.iterator(
                    start=start, stop=stop, include_start=include_start
                ):
                    if key[-1] == 1:
                        if value[:8] <= rb:
                            yield key[n:] + HISTORY, key[n:], value[8:]
                    elif attributes:
                        payload = _visible_payload(value, rb)
                        if payload is not None:
                            yield key[n:], key[n:-1], payload
                    elif _visible_pair(value, rb):
                        yield key[n:], key[n:-1], b""
            except RuntimeError as exc:
                raise _closed() from exc

    def _tuple_scan(self, flt: TupleFilter, resume: bytes | None) -> Iterator[tuple[bytes, Tuple]]:
        if flt.entity_type and (flt.entity_ids or not (flt.subject_type and flt.subject_ids)):
            head = keys.FORWARD + component(flt.entity_type)
            if flt.entity_ids:
                tail = component(flt.relation) if flt.relation else b""
                prefixes = [head + component(i) + tail for i in flt.entity_ids]
            else:
                prefixes = [head]
            decode = keys.tuple_from_forward
        elif flt.subject_type:
            head = keys.REVERSE + component(flt.subject_type)
            if flt.subject_ids:
                tail = b""
                if flt.subject_relation is not None:
                    tail = component(flt.subject_relation)
                    if flt.entity_type:
                        tail += component(flt.entity_type)
                        if flt.relation:
                            tail += component(flt.relation)
                prefixes = [head + component(i) + tail for i in flt.subject_ids]
            else:
                prefixes = [head]
            decode = keys.tuple_from_reverse
        else:
            prefixes = [keys.FORWARD]
            decode = keys.tuple_from_forward
        prefixes.sort()
        matches = flt.matches
        # A relation the index prefix does not cover is checked on the raw key first, so the
        # tuples of other relations are skipped without being decoded.
        relation = b""
        if decode is keys.tuple_from_forward and flt.relation and not flt.entity_ids:
            relation = component(flt.relation)[: -len(TERMINATOR)]
        for key, body, _ in self._scan(prefixes, resume, attributes=False):
            if relation and body[1:].split(TERMINATOR, 3)[2] != relation:
                continue
            t = decode(body[1:])
            if matches(t):
                yield key, t

    def read_tuples(self, flt: TupleFilter, *, page_size: int, cursor: str = "") -> Page[Tuple]:
        query = tokens.fingerprint("tuples", self._tenant, flt)
        return _page(self._tuple_scan(flt, _resume(query, cursor)), query, page_size)

    def iter_tuples(self, flt: TupleFilter) -> Iterator[Tuple]:
        for _, t in self._tuple_scan(flt, None):
            yield t

    def _attribute_scan(
        self, flt: AttributeFilter, resume: bytes | None
    ) -> Iterator[tuple[bytes, Attribute]]:
        if flt.entity_type:
            head = keys.ATTRIBUTES + component(flt.entity_type)
            if flt.entity_ids and flt.names and len(flt.entity_ids) * len(flt.names) <= 1000:
                prefixes = [
                    head + component(i) + component(name)
                    for i in flt.entity_ids
                    for name in flt.names
                ]
            elif flt.entity_ids:
                prefixes = [head + component(i) for i in flt.entity_ids]
            else:
                prefixes = [head]
        else:
            prefixes = [keys.ATTRIBUTES]
        prefixes.sort()
        matches = flt.matches
        for key, body, payload in self._scan(prefixes, resume, attributes=True):
            a = _decode_attribute(split(body[1:]), payload)
            if matches(a):
                yield key, a

    def read_attributes(
        self, flt: AttributeFilter, *, page_size: int, cursor: str = ""
    ) -> Page[Attribute]:
        query = tokens.fingerprint("attributes", self._tenant, flt)
        return _page(self._attribute_scan(flt, _resume(query, cursor)), query, page_size)

    def iter_attributes(self, flt: AttributeFilter) -> Iterator[Attribute]:
        for _, a in self._attribute_scan(flt, None):
            yield a

    # -- records -----------------------------------------------------------------------

    def record(self, keyspace: str, key: RecordKey) -> bytes | None:
        if not self._current():
            return None
        try:
            value: bytes | None = self._db.get(keys.record_prefix(self._tp, keyspace, key))
        except RuntimeError as exc:
            raise _closed() from exc
        return value

    def records(
        self,
        keyspace: str,
        prefix: RecordKey = (),
        *,
        after: RecordKey | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Record]:
        space = keys.record_prefix(self._tp, keyspace)
        start = space + components(prefix)
        stop = keys.prefix_end(start)
        include_start = True
        if after is not None:
            mark = space + components(after)
            if reverse:
                stop = min(stop, mark)
            elif mark >= start:
                start, include_start = mark, False
        n = len(space)
        if self._store._closed:
            raise _closed()
        if not self._current():
            return
        if reverse:
            # plyvel 1.5 skips a reverse iterator's start key itself; start one byte lower
            # (no key ends in that byte) and keep the range by filtering.
            found = (
                item
                for item in self._db.iterator(start=start[:-1], stop=stop, reverse=True)
                if item[0] >= start
            )
        else:
            found = self._db.iterator(start=start, stop=stop, include_start=include_start)
        try:
            for key, value in itertools.islice(found, limit):
                yield Record(keyspace, tuple(split(key[n:])), value)
        except RuntimeError as exc:
            raise _closed() from exc


def _closed() -> StoreClosed:
    return StoreClosed("the store is closed")


def _resume(query: bytes, cursor: str) -> bytes | None:
    if not cursor:
        return None
    position = tokens.decode_cursor(query, cursor)
    if not position:
        raise InvalidToken("malformed continuation token: empty position")
    return position


def _page(items: Iterator[tuple[bytes, ItemT]], query: bytes, page_size: int) -> Page[ItemT]:
    check_page_size(page_size)
    out: list[ItemT] = []
    last = b""
    for key, item in items:
        if len(out) == page_size:
            return Page(out, tokens.encode_cursor(query, last))
        out.append(item)
        last = key
    return Page(out, "")
