"""What one request reads: its snapshot reader, the reads cache, and its context.

`Reads` is the base of `engine.check.Evaluation`. Reads are cached by `engine.keys` keys in a
dict the engine shares between the requests at one (tenant, revision): data at a revision never
changes, so a hit is never stale. A request with contextual tuples gets a private reads cache,
and its contextual tuples and attributes are merged into what the reader answers.

Concurrency: a shared reads dict is filled by several threads; single get/set operations are
atomic under the GIL, and two threads racing to fill one key store the same fact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from engine.keys import attribute_key, read_key, whole_entity_marker
from engine.types import Context
from storage.base import Attribute, AttributeKey, ListSubjects, SnapshotReader, Subject, SubjectSet

#: An entity with at most this many tuples is read in one scan (see `Reads.relation`).
PREFETCH_LIMIT = 64

_NO_SUBJECTS = ListSubjects([])

#: In the reads cache under a relation's key: read once already, not kept (`Reads.read`). Every
#: reader of the cache takes it for a miss.
READ_ONCE: Any = object()


class _Merged:
    """Stored subjects plus a request's contextual ones (a `SubjectSet`)."""

    __slots__ = ("_extra", "_stored", "_tokens", "usersets")

    keep = False  # a request's own: never in the shared cache

    def __init__(self, stored: SubjectSet, extra: list[Subject], tokens: set[object]) -> None:
        self._stored = stored
        present = set(stored)
        self._extra = [s for s in extra if s not in present]
        self._tokens = tokens
        self.usersets = [*stored.usersets, *(s for s in self._extra if s[2])]

    def has(self, token: object) -> bool:
        return token in self._tokens or self._stored.has(token)

    def objects(self) -> tuple[tuple[str, str], ...]:
        return tuple(dict.fromkeys([(s[0], s[1]) for s in self]))

    def __len__(self) -> int:
        return len(self._stored) + len(self._extra)

    def __iter__(self) -> Iterator[Subject]:
        yield from self._stored
        yield from self._extra


