"""The references a schema makes, resolved against its declared names (`dsl.names`) and compiled
into the engine's model: each error reported with the position of the offending name.

* relations: at least one subject type, at most `MAX_SUBJECT_TYPES`; ``@T`` names an entity,
  ``@T#r`` a *relation* of it;
* permission operands: ``name`` is a relation, permission or boolean attribute of the entity;
  ``rel.name`` walks a relation of the entity to a relation or permission defined on *every*
  entity type ``rel`` admits (the engine evaluates ``name`` there); longer walks are refused;
* rule calls: the rule exists; arguments are attributes of the entity and bind to the parameter
  of the same name and type (Permify's by-name binding), each parameter exactly once.

While compiling permissions it records each one's leaves and single-name operands, so the
checks on the reference graph (`dsl.reference_graph`) and the schema's indexes walk no
expression again.
"""

from __future__ import annotations

from typing import Final

from dsl import ast
from dsl.limits import MAX_SUBJECT_TYPES
from dsl.names import KIND_OF, Names, article, shown
from dsl.reporter import Reporter
from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    Node,
    Operation,
    PermissionDef,
    RelationDef,
    RelationRef,
    Rewrite,
    RuleCall,
    TupleToUserSet,
)

_OPERATIONS: Final = {
    ast.Op.OR: Operation.UNION,
    ast.Op.AND: Operation.INTERSECTION,
    ast.Op.NOT: Operation.EXCLUSION,
}


