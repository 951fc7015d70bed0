"""The schema's syntax tree: what was written, with positions, before any name is resolved."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True, order=True)
class Pos:
    """A 1-based line and column in the schema text."""

    line: int
    column: int


class Op(Enum):
    """Permission operators. All three share one precedence level and associate left."""

    OR = "or"
    AND = "and"
    NOT = "not"


@dataclass(frozen=True, slots=True)
class Path:
    """``owner``, ``parent.view`` (or a longer walk, which the compiler rejects)."""

    segments: tuple[str, ...]
    positions: tuple[Pos, ...]

    @property
    def pos(self) -> Pos:
        return self.positions[0]

    @property
    def end_line(self) -> int:
        return self.positions[-1].line


@dataclass(frozen=True, slots=True)
class Call:
    """A rule call inside a permission: ``check_balance(balance)``."""

    rule: str
    arguments: tuple[Path, ...]
    pos: Pos
    end_line: int


@dataclass(frozen=True, slots=True)
class Binary:
    """``left OP right``; ``pos`` is the operator's position."""

    op: Op
    left: Expr
    right: Expr
    pos: Pos


Expr = Path | Call | Binary


@dataclass(frozen=True, slots=True)
class TypeRef:
    """An attribute or parameter type as written: ``integer``, ``string[]``."""

    name: str
    is_array: bool
    pos: Pos

    def __str__(self) -> str:
        return f"{self.name}[]" if self.is_array else self.name


@dataclass(frozen=True, slots=True)
class SubjectType:
    """``@user`` or ``@group#member`` in a relation."""

    entity: str
    relation: str | None
    pos: Pos
    relation_pos: Pos | None = None

    def __str__(self) -> str:
        return f"@{self.entity}#{self.relation}" if self.relation else f"@{self.entity}"


@dataclass(frozen=True, slots=True)
class Relation:
    name: str
    subject_types: tuple[SubjectType, ...]
    pos: Pos
    name_pos: Pos
    end_line: int


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: TypeRef
    pos: Pos
    name_pos: Pos
    end_line: int


@dataclass(frozen=True, slots=True)
class Permission:
    """``permission p = expr`` or ``action p = expr`` (the same thing; the keyword is kept)."""

    name: str
    expr: Expr
    keyword: str
    pos: Pos
    name_pos: Pos
    end_line: int


Member = Relation | Attribute | Permission


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    members: tuple[Member, ...]
    pos: Pos
    name_pos: Pos
    end_line: int


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: TypeRef
    pos: Pos


@dataclass(frozen=True, slots=True)
class Rule:
    """``rule name(params) { body }``; ``body`` is the CEL text between the braces, verbatim."""

    name: str
    params: tuple[Param, ...]
    body: str
    pos: Pos
    name_pos: Pos
    body_pos: Pos
    end_line: int


Definition = Entity | Rule


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``//`` or ``/* */`` comment, kept so the formatter can put it back."""

    text: str
    pos: Pos
    end_line: int


@dataclass(frozen=True, slots=True)
class SchemaAst:
    definitions: tuple[Definition, ...]
    comments: tuple[Comment, ...]
