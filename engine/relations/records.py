"""Relationship records of the contact data model: contact-to-contact relations as flat records.

A record is a view of a relation row whose type is one of the data model's kinds, a registered
``(ref_type, kind, ref_type)`` type; ``label``, ``notes`` and ``since`` live in the row's
metadata, and the mirror row (the inverse kind, written in the same transaction) is a record of
its own. The data model is the tenant's ``Settings.data_model`` (None: the records answer 404).

Before a record is served, ``model`` makes sure every kind has its type, registering the missing
ones (bidirectional, ``inverse_role = kinds[kind]``) on first use; a registration that loses a
race to another request's is taken as done. Everything here is synchronous and runs in the
API's worker threads, like the ``Relations`` methods it calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import SchemaNotFound
from engine.relations import registry
from engine.relations.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from engine.relations.listing import ListPage, ListQuery
from engine.relations.model import DataModel, Principal, Relation, RelationType
from engine.relations.service import Linked, Relations
from storage.base import SnapToken

FILTERS = ("parent_id", "target_id", "kind", "status", "is_archived", "owned_by")
BOOLEANS = ("is_archived",)
SORTS = ("created_at", "kind")
DEFAULT_SORT = "kind"
#: For in-memory sorts: created_at carries the id, so rows of one kind come out exactly as the
#: index streams them ((created_at, id) in created_at's direction).
_SORT_KEYS: dict[str, Callable[[Relation], Any]] = {
    "kind": lambda r: r.relation,
    "created_at": lambda r: (r.created_at, r.id),
}


@dataclass(frozen=True, slots=True)
class Model:
    """The tenant's data model with the registered type of every kind."""

    config: DataModel
    types: dict[str, RelationType]

    @property
    def ref_type(self) -> str:
        return self.config.ref_type

    @property
    def kinds(self) -> tuple[str, ...]:
        """In configured order (the enum's order)."""
        return tuple(self.config.kinds)

    @property
    def type_ids(self) -> frozenset[str]:
        return frozenset(rt.id for rt in self.types.values())

    def enum_message(self, field: str) -> str:
        return f"{field} must be one of the following values: {', '.join(self.kinds)}"


def model(rel: Relations, tenant_id: str) -> Model:
    """The data model, its kinds' types registered (404 when disabled or the schema lacks them)."""
    config = rel.settings(tenant_id).data_model
    if config is None:
        raise NotFound(
            "the record endpoints are turned off for this tenant (its relations settings have "
            '"data_model": null; PUT relations/settings with a data_model turns them on)'
        )
    found = _kind_types(rel.types(tenant_id), config)
    if len(found) == len(config.kinds):
        return Model(config, found)
    _require_schema(rel, tenant_id, config)
    for kind, inverse in config.kinds.items():
        if kind in found:
            continue
        request = registry.TypeRequest(
            kind="co_to_co",
            role=kind,
            source_type=config.ref_type,
            target_type=config.ref_type,
            source_field="parentCustomObjectType",
            target_field="childCustomObjectType",
            sent=frozenset({"bidirectional", "inverse_role"}),
            bidirectional=True,
            inverse_role=inverse,
        )
        try:
            rel.register_type(tenant_id, request)
        except Conflict:
            # Another request registered it (or its inverse) meanwhile; anything else stands.
            if registry.find(rel.types(tenant_id), config.ref_type, kind, config.ref_type) is None:
                raise
        except Invalid as exc:
            # E.g. a ref_type that is the tenant's person type: the records cannot be served.
            reasons = "; ".join(e.message for e in exc.errors)
            raise NotFound(f"cannot register the kind {kind}: {reasons}") from exc
        # Registering a kind also registers its inverse kind.
        found = _kind_types(rel.types(tenant_id), config)
    missing = [kind for kind in config.kinds if kind not in found]
    if missing:
        raise NotFound(f"no relationship type for the kinds {', '.join(missing)}")
    return Model(config, found)


def _kind_types(types: list[RelationType], config: DataModel) -> dict[str, RelationType]:
    ref = config.ref_type
    return {
        kind: rt
        for kind in config.kinds
        if (rt := registry.find(types, ref, kind, ref)) is not None
    }


def _require_schema(rel: Relations, tenant_id: str, config: DataModel) -> None:
    ref = config.ref_type
    roles = list(dict.fromkeys([*config.kinds, *config.kinds.values()]))
    needed = (
        f"the relationship data model needs the schema to declare entity {ref} with the "
        f"relations {', '.join(roles)}, each allowing @{ref}"
    )
    try:
        schema = rel.engine.schema(tenant_id)[1]
    except SchemaNotFound:
        raise NotFound(f"tenant {tenant_id} has no schema yet: {needed}") from None
    if schema.entity(ref) is None:
        raise NotFound(f"the schema has no entity {ref}: {needed}")
    missing = [role for role in roles if not registry.declared(schema, ref, role, ref)]
    if missing:
        raise NotFound(f"the schema lacks {ref} relations {', '.join(missing)}: {needed}")


# -- one record ----------------------------------------------------------------------------------


def record(
    rel: Relations, tenant_id: str, who: Principal, model: Model, record_id: str
) -> Relation:
    """A record by id: 404 when missing, unreadable, or not of the data model's kinds."""
    row = rel.row(tenant_id, who, record_id)
    if row.type_id not in model.type_ids:
        raise NotFound(f"relation {record_id} not found")
    return row


