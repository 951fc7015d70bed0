"""The latest tuples of each tenant kept in memory, so the reader's point reads need no seek.

A tenant's *copy* is its forward index (entity -> relation -> subject key bodies) as of the
latest revision: the same bytes a LevelDB scan collects, so an answer from memory is the same
`RawSubjects` a scan would build. It is exact at every revision:

* One `Entry` per entity, immutable once published, records the entity's tuples from revision
  ``valid_from`` (its first field) on. A write builds a new entry and swaps the dict slot
  (copy-on-write), so a reader holding the old entry keeps a consistent view. A reader at
  revision ``r`` may use an entry iff ``valid_from <= r``; otherwise it reads LevelDB. An
  entity whose last tuple is deleted keeps an empty entry (a *tombstone*) dated by that delete.
* A copy is *complete*: an entity without an entry has no tuples, for readers at revisions
  ``>= complete_from``. Older readers read LevelDB.
* A relation with more than `BIG_RELATION` subjects is kept out of the copy (its name is in
  ``Entry.big`` and its subjects are read from LevelDB), so a one-tuple write never copies a
  huge tuple; it stays out until the copy is rebuilt (the next time the store is opened).

Where copies come from: a tenant created in this process starts with a complete, empty copy.
After the store is opened on existing data, the first read of a tenant queues a *warm-up*: a
background thread pins the latest revision ``r0`` (under the write lock, from which point
writes to the tenant queue their changes), scans the tenant's forward index at ``r0`` without
any lock, then, under the write lock, applies the queued changes in order and publishes the copy.
Reads go to LevelDB until then.

The copies of a store share one budget, in tuples held. A write or warm-up that would pass it
drops (or never publishes) that tenant's copy, and the tenant is read from LevelDB until the
store is reopened or the tenant deleted. Attributes and records are not kept (their reads are
single ``get`` calls already).

Concurrency: copies change only under the store's write lock, after the write's LevelDB batch is
committed and before its revision is published to readers. Readers never lock: they read one
dict slot at a time (atomic under the GIL), look an entity up before they look at
``complete_from`` (which only grows, and grows before tombstones are dropped), and use the copy
only while it is the one of their tenant's incarnation (``tp`` identity, as ``_current``).
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from storage import keys
from storage.base import SubjectSet, Tuple
from storage.errors import StorageError
from storage.keys import ESCAPED_NUL, TERMINATOR, components
from storage.leveldb.history import visible_body
from storage.leveldb.subjects import RawSubjects, UsersetParts, userset_parts

if TYPE_CHECKING:
    from storage.leveldb.reader import LevelDBReader
    from storage.leveldb.store import LevelDBStore

log = logging.getLogger(__name__)

#: A relation with more subjects than this is read from LevelDB, not kept in the copy.
BIG_RELATION = 1024
#: Tombstones are dropped once there are this many and they are a quarter of the entities.
_TOMBSTONE_FLOOR = 1024
#: The warm-up scan looks for a stop request every this many keys.
_STOP_EVERY = 4096


#: One entity's tuples from revision ``valid_from`` on, until a write replaces the entry:
#: ``(valid_from, relations, subjects, big, size, usersets)``. ``relations``: the relations
#: kept; ``subjects``: for each, its subjects' key bodies in key order; ``big``: the relations
#: with tuples that are read from LevelDB instead; ``size``: the entity's tuples, all relations;
#: ``usersets``: for each relation kept, its userset subjects decoded (`userset_parts`), or
#: ``()`` when no relation has any. Decoding them once, when the entry is built, leaves a read
#: nothing to do but wrap the bodies.
#:
#: A plain tuple of tuples, str, bytes and int, not an object or a NamedTuple: Python's garbage
#: collector stops tracking such a tuple the first time it sees it, so a copy of millions of
#: tuples adds nothing to its passes (objects, lists, dicts and tuple subclasses would be
#: walked by every full collection: on dataset M, a copy of `RawSubjects` objects made a full
#: collection take 116 ms instead of 4 ms).
Entry = tuple[
    int,
    tuple[str, ...],
    tuple[tuple[bytes, ...], ...],
    tuple[str, ...],
    int,
    tuple[tuple[UsersetParts, ...], ...],
]

#: A relation without subjects.
NO_SUBJECTS: SubjectSet = RawSubjects([])

#: What an entity without an entry holds, in a complete copy.
EMPTY_ENTRY: Entry = (0, (), (), (), 0, ())
#: Distinct relation-name tuples shared between entries, per copy, at most.
_SHAPES = 4096


def _shared(
    shapes: dict[tuple[str, ...], tuple[str, ...]], names: tuple[str, ...]
) -> tuple[str, ...]:
    """``names``, or the equal tuple an earlier entry holds (most entities have one of a few
    sets of relations)."""
    found = shapes.get(names)
    if found is not None:
        return found
    if len(shapes) < _SHAPES:
        shapes[names] = names
    return names


def _frozen(
    shapes: dict[tuple[str, ...], tuple[str, ...]],
    revision: int,
    sets: dict[str, tuple[bytes, ...]],
    big: tuple[str, ...],
    size: int,
) -> Entry:
    """The entry of ``sets`` (relation -> key bodies)."""
    names = _shared(shapes, tuple(sorted(sets)))
    subjects = tuple([sets[name] for name in names])
    return (revision, names, subjects, big, size, _usersets_of(subjects))


def _usersets_of(
    subjects: Iterable[tuple[bytes, ...]],
) -> tuple[tuple[UsersetParts, ...], ...]:
    """An entry's ``usersets`` field for its ``subjects``."""
    found = tuple([userset_parts(bodies) for bodies in subjects])
    for usersets in found:
        if usersets:
            return found
    return ()


