"""Expand in Permify's wire format: the request, the response, and the renderer that turns the
engine's typed expand tree into Permify's ``PermissionExpandResponse.tree``.

Every node carries every field Permify's gateway emits (``EmitUnpopulated``): its ``entity``, its
``permission``, its ``arguments`` (``[]`` unless it is a rule call) and either ``expand``
(``operation`` and ``children``) or ``leaf``. A leaf holds ``subjects`` (each with its
``relation``, ``""`` when it has none), an attribute's ``value`` or a rule's argument
``values``, each value a ``google.protobuf.Any``.
"""

from __future__ import annotations

from typing import Any, assert_never

from pydantic import Field

from api.models.common import (
    OPERATION_NAMES,
    ArgumentIn,
    ContextIn,
    EntityIn,
    Name,
    Out,
    Wire,
    value_json,
)
from engine.expand import (
    AttributeLeaf,
    ExpandTree,
    OperationNode,
    RuleLeaf,
    SubjectsLeaf,
    TypedValue,
)


class ExpandMetadata(Wire):
    schema_version: str = ""
    snap_token: str = ""


class ExpandRequest(Wire):
    metadata: ExpandMetadata = Field(default_factory=ExpandMetadata)
    entity: EntityIn
    permission: Name
    context: ContextIn | None = None
    arguments: list[ArgumentIn] = Field(default_factory=list)


class ExpandResponse(Out):
    tree: dict[str, Any]


def expand_json(tree: ExpandTree) -> dict[str, Any]:
    """``tree`` as Permify's proto-JSON expand tree, every field present.

    Walks the tree on an explicit stack, as the engine built it: the tree may be as deep as
    `engine.expand.MAX_TREE_DEPTH` without costing a Python frame per level.
    """
    root: list[dict[str, Any]] = []
    # Each node with the list its rendering joins (its parent's children); children are pushed
    # last first, so each list fills in order.
    stack: list[tuple[ExpandTree, list[dict[str, Any]]]] = [(tree, root)]
    while stack:
        node, siblings = stack.pop()
        out: dict[str, Any] = {
            "entity": {"type": node.entity.type, "id": node.entity.id},
            "permission": node.permission,
        }
        match node:
            case OperationNode(operation=operation, children=children):
                rendered: list[dict[str, Any]] = []
                out["arguments"] = []
                out["expand"] = {"operation": OPERATION_NAMES[operation], "children": rendered}
                stack.extend((child, rendered) for child in reversed(children))
            case SubjectsLeaf(subjects=subjects):
                out["arguments"] = []
                out["leaf"] = {
                    "subjects": {
                        "subjects": [
                            {"type": s.type, "id": s.id, "relation": s.relation} for s in subjects
                        ]
                    }
                }
            case AttributeLeaf(value=value):
                out["arguments"] = []
                out["leaf"] = {"value": _any(value)}
            case RuleLeaf(arguments=arguments, values=values):
                out["arguments"] = [{"computed_attribute": {"name": a}} for a in arguments]
                out["leaf"] = {"values": {"values": {name: _any(v) for name, v in values}}}
            case other:
                assert_never(other)
        siblings.append(out)
    return root[0]


def _any(typed: TypedValue) -> dict[str, Any]:
    # Doubles are floats already: `Attribute` normalises them, and a missing one is 0.0.
    return value_json(typed.type, typed.value)
