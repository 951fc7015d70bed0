"""The relationship-type registry: upsert with refinement, inverse types, deletes.

Every function here runs inside ``Store.transact``: it reads the latest state and adds its
writes to the same `Changes`, so a refinement and the inverse type it transposes land together.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dsl.schema import Schema
from engine.relations import layout
from engine.relations.errors import Conflict, FieldError, Invalid, NotFound
from engine.relations.model import (
    Cardinality,
    RelationType,
    Settings,
    limits,
    transpose,
)
from engine.suggest import suggest
from storage.base import Changes, SnapshotReader, TupleFilter

#: Fields of a registration that refine an existing type; only those sent are changed.
REFINABLE = ("cardinality", "description", "bidirectional", "inverse_role")


@dataclass(frozen=True, slots=True)
class TypeRequest:
    """A registration request after syntax checks. ``source_field``/``target_field`` name the
    body fields the types came from (for error paths); ``sent`` lists the refinable fields
    present."""

    kind: str
    role: str
    source_type: str
    target_type: str
    source_field: str | None
    target_field: str
    sent: frozenset[str]
    cardinality: str | None = None
    description: str | None = None
    bidirectional: bool = False
    inverse_role: str | None = None


def unknown_type(name: str, field: str, schema: Schema) -> NotFound:
    message = f'Unknown object type "{name}"'
    hints = suggest(name, schema.entities)
    return NotFound(message, [FieldError((field,), message, value=name, suggestions=hints)])


def find(types: Iterable[RelationType], source: str, role: str, target: str) -> RelationType | None:
    for rt in types:
        if rt.source_type == source and rt.role == role and rt.target_type == target:
            return rt
    return None


def declared(schema: Schema, source: str, role: str, target: str) -> bool:
    entity = schema.entity(source)
    relation = entity.relations.get(role) if entity else None
    return relation is not None and relation.allows(target, "")


def check_names(request: TypeRequest, schema: Schema, settings: Settings) -> None:
    """404 for unknown object types, then 400 for the person type misused or undeclared roles."""
    missing = [
        (name, field)
        for name, field in (
            (request.source_type, request.source_field),
            (request.target_type, request.target_field),
        )
        if field is not None and schema.entity(name) is None
    ]
    if missing:
        errors = [unknown_type(name, field, schema).errors[0] for name, field in missing]
        raise NotFound(
            errors[0].message if len(errors) == 1 else f"{len(errors)} errors occurred", errors
        )
    problems: list[FieldError] = []
    if request.kind == "co_to_co":
        for name, field in (
            (request.source_type, request.source_field),
            (request.target_type, request.target_field),
        ):
            if name == settings.person_type and field is not None:
                problems.append(
                    FieldError(
                        (field,), f'{field} cannot be the person type "{name}" in a co_to_co type'
                    )
                )
    if problems:
        raise Invalid(problems)


def check_declared(rt: RelationType, schema: Schema, settings: Settings) -> None:
    if not settings.require_schema_relation:
        return
    problems: list[FieldError] = []
    if not declared(schema, rt.source_type, rt.role, rt.target_type):
        problems.append(
            FieldError(
                ("role",),
                f"relation '{rt.role}' is not declared on '{rt.source_type}' with subject type "
                f"'{rt.target_type}' in the current schema",
            )
        )
    if (
        rt.bidirectional
        and rt.inverse_role
        and not declared(schema, rt.target_type, rt.inverse_role, rt.source_type)
    ):
        problems.append(
            FieldError(
                ("inverseRole",),
                f"relation '{rt.inverse_role}' is not declared on '{rt.target_type}' with subject "
                f"type '{rt.source_type}' in the current schema",
            )
        )
    if problems:
        raise Invalid(problems)


def in_use(reader: SnapshotReader, rt: RelationType) -> bool:
    """Whether any tuple (managed or raw) has the type's shape."""
    flt = TupleFilter(
        entity_type=rt.source_type,
        relation=rt.role,
        subject_type=rt.target_type,
        subject_relation="",
    )
    return bool(reader.read_tuples(flt, page_size=1).items)


