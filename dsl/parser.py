"""Schema text -> AST (`dsl.ast.SchemaAst`).

The grammar lives in ``grammar.lark``. Lark's LALR parser runs the `_ToAst` callbacks as it
reduces, so no parse tree is built and nothing here recurses with the input's nesting. Every
failure, whatever the input (bytes that are not UTF-8, NUL, unbalanced anything), leaves this
module as a `SchemaError`; Lark's exceptions are translated at this boundary.

A syntax error does not end the parse: `dsl.syntax_errors.Recovery` records it, drops the
definition it is in and resumes at the next top-level `entity` or `rule`, so one run reports the
syntax errors of every definition (and none that the first error merely caused). What each
syntax error says is worded there too.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from typing import Any, Final, Protocol

import lark_cython  # type: ignore[import-untyped]
from lark import Lark, Transformer
from lark.exceptions import LarkError, UnexpectedInput

from dsl.ast import (
    Attribute,
    Binary,
    Call,
    Comment,
    Definition,
    Entity,
    Expr,
    Member,
    Op,
    Param,
    Path,
    Permission,
    Pos,
    Relation,
    Rule,
    SchemaAst,
    SubjectType,
    TypeRef,
)
from dsl.collector import gc_paused
from dsl.errors import Diagnostic, SchemaError, diagnostic_at, end_of, line_at
from dsl.limits import MAX_EXPRESSION_DEPTH, MAX_SCHEMA_BYTES, MAX_SYNTAX_ERRORS
from dsl.syntax_errors import COMMENT, RESERVED_WORDS, Recovery, syntax_diagnostic

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "MAX_SCHEMA_BYTES",
    "MAX_SYNTAX_ERRORS",
    "RESERVED_WORDS",
    "decode",
    "line_at",
    "parse",
    "parse_member",
]


class _Token(Protocol):
    """What the callbacks read of a token: Lark's `Token` and lark-cython's both provide it."""

    value: str
    type: str
    line: int
    column: int
    end_line: int


def _pos(token: _Token) -> Pos:
    return Pos(token.line, token.column)


class _ToAst(Transformer[Any, Any]):
    """Builds AST nodes from tokens while the parser reduces. Builds only; checks nothing."""

    def start(self, children: list[Any]) -> tuple[Definition, ...]:
        return tuple(children[0])

    @staticmethod
    def _append(children: list[Any]) -> list[Any]:
        """``list: | list item``: LALR never shares the list, so extend it in place."""
        if not children:
            return []
        items: list[Any] = children[0]
        items.append(children[1])
        return items

    definitions = members = subject_types = _append

    def _first_then_append(self, children: list[Any]) -> list[Any]:
        """``list: item | list SEPARATOR item`` (``,`` or ``.``), extended in place."""
        if len(children) == 1:
            return children
        items: list[Any] = children[0]
        items.append(children[2])
        return items

    arguments = params = names = _first_then_append

    def entity(self, children: list[Any]) -> Entity:
        keyword: _Token = children[0]  # entity NAME { members }
        name: _Token = children[1]
        rbrace: _Token = children[4]
        return Entity(name.value, tuple(children[3]), _pos(keyword), _pos(name), rbrace.end_line)

    def relation(self, children: list[Any]) -> Relation:
        keyword: _Token = children[0]  # relation NAME subject_types
        name: _Token = children[1]
        types: tuple[SubjectType, ...] = tuple(children[2])
        end_line = max([name.end_line] + [(t.relation_pos or t.pos).line for t in types])
        return Relation(name.value, types, _pos(keyword), _pos(name), end_line)

    def subject_type(self, children: list[_Token]) -> SubjectType:
        entity = children[1]  # @ NAME [# NAME]
        if len(children) == 2:
            return SubjectType(entity.value, None, _pos(entity))
        relation = children[3]
        return SubjectType(entity.value, relation.value, _pos(entity), _pos(relation))

    def attribute(self, children: list[Any]) -> Attribute:
        keyword: _Token = children[0]  # attribute NAME type_ref
        name: _Token = children[1]
        type_ref: TypeRef = children[2]
        end_line = max(type_ref.pos.line, name.line)
        return Attribute(name.value, type_ref, _pos(keyword), _pos(name), end_line)

    def type_ref(self, children: list[Any]) -> TypeRef:
        name: _Token = children[0]  # NAME [ "[" "]" ]
        return TypeRef(name.value, len(children) > 1, _pos(name))

    def permission(self, children: list[Any]) -> Permission:
        keyword: _Token = children[0]  # permission NAME = expr
        name: _Token = children[1]
        expr: Expr = children[3]
        return Permission(name.value, expr, keyword.value, _pos(keyword), _pos(name),
                          _end_line(expr))

    def binary(self, children: list[Any]) -> Binary:
        op: _Token = children[1]  # expr OP operand
        return Binary(Op(op.value), children[0], children[2], _pos(op))

    def group(self, children: list[Any]) -> Expr:
        expr: Expr = children[1]  # ( expr )
        return expr

    def path(self, children: list[Any]) -> Path:
        names: list[_Token] = children[0]
        return Path(tuple(n.value for n in names), tuple(_pos(n) for n in names))

    def call(self, children: list[Any]) -> Call:
        name: _Token = children[0]  # NAME ( [arguments] )
        rpar: _Token = children[-1]
        arguments = tuple(children[2]) if len(children) == 4 else ()
        return Call(name.value, arguments, _pos(name), rpar.end_line)

    def rule(self, children: list[Any]) -> Rule:
        keyword: _Token = children[0]  # rule NAME ( [params] ) BODY
        name: _Token = children[1]
        body: _Token = children[-1]
        params = tuple(children[3]) if len(children) == 6 else ()
        return Rule(name.value, params, body.value[1:-1], _pos(keyword), _pos(name), _pos(body),
                    body.end_line)

    def param(self, children: list[Any]) -> Param:
        name: _Token = children[0]  # NAME type_ref
        return Param(name.value, children[1], _pos(name))


def _end_line(expr: Expr) -> int:
    while isinstance(expr, Binary):
        expr = expr.right
    return expr.end_line


def _build(start: str) -> Lark:
    # lark-cython runs Lark's own LALR tables and lexer in compiled code (same results, faster).
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        lexer="contextual",
        transformer=_ToAst(),
        keep_all_tokens=True,
        maybe_placeholders=False,
        start=start,
        _plugins=lark_cython.plugins,
        # A run of `(` is only shifted, in compiled code holding the GIL throughout (512 KiB of
        # them: 0.26 s with no other thread running); a Python call per `(` lets the
        # interpreter switch threads, so the event loop keeps answering.
        lexer_callbacks={"LPAR": _yield_point},
    )


def _yield_point(token: _Token) -> _Token:
    return token


_LARK: Final = _build("start")
_RULE_BODY: Final = re.compile(_LARK.get_terminal("RULE_BODY").pattern.to_regexp())


@functools.cache
def _member_parser() -> Lark:
    """The grammar entered at ``members``. A parser of its own, built on first use: a second
    start symbol in `_LARK` would merge LALR lookaheads and change its error messages."""
    return _build("members")


def parse(source: str | bytes) -> SchemaAst:
    """Parse schema text (or UTF-8 bytes) into an AST. Raises `SchemaError` on any bad input."""
    text = decode(source)
    _check_size(text)
    recovery = Recovery(text, _RULE_BODY)
    try:
        with gc_paused():
            definitions = _parse_recovering(text, recovery)
    except LarkError as exc:  # pragma: no cover - Lark raises only UnexpectedInput on input
        raise SchemaError([Diagnostic(1, 1, f"cannot parse schema: {exc}")]) from None
    if recovery.diagnostics:
        raise SchemaError(recovery.diagnostics) from None
    assert isinstance(definitions, tuple)
    _check_depth(definitions, text)
    return SchemaAst(definitions, tuple(_comments(text, definitions)))


def _parse_recovering(text: str, recovery: Recovery) -> Any:
    """Parse ``text``, handing each syntax error to ``recovery`` and resuming after it (Lark's
    ``on_error`` loop; lark-cython's own copy of it reads a deprecated attribute)."""
    parser = _LARK.parse_interactive(text)
    while True:
        try:
            return parser.resume_parse()  # type: ignore[no-untyped-call]  # unannotated in Lark
        except UnexpectedInput as exc:
            if not recovery(exc):
                return None
            parser = exc.interactive_parser


def parse_member(source: str) -> Member:
    """Parse one entity member statement on its own: ``relation owner @user``, ``permission
    edit = owner``, ``action view = viewer`` or ``attribute public boolean`` (what a partial
    schema write sends). Comments around it are allowed. Raises `SchemaError` positioned in
    ``source`` itself (1-based) for a syntax error, an incomplete statement, or text that is
    not exactly one member."""
    text = decode(source)
    _check_size(text)
    try:
        with gc_paused():
            members = _member_parser().parse(text)
    except UnexpectedInput as exc:
        raise SchemaError([syntax_diagnostic(exc, text, end="end of statement")]) from None
    except LarkError as exc:  # pragma: no cover - Lark raises only UnexpectedInput on input
        raise SchemaError([Diagnostic(1, 1, f"cannot parse statement: {exc}")]) from None
    assert isinstance(members, list)
    if not members:
        message = "empty statement; expected `relation`, `permission`, `action` or `attribute`"
        raise SchemaError([diagnostic_at(text, 1, 1, message)])
    if len(members) > 1:
        second: Member = members[1]
        message = f"one statement expected, but a second one (`{second.name}`) starts here"
        raise SchemaError([diagnostic_at(text, second.pos.line, second.pos.column, message)])
    member: Member = members[0]
    _check_member_depth(member, text)
    return member


def decode(source: str | bytes) -> str:
    """Schema text from str or UTF-8 bytes, without a leading byte-order mark."""
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            before = source[: exc.start].decode("utf-8")  # valid up to the bad byte
            line, column = end_of(before)
            message = f"schema is not valid UTF-8 (byte 0x{source[exc.start]:02x})"
            raise SchemaError([Diagnostic(line, column, message)]) from None
    return source.removeprefix("\ufeff")


def _check_size(text: str) -> None:
    """Refuse text over `MAX_SCHEMA_BYTES`, at the first character past the limit."""
    if len(text) * 4 <= MAX_SCHEMA_BYTES:
        return  # within the limit whatever the characters
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_SCHEMA_BYTES:
        return
    line, column = end_of(encoded[:MAX_SCHEMA_BYTES].decode("utf-8", "ignore"))
    message = (
        f"schema is {len(encoded):,} bytes, more than the {MAX_SCHEMA_BYTES // 1024} KiB a "
        "schema may have; the limit is passed here"
    )
    raise SchemaError([diagnostic_at(text, line, column, message)])


def _check_depth(definitions: tuple[Definition, ...], text: str) -> None:
    for definition in definitions:
        if isinstance(definition, Entity):
            for member in definition.members:
                _check_member_depth(member, text)


def _check_member_depth(member: Member, text: str) -> None:
    if isinstance(member, Permission) and _depth(member.expr) > MAX_EXPRESSION_DEPTH:
        raise SchemaError(
            [
                diagnostic_at(
                    text,
                    member.name_pos.line,
                    member.name_pos.column,
                    f"permission `{member.name}` nests operators more than "
                    f"{MAX_EXPRESSION_DEPTH} deep; split it into named permissions",
                )
            ]
        )


def _depth(expr: Expr) -> int:
    """Operator nesting depth, computed without recursion."""
    deepest = 0
    stack: list[tuple[Expr, int]] = [(expr, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Binary):
            stack.append((node.left, depth + 1))
            stack.append((node.right, depth + 1))
        elif depth > deepest:
            deepest = depth
    return deepest


def _comments(text: str, definitions: tuple[Definition, ...]) -> list[Comment]:
    """Every comment outside rule bodies.

    Outside a rule body the language has no string literals, so once the text has parsed, every
    ``//`` or ``/*`` there starts a comment. Rule bodies (CEL, kept verbatim) are skipped.
    """
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(pos: Pos) -> int:
        return line_starts[pos.line - 1] + pos.column - 1

    def line_of(index: int) -> int:
        return bisect_right(line_starts, index)

    segments: list[tuple[int, int]] = []
    start = 0
    for definition in definitions:
        if isinstance(definition, Rule):
            body_start = offset(definition.body_pos)
            segments.append((start, body_start))
            start = body_start + len(definition.body) + 2
    segments.append((start, len(text)))

    comments: list[Comment] = []
    for seg_start, seg_end in segments:
        for match in COMMENT.finditer(text, seg_start, seg_end):
            first = line_of(match.start())
            column = match.start() - line_starts[first - 1] + 1
            comments.append(Comment(match.group(), Pos(first, column), line_of(match.end() - 1)))
    return comments
