"""Expand: the userset tree behind one relation, permission, attribute or rule of one entity.

The answer is Permify's ``PermissionExpandResponse.tree``, node for node, already in its
proto-JSON field names (the API serialises it unchanged). Every node names the ``entity`` and the
``permission`` it stands for and holds either ``expand`` (an operation over child nodes) or
``leaf``. How each name is expanded:

* **permission**: its rewrite tree. A ``Rewrite`` becomes an ``expand`` node labelled with the
  permission, its operation (``OPERATION_UNION`` / ``INTERSECTION`` / ``EXCLUSION``) and one child
  per operand, in schema order. Operands:

  * ``r`` (computed userset) and ``a`` (boolean attribute operand) are transparent: the node is
    whatever expanding ``r`` / ``a`` on the same entity gives, labelled ``r`` / ``a``
    (so ``permission admin = view`` answers with a tree labelled ``view``);
  * ``t.c`` (tuple-to-userset) is a union labelled ``t`` on the current entity with one child per
    subject of ``t`` (its relation ignored): ``c`` expanded on that subject's entity;
  * ``rule(a, b)`` is the rule node below, with ``arguments``.

  A permission whose whole child is one operand is that operand's node, with no wrapper.
* **relation**: the subjects of its tuples, stored ones first (the reader's order) and then the
  request's contextual tuples not already stored; subjects without a relation come before
  usersets in the leaf ``{subjects: {subjects: [...]}}``. When there are usersets
  (``group:1#member``), the node becomes a union labelled with the relation: one child per userset
  (``member`` expanded on ``group:1``) followed, last, by the leaf itself.
* **attribute**: ``leaf: {value: Any}``, the contextual attribute first, then the stored one; a
  missing attribute is ``BooleanValue false`` whatever its declared type (as Permify does).
* **rule** (reached through a call): ``arguments: [{computed_attribute: {name}}]`` and
  ``leaf: {values: {values: {name: Any}}}``, each argument read for this entity from the store
  first, then the context, else the zero value of the parameter type. Rules are not evaluated.

Values are ``{"@type": "type.googleapis.com/base.v1.<Kind>Value", "data": ...}``; non-finite
doubles are written as protojson does (``"NaN"``, ``"Infinity"``, ``"-Infinity"``). Empty
``arguments`` and empty subject ``relation`` keys are left out, as in Permify's test trees.

Beyond Permify (whose expand neither counts depth nor stops on cycles):

* **Depth.** Every nested expansion (an operand that names another relation, permission,
  attribute or rule, a tuple-to-userset parent, a userset subject) costs one unit; below zero it
  raises ``DepthExceeded``. Operators inside one permission cost nothing.
* **Cycles.** Data may loop (``group:1`` member of ``group:2`` member of ``group:1``). A name
  already being expanded on the same entity higher up the current path is not expanded again: it
  becomes the leaf ``{subjects: {subjects: [entity#name]}}``, a pointer to the node above it
  (Zanzibar's userset leaf), so every expansion terminates.
* **Nesting.** The tree is at most `MAX_TREE_DEPTH` nodes deep, or the expansion raises
  ``DepthExceeded``: callers serialise it recursively. The expansion itself runs on an explicit
  stack (each step a generator that yields the sub-expansions it needs), so neither the depth
  budget nor the schema's nesting is limited by Python's recursion limit.
* **Size.** The tree has at most `MAX_TREE_NODES` nodes, or the expansion raises
  ``InvalidRequest``. A tree repeats every shared part (``p0 = p1 and p2``, ``p1 = p2 and p3``,
  ... or two relations to the same parent at every level of the data), so its size can grow
  exponentially with the schema or the data while a check, which caches, stays linear.

Concurrency: one call is single-threaded and holds no shared state; it reads one
``SnapshotReader``, so the whole tree describes a single revision.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from typing import Any, Final, assert_never

from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    EntityDef,
    Node,
    Operation,
    ReferenceKind,
    Rewrite,
    RuleCall,
    RuleDef,
    Schema,
    TupleToUserSet,
)
from engine.errors import DepthExceeded, InvalidRequest, UnknownEntityType, UnknownPermission
from engine.types import Context, Entity
from storage.base import Attribute, AttributeValue, SnapshotReader, Subject

#: A node of the tree in proto-JSON field names.
Tree = dict[str, Any]
#: One expansion in progress: it yields the sub-expansions it needs, is sent each one's tree,
#: and returns its own (see `_run`).
Step = Generator["Step", Tree, Tree]

#: The deepest an expand tree may be, in nodes from the root to a leaf. Each node is three
#: levels of nested JSON (the node, its ``expand``, its ``children``), and the API serialises
#: the tree recursively within Python's default recursion limit of 1000 frames: 256 nodes take
#: about 770 of them, leaving the rest to the server's own stack.
MAX_TREE_DEPTH: Final = 256
#: The most nodes an expand tree may have: far more than anyone reads, and a few MiB of JSON.
MAX_TREE_NODES: Final = 10_000

_OPERATIONS = {
    Operation.UNION: "OPERATION_UNION",
    Operation.INTERSECTION: "OPERATION_INTERSECTION",
    Operation.EXCLUSION: "OPERATION_EXCLUSION",
}

_ANY_TYPES = {
    AttributeType.BOOLEAN: "BooleanValue",
    AttributeType.BOOLEAN_ARRAY: "BooleanArrayValue",
    AttributeType.STRING: "StringValue",
    AttributeType.STRING_ARRAY: "StringArrayValue",
    AttributeType.INTEGER: "IntegerValue",
    AttributeType.INTEGER_ARRAY: "IntegerArrayValue",
    AttributeType.DOUBLE: "DoubleValue",
    AttributeType.DOUBLE_ARRAY: "DoubleArrayValue",
}

_ZERO_SCALARS: dict[AttributeType, AttributeValue] = {
    AttributeType.BOOLEAN: False,
    AttributeType.STRING: "",
    AttributeType.INTEGER: 0,
    AttributeType.DOUBLE: 0.0,
}


def expand(
    schema: Schema,
    reader: SnapshotReader,
    entity: Entity,
    permission: str,
    *,
    context: Context,
    depth: int,
) -> Tree:
    """Permify's expand tree of ``entity``'s ``permission`` (a relation, permission, attribute or
    rule name), read through ``reader`` plus ``context``.

    Raises UnknownEntityType / UnknownPermission for a name the schema does not define (also when
    met in the data, e.g. an unvalidated tuple's subject type), and DepthExceeded when the tree is
    deeper than ``depth`` nested expansions or than `MAX_TREE_DEPTH` nodes; InvalidRequest when it
    would have more than `MAX_TREE_NODES` nodes.
    """
    expander = _Expander(schema, reader, context, depth)
    return _run(expander.expand(entity, permission, depth, 1))


def _run(root: Step) -> Tree:
    """Drive ``root`` and every sub-expansion it yields on an explicit stack: a tree of any
    depth costs a constant number of Python frames. An exception is thrown into the step that
    asked for the failing one, so its ``finally`` blocks run, as with plain calls."""
    stack = [root]
    sent: Tree | None = None  # the tree of the step just finished, for the step below it
    error: Exception | None = None  # or what it raised
    while stack:
        step = stack[-1]
        try:
            if error is not None:
                wanted = step.throw(error)
            elif sent is not None:
                wanted = step.send(sent)
            else:
                wanted = next(step)  # a step just started
        except StopIteration as done:
            stack.pop()
            sent, error = done.value, None
        except Exception as exc:
            stack.pop()
            sent, error = None, exc
        else:
            stack.append(wanted)
            sent, error = None, None
    if error is not None:
        raise error
    assert sent is not None
    return sent


class _Expander:
    """The state of one expand call: inputs, contextual tuples by relation, and the current path."""

    __slots__ = ("_attributes", "_budget", "_nodes", "_path", "_reader", "_schema", "_tuples")

    def __init__(
        self, schema: Schema, reader: SnapshotReader, context: Context, budget: int
    ) -> None:
        self._schema = schema
        self._reader = reader
        self._budget = budget
        self._tuples: dict[tuple[str, str, str], list[Subject]] = {}
        for t in context.tuples:
            self._tuples.setdefault((t.entity_type, t.entity_id, t.relation), []).append(t.subject)
        self._attributes: dict[tuple[str, str, str], Attribute] = {}
        for a in context.attributes:
            # The first of several contextual values wins, like Permify's single-attribute query.
            self._attributes.setdefault((a.entity_type, a.entity_id, a.name), a)
        self._path: set[tuple[str, str, str]] = set()
        self._nodes = 0

    def expand(
        self, entity: Entity, name: str, depth: int, level: int, arguments: tuple[str, ...] = ()
    ) -> Step:
        """One expansion: the node for ``name`` on ``entity``, dispatched on what ``name`` is;
        the node sits ``level`` nodes deep in the tree (the root is 1)."""
        if depth < 0:
            raise DepthExceeded(
                f"expand needs more than {self._budget} nested expansions: the budget ran out "
                f"at {entity}#{name}; ask for a larger depth"
            )
        self._count(entity, name)
        definition = self._schema.entity(entity.type)
        if definition is None:
            raise UnknownEntityType(
                f"entity type {entity.type!r} (of {entity}) is not defined in the schema; "
                f"expected one of: {', '.join(sorted(self._schema.entities)) or '(none)'}"
            )
        key = (entity.type, entity.id, name)
        if key in self._path:
            return _subjects_leaf(entity, name, [Subject(entity.type, entity.id, name)])
        self._path.add(key)
        try:
            match definition.references.get(name):
                case ReferenceKind.PERMISSION:
                    child = definition.permissions[name].child
                    return (yield self._node(entity, name, child, depth, level))
                case ReferenceKind.RELATION:
                    return (yield self._relation(entity, name, depth, level))
                case ReferenceKind.ATTRIBUTE:
                    return self._attribute(entity, name)
                case None:
                    rule = self._schema.rules.get(name)
                    if rule is None:
                        raise _unknown_name(definition, name)
                    return self._rule(entity, rule, arguments)
                case other:
                    assert_never(other)
        finally:
            self._path.discard(key)

    def _node(self, entity: Entity, permission: str, node: Node, depth: int, level: int) -> Step:
        """One node of ``permission``'s rewrite tree on ``entity``, ``level`` nodes deep."""
        match node:
            case Rewrite(operation=operation, children=children):
                self._count(entity, permission)
                below = _below(level, entity, permission)
                trees = []
                for child in children:
                    trees.append((yield self._node(entity, permission, child, depth, below)))
                return {
                    "entity": _entity(entity),
                    "permission": permission,
                    "expand": {"operation": _OPERATIONS[operation], "children": trees},
                }
            case ComputedUserSet(relation=relation):
                return (yield self.expand(entity, relation, depth - 1, level))
            case ComputedAttribute(name=name):
                return (yield self.expand(entity, name, depth - 1, level))
            case RuleCall(rule=rule, arguments=arguments):
                return (yield self.expand(entity, rule, depth - 1, level, arguments))
            case TupleToUserSet(tupleset=tupleset, computed=computed):
                self._count(entity, tupleset)
                parents = self._subjects(entity, tupleset)
                below = _below(level, entity, tupleset) if parents else level
                trees = []
                for p in parents:
                    parent = Entity(p.type, p.id)
                    trees.append((yield self.expand(parent, computed, depth - 1, below)))
                return _union(entity, tupleset, trees)
            case other:
                assert_never(other)

    def _count(self, entity: Entity, name: str) -> None:
        """One more node: every place that builds one counts it (some count a node that turns
        out to be transparent), so a tree that is returned has at most `MAX_TREE_NODES`."""
        self._nodes += 1
        if self._nodes > MAX_TREE_NODES:
            raise InvalidRequest(
                f"the expand tree has more than {MAX_TREE_NODES:,} nodes (the limit was "
                f"reached at {entity}#{name}): shared parts of the schema or data are repeated "
                "wherever they are reached; expand a name further down the tree"
            )

    def _relation(self, entity: Entity, relation: str, depth: int, level: int) -> Step:
        subjects = self._subjects(entity, relation)
        direct = [s for s in subjects if not s.relation]
        usersets = [s for s in subjects if s.relation]
        leaf = _subjects_leaf(entity, relation, direct + usersets)
        if not usersets:
            return leaf
        self._count(entity, relation)
        below = _below(level, entity, relation)
        trees = []
        for s in usersets:
            trees.append((yield self.expand(Entity(s.type, s.id), s.relation, depth - 1, below)))
        trees.append(leaf)
        return _union(entity, relation, trees)

    def _attribute(self, entity: Entity, name: str) -> Tree:
        found = self._attributes.get((entity.type, entity.id, name))
        if found is None:
            found = self._reader.attribute(entity.type, entity.id, name)
        if found is None:
            # Permify answers a missing attribute with `false`, whatever the declared type.
            found = Attribute(entity.type, entity.id, name, AttributeType.BOOLEAN, False)
        value = _any(found.type, found.value)
        return {"entity": _entity(entity), "permission": name, "leaf": {"value": value}}

    def _rule(self, entity: Entity, rule: RuleDef, arguments: tuple[str, ...]) -> Tree:
        values: dict[str, Any] = {}
        for name in sorted(set(arguments)):
            found = self._reader.attribute(entity.type, entity.id, name)
            if found is None:
                found = self._attributes.get((entity.type, entity.id, name))
            if found is None:
                kind = rule.parameters[name]
                values[name] = _any(kind, () if kind.is_array else _ZERO_SCALARS[kind])
            else:
                values[name] = _any(found.type, found.value)
        tree: Tree = {"entity": _entity(entity), "permission": rule.name}
        if arguments:
            tree["arguments"] = [{"computed_attribute": {"name": a}} for a in arguments]
        tree["leaf"] = {"values": {"values": values}}
        return tree

    def _subjects(self, entity: Entity, relation: str) -> list[Subject]:
        """Stored subjects in the reader's order, then contextual ones not already stored."""
        stored = self._reader.subjects(entity.type, entity.id, relation)
        extra = self._tuples.get((entity.type, entity.id, relation))
        if not extra:
            return stored
        seen = set(stored)
        merged = list(stored)
        for subject in extra:
            if subject not in seen:
                seen.add(subject)
                merged.append(subject)
        return merged


def _below(level: int, entity: Entity, name: str) -> int:
    """The level of the children of a node at ``level``, if the tree may grow that deep."""
    if level >= MAX_TREE_DEPTH:
        raise DepthExceeded(
            f"the expand tree nests deeper than this process can return: more than "
            f"{MAX_TREE_DEPTH} nodes from the root at {entity}#{name}; expand a name further "
            "down the tree"
        )
    return level + 1


def _unknown_name(definition: EntityDef, name: str) -> UnknownPermission:
    names = sorted(definition.references)
    return UnknownPermission(
        f"{name!r} is not a relation, permission, attribute or rule of entity type "
        f"{definition.name!r}; expected one of: {', '.join(names) or '(none)'}"
    )


def _entity(entity: Entity) -> dict[str, str]:
    return {"type": entity.type, "id": entity.id}


def _subject(subject: Subject) -> dict[str, str]:
    out = {"type": subject.type, "id": subject.id}
    if subject.relation:
        out["relation"] = subject.relation
    return out


def _subjects_leaf(entity: Entity, permission: str, subjects: Iterable[Subject]) -> Tree:
    return {
        "entity": _entity(entity),
        "permission": permission,
        "leaf": {"subjects": {"subjects": [_subject(s) for s in subjects]}},
    }


def _union(entity: Entity, permission: str, children: Iterable[Tree]) -> Tree:
    return {
        "entity": _entity(entity),
        "permission": permission,
        "expand": {"operation": _OPERATIONS[Operation.UNION], "children": list(children)},
    }


def _any(kind: AttributeType, value: AttributeValue) -> dict[str, Any]:
    """``value`` as a proto-JSON ``Any`` of Permify's value message for ``kind``."""
    data: Any
    if kind is AttributeType.DOUBLE:
        data = _double(value)
    elif kind is AttributeType.DOUBLE_ARRAY:
        assert isinstance(value, tuple)
        data = [_double(v) for v in value]
    elif kind.is_array:
        assert isinstance(value, tuple)
        data = list(value)
    else:
        data = value
    return {"@type": f"type.googleapis.com/base.v1.{_ANY_TYPES[kind]}", "data": data}


def _double(value: object) -> float | str:
    assert isinstance(value, int | float)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number
