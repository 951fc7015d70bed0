"""The LevelDB ``SnapshotReader``: one tenant's tuples, attributes and records at one revision.

A reader keeps, of every tuple or attribute, the version whose ``created <= revision < deleted``
(``history.py``); records are not versioned, so it reads their latest value. The engine's point
reads (``subject_set``, ``relations``, ``has_tuple``) answer from the tenant's in-memory copy
(``resident.py``) when it covers the reader's revision, and scan LevelDB otherwise.

Concurrency: readers never lock. LevelDB is safe for concurrent readers beside one writer, and a
reader filters by its revision, so it sees the same state however many writes land meanwhile.
Each thread re-seeks its own raw iterator for the engine's point reads. While a reader is
referenced, garbage collection keeps every version it can see: the store keeps a weak reference
to the reader's `Pin`, which only the reader holds.

This module is compiled with mypyc (``storage/compiled.py``), whose classes cannot be weakly
referenced: hence the pin, and the reader's own copy of `PinnedReader`'s fields and properties
(a compiled class cannot subclass an interpreted one).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from storage import keys, tokens
from storage.base import (
    Attribute,
    AttributeFilter,
    Page,
    Record,
    RecordKey,
    Revision,
    SnapToken,
    Subject,
    SubjectSet,
    TenantId,
    Tuple,
    TupleFilter,
    TupleKind,
    check_page_size,
)
from storage.errors import InvalidToken
from storage.keys import ESCAPED_NUL, HISTORY, TERMINATOR, component, components, rev8, split
from storage.leveldb.history import (
    decode_attribute,
    visible_body,
    visible_pair,
    visible_payload,
)
from storage.leveldb.plyvel_errors import raise_translated, store_closed
from storage.leveldb.resident import Entry, entry_at, kept_relations, kept_subjects
from storage.leveldb.subjects import RawSubjects
from storage.snapshot import Pin

if TYPE_CHECKING:
    from storage.leveldb.store import LevelDBStore

ItemT = TypeVar("ItemT")


class LevelDBReader:
    """A ``SnapshotReader``: one tenant at one revision. Cheap to create; hold it for the
    duration of a request (while it is referenced, GC keeps everything it can see).

    ``pin``: what the store tracks for garbage collection (`LevelDBStore.reader`); None for a
    reader used only under the write lock, which GC waits for anyway."""

    __slots__ = (
        "_copies",
        "_db",
        "_guard",
        "_in_memory",
        "_local",
        "_pin",
        "_rb",
        "_resident",
        "_revision",
        "_store",
        "_store_id",
        "_tenant",
        "_tp",
    )

    def __init__(
        self,
        store: LevelDBStore,
        tp: bytes,
        tenant: TenantId,
        revision: Revision,
        pin: Pin | None = None,
    ) -> None:
        self._store_id: bytes = store._store_id
        self._tenant = tenant
        self._revision = revision
        self._pin = pin
        self._store = store
        self._db = store._db
        self._guard = store._read_errors
        self._tp = tp
        self._rb = rev8(revision)
        # One raw iterator per thread, re-seeked for every engine read: seeking is much cheaper
        # than making an iterator. It sees the database as of its creation, which is after this
        # reader's revision was published, so filtering by the revision stays exact.
        self._local = threading.local()
        self._resident = store._resident
        self._copies = store._resident.copies
        copy = self._copies.get(tenant)
        self._in_memory = copy is not None and copy.tp is tp and revision >= copy.complete_from

    # The fields and properties of `PinnedReader`, which the other backends' readers inherit.

    @property
    def tenant(self) -> TenantId:
        return self._tenant

    @property
    def revision(self) -> Revision:
        return self._revision

    @property
    def token(self) -> SnapToken:
        return tokens.encode_snap(self._store_id, self._revision)

    @property
    def schema_head(self) -> str | None:
        """None: the store answers ``Store.schema_head`` from memory."""
        return None

    @property
    def reads_in_memory(self) -> bool:
        """True when the tenant's in-memory copy covered this revision as the reader opened."""
        return self._in_memory

    def _seek(self, prefix: bytes) -> Any:
        it = getattr(self._local, "it", None)
        if it is None:
            it = self._local.it = self._db.raw_iterator()
        it.seek(prefix)
        return it

    def _current(self) -> bool:
        """False once the tenant is deleted (even if an equal id was created again since):
        a reader of a deleted tenant sees nothing, never a half-deleted or newer tenant."""
        return self._store._tenants.get(self._tenant) is self._tp

    def _entry(self, entity_type: str, entity_id: str) -> Entry | None:
        """The entity's tuples at this revision from the tenant's in-memory copy, or None when
        the copy cannot tell (no copy, or the entity changed after this revision): read
        LevelDB. See ``resident.py`` for why this is exact."""
        copy = self._copies.get(self._tenant)
        if copy is None:
            if self._current():
                self._resident.want(self._tenant)
            return None
        if copy.tp is not self._tp:
            return None
        return entry_at(copy, entity_type, entity_id, self._revision)

    # -- engine reads ------------------------------------------------------------------
    # plyvel raises RuntimeError once the database is closed, which must reach callers as
    # StoreClosed. The point reads (one key, or one entity's or subject's keys) are called
    # thousands of times a request: they catch it themselves and call raise_translated, since
    # a with-block costs about 0.15 us per call (7-20% of a point read). The scans, which pay it
    # once per scan, run inside ``self._guard`` (a PlyvelErrors with-block); both translate alike.

    # subjects and entity_ids are _scan specialised by hand: they are the engine's inner loop.

    def subjects(self, entity_type: str, entity_id: str, relation: str) -> list[Subject]:
        return list(self.subject_set(entity_type, entity_id, relation))

    def subject_token(self, subject: Subject) -> object:
        return components(subject)

    def subject_set(self, entity_type: str, entity_id: str, relation: str) -> SubjectSet:
        entry = self._entry(entity_type, entity_id)
        if entry is not None:
            kept = kept_subjects(entry, relation)
            if kept is not None:
                return kept
        prefix = keys.forward_prefix(self._tp, entity_type, entity_id, relation)
        n = len(prefix)
        rb = self._rb
        bodies: list[bytes] = []
        if not self._current():
            return RawSubjects(bodies)
        add = bodies.append
        try:
            it = self._seek(prefix)
            while it.valid():
                key, value = it.item()
                if not key.startswith(prefix):
                    break
                body = visible_body(key, value, n, rb)
                if body is not None:
                    add(body)
                it.next()
        except RuntimeError as exc:
            raise_translated(self._store, exc)
        return RawSubjects(bodies)

    def tuple_kinds(self) -> frozenset[TupleKind]:
        if not self._current():
            return frozenset()
        return self._store.tuple_kinds(self._tenant)

    def relations(
        self, entity_type: str, entity_id: str, *, limit: int
    ) -> dict[str, SubjectSet] | None:
        entry = self._entry(entity_type, entity_id)
        if entry is not None:
            if entry[4] > limit:
                return None
            if not entry[3]:
                return kept_relations(entry)
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
                body = visible_body(key, value, n, rb)
                if body is None:
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
            raise_translated(self._store, exc)
        return {
            (
                split(relation + TERMINATOR)[0]
                if ESCAPED_NUL in relation
                else relation.decode("utf-8", "surrogatepass")
            ): RawSubjects(bodies)
            for relation, bodies in grouped.items()
        }

    def has_tuple(self, t: Tuple) -> bool:
        entry = self._entry(t[0], t[1])
        if entry is not None:
            _, names, subjects, big, _, _ = entry
            if t[2] in names:
                return components((t[3], t[4], t[5])) in subjects[names.index(t[2])]
            if t[2] not in big:
                return False
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
            raise_translated(self._store, exc)
        return history is not None and visible_pair(history, rb)

    def entity_ids(self, entity_type: str, relation: str, subject: Subject) -> Iterator[str]:
        st, sid, srel = subject
        prefix = keys.reverse_prefix(self._tp, st, sid, srel, entity_type, relation)
        n = len(prefix)
        rb = self._rb
        if not self._current():
            return
        try:
            for key, value in self._db.iterator(prefix=prefix):
                body = visible_body(key, value, n, rb)
                if body is not None:
                    yield split(body)[0]
        except RuntimeError as exc:
            raise_translated(self._store, exc)

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
                payload = None if history is None else visible_payload(history, rb)
        except RuntimeError as exc:
            raise_translated(self._store, exc)
        if payload is None:
            return None
        return decode_attribute([entity_type, entity_id, name], payload)

    def attributes(self, entity_type: str, entity_id: str) -> list[Attribute]:
        prefix = keys.ATTRIBUTES + components((entity_type, entity_id))
        return [
            decode_attribute(split(body[1:]), payload)
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
            with self._guard:
                for key, value in self._db.iterator(
                    start=start, stop=stop, include_start=include_start
                ):
                    if key[-1] == 1:
                        if value[:8] <= rb:
                            yield key[n:] + HISTORY, key[n:], value[8:]
                    elif attributes:
                        payload = visible_payload(value, rb)
                        if payload is not None:
                            yield key[n:], key[n:-1], payload
                    elif visible_pair(value, rb):
                        yield key[n:], key[n:-1], b""

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
            a = decode_attribute(split(body[1:]), payload)
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
            raise_translated(self._store, exc)
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
            raise store_closed()
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
        with self._guard:
            for key, value in itertools.islice(found, limit):
                yield Record(keyspace, tuple(split(key[n:])), value)


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
