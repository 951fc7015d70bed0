"""Schema text -> AST (`dsl.ast.SchemaAst`).

The grammar lives in ``grammar.lark``. Lark's LALR parser runs the `_ToAst` callbacks as it
reduces, so no parse tree is built and nothing here recurses with the input's nesting. Every
failure, whatever the input (bytes that are not UTF-8, NUL, unbalanced anything), leaves this
module as a `SchemaError`; Lark's exceptions are translated at this boundary.

A syntax error does not end the parse: `_Recovery` records it, drops the definition it is in
and resumes at the next top-level `entity` or `rule`, so one run reports the syntax errors of
every definition (and none that the first error merely caused).
"""

from __future__ import annotations

import difflib
import functools
import re
from bisect import bisect_right
from typing import Any, Final, Protocol

import lark_cython  # type: ignore[import-untyped]
from lark import Lark, Transformer
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
from dsl.gcpause import gc_paused

#: Operators nested deeper than this are refused, so every later walk over an expression
#: (compiler, formatter, comparison of compiled schemas, the engine) may recurse with room to
#: spare: Python's default limit of 1000 frames breaks equality of rewrite trees near 250 levels.
MAX_EXPRESSION_DEPTH: Final = 128

#: Syntax errors past this many are not collected (the last one says so).
MAX_SYNTAX_ERRORS: Final = 100

#: Longest schema text, in UTF-8 bytes. Parsing and compiling take about 1.5 s a MiB (more for
#: the engine's first use of it), so 512 KiB keeps any schema near a second; real ones are a few
#: KiB.
MAX_SCHEMA_BYTES: Final = 512 * 1024

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
_KEYWORD_TOKENS: Final = frozenset(
    {"ENTITY", "RULE", "RELATION", "PERMISSION_KW", "ATTRIBUTE", "OP"}
)
_MEMBER_KEYWORDS: Final = ("relation", "permission", "action", "attribute")
_RESERVED_AT: Final = re.compile(
    r"(?:" + "|".join(sorted(RESERVED_WORDS)) + r")(?![A-Za-z0-9_])"
)
_COMMENT: Final = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_UNTERMINATED_BODY: Final = (
    "unterminated rule body: the `{` is never closed (braces must balance, "
    "strings must be closed on their line)"
)


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
#: What the recovery scan steps over: comments, braces, and whole words, so that a keyword is
#: found only as a word of its own.
_RESUME_SCAN: Final = re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)|[{}]|[A-Za-z0-9_]+", re.DOTALL)
#: A keyword that starts a definition is followed by the definition's name.
_DEFINITION_START: Final = re.compile(r"(?:entity|rule)\s+[A-Za-z_]")
_DEFINITION_KEYWORDS: Final = frozenset({"ENTITY", "RULE"})


@functools.cache
def _member_parser() -> Lark:
    """The grammar entered at ``members``. A parser of its own, built on first use: a second
    start symbol in `_LARK` would merge LALR lookaheads and change its error messages."""
    return _build("members")


def parse(source: str | bytes) -> SchemaAst:
    """Parse schema text (or UTF-8 bytes) into an AST. Raises `SchemaError` on any bad input."""
    text = decode(source)
    _check_size(text)
    recovery = _Recovery(text)
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


def _parse_recovering(text: str, recovery: _Recovery) -> Any:
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


