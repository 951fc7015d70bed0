"""A naive evaluator of Permify's check semantics (spec §2.2), written to be obviously right.

It shares no code with ``engine/``: it reads the compiled ``dsl.schema.Schema`` and plain lists
of ``storage.base`` tuples and attributes, and answers check, lookup-entity, lookup-subject and
subject-permission by brute force over explicit id pools. Speed does not matter; clarity does.
Rules (CEL) are not supported: a rule call or a non-boolean attribute operand raises
``OracleError``, so tests only give it schemas built from relations, permissions, ``or`` /
``and`` / ``not``, arrows and boolean attributes.

Semantics (one *fact* is ``(entity type, entity id, name)`` for the fixed request subject):

* rule 1: the fact equal to the subject userset (``group:1#member`` asked about
  ``group:1#member``) holds;
* a permission is its rewrite tree: ``or`` any, ``and`` all, ``A not B`` = A and not B;
  ``rel.name`` is the union of ``name`` on every subject of ``rel`` (the stored subject
  relation is ignored); a bare name is that relation / permission / attribute of the same entity;
* a relation holds when a tuple's subject equals the request subject exactly, or through any
  userset subject ``T:id#r`` of it, where ``r`` may be a relation *or* a permission of ``T``;
* a boolean attribute holds when its value is ``true`` (contextual attributes beat stored ones).

Cycles in the data (group 1 in 2 in 1, a folder that is its own parent) make these equations
recursive; the answer is their **least fixed point**: a fact holds only if it has a finite
derivation, so a cycle with no way in denies. How it is computed, and why not more simply:

1. From the asked fact, build every reachable fact's formula (an and/or/not tree over other
   facts and constants) from the data.
2. Group the facts into strongly connected components (SCCs), naively: two facts are in one
   component when each reaches the other.
3. Solve components dependencies-first. Inside a component every fact starts *false* and all of
   them are re-evaluated until nothing changes. A ``not`` may refer only to facts of components
   already solved (else ``OracleError``: negation inside a cycle has no least fixed point), so
   inside one component every formula is monotone and the iteration climbs to the least fixed
   point, the standard evaluation of stratified Datalog.

Simpler schemes are wrong in ways these tests must catch. Re-evaluating *all* facts from
all-false at once lets a ``not B`` be briefly true while B is still unsolved, and a self-supporting
cycle then keeps the transient ``true`` for ever. Depth-first recursion that treats in-progress
facts as denied is right on its own but wrong once memoised, since an answer computed while an
ancestor was assumed false is not that fact's answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    Node,
    Operation,
    ReferenceKind,
    Rewrite,
    RuleCall,
    Schema,
    TupleToUserSet,
)
from storage.base import Attribute, Subject, Tuple

#: ``(entity type, entity id, relation / permission / attribute name)``.
Fact = tuple[str, str, str]


class OracleError(Exception):
    """The oracle cannot answer: a rule, an unknown name, or negation inside a cycle."""


# Formulas over facts: a constant, a reference to a fact, or an and/or/not of formulas.
@dataclass(frozen=True, slots=True)
class Ref:
    fact: Fact


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class ButNot:
    """``base`` holds and ``excluded`` does not (Permify's binary ``not``)."""

    base: Formula
    excluded: Formula


Formula = bool | Ref | AnyOf | AllOf | ButNot


def _evaluate(formula: Formula, value: Mapping[Fact, bool]) -> bool:
    if isinstance(formula, bool):
        return formula
    if isinstance(formula, Ref):
        return value[formula.fact]
    if isinstance(formula, AnyOf):
        return any(_evaluate(p, value) for p in formula.parts)
    if isinstance(formula, AllOf):
        return all(_evaluate(p, value) for p in formula.parts)
    return _evaluate(formula.base, value) and not _evaluate(formula.excluded, value)


def _references(formula: Formula, negated: bool = False) -> Iterable[tuple[Fact, bool]]:
    """Every fact the formula mentions, with whether it is under the excluded side of a ``not``."""
    if isinstance(formula, bool):
        return
    if isinstance(formula, Ref):
        yield formula.fact, negated
    elif isinstance(formula, AnyOf | AllOf):
        for part in formula.parts:
            yield from _references(part, negated)
    else:
        yield from _references(formula.base, negated)
        yield from _references(formula.excluded, True)


class Oracle:
    """Answers over one schema, a fixed list of tuples and attributes, by brute force."""

    def __init__(
        self,
        schema: Schema,
        tuples: Iterable[Tuple] = (),
        attributes: Iterable[Attribute] = (),
        *,
        context_attributes: Iterable[Attribute] = (),
    ) -> None:
        self.schema = schema
        self.subjects: dict[Fact, list[Subject]] = {}
        for t in dict.fromkeys(tuples):  # duplicates (stored and contextual) count once
            self.subjects.setdefault((t.entity_type, t.entity_id, t.relation), []).append(t.subject)
        self.attributes: dict[Fact, Attribute] = {}
        for a in (*attributes, *context_attributes):  # contextual last: it wins
            self.attributes[(a.entity_type, a.entity_id, a.name)] = a
        self._solved: dict[Subject, dict[Fact, bool]] = {}

    # -- the public questions -------------------------------------------------------------

    def check(self, entity_type: str, entity_id: str, name: str, subject: Subject) -> bool:
        fact = (entity_type, entity_id, name)
        solved = self._solved.setdefault(subject, {})
        if fact not in solved:
            self._solve(fact, subject, solved)
        return solved[fact]

    def lookup_entity(
        self, entity_type: str, name: str, subject: Subject, ids: Iterable[str]
    ) -> list[str]:
        """The ids (of the pool ``ids``) allowed, sorted as strings like Permify returns them."""
        return sorted(i for i in set(ids) if self.check(entity_type, i, name, subject))

    def lookup_subject(
        self,
        entity_type: str,
        entity_id: str,
        name: str,
        reference: tuple[str, str],
        ids: Iterable[str],
    ) -> list[str]:
        """The ids (of the pool ``ids``) whose subject ``type:id[#relation]`` is allowed, for
        ``reference`` = ``(type, relation)``."""
        subject_type, subject_relation = reference
        return sorted(
            i
            for i in set(ids)
            if self.check(entity_type, entity_id, name, Subject(subject_type, i, subject_relation))
        )

    def subject_permission(
        self, entity_type: str, entity_id: str, subject: Subject, *, only_permission: bool = False
    ) -> dict[str, bool]:
        """Every permission and, unless ``only_permission``, every relation -> allowed."""
        entity = self.schema.entities[entity_type]
        names = list(entity.permissions)
        if not only_permission:
            names += list(entity.relations)
        return {n: self.check(entity_type, entity_id, n, subject) for n in names}

    def seen_subject_ids(self, subject_type: str, subject_relation: str = "") -> set[str]:
        """Ids appearing as a subject ``type[#relation]`` in any tuple (lookup-subject's
        meaning of "every subject" when an attribute makes a permission hold for all)."""
        return {
            s.id
            for subjects in self.subjects.values()
            for s in subjects
            if (s.type, s.relation) == (subject_type, subject_relation)
        }

    # -- formulas ---------------------------------------------------------------------------

    def _formula(self, fact: Fact, subject: Subject) -> Formula:
        """What ``fact`` means for ``subject``, in terms of other facts (spec §2.2 steps 1-6)."""
        entity_type, entity_id, name = fact
        if subject.relation and fact == (subject.type, subject.id, subject.relation):
            return True  # rule 1
        entity = self.schema.entities.get(entity_type)
        if entity is None:
            raise OracleError(f"unknown entity type {entity_type!r} (reached by {fact})")
        kind = entity.references.get(name)
        if kind is ReferenceKind.PERMISSION:
            return self._tree(entity_type, entity_id, entity.permissions[name].child)
        if kind is ReferenceKind.RELATION:
            parts: list[Formula] = []
            for s in self.subjects.get(fact, []):
                if s == subject:
                    return True
                if s.relation:
                    parts.append(Ref((s.type, s.id, s.relation)))
            return AnyOf(tuple(parts))
        if kind is ReferenceKind.ATTRIBUTE:
            if entity.attributes[name].type is not AttributeType.BOOLEAN:
                raise OracleError(f"{entity_type}#{name} is not a boolean attribute")
            attribute = self.attributes.get(fact)
            return attribute is not None and attribute.value is True
        raise OracleError(f"{entity_type}#{name} is a rule or unknown: the oracle has no CEL")

    def _tree(self, entity_type: str, entity_id: str, node: Node) -> Formula:
        if isinstance(node, ComputedUserSet):
            return Ref((entity_type, entity_id, node.relation))
        if isinstance(node, ComputedAttribute):
            return Ref((entity_type, entity_id, node.name))
        if isinstance(node, TupleToUserSet):
            stored = self.subjects.get((entity_type, entity_id, node.tupleset), [])
            # The stored subject relation is ignored: only the subject's type and id count.
            targets = dict.fromkeys((s.type, s.id) for s in stored)
            return AnyOf(tuple(Ref((t, i, node.computed)) for t, i in targets))
        if isinstance(node, RuleCall):
            raise OracleError(f"rule {node.rule!r}: the oracle has no CEL")
        if isinstance(node, Rewrite):
            parts = tuple(self._tree(entity_type, entity_id, c) for c in node.children)
            if node.operation is Operation.UNION:
                return AnyOf(parts)
            if node.operation is Operation.INTERSECTION:
                return AllOf(parts)
            return ButNot(parts[0], AnyOf(parts[1:]))
        raise OracleError(f"unexpected rewrite node {node!r}")

    # -- the least fixed point ----------------------------------------------------------------

    def _solve(self, root: Fact, subject: Subject, solved: dict[Fact, bool]) -> None:
        """Add to ``solved`` the value of ``root`` and of every unsolved fact it reaches."""
        formulas: dict[Fact, Formula] = {}
        pending = [root]
        while pending:
            fact = pending.pop()
            if fact in solved or fact in formulas:
                continue
            formulas[fact] = self._formula(fact, subject)
            pending.extend(f for f, _ in _references(formulas[fact]))

        edges = {
            fact: {f for f, _ in _references(formula) if f not in solved}
            for fact, formula in formulas.items()
        }
        reach = {fact: _reachable(fact, edges) for fact in formulas}
        components: list[set[Fact]] = []
        placed: set[Fact] = set()
        for fact in formulas:
            if fact not in placed:
                component = {f for f in reach[fact] if fact in reach[f]} | {fact}
                components.append(component)
                placed |= component

        while components:
            # Any component whose outside dependencies are all solved (one always exists: the
            # components form a DAG).
            component = next(
                c for c in components if all(f in solved or f in c for m in c for f in edges[m])
            )
            components.remove(component)
            for member in component:
                for fact, negated in _references(formulas[member]):
                    if negated and fact in component:
                        raise OracleError(
                            f"{member} excludes {fact}, which depends on {member} again: "
                            "negation inside a cycle has no least fixed point"
                        )
            value = {**solved, **dict.fromkeys(component, False)}
            changed = True
            while changed:
                changed = False
                for member in component:
                    new = _evaluate(formulas[member], value)
                    if new != value[member]:
                        value[member] = new
                        changed = True
            for member in component:
                solved[member] = value[member]


def _reachable(start: Fact, edges: Mapping[Fact, set[Fact]]) -> set[Fact]:
    """Facts reachable from ``start`` by one or more edges."""
    seen: set[Fact] = set()
    pending = list(edges[start])
    while pending:
        fact = pending.pop()
        if fact not in seen:
            seen.add(fact)
            pending.extend(edges[fact])
    return seen
