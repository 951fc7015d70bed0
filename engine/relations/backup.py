"""A tenant's relations layer as plain JSON, and back: what ``stonetown export`` saves beside the
tuples and ``stonetown import`` restores.

A dump holds the tenant's relations settings (when set), every relationship type, every
relation row and the names of the object types created through ``/custom-objects/types``, in
the stored form (ids, metadata, positions, pairs, owners and times as they are), so a restored
tenant shows the same views. API tokens are not part of it: a backup file
must not carry credentials.

``restore`` checks everything before anything is written (a restore is one atomic write): each
object has the stored form's fields and types; every type's inverse and every row's type exist
(in the restore or in the store); a row's tuple has its type's shape and fits the schema; a pair
is whole (each row of it names the other and holds the other's mirror tuple) and never split
between restores; an id or a tuple already stored under another id is a 409. A row's tuple is
written with it, so a restore never depends on the tuples being imported first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dsl.schema import Schema
from engine.errors import InvalidWrite
from engine.relations import layout, object_types
from engine.relations.errors import Conflict, FieldError, Invalid
from engine.relations.layout import RowWriter
from engine.relations.model import (
    Relation,
    RelationType,
    Settings,
    limits,
    split_ref,
)
from engine.writes import check_tuple
from storage.base import Changes, Record, SnapshotReader, Tuple

_ID = re.compile(r"(rel|rt)-[A-Za-z0-9-]{1,64}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,254}")
_KINDS = ("person_to_co", "co_to_co")


@dataclass(frozen=True, slots=True)
class Dump:
    settings: Settings | None
    types: list[RelationType]
    rows: list[Relation]
    #: The object types created through /custom-objects/types (their entities are in the schema).
    object_types: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": None if self.settings is None else asdict(self.settings),
            "types": [asdict(rt) for rt in self.types],
            "relations": [asdict(row) for row in self.rows],
            "object_types": [{"name": name} for name in self.object_types],
        }


def dump(reader: SnapshotReader) -> Dump:
    """Everything the layer keeps for the tenant of ``reader``; a pair's rows are adjacent
    (primary first), so a reader of the dump can cut it into restores between pairs."""
    raw = reader.record(layout.SETTINGS, ("relations",))
    settings = None if raw is None else Settings.decode(raw)
    rows: dict[str, Relation] = {}
    for record in reader.records(layout.ROWS):
        row = Relation.decode(record.value)
        rows[row.id] = row
    ordered: list[Relation] = []
    placed: set[str] = set()
    for row in sorted(rows.values(), key=lambda r: (r.created_at, r.is_mirror, r.id)):
        if row.id in placed:
            continue
        partner = rows.get(row.pair_id) if row.pair_id else None
        pair = [row] if partner is None else sorted([row, partner], key=lambda r: r.is_mirror)
        for each in pair:
            if each.id not in placed:
                placed.add(each.id)
                ordered.append(each)
    created = [record.key[0] for record in reader.records(object_types.CREATED)]
    return Dump(settings, _paired(layout.types(reader)), ordered, created)


def _paired(types: list[RelationType]) -> list[RelationType]:
    """``types`` with each inverse right after its forward type."""
    by_id = {rt.id: rt for rt in types}
    out: list[RelationType] = []
    placed: set[str] = set()
    for rt in sorted(types, key=lambda t: (t.is_inverse, t.created_at, t.id)):
        for each in (rt, by_id.get(rt.inverse_id or "")):
            if each is not None and each.id not in placed:
                placed.add(each.id)
                out.append(each)
    return out


# -- reading the JSON back, every problem at its path -----------------------------------------


class _Fields:
    """Typed reads of one JSON object, collecting every problem."""

    def __init__(self, obj: object, path: tuple[str | int, ...], errors: list[FieldError]):
        self.path = path
        self.errors = errors
        self.obj: Mapping[str, Any] = obj if isinstance(obj, dict) else {}
        if not isinstance(obj, dict):
            self.fail((), "must be an object")

    def fail(self, where: tuple[str | int, ...], message: str) -> None:
        at = (*self.path, *where)
        name = ".".join(str(p) for p in at)
        self.errors.append(FieldError(at, f"{name} {message}"))

    def text(self, name: str, pattern: re.Pattern[str] | None = None) -> str:
        value = self.obj.get(name)
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            what = "a string" if pattern is None else f"a string matching {pattern.pattern}"
            self.fail((name,), f"must be {what}")
            return ""
        return value

    def maybe_text(self, name: str, pattern: re.Pattern[str] | None = None) -> str | None:
        return None if self.obj.get(name) is None else self.text(name, pattern)

    def number(self, name: str, *, optional: bool = False) -> int | None:
        value = self.obj.get(name)
        if value is None and optional:
            return None
        if isinstance(value, float) and value.is_integer():  # 5.0 is whole, as JSON Schema counts
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail((name,), "must be a whole number of at least 0")
            return 0
        return value

    def flag(self, name: str) -> bool:
        value = self.obj.get(name, False)
        if not isinstance(value, bool):
            self.fail((name,), "must be true or false")
            return False
        return value


def _relation_type(
    obj: object, path: tuple[str | int, ...], errors: list[FieldError]
) -> RelationType:
    f = _Fields(obj, path, errors)
    cardinality = f.maybe_text("cardinality")
    if cardinality is not None:
        try:
            limits(cardinality)
        except (KeyError, ValueError):
            f.fail(("cardinality",), "must be ONE_TO_ONE, ONE_TO_MANY, MANY_TO_ONE or MANY_TO_MANY")
    kind = f.text("kind")
    if kind and kind not in _KINDS:
        f.fail(("kind",), f"must be one of {', '.join(_KINDS)}")
    return RelationType(
        id=f.text("id", _ID),
        kind=kind,
        role=f.text("role", _ROLE),
        source_type=f.text("source_type"),
        target_type=f.text("target_type"),
        cardinality=cardinality,
        description=f.maybe_text("description"),
        bidirectional=f.flag("bidirectional"),
        inverse_role=f.maybe_text("inverse_role", _ROLE),
        inverse_id=f.maybe_text("inverse_id", _ID),
        is_inverse=f.flag("is_inverse"),
        created_at=f.number("created_at") or 0,
        updated_at=f.number("updated_at") or 0,
    )


def _relation(obj: object, path: tuple[str | int, ...], errors: list[FieldError]) -> Relation:
    f = _Fields(obj, path, errors)
    metadata = f.obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        f.fail(("metadata",), "must be an object or null")
        metadata = None
    return Relation(
        id=f.text("id", _ID),
        entity_type=f.text("entity_type"),
        entity_id=f.text("entity_id"),
        relation=f.text("relation", _ROLE),
        subject_type=f.text("subject_type"),
        subject_id=f.text("subject_id"),
        type_id=f.text("type_id", _ID),
        metadata=metadata,
        position=f.number("position", optional=True),
        pair_id=f.maybe_text("pair_id", _ID),
        is_mirror=f.flag("is_mirror"),
        owned_by=f.maybe_text("owned_by"),
        status=f.text("status"),
        is_archived=f.flag("is_archived"),
        created_at=f.number("created_at") or 0,
        updated_at=f.number("updated_at") or 0,
    )


@dataclass(frozen=True, slots=True)
class Restore:
    settings: Settings | None
    types: list[RelationType]
    rows: list[Relation]
    object_types: list[str]


def parse(body: Mapping[str, Any], settings: Settings | None) -> Restore:
    """A restore request's types and relations (400 listing every problem); ``settings``
    were read by the settings route's own rules."""
    errors: list[FieldError] = []
    types_in = body.get("types", [])
    rows_in = body.get("relations", [])
    names_in = body.get("object_types", [])
    for name, value in (("types", types_in), ("relations", rows_in), ("object_types", names_in)):
        if not isinstance(value, list):
            errors.append(FieldError((name,), f"{name} must be an array"))
    types = [
        _relation_type(obj, ("types", i), errors)
        for i, obj in enumerate(types_in if isinstance(types_in, list) else [])
    ]
    rows = [
        _relation(obj, ("relations", i), errors)
        for i, obj in enumerate(rows_in if isinstance(rows_in, list) else [])
    ]
    names = [
        _Fields(obj, ("object_types", i), errors).text("name", object_types.NAME)
        for i, obj in enumerate(names_in if isinstance(names_in, list) else [])
    ]
    if errors:
        raise Invalid(errors[:50])
    return Restore(settings, types, rows, names)


