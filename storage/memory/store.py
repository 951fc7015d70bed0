"""Dict-backed reference store: the oracle the LevelDB backend is tested against.

It keeps the semantics of ``storage/base.py`` in the plainest form: every version of every tuple
and attribute as ``(created, deleted)`` revisions in a list per key, records and schemas in dicts,
the change log in a list. Reads scan and sort on every call; that is the point, since a reference
should be obviously right rather than fast.

Concurrency: one ``threading.Lock`` serialises every state change (writes, transactions, tenants,
schemas, garbage collection, close). Reads take no lock. They look up single keys or copy a dict's
items (one C-level call, atomic under the GIL), and a key's version list is never changed in
place: a write or a collection installs a new list, so a reader only walks data nobody mutates. A
second, tiny lock pairs opening a reader with the GC horizon, so a collection never removes a
version that a reader being opened needs; it is separate from the write lock so that a
``transact`` build function, which runs under the write lock, may still open readers.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from storage import tokens
from storage.base import (
    DEFAULT_GC_WINDOW_SECONDS,
    DEFAULT_MAX_WRITE_ITEMS,
    DEFAULT_TENANT,
    Attribute,
    AttributeFilter,
    AttributeKey,
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
    TenantId,
    TenantInfo,
    Tuple,
    TupleFilter,
    check_page_size,
    check_tenant_id,
)
from storage.errors import (
    SchemaHeadMoved,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    StoreClosed,
    TenantExists,
    TenantNotFound,
)
from storage.memory.pages import cut_page, decode_text
from storage.memory.reader import MemoryReader
from storage.memory.versions import TenantData, Version, expire, live, prune


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _check_changes(changes: Changes) -> None:
    """Refuse anything that could fail half-way through applying ``changes``."""
    if not isinstance(changes, Changes):
        raise TypeError(f"expected Changes, got {type(changes).__name__}")
    _check_items((*changes.write_tuples, *changes.delete_tuples), Tuple)
    _check_items(changes.write_attributes, Attribute)
    _check_items(changes.delete_attributes, AttributeKey)
    _check_items(changes.delete_tuple_filters, TupleFilter, show=False)
    _check_items(changes.delete_attribute_filters, AttributeFilter, show=False)
    for r in changes.put_records:
        if not (isinstance(r, Record) and isinstance(r.value, bytes)):
            raise TypeError(f"expected a Record with a bytes value, got {r!r}")
        _check_record_key(r.keyspace, r.key)
    for keyspace, key in (
        *changes.delete_records,
        *changes.put_claims,
        *changes.delete_claims,
    ):
        _check_record_key(keyspace, key)


def _check_items(items: Iterable[object], expected: type, *, show: bool = True) -> None:
    """Refuse the first of ``items`` that is not an ``expected`` (shown, unless ``show`` is off)."""
    for item in items:
        if not isinstance(item, expected):
            name = expected.__name__
            article = "an" if name[0] in "AEIOU" else "a"
            shown = f": {item!r}" if show else ""
            raise TypeError(f"expected {article} {name}, got {type(item).__name__}{shown}")


def _check_record_key(keyspace: object, key: object) -> None:
    if not (
        isinstance(keyspace, str)
        and isinstance(key, tuple)
        and all(isinstance(part, str) for part in key)
    ):
        raise TypeError(
            f"expected a record keyspace str and a key tuple of str, got {keyspace!r}, {key!r}"
        )


class MemoryStore:
    """A ``Store`` in dicts: every version kept until garbage collection, all in one process."""

    def __init__(
        self,
        *,
        max_write_items: int = DEFAULT_MAX_WRITE_ITEMS,
        gc_window: float = DEFAULT_GC_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_write_items < 1:
            raise ValueError(f"max_write_items must be at least 1, got {max_write_items}")
        if gc_window < 0:
            raise ValueError(f"gc_window must not be negative, got {gc_window}")
        self._max_write_items = max_write_items
        self._gc_window = gc_window
        self._clock = clock
        self._store_id = os.urandom(tokens.STORE_ID_BYTES)
        self._lock = threading.Lock()
        self._lock_owner: int | None = None
        self._readers_lock = threading.Lock()
        self._readers: weakref.WeakSet[MemoryReader] = weakref.WeakSet()
        self._revision = Revision(0)
        self._horizon = Revision(0)
        self._commit_times: dict[Revision, float] = {}
        self._closed = False
        tenant = TenantId(DEFAULT_TENANT)
        self._tenants: dict[TenantId, TenantData] = {
            tenant: TenantData(TenantInfo(tenant, "", _timestamp(clock())))
        }
        #: (namespace, key) -> the tenant holding that claim.
        self._claims: dict[tuple[str, RecordKey], TenantId] = {}

    @property
    def max_write_items(self) -> int:
        return self._max_write_items

    # -- plumbing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    @contextmanager
    def _exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold the write lock (refusing, rather than deadlocking, a write inside ``transact``);
        without ``wait``, only if it is free: the block gets whether it holds it."""
        if self._lock_owner == threading.get_ident():
            raise StorageError(
                "a transact build function may not write: return the changes instead"
            )
        if not self._lock.acquire(blocking=wait):
            yield False
            return
        try:
            self._lock_owner = threading.get_ident()
            try:
                self._check_open()
                yield True
            finally:
                self._lock_owner = None
        finally:
            self._lock.release()

    def _data(self, tenant: str) -> TenantData:
        tenant_id = check_tenant_id(tenant)
        data = self._tenants.get(tenant_id)
        if data is None:
            raise TenantNotFound(tenant)
        return data

    def _token(self, revision: int) -> SnapToken:
        return tokens.encode_snap(self._store_id, revision)

    def _check_retained(self, revision: int) -> None:
        if revision < self._horizon:
            raise SnapshotExpired(
                f"snap token names revision {revision}, but the oldest retained revision is "
                f"{self._horizon} (garbage collection keeps {self._gc_window:g} seconds)"
            )

    def _open_reader(self, tenant: TenantId, data: TenantData, token: str) -> MemoryReader:
        revision: Revision | None = None
        if token:
            revision = tokens.decode_snap(self._store_id, token, latest=self._revision)
        with self._readers_lock:
            # Read inside the lock: the horizon never passes the revision current at that time.
            revision = self._revision if revision is None else revision
            self._check_retained(revision)
            reader = MemoryReader(self, tenant, data, revision)
            self._readers.add(reader)
        return reader

    # -- tenants ----------------------------------------------------------------------------

    def create_tenant(self, tenant: str, name: str = "") -> TenantInfo:
        tenant_id = check_tenant_id(tenant)
        with self._exclusive():
            if tenant_id in self._tenants:
                raise TenantExists(tenant)
            info = TenantInfo(tenant_id, name, _timestamp(self._clock()))
            self._tenants[tenant_id] = TenantData(info)
            return info

    def get_tenant(self, tenant: str) -> TenantInfo:
        self._check_open()
        return self._data(tenant).info

    def list_tenants(self, *, page_size: int, cursor: str = "") -> Page[TenantInfo]:
        self._check_open()
        check_page_size(page_size)
        query = tokens.fingerprint("tenants")
        infos = sorted((d.info for d in list(self._tenants.values())), key=lambda i: i.id)
        if cursor:
            last = decode_text(tokens.decode_cursor(query, cursor), "utf-8")
            infos = [i for i in infos if i.id > last]
        return cut_page(
            infos[: page_size + 1],
            page_size,
            query,
            lambda i: i.id.encode("utf-8", "surrogatepass"),
        )

    def delete_tenant(self, tenant: str) -> TenantInfo:
        with self._exclusive():
            data = self._data(tenant)
            del self._tenants[data.info.id]
            self._claims = {k: t for k, t in self._claims.items() if t != data.info.id}
            return data.info

    # -- schemas ----------------------------------------------------------------------------

    def write_schema(self, tenant: str, text: str, *, parent: str | None = None) -> SchemaVersion:
        with self._exclusive():
            data = self._data(tenant)
            head = max(data.schemas, default="")
            if parent is not None and parent != head:
                raise SchemaHeadMoved(tenant, parent, head)
            now = self._clock()
            version = tokens.new_schema_version(head, int(now * 1000))
            schema = SchemaVersion(version, _timestamp(now), text)
            data.schemas[version] = schema
            return schema

    def schema_head(self, tenant: str) -> str:
        self._check_open()
        return max(self._data(tenant).schemas, default="")

    def read_schema(self, tenant: str, version: str = "") -> SchemaVersion:
        self._check_open()
        data = self._data(tenant)
        schemas = dict(data.schemas)
        if not schemas:
            raise SchemaNotFound(f"no schema has been written for tenant {tenant!r}")
        if not version:
            return schemas[max(schemas)]
        found = schemas.get(version)
        if found is None:
            raise SchemaNotFound(f"tenant {tenant!r} has no schema version {version!r}")
        return found

    def list_schemas(self, tenant: str, *, page_size: int, cursor: str = "") -> Page[SchemaVersion]:
        self._check_open()
        check_page_size(page_size)
        data = self._data(tenant)
        query = tokens.fingerprint("schemas", tenant)
        schemas = sorted(list(data.schemas.values()), key=lambda s: s.version, reverse=True)
        if cursor:
            last = decode_text(tokens.decode_cursor(query, cursor), "ascii")
            schemas = [s for s in schemas if s.version < last]
        return cut_page(schemas[: page_size + 1], page_size, query, lambda s: s.version.encode())

    # -- writes -----------------------------------------------------------------------------

    def write(self, tenant: str, changes: Changes) -> SnapToken:
        self._check_open()
        _check_changes(changes)
        changes.check(self._max_write_items)
        with self._exclusive():
            return self._apply(self._data(tenant), changes)

    def transact(self, tenant: str, build: Callable[[SnapshotReader], Changes]) -> SnapToken:
        token = self._transact(tenant, build, wait=True)
        assert token is not None
        return token

    def transact_now(
        self, tenant: str, build: Callable[[SnapshotReader], Changes]
    ) -> SnapToken | None:
        return self._transact(tenant, build, wait=False)

    def _transact(
        self, tenant: str, build: Callable[[SnapshotReader], Changes], *, wait: bool
    ) -> SnapToken | None:
        """`transact`; without ``wait``, None when another write holds the lock."""
        with self._exclusive(wait=wait) as held:
            if not held:
                return None
            data = self._data(tenant)
            changes = build(self._open_reader(data.info.id, data, ""))
            _check_changes(changes)
            changes.check(self._max_write_items)
            return self._apply(data, changes)

    def _apply(self, data: TenantData, changes: Changes) -> SnapToken:
        """Apply checked ``changes`` at the next revision; the caller holds the write lock.

        Everything is decided against the state before the write, and only then installed, so
        nothing can fail half-way.
        """
        revision = Revision(self._revision + 1)

        live_tuples = {t for t, versions in data.tuples.items() if live(versions)}
        written_tuples = set(changes.write_tuples)
        kinds = {(t[0], t[2], t[3], t[5]) for t in written_tuples}
        if not kinds <= data.kinds:
            data.kinds = data.kinds | kinds
        doomed_tuples = set(changes.delete_tuples)
        for tf in changes.delete_tuple_filters:
            doomed_tuples.update(t for t in live_tuples if tf.matches(t))
        expired_tuples = sorted((doomed_tuples - written_tuples) & live_tuples)
        created_tuples = sorted(written_tuples - live_tuples)

        live_attributes: dict[AttributeKey, Attribute] = {}
        for key, attribute_versions in data.attributes.items():
            version = live(attribute_versions)
            if version is not None:
                live_attributes[key] = version.item
        written = {a.key: a for a in changes.write_attributes}  # the last write of a key wins
        doomed_keys = set(changes.delete_attributes)
        for af in changes.delete_attribute_filters:
            doomed_keys.update(k for k, a in live_attributes.items() if af.matches(a))
        expired_keys = (doomed_keys - written.keys()) & live_attributes.keys()
        created_attributes: list[Attribute] = []
        for key, attribute in written.items():
            old = live_attributes.get(key)
            if old is not None and old.same_value(attribute):
                continue
            if old is not None:
                expired_keys.add(key)
            created_attributes.append(attribute)
        created_attributes.sort(key=lambda a: a.key)

        log = [
            *(Change(Operation.DELETE, t) for t in expired_tuples),
            *(Change(Operation.DELETE, live_attributes[k]) for k in sorted(expired_keys)),
            *(Change(Operation.CREATE, t) for t in created_tuples),
            *(Change(Operation.CREATE, a) for a in created_attributes),
        ]

        for t in expired_tuples:
            data.tuples[t] = expire(data.tuples[t], revision)
        for t in created_tuples:
            data.tuples[t] = [*data.tuples.get(t, ()), Version(t, revision)]
        for k in expired_keys:
            data.attributes[k] = expire(data.attributes[k], revision)
        for a in created_attributes:
            data.attributes[a.key] = [*data.attributes.get(a.key, ()), Version(a, revision)]
        for keyspace, record_key in changes.delete_records:
            data.records.pop((keyspace, record_key), None)
        for record in changes.put_records:
            data.records[(record.keyspace, record.key)] = record.value
        holder = data.info.id
        for claim in changes.delete_claims:
            if self._claims.get(claim) == holder:  # another tenant's claim of the key stays
                del self._claims[claim]
        for claim in changes.put_claims:
            self._claims[claim] = holder

        token = self._token(revision)
        if log:
            data.changes.append(ChangeSet(revision, token, tuple(log)))
        self._commit_times[revision] = self._clock()
        # Last: a reader opened at "latest" meanwhile stays at the previous revision.
        self._revision = revision
        return token

    # -- claims -----------------------------------------------------------------------------

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        self._check_open()
        return self._claims.get((namespace, tuple(key)))

    @property
    def claims_complete(self) -> bool:
        return True  # a memory store starts empty, so no claim was ever written without it

    def mark_claims_complete(self) -> None:
        self._check_open()

    # -- reads ------------------------------------------------------------------------------

    def reader(
        self, tenant: str, token: str = "", *, prefetch: tuple[str, str] | None = None
    ) -> MemoryReader:
        self._check_open()
        data = self._data(tenant)
        return self._open_reader(data.info.id, data, token)

    def head(self, tenant: str) -> SnapToken:
        self._check_open()
        self._data(tenant)
        return self._token(self._revision)

    def changes(self, tenant: str, after: str, *, limit: int) -> list[ChangeSet]:
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        data = self._data(tenant)
        revision = 0
        if after:
            pin = self.reader(tenant, after)  # keeps GC from trimming the log while we read
            revision = pin.revision
        return [c for c in list(data.changes) if c.revision > revision][:limit]

    # -- maintenance ------------------------------------------------------------------------

    def collect_garbage(self, *, now: float | None = None) -> GCStats:
        with self._exclusive():
            cutoff = (self._clock() if now is None else now) - self._gc_window
            old_enough = [r for r, at in self._commit_times.items() if at <= cutoff]
            horizon = max(old_enough, default=self._horizon)
            with self._readers_lock:
                pinned = [reader.revision for reader in self._readers]
                horizon = max(self._horizon, min([horizon, *pinned]))
                self._horizon = horizon
            removed = 0
            for data in self._tenants.values():
                removed += prune(data.tuples, horizon)
                removed += prune(data.attributes, horizon)
                data.changes = [c for c in data.changes if c.revision > horizon]
            # Older commit times can only name horizons below the current one.
            self._commit_times = {r: at for r, at in self._commit_times.items() if r >= horizon}
            return GCStats(horizon=horizon, removed=removed)

    def close(self) -> None:
        """Refuse every later call (closing twice is harmless)."""
        if self._lock_owner == threading.get_ident():
            raise StorageError("a transact build function may not close the store")
        with self._lock:
            self._closed = True
