"""The names a schema declares, collected before anything refers to them.

Entities and rules share one namespace; the relations, permissions and attributes of an entity
share another. Each name is an identifier of at most `MAX_NAME_LENGTH` characters, a duplicate is
an error at its second occurrence, and declared types (of attributes and rule parameters) are
resolved to `AttributeType`: one of ``boolean string integer double``, optionally ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dsl import ast
from dsl.limits import MAX_NAME_LENGTH
from dsl.reporter import Reporter
from dsl.schema import AttributeType, ReferenceKind

KIND_OF: Final = {
    ast.Relation: ReferenceKind.RELATION,
    ast.Permission: ReferenceKind.PERMISSION,
    ast.Attribute: ReferenceKind.ATTRIBUTE,
}
_TYPE_NAMES: Final = "boolean, string, integer, double (each optionally with [])"
#: Words CEL reserves, plus the ``context`` variable every rule sees: no rule parameter may
#: take one of these names.
_CEL_RESERVED: Final = frozenset(
    {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let",
     "loop", "package", "namespace", "null", "return", "var", "void", "while", "context"}
)


@dataclass(slots=True)
class Names:
    """What a schema declares, first definition of each name only. A type in error is absent
    from ``attribute_types`` and None in ``rule_params``."""

    entities: dict[str, ast.Entity] = field(default_factory=dict)
    rules: dict[str, ast.Rule] = field(default_factory=dict)
    members: dict[str, dict[str, ast.Member]] = field(default_factory=dict)
    attribute_types: dict[tuple[str, str], AttributeType] = field(default_factory=dict)
    rule_params: dict[str, dict[str, AttributeType | None]] = field(default_factory=dict)


def article(kind: ReferenceKind) -> str:
    """``a relation``, ``a permission``, ``an attribute``."""
    return "an attribute" if kind is ReferenceKind.ATTRIBUTE else f"a {kind.value}"


def shown(segments: tuple[str, ...]) -> str:
    """A walk as written, shortened when very long."""
    return ".".join(segments) if len(segments) <= 4 else ".".join(segments[:3]) + ".…"


def declare(tree: ast.SchemaAst, report: Reporter) -> Names:
    """Collect top-level and member names, report duplicates, resolve declared types."""
    names = Names()
    first_at: dict[str, ast.Pos] = {}
    for definition in tree.definitions:
        _check_name(definition.name, definition.name_pos, report)
        kind = "entity" if isinstance(definition, ast.Entity) else "rule"
        if definition.name in first_at:
            at = first_at[definition.name]
            report.error(
                definition.name_pos,
                f"duplicate definition of `{definition.name}` ({kind}); "
                f"`{definition.name}` is already defined at {at.line}:{at.column}",
            )
            continue
        first_at[definition.name] = definition.name_pos
        if isinstance(definition, ast.Entity):
            names.entities[definition.name] = definition
        else:
            names.rules[definition.name] = definition
    if not names.entities and not report.diagnostics:
        report.error(ast.Pos(1, 1), "schema defines no entity (start with `entity user {}`)")

    for name, entity in names.entities.items():
        members: dict[str, ast.Member] = {}
        for member in entity.members:
            _check_name(member.name, member.name_pos, report)
            if member.name in members:
                previous = members[member.name]
                report.error(
                    member.name_pos,
                    f"duplicate name `{member.name}` in entity `{name}`: already defined as "
                    f"{article(KIND_OF[type(previous)])} at "
                    f"{previous.name_pos.line}:{previous.name_pos.column}",
                )
                continue
            members[member.name] = member
            if isinstance(member, ast.Attribute):
                resolved = _type(member.type, f"attribute `{member.name}`", report)
                if resolved is not None:
                    names.attribute_types[(name, member.name)] = resolved
        names.members[name] = members

    for name, rule in names.rules.items():
        params: dict[str, AttributeType | None] = {}
        for param in rule.params:
            _check_name(param.name, param.pos, report)
            if param.name in params:
                report.error(param.pos, f"rule `{name}` has two parameters named `{param.name}`")
                continue
            if param.name in _CEL_RESERVED:
                report.error(
                    param.pos,
                    f"`{param.name}` is reserved in rule expressions and cannot name a "
                    "parameter",
                )
            params[param.name] = _type(param.type, f"parameter `{param.name}`", report)
        names.rule_params[name] = params
    return names


def _check_name(name: str, pos: ast.Pos, report: Reporter) -> None:
    # The grammar admits only identifiers; their length is checked here.
    if len(name) > MAX_NAME_LENGTH:
        report.error(pos, f"name `{name[:16]}…` is longer than {MAX_NAME_LENGTH} characters")


def _type(ref: ast.TypeRef, what: str, report: Reporter) -> AttributeType | None:
    resolved = AttributeType.from_keyword(ref.name, ref.is_array)
    if resolved is None:
        report.error(
            ref.pos,
            f"unknown type `{ref}` for {what}; expected {_TYPE_NAMES}"
            + report.suggest(ref.name, ("boolean", "string", "integer", "double")),
        )
    return resolved
