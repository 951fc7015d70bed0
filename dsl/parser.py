"""Schema text -> AST (`dsl.ast.SchemaAst`).

The grammar lives in ``grammar.lark``. Lark's LALR parser runs the `_ToAst` callbacks as it
reduces, so no parse tree is built and nothing here recurses with the input's nesting. Every
failure, whatever the input (bytes that are not UTF-8, NUL, unbalanced anything), leaves this
module as a `SchemaError`; Lark's exceptions are translated at this boundary.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from typing import Final

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

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
from dsl.errors import Diagnostic, SchemaError

#: Operators nested deeper than this are refused: every later walk over an expression (compiler,
#: formatter, engine) may then recurse safely.
MAX_EXPRESSION_DEPTH: Final = 256

#: Words that can never be names.
RESERVED_WORDS: Final = frozenset(
    {"entity", "relation", "permission", "action", "attribute", "rule", "and", "or", "not",
     "in", "true", "false"}
)

# How each terminal is named in an error message, in the order they are listed.
_TERMINAL_NAMES: Final = {
    "ENTITY": "`entity`",
    "RULE": "`rule`",
    "RELATION": "`relation`",
    "PERMISSION_KW": "`permission`",
    "ATTRIBUTE": "`attribute`",
    "NAME": "a name",
    "AT": "`@`",
    "HASH": "`#`",
    "DOT": "`.`",
    "EQUAL": "`=`",
    "OP": "`or`, `and`, `not`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "RULE_BODY": "a rule body `{ ... }`",
    "$END": "end of file",
}
_TOKEN_DESCRIPTIONS: Final = {"$END": "end of file"}
_KEYWORD_TOKENS: Final = frozenset({"ENTITY", "RULE", "RELATION", "PERMISSION_KW", "ATTRIBUTE", "OP"})
_MEMBER_KEYWORDS: Final = ("relation", "permission", "action", "attribute")
_RESERVED_AT: Final = re.compile(
    r"(?:" + "|".join(sorted(RESERVED_WORDS)) + r")(?![A-Za-z0-9_])"
)
_COMMENT: Final = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def _pos(token: Token) -> Pos:
    return Pos(token.line or 0, token.column or 0)


class _ToAst(Transformer[Token, object]):
    """Builds AST nodes from tokens while the parser reduces. Builds only; checks nothing."""

    def start(self, children: list[Definition]) -> tuple[Definition, ...]:
        return tuple(children)

    def entity(self, children: list[object]) -> Entity:
        keyword, name, *members, rbrace = children
        assert isinstance(keyword, Token) and isinstance(name, Token)
        assert isinstance(rbrace, Token)
        return Entity(
            name=str(name),
            members=tuple(members),  # type: ignore[arg-type]
            pos=_pos(keyword),
            name_pos=_pos(name),
            end_line=rbrace.end_line or 0,
        )

    def relation(self, children: list[object]) -> Relation:
        keyword, name, *types = children
        assert isinstance(keyword, Token) and isinstance(name, Token)
        subject_types: list[SubjectType] = types  # type: ignore[assignment]
        end_line = max(
            [name.end_line or 0]
            + [(t.relation_pos or t.pos).line for t in subject_types]
        )
        return Relation(str(name), tuple(subject_types), _pos(keyword), _pos(name), end_line)

    def subject_type(self, children: list[Token]) -> SubjectType:
        if len(children) == 1:
            return SubjectType(str(children[0]), None, _pos(children[0]))
        entity, relation = children
        return SubjectType(str(entity), str(relation), _pos(entity), _pos(relation))

    def attribute(self, children: list[object]) -> Attribute:
        keyword, name, type_ref = children
        assert isinstance(keyword, Token) and isinstance(name, Token)
        assert isinstance(type_ref, TypeRef)
        return Attribute(
            str(name), type_ref, _pos(keyword), _pos(name), max(type_ref.pos.line, name.line or 0)
        )

    def type_ref(self, children: list[object]) -> TypeRef:
        name = children[0]
        assert isinstance(name, Token)
        return TypeRef(str(name), len(children) > 1, _pos(name))

    def array_suffix(self, children: list[object]) -> bool:
        return True

    def permission(self, children: list[object]) -> Permission:
        keyword, name, expr = children
        assert isinstance(keyword, Token) and isinstance(name, Token)
        return Permission(
            str(name), expr, str(keyword), _pos(keyword), _pos(name), _end_line(expr)  # type: ignore[arg-type]
        )

    def binary(self, children: list[object]) -> Binary:
        left, op, right = children
        assert isinstance(op, Token)
        return Binary(Op(str(op)), left, right, _pos(op))  # type: ignore[arg-type]

    def path(self, children: list[Token]) -> Path:
        return Path(tuple(str(c) for c in children), tuple(_pos(c) for c in children))

    def call(self, children: list[object]) -> Call:
        name, *arguments, rpar = children
        assert isinstance(name, Token) and isinstance(rpar, Token)
        args = tuple(a for a in arguments if a is not None)
        return Call(str(name), args, _pos(name), rpar.end_line or 0)  # type: ignore[arg-type]

    def rule(self, children: list[object]) -> Rule:
        keyword, name, *params, body = children
        assert isinstance(keyword, Token) and isinstance(name, Token)
        assert isinstance(body, Token)
        return Rule(
            name=str(name),
            params=tuple(p for p in params if p is not None),  # type: ignore[misc]
            body=str(body)[1:-1],
            pos=_pos(keyword),
            name_pos=_pos(name),
            body_pos=_pos(body),
            end_line=body.end_line or 0,
        )

    def param(self, children: list[object]) -> Param:
        name, type_ref = children
        assert isinstance(name, Token) and isinstance(type_ref, TypeRef)
        return Param(str(name), type_ref, _pos(name))


def _end_line(expr: Expr) -> int:
    while isinstance(expr, Binary):
        expr = expr.right
    return expr.end_line


_LARK: Final = Lark.open(
    "grammar.lark",
    rel_to=__file__,
    parser="lalr",
    lexer="contextual",
    transformer=_ToAst(),
    maybe_placeholders=True,
)


def parse(source: str | bytes) -> SchemaAst:
    """Parse schema text (or UTF-8 bytes) into an AST. Raises `SchemaError` on any bad input."""
    text = decode(source)
    try:
        definitions = _LARK.parse(text)
    except UnexpectedInput as exc:
        raise SchemaError([_syntax_diagnostic(exc, text)]) from None
    except LarkError as exc:  # pragma: no cover - Lark raises only UnexpectedInput on input
        raise SchemaError([Diagnostic(1, 1, f"cannot parse schema: {exc}")]) from None
    assert isinstance(definitions, tuple)
    _check_depth(definitions, text)
    return SchemaAst(definitions, tuple(_comments(text, definitions)))


def decode(source: str | bytes) -> str:
    """Schema text from str or UTF-8 bytes, without a leading byte-order mark."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = source[: exc.start]
            line = before.count(b"\n") + 1
            column = len(before) - (before.rfind(b"\n") + 1) + 1
            raise SchemaError(
                [Diagnostic(line, column, f"schema is not valid UTF-8 (byte 0x{source[exc.start]:02x})")]
            ) from None
    return source.removeprefix("\ufeff")