def entry_at(copy: TenantCopy, entity_type: str, entity_id: str, revision: int) -> Entry | None:
    """The entity's entry in ``copy`` if it holds at ``revision``, or None: read LevelDB."""
    by_id = copy.types.get(entity_type)
    entry = None if by_id is None else by_id.get(entity_id)
    if entry is None:
        # Looked up before complete_from is read (see the module docstring).
        return EMPTY_ENTRY if revision >= copy.complete_from else None
    return entry if entry[0] <= revision else None


def kept_relations(entry: Entry) -> dict[str, SubjectSet]:
    """Every relation of an entry with none kept on disk, as the sets a scan would build."""
    names, subjects, usersets = entry[1], entry[2], entry[5]
    found: dict[str, SubjectSet] = {}
    for i in range(len(names)):
        found[names[i]] = RawSubjects(subjects[i], usersets[i] if usersets else ())
    return found


def kept_subjects(entry: Entry, relation: str) -> SubjectSet | None:
    """One relation of an entry, or None when it is kept on disk (read LevelDB)."""
    names = entry[1]
    if relation in names:
        i = names.index(relation)
        usersets = entry[5]
        return RawSubjects(entry[2][i], usersets[i] if usersets else (), keep=False)
    if relation in entry[3]:
        return None
    return NO_SUBJECTS


class TenantCopy:
    """One tenant incarnation's entries; ``count`` is the tuples held (for the budget)."""

    __slots__ = ("complete_from", "count", "shapes", "tombstones", "tp", "types")

    def __init__(
        self, tp: bytes, complete_from: int, types: dict[str, dict[str, Entry]], count: int
    ) -> None:
        self.tp = tp
        self.complete_from = complete_from
        #: entity type -> entity id -> entry
        self.types = types
        self.count = count
        self.tombstones = 0
        #: the relation-name tuples the entries share
        self.shapes: dict[tuple[str, ...], tuple[str, ...]] = {}


class Delta:
    """One write's tuple changes: ``created``, the tuples that were new, sorted by forward key
    (``bodies``: their forward key bodies); ``deleted``, the tuples that were live."""

    __slots__ = ("bodies", "created", "deleted", "revision")

    def __init__(
        self, revision: int, created: list[Tuple], bodies: list[bytes], deleted: list[Tuple]
    ) -> None:
        self.revision = revision
        self.created = created
        self.bodies = bodies
        self.deleted = deleted


