"""Strapi-style connect / disconnect / set on an entity's roles, all roles in one batch.

``plan`` validates and resolves a request and computes every role's final list (400s); the
caller then checks the effect scopes (403) before ``apply`` writes it, where cardinality can
still refuse (409). Order is computed by ``ordering`` exactly as Strapi does, and stored as
contiguous positions 1..N.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dsl.schema import Schema
from engine.relations import layout, links
from engine.relations.errors import Conflict, FieldError, Invalid
from engine.relations.links import Batch
from engine.relations.model import ENTITY_ID, UNBOUNDED, Relation, RelationType, split_ref
from engine.relations.ordering import (
    ConnectItem,
    OrderingError,
    Position,
    apply_partial,
    apply_set,
    to_one,
)
from engine.suggest import suggest
from storage.base import Tuple


@dataclass(frozen=True, slots=True)
class Item:
    """One ref of a relation operation as sent: ``ref`` a string or integer, ``position`` the
    raw position object (already checked to hold exactly one valid key) or None."""

    ref: str | int
    path: tuple[str | int, ...]
    position: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RoleOp:
    role: str
    mode: Literal["set", "partial"]
    set_items: tuple[Item, ...] = ()
    connect: tuple[Item, ...] = ()
    disconnect: tuple[Item, ...] = ()
    strict: bool = True


@dataclass(slots=True)
class RolePlan:
    role: str
    to_one: bool
    types: dict[str, RelationType]  # by target type
    current: list[Relation]
    final: list[str]
    targets: set[str] = field(
        default_factory=set
    )  # every ref the request links (for access checks)

    @property
    def added(self) -> list[str]:
        have = {r.target for r in self.current}
        return [ref for ref in self.final if ref not in have]

    @property
    def removed(self) -> list[Relation]:
        keep = set(self.final)
        return [r for r in self.current if r.target not in keep]


class _Resolver:
    def __init__(self, source: tuple[str, str], role: str, types: dict[str, RelationType]) -> None:
        self.source = source
        self.role = role
        self.types = types
        self.errors: list[FieldError] = []

    def ref(self, raw: str | int, path: tuple[str | int, ...]) -> str | None:
        text = str(raw)
        if ":" in text:
            parts = split_ref(text)
            if parts is None:
                self.errors.append(
                    FieldError(path, f"{text} is not a valid entity reference: expected type:id")
                )
                return None
            if parts[0] not in self.types:
                self.errors.append(
                    FieldError(
                        path,
                        f"{text} cannot be linked through '{self.role}': its target types are "
                        f"{', '.join(sorted(self.types))}",
                    )
                )
                return None
        elif len(self.types) == 1 and ENTITY_ID.fullmatch(text):
            parts = (next(iter(self.types)), text)
        elif len(self.types) > 1:
            self.errors.append(
                FieldError(
                    path,
                    f"id {text} is ambiguous for '{self.role}', which links "
                    f"{', '.join(sorted(self.types))}: send type:id",
                )
            )
            return None
        else:
            self.errors.append(FieldError(path, f"{text} is not a valid id"))
            return None
        if parts == self.source:
            self.errors.append(FieldError(path, "an entity cannot be related to itself"))
            return None
        return f"{parts[0]}:{parts[1]}"

    def position(self, item: Item) -> Position | None:
        raw = item.position
        if raw is None:
            return None
        shown = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
        ((key, value),) = raw.items()
        if key in ("before", "after"):
            anchor = self.ref(value, (*item.path, "position", key))
            return None if anchor is None else Position(key, anchor, shown)  # type: ignore[arg-type]
        return Position(key, None, shown)  # type: ignore[arg-type]


def role_types(
    types: Sequence[RelationType], source_type: str, role: str
) -> dict[str, RelationType]:
    return {rt.target_type: rt for rt in types if rt.source_type == source_type and rt.role == role}


def plan(batch: Batch, source: tuple[str, str], ops: Sequence[RoleOp]) -> list[RolePlan]:
    """Every role's final list (collecting every 400 of the request into one Invalid)."""
    all_types = list(batch.types.values())
    errors: list[FieldError] = []
    plans: list[RolePlan] = []
    roles = sorted({rt.role for rt in all_types if rt.source_type == source[0]})
    for op in ops:
        types = role_types(all_types, source[0], op.role)
        if not types:
            hints = suggest(op.role, roles)
            errors.append(
                FieldError(
                    ("data", op.role),
                    f'Unknown role "{op.role}" for {source[0]}',
                    value=op.role,
                    suggestions=hints,
                )
            )
            continue
        resolver = _Resolver(source, op.role, types)
        to_one_role = all(rt.limits.source_max != UNBOUNDED for rt in types.values())
        if to_one_role:
            current = [
                r
                for r in layout.outgoing(batch.reader, source[0], source[1], op.role)
                if batch.rows.row(r.id)
            ]
        else:
            current = links.pending_list(batch, source[0], source[1], op.role)
        names = [r.target for r in current]
        role_plan = RolePlan(op.role, to_one_role, types, current, names)
        if op.mode == "set":
            refs = [resolver.ref(i.ref, i.path) for i in op.set_items]
            if not resolver.errors:
                final = apply_set([r for r in refs if r is not None])
                role_plan.final = to_one(final) if to_one_role else final
                role_plan.targets.update(final)
        else:
            items: list[ConnectItem] = []
            for index, item in enumerate(op.connect):
                ref = resolver.ref(item.ref, item.path)
                position = None if to_one_role else resolver.position(item)
                if ref is not None:
                    items.append(ConnectItem(ref, position, index))
            dropped = [resolver.ref(i.ref, i.path) for i in op.disconnect]
            if not resolver.errors:
                dropped_refs = [r for r in dropped if r is not None]
                try:
                    if to_one_role:
                        seen = [i.ref for i in items]
                        duplicates = {r for r in seen if seen.count(r) > 1}
                        if duplicates:
                            first = next(i for i in items if i.ref in duplicates)
                            raise OrderingError(
                                f"The relation with id {first.ref} is already connected. "
                                "You cannot connect the same relation twice.",
                                max(i.index for i in items if i.ref == first.ref),
                            )
                        if items:
                            final = [items[-1].ref]
                        else:
                            gone = set(dropped_refs)
                            final = [r for r in names if r not in gone]
                    else:
                        final = apply_partial(names, items, dropped_refs, strict=op.strict)
                except OrderingError as exc:
                    errors.append(FieldError(("data", op.role, "connect", exc.index), exc.message))
                    continue
                role_plan.final = final
                role_plan.targets.update(i.ref for i in items)
        errors.extend(resolver.errors)
        if len(role_plan.final) > links.LIST_CAP:
            raise Conflict(
                "list_too_long",
                f"{source[0]}:{source[1]} would have {len(role_plan.final)} '{op.role}' links "
                f"(at most {links.LIST_CAP})",
                {"entity": f"{source[0]}:{source[1]}", "limit": links.LIST_CAP},
            )
        plans.append(role_plan)
    if errors:
        raise Invalid(errors)
    return plans


