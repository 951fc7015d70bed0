"""The canonical printer: exact output, comments kept, idempotent, meaning preserved."""

from __future__ import annotations

import pytest

from dsl.compiler import load
from dsl.format import format_schema

MESSY = """// Licence header

entity user {} // people
/* a block
   comment */
entity doc {   // after the brace
  relation owner @user   @group#member  // who owns it
  relation parent    @folder
  // about permissions


  permission view = (owner or parent.view) or (owner and (owner not parent.view)) // x
  action   edit = owner
  attribute   tags string [ ]
  // end of entity
}
entity group { relation member @user }
entity folder { relation viewer @user permission view = viewer }
rule ok(tags string[]) {   'a' in tags &&
      size(tags) > 1 }
// the end
"""

CANONICAL = """// Licence header

entity user {} // people

/* a block
   comment */
entity doc { // after the brace
    relation owner @user @group#member // who owns it
    relation parent @folder
    // about permissions

    permission view = owner or parent.view or (owner and (owner not parent.view)) // x
    action edit = owner
    attribute tags string[]
    // end of entity
}

entity group {
    relation member @user
}

entity folder {
    relation viewer @user
    permission view = viewer
}

rule ok(tags string[]) {
    'a' in tags &&
       size(tags) > 1
}

// the end
"""


def test_formats_to_the_canonical_text() -> None:
    assert format_schema(MESSY) == CANONICAL


def test_canonical_text_is_a_fixed_point() -> None:
    assert format_schema(CANONICAL) == CANONICAL


def test_formatting_keeps_the_compiled_schema() -> None:
    assert load(format_schema(MESSY)) == load(MESSY)


@pytest.mark.parametrize(
    ("expr", "printed"),
    [
        ("a or (b or c)", "a or (b or c)"),
        ("(a or b) or c", "a or b or c"),
        ("a not (b not c)", "a not (b not c)"),
        ("(((a)))", "a"),
        ("a and (b or c) and a", "a and (b or c) and a"),
    ],
    ids=["right-group-kept", "left-group-dropped", "nested-not", "redundant", "middle"],
)
def test_parentheses_only_where_meaning_needs_them(expr: str, printed: str) -> None:
    source = (
        "entity user {}\nentity d {\n    relation a @user\n    relation b @user\n"
        f"    relation c @user\n    permission p = {expr}\n}}\n"
    )
    formatted = format_schema(source)
    assert f"permission p = {printed}\n" in formatted
    assert load(formatted) == load(source)


def test_empty_input_formats_to_empty() -> None:
    assert format_schema("") == ""
    assert format_schema("// only a comment\n") == "// only a comment\n"


def test_action_keyword_is_kept() -> None:
    assert "action go = a" in format_schema("entity u {} entity d { relation a @u action go = a }")


def test_triple_quoted_rule_body_is_kept_byte_for_byte() -> None:
    source = "entity u {}\nrule r(x string) {x == '''a\n  b'''}\n"
    formatted = format_schema(source)
    assert "{x == '''a\n  b'''}" in formatted
    assert format_schema(formatted) == formatted
    assert load(formatted) == load(source)