class Warmup:
    """One tenant's warm-up, in three steps: `begin` (under the write lock), `scan` (no lock),
    `finish` (under the write lock). The background thread runs them in turn; tests may too."""

    __slots__ = ("_pin", "cancelled", "pending", "r0", "tenant", "tp")

    def __init__(self, tenant: str, tp: bytes, pin: LevelDBReader) -> None:
        self.tenant = tenant
        self.tp = tp
        self._pin = pin  # keeps garbage collection from trimming what the scan must see
        self.r0 = int(pin.revision)
        self.pending: list[Delta] = []
        self.cancelled = False


class Resident:
    """The in-memory copies of one store's tenants, their budget and their warm-up thread."""

    def __init__(self, store: LevelDBStore, budget: int) -> None:
        if budget < 0:
            raise ValueError("resident_tuples must not be negative (0 turns the copies off)")
        self._store = store
        self.budget = budget
        #: Relations with more subjects are read from LevelDB (a constant but for tests).
        self.big_relation = BIG_RELATION
        #: tenant -> its complete copy (read by readers without a lock; never replaced)
        self.copies: dict[str, TenantCopy] = {}
        #: tenant held in memory -> tuples held in total
        self.total = 0
        self._warming: dict[str, Warmup] = {}
        #: Tenants read from LevelDB until the store is reopened (their copy passed the budget).
        self._no_copy: set[str] = set()
        self._wanted: set[str] = set()
        self._wanted_lock = threading.Lock()
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._idle = threading.Condition(self._wanted_lock)
        self._worker: threading.Thread | None = None
        self._stopping = False

    # -- tenants -------------------------------------------------------------------------

    def created(self, tenant: str, tp: bytes, revision: int) -> None:
        """A tenant created in this process: its copy is complete (and empty) from the start.
        The caller holds the write lock (or is opening the store)."""
        self._no_copy.discard(tenant)
        if self.budget:
            self.copies[tenant] = TenantCopy(tp, revision, {}, 0)

    def dropped(self, tenant: str) -> None:
        """The tenant is deleted; the caller holds the write lock."""
        copy = self.copies.pop(tenant, None)
        if copy is not None:
            self.total -= copy.count
        warm = self._warming.pop(tenant, None)
        if warm is not None:
            warm.cancelled = True
        self._no_copy.discard(tenant)

    def clear(self) -> None:
        """The store is closing (the caller holds the write lock): from now on every read goes
        to LevelDB, which raises StoreClosed."""
        self.copies.clear()
        for warm in self._warming.values():
            warm.cancelled = True
        self._warming.clear()
        self.total = 0

    # -- writes --------------------------------------------------------------------------

    def apply(self, tenant: str, tp: bytes, delta: Delta) -> None:
        """Apply one committed write before its revision is published; the caller holds the
        write lock."""
        if not delta.created and not delta.deleted:
            return
        copy = self.copies.get(tenant)
        if copy is not None and copy.tp is tp:
            try:
                grown = apply_delta(copy, delta, self.big_relation)
            except Exception:
                # The batch is committed, so the write stands: only the copy is given up.
                log.exception("dropping the in-memory tuples of tenant %r", tenant)
                self._give_up(tenant)
                return
            self.total += grown
            if self.total > self.budget:
                log.info(
                    "tenant %r: %d tuples held in memory would pass the budget of %d; "
                    "reading it from LevelDB until the store is reopened",
                    tenant,
                    copy.count,
                    self.budget,
                )
                self._give_up(tenant)
            return
        warm = self._warming.get(tenant)
        if warm is not None and warm.tp is tp:
            warm.pending.append(delta)

    def _give_up(self, tenant: str) -> None:
        copy = self.copies.pop(tenant, None)
        if copy is not None:
            self.total -= copy.count
        self._no_copy.add(tenant)

    # -- warm-up -------------------------------------------------------------------------

    def want(self, tenant: str) -> None:
        """A reader of ``tenant`` found no copy: queue a warm-up unless one is due or the
        tenant is not to be kept. Called by readers, without the write lock."""
        if (
            not self.budget
            or self._stopping
            or tenant in self._wanted
            or tenant in self._no_copy
            or tenant in self.copies
        ):
            return
        with self._wanted_lock:
            if tenant in self._wanted or self._stopping:
                return
            self._wanted.add(tenant)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="stonetown-resident", daemon=True
                )
                self._worker.start()
        self._jobs.put(tenant)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no warm-up is queued or under way; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._wanted, timeout)

    def stop(self) -> None:
        """End the warm-up thread (a scan under way stops within a few thousand keys)."""
        with self._wanted_lock:
            self._stopping = True
            thread = self._worker
        for warm in list(self._warming.values()):
            warm.cancelled = True
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _run(self) -> None:
        while True:
            tenant = self._jobs.get()
            if tenant is None:
                return
            try:
                self.warm(tenant)
            except StorageError:  # closed, or the tenant deleted: nothing to keep
                pass
            except Exception:
                log.exception("warming the in-memory tuples of tenant %r failed", tenant)
                self._no_copy.add(tenant)
            finally:
                with self._idle:
                    self._wanted.discard(tenant)
                    self._idle.notify_all()

    def warm(self, tenant: str) -> bool:
        """Build and publish ``tenant``'s copy now, in this thread; whether it was published."""
        warm = self.begin(tenant)
        if warm is None:
            return False
        return self.finish(warm, self.scan(warm))

    def begin(self, tenant: str) -> Warmup | None:
        """Pin the latest revision and start queueing the tenant's writes (None: the tenant
        has a copy, or is not to be kept)."""
        store = self._store
        with store._locked():
            tp = store._prefix(tenant)
            if (
                not self.budget
                or self._stopping
                or tenant in self.copies
                or tenant in self._no_copy
            ):
                return None
            warm = self._warming.get(tenant)
            if warm is None:
                warm = self._warming[tenant] = Warmup(tenant, tp, store.reader(tenant))
            return warm

    def scan(self, warm: Warmup) -> TenantCopy | None:
        """The tenant's entries at ``warm.r0``, read without a lock (None: cancelled, or over
        the budget)."""
        room = self.budget - self.total
        with self._store._read_errors:
            return scan_copy(self._store._db, warm, room, self.big_relation)

    def finish(self, warm: Warmup, copy: TenantCopy | None) -> bool:
        """Apply the writes queued since `begin` and publish the copy."""
        store = self._store
        with store._write_lock:
            if self._warming.get(warm.tenant) is not warm:
                return False
            del self._warming[warm.tenant]
            if warm.cancelled or store._closed or store._tenants.get(warm.tenant) is not warm.tp:
                return False
            if copy is not None:
                for delta in warm.pending:
                    apply_delta(copy, delta, self.big_relation)
            if copy is None or self.total + copy.count > self.budget:
                log.info(
                    "tenant %r has more tuples than the in-memory budget of %d leaves room "
                    "for; reading it from LevelDB until the store is reopened",
                    warm.tenant,
                    self.budget,
                )
                self._no_copy.add(warm.tenant)
                return False
            self.copies[warm.tenant] = copy
            self.total += copy.count
            return True


