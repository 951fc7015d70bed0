"""AST -> compiled `Schema`, reporting every semantic error at once.

Checks, each reported with the position of the offending name:
* names: the identifier syntax, at most 64 characters; entities and rules share one namespace,
  and relations, permissions and attributes of an entity share another (duplicates are errors);
* relations: at least one subject type; ``@T`` names an entity, ``@T#r`` a *relation* of it;
* attributes and rule parameters: one of ``boolean string integer double``, optionally ``[]``;
* permission operands: ``name`` is a relation, permission or boolean attribute of the entity;
  ``rel.name`` walks a relation of the entity to a relation or permission defined on *every*
  entity type ``rel`` admits (the engine evaluates ``name`` there); longer walks are refused;
* rule calls: the rule exists; arguments are attributes of the entity and bind to the parameter
  of the same name and type (Permify's by-name binding), each parameter exactly once;
* rule bodies: CEL that parses (syntax errors at their line:col in the schema). The CEL library
  (``cel``) only evaluates, it has no type checker, so a body is also run once on sample values
  of its parameters' types (``context.data`` empty): a non-boolean result, an undeclared name or,
  in a body that does not read ``context``, an operator applied to the wrong types is an error;
  what depends on the request (a missing ``context.data`` key, ...) is left to check time;
* cycles: a permission that reaches itself through computed references alone (no relation hop)
  could never be evaluated, so it is an error here rather than a depth error at check time;
* reference chains: a permission whose computed references (``a = b``, ``b = c``, ... ending at a
  relation, attribute or rule) form a chain of more than `MAX_REFERENCE_DEPTH` references could
  never be evaluated either: a check follows every reference of the chain, one unit of depth
  each, with no data in between, and no request gets that much depth.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from dsl import ast
from dsl.errors import Diagnostic, SchemaError
from dsl.gcpause import gc_paused
from dsl.parser import line_at, parse
from dsl.rule_cost import RuleBodyError, is_panic, measure
from dsl.schema import (
    AttributeDef,
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    Deferred,
    Edge,
    EdgeKind,
    EntityDef,
    Node,
    Operation,
    PermissionDef,
    ReferenceKind,
    RelationDef,
    RelationRef,
    Rewrite,
    RuleCall,
    RuleDef,
    Schema,
    TupleToUserSet,
)

if TYPE_CHECKING:
    import cel

MAX_NAME_LENGTH: Final = 64
#: Past this many errors the rest are not collected: a pathological schema cannot make the
#: compiler spend quadratic time on suggestions and quoted lines.
MAX_DIAGNOSTICS: Final = 100
#: Most computed references one permission may chain (``q0 = q1``, ``q1 = q2``, ... ``qn =
#: viewer`` is n + 1 references). A check spends one unit of depth on each, with no data in
#: between, and the engine gives a request at most about 225 units (`Engine.depth_cap`, with
#: Python's default recursion limit): a longer chain could never answer. 128 leaves room for
#: the data hops after the chain, and equals the operator nesting limit.
MAX_REFERENCE_DEPTH: Final = 128
#: Most subject types one relation may admit. A ``rel.name`` walk is checked, indexed for
#: lookups and followed once per type ``rel`` admits, so a schema's cost grows with walks times
#: types: unbounded, 200 KiB of schema (3,000 types, 3,000 walks) took 16 s to compile.
MAX_SUBJECT_TYPES: Final = 64
#: Names the compiler may compare, over a whole schema, while looking for "did you mean"
#: suggestions: each one costs time linear in the names it is picked from, and a hundred errors
#: among 30,000 entity names took a minute. Past this, errors come without suggestions.
MAX_SUGGESTION_WORK: Final = 50_000
_TYPE_NAMES: Final = "boolean, string, integer, double (each optionally with [])"
#: Words CEL reserves, plus the ``context`` variable every rule sees: no rule parameter may
#: take one of these names.
_CEL_RESERVED: Final = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
     "loop", "package", "namespace", "null", "return", "var", "void", "while", "context"}
)
#: A parse error in the CEL library's message: ``ERROR: <input>:line:col: text`` (1-based).
_CEL_SYNTAX_ERROR: Final = re.compile(r"^ERROR: <input>:(\d+):(\d+): (.*)$", re.MULTILINE)
_CEL_UNDEFINED: Final = re.compile(r"Undefined variable or function: '([^']*)'")
#: The values a rule body is tried on, by parameter type (arrays are tried empty).
_SAMPLE_VALUES: Final[dict[AttributeType, object]] = {
    AttributeType.BOOLEAN: False,
    AttributeType.STRING: "",
    AttributeType.INTEGER: 0,
    AttributeType.DOUBLE: 0.0,
}
_OPERATIONS: Final = {
    ast.Op.OR: Operation.UNION,
    ast.Op.AND: Operation.INTERSECTION,
    ast.Op.NOT: Operation.EXCLUSION,
}
_KIND_OF: Final = {
    ast.Relation: ReferenceKind.RELATION,
    ast.Permission: ReferenceKind.PERMISSION,
    ast.Attribute: ReferenceKind.ATTRIBUTE,
}


def load(source: str | bytes) -> Schema:
    """Parse and compile schema text. Raises `SchemaError` with every problem found."""
    return compile_schema(parse(source), source)


def compile_schema(tree: ast.SchemaAst, source: str | bytes = "") -> Schema:
    """Compile a parsed schema; ``source`` (the text parsed) fills in each error's source line."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    with gc_paused():
        return _Compiler(tree, text.removeprefix("\ufeff")).compile()


