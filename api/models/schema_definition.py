"""Permify's ``SchemaDefinition``: the compiled schema in the wire format (schema read)."""

from __future__ import annotations

from typing import Any, assert_never

from api.models.common import OPERATION_NAMES
from dsl.schema import (
    ComputedAttribute,
    ComputedUserSet,
    EntityDef,
    Node,
    ReferenceKind,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)

_REFERENCES = {
    ReferenceKind.RELATION: "REFERENCE_RELATION",
    ReferenceKind.PERMISSION: "REFERENCE_PERMISSION",
    ReferenceKind.ATTRIBUTE: "REFERENCE_ATTRIBUTE",
}


def _child_json(node: Node) -> dict[str, Any]:
    match node:
        case Rewrite(operation=op, children=children):
            return {
                "rewrite": {
                    "rewrite_operation": OPERATION_NAMES[op],
                    "children": [_child_json(c) for c in children],
                }
            }
        case ComputedUserSet(relation=relation):
            return {"leaf": {"computed_user_set": {"relation": relation}}}
        case TupleToUserSet(tupleset=tupleset, computed=computed):
            return {
                "leaf": {
                    "tuple_to_user_set": {
                        "tupleSet": {"relation": tupleset},
                        "computed": {"relation": computed},
                    }
                }
            }
        case ComputedAttribute(name=name):
            return {"leaf": {"computed_attribute": {"name": name}}}
        case RuleCall(rule=rule, arguments=arguments):
            return {
                "leaf": {
                    "call": {
                        "rule_name": rule,
                        "arguments": [{"computed_attribute": {"name": a}} for a in arguments],
                    }
                }
            }
    assert_never(node)


def _entity_json(entity: EntityDef) -> dict[str, Any]:
    return {
        "name": entity.name,
        "relations": {
            name: {
                "name": name,
                "relation_references": [
                    {"type": ref.type, "relation": ref.relation} for ref in rel.subject_types
                ],
            }
            for name, rel in entity.relations.items()
        },
        "permissions": {
            name: {"name": name, "child": _child_json(p.child)}
            for name, p in entity.permissions.items()
        },
        "attributes": {
            name: {"name": name, "type": f"ATTRIBUTE_TYPE_{a.type.name}"}
            for name, a in entity.attributes.items()
        },
        "references": {name: _REFERENCES[kind] for name, kind in entity.references.items()},
    }


def schema_json(schema: Schema) -> dict[str, Any]:
    """Permify's ``SchemaDefinition`` (the compiled schema). A rule's ``expression`` is a CEL
    CheckedExpr in Permify, which Stonetown does not build; here it is ``{"cel": body}``."""
    return {
        "entity_definitions": {name: _entity_json(e) for name, e in schema.entities.items()},
        "rule_definitions": {
            name: {
                "name": name,
                "arguments": {p: f"ATTRIBUTE_TYPE_{t.name}" for p, t in rule.parameters.items()},
                "expression": {"cel": rule.expression},
            }
            for name, rule in schema.rules.items()
        },
        "references": {
            **{name: "REFERENCE_ENTITY" for name in schema.entities},
            **{name: "REFERENCE_RULE" for name in schema.rules},
        },
    }