class _Recovery:
    """Called with each syntax error of `parse`: records it, then puts the parser back at top
    level, past the definition the error is in, so that parsing goes on.

    The parser's stacks are cut back to the list of definitions parsed so far (the first two
    states: the start and the one after ``definitions``) and the lexer is moved to where the next
    definition starts (`_resume_at`). A definition that fails is dropped whole, so nothing in it
    can cause a second, spurious error; the definitions after it are parsed as usual.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.diagnostics: list[Diagnostic] = []

    @functools.cached_property
    def _lines(self) -> list[str]:
        """The text split once, for quoting the line of each error."""
        return self.text.split("\n")

    def __call__(self, exc: UnexpectedInput) -> bool:
        """Record ``exc``; False when there are too many to go on, else recover."""
        found = _syntax_diagnostic(exc, self.text, lines=self._lines)
        if len(self.diagnostics) >= MAX_SYNTAX_ERRORS:
            # Placed at the first error not reported, which sorts it after the reported ones.
            message = f"too many syntax errors: only the first {MAX_SYNTAX_ERRORS} are reported"
            self.diagnostics.append(
                Diagnostic(found.line, found.column, message, found.source_line)
            )
            return False
        self.diagnostics.append(found)
        parser = exc.interactive_parser
        state = parser.parser_state
        del state.state_stack[2:]
        del state.value_stack[1:]
        if isinstance(exc, UnexpectedToken):
            token: Any = exc.token
            if token.type == "$END":
                return True  # at top level the end is accepted
            where_no_name = "NAME" not in (exc.expected or ())
            if token.type in _DEFINITION_KEYWORDS and (
                _starts_definition(self.text, token.start_pos)
                or (where_no_name and _DEFINITION_START.match(self.text, token.start_pos))
            ):
                # An unclosed entity, say: the keyword begins the next definition.
                parser.feed_token(token)
                return True
            start = token.start_pos
        else:
            start = exc.pos_in_stream or 0
        lexer_state = parser.lexer_thread.state
        assert lexer_state is not None  # the error came from a parse under way
        counter = lexer_state.line_ctr
        target = _resume_at(self.text, start)
        if target > counter.char_pos:
            counter.feed(self.text[counter.char_pos : target], True)
        return True


def _resume_at(text: str, start: int) -> int:
    """Where parsing resumes after an error at ``start``: the first ``entity NAME`` or ``rule
    NAME`` after it that begins a line or follows a ``}`` or ``;``, outside braces opened after
    ``start`` (braces opened before it belong to the failed definition), and not in a comment or
    rule body; or an unclosed ``/*`` (an error of its own, which hides the rest); or the end."""
    depth = 0
    position = start
    while match := _RESUME_SCAN.search(text, position):
        found = match.group()
        at = match.start()
        position = match.end()
        if found == "{":
            if body := _RULE_BODY.match(text, at):
                position = body.end()  # a rule body (or a whole entity body): CEL may say `rule`
            else:
                depth += 1
        elif found == "}":
            depth = max(0, depth - 1)
        elif at > start and (
            (found.startswith("/*") and not found.endswith("*/"))
            or (depth == 0 and _starts_definition(text, at))
        ):
            return at
    return len(text)


def _starts_definition(text: str, offset: int) -> bool:
    """Whether the word at ``offset`` reads as the start of a definition, not as a keyword
    misused inside one (``relation rule @user``)."""
    if not _DEFINITION_START.match(text, offset):
        return False
    before = offset - 1
    while before >= 0 and text[before] in " \t\r\f\v":
        before -= 1
    # First in the text, first on its line, or after the end of a definition or statement.
    return before < 0 or text[before] in "\n};"


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
        raise SchemaError([_syntax_diagnostic(exc, text, end="end of statement")]) from None
    except LarkError as exc:  # pragma: no cover - Lark raises only UnexpectedInput on input
        raise SchemaError([Diagnostic(1, 1, f"cannot parse statement: {exc}")]) from None
    assert isinstance(members, list)
    if not members:
        message = "empty statement; expected `relation`, `permission`, `action` or `attribute`"
        raise SchemaError([_diagnostic(text, 1, 1, message)])
    if len(members) > 1:
        second: Member = members[1]
        message = f"one statement expected, but a second one (`{second.name}`) starts here"
        raise SchemaError([_diagnostic(text, second.pos.line, second.pos.column, message)])
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
            line, column = _end_of(before)
            message = f"schema is not valid UTF-8 (byte 0x{source[exc.start]:02x})"
            raise SchemaError([Diagnostic(line, column, message)]) from None
    return source.removeprefix("\ufeff")


def _end_of(text: str) -> tuple[int, int]:
    """Line and column just past the end of ``text``."""
    return text.count("\n") + 1, len(text) - (text.rfind("\n") + 1) + 1


def line_at(lines: list[str], line: int) -> str:
    """Line ``line`` of ``text.split("\n")``: only ``\n`` ends a line, as Lark counts (not U+2028,
    form feed...); a CRLF line is quoted without its ``\r``."""
    return lines[line - 1].removesuffix("\r") if 0 < line <= len(lines) else ""


def source_line(text: str, line: int) -> str:
    return line_at(text.split("\n"), line)


def _diagnostic(
    text: str, line: int, column: int, message: str, lines: list[str] | None = None
) -> Diagnostic:
    """A diagnostic quoting its line; ``lines`` is ``text`` already split, if at hand."""
    quoted = source_line(text, line) if lines is None else line_at(lines, line)
    return Diagnostic(line, column, message, quoted)