def _a(kind: ReferenceKind) -> str:
    return "an attribute" if kind is ReferenceKind.ATTRIBUTE else f"a {kind.value}"


def _shown(segments: tuple[str, ...]) -> str:
    """A walk as written, shortened when very long."""
    return ".".join(segments) if len(segments) <= 4 else ".".join(segments[:3]) + ".…"


class _Compiler:
    def __init__(self, tree: ast.SchemaAst, text: str) -> None:
        self.tree = tree
        self.lines = text.split("\n")
        self.diagnostics: list[Diagnostic] = []
        self.truncated = False
        self.suggestion_work = 0
        self.entities: dict[str, ast.Entity] = {}
        self.rules: dict[str, ast.Rule] = {}
        self.members: dict[str, dict[str, ast.Member]] = {}
        self.attribute_types: dict[tuple[str, str], AttributeType] = {}
        self.rule_params: dict[str, dict[str, AttributeType | None]] = {}
        # Recorded while compiling expressions, so no later pass walks them again.
        self.leaves: dict[tuple[str, str], list[Node]] = {}
        self.computed_refs: dict[str, dict[str, list[tuple[str, ast.Pos]]]] = {}

    def error(self, pos: ast.Pos, message: str) -> None:
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            self.truncated = True
            return
        self.diagnostics.append(
            Diagnostic(pos.line, pos.column, message, line_at(self.lines, pos.line))
        )

    def _suggest(self, name: str, candidates: Iterable[str]) -> str:
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            return ""  # not shown anyway
        names = list(candidates)
        self.suggestion_work += len(names)
        if self.suggestion_work > MAX_SUGGESTION_WORK:
            return ""
        close = difflib.get_close_matches(name, names, n=1)
        return f" (did you mean `{close[0]}`?)" if close else ""

    # -- driver ---------------------------------------------------------------------------------

    def compile(self) -> Schema:
        self._declare()
        relations = {name: self._relations(e) for name, e in self.entities.items()}
        rules = {name: self._rule(r) for name, r in self.rules.items()}
        entities: dict[str, EntityDef] = {}
        for name, entity in self.entities.items():
            permissions = self._permissions(entity)
            members = self.members[name]
            entities[name] = EntityDef(
                name=name,
                relations=relations[name],
                permissions=permissions,
                attributes={
                    m.name: AttributeDef(m.name, self.attribute_types[(name, m.name)])
                    for m in members.values()
                    if isinstance(m, ast.Attribute) and (name, m.name) in self.attribute_types
                },
                references={n: _KIND_OF[type(m)] for n, m in members.items()},
            )
        self._check_cycles()
        self._check_chains()
        if self.diagnostics:
            if self.truncated:
                last = max(self.diagnostics)
                self.diagnostics.append(
                    Diagnostic(
                        last.line,
                        last.column,
                        f"too many errors: only the first {MAX_DIAGNOSTICS} are reported",
                        last.source_line,
                    )
                )
            raise SchemaError(self.diagnostics)
        return Schema(
            entities=entities,
            rules=rules,
            subject_entrances=_subject_entrances(entities),
            dependents=Deferred(functools.partial(_dependents, entities, self.leaves)),
        )

    def _check_name(self, name: str, pos: ast.Pos) -> None:
        # The grammar admits only identifiers; their length is checked here.
        if len(name) > MAX_NAME_LENGTH:
            self.error(pos, f"name `{name[:16]}…` is longer than {MAX_NAME_LENGTH} characters")

    def _declare(self) -> None:
        """Collect top-level and member names, report duplicates, resolve declared types."""
        first_at: dict[str, ast.Pos] = {}
        for definition in self.tree.definitions:
            self._check_name(definition.name, definition.name_pos)
            kind = "entity" if isinstance(definition, ast.Entity) else "rule"
            if definition.name in first_at:
                at = first_at[definition.name]
                self.error(
                    definition.name_pos,
                    f"duplicate definition of `{definition.name}` ({kind}); "
                    f"`{definition.name}` is already defined at {at.line}:{at.column}",
                )
                continue
            first_at[definition.name] = definition.name_pos
            if isinstance(definition, ast.Entity):
                self.entities[definition.name] = definition
            else:
                self.rules[definition.name] = definition
        if not self.entities and not self.diagnostics:
            self.error(ast.Pos(1, 1), "schema defines no entity (start with `entity user {}`)")

        for name, entity in self.entities.items():
            members: dict[str, ast.Member] = {}
            for member in entity.members:
                self._check_name(member.name, member.name_pos)
                if member.name in members:
                    previous = members[member.name]
                    self.error(
                        member.name_pos,
                        f"duplicate name `{member.name}` in entity `{name}`: already defined as "
                        f"{_a(_KIND_OF[type(previous)])} at "
                        f"{previous.name_pos.line}:{previous.name_pos.column}",
                    )
                    continue
                members[member.name] = member
                if isinstance(member, ast.Attribute):
                    resolved = self._type(member.type, f"attribute `{member.name}`")
                    if resolved is not None:
                        self.attribute_types[(name, member.name)] = resolved
            self.members[name] = members

        for name, rule in self.rules.items():
            params: dict[str, AttributeType | None] = {}
            for param in rule.params:
                self._check_name(param.name, param.pos)
                if param.name in params:
                    self.error(param.pos, f"rule `{name}` has two parameters named `{param.name}`")
                    continue
                if param.name in _CEL_RESERVED:
                    self.error(
                        param.pos,
                        f"`{param.name}` is reserved in rule expressions and cannot name a "
                        "parameter",
                    )
                params[param.name] = self._type(param.type, f"parameter `{param.name}`")
            self.rule_params[name] = params

    def _type(self, ref: ast.TypeRef, what: str) -> AttributeType | None:
        resolved = AttributeType.from_keyword(ref.name, ref.is_array)
        if resolved is None:
            self.error(
                ref.pos,
                f"unknown type `{ref}` for {what}; expected {_TYPE_NAMES}"
                + self._suggest(ref.name, ("boolean", "string", "integer", "double")),
            )
        return resolved

    # -- relations ------------------------------------------------------------------------------

    def _relations(self, entity: ast.Entity) -> dict[str, RelationDef]:
        result: dict[str, RelationDef] = {}
        for member in self.members[entity.name].values():
            if not isinstance(member, ast.Relation):
                continue
            if not member.subject_types:
                self.error(
                    member.name_pos,
                    f"relation `{member.name}` needs at least one subject type, "
                    "e.g. `@user` or `@group#member`",
                )
            if len(member.subject_types) > MAX_SUBJECT_TYPES:
                self.error(
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
                    self.error(
                        subject.pos,
                        f"subject type `{subject}` is listed twice in relation `{member.name}`",
                    )
                    continue
                refs.append(ref)
            result[member.name] = RelationDef(member.name, tuple(refs))
        return result

    def _subject_type(self, subject: ast.SubjectType) -> RelationRef | None:
        if subject.entity not in self.entities:
            self.error(
                subject.pos,
                f"unknown entity `{subject.entity}` in subject type `{subject}`"
                + self._suggest(subject.entity, self.entities),
            )
            return None
        if subject.relation is None:
            return RelationRef(subject.entity)
        assert subject.relation_pos is not None
        target = self.members[subject.entity].get(subject.relation)
        if target is None:
            relations = [n for n, m in self.members[subject.entity].items()
                         if isinstance(m, ast.Relation)]
            self.error(
                subject.relation_pos,
                f"entity `{subject.entity}` has no relation `{subject.relation}`"
                + self._suggest(subject.relation, relations),
            )
            return None
        if not isinstance(target, ast.Relation):
            self.error(
                subject.relation_pos,
                f"`{subject.entity}#{subject.relation}` is {_a(_KIND_OF[type(target)])}; "
                "a subject relation must be a relation",
            )
            return None
        return RelationRef(subject.entity, subject.relation)

    # -- rules ----------------------------------------------------------------------------------

    def _rule(self, rule: ast.Rule) -> RuleDef:
        expression = normalise_rule_body(rule.body)
        declared = self.rule_params[rule.name]
        params = {n: t for n, t in declared.items() if t is not None}
        if not expression:
            self.error(rule.body_pos, f"rule `{rule.name}` has an empty body")
        else:
            self._check_body(rule, params if len(params) == len(declared) else None)
        return RuleDef(rule.name, params, expression)

    def _check_body(self, rule: ast.Rule, params: dict[str, AttributeType] | None) -> None:
        """Report a rule body that is not CEL, or (``params`` known) not a boolean expression."""
        # Imported only for a schema with rules: the package's import costs ~0.1 s (it pulls in
        # its command-line tool), and most schemas have none.
        import cel  # noqa: PLC0415

        # Measured first (size, nesting, cost), so nothing that could crash or stall the CEL
        # library reaches it. A body that is not CEL is still handed to the library, within
        # the size limit, for its own (better) syntax message.
        try:
            measure(rule.body)
            unreadable: RuleBodyError | None = None
        except RuleBodyError as exc:
            if not exc.syntax:
                self.error(self._body_pos(rule, exc.line, exc.column), exc.message)
                return
            unreadable = exc
        # The verbatim body, not the normalised expression: the two differ only in whitespace,
        # and the verbatim one's line:col map straight into the schema.
        try:
            program = cel.compile(rule.body)
        except BaseException as exc:
            # The binding's PanicException (a Rust panic) derives from BaseException.
            if not isinstance(exc, Exception) and not is_panic(exc):
                raise
            self._cel_syntax(rule, exc, unreadable)
            return
        if unreadable is not None:
            # The library took a body this project's CEL grammar cannot read, so it cannot be
            # priced: refused rather than run unmeasured.
            self.error(
                self._body_pos(rule, unreadable.line, unreadable.column),
                "rule body uses CEL syntax Stonetown cannot measure; rewrite it with the "
                "operators and macros of standard CEL",
            )
            return
        if params is None:
            return  # a parameter's type is in error already: nothing to try the body on
        self._try_body(rule, program, params)

    def _cel_syntax(self, rule: ast.Rule, exc: BaseException, ours: RuleBodyError | None) -> None:
        """Report the CEL library's syntax errors, each at its line:col in the schema."""
        if isinstance(exc, ValueError):
            # "Failed to parse expression '<body>': " then one "ERROR: ..." line per error, each
            # followed by the offending line and a caret.
            details = str(exc).removeprefix(f"Failed to parse expression '{rule.body}': ")
            found = False
            for match in _CEL_SYNTAX_ERROR.finditer(details):
                found = True
                line, column = int(match[1]), int(match[2])
                self.error(self._body_pos(rule, line, column), match[3])
            if found:
                return
        if ours is not None:
            self.error(self._body_pos(rule, ours.line, ours.column), ours.message)
        else:
            self.error(self._body_start(rule), f"rule body is not valid CEL: {exc}")

    def _try_body(
        self, rule: ast.Rule, program: cel.Program, params: dict[str, AttributeType]
    ) -> None:
        """Run the body once on sample values: a type error or a non-boolean result is the
        schema's fault, since parameters have fixed types."""
        sample: dict[str, object] = {
            name: () if kind.is_array else _SAMPLE_VALUES[kind] for name, kind in params.items()
        }
        sample["context"] = {"data": {}}
        try:
            value = program.execute(sample)
        except TypeError as exc:
            # Parameters have fixed types, so without ``context`` (dynamic) or ``dyn()`` an
            # operator that fails on the sample fails on every input: cel-go rejects it too.
            if "context" not in program.variables() and "dyn" not in program.functions():
                self.error(self._body_start(rule), _first_sentence(str(exc)))
            return
        except RuntimeError as exc:
            undefined = _CEL_UNDEFINED.match(str(exc))
            if undefined:
                name = undefined[1]
                self.error(
                    self._body_start(rule),
                    f"undeclared reference to `{name}` in rule `{rule.name}`: a rule sees its "
                    "parameters and `context.data`" + self._suggest(name, params),
                )
            return
        except Exception:
            # Anything else (a ``context.data`` key the sample lacks, a division by zero on
            # the sample values, ...) depends on the request: an error at check time.
            return
        if not isinstance(value, bool):
            self.error(
                self._body_start(rule),
                f"rule expression must result in a boolean type not {cel_type_name(value)}",
            )

    @staticmethod
    def _body_pos(rule: ast.Rule, line: int, column: int) -> ast.Pos:
        """The schema position of 1-based ``line``:``column`` of the verbatim rule body."""
        if line == 1:  # the body starts right after the `{` at body_pos
            return ast.Pos(rule.body_pos.line, rule.body_pos.column + column)
        return ast.Pos(rule.body_pos.line + line - 1, column)

    def _body_start(self, rule: ast.Rule) -> ast.Pos:
        """The schema position of the body's first non-blank character."""
        body = rule.body
        index = len(body) - len(body.lstrip())
        line = body.count("\n", 0, index) + 1
        return self._body_pos(rule, line, index - body.rfind("\n", 0, index))

    # -- permissions ----------------------------------------------------------------------------

    def _permissions(self, entity: ast.Entity) -> dict[str, PermissionDef]:
        permissions: dict[str, PermissionDef] = {}
        refs = self.computed_refs[entity.name] = {}
        for member in self.members[entity.name].values():
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
        member = self.members[entity].get(name)
        if isinstance(member, ast.Attribute):
            attribute_type = self.attribute_types.get((entity, name))
            if attribute_type is not None and attribute_type is not AttributeType.BOOLEAN:
                self.error(
                    path.pos,
                    f"attribute `{name}` is `{attribute_type.keyword}`; only `boolean` "
                    "attributes can be permission operands (use a rule for other types)",
                )
            return ComputedAttribute(name)
        if member is None:
            if name in self.rules:
                self.error(
                    path.pos, f"`{name}` is a rule; call it with its arguments: `{name}(...)`"
                )
            else:
                self.error(
                    path.pos,
                    f"`{name}` is not a relation, permission or attribute of entity `{entity}`"
                    + self._suggest(name, self.members[entity]),
                )
        return ComputedUserSet(name)

    def _walk(self, entity: str, path: ast.Path) -> Node:
        tupleset, computed = path.segments[0], path.segments[1]
        node = TupleToUserSet(tupleset, computed)
        if len(path.segments) > 2:
            self.error(
                path.positions[2],
                f"`{_shown(path.segments)}` walks more than one relation; write "
                "`relation.permission` and define a permission on the next entity to go further",
            )
            return node
        relation = self.members[entity].get(tupleset)
        if relation is None:
            self.error(
                path.pos,
                f"`{tupleset}` is not a relation of entity `{entity}`"
                + self._suggest(tupleset, self.members[entity]),
            )
            return node
        if not isinstance(relation, ast.Relation):
            self.error(
                path.pos,
                f"`{tupleset}` is {_a(_KIND_OF[type(relation)])} of entity `{entity}`; "
                f"the left side of `{tupleset}.{computed}` must be a relation",
            )
            return node
        if len(relation.subject_types) > MAX_SUBJECT_TYPES:
            return node  # reported at the relation
        seen: set[str] = set()
        for subject in relation.subject_types:
            target_entity = subject.entity
            if target_entity not in self.entities or target_entity in seen:
                continue
            seen.add(target_entity)
            target = self.members[target_entity].get(computed)
            if target is None:
                self.error(
                    path.positions[1],
                    f"`{computed}` is not a relation or permission of entity `{target_entity}` "
                    f"(which `{entity}#{tupleset}` admits)"
                    + self._suggest(computed, self.members[target_entity]),
                )
            elif isinstance(target, ast.Attribute):
                self.error(
                    path.positions[1],
                    f"`{target_entity}#{computed}` is an attribute; the right side of "
                    f"`{tupleset}.{computed}` must be a relation or permission",
                )
        return node

    def _call(self, entity: str, call: ast.Call) -> Node:
        node = RuleCall(call.rule, tuple(".".join(a.segments) for a in call.arguments))
        if call.rule not in self.rules:
            member = self.members[entity].get(call.rule)
            if member is not None:
                self.error(
                    call.pos,
                    f"`{call.rule}` is {_a(_KIND_OF[type(member)])} of `{entity}`, not a rule",
                )
            else:
                self.error(
                    call.pos, f"unknown rule `{call.rule}`" + self._suggest(call.rule, self.rules)
                )
            return node
        params = self.rule_params[call.rule]
        signature = ", ".join(params)
        if not call.arguments:
            self.error(
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
            self.error(
                call.pos,
                f"rule `{call.rule}` is missing argument(s) for parameter(s) "
                + ", ".join(f"`{m}`" for m in missing),
            )
        return node

    def _argument(self, entity: str, call: ast.Call, argument: ast.Path, bound: set[str]) -> bool:
        """Check one rule-call argument and bind it; False when it is in error."""
        params = self.rule_params[call.rule]
        name = argument.segments[0]
        if len(argument.segments) > 1:
            self.error(
                argument.pos,
                f"rule arguments are attribute names of `{entity}`; "
                f"`{_shown(argument.segments)}` is a walk (not supported)",
            )
            return False
        member = self.members[entity].get(name)
        if not isinstance(member, ast.Attribute):
            what = "" if member is None else f" (it is {_a(_KIND_OF[type(member)])})"
            attributes = [
                n for n, m in self.members[entity].items() if isinstance(m, ast.Attribute)
            ]
            self.error(
                argument.pos,
                f"`{name}` is not an attribute of entity `{entity}`{what}"
                + self._suggest(name, attributes),
            )
            return False
        if name not in params:
            self.error(
                argument.pos,
                f"rule `{call.rule}` has no parameter `{name}`: arguments bind to the parameter "
                f"of the same name ({', '.join(params)})",
            )
            return False
        if name in bound:
            self.error(argument.pos, f"argument `{name}` is passed twice")
            return False
        bound.add(name)
        attribute_type = self.attribute_types.get((entity, name))
        param_type = params[name]
        if attribute_type and param_type and attribute_type is not param_type:
            self.error(
                argument.pos,
                f"attribute `{entity}.{name}` is `{attribute_type.keyword}` but parameter "
                f"`{name}` of rule `{call.rule}` is `{param_type.keyword}`",
            )
            return False
        return True

    # -- cycles ---------------------------------------------------------------------------------

    def _check_cycles(self) -> None:
        """Report every permission cycle made of computed references only."""
        for entity_name, members in self.members.items():
            graph = {
                name: [(r, pos) for r, pos in refs if isinstance(members.get(r), ast.Permission)]
                for name, refs in self.computed_refs.get(entity_name, {}).items()
            }
            reported: set[frozenset[str]] = set()
            for cycle in _cycles(graph):
                key = frozenset(name for name, _ in cycle)
                if key in reported:
                    continue
                reported.add(key)
                start = min(cycle, key=lambda step: members[step[0]].name_pos)
                index = cycle.index(start)
                ordered = cycle[index:] + cycle[:index]
                loop = " -> ".join([name for name, _ in ordered] + [ordered[0][0]])
                self.error(
                    ordered[0][1],
                    f"permission `{ordered[0][0]}` of `{entity_name}` depends on itself with no "
                    f"relation in between ({loop}); it could never be evaluated",
                )


    def _check_chains(self) -> None:
        """Report each permission that starts a chain of more than `MAX_REFERENCE_DEPTH`
        computed references. Only where a chain starts: the permissions further along it are
        too deep for the same reason, and fixing the chain fixes them."""
        for entity_name, refs in self.computed_refs.items():
            members = self.members[entity_name]
            graph: dict[str, list[str]] = {}
            ends: dict[str, str] = {}
            for name, operands in refs.items():
                graph[name] = [r for r, _ in operands if isinstance(members.get(r), ast.Permission)]
                end = next(
                    (r for r, _ in operands
                     if isinstance(members.get(r), ast.Relation | ast.Attribute)),
                    None,
                )
                if end is None:
                    end = next(
                        (f"{leaf.rule}(…)" for leaf in self.leaves[(entity_name, name)]
                         if isinstance(leaf, RuleCall)),
                        None,
                    )
                if end is not None:
                    ends[name] = end
            chains = _longest_chains(graph, ends)
            too_deep = [n for n, (length, _) in chains.items() if length > MAX_REFERENCE_DEPTH]
            inner = {t for n in too_deep for t in graph[n]}
            for start in too_deep:
                if start in inner:
                    continue
                names = [start]
                following: str | None = start
                while following in chains:
                    following = chains[following][1]
                    if following is not None:
                        names.append(following)
                shown = " -> ".join(names if len(names) <= 8 else [*names[:3], "…", *names[-3:]])
                member = members[start]
                self.error(
                    member.name_pos,
                    f"reference chain deeper than {MAX_REFERENCE_DEPTH}: {shown} "
                    f"({chains[start][0]} references; a check spends one unit of depth on each, "
                    "more than any request may use); shorten the chain",
                )


def _longest_chains(
    graph: dict[str, list[str]], ends: dict[str, str]
) -> dict[str, tuple[int, str | None]]:
    """For each node of ``graph`` (a permission -> the permissions it references), how many
    references its longest chain has, and the next name on that chain (None: no reference).
    A node in ``ends`` references that relation, attribute or rule: a chain of one. An edge that
    closes a cycle (reported on its own) is ignored. Iterative: chains may be any length."""
    found: dict[str, tuple[int, str | None]] = {}
    on_path: set[str] = set()
    for root, references in graph.items():
        if root in found:
            continue
        on_path.add(root)
        stack = [(root, iter(references))]
        while stack:
            node, targets = stack[-1]
            target = next(targets, None)
            if target is not None:
                if target not in found and target not in on_path:
                    on_path.add(target)
                    stack.append((target, iter(graph[target])))
                continue
            stack.pop()
            on_path.discard(node)
            best: tuple[int, str | None] = (1, ends[node]) if node in ends else (0, None)
            for t in graph[node]:
                if t in found and found[t][0] + 1 > best[0]:
                    best = (found[t][0] + 1, t)
            found[node] = best
    return found


def _cycles(graph: dict[str, list[tuple[str, ast.Pos]]]) -> list[list[tuple[str, ast.Pos]]]:
    """Cycles found by depth-first search; each is a list of (node, position of its edge on)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    found: list[list[tuple[str, ast.Pos]]] = []
    for root, edges in graph.items():
        if colour[root] != white:
            continue
        colour[root] = grey
        path: list[tuple[str, ast.Pos | None]] = [(root, None)]
        iterators = [iter(edges)]
        while iterators:
            step = next(iterators[-1], None)
            if step is None:
                iterators.pop()
                node, _ = path.pop()
                colour[node] = black
                continue
            target, pos = step
            path[-1] = (path[-1][0], pos)
            if colour[target] == grey:
                start = next(i for i, (n, _) in enumerate(path) if n == target)
                found.append([(n, p) for n, p in path[start:] if p is not None])
            elif colour[target] == white:
                colour[target] = grey
                path.append((target, None))
                iterators.append(iter(graph[target]))
    return found


def _first_sentence(message: str) -> str:
    """The CEL library's runtime messages go on with advice; the first sentence says it."""
    head, dot, _ = message.partition(". ")
    return head + dot.strip()


def cel_type_name(value: object) -> str:
    """A CEL value's type as cel-go prints it: ``int``, ``list(string)``, ``map(string, int)``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if value is None:
        return "null_type"
    if isinstance(value, list | tuple):
        return f"list({_common_type(value)})"
    if isinstance(value, dict):
        return f"map({_common_type(value)}, {_common_type(value.values())})"
    if isinstance(value, datetime.datetime):
        return "google.protobuf.Timestamp"
    if isinstance(value, datetime.timedelta):
        return "google.protobuf.Duration"
    return type(value).__name__


def _common_type(values: Iterable[object]) -> str:
    """The one type of ``values``, or ``dyn`` when they have none (or several)."""
    names = {cel_type_name(v) for v in values}
    return names.pop() if len(names) == 1 else "dyn"


def keeps_verbatim(body: str) -> bool:
    """A body with a triple-quoted string, which may span lines: never re-indented."""
    return "'''" in body or '"""' in body


def normalise_rule_body(body: str) -> str:
    """A rule's CEL text with indentation made canonical.

    Blank edge lines and trailing spaces go and the common indentation is removed, so the
    formatter may re-indent a body without changing the compiled schema. A body holding a
    triple-quoted string (which may span lines) is only stripped.
    """
    if keeps_verbatim(body):
        return body.strip()
    lines = [line.rstrip() for line in body.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return textwrap.dedent("\n".join(lines))


def _subject_entrances(
    entities: dict[str, EntityDef],
) -> dict[RelationRef, tuple[tuple[str, str], ...]]:
    entrances: defaultdict[RelationRef, list[tuple[str, str]]] = defaultdict(list)
    for entity in entities.values():
        for relation in entity.relations.values():
            for ref in relation.subject_types:
                entrances[ref].append((entity.name, relation.name))
    return {ref: tuple(found) for ref, found in entrances.items()}


def _dependents(
    entities: dict[str, EntityDef], leaves: dict[tuple[str, str], list[Node]]
) -> dict[tuple[str, str], tuple[Edge, ...]]:
    # Plain tuples while collecting: hashing them is much cheaper than hashing dataclasses.
    found: defaultdict[tuple[str, str], dict[tuple[EdgeKind, str, str, str], None]]
    found = defaultdict(dict)
    relation_edge, computed, walk = (
        EdgeKind.SUBJECT_RELATION, EdgeKind.COMPUTED, EdgeKind.TUPLE_TO_USERSET
    )
    for entity in entities.values():
        name = entity.name
        for relation in entity.relations.values():
            for ref in relation.subject_types:
                if ref.relation:
                    found[(ref.type, ref.relation)][(relation_edge, name, relation.name, "")] = None
        for permission in entity.permissions.values():
            edge = (computed, name, permission.name, "")
            for leaf in leaves[(name, permission.name)]:
                if isinstance(leaf, ComputedUserSet):
                    found[(name, leaf.relation)][edge] = None
                elif isinstance(leaf, ComputedAttribute):
                    found[(name, leaf.name)][edge] = None
                elif isinstance(leaf, RuleCall):
                    for argument in leaf.arguments:
                        found[(name, argument)][edge] = None
                elif isinstance(leaf, TupleToUserSet):
                    tupleset = entity.relations[leaf.tupleset]
                    via = (walk, name, permission.name, leaf.tupleset)
                    for target in dict.fromkeys(ref.type for ref in tupleset.subject_types):
                        found[(target, leaf.computed)][via] = None
    return {source: tuple(Edge(*e) for e in edges) for source, edges in found.items()}