def apply_delta(copy: TenantCopy, delta: Delta, big_relation: int) -> int:
    """Replace the entries of the entities ``delta`` touches with entries valid from its
    revision (keeping out relations with more than ``big_relation`` subjects); the change in
    tuples held."""
    revision, created, bodies = delta.revision, delta.created, delta.bodies
    removals: dict[tuple[str, str], dict[str, set[bytes]]] = {}
    for t in delta.deleted:
        rels = removals.get((t[0], t[1]))
        if rels is None:
            rels = removals[(t[0], t[1])] = {}
        gone = rels.get(t[2])
        if gone is None:
            gone = rels[t[2]] = set()
        gone.add(components((t[3], t[4], t[5])))
    grown = 0
    # Sorted by forward key, the created tuples come in runs of one entity, and inside those
    # in runs of one relation, subjects in order.
    i = 0
    n = len(created)
    while i < n:
        t = created[i]
        et, eid, relation = t[0], t[1], t[2]
        more = [bodies[i].split(TERMINATOR, 3)[3]]
        added = {relation: more}
        i += 1
        while i < n:
            t = created[i]
            if t[1] != eid or t[0] != et:
                break
            if t[2] != relation:
                relation = t[2]
                more = added[relation] = []
            more.append(bodies[i].split(TERMINATOR, 3)[3])
            i += 1
        gone_rels = removals.pop((et, eid), None) if removals else None
        grown += _replace(copy, revision, et, eid, added, gone_rels, big_relation)
    for (et, eid), gone_rels in removals.items():
        grown += _replace(copy, revision, et, eid, None, gone_rels, big_relation)
    copy.count += grown
    if copy.tombstones >= _TOMBSTONE_FLOOR and copy.tombstones * 4 >= sum(
        map(len, copy.types.values())
    ):
        _drop_tombstones(copy, revision)
    return grown