def violations(
    reader: SnapshotReader, rt: RelationType, cardinality: str | None
) -> tuple[str, list[dict[str, object]]]:
    """Entities that hold more links of ``rt`` than ``cardinality`` allows: (side, up to 10)."""
    bounds = limits(cardinality)
    flt = TupleFilter(
        entity_type=rt.source_type,
        relation=rt.role,
        subject_type=rt.target_type,
        subject_relation="",
    )
    sources: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    for t in reader.iter_tuples(flt):
        sources[f"{t.entity_type}:{t.entity_id}"] += 1
        targets[f"{t.subject_type}:{t.subject_id}"] += 1
    for side, counts, bound in (
        ("source", sources, bounds.source_max),
        ("target", targets, bounds.target_max),
    ):
        over = [{"entity": e, "count": c} for e, c in sorted(counts.items()) if c > bound]
        if over:
            return side, over[:10]
    return "", []


def _resolve_inverse(
    types: list[RelationType], rt: RelationType, inverse_role: str
) -> RelationType | None:
    """The type that would be ``rt``'s inverse: ``rt`` itself when symmetric, an existing
    inverse of ``rt``, or None when one must be created; 409 when the key is taken."""
    if rt.source_type == rt.target_type and inverse_role == rt.role:
        return rt
    existing = find(types, rt.target_type, inverse_role, rt.source_type)
    if existing is None:
        return None
    if existing.is_inverse and existing.inverse_id == rt.id:
        return existing
    raise Conflict(
        "type_conflict",
        f"the inverse ({rt.target_type}, {inverse_role}, {rt.source_type}) already exists as "
        + (f"the inverse of {existing.inverse_id}" if existing.is_inverse else "a forward type")
        + f" ({existing.id})",
        {"relationship_type_id": existing.id},
    )


def register(
    reader: SnapshotReader,
    changes: Changes,
    request: TypeRequest,
    schema: Schema,
    settings: Settings,
    *,
    now: int,
) -> tuple[RelationType, bool]:
    """Create the type (and its inverse) or refine it, stamped ``now`` (microseconds since the
    epoch); returns (type, created)."""
    check_names(request, schema, settings)
    types = layout.types(reader)
    current = find(types, request.source_type, request.role, request.target_type)
    if current is not None and current.is_inverse:
        raise Conflict(
            "type_conflict",
            f"({current.source_type}, {current.role}, {current.target_type}) is managed as "
            f"inverse of {current.inverse_id}",
            {"relationship_type_id": current.id, "inverse_of": current.inverse_id},
        )
    if current is None:
        rt = RelationType(
            id=f"rt-{uuid.uuid4()}",
            kind=request.kind,
            role=request.role,
            source_type=request.source_type,
            target_type=request.target_type,
            cardinality=request.cardinality,
            description=request.description,
            bidirectional=request.bidirectional,
            inverse_role=(request.inverse_role or request.role) if request.bidirectional else None,
            created_at=now,
            updated_at=now,
        )
        check_declared(rt, schema, settings)
        _write_with_inverse(reader, changes, types=types, rt=rt, before=None, now=now)
        return layout_type(changes, rt), True
    updates = {name: getattr(request, name) for name in REFINABLE if name in request.sent}
    if "bidirectional" in updates and not updates["bidirectional"]:
        updates["inverse_role"] = None
    elif updates.get("bidirectional") or ("inverse_role" in updates and current.bidirectional):
        updates["inverse_role"] = (
            updates.get("inverse_role") or current.inverse_role or current.role
        )
    refined = replace(current, **updates)
    if refined == current:
        return current, False
    shape_changed = (refined.bidirectional, refined.inverse_role) != (
        current.bidirectional,
        current.inverse_role,
    )
    if shape_changed:
        inverse = layout.relation_type(reader, current.inverse_id) if current.inverse_id else None
        if in_use(reader, current) or (inverse is not None and in_use(reader, inverse)):
            raise Conflict(
                "type_in_use",
                f"relationship type {current.id} has links: "
                "bidirectional and inverseRole cannot change",
                {"relationship_type_id": current.id},
            )
    if refined.cardinality != current.cardinality:
        side, over = violations(reader, current, refined.cardinality)
        if over:
            raise Conflict(
                "cardinality_violation",
                f"Cardinality {refined.cardinality} of '{current.role}' "
                "would be violated by existing links",
                {"cardinality": refined.cardinality, "side": side, "violations": over},
            )
    refined = replace(refined, updated_at=now)
    check_declared(refined, schema, settings)
    _write_with_inverse(reader, changes, types=types, rt=refined, before=current, now=now)
    return layout_type(changes, refined), False


