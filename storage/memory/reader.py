"""The reference store's ``SnapshotReader``: one tenant of a ``MemoryStore`` at one revision.

Every read filters the versions visible at the reader's revision and sorts them, on every call:
a reference should be obviously right rather than fast. Reads take no lock (see ``store.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from storage import tokens
from storage.base import (
    Attribute,
    AttributeFilter,
    AttributeKey,
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
from storage.memory.pages import cut_page, decode_strings, encode_strings
from storage.memory.versions import TenantData, visible
from storage.snapshot import PinnedReader

if TYPE_CHECKING:
    from storage.memory.store import MemoryStore


class MemoryReader(PinnedReader):
    """A ``SnapshotReader`` over one tenant of a ``MemoryStore`` at one revision.

    A reader over a tenant that has since been deleted sees nothing.
    """

    __slots__ = ("_data", "_store")

    def __init__(
        self, store: MemoryStore, tenant: TenantId, data: TenantData, revision: Revision
    ) -> None:
        super().__init__(store._store_id, tenant, revision)
        self._store = store
        self._data = data

    def _current(self) -> TenantData:
        """The tenant's data, or an empty stand-in once the tenant is deleted (or replaced)."""
        self._store._check_open()
        if self._store._tenants.get(self._tenant) is self._data:
            return self._data
        return TenantData(self._data.info)

    def _tuples(self) -> list[Tuple]:
        """Every tuple visible at this revision, sorted."""
        found = [
            t
            for t, versions in list(self._current().tuples.items())
            if visible(versions, self._revision) is not None
        ]
        return sorted(found)

    def _attributes(self) -> list[Attribute]:
        """Every attribute visible at this revision, sorted by key."""
        found = [
            a
            for versions in list(self._current().attributes.values())
            if (a := visible(versions, self._revision)) is not None
        ]
        return sorted(found, key=lambda a: a.key)

    def tuple_kinds(self) -> frozenset[TupleKind]:
        return self._current().kinds

    def subject_token(self, subject: Subject) -> object:
        return subject

    def subject_set(self, entity_type: str, entity_id: str, relation: str) -> SubjectSet:
        return ListSubjects(self.subjects(entity_type, entity_id, relation))

    def relations(
        self, entity_type: str, entity_id: str, *, limit: int
    ) -> dict[str, SubjectSet] | None:
        found = sorted(
            t for t in self._tuples() if (t.entity_type, t.entity_id) == (entity_type, entity_id)
        )
        if len(found) > limit:
            return None
        grouped: dict[str, list[Subject]] = {}
        for t in found:
            grouped.setdefault(t.relation, []).append(t.subject)
        return {name: ListSubjects(subjects) for name, subjects in grouped.items()}

    def subjects(self, entity_type: str, entity_id: str, relation: str) -> list[Subject]:
        return [
            t.subject
            for t in self._tuples()
            if (t.entity_type, t.entity_id, t.relation) == (entity_type, entity_id, relation)
        ]

    def has_tuple(self, t: Tuple) -> bool:
        return visible(self._current().tuples.get(t, ()), self._revision) is not None

    def entity_ids(self, entity_type: str, relation: str, subject: Subject) -> Iterator[str]:
        ids = {
            t.entity_id
            for t in self._tuples()
            if t.entity_type == entity_type and t.relation == relation and t.subject == subject
        }
        return iter(sorted(ids))

    def attribute(self, entity_type: str, entity_id: str, name: str) -> Attribute | None:
        versions = self._current().attributes.get(AttributeKey(entity_type, entity_id, name), ())
        return visible(versions, self._revision)

    def attributes(self, entity_type: str, entity_id: str) -> list[Attribute]:
        return [
            a
            for a in self._attributes()
            if a.entity_type == entity_type and a.entity_id == entity_id
        ]

    def read_tuples(self, flt: TupleFilter, *, page_size: int, cursor: str = "") -> Page[Tuple]:
        check_page_size(page_size)
        query = tokens.fingerprint("tuples", self._tenant, flt)
        found = [t for t in self._tuples() if flt.matches(t)]
        if cursor:
            last = Tuple(*decode_strings(tokens.decode_cursor(query, cursor), 6, "tuple"))
            found = [t for t in found if t > last]
        return cut_page(found[: page_size + 1], page_size, query, encode_strings)

    def iter_tuples(self, flt: TupleFilter) -> Iterator[Tuple]:
        return iter([t for t in self._tuples() if flt.matches(t)])

    def read_attributes(
        self, flt: AttributeFilter, *, page_size: int, cursor: str = ""
    ) -> Page[Attribute]:
        check_page_size(page_size)
        query = tokens.fingerprint("attributes", self._tenant, flt)
        found = [a for a in self._attributes() if flt.matches(a)]
        if cursor:
            position = tokens.decode_cursor(query, cursor)
            last = AttributeKey(*decode_strings(position, 3, "attribute"))
            found = [a for a in found if a.key > last]
        return cut_page(found[: page_size + 1], page_size, query, lambda a: encode_strings(a.key))

    def iter_attributes(self, flt: AttributeFilter) -> Iterator[Attribute]:
        return iter([a for a in self._attributes() if flt.matches(a)])

    def record(self, keyspace: str, key: RecordKey) -> bytes | None:
        return self._current().records.get((keyspace, tuple(key)))

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
        prefix = tuple(prefix)
        found = sorted(
            (
                Record(space, key, value)
                for (space, key), value in list(self._current().records.items())
                if space == keyspace and key[: len(prefix)] == prefix
            ),
            key=lambda r: r.key,
            reverse=reverse,
        )
        if after is not None:
            bound = tuple(after)
            found = [r for r in found if (r.key < bound if reverse else r.key > bound)]
        return iter(found if limit is None else found[:limit])
