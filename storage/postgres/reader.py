"""The PostgreSQL ``SnapshotReader``: one tenant incarnation at one revision.

A tuple or attribute version row is visible at revision R when ``created <= R < deleted``; a
live version's ``deleted`` is ``LIVE`` (the largest BIGINT). Every query filters by the tenant's
incarnation (``pk``), so a reader of a deleted tenant sees nothing, even after its id is reused.

Round trips: a check must not cost one query per tuple, nor one per entity it visits. The
first engine read of an entity (``relations``, ``subject_set``, ``subjects``) loads every tuple
of that entity in one query, and the reader keeps them. When they name entities that can
themselves have tuples (parents, groups, nested groups: what a check walks next) which the
reader does not hold yet, one query loads all of those (up to ``LEVEL_ENTITIES``), then one
more the ones they name in turn, and so on, up to ``WALK_ENTITIES`` entities (``_walk``): so a
folder chain or a group nest costs one round trip per level the reader lacks, and the rest of
the check (and of every request sharing the reader) is answered from memory. Each of these
reads is a few index range reads, one per entity, in one plain statement (rows of VALUES and a
LATERAL subquery each): a recursive query (``WITH RECURSIVE``) loading a whole neighbourhood at
once was tried and cost about four plain reads' time, re-reading the entities the reader held.
An entity with more than ``ENTITY_ROWS`` tuples is not kept, but read relation by relation. An
attribute read loads every attribute of that entity at once and keeps them likewise. A new
reader at the latest revision takes over what the previous one loaded, but for the entities the
writes between them touched (one read of the change log), so a write does not cost every
following check its reads. A check's own entity is usually read before the reader exists, in
the statement that reads the head (``Store.reader``'s ``prefetch``, see store.py), and handed
over with ``offer``: so a first-pass check whose entity names nothing new costs one round trip
in all.

Scans (``iter_tuples``, ``entity_ids``, ``records``) walk keyset pages of a few thousand rows,
so memory stays bounded however large the result. Pages resume after the last key read (a
row-value comparison) and are ordered by an index, so no page costs more than its own rows.

Concurrency: a reader is immutable apart from its caches (dicts filled under the GIL; two
threads racing to fill one entry store the same rows, and an entry lost to a race is read
again) and may be shared between threads. Taking over the previous reader's cache runs once,
under a lock: requests arriving meanwhile wait for it rather than read what it brings.
Inside ``Store.transact`` it runs on the transaction's own connection, so the build function's
reads see the state the write is decided against, and never wait for a second connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from storage import keys, tokens
from storage.base import (
    Attribute,
    AttributeFilter,
    ListSubjects,
    Page,
    Record,
    RecordKey,
    Revision,
    Subject,
    SubjectSet,
    TenantId,
    Tuple,
    TupleFilter,
    TupleKind,
    check_page_size,
)
from storage.errors import InvalidToken
from storage.postgres.codec import (
    ENCODING,
    ERRORS,
    dec,
    decode_attribute,
    decode_changes,
    enc,
    tuple_of,
)
from storage.postgres.database import Connection, PreparedRead, Row
from storage.snapshot import PinnedReader

if TYPE_CHECKING:
    from storage.postgres.store import PostgresStore

#: Rows per keyset page of a scan.
SCAN_CHUNK = 5_000
#: Entities whose attributes a reader keeps; past it, the cache starts over.
_ATTRIBUTE_CACHE_ENTITIES = 10_000
#: An entity with more tuples than this is not kept whole: it is read relation by relation.
ENTITY_ROWS = 512
#: At most this many entities per read of a walk's next level, and in all per walk (see the
#: module docstring).
LEVEL_ENTITIES = 16
WALK_ENTITIES = 64
#: Entities whose tuples a reader keeps; past it, the cache starts over.
_TUPLE_CACHE_ENTITIES = 20_000
#: Entities read with the head and not used yet that a reader keeps; past it, it starts over.
_PREFETCHED_ENTITIES = 1_000

K = TypeVar("K")

#: What ``dict.pop`` answers for an entity not held (compared by identity).
_UNREAD: dict[str, list[Subject]] = {}

_VISIBLE = "created <= %s AND deleted > %s"
_FORWARD = (
    "entity_type",
    "entity_id",
    "relation",
    "subject_type",
    "subject_id",
    "subject_relation",
)
_REVERSE = (
    "subject_type",
    "subject_id",
    "subject_relation",
    "entity_type",
    "relation",
    "entity_id",
)
_ATTRIBUTE_ORDER = ("entity_type", "entity_id", "name")

_SUBJECTS = (
    "SELECT subject_type, subject_id, subject_relation FROM stonetown_tuples"
    " WHERE tenant = %s AND entity_type = %s AND entity_id = %s AND relation = %s"
    f" AND {_VISIBLE} ORDER BY subject_type, subject_id, subject_relation"
)
_RELATIONS = (
    "SELECT relation, subject_type, subject_id, subject_relation FROM stonetown_tuples"
    " WHERE tenant = %s AND entity_type = %s AND entity_id = %s"
    f" AND {_VISIBLE} ORDER BY relation, subject_type, subject_id, subject_relation LIMIT %s"
)
_HAS_TUPLE = (
    "SELECT 1 FROM stonetown_tuples WHERE tenant = %s AND entity_type = %s AND entity_id = %s"
    " AND relation = %s AND subject_type = %s AND subject_id = %s AND subject_relation = %s"
    f" AND {_VISIBLE} LIMIT 1"
)
_ENTITY_IDS = (
    "SELECT entity_id FROM stonetown_tuples WHERE tenant = %s AND subject_type = %s"
    " AND subject_id = %s AND subject_relation = %s AND entity_type = %s AND relation = %s"
    f" AND entity_id > %s AND {_VISIBLE} ORDER BY entity_id LIMIT %s"
)
_ENTITY_ATTRIBUTES = (
    "SELECT name, value FROM stonetown_attributes WHERE tenant = %s AND entity_type = %s"
    f" AND entity_id = %s AND {_VISIBLE} ORDER BY name"
)


def entities_sql(count: int, *, head: bool = False) -> str:
    """The statement reading every tuple of ``count`` entities at one revision: rows of
    VALUES (type, id, position), each the key of one index range read with a row bound (a
    LATERAL subquery with a LIMIT, which the planner cannot flatten into a plain join, so each
    entity stays one range read whatever the planner believes about the tenant: right after a
    bulk load, before statistics know it, a plain join is planned as a scan of every tuple of
    the tenant). One row per tuple, ordered within the entity, or one of NULLs for an entity
    without tuples, after the entity's position (0-based).

    With ``head``, the entities are read in the statement that reads the tenant's head (``h``,
    joined before them), each at the revision given after its id or at the head, whichever is
    older (``LEAST``: a request with a snap token gets its entity at the token's revision);
    else all at the revision given after the tenant's incarnation."""
    if head:
        values = ", ".join(f"(%s::bytea, %s::bytea, {i}, %s::bigint)" for i in range(count))
        columns = "entity_type, entity_id, n, at"
        tenant, created, deleted = "h.pk", "LEAST(h.revision, e.at)", "LEAST(h.revision, e.at)"
    else:
        values = ", ".join(f"(%s::bytea, %s::bytea, {i})" for i in range(count))
        columns = "entity_type, entity_id, n"
        tenant, created, deleted = "%s", "%s", "%s"
    return (
        f"(VALUES {values}) AS e({columns}) LEFT JOIN LATERAL"
        " (SELECT relation, subject_type, subject_id, subject_relation"
        f" FROM stonetown_tuples WHERE tenant = {tenant} AND entity_type = e.entity_type"
        f" AND entity_id = e.entity_id AND created <= {created} AND deleted > {deleted}"
        " ORDER BY relation, subject_type, subject_id, subject_relation LIMIT %s) AS t ON TRUE"
    )


#: Every tuple of 1 to LEVEL_ENTITIES entities at a revision (see ``entities_sql``), one
#: statement per count, each prepared once per connection.
_LEVELS = {
    count: PreparedRead(
        "SELECT e.n, t.relation, t.subject_type, t.subject_id, t.subject_relation FROM "
        + entities_sql(count),
        "bb" * count + "qqqq",
    )
    for count in range(1, LEVEL_ENTITIES + 1)
}
_RECORD = "SELECT value FROM stonetown_records WHERE tenant = %s AND keyspace = %s AND key = %s"


class PostgresReader(PinnedReader):
    """A ``SnapshotReader``: one tenant incarnation (``pk``) at one revision."""

    __slots__ = (
        "_attributes",
        "_conn",
        "_db",
        "_entities",
        "_inheriting",
        "_log",
        "_parent",
        "_pk",
        "_prefetched",
        "_schema_head",
        "_store",
    )

    def __init__(
        self,
        store: PostgresStore,
        tenant: TenantId,
        pk: int,
        revision: Revision,
        *,
        conn: Connection | None = None,
        schema_head: str | None = None,
        parent: PostgresReader | None = None,
        log: tuple[int, list[bytes | None]] | None = None,
    ) -> None:
        super().__init__(store._store_id, tenant, revision)
        self._schema_head = schema_head
        #: The previous latest reader of this tenant, whose reads this one may take over.
        self._parent = parent
        self._inheriting = threading.Lock()
        #: The change log after some revision up to this one, read with the head: the take-over
        #: needs no read of its own when it starts at the parent's revision.
        self._log = log
        self._store = store
        self._db = store._db
        self._pk = pk
        self._conn = conn
        self._attributes: dict[tuple[str, str], dict[str, Attribute]] = {}
        #: (type, id) -> its tuples as relation -> subjects (ordered), or None: too big to
        #: keep whole, read relation by relation.
        self._entities: dict[tuple[str, str], dict[str, list[Subject]] | None] = {}
        #: Entities read with the head (``offer``), not used yet: taken on first use, when the
        #: entities each names are walked to as for one read then.
        self._prefetched: dict[tuple[str, str], dict[str, list[Subject]] | None] = {}

    @property
    def schema_head(self) -> str | None:
        return self._schema_head

    def _rows(self, sql: str | PreparedRead, params: tuple[Any, ...]) -> list[Row]:
        return self._db.rows(sql, params, self._conn)

    def offer(self, loaded: dict[tuple[str, str], dict[str, list[Subject]] | None]) -> None:
        """Entities' tuples read at this reader's revision (with the head, in the same
        statement): kept for their first use, unless the reader holds them already."""
        entities = self._entities
        prefetched = self._prefetched
        if len(prefetched) >= _PREFETCHED_ENTITIES:  # offered, never read (answers cached)
            prefetched = self._prefetched = {}
        for key, found in loaded.items():
            if key not in entities:
                prefetched[key] = found

    def holds(self, key: tuple[str, str]) -> bool:
        """Whether the reader (or the one it inherits from) has the entity's tuples at hand:
        a hint for what to read with the head, never an answer."""
        if key in self._entities or key in self._prefetched:
            return True
        parent = self._parent
        return parent is not None and key in parent._entities

    def detach(self) -> None:
        """Stop using the transaction's connection (the transaction is over)."""
        self._conn = None

    # -- engine reads ------------------------------------------------------------------------

    def subject_token(self, subject: Subject) -> object:
        return subject

    def _inherit(self) -> None:
        """Take over what the previous latest reader of the tenant loaded, but for the entities
        a write since has touched: one read of the change log between the two revisions, where
        each write has its row. When garbage collection has trimmed some of those rows, take
        nothing."""
        # Requests sharing this reader wait for the one taking over, rather than each finding
        # the cache empty meanwhile and reading (walks included) what it is about to hold.
        with self._inheriting:
            parent = self._parent
            if parent is None:
                return  # taken over meanwhile
            try:
                self._take_over(parent)
            finally:
                self._parent = None

    def _take_over(self, parent: PostgresReader) -> None:
        if parent._pk != self._pk or parent._revision > self._revision:
            return
        touched: set[tuple[str, str]] = set()
        if parent._revision < self._revision:
            log = self._log
            self._log = None
            if log is not None and log[0] == parent._revision:
                changes = log[1]
            else:
                rows = self._rows(
                    "SELECT changes FROM stonetown_revisions WHERE tenant = %s AND revision > %s"
                    " AND revision <= %s",
                    (self._pk, parent._revision, self._revision),
                )
                changes = [raw for (raw,) in rows]
            if len(changes) != self._revision - parent._revision:
                return
            for raw in changes:
                if raw is not None:
                    for change in decode_changes(raw):
                        touched.add((change.item.entity_type, change.item.entity_id))
        # A copy, then the few touched entries out: several times cheaper than a filtered
        # comprehension over a cache of thousands of entities.
        entities = parent._entities.copy()
        attributes = parent._attributes.copy()
        for key in touched:
            entities.pop(key, None)
            attributes.pop(key, None)
        entities.update(self._entities)
        self._entities = entities
        attributes.update(self._attributes)
        self._attributes = attributes

    def _entity(self, entity_type: str, entity_id: str) -> dict[str, list[Subject]] | None:
        """Every tuple of one entity (None: too many to keep), loaded on first use with the
        entities it names that the reader lacks (``_walk``)."""
        key = (entity_type, entity_id)
        entities = self._entities
        if key in entities:
            return entities[key]
        if self._parent is not None:
            self._inherit()
            entities = self._entities
            if key in entities:
                return entities[key]
        found = self._prefetched.pop(key, _UNREAD)
        if found is _UNREAD:
            found = self._load_entities([key])[key]
        if len(entities) >= _TUPLE_CACHE_ENTITIES:
            entities = self._entities = {}
        entities[key] = found
        if found is not None:
            self._walk(found, entities)
        return found

    def _walk(
        self,
        found: dict[str, list[Subject]],
        entities: dict[tuple[str, str], dict[str, list[Subject]] | None],
    ) -> None:
        """Load the entities a check may walk to from one just loaded (``found``) that the
        reader lacks: its subjects of types that have tuples (a parent folder, a group), then
        theirs, a level per round trip, up to WALK_ENTITIES entities in all; so a folder chain
        or a group nest costs a round trip per level still unknown, never one per entity."""
        inner = self._store._inner_types(self._pk, self._conn)
        prefetched = self._prefetched
        level = [found]
        budget = WALK_ENTITIES
        while level and budget > 0:
            wanted: dict[tuple[str, str], None] = {}
            for relations in level:
                for subjects in relations.values():
                    for s in subjects:
                        if s[0] in inner:
                            key = (s[0], s[1])
                            if key not in entities:
                                wanted[key] = None
            if not wanted:
                return
            keys = list(wanted)[: min(budget, LEVEL_ENTITIES)]
            budget -= len(keys)
            loaded: dict[tuple[str, str], dict[str, list[Subject]] | None] = {}
            unread: list[tuple[str, str]] = []
            for key in keys:
                held = prefetched.pop(key, _UNREAD)
                if held is _UNREAD:
                    unread.append(key)
                else:
                    loaded[key] = held
            if unread:
                loaded.update(self._load_entities(unread))
            entities.update(loaded)
            level = [relations for relations in loaded.values() if relations is not None]

    def _load_entities(
        self, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, list[Subject]] | None]:
        """Every tuple of each entity (1 to LEVEL_ENTITIES of them) in one statement; None for
        one with more than ENTITY_ROWS."""
        params: list[Any] = []
        for entity_type, entity_id in keys:
            params += (enc(entity_type), enc(entity_id))
        r = self._revision
        params += (self._pk, r, r, ENTITY_ROWS + 1)
        rows = self._rows(_LEVELS[len(keys)], tuple(params))
        return entities_of(keys, rows)

    def subject_set(self, entity_type: str, entity_id: str, relation: str) -> SubjectSet:
        return ListSubjects(self.subjects(entity_type, entity_id, relation))

    def subjects(self, entity_type: str, entity_id: str, relation: str) -> list[Subject]:
        found = self._entity(entity_type, entity_id)
        if found is not None:
            return list(found.get(relation, ()))
        r = self._revision
        rows = self._rows(
            _SUBJECTS, (self._pk, enc(entity_type), enc(entity_id), enc(relation), r, r)
        )
        return [Subject(dec(st), dec(sid), dec(srel)) for st, sid, srel in rows]

    def relations(
        self, entity_type: str, entity_id: str, *, limit: int
    ) -> dict[str, SubjectSet] | None:
        found = self._entity(entity_type, entity_id)
        if found is not None:
            if sum(map(len, found.values())) > limit:
                return None
            return {name: ListSubjects(subjects) for name, subjects in found.items()}
        r = self._revision
        rows = self._rows(_RELATIONS, (self._pk, enc(entity_type), enc(entity_id), r, r, limit + 1))
        if len(rows) > limit:
            return None
        grouped: dict[bytes, list[Subject]] = {}
        for relation, st, sid, srel in rows:
            subjects = grouped.get(relation)
            if subjects is None:
                subjects = grouped[relation] = []
            subjects.append(Subject(dec(st), dec(sid), dec(srel)))
        return {dec(relation): ListSubjects(subjects) for relation, subjects in grouped.items()}

    def tuple_kinds(self) -> frozenset[TupleKind]:
        return self._store._kinds_at(self._pk, self._revision, self._conn)

    def has_tuple(self, t: Tuple) -> bool:
        r = self._revision
        params = (self._pk, enc(t[0]), enc(t[1]), enc(t[2]), enc(t[3]), enc(t[4]), enc(t[5]), r, r)
        return bool(self._rows(_HAS_TUPLE, params))

    def entity_ids(self, entity_type: str, relation: str, subject: Subject) -> Iterator[str]:
        r = self._revision
        fixed = (
            self._pk,
            enc(subject[0]),
            enc(subject[1]),
            enc(subject[2]),
            enc(entity_type),
            enc(relation),
        )
        after = b""
        while True:
            rows = self._rows(_ENTITY_IDS, (*fixed, after, r, r, SCAN_CHUNK))
            for (eid,) in rows:
                yield dec(eid)
            if len(rows) < SCAN_CHUNK:
                return
            after = rows[-1][0]

    def _entity_attributes(self, entity_type: str, entity_id: str) -> dict[str, Attribute]:
        key = (entity_type, entity_id)
        found = self._attributes.get(key)
        if found is None and self._parent is not None:
            self._inherit()
            found = self._attributes.get(key)
        if found is None:
            r = self._revision
            rows = self._rows(
                _ENTITY_ATTRIBUTES, (self._pk, enc(entity_type), enc(entity_id), r, r)
            )
            found = {}
            for name, value in rows:
                text = dec(name)
                found[text] = decode_attribute(entity_type, entity_id, text, value)
            if len(self._attributes) >= _ATTRIBUTE_CACHE_ENTITIES:
                self._attributes = {}
            self._attributes[key] = found
        return found

    def attribute(self, entity_type: str, entity_id: str, name: str) -> Attribute | None:
        return self._entity_attributes(entity_type, entity_id).get(name)

    def attributes(self, entity_type: str, entity_id: str) -> list[Attribute]:
        if not entity_type:
            return []
        return list(self._entity_attributes(entity_type, entity_id).values())

    # -- filtered, paginated reads -----------------------------------------------------------

    def _tuple_pages(
        self, flt: TupleFilter, after: tuple[bytes, ...] | None, limit: int
    ) -> list[Row]:
        """Up to ``limit`` rows of tuples matching ``flt`` after the key ``after``, in the
        order of the index the filter leads with; each row is the six parts in that order."""
        order = _order_of(flt)
        conditions = ["tenant = %s", _VISIBLE]
        params: list[Any] = [self._pk, self._revision, self._revision]
        if flt.entity_type:
            conditions.append("entity_type = %s")
            params.append(enc(flt.entity_type))
        if flt.entity_ids:
            conditions.append("entity_id = ANY(%b::bytea[])")
            params.append([enc(i) for i in flt.entity_ids])
        if flt.relation:
            conditions.append("relation = %s")
            params.append(enc(flt.relation))
        if flt.subject_type:
            conditions.append("subject_type = %s")
            params.append(enc(flt.subject_type))
        if flt.subject_ids:
            conditions.append("subject_id = ANY(%b::bytea[])")
            params.append([enc(i) for i in flt.subject_ids])
        if flt.subject_relation is not None:
            conditions.append("subject_relation = %s")
            params.append(enc(flt.subject_relation))
        columns = ", ".join(order)
        if after is not None:
            conditions.append(f"({columns}) > ({', '.join(['%s'] * len(order))})")
            params.extend(after)
        params.append(limit)
        sql = (
            f"SELECT {columns} FROM stonetown_tuples WHERE {' AND '.join(conditions)}"
            f" ORDER BY {columns} LIMIT %s"
        )
        return self._rows(sql, tuple(params))

    def read_tuples(self, flt: TupleFilter, *, page_size: int, cursor: str = "") -> Page[Tuple]:
        check_page_size(page_size)
        query = tokens.fingerprint("tuples", self._tenant, flt)
        after = _resume(query, cursor, 6)
        rows = self._tuple_pages(flt, after, page_size + 1)
        reverse = _order_of(flt) is _REVERSE
        items = [_tuple_in(row, reverse) for row in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(items, "")
        return Page(
            items, tokens.encode_cursor(query, keys.components(map(dec, rows[page_size - 1])))
        )

    def iter_tuples(self, flt: TupleFilter) -> Iterator[Tuple]:
        reverse = _order_of(flt) is _REVERSE
        after: tuple[bytes, ...] | None = None
        while True:
            rows = self._tuple_pages(flt, after, SCAN_CHUNK)
            for row in rows:
                yield _tuple_in(row, reverse)
            if len(rows) < SCAN_CHUNK:
                return
            after = tuple(rows[-1])

    def _attribute_pages(
        self, flt: AttributeFilter, after: tuple[bytes, ...] | None, limit: int
    ) -> list[Row]:
        conditions = ["tenant = %s", _VISIBLE]
        params: list[Any] = [self._pk, self._revision, self._revision]
        if flt.entity_type:
            conditions.append("entity_type = %s")
            params.append(enc(flt.entity_type))
        if flt.entity_ids:
            conditions.append("entity_id = ANY(%b::bytea[])")
            params.append([enc(i) for i in flt.entity_ids])
        if flt.names:
            conditions.append("name = ANY(%b::bytea[])")
            params.append([enc(n) for n in flt.names])
        if after is not None:
            conditions.append("(entity_type, entity_id, name) > (%s, %s, %s)")
            params.extend(after)
        params.append(limit)
        sql = (
            "SELECT entity_type, entity_id, name, value FROM stonetown_attributes"
            f" WHERE {' AND '.join(conditions)} ORDER BY entity_type, entity_id, name LIMIT %s"
        )
        return self._rows(sql, tuple(params))

    def read_attributes(
        self, flt: AttributeFilter, *, page_size: int, cursor: str = ""
    ) -> Page[Attribute]:
        check_page_size(page_size)
        query = tokens.fingerprint("attributes", self._tenant, flt)
        after = _resume(query, cursor, 3)
        rows = self._attribute_pages(flt, after, page_size + 1)
        items = [_attribute_in(row) for row in rows[:page_size]]
        if len(rows) <= page_size:
            return Page(items, "")
        last = rows[page_size - 1]
        return Page(items, tokens.encode_cursor(query, keys.components(map(dec, last[:3]))))

    def iter_attributes(self, flt: AttributeFilter) -> Iterator[Attribute]:
        after: tuple[bytes, ...] | None = None
        while True:
            rows = self._attribute_pages(flt, after, SCAN_CHUNK)
            for row in rows:
                yield _attribute_in(row)
            if len(rows) < SCAN_CHUNK:
                return
            after = tuple(rows[-1][:3])

    # -- records -----------------------------------------------------------------------------

    def record(self, keyspace: str, key: RecordKey) -> bytes | None:
        row = self._db.one(_RECORD, (self._pk, enc(keyspace), keys.components(key)), self._conn)
        return None if row is None else bytes(row[0])

    def records(
        self,
        keyspace: str,
        prefix: RecordKey = (),
        *,
        after: RecordKey | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Record]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        return self._records(keyspace, tuple(prefix), after, reverse, limit)

    def _records(
        self,
        keyspace: str,
        prefix: RecordKey,
        after: RecordKey | None,
        reverse: bool,
        limit: int | None,
    ) -> Iterator[Record]:
        low = keys.components(prefix)
        high = keys.prefix_end(low) if low else None
        bound = None if after is None else keys.components(after)
        left = limit
        while left is None or left > 0:
            conditions = ["tenant = %s", "keyspace = %s", "key >= %s"]
            params: list[Any] = [self._pk, enc(keyspace), low]
            if high is not None:
                conditions.append("key < %s")
                params.append(high)
            if bound is not None:
                conditions.append("key < %s" if reverse else "key > %s")
                params.append(bound)
            chunk = SCAN_CHUNK if left is None else min(left, SCAN_CHUNK)
            params.append(chunk)
            sql = (
                f"SELECT key, value FROM stonetown_records WHERE {' AND '.join(conditions)}"
                f" ORDER BY key {'DESC' if reverse else 'ASC'} LIMIT %s"
            )
            rows = self._rows(sql, tuple(params))
            for key, value in rows:
                yield Record(keyspace, tuple(keys.split(key)), bytes(value))
            if len(rows) < chunk:
                return
            if left is not None:
                left -= len(rows)
            bound = rows[-1][0]


def entity_of(rows: Iterable[Sequence[Any]], first: int = 0) -> dict[str, list[Subject]]:
    """One entity's tuples as relation -> subjects, from rows of (relation, subject type,
    subject id, subject relation) starting at column ``first``, in relation order."""
    # Grouped by the relation's bytes, decoded once each; the subjects built as plain tuples
    # of their class (the named tuple's own constructor is a Python call): with ``dec`` and
    # ``Subject(...)`` a row cost about a fifth more.
    grouped: dict[bytes, list[Subject]] = {}
    new = tuple.__new__
    for row in rows:
        relation, st, sid, srel = row[first : first + 4]
        if relation is None:
            continue  # the row of an entity without tuples, from an outer join
        subjects = grouped.get(relation)
        if subjects is None:
            subjects = grouped[relation] = []
        subjects.append(
            new(
                Subject,
                (
                    st.decode(ENCODING, ERRORS),
                    sid.decode(ENCODING, ERRORS),
                    srel.decode(ENCODING, ERRORS),
                ),
            )
        )
    return {dec(relation): subjects for relation, subjects in grouped.items()}


def entities_of(
    keys: Sequence[K], rows: list[Row], first: int = 0
) -> dict[K, dict[str, list[Subject]] | None]:
    """The tuples of each of ``keys`` from the rows of ``entities_sql`` (each row's entity
    position at column ``first``, its tuple after it): None for an entity with more than
    ENTITY_ROWS. Rows are grouped by position, in whatever order the entities come."""
    grouped: dict[int, list[Row]] = {}
    for row in rows:
        n = row[first]
        part = grouped.get(n)
        if part is None:
            grouped[n] = [row]
        else:
            part.append(row)
    return {
        keys[n]: None if len(part) > ENTITY_ROWS else entity_of(part, first + 1)
        for n, part in grouped.items()
    }


def _order_of(flt: TupleFilter) -> tuple[str, ...]:
    """The reverse (subject-led) order when the filter names subjects rather than entities,
    as the LevelDB store picks its reverse index; else the forward order."""
    if flt.subject_type and not flt.entity_ids and not (flt.entity_type and not flt.subject_ids):
        return _REVERSE
    return _FORWARD


def _tuple_in(row: Row, reverse: bool) -> Tuple:
    if reverse:
        st, sid, srel, et, rel, eid = row
        return Tuple(dec(et), dec(eid), dec(rel), dec(st), dec(sid), dec(srel))
    return tuple_of(row)


def _attribute_in(row: Row) -> Attribute:
    return decode_attribute(dec(row[0]), dec(row[1]), dec(row[2]), row[3])


def _resume(query: bytes, cursor: str, parts: int) -> tuple[bytes, ...] | None:
    """The key a continuation token resumes after (its parts encoded as columns), or None."""
    if not cursor:
        return None
    position = tokens.decode_cursor(query, cursor)
    try:
        found = keys.split(position)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed continuation token: bad position") from exc
    if len(found) != parts or keys.components(found) != position:
        raise InvalidToken("malformed continuation token: bad position")
    return tuple(enc(part) for part in found)
