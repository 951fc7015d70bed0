"""What every store offers: value types and the ``Store`` / ``SnapshotReader`` protocols.

Reads go through a ``SnapshotReader`` bound to one tenant and one revision; tenants, schemas and
writes go through the ``Store``. Two backends implement them: ``leveldb`` (the product) and
``memory`` (the reference the conformance suite compares against). A PostgreSQL backend would
implement the same two protocols.

Semantics every backend keeps:

* **Revisions.** Every ``write`` is atomic and lands at a new revision; it returns an opaque snap
  token naming that revision. A reader at token T sees exactly the state after revision T: a
  tuple or attribute version is visible when it was created at or before T and not deleted at or
  before T. Reads without a token see the latest revision.
* **Idempotence.** Writing a tuple that is already present changes nothing; writing an attribute
  replaces its value (upsert); deleting something absent is not an error.
* **Order inside one write.** Deletes (explicit and by filter, both judged against the state
  before the write) apply first, then writes; so a write that deletes and writes the same tuple
  leaves it present, and a write and delete of the same attribute leaves the written value.
* **Claims** are store-wide keys ``(namespace, key)`` each held by one tenant, so that "which
  tenant holds this key?" is one read, however many tenants there are. A write puts and releases
  the writing tenant's claims in its atomic batch; a claim of a key another tenant holds takes it
  over; a release only removes the writing tenant's own claim; deleting a tenant releases every
  claim it holds. Like records, claims are not versioned.
* **Records** are keyed rows that a layer above stores beside a tenant's tuples, in named
  keyspaces, written in the same atomic batch as the tuples of one write, but they are not
  versioned: every reader sees their latest state. Inside ``Store.transact`` the latest state
  is also the reader's revision, so a build function can read, decide and write atomically.

Value types that are built by the million on the read path (``Subject``, ``Tuple``) are
``NamedTuple``s: construction is about half the cost of a frozen slotted dataclass, and they are
just as immutable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Generic, NamedTuple, NewType, Protocol, TypeVar

from dsl.schema import AttributeType
from storage.errors import InvalidFilter, InvalidTenantId, TooManyChanges
from storage.identifiers import TENANT_ID

TenantId = NewType("TenantId", str)
Revision = NewType("Revision", int)
SnapToken = NewType("SnapToken", str)

DEFAULT_TENANT = "t1"
TENANT_ID_PATTERN = re.compile(TENANT_ID)
DEFAULT_MAX_WRITE_ITEMS = 1000
DEFAULT_GC_WINDOW_SECONDS = 24 * 60 * 60.0

_TUPLE_PATTERN = re.compile(
    r"(?P<et>[^:#@]+):(?P<eid>[^:#@]+)#(?P<rel>[^:#@]+)"
    r"@(?P<st>[^:#@]+):(?P<sid>[^:#@]+)(?:#(?P<srel>[^:#@]+))?"
)

T = TypeVar("T")


def check_tenant_id(tenant: str) -> TenantId:
    """Return ``tenant`` as a TenantId, or raise InvalidTenantId naming the allowed pattern."""
    if not TENANT_ID_PATTERN.fullmatch(tenant):
        raise InvalidTenantId(
            f"invalid tenant id {tenant!r}: expected 1 to 128 characters from "
            "letters, digits and _ - @ . : +"
        )
    return TenantId(tenant)


def check_page_size(page_size: int) -> None:
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")


class Subject(NamedTuple):
    """A tuple's subject: ``type:id`` or the userset ``type:id#relation``."""

    type: str
    id: str
    relation: str = ""

    def __str__(self) -> str:
        base = f"{self.type}:{self.id}"
        return f"{base}#{self.relation}" if self.relation else base


#: (entity type, relation, subject type, subject relation): the shape of a tuple, without ids.
TupleKind = tuple[str, str, str, str]


