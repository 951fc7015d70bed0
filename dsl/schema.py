"""The compiled schema: what the engine evaluates.

Names are resolved, every reference has been checked, and the lookup tables the engine needs are
built once per schema version:

* per entity, `EntityDef.references` says whether a name is a relation, permission or attribute;
* per relation, the subject types it admits (`RelationDef.allows`);
* `Schema.subject_entrances`: for a subject ``type`` or ``type#relation``, the relations a tuple
  may store it in (the first step of a reverse lookup);
* `Schema.dependents`: the reverse of the permission graph: for each ``(entity, name)``, the
  relations and permissions whose value it feeds, and how (the rest of a reverse lookup). Built
  on first use (a `Deferred` mapping): it holds an edge per walk and type the walked relation
  admits, up to a million for a large schema, and the engine's lookups keep their own graph.

Rewrite trees keep Permify's shape: each ``or``/``and``/``not`` is one binary `Rewrite`, so
expand answers match Permify's node for node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class AttributeType(Enum):
    """Attribute and rule-parameter types; values are Permify's enum numbers."""

    BOOLEAN = 1
    BOOLEAN_ARRAY = 2
    STRING = 3
    STRING_ARRAY = 4
    INTEGER = 5
    INTEGER_ARRAY = 6
    DOUBLE = 7
    DOUBLE_ARRAY = 8

    @property
    def is_array(self) -> bool:
        return self.value % 2 == 0

    @property
    def element(self) -> AttributeType:
        """The scalar type of an array type (itself for a scalar)."""
        return AttributeType(self.value - 1) if self.is_array else self

    @property
    def keyword(self) -> str:
        """The type as written in a schema: ``integer``, ``string[]``."""
        base = self.element.name.lower()
        return f"{base}[]" if self.is_array else base

    @classmethod
    def from_keyword(cls, name: str, is_array: bool) -> AttributeType | None:
        try:
            base = cls[name.upper()] if name.islower() else None
        except KeyError:
            return None
        if base is None or base.is_array:
            return None
        return AttributeType(base.value + 1) if is_array else base


class ReferenceKind(Enum):
    RELATION = "relation"
    PERMISSION = "permission"
    ATTRIBUTE = "attribute"


class Operation(Enum):
    UNION = "or"
    INTERSECTION = "and"
    EXCLUSION = "not"


@dataclass(frozen=True, slots=True)
class RelationRef:
    """A subject type a relation admits: ``user`` (relation ``""``) or ``group#member``."""

    type: str
    relation: str = ""

    def __str__(self) -> str:
        return f"{self.type}#{self.relation}" if self.relation else self.type


# --- rewrite trees -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComputedUserSet:
    """A relation or permission of the same entity: ``owner``."""

    relation: str


@dataclass(frozen=True, slots=True)
class TupleToUserSet:
    """``tupleset.computed``: for every subject of relation ``tupleset``, ``computed`` there."""

    tupleset: str
    computed: str


@dataclass(frozen=True, slots=True)
class ComputedAttribute:
    """A boolean attribute of the same entity used as an operand."""

    name: str


@dataclass(frozen=True, slots=True)
class RuleCall:
    """A rule evaluated over attributes of the same entity; ``arguments`` are attribute names,
    each bound to the rule parameter of the same name."""

    rule: str
    arguments: tuple[str, ...]


Leaf = ComputedUserSet | TupleToUserSet | ComputedAttribute | RuleCall


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A set operation over its children (two, as written; Permify's shape)."""

    operation: Operation
    children: tuple[Node, ...]


Node = Leaf | Rewrite


# --- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelationDef:
    name: str
    subject_types: tuple[RelationRef, ...]

    def allows(self, subject_type: str, subject_relation: str = "") -> bool:
        return RelationRef(subject_type, subject_relation) in self.subject_types


@dataclass(frozen=True, slots=True)
class PermissionDef:
    name: str
    child: Node


@dataclass(frozen=True, slots=True)
class AttributeDef:
    name: str
    type: AttributeType


@dataclass(frozen=True, slots=True)
class EntityDef:
    name: str
    relations: Mapping[str, RelationDef]
    permissions: Mapping[str, PermissionDef]
    attributes: Mapping[str, AttributeDef]
    references: Mapping[str, ReferenceKind]


@dataclass(frozen=True, slots=True)
class RuleDef:
    """A rule: typed parameters and its CEL expression (indentation normalised)."""

    name: str
    parameters: Mapping[str, AttributeType]
    expression: str


class EdgeKind(Enum):
    """How a node feeds another one in `Schema.dependents`."""

    #: ``permission p = ... source ...`` on the same entity.
    COMPUTED = "computed"
    #: ``relation r @T#source``: subjects of ``T#source`` are subjects of ``r``.
    SUBJECT_RELATION = "subject_relation"
    #: ``permission p = ... tupleset.source ...`` where ``tupleset`` admits the source's entity.
    TUPLE_TO_USERSET = "tuple_to_userset"


@dataclass(frozen=True, slots=True)
class Edge:
    """``(source entity, source name)`` feeds ``target_entity#target``; for a tuple-to-userset
    edge, through the ``tupleset`` relation of the target entity."""

    kind: EdgeKind
    target_entity: str
    target: str
    tupleset: str = ""


class Deferred(Mapping[K, V]):
    """A read-only mapping that ``build`` makes on first use (once, whichever thread asks)."""

    __slots__ = ("_build", "_built", "_lock")

    def __init__(self, build: Callable[[], Mapping[K, V]]) -> None:
        self._build: Callable[[], Mapping[K, V]] | None = build
        self._built: Mapping[K, V] | None = None
        self._lock = threading.Lock()

    def _mapping(self) -> Mapping[K, V]:
        built = self._built
        if built is None:
            with self._lock:
                if self._built is None:
                    assert self._build is not None
                    self._built = self._build()
                    self._build = None  # what it captured can go
                built = self._built
        return built

    def __getitem__(self, key: K) -> V:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


@dataclass(frozen=True, slots=True)
class Schema:
    entities: Mapping[str, EntityDef]
    rules: Mapping[str, RuleDef]
    subject_entrances: Mapping[RelationRef, tuple[tuple[str, str], ...]] = field(compare=False)
    dependents: Mapping[tuple[str, str], tuple[Edge, ...]] = field(compare=False)

    def entity(self, name: str) -> EntityDef | None:
        return self.entities.get(name)
