"""A schema version compiled for checks: one evaluator closure per (entity type, name).

Compiled once per schema version (`engine.engine.Compiled`), never per request. Permissions
are compiled after the permissions they reference, so a closure captures its targets directly;
a permission named from more than one place of its entity is dispatched instead, and so cached
per question (`engine.nodes.dispatched_reference_to`).
"""

from __future__ import annotations

from dsl.schema import (
    ComputedAttribute,
    ComputedUserSet,
    EntityDef,
    Node,
    Operation,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)
from engine.errors import UnknownEntityType, UnknownPermission
from engine.keys import read_prefix
from engine.nodes import (
    Evaluator,
    attribute_of,
    dispatched_reference_to,
    exclusion_of,
    intersection_of,
    late_reference_to,
    reference_to,
    relation_of,
    rule_call_of,
    tuple_to_userset_of,
    union_of,
    unknown_name,
)
from engine.rules import RuleSet
from engine.types import FRAMES_PER_DEPTH


class Program:
    """The evaluators of one schema version: one closure per (entity type, name)."""

    def __init__(self, schema: Schema, rules: RuleSet) -> None:
        self.schema = schema
        self.rules = rules
        self.evaluators: dict[tuple[str, str], Evaluator] = {}
        #: entity type -> (relation, its read-key prefix) of each of its relations, for types
        #: whose relations are read in one scan.
        self.prefetch: dict[str, tuple[tuple[str, str], ...]] = {
            e.name: tuple((r, read_prefix(e.name, r)) for r in e.relations)
            for e in schema.entities.values()
            if len(e.relations) > 1
        }
        for entity in schema.entities.values():
            for name in entity.relations:
                self.evaluators[(entity.name, name)] = relation_of(entity.name, name)
            for name, attribute in entity.attributes.items():
                self.evaluators[(entity.name, name)] = attribute_of(
                    entity.name, name, attribute.type
                )
        #: The most set-operation closures one permission stacks (see `frames_per_depth`).
        self.nesting = 0
        # Permissions last, each after the permissions it references, whose evaluators its
        # closures capture. An explicit order, not recursion: a chain of references may be as
        # long as the compiler allows.
        for entity in schema.entities.values():
            shared = _shared(entity)
            for name in _dependency_order(entity):
                child = entity.permissions[name].child
                self.evaluators[(entity.name, name)] = self._node(entity, child, shared)
                self.nesting = max(self.nesting, _nesting(child))
        #: Python frames one unit of depth may take in evaluation: a dispatch, a hop and its
        #: reference (`FRAMES_PER_DEPTH`, 4), plus the set-operation closures of a permission
        #: beyond the first (each calls the next). An attribute, not a property: every check
        #: reads it.
        self.frames_per_depth = FRAMES_PER_DEPTH + max(0, self.nesting - 1)

    def _node(self, entity: EntityDef, node: Node, shared: frozenset[str]) -> Evaluator:
        """The evaluator of ``node``; references to the ``shared`` permissions are dispatched."""
        # Recursion over one rewrite tree: bounded by the parser's MAX_EXPRESSION_DEPTH.
        if isinstance(node, Rewrite):
            if node.operation is Operation.EXCLUSION:
                base, subtract = (self._node(entity, c, shared) for c in node.children)
                return exclusion_of(base, subtract)
            # `a or b or c` is nested binary rewrites; flattening gives the same answer with
            # fewer calls.
            children = [
                self._node(entity, c, shared) for c in _flatten(node.operation, node.children)
            ]
            if node.operation is Operation.UNION:
                return union_of(tuple(children))
            return intersection_of(tuple(children))
        if isinstance(node, ComputedUserSet):
            name = node.relation
            if name in shared:
                return dispatched_reference_to(entity.name, name)
            if name in entity.permissions:
                # Same entity: no data in between, so no cycle is possible (the compiler
                # rejects permission cycles) and no hop bookkeeping is needed. Compiled
                # already (`_dependency_order`), unless a hand-built schema has a cycle.
                target = self.evaluators.get((entity.name, name))
                return reference_to(
                    entity.name, name, target or late_reference_to(entity.name, name)
                )
            if name in entity.relations:
                return relation_of(entity.name, name, computed=True)
            target = self.evaluators.get((entity.name, name))
            if target is None:
                return unknown_name(entity.name, name)
            return reference_to(entity.name, name, target)
        if isinstance(node, TupleToUserSet):
            return tuple_to_userset_of(entity.name, node.tupleset, node.computed)
        if isinstance(node, ComputedAttribute):
            return reference_to(
                entity.name, node.name, self.evaluators.get((entity.name, node.name))
                or unknown_name(entity.name, node.name)
            )
        if isinstance(node, RuleCall):
            return rule_call_of(entity.name, node.rule, node.arguments)
        raise AssertionError(f"unknown node {node!r}")

    def resolve(self, entity_type: str, name: str) -> Evaluator:
        """The evaluator of a name with no compiled one: a rule named directly, or an error."""
        entity = self.schema.entities.get(entity_type)
        if entity is None:
            raise UnknownEntityType.of(entity_type)
        rule = self.schema.rules.get(name)
        if rule is not None:
            arguments = tuple(p for p in rule.parameters if p in entity.attributes)
            return rule_call_of(entity_type, name, arguments)
        raise UnknownPermission.of(entity_type, name)


