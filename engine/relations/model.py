"""The relations layer's values: relationship types, relation rows, settings and API tokens.

Each is a frozen dataclass with a compact JSON codec; the codecs are the stored form (records in
the tenant's keyspaces, see ``layout.py``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from storage import identifiers
from storage.base import Tuple

UNBOUNDED = math.inf

#: The syntax of an entity reference ``type:id`` in the relations layer.
ENTITY_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
ENTITY_ID = re.compile(identifiers.ENTITY_ID)


def split_ref(text: str) -> tuple[str, str] | None:
    """``(type, id)`` of ``type:id`` split at the first ``:``, or None when malformed."""
    entity_type, sep, entity_id = text.partition(":")
    if not sep or not ENTITY_TYPE.fullmatch(entity_type) or not ENTITY_ID.fullmatch(entity_id):
        return None
    return entity_type, entity_id


class Cardinality(Enum):
    """Read from source to target: how many targets one source may have (``source_max``) and
    how many sources one target may have (``target_max``)."""

    ONE_TO_ONE = (1, 1)
    ONE_TO_MANY = (UNBOUNDED, 1)
    MANY_TO_ONE = (1, UNBOUNDED)
    MANY_TO_MANY = (UNBOUNDED, UNBOUNDED)

    @property
    def source_max(self) -> float:
        return float(self.value[0])

    @property
    def target_max(self) -> float:
        return float(self.value[1])

    def transposed(self) -> Cardinality:
        return _TRANSPOSED[self]


_TRANSPOSED = {
    Cardinality.ONE_TO_ONE: Cardinality.ONE_TO_ONE,
    Cardinality.ONE_TO_MANY: Cardinality.MANY_TO_ONE,
    Cardinality.MANY_TO_ONE: Cardinality.ONE_TO_MANY,
    Cardinality.MANY_TO_MANY: Cardinality.MANY_TO_MANY,
}

CARDINALITIES = tuple(c.name for c in Cardinality)
KINDS = ("person_to_co", "co_to_co")


def limits(cardinality: str | None) -> Cardinality:
    """The limits of a stored cardinality name; null means MANY_TO_MANY."""
    return Cardinality[cardinality] if cardinality else Cardinality.MANY_TO_MANY


def transpose(cardinality: str | None) -> str | None:
    return None if cardinality is None else Cardinality[cardinality].transposed().name


def micros(seconds: float) -> int:
    """A clock reading (seconds since the epoch) as rows store times: whole microseconds."""
    return int(seconds * 1_000_000)


def iso(micros: int) -> str:
    """``2026-01-15T10:00:00.123456Z`` (always six fraction digits, so strings sort as times)."""
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class RelationType:
    """A registered ``(source_type, role, target_type)`` with its cardinality.

    A bidirectional type has an inverse ``(target_type, inverse_role, source_type)`` with the
    transposed cardinality; a symmetric one (same types, same role) is its own inverse.
    """

    id: str
    kind: str
    role: str
    source_type: str
    target_type: str
    cardinality: str | None = None
    description: str | None = None
    bidirectional: bool = False
    inverse_role: str | None = None
    inverse_id: str | None = None
    is_inverse: bool = False
    created_at: int = 0
    updated_at: int = 0

    @property
    def limits(self) -> Cardinality:
        return limits(self.cardinality)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.role, self.source_type, self.target_type)

    @property
    def symmetric(self) -> bool:
        return self.inverse_id == self.id

    def encode(self) -> bytes:
        return _dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> RelationType:
        return cls(**json.loads(raw))


@dataclass(frozen=True, slots=True)
class Relation:
    """One managed tuple and the metadata row beside it.

    The tuple is ``entity_type:entity_id#relation@subject_type:subject_id``: the entity is the
    relation's source, the subject its target. ``position`` is its place (1..N) in the source's
    list for this role when the role is many-valued, else None. A bidirectional link is two
    rows, each the other's ``pair_id``; the one written second is the mirror.
    """

    id: str
    entity_type: str
    entity_id: str
    relation: str
    subject_type: str
    subject_id: str
    type_id: str
    metadata: dict[str, Any] | None = None
    position: int | None = None
    pair_id: str | None = None
    is_mirror: bool = False
    owned_by: str | None = None
    status: str = "active"
    is_archived: bool = False
    created_at: int = 0
    updated_at: int = 0

    @property
    def tuple(self) -> Tuple:
        return Tuple(
            self.entity_type, self.entity_id, self.relation, self.subject_type, self.subject_id
        )

    @property
    def source(self) -> str:
        return f"{self.entity_type}:{self.entity_id}"

    @property
    def target(self) -> str:
        return f"{self.subject_type}:{self.subject_id}"

    def encode(self) -> bytes:
        return _dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Relation:
        return cls(**json.loads(raw))

    def but(self, **changes: Any) -> Relation:
        return replace(self, **changes)


#: The contact data model's kinds: kind -> the inverse kind its mirror row gets.
DEFAULT_KINDS: dict[str, str] = {
    "partner": "partner",
    "spouse": "spouse",
    "parent": "child",
    "child": "parent",
    "sibling": "sibling",
    "friend": "friend",
    "colleague": "colleague",
    "manager": "report",
    "report": "manager",
    "mentor": "mentee",
    "mentee": "mentor",
    "other": "other",
}


@dataclass(frozen=True, slots=True)
class DataModel:
    """The contact record model served at ``/xapi2/data/relationship``."""

    model: str = "relationship"
    ref_type: str = "contact"
    mirror_hook: str = "pair_relationship"
    kinds: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KINDS))


@dataclass(frozen=True, slots=True)
class Settings:
    """A tenant's relations settings (stored per tenant; these are the defaults)."""

    person_type: str = "user"
    require_schema_relation: bool = True
    read_permission: str = "view"
    write_permission: str = "edit"
    data_model: DataModel | None = field(default_factory=DataModel)

    def encode(self) -> bytes:
        return _dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Settings:
        data = json.loads(raw)
        model = data.pop("data_model", None)
        return cls(**data, data_model=None if model is None else DataModel(**model))


SCOPES = (
    "relationship:list",
    "relationship:read",
    "relationship:create",
    "relationship:update",
    "relationship:delete",
    "relationship:*",
    "relationship_type:list",
    "relationship_type:read",
    "relationship_type:create",
    "relationship_type:update",
    "relationship_type:delete",
    "relationship_type:*",
    "*",
)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A personal access token; only the sha256 of its secret is stored."""

    id: str
    name: str
    hash: str
    scopes: tuple[str, ...]
    subject: str | None = None
    created_at: int = 0
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None

    def encode(self) -> bytes:
        return _dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> ApiToken:
        data = json.loads(raw)
        data["scopes"] = tuple(data["scopes"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the admin key (scope ``*``, no subject) or a token."""

    scopes: frozenset[str]
    subject: str | None = None
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.token_id is None

    def allows(self, scope: str) -> bool:
        family = scope.split(":", 1)[0]
        return "*" in self.scopes or scope in self.scopes or f"{family}:*" in self.scopes

    @property
    def owner(self) -> str | None:
        """``owned_by`` of what this principal creates (None for the admin key)."""
        if self.subject:
            return self.subject
        return f"token:{self.token_id}" if self.token_id else None


ADMIN = Principal(frozenset({"*"}))