def source_line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _diagnostic(text: str, line: int, column: int, message: str) -> Diagnostic:
    return Diagnostic(line, column, message, source_line(text, line))


def _describe_expected(expected: set[str] | frozenset[str]) -> str:
    names = [label for terminal, label in _TERMINAL_NAMES.items() if terminal in expected]
    if "PERMISSION_KW" in expected:
        names.insert(names.index("`permission`") + 1, "`action`")
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _syntax_diagnostic(exc: UnexpectedInput, text: str) -> Diagnostic:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedToken):
        return _diagnostic(text, line, column, _unexpected_token_message(exc, text))
    assert isinstance(exc, UnexpectedCharacters)
    offset = exc.pos_in_stream
    char = text[offset]
    allowed = exc.allowed or set()
    if text.startswith("/*", offset):
        message = "unterminated comment: `/*` is never closed by `*/`"
    elif char == "{" and "RULE_BODY" in allowed:
        message = (
            "unterminated rule body: the `{` is never closed (braces must balance, "
            "strings must be closed on their line)"
        )
    elif (word := _RESERVED_AT.match(text, offset)) and "NAME" in allowed:
        message = f"`{word.group()}` is a reserved word and cannot be used as a name"
    elif char.isdigit() and "NAME" in allowed:
        message = f"names start with a letter or `_`, not `{char}`"
    elif not char.isascii() or not char.isprintable():
        code = f"U+{ord(char):04X}"
        hint = "; names use ASCII letters, digits and `_`" if char.isalpha() else ""
        message = f"unexpected character {char!r} ({code}){hint}"
    else:
        message = f"unexpected `{char}`; expected {_describe_expected(allowed)}"
    return _diagnostic(text, line, column, message)


def _unexpected_token_message(exc: UnexpectedToken, text: str) -> str:
    token: Token = exc.token
    expected = exc.expected or set()
    kind = token.type
    if kind == "$END":
        return f"unexpected end of file; expected {_describe_expected(expected)}"
    value = str(token)
    if kind == "OP" and value == "not" and "NAME" in expected and "OP" not in expected:
        before = text[: token.start_pos or 0].rstrip()
        if before.endswith(("and", "or")):
            return (
                f"`{before.split()[-1]} not` is not an operator: `not` is binary exclusion, "
                "write `a not b` (a but not b)"
            )
        return (
            "`not` is binary exclusion (`a not b`: a but not b) and cannot start an expression"
        )
    if kind in _KEYWORD_TOKENS and "NAME" in expected:
        return f"`{value}` is a reserved word and cannot be used as a name"
    if kind == "LBRACE" and "RULE_BODY" in expected:
        return (
            "unterminated rule body: the `{` is never closed (braces must balance, "
            "strings must be closed on their line)"
        )
    if kind == "NAME" and "OP" in expected:
        return f"unexpected `{value}`: join operands with `and`, `or` or `not`"
    message = f"unexpected `{value}`; expected {_describe_expected(expected)}"
    if kind == "NAME":
        if "AT" in expected:
            message += f" (subject types start with `@`: `@{value}`)"
        elif "RELATION" in expected:
            close = difflib.get_close_matches(value, _MEMBER_KEYWORDS, n=1)
            if close:
                message += f" (did you mean `{close[0]}`?)"
        elif "ENTITY" in expected:
            close = difflib.get_close_matches(value, ("entity", "rule"), n=1)
            if close:
                message += f" (did you mean `{close[0]}`?)"
    return message


def _check_depth(definitions: tuple[Definition, ...], text: str) -> None:
    for definition in definitions:
        if not isinstance(definition, Entity):
            continue
        for member in definition.members:
            if isinstance(member, Permission) and _depth(member.expr) > MAX_EXPRESSION_DEPTH:
                raise SchemaError(
                    [
                        _diagnostic(
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
        for match in _COMMENT.finditer(text, seg_start, seg_end):
            first = line_of(match.start())
            column = match.start() - line_starts[first - 1] + 1
            comments.append(Comment(match.group(), Pos(first, column), line_of(match.end() - 1)))
    return comments
