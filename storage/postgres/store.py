"""``PostgresStore``: the ``Store`` over one PostgreSQL database, shared by any number of
server processes (replicas).

Revisions are per tenant. The tenant's row in ``stonetown_tenants`` holds its head revision;
every write begins with ``UPDATE … SET revision = revision + 1 … RETURNING``, which locks that
row until the write commits. So writers of one tenant serialise, and commit order is revision
order: once a reader has seen head R (a committed value), every write with a revision <= R has
committed, and every later write gets a revision > R. A reader at R filters versions by
``created <= R < deleted``, so what it sees never changes, whichever replica it runs on and
whatever lands meanwhile; a snap token (store id + revision) from one replica is honoured by
every other. This needs no ``xid8``/``pg_current_snapshot`` (CockroachDB has neither) and no
advisory lock: only a row lock, which PostgreSQL, CockroachDB and YugabyteDB all take on
``UPDATE``. ``transact`` takes the same row lock first, so its build function reads, decides
and writes with no other writer of the tenant in between (the relations layer's cardinality
checks rely on it), on the transaction's own connection.

The head (with the newest schema version, kept in the same row) is read from the database for
every reader without a token and every ``schema_head``, so a read without a token sees the
latest committed write of any replica; with ``max_staleness`` > 0 a head at most that many
seconds old may be reused instead (fewer round trips, answers and schema up to that stale). A
token newer than a reused head is looked up afresh, so read-your-writes holds either way, and
a write through this process refreshes its own reused head.

Concurrent requests share head reads (``_read_head``): a request never joins a read already
sent (it may predate a write acknowledged before the request arrived); it joins the tenant's
next read, which starts when that one ends. So a tenant's head is read at most once at a time
per process, and under load one read answers many requests. A read of the head also reads the
tuples of the entities its requests name (``reader(prefetch=…)``: a check's entity) in the same
statement, for the readers they get: each at the head it reads, or at the request's snap token
when that is older (a token newer than the head is read again anyway).

Garbage collection (``gc.py``) moves each tenant's horizon to the newest revision committed at
least ``gc_window`` seconds ago (never past a reader this process holds) and deletes the versions
deleted at or before it. Readers on other replicas are protected by the window alone: a token
stays readable for ``gc_window`` seconds after its write, and an older one is refused with
SnapshotExpired.

Concurrency: every method may be called from any thread; each query borrows a pooled
connection (``database.py``). Nothing is cached across calls except values that never change
(the store id, a tenant incarnation's tuple kinds as of a revision) and, with ``max_staleness``,
the head.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from storage import tokens
from storage.base import (
    DEFAULT_GC_WINDOW_SECONDS,
    DEFAULT_MAX_WRITE_ITEMS,
    Changes,
    ChangeSet,
    GCStats,
    Page,
    RecordKey,
    Revision,
    SchemaVersion,
    SnapshotReader,
    SnapToken,
    Subject,
    TenantId,
    TenantInfo,
    TupleKind,
    check_page_size,
    check_tenant_id,
)
from storage.errors import (
    DatabaseOutdated,
    InvalidToken,
    SchemaHeadMoved,
    SchemaNotFound,
    SnapshotExpired,
    StorageError,
    StoreClosed,
    StoreUnavailable,
    TenantExists,
    TenantNotFound,
)
from storage.gc_loop import GCLoop
from storage.keys import components
from storage.postgres import gc
from storage.postgres.codec import dec, decode_changes, enc
from storage.postgres.database import (
    DEFAULT_SPIN_SECONDS,
    RETRYABLE,
    Connection,
    Database,
    PreparedRead,
)
from storage.postgres.migrations import LATEST_VERSION, LIVE, _version, new_tenant_pk
from storage.postgres.reader import ENTITY_ROWS, PostgresReader, entities_of, entities_sql
from storage.postgres.write import apply_changes

log = logging.getLogger(__name__)

#: How often a write that lost an optimistic conflict (CockroachDB, YugabyteDB) runs again.
_WRITE_ATTEMPTS = 5
#: Readers of recent snap tokens kept to be shared (each holds what it loaded).
_SHARED_TOKEN_READERS = 4

#: The change log a new latest reader needs to take over the previous one's cache (see
#: reader.py): the changes of each revision after the one given, up to the head, when there are
#: at most _LOG_REVISIONS of them (else NULL, and the reader reads the log itself).
_LOG_REVISIONS = 16
_LOG = (
    " CROSS JOIN LATERAL (SELECT CASE WHEN h.revision > %s::bigint"
    f" AND h.revision - %s::bigint <= {_LOG_REVISIONS}"
    " THEN ARRAY(SELECT changes FROM stonetown_revisions WHERE tenant = h.pk"
    " AND revision > %s::bigint AND revision <= h.revision ORDER BY revision) END AS log) AS l"
)
#: The tenant's state (and the log) as of one snapshot.
_TENANT_STATE = (
    "SELECT h.pk, h.revision, h.horizon, h.schema_head, l.log FROM stonetown_tenants AS h"
    f"{_LOG} WHERE h.id = %s AND h.live"
)
#: The same and, in the same statement, every tuple of the entities named (type, id and the
#: revision wanted, then the next) at that revision or the head it reads, whichever is older
#: (``entities_sql``), one statement per count of entities (each prepared once per
#: connection). As binary arrays through ``unnest`` rather than rows of VALUES the same read
#: costs about twice as much.
_STATE_AND_ENTITIES = (
    "SELECT h.pk, h.revision, h.horizon, h.schema_head, l.log, e.n, t.relation, t.subject_type,"
    f" t.subject_id, t.subject_relation FROM stonetown_tenants AS h{_LOG} CROSS JOIN {{}}"
    " WHERE h.id = %s AND h.live"
)
#: At most this many entities are read with one head (the first requests of a round).
_ROUND_ENTITIES = 16
#: The statement for each count of entities (none: the state alone), each a `PreparedRead`.
_STATES_AND_ENTITIES = (
    PreparedRead(_TENANT_STATE, "qqqb"),
    *(
        PreparedRead(
            _STATE_AND_ENTITIES.format(entities_sql(count, head=True)), f"qqq{'bbq' * count}qb"
        )
        for count in range(1, _ROUND_ENTITIES + 1)
    ),
)

#: An entity's tuples as the reader keeps them (None: too many to keep whole).
Loaded = dict[tuple[str, str], dict[str, list[Subject]] | None]
#: An entity to read with the head: type, id, and the revision wanted (AT_HEAD: the head's).
Wanted = tuple[str, str, int]
#: The revision wanted of an entity read at whatever head the statement finds.
AT_HEAD = LIVE
#: What a head round read: each wanted entity's tuples.
RoundLoaded = dict[Wanted, dict[str, list[Subject]] | None]


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class _TenantState:
    """A tenant incarnation, its head revision, GC horizon and newest schema version, as read
    at ``read_at`` (process clock)."""

    __slots__ = ("horizon", "log", "pk", "read_at", "revision", "schema_head")

    def __init__(
        self,
        pk: int,
        revision: int,
        horizon: int,
        schema_head: str,
        read_at: float,
        *,
        log: tuple[int, list[bytes | None]] | None = None,
    ) -> None:
        self.pk = pk
        self.revision = revision
        self.horizon = horizon
        self.schema_head = schema_head
        self.read_at = read_at
        #: The change log read with the head: (after revision, each later revision's changes).
        self.log = log


class _HeadRound:
    """One read of a tenant's head, shared by every request that joined it before it started:
    the entities they asked to have read with it, then its answer or its error."""

    __slots__ = ("entities", "error", "finished", "loaded", "started", "state")

    def __init__(self, want: Wanted | None) -> None:
        self.entities: dict[Wanted, None] = {} if want is None else {want: None}
        self.started = False
        self.finished = False
        self.state: _TenantState | None = None
        self.loaded: RoundLoaded = {}
        self.error: BaseException | None = None


class PostgresStore:
    """A ``Store`` over one PostgreSQL database; open one per process (it pools connections).

    ``spin_seconds``: how long a read alone in the process polls for its answer before sleeping
    (``storage.postgres.database``; 0: it sleeps at once)."""

    def __init__(
        self,
        url: str,
        *,
        max_write_items: int = DEFAULT_MAX_WRITE_ITEMS,
        gc_window: float = DEFAULT_GC_WINDOW_SECONDS,
        pool_size: int = 10,
        timeout_seconds: float = 5.0,
        max_staleness: float = 0.0,
        spin_seconds: float = DEFAULT_SPIN_SECONDS,
        clock: Callable[[], float] = time.time,
        gc_interval: float | None = 600.0,
    ) -> None:
        if max_write_items < 1:
            raise ValueError(f"max_write_items must be at least 1, got {max_write_items}")
        if gc_window < 0:
            raise ValueError(f"gc_window must not be negative, got {gc_window}")
        if max_staleness < 0:
            raise ValueError(f"max_staleness must not be negative, got {max_staleness}")
        if gc_interval is not None and gc_interval <= 0:
            raise ValueError("gc_interval must be positive (None turns the GC thread off)")
        self._max_write_items = max_write_items
        self._gc_window = gc_window
        self._max_staleness = max_staleness
        self._clock = clock
        self._db = Database(
            url, pool_size=pool_size, timeout_seconds=timeout_seconds, spin_seconds=spin_seconds
        )
        try:
            self._store_id = self._open()
        except BaseException:
            self._db.close()
            raise
        self._local = threading.local()  # .writing: inside a transact build function
        self._pin_lock = threading.Lock()
        self._readers: weakref.WeakSet[PostgresReader] = weakref.WeakSet()
        #: tenant incarnation -> the horizon this process's GC last set (see gc.py).
        self._local_horizons: dict[int, int] = {}
        #: tenant -> its last head read, reused for max_staleness seconds.
        self._heads: dict[str, _TenantState] = {}
        #: tenant -> a reader at its latest revision, shared while that stays the head.
        self._latest: dict[str, PostgresReader] = {}
        #: Readers of recent snap tokens by (tenant pk, revision, schema head), oldest first.
        self._at_tokens: dict[tuple[int, int, str], PostgresReader] = {}
        #: tenant incarnation -> (its tuple kinds, the revision they were read at or after).
        self._kinds: dict[int, tuple[frozenset[TupleKind], int]] = {}
        #: a set of tuple kinds -> the entity types among them (see ``_inner_types``).
        self._inner: dict[frozenset[TupleKind], frozenset[str]] = {}
        #: Head reads (see ``_read_head``): tenants whose head is being read, and the round
        #: each one's next read is gathering; guarded by the condition.
        self._rounds = threading.Condition(threading.Lock())
        self._reading: set[str] = set()
        self._next_round: dict[str, _HeadRound] = {}
        #: Reads of a head sent so far (each shared by the requests of its round).
        self.head_reads = 0
        self._closed = False
        self._gc = GCLoop(self, gc_interval)

    def _open(self) -> bytes:
        """Check the tables' version; the store id."""
        with self._db.errors(), self._db.transaction() as conn:
            version = _version(conn)
            if version < LATEST_VERSION:
                raise DatabaseOutdated(
                    f"the database is at schema version {version}, this server needs "
                    f"{LATEST_VERSION}: run `stonetown migrate --database-url …` first"
                )
            if version > LATEST_VERSION:
                raise StorageError(
                    f"the database is at schema version {version}, newer than this server's "
                    f"{LATEST_VERSION}: upgrade the server"
                )
            row = conn.execute(
                "SELECT value FROM stonetown_meta WHERE name = 'store-id'"
            ).fetchone()
        if row is None:
            raise StorageError("the database has no store id: it was not migrated by Stonetown")
        return bytes(row[0])

    def close(self) -> None:
        """Stop the GC thread and close the pool; later calls raise StoreClosed."""
        if self._closed:
            return
        if getattr(self._local, "writing", False):
            raise StorageError("a transact build function may not close the store")
        self._closed = True
        self._gc.stop()
        self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def max_write_items(self) -> int:
        return self._max_write_items

    @property
    def reads(self) -> int:
        """Read statements sent so far, each one round trip (exact while one thread reads):
        what the benches count per check."""
        return self._db.reads

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers (for health checks)."""
        self._check_open()
        self._db.ping()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def _refuse_nested(self) -> None:
        if getattr(self._local, "writing", False):
            raise StorageError(
                "a transact build function may not write: return the changes instead"
            )

    # -- tenants -----------------------------------------------------------------------------

    def _state(self, tenant: str, *, fresh: bool = True) -> _TenantState:
        """The tenant's incarnation and head: read now, or (not ``fresh``, with max_staleness)
        a read at most max_staleness seconds old."""
        return self._current(tenant, fresh=fresh)[0]

    def _current(
        self, tenant: str, *, fresh: bool = True, want: Wanted | None = None
    ) -> tuple[_TenantState, RoundLoaded]:
        """``_state``, and the tuples of entity ``want`` (and maybe of others) when the head
        was read now with them; else nothing loaded."""
        self._check_open()
        if not fresh and self._max_staleness > 0:
            known = self._heads.get(tenant)
            if known is not None and time.monotonic() - known.read_at <= self._max_staleness:
                return known, {}
        state, loaded = self._read_head(tenant, want)
        if self._max_staleness > 0:
            self._heads[tenant] = state
        return state, loaded

    def _read_head(self, tenant: str, want: Wanted | None) -> tuple[_TenantState, RoundLoaded]:
        """Read the tenant's head now, in a round shared with concurrent requests.

        Exactness: a request must see every write acknowledged before it arrived, so it never
        joins a read already under way (that one may have been sent before such a write
        committed). It joins the tenant's next read instead, which starts when the current one
        ends; the first request to join leads it (sends it), the others wait for its answer.
        So reads of a tenant's head run one at a time, and N concurrent requests cost about
        one read per round trip rather than N."""
        rounds = self._rounds
        with rounds:
            if tenant not in self._reading:
                self._reading.add(tenant)
                mine = _HeadRound(want)  # none under way: this request reads now
            else:
                waiting = self._next_round.get(tenant)
                if waiting is not None:
                    if want is not None and len(waiting.entities) < _ROUND_ENTITIES:
                        waiting.entities[want] = None
                    rounds.wait_for(lambda: waiting.finished)
                    if waiting.error is not None:
                        raise waiting.error
                    assert waiting.state is not None
                    return waiting.state, waiting.loaded
                mine = self._next_round[tenant] = _HeadRound(want)
                rounds.wait_for(lambda: mine.started)
        try:
            mine.state, mine.loaded = self._query_head(tenant, list(mine.entities))
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            with rounds:
                self.head_reads += 1
                following = self._next_round.pop(tenant, None)
                if following is None:
                    self._reading.discard(tenant)
                else:
                    following.started = True  # no request joins it any more
                mine.finished = True
                rounds.notify_all()
        return mine.state, mine.loaded

    def _query_head(self, tenant: str, entities: list[Wanted]) -> tuple[_TenantState, RoundLoaded]:
        """One statement: the tenant's state, each entity's tuples at the revision wanted or
        the head, whichever is older, and the change log since the reader the next latest
        reader would take over from."""
        now = time.monotonic()
        base = self._latest.get(tenant)
        if base is not None and base._parent is not None:
            base = base._parent  # what a reader that has not read yet hands on
        since = None if base is None else int(base._revision)
        loaded: RoundLoaded = {}
        if not entities:
            row = self._db.one(_STATES_AND_ENTITIES[0], (since, since, since, enc(tenant)))
        else:
            params: list[Any] = [since, since, since]
            for entity_type, entity_id, at in entities:
                params += (enc(entity_type), enc(entity_id), at)
            params += (ENTITY_ROWS + 1, enc(tenant))
            rows = self._db.rows(_STATES_AND_ENTITIES[len(entities)], params)
            row = rows[0] if rows else None
            loaded = entities_of(entities, rows, 5)
        if row is None:
            check_tenant_id(tenant)
            raise TenantNotFound(tenant)
        log = None if row[4] is None or since is None else (since, row[4])
        return _TenantState(row[0], row[1], row[2], dec(row[3]), now, log=log), loaded

    def create_tenant(self, tenant: str, name: str = "") -> TenantInfo:
        check_tenant_id(tenant)
        self._check_open()
        self._refuse_nested()
        now = self._clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO stonetown_tenants (id, pk, live, name, created_at, revision, horizon,"
                " committed_at, schema_head) VALUES (%s, %s, TRUE, %s, %s, 0, 0, 0, '')"
                " ON CONFLICT (id) DO UPDATE SET pk = EXCLUDED.pk, live = TRUE,"
                " name = EXCLUDED.name, created_at = EXCLUDED.created_at, schema_head = '',"
                # Old tokens of the id name no state of the new tenant.
                " horizon = stonetown_tenants.revision"
                " WHERE NOT stonetown_tenants.live RETURNING pk",
                (enc(tenant), new_tenant_pk(), enc(name), now),
            ).fetchone()
        if row is None:
            raise TenantExists(tenant)
        self._heads.pop(tenant, None)
        return TenantInfo(TenantId(tenant), name, _utc(now))

    def get_tenant(self, tenant: str) -> TenantInfo:
        self._check_open()
        row = self._db.one(
            "SELECT name, created_at FROM stonetown_tenants WHERE id = %s AND live", (enc(tenant),)
        )
        if row is None:
            check_tenant_id(tenant)
            raise TenantNotFound(tenant)
        return TenantInfo(TenantId(tenant), dec(row[0]), _utc(row[1]))

    def list_tenants(self, *, page_size: int, cursor: str = "") -> Page[TenantInfo]:
        check_page_size(page_size)
        self._check_open()
        query = tokens.fingerprint("tenants")
        after = tokens.decode_cursor(query, cursor) if cursor else b""
        rows = self._db.rows(
            "SELECT id, name, created_at FROM stonetown_tenants WHERE live AND id > %s"
            " ORDER BY id LIMIT %s",
            (after, page_size + 1),
        )
        items = [TenantInfo(TenantId(dec(i)), dec(n), _utc(c)) for i, n, c in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(items, "")
        return Page(items, tokens.encode_cursor(query, bytes(rows[page_size - 1][0])))

    def delete_tenant(self, tenant: str) -> TenantInfo:
        self._check_open()
        self._refuse_nested()
        with self._db.transaction(timeout=False) as conn:
            row = conn.execute(
                "SELECT pk, name, created_at FROM stonetown_tenants WHERE id = %s AND live"
                " FOR UPDATE",
                (enc(tenant),),
            ).fetchone()
            if row is None:
                check_tenant_id(tenant)
                raise TenantNotFound(tenant)
            pk, name, created_at = row
            conn.execute("UPDATE stonetown_tenants SET live = FALSE WHERE id = %s", (enc(tenant),))
            conn.execute("DELETE FROM stonetown_claims WHERE tenant = %s", (enc(tenant),))
            for table in (
                "stonetown_tuples",
                "stonetown_attributes",
                "stonetown_revisions",
                "stonetown_kinds",
                "stonetown_schemas",
                "stonetown_records",
            ):
                conn.execute(f"DELETE FROM {table} WHERE tenant = %s", (pk,))
        self._heads.pop(tenant, None)
        self._latest.pop(tenant, None)
        self._kinds.pop(pk, None)
        return TenantInfo(TenantId(tenant), dec(name), _utc(created_at))

    # -- schemas -----------------------------------------------------------------------------

    def write_schema(self, tenant: str, text: str, *, parent: str | None = None) -> SchemaVersion:
        self._check_open()
        self._refuse_nested()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT pk, schema_head FROM stonetown_tenants WHERE id = %s AND live FOR UPDATE",
                (enc(tenant),),
            ).fetchone()
            if row is None:
                check_tenant_id(tenant)
                raise TenantNotFound(tenant)
            pk, head = row
            if parent is not None and parent != dec(head):
                raise SchemaHeadMoved(tenant, parent, dec(head))
            now = self._clock()
            version = tokens.new_schema_version(dec(head), int(now * 1000))
            conn.execute(
                "INSERT INTO stonetown_schemas (tenant, version, created_at, body)"
                " VALUES (%s, %s, %s, %s)",
                (pk, enc(version), now, enc(text)),
            )
            conn.execute(
                "UPDATE stonetown_tenants SET schema_head = %s WHERE id = %s",
                (enc(version), enc(tenant)),
            )
        self._heads.pop(tenant, None)
        return SchemaVersion(version, _utc(now), text)

    def schema_head(self, tenant: str) -> str:
        return self._state(tenant, fresh=False).schema_head

    def read_schema(self, tenant: str, version: str = "") -> SchemaVersion:
        pk = self._state(tenant).pk
        if version:
            row = self._db.one(
                "SELECT version, created_at, body FROM stonetown_schemas"
                " WHERE tenant = %s AND version = %s",
                (pk, enc(version)),
            )
            if row is None:
                raise SchemaNotFound(f"tenant {tenant!r} has no schema version {version!r}")
        else:
            row = self._db.one(
                "SELECT version, created_at, body FROM stonetown_schemas WHERE tenant = %s"
                " ORDER BY version DESC LIMIT 1",
                (pk,),
            )
            if row is None:
                raise SchemaNotFound(f"tenant {tenant!r} has no schema yet: write one first")
        return SchemaVersion(dec(row[0]), _utc(row[1]), dec(row[2]))

    def list_schemas(self, tenant: str, *, page_size: int, cursor: str = "") -> Page[SchemaVersion]:
        check_page_size(page_size)
        pk = self._state(tenant).pk
        query = tokens.fingerprint("schemas", tenant)
        before = tokens.decode_cursor(query, cursor) if cursor else None
        rows = self._db.rows(
            "SELECT version, created_at, body FROM stonetown_schemas WHERE tenant = %s"
            + (" AND version < %s" if before is not None else "")
            + " ORDER BY version DESC LIMIT %s",
            (pk, before, page_size + 1) if before is not None else (pk, page_size + 1),
        )
        items = [SchemaVersion(dec(v), _utc(c), dec(b)) for v, c, b in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(items, "")
        return Page(items, tokens.encode_cursor(query, enc(items[-1].version)))

    # -- writes ------------------------------------------------------------------------------

    def write(self, tenant: str, changes: Changes) -> SnapToken:
        self._check_open()
        if not isinstance(changes, Changes):
            raise TypeError(f"expected Changes, got {type(changes).__name__}")
        changes.check(self._max_write_items)
        return self._commit(tenant, lambda reader: changes)

    def transact(self, tenant: str, build: Callable[[SnapshotReader], Changes]) -> SnapToken:
        self._check_open()
        return self._commit(tenant, build, reads=True)

    def transact_now(
        self, tenant: str, build: Callable[[SnapshotReader], Changes]
    ) -> SnapToken | None:
        """Always None: every write is a round trip to the database."""
        self._check_open()
        return None

    def _commit(
        self, tenant: str, build: Callable[[SnapshotReader], Changes], *, reads: bool = False
    ) -> SnapToken:
        """Take the tenant's next revision, build the changes (with a reader of the state
        before, on this transaction's connection, when ``reads``), apply them, commit."""
        self._refuse_nested()
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return self._commit_once(tenant, build, reads)
            except RETRYABLE as exc:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise StoreUnavailable(
                        f"the write kept conflicting with concurrent writes ({exc}); retry"
                    ) from exc
                log.info("write conflict (%s); running the transaction again", exc)
        raise AssertionError("unreachable")

    def _commit_once(
        self, tenant: str, build: Callable[[SnapshotReader], Changes], reads: bool
    ) -> SnapToken:
        reader: PostgresReader | None = None
        with self._db.transaction() as conn:
            row = conn.execute(
                "UPDATE stonetown_tenants SET revision = revision + 1,"
                " committed_at = GREATEST(committed_at, %s) WHERE id = %s AND live"
                " RETURNING pk, revision, committed_at",
                (self._clock(), enc(tenant)),
            ).fetchone()
            if row is None:
                check_tenant_id(tenant)
                raise TenantNotFound(tenant)
            pk, revision, committed_at = row
            if reads:
                reader = PostgresReader(
                    self, TenantId(tenant), pk, Revision(revision - 1), conn=conn
                )
                self._local.writing = True
                try:
                    changes = build(reader)
                finally:
                    self._local.writing = False
                    reader.detach()
                if not isinstance(changes, Changes):
                    raise TypeError(f"expected Changes, got {type(changes).__name__}")
                changes.check(self._max_write_items)
            else:
                changes = build(_NO_READER)
            known = self._kinds_at(pk, revision - 1, conn)
            added = apply_changes(
                conn,
                pk=pk,
                tenant=tenant,
                revision=revision,
                committed_at=committed_at,
                changes=changes,
                known_kinds=known,
            )
        cached = self._kinds.get(pk)
        if cached is None or cached[1] < revision:
            # ``known`` held at revision - 1; with what this write added, it holds at revision.
            self._kinds[pk] = (known | added, revision)
        state = self._heads.get(tenant)
        if state is not None and state.pk == pk and state.revision < revision:
            self._heads[tenant] = _TenantState(
                pk, revision, state.horizon, state.schema_head, time.monotonic()
            )
        return tokens.encode_snap(self._store_id, revision)

    # -- claims and tuple kinds --------------------------------------------------------------

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        self._check_open()
        row = self._db.one(
            "SELECT tenant FROM stonetown_claims WHERE namespace = %s AND key = %s",
            (enc(namespace), components(key)),
        )
        return None if row is None else TenantId(dec(row[0]))

    @property
    def claims_complete(self) -> bool:
        return True  # claims existed before this backend did: every claim is written

    def mark_claims_complete(self) -> None:
        self._check_open()

    def _inner_types(self, pk: int, conn: Connection | None = None) -> frozenset[str]:
        """The entity types of incarnation ``pk``'s tuple kinds as last read (maybe without
        the newest): which subjects may have tuples of their own. Enough to guide a prefetch,
        never to answer ``tuple_kinds``."""
        known = self._kinds.get(pk)
        kinds = known[0] if known is not None else self._kinds_at(pk, 0, conn)
        found = self._inner.get(kinds)
        if found is None:
            if len(self._inner) > 64:
                self._inner.clear()
            found = self._inner[kinds] = frozenset(kind[0] for kind in kinds)
        return found

    def _kinds_at(
        self, pk: int, revision: int, conn: Connection | None = None
    ) -> frozenset[TupleKind]:
        """The tuple kinds of incarnation ``pk``, as a superset of those visible at
        ``revision``: kinds are never forgotten, so a set read at or after ``revision`` does."""
        known = self._kinds.get(pk)
        if known is not None and known[1] >= revision:
            return known[0]
        head = self._db.one("SELECT revision FROM stonetown_tenants WHERE pk = %s", (pk,), conn)
        rows = self._db.rows(
            "SELECT entity_type, relation, subject_type, subject_relation FROM stonetown_kinds"
            " WHERE tenant = %s",
            (pk,),
            conn,
        )
        found = frozenset((dec(a), dec(b), dec(c), dec(d)) for a, b, c, d in rows)
        if head is not None:
            # Read before the kinds: every write up to that head had added its kinds.
            self._kinds[pk] = (found, max(int(head[0]) - (1 if conn is not None else 0), revision))
        return found

    # -- reads -------------------------------------------------------------------------------

    def reader(
        self, tenant: str, token: str = "", *, prefetch: tuple[str, str] | None = None
    ) -> PostgresReader:
        self._check_open()
        if token:
            revision: int = tokens.decode_snap(self._store_id, token)
            want = None
            if prefetch is not None and not self._holds(tenant, prefetch, revision):
                # A token's revision may be past any BIGINT (it is refused below as newer
                # than the head): read that entity at the head, to be dropped.
                want = (*prefetch, min(revision, AT_HEAD))
            state, loaded = self._current(tenant, fresh=False, want=want)
            if revision > state.revision:
                state = self._state(tenant)  # a token from a write newer than our head
                loaded = {}
                if revision > state.revision:
                    raise InvalidToken(
                        f"snap token names revision {revision}, newer than tenant "
                        f"{tenant!r}'s latest {state.revision}"
                    )
        else:
            want = None
            if prefetch is not None and not self._holds(tenant, prefetch, None):
                want = (*prefetch, AT_HEAD)
            state, loaded = self._current(tenant, fresh=False, want=want)
            revision = state.revision
        reader = self._open_reader(tenant, token, state, revision)
        if loaded:
            # Read in the head's statement, each at its revision wanted or the head, whichever
            # is older: what was read at this reader's revision is its own (the round's other
            # requests' entities too, when they share the snapshot).
            head = state.revision
            reader.offer(
                {
                    (entity_type, entity_id): found
                    for (entity_type, entity_id, at), found in loaded.items()
                    if min(at, head) == revision
                }
            )
        return reader

    def _holds(self, tenant: str, key: tuple[str, str], revision: int | None) -> bool:
        """Whether a reader this store would likely hand out for ``tenant`` (at the latest
        revision, or at ``revision``) has entity ``key`` at hand: then it is not read with
        the head. A guess: a wrong one costs a read, never an answer."""
        latest = self._latest.get(tenant)
        if revision is None or (latest is not None and latest._revision == revision):
            # A token naming the latest reader's revision gets that reader.
            return latest is not None and latest.holds(key)
        return any(
            r._tenant == tenant and r._revision == revision and r.holds(key)
            for r in list(self._at_tokens.values())
        )

    def _open_reader(
        self, tenant: str, token: str, state: _TenantState, revision: int
    ) -> PostgresReader:
        """The reader at ``revision`` of the incarnation ``state`` names: one shared already,
        or a new one."""
        # A reader already open at this snapshot (the latest one, or one of a recent token) is
        # shared: what it loaded serves every request at that snapshot. The state was read
        # above all the same, so a tenant deleted since, or an expired token, is still refused.
        key = (state.pk, revision, state.schema_head)
        latest = self._latest.get(tenant)
        if latest is not None and (latest._pk, latest._revision, latest._schema_head) == key:
            return latest
        if token:
            with self._pin_lock:
                horizon = max(state.horizon, self._local_horizons.get(state.pk, 0))
                if revision < horizon:
                    raise self._expired(revision, horizon)
                shared = self._at_tokens.get(key)
                if shared is not None:
                    return shared
        with self._pin_lock:
            horizon = max(state.horizon, self._local_horizons.get(state.pk, 0))
            if revision < horizon:
                raise self._expired(revision, horizon)
            parent = None if token else self._latest.get(tenant)
            grand = None if parent is None else parent._parent
            if grand is not None:
                # One that has not read yet holds nothing of its own: take over what it would
                # have (so chains stay one long, and a write before any read loses nothing).
                parent = grand
            if parent is not None and parent._pk != state.pk:
                parent = None  # another incarnation
            reader = PostgresReader(
                self,
                TenantId(tenant),
                state.pk,
                Revision(revision),
                schema_head=state.schema_head,
                parent=parent,
                log=state.log if revision == state.revision else None,
            )
            self._readers.add(reader)
            if token:
                self._at_tokens[key] = reader
                while len(self._at_tokens) > _SHARED_TOKEN_READERS:
                    del self._at_tokens[next(iter(self._at_tokens))]
        if not token:
            self._latest[tenant] = reader
        return reader

    def _expired(self, revision: int, horizon: int) -> SnapshotExpired:
        return SnapshotExpired(
            f"snap token names revision {revision}, which garbage collection has removed: "
            f"the oldest readable revision is {horizon} "
            f"(history is kept for {self._gc_window:g} s); read without a token for the latest"
        )

    def head(self, tenant: str) -> SnapToken:
        return tokens.encode_snap(self._store_id, self._state(tenant).revision)

    def changes(self, tenant: str, after: str, *, limit: int) -> list[ChangeSet]:
        self._check_open()
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if after:
            pin = self.reader(tenant, after)  # refuses expired and foreign tokens
            pk, start = pin._pk, int(pin.revision)
        else:
            pk, start = self._state(tenant).pk, 0
        rows = self._db.rows(
            "SELECT revision, changes FROM stonetown_revisions WHERE tenant = %s"
            " AND revision > %s AND changes IS NOT NULL ORDER BY revision LIMIT %s",
            (pk, start, limit),
        )
        return [
            ChangeSet(Revision(r), tokens.encode_snap(self._store_id, r), decode_changes(raw))
            for r, raw in rows
        ]

    # -- garbage collection ------------------------------------------------------------------

    def collect_garbage(self, *, now: float | None = None) -> GCStats:
        return gc.collect_garbage(self, now)


class _NoReader:
    """What ``write`` hands its constant build function: never read."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError("a write's changes are given, not built from a reader")


_NO_READER: Any = _NoReader()
