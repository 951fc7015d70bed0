"""Expand: the userset tree behind one relation, permission, attribute or rule of one entity.

The answer is a typed tree (`ExpandTree`) with the nodes of Permify's
``PermissionExpandResponse.tree``; the API renders it in Permify's wire format. Every node names
the ``entity`` and the ``permission`` it stands for and is either an `OperationNode` (an
operation over child nodes) or a leaf. How each name is expanded:

* **permission**: its rewrite tree. A ``Rewrite`` becomes an `OperationNode` labelled with the
  permission, its `Operation` and one child per operand, in schema order. Operands:

  * ``r`` (computed userset) and ``a`` (boolean attribute operand) are transparent: the node is
    whatever expanding ``r`` / ``a`` on the same entity gives, labelled ``r`` / ``a``
    (so ``permission admin = view`` answers with a tree labelled ``view``);
  * ``t.c`` (tuple-to-userset) is a union labelled ``t`` on the current entity with one child per
    subject of ``t`` (its relation ignored): ``c`` expanded on that subject's entity;
  * ``rule(a, b)`` is the rule leaf below, with its arguments.

  A permission whose whole child is one operand is that operand's node, with no wrapper.
* **relation**: the subjects of its tuples, stored ones first (the reader's order) and then the
  request's contextual tuples not already stored; subjects without a relation come before
  usersets in the `SubjectsLeaf`. When there are usersets (``group:1#member``), the node becomes
  a union labelled with the relation: one child per userset (``member`` expanded on
  ``group:1``) followed, last, by the leaf itself.
* **attribute**: an `AttributeLeaf`, the contextual attribute first, then the stored one; a
  missing attribute is boolean ``false`` whatever its declared type (as Permify does).
* **rule** (reached through a call): a `RuleLeaf` with the call's arguments and, by name, each
  argument's value read for this entity from the store first, then the context, else the zero
  value of the parameter type. Rules are not evaluated.

Beyond Permify (whose expand neither counts depth nor stops on cycles):

* **Depth.** Every nested expansion (an operand that names another relation, permission,
  attribute or rule, a tuple-to-userset parent, a userset subject) costs one unit; below zero it
  raises ``DepthExceeded``. Operators inside one permission cost nothing.
* **Cycles.** Data may loop (``group:1`` member of ``group:2`` member of ``group:1``). A name
  already being expanded on the same entity higher up the current path is not expanded again: it
  becomes a `SubjectsLeaf` holding ``entity#name``, a pointer to the node above it (Zanzibar's
  userset leaf), so every expansion terminates.
* **Nesting.** The tree is at most `MAX_TREE_DEPTH` nodes deep, or the expansion raises
  ``DepthExceeded``, so whoever walks it knows a bound. The expansion itself runs on an explicit
  stack (each step a generator that yields the sub-expansions it needs), so neither the depth
  budget nor the schema's nesting is limited by Python's recursion limit.
* **Size.** The tree has at most `MAX_TREE_NODES` nodes, or the expansion raises
  ``InvalidRequest``. A tree repeats every shared part (``p0 = p1 and p2``, ``p1 = p2 and p3``,
  ... or two relations to the same parent at every level of the data), so its size can grow
  exponentially with the schema or the data while a check, which caches, stays linear.

Concurrency: one call is single-threaded and holds no shared state; it reads one
``SnapshotReader``, so the whole tree describes a single revision. The tree is immutable.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Final, assert_never

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


@dataclass(frozen=True, slots=True)
class TypedValue:
    """An attribute's value with its type (a rule argument's, or an attribute leaf's)."""

    type: AttributeType
    value: AttributeValue


@dataclass(frozen=True, slots=True)
class OperationNode:
    """``permission`` of ``entity`` as ``operation`` over ``children`` (a rewrite, or the union
    of a tuple-to-userset's parents or of a relation's usersets)."""

    entity: Entity
    permission: str
    operation: Operation
    children: tuple[ExpandTree, ...]


@dataclass(frozen=True, slots=True)
class SubjectsLeaf:
    """The subjects of relation ``permission`` of ``entity``: plain ones, then usersets."""

    entity: Entity
    permission: str
    subjects: tuple[Subject, ...]


