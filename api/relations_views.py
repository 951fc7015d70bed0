"""How relations-layer rows look on the wire, one function per family.

The registry family is camelCase, the others snake_case; times are ISO-8601 UTC.
"""

from __future__ import annotations

from typing import Any

from engine.relations.model import ApiToken, Relation, RelationType, iso


def entity_item(row: Relation, direction: str) -> dict[str, Any]:
    """One relation as seen from an entity."""
    return {
        "id": row.id,
        "source_entity_id": row.source,
        "target_entity_id": row.target,
        "relation_type": row.relation,
        "metadata": row.metadata,
        "direction": direction,
        "relationship_type_id": row.type_id,
        "position": row.position,
        "is_mirror": row.is_mirror,
        "pair_id": row.pair_id,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def list_item(row: Relation) -> dict[str, Any]:
    """One element of a role's list after connect / disconnect / set."""
    return {
        "id": row.id,
        "target_entity_id": row.target,
        "position": row.position,
        "metadata": row.metadata,
    }


def link_item(row: Relation) -> dict[str, Any]:
    """A relationship of the registry family (camelCase)."""
    return {
        "relationshipId": row.id,
        "relationshipTypeId": row.type_id,
        "role": row.relation,
        "source": row.source,
        "target": row.target,
        "metadata": row.metadata,
        "mirrorRelationshipId": row.pair_id,
        "isMirror": row.is_mirror,
        "position": row.position,
        "ownedBy": row.owned_by,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def record_item(row: Relation) -> dict[str, Any]:
    """A relationship record of the contact data model; label/notes/since live in the metadata."""
    metadata = row.metadata or {}
    return {
        "id": row.id,
        "kind": row.relation,
        "label": metadata.get("label"),
        "notes": metadata.get("notes"),
        "since": metadata.get("since"),
        "parent_id": row.entity_id,
        "target_id": row.subject_id,
        "status": row.status,
        "is_archived": row.is_archived,
        "owned_by": row.owned_by,
        "pair_id": row.pair_id,
        "is_mirror": row.is_mirror,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def type_item(rt: RelationType) -> dict[str, Any]:
    """A relationship type (camelCase)."""
    out: dict[str, Any] = {
        "relationshipTypeId": rt.id,
        "kind": rt.kind,
        "role": rt.role,
        "sourceType": rt.source_type,
        "targetType": rt.target_type,
    }
    if rt.kind == "person_to_co" and not rt.is_inverse:
        out["customObjectType"] = rt.target_type
    elif rt.kind == "person_to_co":
        out["customObjectType"] = rt.source_type
    else:
        out["parentCustomObjectType"] = rt.source_type
        out["childCustomObjectType"] = rt.target_type
    out.update(
        {
            "cardinality": rt.cardinality,
            "description": rt.description,
            "bidirectional": rt.bidirectional,
            "inverseRole": rt.inverse_role,
            "inverseRelationshipTypeId": rt.inverse_id,
            "isInverse": rt.is_inverse,
            "createdAt": iso(rt.created_at),
            "updatedAt": iso(rt.updated_at),
        }
    )
    return out


def token_item(token: ApiToken) -> dict[str, Any]:
    """A token without its secret (the hash is never shown)."""
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "subject": token.subject,
        "created_at": iso(token.created_at),
        "expires_at": None if token.expires_at is None else iso(token.expires_at),
        "revoked_at": None if token.revoked_at is None else iso(token.revoked_at),
        "last_used_at": None if token.last_used_at is None else iso(token.last_used_at),
    }