def _replace(  # noqa: PLR0917 - the inner loop of apply_delta, called per entity
    copy: TenantCopy,
    revision: int,
    et: str,
    eid: str,
    added: dict[str, list[bytes]] | None,
    removed: dict[str, set[bytes]] | None,
    big_relation: int,
) -> int:
    """Publish entity ``et:eid``'s new entry; the change in tuples held. Relations are
    spliced into the old entry's tuples, so a write copies what it changes and no more."""
    by_id = copy.types.get(et)
    if by_id is None:
        by_id = copy.types[et] = {}
    old = by_id.get(eid)
    grown = 0
    big: tuple[str, ...] = ()
    size = 0
    if old is None and removed is None and added is not None:  # a new entity: the bulk case
        kept_subjects = [tuple(subjects) for subjects in added.values()]
        for subjects in kept_subjects:
            size += len(subjects)
        if size <= big_relation:  # no relation can be big: all kept, in key order
            names = _shared(copy.shapes, tuple(added))
            kept_all = tuple(kept_subjects)
            by_id[eid] = (revision, names, kept_all, (), size, _usersets_of(kept_all))
            return size
        sets: dict[str, tuple[bytes, ...]] = {}
        for relation, subjects in zip(added, kept_subjects, strict=True):
            if len(subjects) > big_relation:
                big = (*big, relation)
            else:
                sets[relation] = subjects
                grown += len(subjects)
        by_id[eid] = _frozen(copy.shapes, revision, sets, big, size)
        return grown
    names = ()
    subjects_of: tuple[tuple[bytes, ...], ...] = ()
    usersets_of: tuple[tuple[UsersetParts, ...], ...] = ()
    if old is not None:
        _, names, subjects_of, big, size, usersets_of = old
    if not usersets_of:  # spliced alongside the subjects below
        usersets_of = ((),) * len(names)
    old_names = names
    if added is None:
        touched: Iterable[str] = removed or ()
    elif removed is None:
        touched = added
    else:
        touched = added.keys() | removed.keys()
    for relation in touched:
        more = added.get(relation) if added is not None else None
        gone = removed.get(relation) if removed is not None else None
        size += (len(more) if more else 0) - (len(gone) if gone else 0)
        if relation in big:
            continue
        at = names.index(relation) if relation in names else -1
        kept = subjects_of[at] if at >= 0 else ()
        held = len(kept)
        if gone:
            kept = tuple([b for b in kept if b not in gone])
        if more:
            kept = tuple(sorted([*kept, *more])) if kept else tuple(more)
        if kept and len(kept) <= big_relation:
            usersets = userset_parts(kept)
            if at < 0:  # kept in order, as far as a name's order and its key's agree
                at = bisect.bisect(names, relation)
                names = (*names[:at], relation, *names[at:])
                subjects_of = (*subjects_of[:at], kept, *subjects_of[at:])
                usersets_of = (*usersets_of[:at], usersets, *usersets_of[at:])
            else:
                subjects_of = (*subjects_of[:at], kept, *subjects_of[at + 1 :])
                usersets_of = (*usersets_of[:at], usersets, *usersets_of[at + 1 :])
            grown += len(kept) - held
        else:
            if kept:
                big = (*big, relation)
            if at >= 0:
                names = names[:at] + names[at + 1 :]
                subjects_of = subjects_of[:at] + subjects_of[at + 1 :]
                usersets_of = usersets_of[:at] + usersets_of[at + 1 :]
            grown -= held
    if names is not old_names:
        names = _shared(copy.shapes, names)
    if size:
        if not any(usersets_of):
            usersets_of = ()
        by_id[eid] = (revision, names, subjects_of, big, size, usersets_of)
    else:  # an entity left without tuples forgets its big relations too
        by_id[eid] = (revision, (), (), (), 0, ())
    was_tombstone = old is not None and old[4] == 0
    if not size and not was_tombstone:
        copy.tombstones += 1
    elif size and was_tombstone:
        copy.tombstones -= 1
    return grown