def apply(
    batch: Batch,
    schema: Schema,
    source: tuple[str, str],
    plans: Sequence[RolePlan],
    owner: str | None,
) -> dict[str, list[Relation]]:
    """Write the plans: removals first (so a to-one slot frees before it is refilled), then
    additions and positions. Returns each role's resulting list in order."""
    for role_plan in plans:
        for row in role_plan.removed:
            links.remove(batch, row, renumber=False)
    _renumber_mirror_lists(batch, plans)
    result: dict[str, list[Relation]] = {}
    for role_plan in plans:
        by_target = {r.target: r for r in role_plan.current}
        rows: list[Relation] = []
        for index, ref in enumerate(role_plan.final, start=1):
            position = None if role_plan.to_one else index
            existing = by_target.get(ref)
            if existing is not None:
                row = batch.rows.row(existing.id) or existing
                if row.position != position:
                    row = row.but(position=position, updated_at=batch.now)
                    batch.put(row)
                rows.append(row)
                continue
            target_type, _, target_id = ref.partition(":")
            rt = role_plan.types[target_type]
            row, _mirror = links.create(
                batch,
                schema,
                rt,
                source,
                (target_type, target_id),
                metadata=None,
                owner=owner,
                position=_fixed(position),
            )
            rows.append(row)
        result[role_plan.role] = rows
    return result


def _renumber_mirror_lists(batch: Batch, plans: Sequence[RolePlan]) -> None:
    """Close the gaps removed mirrors left in their own lists (on the other entities)."""
    lists: set[tuple[str, str, str]] = set()
    for role_plan in plans:
        for row in role_plan.removed:
            original = layout.load(batch.reader, row.pair_id) if row.pair_id else None
            if original is not None and original.position is not None:
                lists.add((original.entity_type, original.entity_id, original.relation))
    for entity_type, entity_id, role in sorted(lists):
        links.renumber_list(batch, entity_type, entity_id, role)


def _fixed(position: int | None) -> Callable[[RelationType, Tuple], int | None]:
    return lambda _rt, _t: position