def _dependency_order(entity: EntityDef) -> list[str]:
    """The entity's permissions, each after the permissions it references (depth-first, with an
    explicit stack). A reference closing a cycle is left out of the order's constraints."""
    order: list[str] = []
    placed: set[str] = set()
    for root in entity.permissions:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(_references(entity, root)))]
        while stack:
            name, targets = stack[-1]
            target = next(targets, None)
            if target is None:
                stack.pop()
                order.append(name)
            elif target not in placed:
                placed.add(target)
                stack.append((target, iter(_references(entity, target))))
    return order


def _shared(entity: EntityDef) -> frozenset[str]:
    """The permissions of ``entity`` named in more than one place of its permissions. Called
    directly, each would be evaluated once per place: nested, exponentially often."""
    seen: set[str] = set()
    shared: set[str] = set()
    for permission in entity.permissions:
        for name in _references(entity, permission):
            (shared if name in seen else seen).add(name)
    return frozenset(shared)


def _references(entity: EntityDef, permission: str) -> list[str]:
    """The permissions of the same entity that ``permission`` names directly."""
    found: list[str] = []
    stack = [entity.permissions[permission].child]
    while stack:
        node = stack.pop()
        if isinstance(node, Rewrite):
            stack.extend(node.children)
        elif isinstance(node, ComputedUserSet) and node.relation in entity.permissions:
            found.append(node.relation)
    return found


def _nesting(node: Node) -> int:
    """How many set-operation closures the compiled ``node`` stacks, at most: nested unions (or
    intersections) are flattened into one closure, exclusions are not."""
    deepest = 0
    stack: list[tuple[Node, int, Operation | None]] = [(node, 0, None)]
    while stack:
        current, depth, parent = stack.pop()
        if isinstance(current, Rewrite):
            operation = current.operation
            if operation is Operation.EXCLUSION or operation is not parent:
                depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth, operation) for child in current.children)
    return deepest


def _flatten(operation: Operation, children: tuple[Node, ...]) -> list[Node]:
    """The operands of ``operation`` under ``children``, in order, nested rewrites of the same
    operation opened up (a left-deep ``a or b or c ...``: one stack, linear time)."""
    out: list[Node] = []
    stack = list(reversed(children))
    while stack:
        child = stack.pop()
        if isinstance(child, Rewrite) and child.operation is operation:
            stack.extend(reversed(child.children))
        else:
            out.append(child)
    return out