def layout_type(changes: Changes, rt: RelationType) -> RelationType:
    """The version of ``rt`` written into ``changes`` (its inverse id may have been set)."""
    for record in reversed(changes.put_records):
        if record.keyspace == layout.TYPES and record.key == (rt.id,):
            return RelationType.decode(record.value)
    return rt


def _write_with_inverse(
    reader: SnapshotReader,
    changes: Changes,
    *,
    types: list[RelationType],
    rt: RelationType,
    before: RelationType | None,
    now: int,
) -> None:
    old_inverse = (
        layout.relation_type(reader, before.inverse_id)
        if before is not None and before.inverse_id and before.inverse_id != before.id
        else None
    )
    if not rt.bidirectional:
        if old_inverse is not None:
            layout.delete_type(changes, old_inverse.id)
        layout.put_type(changes, replace(rt, inverse_id=None))
        return
    assert rt.inverse_role is not None
    inverse = _resolve_inverse(types, rt, rt.inverse_role)
    if inverse is not None and inverse.id == rt.id:
        if rt.cardinality not in (None, Cardinality.ONE_TO_ONE.name, Cardinality.MANY_TO_MANY.name):
            raise Invalid.at(
                ("cardinality",),
                f"a symmetric type ({rt.source_type}, {rt.role}, {rt.target_type}) "
                "must be ONE_TO_ONE, MANY_TO_MANY or null",
            )
        if old_inverse is not None:
            layout.delete_type(changes, old_inverse.id)
        layout.put_type(changes, replace(rt, inverse_id=rt.id))
        return
    if old_inverse is not None and (inverse is None or inverse.id != old_inverse.id):
        layout.delete_type(changes, old_inverse.id)
    inverse_id = inverse.id if inverse is not None else f"rt-{uuid.uuid4()}"
    mirrored = RelationType(
        id=inverse_id,
        kind=rt.kind,
        role=rt.inverse_role,
        source_type=rt.target_type,
        target_type=rt.source_type,
        cardinality=transpose(rt.cardinality),
        description=rt.description,
        bidirectional=True,
        inverse_role=rt.role,
        inverse_id=rt.id,
        is_inverse=True,
        created_at=inverse.created_at if inverse is not None else now,
        updated_at=now,
    )
    if inverse is None or mirrored != replace(inverse, updated_at=now):
        layout.put_type(changes, mirrored)
    layout.put_type(changes, replace(rt, inverse_id=inverse_id))


def delete(reader: SnapshotReader, changes: Changes, type_id: str) -> RelationType:
    """Remove a type and its inverse unless either has a link (409 type_in_use)."""
    rt = layout.relation_type(reader, type_id)
    if rt is None:
        raise NotFound(f"relationship type {type_id} not found")
    inverse = (
        layout.relation_type(reader, rt.inverse_id)
        if rt.inverse_id and rt.inverse_id != rt.id
        else None
    )
    for each in (rt, inverse):
        if each is not None and in_use(reader, each):
            raise Conflict(
                "type_in_use",
                f"relationship type {each.id} "
                f"({each.source_type}, {each.role}, {each.target_type}) has links",
                {"relationship_type_id": each.id},
            )
    layout.delete_type(changes, rt.id)
    if inverse is not None:
        layout.delete_type(changes, inverse.id)
    return rt