def _drop_tombstones(copy: TenantCopy, revision: int) -> None:
    """Forget the entities without tuples: an absent entity means "no tuples" from ``revision``
    on, which every tombstone agrees with. ``complete_from`` moves first, since a reader looks
    an entity up before it reads ``complete_from``."""
    copy.complete_from = revision
    for by_id in copy.types.values():
        for eid in [eid for eid, entry in by_id.items() if entry[4] == 0]:
            del by_id[eid]
    copy.tombstones = 0


def _decode(raw: bytes) -> str:
    if ESCAPED_NUL in raw:
        raw = raw.replace(ESCAPED_NUL, b"\x00")
    return raw.decode("utf-8", "surrogatepass")


def scan_copy(db: Any, warm: Warmup, room: int, big_relation: int) -> TenantCopy | None:
    """A copy of tenant ``warm.tp``'s forward index at revision ``warm.r0`` (every entry valid
    from ``r0``; relations with more than ``big_relation`` subjects kept out), or None when
    cancelled or holding more than ``room`` tuples."""
    prefix = warm.tp + keys.FORWARD
    n = len(prefix)
    r0 = warm.r0
    rb = keys.rev8(r0)
    types: dict[str, dict[str, Entry]] = {}
    names: dict[bytes, str] = {}  # one str per relation name and entity type
    shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
    count = 0
    seen = 0
    # Keys come sorted by (type, id, relation, subject): one relation of one entity is a run,
    # ``bodies``, closed when the relation changes; one entity is a run of relations.
    by_id: dict[str, Entry] = {}
    et_raw = eid_raw = rel_raw = b""
    eid = rel = ""
    sets: dict[str, tuple[bytes, ...]] = {}
    big: list[str] = []
    size = 0
    bodies: list[bytes] = []
    for key, value in db.iterator(prefix=prefix):
        seen += 1
        if seen % _STOP_EVERY == 0 and (warm.cancelled or count > room):
            return None
        body = visible_body(key, value, n, rb)
        if body is None:
            continue
        et_b, eid_b, rel_b, subject = body.split(TERMINATOR, 3)
        if rel_b != rel_raw or eid_b != eid_raw or et_b != et_raw:
            if bodies:  # close the relation
                if len(bodies) > big_relation:
                    big.append(rel)
                else:
                    sets[rel] = tuple(bodies)
                    count += len(bodies)
                bodies = []
            if eid_b != eid_raw or et_b != et_raw:
                if size:  # close the entity
                    by_id[eid] = _frozen(shapes, r0, sets, tuple(big), size)
                    sets = {}
                    big = []
                    size = 0
                if et_b != et_raw:
                    et = names.get(et_b)
                    if et is None:
                        et = names[et_b] = _decode(et_b)
                    found = types.get(et)
                    if found is None:
                        found = types[et] = {}
                    by_id = found
                    et_raw = et_b
                eid = _decode(eid_b)
                eid_raw = eid_b
            name = names.get(rel_b)
            if name is None:
                name = names[rel_b] = _decode(rel_b)
            rel = name
            rel_raw = rel_b
        size += 1
        if len(bodies) <= big_relation:
            bodies.append(subject)
    if bodies:
        if len(bodies) > big_relation:
            big.append(rel)
        else:
            sets[rel] = tuple(bodies)
            count += len(bodies)
    if size:
        by_id[eid] = _frozen(shapes, r0, sets, tuple(big), size)
    if warm.cancelled or count > room:
        return None
    copy = TenantCopy(warm.tp, r0, types, count)
    copy.shapes = shapes
    return copy