def writable(
    rel: Relations, tenant_id: str, who: Principal, model: Model, record_id: str
) -> Relation:
    """A record ``who`` may change: 404 as ``record``, 403 when only readable."""
    row = record(rel, tenant_id, who, model, record_id)
    if not rel.writable(tenant_id, who, row):
        raise Forbidden(f"{who.subject} may read relationship {record_id} but not change it")
    return row


def create(  # noqa: PLR0917 - called through `Services.run`, which is positional
    rel: Relations,
    tenant_id: str,
    who: Principal,
    model: Model,
    kind: str,
    contacts: tuple[str, str],
    metadata: dict[str, Any],
) -> Linked:
    """Relate ``contacts`` (parent, target) with ``kind``; the mirror is written in the same
    transaction. A token with a subject must be allowed to write both contacts (400)."""
    ref = model.ref_type
    parent_id, target_id = contacts
    if who.subject is not None:
        permission = rel.settings(tenant_id).write_permission
        errors = [
            FieldError((name,), f"{name} must reference a {ref} you own")
            for name, contact in (("parent_id", parent_id), ("target_id", target_id))
            if not rel.allowed(tenant_id, who, (ref, contact), permission)
        ]
        if errors:
            raise Invalid(errors)
    return rel.link(
        tenant_id, who, model.types[kind].id, (ref, parent_id), (ref, target_id), metadata
    )


def update(
    rel: Relations, tenant_id: str, model: Model, record_id: str, sent: Mapping[str, str | None]
) -> tuple[Relation, SnapToken]:
    """Set the ``sent`` metadata fields on the record and its pair; unchanged values write
    nothing (the head's token is returned)."""

    def change(current: Relation) -> dict[str, Any] | None:
        metadata = dict(current.metadata or {})
        if all(metadata.get(name) == value for name, value in sent.items()):
            return None
        metadata.update(sent)
        return metadata

    def still_a_record(current: Relation) -> None:
        if current.type_id not in model.type_ids:
            raise NotFound(f"relation {record_id} not found")

    return rel.update(tenant_id, record_id, still_a_record, change)


def delete(
    rel: Relations, tenant_id: str, who: Principal, model: Model, record_id: str
) -> SnapToken:
    """Delete a record ``who`` may change and its mirror in one write; the token."""
    writable(rel, tenant_id, who, model, record_id)
    return rel.unlink(tenant_id, record_id, lambda _row: None)


# -- the list ------------------------------------------------------------------------------------


def list_records(  # noqa: PLR0917 - called through `Services.run`, which is positional
    rel: Relations,
    tenant_id: str,
    who: Principal,
    model: Model,
    query: ListQuery,
    filters: Mapping[str, Sequence[str]],
) -> ListPage:
    """Records, filtered (a repeated filter is IN, filters are ANDed), sorted and paged: 400 for
    a kind outside the model or a sort the list cannot serve."""
    unknown = [k for k in filters.get("kind", ()) if k not in model.config.kinds]
    if unknown:
        raise Invalid.at(("kind",), model.enum_message("kind"), value=unknown[0])
    query = _normalized(query)
    kinds = set(filters.get("kind", model.kinds))
    type_ids = {rt.id for kind, rt in model.types.items() if kind in kinds}
    ref = model.ref_type
    parents = set(filters.get("parent_id", ()))
    targets = set(filters.get("target_id", ()))
    statuses = set(filters.get("status", ()))
    archived = {value == "true" for value in filters.get("is_archived", ())}
    owners = set(filters.get("owned_by", ()))
    visible = rel.visible_filter(tenant_id, who)

    def keep(row: Relation) -> bool:
        return (
            row.type_id in type_ids
            and (not parents or row.entity_id in parents)
            and (not targets or row.subject_id in targets)
            and (not statuses or row.status in statuses)
            and (not archived or row.is_archived in archived)
            and (not owners or (row.owned_by or "") in owners)
            and visible(row)
        )

    if parents or targets:
        # Only the named contacts' rows can match: collect those and sort them in memory.
        candidates = rel.candidates(
            tenant_id,
            sources=[(ref, p) for p in sorted(parents)],
            targets=[(ref, t) for t in sorted(targets)],
        )
        return rel.list_sorted(tenant_id, candidates, query, keep, _SORT_KEYS)
    if query.created_order is not None:
        return rel.list_by_created(tenant_id, query, keep, sorted(type_ids))
    by_kind = [model.types[kind].id for kind in sorted(model.types) if kind in kinds]
    return rel.list_concatenated(tenant_id, by_kind, query, keep)


def _normalized(query: ListQuery) -> ListQuery:
    """The sorts the list serves: ``[-]created_at`` or ``[-]kind[,[-]created_at]``; a lone
    ``kind`` continues with created_at in its direction (``-kind`` is the default order
    reversed)."""
    sort = query.sort
    names = [name for name, _ in sort]
    if names not in (["created_at"], ["kind"], ["kind", "created_at"]):
        raise Invalid.at(
            ("sort",),
            "sort must be created_at, kind, or kind,created_at (a '-' prefix reverses a key; "
            "id breaks ties)",
        )
    if names == ["kind"]:
        sort = (sort[0], ("created_at", sort[0][1]))
    return ListQuery(limit=query.limit, offset=query.offset, after=query.after, sort=sort)