class Tuple(NamedTuple):
    """``entity_type:entity_id#relation@subject_type:subject_id[#subject_relation]``.

    ``subject_relation`` is ``""`` for a plain subject; Permify's ``...`` means the same and is
    normalised to ``""`` by ``parse``.
    """

    entity_type: str
    entity_id: str
    relation: str
    subject_type: str
    subject_id: str
    subject_relation: str = ""

    @property
    def subject(self) -> Subject:
        return Subject(self.subject_type, self.subject_id, self.subject_relation)

    def __str__(self) -> str:
        return f"{self.entity_type}:{self.entity_id}#{self.relation}@{self.subject}"

    @classmethod
    def parse(cls, text: str) -> Tuple:
        """Parse Permify's string form; raise ValueError saying what the form is."""
        match = _TUPLE_PATTERN.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"invalid tuple {text!r}: expected "
                "entity_type:entity_id#relation@subject_type:subject_id[#subject_relation]"
            )
        srel = match["srel"] or ""
        return cls(
            match["et"],
            match["eid"],
            match["rel"],
            match["st"],
            match["sid"],
            "" if srel == "..." else srel,
        )


Scalar = bool | int | float | str
AttributeValue = Scalar | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...] | tuple[str, ...]

_SCALAR_CHECKS: dict[AttributeType, Callable[[object], bool]] = {
    AttributeType.BOOLEAN: lambda v: isinstance(v, bool),
    AttributeType.STRING: lambda v: isinstance(v, str),
    AttributeType.INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
    AttributeType.DOUBLE: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def normalise_value(kind: AttributeType, value: object) -> AttributeValue:
    """Check ``value`` against ``kind`` and return its canonical form.

    Arrays become tuples and doubles become floats, so equal values compare equal whatever
    backend they come from. Raises ValueError on a mismatch.
    """
    check = _SCALAR_CHECKS[kind.element]
    if kind.is_array:
        if not isinstance(value, list | tuple) or not all(check(v) for v in value):
            raise ValueError(f"expected a list of {kind.element.keyword} for {kind.keyword}")
        if kind is AttributeType.DOUBLE_ARRAY:
            return tuple(float(v) for v in value)
        return tuple(value)
    if not check(value):
        raise ValueError(f"expected a {kind.keyword} value, got {type(value).__name__}")
    if kind is AttributeType.DOUBLE:
        return float(value)  # type: ignore[arg-type]
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Attribute:
    """``entity_type:entity_id$name|type:value``; ``value`` is checked against ``type``."""

    entity_type: str
    entity_id: str
    name: str
    type: AttributeType
    value: AttributeValue

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", normalise_value(self.type, self.value))

    @property
    def key(self) -> AttributeKey:
        return AttributeKey(self.entity_type, self.entity_id, self.name)

    def same_value(self, other: Attribute) -> bool:
        """Equal type and value, where NaN equals NaN (so rewriting a NaN is a no-op)."""
        if self.type is not other.type:
            return False
        if isinstance(self.value, float) and isinstance(other.value, float):
            return self.value == other.value or (math.isnan(self.value) and math.isnan(other.value))
        return self.value == other.value


class AttributeKey(NamedTuple):
    """Names one attribute of one entity (what an attribute delete takes)."""

    entity_type: str
    entity_id: str
    name: str


@dataclass(frozen=True, slots=True)
class TupleFilter:
    """Permify's ``TupleFilter``: every field that is set must match; unset fields match all.

    ``subject_relation`` is ``None`` for "any"; ``""`` asks for plain subjects only.
    """

    entity_type: str = ""
    entity_ids: tuple[str, ...] = ()
    relation: str = ""
    subject_type: str = ""
    subject_ids: tuple[str, ...] = ()
    subject_relation: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_ids", tuple(sorted(set(self.entity_ids))))
        object.__setattr__(self, "subject_ids", tuple(sorted(set(self.subject_ids))))

    @property
    def is_empty(self) -> bool:
        return self == TupleFilter()

    def matches(self, t: Tuple) -> bool:
        return (
            (not self.entity_type or t.entity_type == self.entity_type)
            and (not self.entity_ids or t.entity_id in self.entity_ids)
            and (not self.relation or t.relation == self.relation)
            and (not self.subject_type or t.subject_type == self.subject_type)
            and (not self.subject_ids or t.subject_id in self.subject_ids)
            and (self.subject_relation is None or t.subject_relation == self.subject_relation)
        )


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """Permify's ``AttributeFilter``: entity type and ids, and attribute names; unset = all."""

    entity_type: str = ""
    entity_ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "entity_ids", tuple(sorted(set(self.entity_ids))))
        object.__setattr__(self, "names", tuple(sorted(set(self.names))))

    @property
    def is_empty(self) -> bool:
        return self == AttributeFilter()

    def matches(self, a: Attribute) -> bool:
        return (
            (not self.entity_type or a.entity_type == self.entity_type)
            and (not self.entity_ids or a.entity_id in self.entity_ids)
            and (not self.names or a.name in self.names)
        )


