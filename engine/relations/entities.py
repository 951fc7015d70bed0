"""An entity's relations: its list (outgoing, incoming or both), relating it to a target by a
role name, and connect / disconnect / set on its roles with the targets' access checked.

The entity is the relation's source for writes. A token with a subject must be able to read
every target it links; a target it cannot read answers as one that does not exist. Everything
here is synchronous and runs in the API's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.relations import operations, registry
from engine.relations.errors import FieldError, Invalid
from engine.relations.listing import ListPage, ListQuery
from engine.relations.model import Principal, Relation, RelationType
from engine.relations.service import Linked, Relations
from storage.base import SnapToken

SORT_KEYS: dict[str, Callable[[Relation], Any]] = {
    "relation_type": lambda r: r.relation,
    "position": lambda r: r.position,
    "created_at": lambda r: r.created_at,
}
FILTERS = ("relation_type",)
DIRECTIONS = ("outgoing", "incoming", "both")


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


def _unseen(target_type: str) -> str:
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
            raise Invalid.at(("target_entity_id",), _unseen(target[0]))
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
                raise Invalid.at(("data",), _unseen(target_type))

    return rel.operate(tenant_id, who, entity, ops, check_targets)
