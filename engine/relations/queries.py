"""The registry's lists: relationship types and relationships by id, filtered, sorted and paged.

Types are few, so their list is filtered and sorted in memory. A relationship list ordered by
creation time streams from the row indexes (keyset cursors seek); ordered by list position, the
candidate rows are collected and sorted in memory. Filter names are the wire's (camelCase).
Everything here is synchronous and runs in the API's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.relations.errors import Invalid, NotFound
from engine.relations.listing import ListPage, ListQuery, RowPage, by_created
from engine.relations.model import Principal, Relation, RelationType
from engine.relations.service import Relations

TYPE_SORTS: dict[str, Callable[[RelationType], Any]] = {
    "createdAt": lambda rt: rt.created_at,
    "role": lambda rt: rt.role,
}
TYPE_FILTERS = ("kind", "role", "sourceType", "targetType", "objectType", "isInverse")
TYPE_BOOLEANS = ("isInverse",)
LINK_SORTS: dict[str, Callable[[Relation], Any]] = {
    "createdAt": lambda r: r.created_at,
    "position": lambda r: r.position,
}
LINK_FILTERS = ("relationshipTypeId", "sourceId", "targetId", "role")


class TypePage(RowPage[RelationType]):
    """One page of relationship types, with the same ``pagination`` as a page of rows."""

    __slots__ = ()


def list_types(
    rel: Relations, tenant_id: str, query: ListQuery, filters: Mapping[str, Sequence[str]]
) -> TypePage:
    """The tenant's relationship types: 404 for an ``objectType`` the schema does not declare
    (every one reported), 400 for a cursor outside the filtered list."""
    unknown: list[NotFound] = []
    for name in dict.fromkeys(filters.get("objectType", ())):
        missing = rel.unknown_object_type(tenant_id, name, "objectType")
        if missing is not None:
            unknown.append(missing)
    if unknown:
        errors = [e for each in unknown for e in each.errors]
        raise NotFound(
            unknown[0].message if len(unknown) == 1 else f"{len(unknown)} errors occurred", errors
        )

    def keep(rt: RelationType) -> bool:
        checks = (
            ("kind", rt.kind),
            ("role", rt.role),
            ("sourceType", rt.source_type),
            ("targetType", rt.target_type),
            ("isInverse", "true" if rt.is_inverse else "false"),
        )
        if any(key in filters and value not in filters[key] for key, value in checks):
            return False
        sides = filters.get("objectType")
        return sides is None or rt.source_type in sides or rt.target_type in sides

    found = [rt for rt in rel.types(tenant_id) if keep(rt)]
    ordered = sorted(found, key=lambda rt: rt.id, reverse=query.sort[0][1])
    for name, descending in reversed(query.sort):
        ordered.sort(key=TYPE_SORTS[name], reverse=descending)
    if query.after is not None:
        ids = [rt.id for rt in ordered]
        if query.after not in ids:
            raise Invalid.at(
                ("after",), "invalid cursor: after must be the id of a row in this list"
            )
        ordered = ordered[ids.index(query.after) + 1 :]
    start = query.offset or 0
    rows = ordered[start : start + query.limit]
    return TypePage(rows, len(ordered) > start + query.limit, query)


def _matches(values: Sequence[str] | None, bare: str, ref: str) -> bool:
    return values is None or bare in values or ref in values


def list_links(
    rel: Relations,
    tenant_id: str,
    who: Principal,
    query: ListQuery,
    filters: Mapping[str, Sequence[str]],
) -> ListPage:
    """Relationship rows (mirrors included) ``who`` may read: 404 for an unknown type filter;
    a source or target filter matches a bare id or a ``type:id``."""
    type_ids = (
        list(dict.fromkeys(filters["relationshipTypeId"]))
        if "relationshipTypeId" in filters
        else None
    )
    for type_id in type_ids or ():
        rel.relation_type(tenant_id, type_id)
    visible = rel.visible_filter(tenant_id, who)
    roles = filters.get("role")
    sources = filters.get("sourceId")
    targets = filters.get("targetId")

    def keep(row: Relation) -> bool:
        return (
            (type_ids is None or row.type_id in type_ids)
            and (roles is None or row.relation in roles)
            and _matches(sources, row.entity_id, row.source)
            and _matches(targets, row.subject_id, row.target)
            and visible(row)
        )

    if query.created_order is not None:
        return rel.list_by_created(tenant_id, query, keep, type_ids)
    candidates = by_created(rel.reader(tenant_id), type_ids, False)
    return rel.list_sorted(tenant_id, candidates, query, keep, LINK_SORTS)