RecordKey = tuple[str, ...]


class Record(NamedTuple):
    """One keyed row stored beside the tuples: ``key`` (components, ordered) in ``keyspace``."""

    keyspace: str
    key: RecordKey
    value: bytes


@dataclass(slots=True)
class Changes:
    """Everything one atomic write does; build it up, then hand it to ``Store.write``.

    Only tuple and attribute items count towards the store's per-write maximum; filters and
    records do not. ``unbounded`` lifts that maximum for writes the layers above build
    themselves (one logical change and the tuples it implies), never for client-sized ones.
    """

    write_tuples: list[Tuple] = field(default_factory=list)
    delete_tuples: list[Tuple] = field(default_factory=list)
    write_attributes: list[Attribute] = field(default_factory=list)
    delete_attributes: list[AttributeKey] = field(default_factory=list)
    delete_tuple_filters: list[TupleFilter] = field(default_factory=list)
    delete_attribute_filters: list[AttributeFilter] = field(default_factory=list)
    put_records: list[Record] = field(default_factory=list)
    delete_records: list[tuple[str, RecordKey]] = field(default_factory=list)
    #: Store-wide keys (namespace, key) the writing tenant claims, and releases.
    put_claims: list[tuple[str, RecordKey]] = field(default_factory=list)
    delete_claims: list[tuple[str, RecordKey]] = field(default_factory=list)
    unbounded: bool = False

    @property
    def size(self) -> int:
        return (
            len(self.write_tuples)
            + len(self.delete_tuples)
            + len(self.write_attributes)
            + len(self.delete_attributes)
        )

    def check(self, max_items: int) -> None:
        """Refuse what every store refuses before writing anything: too many items (
        TooManyChanges), or an empty delete filter, which would delete a whole tenant's tuples
        or attributes (InvalidFilter)."""
        if self.size > max_items and not self.unbounded:
            raise TooManyChanges(self.size, max_items)
        if any(f.is_empty for f in self.delete_tuple_filters):
            raise InvalidFilter(
                "a tuple delete filter must set at least one field; "
                "an empty filter would delete every tuple of the tenant"
            )
        if any(f.is_empty for f in self.delete_attribute_filters):
            raise InvalidFilter(
                "an attribute delete filter must set at least one field; "
                "an empty filter would delete every attribute of the tenant"
            )


class Operation(Enum):
    CREATE = 1
    DELETE = 2


class Change(NamedTuple):
    """One entry of the change log: a tuple or attribute created or deleted."""

    operation: Operation
    item: Tuple | Attribute


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """Every change one write made, in the order the write applied them."""

    revision: Revision
    token: SnapToken
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paginated read; ``cursor`` is ``""`` when there is nothing more."""

    items: list[T]
    cursor: str


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: TenantId
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One written schema: ``version`` ids sort in write order within a tenant."""

    version: str
    created_at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class GCStats:
    """What one garbage-collection pass did."""

    horizon: Revision
    removed: int


class SubjectSet(Protocol):
    """The subjects of one relation of one entity, shaped for the engine's membership tests.

    A backend keeps them in whatever form is cheapest to build from its reads (LevelDB: the
    raw key bytes, decoded only when iterated). ``has`` takes a token from the same reader's
    `SnapshotReader.subject_token`, computed once per request subject.
    """

    def has(self, token: object) -> bool:
        """Whether the subject ``token`` stands for is stored here exactly (type, id, relation)."""
        ...

    @property
    def usersets(self) -> Sequence[tuple[str, str, str]]:
        """The subjects that have a relation (``group:1#member``), in order: `Subject` or plain
        (type, id, relation) tuples."""
        ...

    def objects(self) -> tuple[tuple[str, str], ...]:
        """The distinct (type, id) of the subjects, in order: what a tuple-to-userset hop
        follows (the stored subject relation plays no part there)."""
        ...

    @property
    def keep(self) -> bool:
        """Whether the engine's read cache should keep this set from its first read. False
        when the reader answers the same read again as cheaply (LevelDB, from its in-memory
        copy): the engine then keeps it only once it is read again, since a set kept per read
        is one more object for the garbage collector to walk."""
        ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Subject]:
        """Every subject, ordered by (type, id, relation)."""
        ...