@dataclass(frozen=True, slots=True)
class AttributeLeaf:
    """The value of attribute ``permission`` of ``entity``."""

    entity: Entity
    permission: str
    value: TypedValue


@dataclass(frozen=True, slots=True)
class RuleLeaf:
    """Rule ``permission`` called on ``entity``: the call's ``arguments`` (attribute names, in
    call order) and each argument's value, by name in sorted order. The rule is not evaluated."""

    entity: Entity
    permission: str
    arguments: tuple[str, ...]
    values: tuple[tuple[str, TypedValue], ...]


#: A node of the expand tree.
ExpandTree = OperationNode | SubjectsLeaf | AttributeLeaf | RuleLeaf
#: One expansion in progress: it yields the sub-expansions it needs, is sent each one's tree,
#: and returns its own (see `_run`).
Step = Generator["Step", ExpandTree, ExpandTree]

#: The deepest an expand tree may be, in nodes from the root to a leaf. Rendered as JSON, each
#: node is three levels of nesting (the node, its ``expand``, its ``children``), and JSON
#: encoders recurse within Python's default recursion limit of 1000 frames: 256 nodes take
#: about 770 of them, leaving the rest to the server's own stack.
MAX_TREE_DEPTH: Final = 256
#: The most nodes an expand tree may have: far more than anyone reads, and a few MiB of JSON.
MAX_TREE_NODES: Final = 10_000

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
) -> ExpandTree:
    """The expand tree of ``entity``'s ``permission`` (a relation, permission, attribute or
    rule name), read through ``reader`` plus ``context``.

    Raises UnknownEntityType / UnknownPermission for a name the schema does not define (also when
    met in the data, e.g. an unvalidated tuple's subject type), and DepthExceeded when the tree is
    deeper than ``depth`` nested expansions or than `MAX_TREE_DEPTH` nodes; InvalidRequest when it
    would have more than `MAX_TREE_NODES` nodes.
    """
    expander = _Expander(schema, reader, context, depth)
    return _run(expander.expand(entity, permission, depth, 1))


def _run(root: Step) -> ExpandTree:
    """Drive ``root`` and every sub-expansion it yields on an explicit stack: a tree of any
    depth costs a constant number of Python frames. An exception is thrown into the step that
    asked for the failing one, so its ``finally`` blocks run, as with plain calls."""
    stack = [root]
    sent: ExpandTree | None = None  # the tree of the step just finished, for the step below it
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
            return SubjectsLeaf(entity, name, (Subject(entity.type, entity.id, name),))
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
                trees: list[ExpandTree] = []
                for child in children:
                    trees.append((yield self._node(entity, permission, child, depth, below)))
                return OperationNode(entity, permission, operation, tuple(trees))
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
                return OperationNode(entity, tupleset, Operation.UNION, tuple(trees))
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
        leaf = SubjectsLeaf(entity, relation, (*direct, *usersets))
        if not usersets:
            return leaf
        self._count(entity, relation)
        below = _below(level, entity, relation)
        trees: list[ExpandTree] = []
        for s in usersets:
            trees.append((yield self.expand(Entity(s.type, s.id), s.relation, depth - 1, below)))
        trees.append(leaf)
        return OperationNode(entity, relation, Operation.UNION, tuple(trees))

    def _attribute(self, entity: Entity, name: str) -> AttributeLeaf:
        found = self._attributes.get((entity.type, entity.id, name))
        if found is None:
            found = self._reader.attribute(entity.type, entity.id, name)
        if found is None:
            # Permify answers a missing attribute with `false`, whatever the declared type.
            return AttributeLeaf(entity, name, TypedValue(AttributeType.BOOLEAN, False))
        return AttributeLeaf(entity, name, TypedValue(found.type, found.value))

    def _rule(self, entity: Entity, rule: RuleDef, arguments: tuple[str, ...]) -> RuleLeaf:
        values = []
        for name in sorted(set(arguments)):
            found = self._reader.attribute(entity.type, entity.id, name)
            if found is None:
                found = self._attributes.get((entity.type, entity.id, name))
            if found is None:
                kind = rule.parameters[name]
                value = TypedValue(kind, () if kind.is_array else _ZERO_SCALARS[kind])
            else:
                value = TypedValue(found.type, found.value)
            values.append((name, value))
        return RuleLeaf(entity, rule.name, arguments, tuple(values))

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
