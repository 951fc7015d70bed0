"""Property tests: whatever the input, `load` either succeeds or raises `SchemaError`.

No input may escape as another exception (Lark's, `UnicodeDecodeError`, `RecursionError`,
`IndexError`, ...), and every diagnostic must carry a usable position and message.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.parser import parse
from dsl.schema import Schema

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

GOOGLE_DOCS = """\
// A Google-Docs-like model: organisations, nested groups, folders, documents.
entity user {}

entity organization {
  relation admin @user
  relation member @user @group#member
  attribute ip_range string[]

  permission manage = admin
  action invite = admin or member
}

entity group {
  relation owner @user
  relation member @user @group#member /* nested groups */
  permission edit = owner
}

entity folder {
  relation org @organization
  relation parent @folder
  relation owner @user @group#member
  relation viewer @user @group#member
  attribute archived boolean

  permission edit = owner or org.manage
  permission view = (viewer or edit or parent.view) not archived
}

entity document {
  relation org @organization
  relation parent @folder
  relation owner @user
  relation editor @user @group#member
  relation viewer @user @group#member
  relation banned @user
  attribute public boolean
  attribute balance integer
  attribute tags string[]

  permission edit = (owner or editor or parent.edit) not banned
  permission view = edit or viewer or public or parent.view
    or within_budget(balance, tags)
  action delete = owner and org.manage
}

rule within_budget(balance integer, tags string[]) {
  // CEL: braces and quotes inside strings and comments are fine: } { ' "
  balance <= 5000 && ('vip' in tags || {"a": 1}['a'] == 1)
}
"""

BANK = """\
entity user {}
entity account {
  relation owner @user; relation teller @user
  attribute balance double
  attribute frozen boolean
  permission withdraw = owner and check_balance(balance) not frozen
  permission audit = teller
    or owner
}
rule check_balance(balance double) {
  balance >= 100.0
}
"""

MINIMAL = "entity user {}\r\nentity doc { relation owner @user permission view = owner }\r\n"

VALID_SCHEMAS = [GOOGLE_DOCS, BANK, MINIMAL]

#: Fragments that steer the parser into interesting states when inserted or substituted.
TOKENS = [
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "[]",
    "@",
    "#",
    ".",
    ",",
    "=",
    ";",
    "and",
    "or",
    "not",
    "in",
    "true",
    "//",
    "/*",
    "*/",
    '"',
    "'",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "\x00",
    "\ufeff",
    "é",
    "\u2028",
    "entity",
    "relation",
    "permission",
    "action",
    "attribute",
    "rule",
    "user",
    "owner",
    "view",
    "parent.view",
    "a.b.c",
    "1",
    "x" * 70,
    "((((((((",
    "))))))))",
]

_TOKEN_SPLIT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\s+|//|/\*|\*/|.", re.DOTALL)


def _check(source: str | bytes) -> None:
    """Load ``source``; succeed, or fail with well-formed diagnostics only."""
    try:
        schema = load(source)
    except SchemaError as exc:
        diagnostics = exc.diagnostics
    else:
        assert isinstance(schema, Schema)
        return
    assert diagnostics
    assert list(diagnostics) == sorted(diagnostics)
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    except UnicodeDecodeError:
        text = None  # The one diagnostic names the bad byte; there is no text line to check.
    lines = None if text is None else text.removeprefix("\ufeff").split("\n")
    for diagnostic in diagnostics:
        assert diagnostic.line >= 1, diagnostic
        assert diagnostic.column >= 1, diagnostic
        assert diagnostic.message.strip(), diagnostic
        if lines is not None:
            # Positions count only "\n" as a line break; the column may point just past the end.
            assert diagnostic.line <= len(lines), diagnostic
            line = lines[diagnostic.line - 1]
            assert diagnostic.column <= len(line) + 1, diagnostic
            assert diagnostic.source_line == line.removesuffix("\r"), diagnostic


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid schema with a few random character- or token-level edits."""
    text = draw(st.sampled_from(VALID_SCHEMAS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pieces = list(text) if draw(st.booleans()) else _TOKEN_SPLIT.findall(text)
        index = draw(st.integers(min_value=0, max_value=len(pieces)))
        fragment = draw(st.sampled_from(TOKENS) | st.text(min_size=1, max_size=3))
        edit = draw(st.sampled_from(["delete", "insert", "replace", "cut", "duplicate"]))
        if edit == "insert":
            pieces.insert(index, fragment)
        elif edit == "replace":
            pieces[index : index + 1] = [fragment]
        elif edit == "delete":
            del pieces[index : index + 1]
        else:
            length = draw(st.integers(min_value=1, max_value=12))
            if edit == "cut":
                del pieces[index : index + length]
            else:
                pieces[index:index] = pieces[index : index + length]
        text = "".join(pieces)
    return text


@pytest.mark.parametrize("source", VALID_SCHEMAS, ids=["google_docs", "bank", "minimal"])
def test_seed_schemas_are_valid(source: str) -> None:
    assert isinstance(load(source), Schema)
    assert isinstance(load(source.encode("utf-8")), Schema)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(source: bytes) -> None:
    _check(source)


@FUZZ
@given(
    st.lists(
        st.sampled_from(TOKENS) | st.sampled_from(TOKENS).map(str.encode) | st.binary(max_size=3),
        max_size=60,
    ).map(lambda parts: b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))
)
def test_schema_like_bytes(source: bytes) -> None:
    _check(source)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text(source: str) -> None:
    _check(source)


@FUZZ
@given(
    st.lists(
        st.sampled_from(TOKENS)
        | st.text(st.characters(codec="utf-8"), max_size=3)
        | st.sampled_from(["\x00", "\r", "\u0085", "\x0c", "\U0001f600"]),
        max_size=80,
    ).map("".join)
)
def test_schema_like_text(source: str) -> None:
    _check(source)


@FUZZ
@given(_mutated())
def test_mutated_valid_schemas(source: str) -> None:
    _check(source)
    _check(source.encode("utf-8"))


_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


@FUZZ
@given(_mutated())
def test_formatting_any_valid_mutation_keeps_meaning_and_comments(source: str) -> None:
    try:
        schema = load(source)
    except SchemaError:
        return
    formatted = format_schema(source)
    assert format_schema(formatted) == formatted
    assert load(formatted) == schema
    kept = [c.text.strip() for c in parse(formatted).comments]
    assert kept == [c.text.strip() for c in parse(source).comments]