class ListSubjects:
    """A `SubjectSet` over decoded subjects (the memory store's, and merged ones)."""

    __slots__ = ("_exact", "_subjects", "usersets")

    keep = True

    def __init__(self, subjects: list[Subject]) -> None:
        self._subjects = subjects
        self._exact: frozenset[Subject] | list[Subject] = (
            subjects if len(subjects) < 9 else frozenset(subjects)
        )
        self.usersets: Sequence[Subject] = [s for s in subjects if s[2]]

    def has(self, token: object) -> bool:
        return token in self._exact

    def objects(self) -> tuple[tuple[str, str], ...]:
        return tuple(dict.fromkeys([(s[0], s[1]) for s in self._subjects]))

    def __len__(self) -> int:
        return len(self._subjects)

    def __iter__(self) -> Iterator[Subject]:
        return iter(self._subjects)


class SnapshotReader(Protocol):
    """Reads of one tenant at one revision; every call sees the same state.

    Methods that return iterators may be consumed lazily; the state they yield is still the
    reader's revision.
    """

    @property
    def tenant(self) -> TenantId: ...

    @property
    def revision(self) -> Revision: ...

    @property
    def token(self) -> SnapToken: ...

    @property
    def reads_in_memory(self) -> bool:
        """Whether `subject_set` answers from memory (for all but a few entities), as cheaply
        as one relation of `relations` would: the engine then reads the relations a check asks
        for one at a time, rather than every relation of an entity at once."""
        ...

    @property
    def schema_head(self) -> str | None:
        """The tenant's newest schema version as the store read it while opening this reader,
        when it did so on the way (a database store reads it with the revision, in one round
        trip); None when ``Store.schema_head`` is the way to ask."""
        ...

    def subject_token(self, subject: Subject) -> object:
        """What `SubjectSet.has` takes for ``subject`` (hashable; compute once, test often)."""
        ...

    def subject_set(self, entity_type: str, entity_id: str, relation: str) -> SubjectSet:
        """``subjects`` as a `SubjectSet`: the engine's read of one relation."""
        ...

    def relations(
        self, entity_type: str, entity_id: str, *, limit: int
    ) -> dict[str, SubjectSet] | None:
        """Every tuple of one entity as relation -> its `SubjectSet`, or None when the entity
        has more than ``limit`` tuples: one read for the engine when a permission needs several
        relations of one entity."""
        ...

    def tuple_kinds(self) -> frozenset[TupleKind]:
        """(entity type, relation, subject type, subject relation) of every tuple the tenant
        has ever stored: a superset of the kinds visible at this revision (kinds are never
        forgotten), so a lookup can follow tuples the current schema does not declare."""
        ...

    def subjects(self, entity_type: str, entity_id: str, relation: str) -> list[Subject]:
        """Every subject of ``entity_type:entity_id#relation``, ordered by (type, id, relation)."""
        ...

    def has_tuple(self, t: Tuple) -> bool: ...

    def entity_ids(self, entity_type: str, relation: str, subject: Subject) -> Iterator[str]:
        """Reverse read: ids of ``entity_type`` with ``relation`` to exactly ``subject``, sorted."""
        ...

    def attribute(self, entity_type: str, entity_id: str, name: str) -> Attribute | None: ...

    def attributes(self, entity_type: str, entity_id: str) -> list[Attribute]:
        """Every attribute of one entity, ordered by name."""
        ...

    def read_tuples(self, flt: TupleFilter, *, page_size: int, cursor: str = "") -> Page[Tuple]:
        """One page of tuples matching ``flt``; pass the returned cursor back for the next.

        The order is the backend's (LevelDB follows the index the filter uses), fixed for a
        given filter, so walking every page returns each match exactly once."""
        ...

    def iter_tuples(self, flt: TupleFilter) -> Iterator[Tuple]: ...

    def read_attributes(
        self, flt: AttributeFilter, *, page_size: int, cursor: str = ""
    ) -> Page[Attribute]: ...

    def iter_attributes(self, flt: AttributeFilter) -> Iterator[Attribute]: ...

    def record(self, keyspace: str, key: RecordKey) -> bytes | None:
        """The latest value of one record (records are not versioned)."""
        ...

    def records(
        self,
        keyspace: str,
        prefix: RecordKey = (),
        *,
        after: RecordKey | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[Record]:
        """Records whose key starts with ``prefix``, in key order (or reversed).

        ``after`` resumes past that key (exclusive; "before" it when ``reverse``).
        """
        ...


class Store(Protocol):
    """A multi-tenant store of tuples, attributes, schemas and records at revisions."""

    @property
    def max_write_items(self) -> int: ...

    def create_tenant(self, tenant: str, name: str = "") -> TenantInfo: ...

    def get_tenant(self, tenant: str) -> TenantInfo: ...

    def list_tenants(self, *, page_size: int, cursor: str = "") -> Page[TenantInfo]:
        """Tenants ordered by id."""
        ...

    def delete_tenant(self, tenant: str) -> TenantInfo:
        """Remove the tenant and every key it owns; returns what was deleted."""
        ...

    def write_schema(self, tenant: str, text: str, *, parent: str | None = None) -> SchemaVersion:
        """A new head version holding ``text``. With ``parent`` ("" for none), only while the
        head is still that version, else ``SchemaHeadMoved`` naming the head it found: a
        read-modify-write of the schema (a partial write) loses no concurrent edit, whichever
        process or replica makes it."""
        ...

    def read_schema(self, tenant: str, version: str = "") -> SchemaVersion:
        """The named version, or the newest (head) when ``version`` is empty."""
        ...

    def schema_head(self, tenant: str) -> str:
        """The newest schema version id, or "" when none was written; cheap (no text read)."""
        ...

    def list_schemas(self, tenant: str, *, page_size: int, cursor: str = "") -> Page[SchemaVersion]:
        """Schema versions, newest first."""
        ...

    def write(self, tenant: str, changes: Changes) -> SnapToken: ...

    def transact(self, tenant: str, build: Callable[[SnapshotReader], Changes]) -> SnapToken:
        """Call ``build`` with a reader of the latest state while no other write can land, then
        apply the changes it returns in one atomic write. ``build`` may raise (e.g. Conflict) to
        write nothing."""
        ...

    def transact_now(
        self, tenant: str, build: Callable[[SnapshotReader], Changes]
    ) -> SnapToken | None:
        """`transact`, when it can run without waiting: no other write holds the store, and the
        write needs neither a disk flush nor a database round trip. None, having called nothing
        and written nothing, when it would wait: for a caller on an event loop, which then
        hands the write to a thread."""
        ...

    def reader(
        self, tenant: str, token: str = "", *, prefetch: tuple[str, str] | None = None
    ) -> SnapshotReader:
        """A reader at ``token``'s revision, or at the latest one when ``token`` is empty.

        ``prefetch`` names an entity (type, id) the caller reads first (a check's entity): a
        store whose head read is a round trip may read that entity's tuples in the same one.
        A hint only: what the reader answers is the same either way."""
        ...

    def head(self, tenant: str) -> SnapToken:
        """The token of the latest revision."""
        ...

    def changes(self, tenant: str, after: str, *, limit: int) -> list[ChangeSet]:
        """The tenant's writes after ``after``'s revision, oldest first, at most ``limit``.

        An empty ``after`` starts at the oldest write still retained; a token older than the
        garbage-collection horizon raises SnapshotExpired."""
        ...

    def collect_garbage(self, *, now: float | None = None) -> GCStats:
        """Remove versions no reader inside the retention window can see."""
        ...

    def claimant(self, namespace: str, key: RecordKey) -> TenantId | None:
        """The tenant holding the claim ``(namespace, key)``, or None: one read."""
        ...

    @property
    def claims_complete(self) -> bool:
        """False for a store written before claims existed, until ``mark_claims_complete``:
        claims may be missing then, and whoever claims keys should add theirs first."""
        ...

    def mark_claims_complete(self) -> None:
        """Record (durably) that every claim that should exist has been written."""
        ...

    def close(self) -> None: ...
