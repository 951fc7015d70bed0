"""An entity's relations: its list (outgoing, incoming or both), one relation of it, relating
it to a target by a role name, changing or removing a relation, and connect / disconnect / set on
its roles with the targets' access checked.

The entity is the relation's source for writes. It may be given as ``type:id`` or as a bare id
(seed 000's ``ent-…``): a bare id is resolved across the object types that hold it (409 listing
the candidates when several do), and on create the types come from the relationship type the
role names. Its type must be one the schema defines (404 with suggestions); a token with a
subject must hold the write permission on it to change its relations (403), and must be able to
read every target it links: a target it cannot read answers as one that does not exist.
Everything here is synchronous and runs in the API's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.relations import operations, registry
from engine.relations.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from engine.relations.listing import ListPage, ListQuery
from engine.relations.model import Principal, Relation, RelationType
from engine.relations.service import Linked, Relations
from engine.suggest import suggest
from storage.base import SnapToken

SORT_KEYS: dict[str, Callable[[Relation], Any]] = {
    "relation_type": lambda r: r.relation,
    "position": lambda r: r.position,
    "created_at": lambda r: r.created_at,
}
FILTERS = ("relation_type",)
DIRECTIONS = ("outgoing", "incoming", "both")


#: An entity as the client gave it: ``(type, id)``, or a bare id whose type is to be found.
Ref = tuple[str, str] | str


def _ambiguous(what: str, candidates: Sequence[str]) -> Conflict:
    listed = ", ".join(candidates)
    return Conflict(
        "ambiguous_id",
        f"{what} is ambiguous: it could be {listed}; send it as type:id",
        {"candidates": list(candidates)},
    )


def resolve(rel: Relations, tenant_id: str, ref: Ref) -> tuple[str, str] | None:
    """The typed entity of ``ref``: a bare id takes the one object type that holds it (None
    when none does; 409 listing the candidates when several do)."""
    if isinstance(ref, tuple):
        return ref
    holders = rel.holders(tenant_id, ref)
    if len(holders) > 1:
        raise _ambiguous(f"the id {ref}", [f"{t}:{ref}" for t in holders])
    return (holders[0], ref) if holders else None


def resolve_or_404(rel: Relations, tenant_id: str, ref: Ref, relation_id: str) -> tuple[str, str]:
    """As `resolve`; an id no object type holds has no relation ``relation_id`` (404)."""
    found = resolve(rel, tenant_id, ref)
    if found is None:
        raise NotFound(f"relation {relation_id} not found on {ref}")
    return found


def typed_for_role(
    rel: Relations, tenant_id: str, source: Ref, role: str, target: Ref
) -> tuple[tuple[str, str], tuple[str, str]]:
    """``source`` and ``target`` typed by the relationship type ``role`` names (a typed side
    narrows the candidates): 400 with suggestions when none is registered, 409 listing them
    when several fit."""
    if isinstance(source, tuple) and isinstance(target, tuple):
        return source, target
    fits = sorted(
        {
            (rt.source_type, rt.target_type)
            for rt in rel.types(tenant_id)
            if rt.role == role
            and (not isinstance(source, tuple) or rt.source_type == source[0])
            and (not isinstance(target, tuple) or rt.target_type == target[0])
        }
    )
    source_id = source[1] if isinstance(source, tuple) else source
    target_id = target[1] if isinstance(target, tuple) else target
    if not fits:
        known_roles = sorted({rt.role for rt in rel.types(tenant_id)})
        sides = [side[0] if isinstance(side, tuple) else "any type" for side in (source, target)]
        raise Invalid(
            [
                FieldError(
                    ("relation_type",),
                    f'relation_type "{role}" is not registered for {sides[0]} -> {sides[1]}',
                    value=role,
                    suggestions=tuple(suggest(role, known_roles)),
                )
            ]
        )
    if len(fits) > 1:
        raise _ambiguous(
            f'relation_type "{role}" between bare ids',
            [f"{s}:{source_id} -> {t}:{target_id}" for s, t in fits],
        )
    ((source_type, target_type),) = fits
    return (source_type, source_id), (target_type, target_id)


def known(rel: Relations, tenant_id: str, entity: tuple[str, str]) -> None:
    """404 (with the closest type names) unless the schema defines the entity's type."""
    missing = rel.unknown_object_type(tenant_id, entity[0], "entity")
    if missing is not None:
        raise missing


def writable(rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str]) -> None:
    """The entity whose relations ``who`` changes: 404 for an unknown type, then 403 unless
    ``who`` may write it."""
    known(rel, tenant_id, entity)
    _must_write(rel, tenant_id, who, entity)


def _must_write(rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str]) -> None:
    if who.subject is None:
        return
    permission = rel.settings(tenant_id).write_permission
    if not rel.allowed(tenant_id, who, entity, permission):
        raise Forbidden(f"{who.subject} may not change the relations of {entity[0]}:{entity[1]}")


