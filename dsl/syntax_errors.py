"""What a syntax error says, and how parsing goes on after one.

Lark reports an unexpected token or character with the terminals it expected; `syntax_diagnostic`
turns that into a message in the schema language's own words (keywords in backquotes, a reserved
word used as a name, a misspelt keyword, ``and not``, an unclosed comment or rule body).

`Recovery` is called by the parser with each syntax error: it records the error, drops the
definition the error is in and resumes at the next top-level `entity` or `rule`, so one run
reports the syntax errors of every definition (and none that the first error merely caused).
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, Final

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dsl.errors import Diagnostic, diagnostic_at, end_of
from dsl.limits import MAX_SYNTAX_ERRORS

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
#: A comment of the schema language (outside rule bodies, which are CEL).
COMMENT: Final = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_UNTERMINATED_BODY: Final = (
    "unterminated rule body: the `{` is never closed (braces must balance, "
    "strings must be closed on their line)"
)

#: What the recovery scan steps over: comments, braces, and whole words, so that a keyword is
#: found only as a word of its own.
_RESUME_SCAN: Final = re.compile(r"//[^\n]*|/\*.*?(?:\*/|\Z)|[{}]|[A-Za-z0-9_]+", re.DOTALL)
#: A keyword that starts a definition is followed by the definition's name.
_DEFINITION_START: Final = re.compile(r"(?:entity|rule)\s+[A-Za-z_]")
_DEFINITION_KEYWORDS: Final = frozenset({"ENTITY", "RULE"})


class Recovery:
    """Called with each syntax error of `parse`: records it, then puts the parser back at top
    level, past the definition the error is in, so that parsing goes on.

    The parser's stacks are cut back to the list of definitions parsed so far (the first two
    states: the start and the one after ``definitions``) and the lexer is moved to where the next
    definition starts (`_resume_at`). A definition that fails is dropped whole, so nothing in it
    can cause a second, spurious error; the definitions after it are parsed as usual.
    """

    def __init__(self, text: str, rule_body: re.Pattern[str]) -> None:
        self.text = text
        self.rule_body = rule_body  # the grammar's RULE_BODY terminal, whole
        self.diagnostics: list[Diagnostic] = []

    @functools.cached_property
    def _lines(self) -> list[str]:
        """The text split once, for quoting the line of each error."""
        return self.text.split("\n")

    def __call__(self, exc: UnexpectedInput) -> bool:
        """Record ``exc``; False when there are too many to go on, else recover."""
        found = syntax_diagnostic(exc, self.text, lines=self._lines)
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
        target = _resume_at(self.text, start, self.rule_body)
        if target > counter.char_pos:
            counter.feed(self.text[counter.char_pos : target], True)
        return True


def _resume_at(text: str, start: int, rule_body: re.Pattern[str]) -> int:
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
            if body := rule_body.match(text, at):
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


def syntax_diagnostic(
    exc: UnexpectedInput, text: str, end: str = "end of file", lines: list[str] | None = None
) -> Diagnostic:
    """The diagnostic for Lark's error; ``end`` names the end of the input in the message."""
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        # Lark places the end at the last token; point at the end of the text instead.
        line, column = end_of(text)
    if isinstance(exc, UnexpectedToken):
        return diagnostic_at(text, line, column, _unexpected_token_message(exc, text, end), lines)
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
    return diagnostic_at(text, line, column, message, lines)


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
        before = COMMENT.sub(" ", text[: token.start_pos])
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