class References:
    """Compiles the relations and permissions of each entity of ``names``."""

    def __init__(self, names: Names, report: Reporter) -> None:
        self.names = names
        self.report = report
        # Recorded while compiling expressions, so no later pass walks them again.
        #: (entity, permission) -> the leaf nodes of its expression.
        self.leaves: dict[tuple[str, str], list[Node]] = {}
        #: entity -> permission -> its single-name operands, with their positions.
        self.computed_refs: dict[str, dict[str, list[tuple[str, ast.Pos]]]] = {}

    def relations(self, entity: ast.Entity) -> dict[str, RelationDef]:
        """The relations of ``entity``, each with the subject types it admits."""
        result: dict[str, RelationDef] = {}
        for member in self.names.members[entity.name].values():
            if not isinstance(member, ast.Relation):
                continue
            if not member.subject_types:
                self.report.error(
                    member.name_pos,
                    f"relation `{member.name}` needs at least one subject type, "
                    "e.g. `@user` or `@group#member`",
                )
            if len(member.subject_types) > MAX_SUBJECT_TYPES:
                self.report.error(
                    member.subject_types[MAX_SUBJECT_TYPES].pos,
                    f"relation `{member.name}` admits {len(member.subject_types)} subject types, "
                    f"more than {MAX_SUBJECT_TYPES}; group the subjects under fewer entity types",
                )
                result[member.name] = RelationDef(member.name, ())
                continue
            refs: list[RelationRef] = []
            for subject in member.subject_types:
                ref = self._subject_type(subject)
                if ref is None:
                    continue
                if ref in refs:
                    self.report.error(
                        subject.pos,
                        f"subject type `{subject}` is listed twice in relation `{member.name}`",
                    )
                    continue
                refs.append(ref)
            result[member.name] = RelationDef(member.name, tuple(refs))
        return result

    def _subject_type(self, subject: ast.SubjectType) -> RelationRef | None:
        if subject.entity not in self.names.entities:
            self.report.error(
                subject.pos,
                f"unknown entity `{subject.entity}` in subject type `{subject}`"
                + self.report.suggest(subject.entity, self.names.entities),
            )
            return None
        if subject.relation is None:
            return RelationRef(subject.entity)
        assert subject.relation_pos is not None
        target = self.names.members[subject.entity].get(subject.relation)
        if target is None:
            relations = [n for n, m in self.names.members[subject.entity].items()
                         if isinstance(m, ast.Relation)]
            self.report.error(
                subject.relation_pos,
                f"entity `{subject.entity}` has no relation `{subject.relation}`"
                + self.report.suggest(subject.relation, relations),
            )
            return None
        if not isinstance(target, ast.Relation):
            self.report.error(
                subject.relation_pos,
                f"`{subject.entity}#{subject.relation}` is {article(KIND_OF[type(target)])}; "
                "a subject relation must be a relation",
            )
            return None
        return RelationRef(subject.entity, subject.relation)

    def permissions(self, entity: ast.Entity) -> dict[str, PermissionDef]:
        """The permissions of ``entity``, each compiled to a rewrite tree."""
        permissions: dict[str, PermissionDef] = {}
        refs = self.computed_refs[entity.name] = {}
        for member in self.names.members[entity.name].values():
            if isinstance(member, ast.Permission):
                leaves = self.leaves[(entity.name, member.name)] = []
                computed = refs[member.name] = []
                node = self._expr(entity.name, member.expr, leaves, computed)
                permissions[member.name] = PermissionDef(member.name, node)
        return permissions

    def _expr(
        self,
        entity: str,
        expr: ast.Expr,
        leaves: list[Node],
        computed: list[tuple[str, ast.Pos]],
    ) -> Node:
        """Compile an expression, appending its leaves and its single-name operands."""
        # Recursion is bounded by the parser's MAX_EXPRESSION_DEPTH.
        if isinstance(expr, ast.Binary):
            return Rewrite(
                _OPERATIONS[expr.op],
                (
                    self._expr(entity, expr.left, leaves, computed),
                    self._expr(entity, expr.right, leaves, computed),
                ),
            )
        if isinstance(expr, ast.Call):
            node = self._call(entity, expr)
        elif len(expr.segments) == 1:
            computed.append((expr.segments[0], expr.pos))
            node = self._computed(entity, expr)
        else:
            node = self._walk(entity, expr)
        leaves.append(node)
        return node

    def _computed(self, entity: str, path: ast.Path) -> Node:
        name = path.segments[0]
        member = self.names.members[entity].get(name)
        if isinstance(member, ast.Attribute):
            attribute_type = self.names.attribute_types.get((entity, name))
            if attribute_type is not None and attribute_type is not AttributeType.BOOLEAN:
                self.report.error(
                    path.pos,
                    f"attribute `{name}` is `{attribute_type.keyword}`; only `boolean` "
                    "attributes can be permission operands (use a rule for other types)",
                )
            return ComputedAttribute(name)
        if member is None:
            if name in self.names.rules:
                self.report.error(
                    path.pos, f"`{name}` is a rule; call it with its arguments: `{name}(...)`"
                )
            else:
                self.report.error(
                    path.pos,
                    f"`{name}` is not a relation, permission or attribute of entity `{entity}`"
                    + self.report.suggest(name, self.names.members[entity]),
                )
        return ComputedUserSet(name)

    def _walk(self, entity: str, path: ast.Path) -> Node:
        tupleset, computed = path.segments[0], path.segments[1]
        node = TupleToUserSet(tupleset, computed)
        if len(path.segments) > 2:
            self.report.error(
                path.positions[2],
                f"`{shown(path.segments)}` walks more than one relation; write "
                "`relation.permission` and define a permission on the next entity to go further",
            )
            return node
        relation = self.names.members[entity].get(tupleset)
        if relation is None:
            self.report.error(
                path.pos,
                f"`{tupleset}` is not a relation of entity `{entity}`"
                + self.report.suggest(tupleset, self.names.members[entity]),
            )
            return node
        if not isinstance(relation, ast.Relation):
            self.report.error(
                path.pos,
                f"`{tupleset}` is {article(KIND_OF[type(relation)])} of entity `{entity}`; "
                f"the left side of `{tupleset}.{computed}` must be a relation",
            )
            return node
        if len(relation.subject_types) > MAX_SUBJECT_TYPES:
            return node  # reported at the relation
        seen: set[str] = set()
        for subject in relation.subject_types:
            target_entity = subject.entity
            if target_entity not in self.names.entities or target_entity in seen:
                continue
            seen.add(target_entity)
            target = self.names.members[target_entity].get(computed)
            if target is None:
                self.report.error(
                    path.positions[1],
                    f"`{computed}` is not a relation or permission of entity `{target_entity}` "
                    f"(which `{entity}#{tupleset}` admits)"
                    + self.report.suggest(computed, self.names.members[target_entity]),
                )
            elif isinstance(target, ast.Attribute):
                self.report.error(
                    path.positions[1],
                    f"`{target_entity}#{computed}` is an attribute; the right side of "
                    f"`{tupleset}.{computed}` must be a relation or permission",
                )
        return node

    def _call(self, entity: str, call: ast.Call) -> Node:
        node = RuleCall(call.rule, tuple(".".join(a.segments) for a in call.arguments))
        if call.rule not in self.names.rules:
            member = self.names.members[entity].get(call.rule)
            if member is not None:
                self.report.error(
                    call.pos,
                    f"`{call.rule}` is {article(KIND_OF[type(member)])} of `{entity}`, not a rule",
                )
            else:
                self.report.error(
                    call.pos,
                    f"unknown rule `{call.rule}`"
                    + self.report.suggest(call.rule, self.names.rules),
                )
            return node
        params = self.names.rule_params[call.rule]
        signature = ", ".join(params)
        if not call.arguments:
            self.report.error(
                call.pos,
                f"rule `{call.rule}` is called without arguments; it takes ({signature})",
            )
            return node
        bound: set[str] = set()
        failed = False
        for argument in call.arguments:
            failed |= not self._argument(entity, call, argument, bound)
        missing = [p for p in params if p not in bound]
        if missing and not failed:
            self.report.error(
                call.pos,
                f"rule `{call.rule}` is missing argument(s) for parameter(s) "
                + ", ".join(f"`{m}`" for m in missing),
            )
        return node

    def _argument(self, entity: str, call: ast.Call, argument: ast.Path, bound: set[str]) -> bool:
        """Check one rule-call argument and bind it; False when it is in error."""
        params = self.names.rule_params[call.rule]
        name = argument.segments[0]
        if len(argument.segments) > 1:
            self.report.error(
                argument.pos,
                f"rule arguments are attribute names of `{entity}`; "
                f"`{shown(argument.segments)}` is a walk (not supported)",
            )
            return False
        member = self.names.members[entity].get(name)
        if not isinstance(member, ast.Attribute):
            what = "" if member is None else f" (it is {article(KIND_OF[type(member)])})"
            attributes = [
                n for n, m in self.names.members[entity].items() if isinstance(m, ast.Attribute)
            ]
            self.report.error(
                argument.pos,
                f"`{name}` is not an attribute of entity `{entity}`{what}"
                + self.report.suggest(name, attributes),
            )
            return False
        if name not in params:
            self.report.error(
                argument.pos,
                f"rule `{call.rule}` has no parameter `{name}`: arguments bind to the parameter "
                f"of the same name ({', '.join(params)})",
            )
            return False
        if name in bound:
            self.report.error(argument.pos, f"argument `{name}` is passed twice")
            return False
        bound.add(name)
        attribute_type = self.names.attribute_types.get((entity, name))
        param_type = params[name]
        if attribute_type and param_type and attribute_type is not param_type:
            self.report.error(
                argument.pos,
                f"attribute `{entity}.{name}` is `{attribute_type.keyword}` but parameter "
                f"`{name}` of rule `{call.rule}` is `{param_type.keyword}`",
            )
            return False
        return True