# -- writing it ----------------------------------------------------------------------------------


def restore(reader: SnapshotReader, changes: Changes, schema: Schema, request: Restore) -> None:
    """Add ``request`` to ``changes`` after checking it against the latest state (400 for a
    restore that does not hold together, 409 for one that clashes with what is stored)."""
    errors: list[FieldError] = []
    stored_types = {rt.id: rt for rt in layout.types(reader)}
    types = dict(stored_types)
    for i, rt in enumerate(request.types):
        old = stored_types.get(rt.id)
        if old is not None and old != rt:
            raise Conflict(
                "type_conflict",
                f"relationship type {rt.id} is stored already with other fields",
                {"relationship_type_id": rt.id},
            )
        for other in stored_types.values():
            if other.id != rt.id and other.key == rt.key:
                raise Conflict(
                    "type_conflict",
                    f"relationship type {rt.role} ({rt.source_type} -> {rt.target_type}) is "
                    f"stored already as {other.id}",
                    {"relationship_type_id": other.id},
                )
        if schema.entity(rt.source_type) is None or schema.entity(rt.target_type) is None:
            errors.append(
                FieldError(
                    ("types", i),
                    f"types.{i}: {rt.source_type} or {rt.target_type} is not an entity type of "
                    "the current schema (restore the schema first)",
                )
            )
        types[rt.id] = rt
    for i, rt in enumerate(request.types):
        if rt.inverse_id is not None and rt.inverse_id not in types:
            errors.append(
                FieldError(("types", i), f"types.{i}: its inverse {rt.inverse_id} is not known")
            )
    new_rows = {row.id: row for row in request.rows}
    if len(new_rows) != len(request.rows):
        errors.append(FieldError(("relations",), "relations: an id is given twice"))
    tuples: dict[Tuple, str] = {}
    for i, row in enumerate(request.rows):
        _check_row(reader, schema, types, new_rows, tuples, i, row, errors)
    if errors:
        raise Invalid(errors[:50])
    if request.settings is not None:
        layout.put_settings(changes, request.settings)
    for name in request.object_types:
        changes.put_records.append(Record(object_types.CREATED, (name,), b""))
    layout.put_types(changes, [rt for rt in request.types if rt.id not in stored_types])
    writer = RowWriter(reader, changes)
    for row in request.rows:
        if layout.load(reader, row.id) != row:
            writer.put(row)
    writer.flush()
    changes.unbounded = True  # the rows' own tuples, as many as there are rows