class Reads:
    """The reads of one request: reader, reads cache, contextual tuples and attributes."""

    __slots__ = (
        "_context_attributes",
        "_context_tuples",
        "context_attributes",
        "context_tuples",
        "data",
        "plain_reads",
        "prefetch",
        "reader",
        "reads",
        "singly",
        "tokens",
    )

    def __init__(
        self,
        reader: SnapshotReader,
        context: Context,
        reads: dict[Any, Any],
        prefetch: Mapping[str, tuple[tuple[str, str], ...]],
    ) -> None:
        self.reader = reader
        self.reads = reads
        #: entity type -> (relation, read-key prefix) pairs, for types whose relations are
        #: read in one scan.
        self.prefetch = prefetch
        #: Read one relation at a time: the reader answers from memory (see `read`).
        self.singly = reader.reads_in_memory
        self.tokens: dict[Subject, object] = {}
        #: The shared read cache, or None when contextual tuples must be merged into reads.
        self.plain_reads: dict[Any, Any] | None = None if context.tuples else reads
        self.data: Mapping[str, Any] = context.data
        self.context_tuples = context.tuples
        self.context_attributes = context.attributes
        self._context_tuples: dict[tuple[str, str, str], list[Subject]] = {}
        self._context_attributes: dict[AttributeKey, Attribute] = {}
        if context.tuples:
            for t in context.tuples:
                key = (t.entity_type, t.entity_id, t.relation)
                self._context_tuples.setdefault(key, []).append(t.subject)
        if context.attributes:
            self._context_attributes = {a.key: a for a in context.attributes}

    def token(self, s: Subject) -> object:
        """The reader's membership token for ``s`` (memoised for the request)."""
        token = self.tokens.get(s)
        if token is None:
            token = self.tokens[s] = self.reader.subject_token(s)
        return token

    def objects(
        self, entity_type: str, eid: str, relation: str, key: str
    ) -> tuple[tuple[str, str], ...]:
        """The relation's `SubjectSet.objects`, cached beside it under ``key`` (the relation's
        `engine.keys.objects_prefix` and the id)."""
        if self._context_tuples:
            return self.relation(entity_type, eid, relation).objects()
        # Kept whatever the set's `SubjectSet.keep`: a tuple of tuples of str, which the
        # garbage collector stops tracking once it has seen it.
        found: tuple[tuple[str, str], ...] | None = self.reads.get(key)
        if found is None:
            found = self.reads[key] = self.relation(entity_type, eid, relation).objects()
        return found

    def read(self, entity_type: str, eid: str, relation: str, key: str) -> SubjectSet:
        """`relation` for a request without contextual tuples, on a miss of the shared reads
        cache under ``key`` (the relation's `read_key`, which the caller built)."""
        if self.singly:
            return self._read_single(entity_type, eid, relation, key)
        return self._read_relation(entity_type, eid, relation, key)

    def _read_single(self, entity_type: str, eid: str, relation: str, key: str) -> SubjectSet:
        """Read one relation. A set the reader answers as cheaply again (`SubjectSet.keep`
        False: from memory) is kept from its second read on: most relations a first pass reads
        (each check's own entity) are read once, and a set kept per read is an object more for
        the garbage collector, whose full collections then land in the first pass; the ones read
        again (groups, folders) are kept."""
        reads = self.reads
        data = self.reader.subject_set(entity_type, eid, relation)
        if data.keep or reads.get(key) is READ_ONCE:
            reads[key] = data
        else:
            reads[key] = READ_ONCE
        return data

    def relation(self, entity_type: str, eid: str, relation: str) -> SubjectSet:
        """The subjects of ``entity_type:eid#relation``, contextual ones included."""
        key = read_key(entity_type, relation, eid)
        data: SubjectSet | None = self.reads.get(key)
        if data is None or data is READ_ONCE:
            data = self._read_relation(entity_type, eid, relation, key)
        if self._context_tuples:
            extra = self._context_tuples.get((entity_type, eid, relation))
            if extra:
                data = _Merged(data, extra, {self.reader.subject_token(s) for s in extra})
        return data

    def _read_relation(self, entity_type: str, eid: str, relation: str, key: str) -> SubjectSet:
        """Read one relation and cache it under ``key`` (its `read_key`; see `_read_single`);
        for an entity type with several relations, read all of the entity's tuples in one scan
        when there are few (a permission usually needs several), unless the reader reads from
        memory."""
        reads = self.reads
        if self.singly:
            return self._read_single(entity_type, eid, relation, key)
        names = self.prefetch.get(entity_type)
        big = whole_entity_marker(entity_type, eid)
        if names is not None and big not in reads:
            found = self.reader.relations(entity_type, eid, limit=PREFETCH_LIMIT)
            if found is not None:
                # Relations the schema no longer has are never asked for.
                for name, prefix in names:
                    reads[prefix + eid] = found.get(name, _NO_SUBJECTS)
                data: SubjectSet | None = reads.get(key)
                if data is None or data is READ_ONCE:
                    data = reads[key] = _NO_SUBJECTS
                return data
            reads[big] = True
        return self._read_single(entity_type, eid, relation, key)

    def stored_attribute(self, entity_type: str, eid: str, name: str) -> Attribute | None:
        """The stored value of attribute ``name`` of ``entity_type:eid`` (None: unset)."""
        key = attribute_key(entity_type, eid, name)
        reads = self.reads
        if key in reads:
            found: Attribute | None = reads[key]
            return found
        found = self.reader.attribute(entity_type, eid, name)
        reads[key] = found
        return found

    def context_attribute(self, entity_type: str, eid: str, name: str) -> Attribute | None:
        """The request's contextual value of attribute ``name`` (None: none given)."""
        if not self._context_attributes:
            return None
        return self._context_attributes.get(AttributeKey(entity_type, eid, name))
