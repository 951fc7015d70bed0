"""The relationship-type registry and relationships by id, as the camelCase routes ask for them:
registering a type with the scope its effect needs, linking two objects of a registered type by
bare ids, and deleting a link.

A type fixes a link's role and object types, so a link names its ends by bare ids (``type:id``
only of the type's own object type). A token with a subject must be able to write the source and
read the target; an end it cannot see answers as one that does not exist. Everything here is
synchronous and runs in the API's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.relations.entities import unseen
from engine.relations.errors import FieldError, Forbidden, Invalid
from engine.relations.model import ENTITY_ID, Principal, RelationType
from engine.relations.registry import TypeRequest
from engine.relations.service import Linked, Relations
from storage.base import SnapToken


def register_type(
    rel: Relations, tenant_id: str, who: Principal, parse: Callable[[str], TypeRequest]
) -> tuple[RelationType, bool, SnapToken]:
    """Register a type (created: True) or refine the one with the same key. ``parse`` turns the
    request into the registry's, given the tenant's person type (its 400s come first); then
    403 unless ``who`` may create (a new key) or update (an existing one), decided under the
    write lock."""
    wanted = parse(rel.settings(tenant_id).person_type)

    def may(exists: bool) -> None:
        scope = "relationship_type:update" if exists else "relationship_type:create"
        if not who.allows(scope):
            raise Forbidden.missing(scope)

    return rel.register_type(tenant_id, wanted, may)


def bare_id(
    value: str, name: str, entity_type: str, known: set[str], errors: list[FieldError]
) -> str | None:
    """A bare id of ``entity_type``; ``type:id`` is taken only when the type is that one (a
    prefix that is not a known object type is part of the id: ids may contain ``:``)."""
    prefix, colon, rest = value.partition(":")
    if colon and prefix in known:
        if prefix != entity_type:
            errors.append(
                FieldError(
                    (name,),
                    f"{name} must be an id of a {entity_type} (the relationship type fixes it), "
                    f"not a {prefix} reference",
                )
            )
            return None
        value = rest
    if not ENTITY_ID.fullmatch(value):
        errors.append(
            FieldError(
                (name,),
                f"{name} must be an id of 1-128 letters, digits and _ - @ . : + "
                f"(or {entity_type}:<id>)",
            )
        )
        return None
    return value


def create_link(  # noqa: PLR0917 - called through `Services.run`, which is positional
    rel: Relations,
    tenant_id: str,
    who: Principal,
    type_id: str,
    source_id: str,
    target_id: str,
    metadata: dict[str, Any] | None,
) -> Linked:
    """Link ``source_id -type-> target_id`` (and the mirror for a bidirectional type): 404 for
    an unknown type, 400 for ids that are not the type's, an object related to itself, or ends
    ``who`` may not use (every problem of the ids at once)."""
    rt = rel.relation_type(tenant_id, type_id)
    known = set(rel.object_type_names(tenant_id))
    errors: list[FieldError] = []
    source_bare = bare_id(source_id, "sourceId", rt.source_type, known, errors)
    target_bare = bare_id(target_id, "targetId", rt.target_type, known, errors)
    if errors:
        raise Invalid(errors)
    assert source_bare is not None and target_bare is not None
    source, target = (rt.source_type, source_bare), (rt.target_type, target_bare)
    if source == target:
        raise Invalid.at(("targetId",), "an object cannot be related to itself")
    if who.subject is not None:
        settings = rel.settings(tenant_id)
        for name, entity, permission in (
            ("sourceId", source, settings.write_permission),
            ("targetId", target, settings.read_permission),
        ):
            if not rel.allowed(tenant_id, who, entity, permission):
                errors.append(FieldError((name,), unseen(entity[0])))
        if errors:
            raise Invalid(errors)
    return rel.link(tenant_id, who, rt.id, source, target, metadata)


def delete_link(rel: Relations, tenant_id: str, who: Principal, relationship_id: str) -> SnapToken:
    """Delete a link and its mirror in one write: 404 when missing or not readable, 403 when
    ``who`` may not write it."""
    row = rel.row(tenant_id, who, relationship_id)
    if not rel.writable(tenant_id, who, row):
        raise Forbidden(f"{who.subject} may not delete relationship {row.id}")
    return rel.unlink(tenant_id, row.id, lambda _row: None)