def _check_row(  # noqa: PLR0917 - one row's checks, with what they read
    reader: SnapshotReader,
    schema: Schema,
    types: Mapping[str, RelationType],
    new_rows: Mapping[str, Relation],
    tuples: dict[Tuple, str],
    i: int,
    row: Relation,
    errors: list[FieldError],
) -> None:
    def fail(message: str) -> None:
        errors.append(FieldError(("relations", i), f"relations.{i} ({row.id}): {message}"))

    rt = types.get(row.type_id)
    if rt is None:
        fail(f"its relationship type {row.type_id} is not known")
        return
    if (row.entity_type, row.relation, row.subject_type) != (
        rt.source_type,
        rt.role,
        rt.target_type,
    ):
        fail(f"its tuple {row.tuple} does not have the shape of {rt.id}")
    if (
        split_ref(f"{row.entity_type}:{row.entity_id}") is None
        or split_ref(f"{row.subject_type}:{row.subject_id}") is None
    ):
        fail("its entity or subject is not a valid reference")
        return
    try:
        check_tuple(schema, row.tuple)
    except InvalidWrite as exc:
        fail(f"its tuple {row.tuple} does not fit the current schema: {exc}")
    if tuples.setdefault(row.tuple, row.id) != row.id:
        fail(f"its tuple {row.tuple} is given twice")
    stored = layout.by_tuple(reader, row.tuple)
    if stored is not None and stored.id != row.id:
        raise Conflict(
            "relation_exists",
            f"the relation {row.tuple} exists already as {stored.id}",
            {"existing_relation_id": stored.id},
        )
    if row.pair_id is None:
        if rt.bidirectional:
            fail(f"a relation of the bidirectional type {rt.id} needs its pair (pair_id)")
        return
    partner = new_rows.get(row.pair_id) or layout.load(reader, row.pair_id)
    if partner is None:
        fail(f"its pair {row.pair_id} is neither in this restore nor stored")
        return
    mirror = Tuple(
        row.subject_type, row.subject_id, partner.relation, row.entity_type, row.entity_id
    )
    if partner.pair_id != row.id or partner.tuple != mirror:
        fail(f"its pair {row.pair_id} does not name it back or is not its mirror")