def _describe_expected(expected: set[str] | frozenset[str], end: str = "end of file") -> str:
    names = [
        end if terminal == "$END" else label
        for terminal, label in _TERMINAL_NAMES.items()
        if terminal in expected
    ]
    if "PERMISSION_KW" in expected:
        names.insert(names.index("`permission`") + 1, "`action`")
    if not names:
        return "something else"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _syntax_diagnostic(
    exc: UnexpectedInput, text: str, end: str = "end of file", lines: list[str] | None = None
) -> Diagnostic:
    """The diagnostic for Lark's error; ``end`` names the end of the input in the message."""
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        # Lark places the end at the last token; point at the end of the text instead.
        line, column = _end_of(text)
    if isinstance(exc, UnexpectedToken):
        return _diagnostic(text, line, column, _unexpected_token_message(exc, text, end), lines)
    assert isinstance(exc, UnexpectedCharacters)
    offset: int = exc.pos_in_stream or 0
    char = text[offset]
    allowed = exc.allowed or set()
    if text.startswith("/*", offset):
        message = "unterminated comment: `/*` is never closed by `*/`"
    elif char == "{" and "RULE_BODY" in allowed:
        message = _UNTERMINATED_BODY
    elif (word := _RESERVED_AT.match(text, offset)) and "NAME" in allowed:
        message = f"`{word.group()}` is a reserved word and cannot be used as a name"
    elif word:
        message = f"unexpected `{word.group()}`; expected {_describe_expected(allowed, end)}"
    elif char.isdigit() and "NAME" in allowed:
        message = f"names start with a letter or `_`, not `{char}`"
    elif not char.isascii() or not char.isprintable():
        code = f"U+{ord(char):04X}"
        hint = "; names use ASCII letters, digits and `_`" if char.isalpha() else ""
        message = f"unexpected character {char!r} ({code}){hint}"
    else:
        message = f"unexpected `{char}`; expected {_describe_expected(allowed, end)}"
    return _diagnostic(text, line, column, message, lines)


def _unexpected_token_message(exc: UnexpectedToken, text: str, end: str) -> str:
    token: Any = exc.token
    expected = exc.expected or set()
    kind = token.type
    if kind == "$END":
        return f"unexpected {end}; expected {_describe_expected(expected, end)}"
    value = str(token.value)
    if kind == "RULE_BODY":
        value = "{"  # a stray brace, lexed as a whole block: quote only the brace
    if kind == "OP" and value == "not" and "LPAR" in expected and "OP" not in expected:
        before = _COMMENT.sub(" ", text[: token.start_pos])
        previous = re.search(r"(?<![A-Za-z0-9_])(and|or)\s*$", before)
        if previous:
            return (
                f"`{previous.group(1)} not` is not an operator: `not` is binary exclusion, "
                "write `a not b` (a but not b)"
            )
        return (
            "`not` is binary exclusion (`a not b`: a but not b) and cannot start an expression"
        )
    if (
        kind in _KEYWORD_TOKENS
        and "NAME" in expected
        # `entity NAME` opening a line starts the next definition: the error is that this one
        # stopped short (`permission view =`), not a keyword used as a name.
        and not (kind in _DEFINITION_KEYWORDS and _starts_definition(text, token.start_pos))
    ):
        return f"`{value}` is a reserved word and cannot be used as a name"
    if kind == "LBRACE" and "RULE_BODY" in expected:
        return _UNTERMINATED_BODY
    message = f"unexpected `{_shorten(value)}`; expected {_describe_expected(expected, end)}"
    if kind == "NAME":
        # A misspelt keyword first: it explains the error better than any other hint.
        if "RELATION" in expected and (
            close := difflib.get_close_matches(value, _MEMBER_KEYWORDS, n=1)
        ):
            return message + f" (did you mean `{close[0]}`?)"
        if "OP" in expected:
            return f"unexpected `{value}`: join operands with `and`, `or` or `not`"
        if "AT" in expected:
            message += f" (subject types start with `@`: `@{value}`)"
        elif "ENTITY" in expected:
            close = difflib.get_close_matches(value, ("entity", "rule"), n=1)
            if close:
                message += f" (did you mean `{close[0]}`?)"
    return message


def _shorten(value: str, limit: int = 40) -> str:
    first = value.split("\n", 1)[0]
    return first if len(first) <= limit and first == value else first[:limit] + "…"


def _check_size(text: str) -> None:
    """Refuse text over `MAX_SCHEMA_BYTES`, at the first character past the limit."""
    if len(text) * 4 <= MAX_SCHEMA_BYTES:
        return  # within the limit whatever the characters
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_SCHEMA_BYTES:
        return
    line, column = _end_of(encoded[:MAX_SCHEMA_BYTES].decode("utf-8", "ignore"))
    message = (
        f"schema is {len(encoded):,} bytes, more than the {MAX_SCHEMA_BYTES // 1024} KiB a "
        "schema may have; the limit is passed here"
    )
    raise SchemaError([_diagnostic(text, line, column, message)])


def _check_depth(definitions: tuple[Definition, ...], text: str) -> None:
    for definition in definitions:
        if isinstance(definition, Entity):
            for member in definition.members:
                _check_member_depth(member, text)


def _check_member_depth(member: Member, text: str) -> None:
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
