"""The product store: tuples, attributes, schemas and records in one LevelDB directory.

``LevelDBStore`` opens and closes the directory, keeps the tenant registry, schemas, claims and
tuple kinds, serialises writes (``write.py`` builds each batch) and hands out readers pinned to
a revision (``reader.py``); ``gc.py`` collects old versions and ``changelog.py`` encodes the
change log. ``keys.py`` has the key layout.

Concurrency model:

* Writes (``write``, ``transact``, tenant and schema changes) are serialised by one lock; a
  write becomes visible to new readers when the batch is in LevelDB, the tenant's in-memory
  copy (``resident.py``) has its changes, and the in-memory latest revision moves. Readers
  never lock (see ``reader.py``).
* Every call is synchronous and short (µs for point reads; a page for paginated reads). Callers
  on an event loop run long jobs (bulk imports, whole-tenant scans, tenant deletion, GC) in a
  thread. plyvel releases the GIL inside LevelDB calls.
* Garbage collection runs in a background thread every ``gc_interval`` seconds (``gc.py``).
* ``sync=False`` (the default) survives a process crash: LevelDB hands each batch to the OS
  before the write returns. ``sync=True`` also fsyncs each write, surviving power loss, at the
  cost of one disk flush per write (see the README for numbers).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plyvel

from storage import keys, tokens
from storage.base import (
    DEFAULT_GC_WINDOW_SECONDS,
    DEFAULT_MAX_WRITE_ITEMS,
    DEFAULT_TENANT,
    Changes,
    ChangeSet,
    GCStats,
    Page,
    RecordKey,
    Revision,
    SchemaVersion,
    SnapshotReader,
    SnapToken,
    TenantId,
    TenantInfo,
    TupleKind,
    check_page_size,
    check_tenant_id,
)
from storage.errors import (
    SchemaHeadMoved,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    TenantExists,
    TenantNotFound,
)
from storage.gc_loop import GCLoop
from storage.keys import TERMINATOR, component, rev8, split
from storage.leveldb import gc
from storage.leveldb.changelog import decode_changes
from storage.leveldb.plyvel_errors import PlyvelErrors, open_error, store_closed
from storage.leveldb.reader import LevelDBReader
from storage.leveldb.resident import Resident
from storage.leveldb.write import apply_changes
from storage.snapshot import Pin

log = logging.getLogger(__name__)

FORMAT = b"1"
#: Tuples the in-memory copies of the tenants may hold together (``resident.py``).
DEFAULT_RESIDENT_TUPLES = 1_000_000
_DELETE_CHUNK = 10_000


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


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
        resident_tuples: int = DEFAULT_RESIDENT_TUPLES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_write_items < 1:
            raise ValueError("max_write_items must be at least 1")
        if gc_window < 0:
            raise ValueError("gc_window must not be negative")
        if gc_interval is not None and gc_interval <= 0:
            raise ValueError("gc_interval must be positive (None turns the GC thread off)")
        self._path = Path(path)
        self._resident = Resident(self, resident_tuples)
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
        except plyvel.Error as exc:
            raise open_error(self._path, exc) from exc

        self._write_lock = threading.Lock()
        self._writer: int | None = None
        self._pin_lock = threading.Lock()
        # The pins of the open readers (each held by its reader alone): the revisions GC keeps.
        self._pins: weakref.WeakSet[Pin] = weakref.WeakSet()
        self._closed = False
        # The plyvel-error translations every read and every write run inside.
        self._read_errors = PlyvelErrors(self)
        self._write_errors = PlyvelErrors(self, "write failed")
        try:
            self._initialise()
        except BaseException:
            self._db.close()
            raise
        self._gc = GCLoop(self, gc_interval)

    # -- opening and closing -------------------------------------------------------------

    def _initialise(self) -> None:
        db = self._db
        fmt = db.get(keys.FORMAT_KEY)
        if fmt is None:
            if next(db.iterator(include_value=False), None) is not None:
                raise StorageError(f"{self._path} holds a LevelDB that is not a Stonetown store")
            store_id = os.urandom(tokens.STORE_ID_BYTES)
            with db.write_batch(sync=True) as batch:
                batch.put(keys.FORMAT_KEY, FORMAT)
                batch.put(keys.STORE_ID_KEY, store_id)
                batch.put(keys.HORIZON_KEY, rev8(0))
                batch.put(keys.CLAIMS_COMPLETE_KEY, b"")
                batch.put(
                    keys.tenant_registry_key(DEFAULT_TENANT), self._tenant_value("", self._now_ns())
                )
        elif fmt != FORMAT:
            raise StorageError(
                f"{self._path} uses store format {fmt.decode(errors='replace')}, "
                f"this version reads format {FORMAT.decode()}"
            )
        self._store_id: bytes = db.get(keys.STORE_ID_KEY)
        self._horizon = keys.revision_of(db.get(keys.HORIZON_KEY))
        self._claims_complete = db.get(keys.CLAIMS_COMPLETE_KEY) is not None
        last = next(db.iterator(prefix=keys.REVISIONS, reverse=True, include_value=False), None)
        self._revision = keys.revision_of(last[len(keys.REVISIONS) :]) if last else 0
        self._last_commit_ns = 0
        self._tenants: dict[str, bytes] = {}
        # tenant -> newest schema version, filled on first use; changed under the write lock.
        self._schema_heads: dict[str, str] = {}
        # tenant -> a reader at the latest revision, handed to every request that names none.
        self._latest_readers: dict[str, LevelDBReader] = {}
        # tenant -> its tuple kinds (kept under the tenant's kinds prefix), loaded on first use
        # under the write lock.
        self._kinds: dict[str, frozenset[TupleKind]] = {}
        for key in db.iterator(prefix=keys.TENANTS, include_value=False):
            (tenant,) = split(key[len(keys.TENANTS) :])
            self._tenants[tenant] = keys.tenant_prefix(tenant)
        if fmt is None:  # a new store: its default tenant has no tuples to warm up
            self._resident.created(DEFAULT_TENANT, self._tenants[DEFAULT_TENANT], 0)
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
        self._gc.stop()
        self._resident.stop()
        with self._write_lock:
            self._closed = True
            self._resident.clear()
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
            raise store_closed()

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
            self._resident.created(tenant, tp, self._revision)
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
            self._resident.dropped(tenant)
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

    def write_schema(self, tenant: str, text: str, *, parent: str | None = None) -> SchemaVersion:
        with self._locked():
            tp = self._prefix(tenant)
            head = self._head_schema(tp)
            if parent is not None and parent != (head.version if head else ""):
                raise SchemaHeadMoved(tenant, parent, head.version if head else "")
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

    def _locked(self, *, wait: bool = True) -> _WriteLock:
        return _WriteLock(self, wait=wait)

    def write(self, tenant: str, changes: Changes) -> SnapToken:
        with self._locked():
            return apply_changes(self, self._prefix(tenant), tenant, changes)

    def transact(self, tenant: str, build: Callable[[SnapshotReader], Changes]) -> SnapToken:
        token = self._transact(tenant, build, wait=True)
        assert token is not None
        return token

    def transact_now(
        self, tenant: str, build: Callable[[SnapshotReader], Changes]
    ) -> SnapToken | None:
        if self._sync:  # each write waits for the disk
            return None
        return self._transact(tenant, build, wait=False)

    def _transact(
        self, tenant: str, build: Callable[[SnapshotReader], Changes], *, wait: bool
    ) -> SnapToken | None:
        """`transact`; without ``wait``, None when another write holds the lock."""
        with self._locked(wait=wait) as held:
            if not held:
                return None
            tp = self._prefix(tenant)
            changes = build(self.reader(tenant))
            return apply_changes(self, tp, tenant, changes)

    # -- claims and tuple kinds ------------------------------------------------------------

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        self._check_open()
        with self._read_errors:
            held: bytes | None = self._db.get(keys.claim_key(namespace, key))
        return None if held is None else TenantId(held.decode("utf-8", "surrogatepass"))

    @property
    def claims_complete(self) -> bool:
        return self._claims_complete

    def mark_claims_complete(self) -> None:
        with self._locked():
            self._db.put(keys.CLAIMS_COMPLETE_KEY, b"", sync=True)
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

    # -- reads -----------------------------------------------------------------------------

    def reader(
        self, tenant: str, token: str = "", *, prefetch: tuple[str, str] | None = None
    ) -> LevelDBReader:
        tp = self._prefix(tenant)
        if not token:
            # Readers are immutable: requests at the latest revision share one (still pinned,
            # as it is referenced here until the next write).
            latest = self._latest_readers.get(tenant)
            if latest is not None and latest._revision == self._revision and latest._tp is tp:
                return latest
        revision = -1
        if token:
            revision = tokens.decode_snap(self._store_id, token, latest=self._revision)
        with self._pin_lock:
            # The latest revision is read under the pin lock so that GC cannot move the
            # horizon past it between reading it and pinning it.
            if revision < 0:
                revision = self._revision
            elif revision < self._horizon:
                raise self._expired(revision)
            pin = Pin(Revision(revision))
            reader = LevelDBReader(self, tp, TenantId(tenant), Revision(revision), pin)
            self._pins.add(pin)
            if not token:
                self._latest_readers[tenant] = reader
        return reader

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
                    tuple(decode_changes(value)),
                )
            )
        return out

    @property
    def revision(self) -> Revision:
        return Revision(self._revision)

    # -- garbage collection ----------------------------------------------------------------

    def collect_garbage(self, *, now: float | None = None) -> GCStats:
        return gc.collect_garbage(self, now)


class _WriteLock:
    """The store's write lock, refusing a nested write from a ``transact`` build function
    (which would deadlock, or if allowed would not be atomic with the transaction). Without
    ``wait``, entering takes the lock only if it is free: ``with`` gives whether it did."""

    __slots__ = ("_held", "_store", "_wait")

    def __init__(self, store: LevelDBStore, *, wait: bool = True) -> None:
        self._store = store
        self._wait = wait
        self._held = False

    def __enter__(self) -> bool:
        store = self._store
        if store._writer == threading.get_ident():
            raise StorageError(
                "a transact build function may not write: return the changes instead"
            )
        if not store._write_lock.acquire(blocking=self._wait):
            return False
        if store._closed:
            store._write_lock.release()
            raise store_closed()
        store._writer = threading.get_ident()
        self._held = True
        return True

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self._store._writer = None
            self._store._write_lock.release()