def _row_on(
    rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str], relation_id: str
) -> Relation:
    """The relation, which must have the entity as source or target (404)."""
    try:
        row = rel.row(tenant_id, who, relation_id)
    except NotFound:
        raise NotFound(f"relation {relation_id} not found on {entity[0]}:{entity[1]}") from None
    if entity not in ((row.entity_type, row.entity_id), (row.subject_type, row.subject_id)):
        raise NotFound(f"relation {relation_id} not found on {entity[0]}:{entity[1]}")
    return row


def relation_of(
    rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str], relation_id: str
) -> Relation:
    """One relation of the entity: 404 for an unknown type, then for a relation that is
    missing, not readable or not the entity's."""
    known(rel, tenant_id, entity)
    return _row_on(rel, tenant_id, who, entity, relation_id)


def writable_relation(
    rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str], relation_id: str
) -> Relation:
    """One relation of the entity that ``who`` is about to change: as ``relation_of``, then 403
    unless ``who`` may write the entity."""
    row = relation_of(rel, tenant_id, who, entity, relation_id)
    _must_write(rel, tenant_id, who, entity)
    return row


def set_metadata(
    rel: Relations, tenant_id: str, relation_id: str, metadata: dict[str, Any] | None
) -> tuple[Relation, SnapToken]:
    """Replace the metadata of a relation (and its pair); null clears it."""
    return rel.update(
        tenant_id, relation_id, lambda _row: None, lambda _row: metadata, none_clears=True
    )


def unrelate(
    rel: Relations, tenant_id: str, who: Principal, entity: tuple[str, str], relation_id: str
) -> SnapToken:
    """Delete one relation of the entity and its mirror in one write (refused as
    ``writable_relation``)."""
    row = writable_relation(rel, tenant_id, who, entity, relation_id)
    return rel.unlink(tenant_id, row.id, lambda _row: None)


def list_relations(  # noqa: PLR0917 - called through `Services.run`, which is positional
    rel: Relations,
    tenant_id: str,
    who: Principal,
    entity: tuple[str, str],
    direction: str,
    query: ListQuery,
    filters: Mapping[str, Sequence[str]],
) -> tuple[ListPage, dict[str, str]]:
    """The entity's relations ``who`` may read, sorted in memory and paged, and the direction
    of each row on the page by its id."""
    found = rel.entity_rows(tenant_id, entity, direction)
    directions = {row.id: way for row, way in found}
    roles = set(filters.get("relation_type", ()))
    visible = rel.visible_filter(tenant_id, who)

    def keep(row: Relation) -> bool:
        return row.id in directions and (not roles or row.relation in roles) and visible(row)

    result = rel.list_sorted(tenant_id, [r for r, _ in found], query, keep, SORT_KEYS)
    return result, directions


def _type_for_role(
    rel: Relations, tenant_id: str, entity_type: str, role: str, target_type: str
) -> RelationType:
    """The registered type ``entity_type -role-> target_type``; 400 with the closest roles."""
    rt = registry.find(rel.types(tenant_id), entity_type, role, target_type)
    if rt is None:
        hints = rel.suggest_roles(tenant_id, entity_type, target_type, role)
        raise Invalid(
            [
                FieldError(
                    ("relation_type",),
                    f'relation_type "{role}" is not registered for {entity_type} -> {target_type}',
                    value=role,
                    suggestions=hints,
                )
            ]
        )
    return rt


def unseen(target_type: str) -> str:
    """What a target ``who`` cannot read answers: as if it did not exist."""
    return f"1 relation(s) of type {target_type} associated with this entity do not exist"


def relate(  # noqa: PLR0917 - called through `Services.run`, which is positional
    rel: Relations,
    tenant_id: str,
    who: Principal,
    entity: tuple[str, str],
    role: str,
    target: tuple[str, str],
    metadata: dict[str, Any] | None,
) -> Linked:
    """Relate the entity to ``target`` with the type ``role`` names (and write the mirror for a
    bidirectional type): 400 for an unregistered role or a target ``who`` cannot read."""
    rt = _type_for_role(rel, tenant_id, entity[0], role, target[0])
    if who.subject is not None:
        permission = rel.settings(tenant_id).read_permission
        if not rel.allowed(tenant_id, who, target, permission):
            raise Invalid.at(("target_entity_id",), unseen(target[0]))
    return rel.link(tenant_id, who, rt.id, entity, target, metadata)


def operate(
    rel: Relations,
    tenant_id: str,
    who: Principal,
    entity: tuple[str, str],
    ops: Sequence[operations.RoleOp],
) -> tuple[dict[str, list[Relation]], SnapToken]:
    """Connect / disconnect / set on the entity's roles in one write; every target ``who``
    links must be readable (400 naming ``data`` otherwise)."""
    read_permission = rel.settings(tenant_id).read_permission

    def check_targets(targets: set[str]) -> None:
        if who.subject is None:
            return
        for ref in sorted(targets):
            target_type, _, target_id = ref.partition(":")
            if not rel.allowed(tenant_id, who, (target_type, target_id), read_permission):
                raise Invalid.at(("data",), unseen(target_type))

    return rel.operate(tenant_id, who, entity, ops, check_targets)
