"""Writing links: create (with mirror), remove (with mirror), metadata, positions, cardinality.

Every function here runs inside ``Store.transact`` on a `Batch`: the reader sees the latest
state, nothing else can write meanwhile, and everything the batch collects lands in one atomic
store write. Reads inside a batch see its own pending changes, so a build may remove, renumber
and add in any order.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from dsl.schema import Schema
from engine.errors import InvalidWrite
from engine.relations import layout
from engine.relations.errors import Conflict, Invalid
from engine.relations.layout import RowWriter
from engine.relations.model import UNBOUNDED, Relation, RelationType
from engine.writes import check_tuple
from storage.base import Changes, SnapshotReader, Subject, Tuple

LIST_CAP = 10_000


class Batch:
    """One transaction's row writer plus a tally of tuples added and removed in it; ``now``
    (microseconds since the epoch, from the layer's clock) stamps every row it writes."""

    def __init__(self, reader: SnapshotReader, types: Iterable[RelationType], now: int) -> None:
        self.reader = reader
        self.changes = Changes(unbounded=True)
        self.rows = RowWriter(reader, self.changes)
        self.types = {rt.id: rt for rt in types}
        self.now = now
        self._by_tuple: dict[Tuple, str | None] = {}
        self._added: set[Tuple] = set()
        self._removed: set[Tuple] = set()
        self._source_base: dict[tuple[str, str, str, str], int] = {}
        self._target_base: dict[tuple[str, str, str, str], int] = {}
        self._source_delta: Counter[tuple[str, str, str, str]] = Counter()
        self._target_delta: Counter[tuple[str, str, str, str]] = Counter()

    # -- reads that see pending changes ---------------------------------------------------

    def row_for(self, t: Tuple) -> Relation | None:
        if t in self._by_tuple:
            relation_id = self._by_tuple[t]
            return None if relation_id is None else self.rows.row(relation_id)
        row = layout.by_tuple(self.reader, t)
        if row is not None and self.rows.row(row.id) is None:
            return None
        return row

    def has_tuple(self, t: Tuple) -> bool:
        if t in self._added:
            return True
        if t in self._removed:
            return False
        return self.reader.has_tuple(t)

    def sources_of(self, t: Tuple) -> int:
        """Tuples ``t.entity#t.relation@t.subject_type:*`` (plain subjects) now."""
        key = (t.entity_type, t.entity_id, t.relation, t.subject_type)
        base = self._source_base.get(key)
        if base is None:
            base = sum(
                1
                for s in self.reader.subjects(t.entity_type, t.entity_id, t.relation)
                if s.type == t.subject_type and not s.relation
            )
            self._source_base[key] = base
        return base + self._source_delta[key]

    def targets_of(self, t: Tuple) -> int:
        """Tuples ``t.entity_type:*#t.relation@t.subject`` now."""
        key = (t.entity_type, t.relation, t.subject_type, t.subject_id)
        base = self._target_base.get(key)
        if base is None:
            subject = Subject(t.subject_type, t.subject_id)
            base = sum(1 for _ in self.reader.entity_ids(t.entity_type, t.relation, subject))
            self._target_base[key] = base
        return base + self._target_delta[key]

    def _count(self, t: Tuple, step: int) -> None:
        self._source_delta[(t.entity_type, t.entity_id, t.relation, t.subject_type)] += step
        self._target_delta[(t.entity_type, t.relation, t.subject_type, t.subject_id)] += step

    # -- pending changes ------------------------------------------------------------------

    def put(self, row: Relation) -> None:
        t = row.tuple
        if not self.has_tuple(t):
            self._removed.discard(t)
            self._added.add(t)
            self._count(t, +1)
        self._by_tuple[t] = row.id
        self.rows.put(row)

    def drop(self, row: Relation) -> None:
        t = row.tuple
        if self.has_tuple(t):
            self._added.discard(t)
            self._removed.add(t)
            self._count(t, -1)
        self._by_tuple[t] = None
        self.rows.delete(row)

    def finish(self) -> Changes:
        self.rows.flush()
        return self.changes


def _fits_schema(schema: Schema, t: Tuple) -> None:
    """400 when the current schema cannot hold ``t`` (it changed since the type was
    registered)."""
    try:
        check_tuple(schema, t)
    except InvalidWrite as exc:
        entity = schema.entity(t.entity_type)
        if entity is None or t.relation not in entity.relations:
            message = (
                f"relation '{t.relation}' is not declared on '{t.entity_type}' "
                "in the current schema"
            )
        else:
            message = (
                f"relation '{t.relation}' on '{t.entity_type}' does not allow subject type "
                f"'{t.subject_type}' in the current schema"
            )
        raise Invalid.at(("relation_type",), message) from exc


def check_cardinality(batch: Batch, rt: RelationType, t: Tuple) -> None:
    """409 unless adding ``t`` keeps both sides of ``rt`` within their limits."""
    bounds = rt.limits
    if bounds.source_max != UNBOUNDED and batch.sources_of(t) + 1 > bounds.source_max:
        _violated(batch, rt, t, "source")
    if bounds.target_max != UNBOUNDED and batch.targets_of(t) + 1 > bounds.target_max:
        _violated(batch, rt, t, "target")


def _violated(batch: Batch, rt: RelationType, t: Tuple, side: str) -> None:
    name = rt.cardinality or "MANY_TO_MANY"
    if side == "source":
        entity = f"{t.entity_type}:{t.entity_id}"
        existing = next(
            (
                Tuple(t.entity_type, t.entity_id, t.relation, s.type, s.id)
                for s in batch.reader.subjects(t.entity_type, t.entity_id, t.relation)
                if s.type == t.subject_type and not s.relation
            ),
            None,
        )
        message = f"Cardinality {name} of '{rt.role}' violated: {entity} already has a {rt.role}"
    else:
        entity = f"{t.subject_type}:{t.subject_id}"
        owner = next(
            iter(
                batch.reader.entity_ids(
                    t.entity_type, t.relation, Subject(t.subject_type, t.subject_id)
                )
            ),
            None,
        )
        existing = (
            None
            if owner is None
            else Tuple(t.entity_type, owner, t.relation, t.subject_type, t.subject_id)
        )
        message = (
            f"Cardinality {name} of '{rt.role}' violated: {entity} is already the {rt.role} "
            f"of another {t.entity_type}"
        )
    row = batch.row_for(existing) if existing is not None else None
    raise Conflict(
        "cardinality_violation",
        message,
        {
            "cardinality": name,
            "side": side,
            "entity": entity,
            "existing_relation_id": row.id if row is not None else None,
        },
    )


def inverse_of(batch: Batch, rt: RelationType) -> RelationType | None:
    if not rt.bidirectional or rt.inverse_id is None:
        return None
    return rt if rt.inverse_id == rt.id else batch.types.get(rt.inverse_id)


def _append_position(batch: Batch, rt: RelationType, t: Tuple) -> int | None:
    if rt.limits.source_max != UNBOUNDED:
        return None
    length = current_length(batch, t.entity_type, t.entity_id, t.relation)
    if length >= LIST_CAP:
        raise Conflict(
            "list_too_long",
            f"{t.entity_type}:{t.entity_id} already has {LIST_CAP} '{t.relation}' links",
            {"entity": f"{t.entity_type}:{t.entity_id}", "limit": LIST_CAP},
        )
    return length + 1


def current_length(batch: Batch, entity_type: str, entity_id: str, role: str) -> int:
    """Length of a many-valued list, pending changes included."""
    length = layout.list_length(batch.reader, entity_type, entity_id, role)
    for row in batch.rows.pending_rows().values():
        if (
            row is not None
            and row.position is not None
            and (row.entity_type, row.entity_id, row.relation) == (entity_type, entity_id, role)
        ):
            length = max(length, row.position)
    return length


def create(
    batch: Batch,
    schema: Schema,
    rt: RelationType,
    source: tuple[str, str],
    target: tuple[str, str],
    *,
    metadata: dict[str, Any] | None,
    owner: str | None,
    position: Callable[[RelationType, Tuple], int | None] | None = None,
) -> tuple[Relation, Relation | None]:
    """Add the link ``source -rt-> target`` (and its mirror): 409 when it exists or breaks a
    cardinality; a raw tuple already there is adopted."""
    if source == target:  # every family refuses these; a symmetric mirror would be itself
        raise Invalid.at(("target",), "an entity cannot be related to itself")
    t = Tuple(source[0], source[1], rt.role, target[0], target[1])
    _fits_schema(schema, t)
    _refuse_managed(batch, t, "relation")
    inverse = inverse_of(batch, rt)
    mirror_t = Tuple(target[0], target[1], inverse.role, source[0], source[1]) if inverse else None
    if mirror_t is not None:
        _fits_schema(schema, mirror_t)
        _refuse_managed(batch, mirror_t, "mirror relation")
    if not batch.has_tuple(t):
        check_cardinality(batch, rt, t)
    place = position or (lambda kind, t: _append_position(batch, kind, t))
    row = _new_row(batch, t, rt, metadata, owner, position=place(rt, t))
    mirror = None
    if inverse is not None and mirror_t is not None:
        if not batch.has_tuple(mirror_t):
            check_cardinality(batch, inverse, mirror_t)
        mirror = _new_row(
            batch,
            mirror_t,
            inverse,
            metadata,
            owner,
            position=_append_position(batch, inverse, mirror_t),
            pair_id=row.id,
        )
        row = row.but(pair_id=mirror.id)
        batch.put(mirror)
    batch.put(row)
    return row, mirror


def _refuse_managed(batch: Batch, t: Tuple, what: str) -> None:
    """409 ``relation_exists`` when ``t`` already has a metadata row."""
    found = batch.row_for(t)
    if found is not None:
        raise Conflict(
            "relation_exists",
            f"the {what} {t} already exists",
            {"existing_relationship_id": found.id, "existing_relation_id": found.id},
        )


def _new_row(
    batch: Batch,
    t: Tuple,
    rt: RelationType,
    metadata: dict[str, Any] | None,
    owner: str | None,
    *,
    position: int | None,
    pair_id: str | None = None,
) -> Relation:
    """A new metadata row for ``t``; with ``pair_id`` it is the mirror of that row."""
    return Relation(
        id=f"rel-{uuid.uuid4()}",
        entity_type=t.entity_type,
        entity_id=t.entity_id,
        relation=t.relation,
        subject_type=t.subject_type,
        subject_id=t.subject_id,
        type_id=rt.id,
        metadata=metadata,
        position=position,
        pair_id=pair_id,
        is_mirror=pair_id is not None,
        owned_by=owner,
        created_at=batch.now,
        updated_at=batch.now,
    )


def remove(batch: Batch, row: Relation, *, renumber: bool = True) -> list[Relation]:
    """Delete ``row`` and its pair; renumber the lists they were in. Returns what was removed."""
    removed = [row]
    pair = batch.rows.row(row.pair_id) if row.pair_id else None
    if pair is not None:
        removed.append(pair)
    for each in removed:
        batch.drop(each)
    if renumber:
        for each in removed:
            if each.position is not None:
                renumber_list(batch, each.entity_type, each.entity_id, each.relation)
    return removed


def pending_list(batch: Batch, entity_type: str, entity_id: str, role: str) -> list[Relation]:
    """A many-valued list in order as the batch now has it (pending rows included)."""
    seen: dict[str, Relation] = {}
    for row in layout.ordered_list(batch.reader, entity_type, entity_id, role):
        current = batch.rows.row(row.id)
        if current is not None and current.position is not None:
            seen[row.id] = current
    for relation_id, pending in batch.rows.pending_rows().items():
        if (
            pending is not None
            and pending.position is not None
            and (pending.entity_type, pending.entity_id, pending.relation)
            == (entity_type, entity_id, role)
        ):
            seen[relation_id] = pending
    return sorted(seen.values(), key=lambda r: (r.position or 0, r.created_at, r.id))


def renumber_list(batch: Batch, entity_type: str, entity_id: str, role: str) -> None:
    for index, row in enumerate(pending_list(batch, entity_type, entity_id, role), start=1):
        if row.position != index:
            batch.put(row.but(position=index, updated_at=batch.now))


def set_metadata(batch: Batch, row: Relation, metadata: dict[str, Any] | None) -> Relation:
    """Replace the metadata of ``row`` and its pair (the pair shares one value)."""
    updated = row.but(metadata=metadata, updated_at=batch.now)
    batch.put(updated)
    pair = batch.rows.row(row.pair_id) if row.pair_id else None
    if pair is not None:
        batch.put(pair.but(metadata=metadata, updated_at=batch.now))
    return updated
