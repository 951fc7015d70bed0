"""Partial schema writes: exact resulting text, the write -> update -> delete order, comments,
every problem reported at once, compile errors in the new text, and a model-based property."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.ast import Attribute, Entity, Permission, Relation
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.parser import parse, parse_member
from dsl.partial import (
    ALREADY_EXIST,
    ENTITY_NOT_FOUND,
    REFERENCE_NOT_FOUND,
    SCHEMA_PARSE,
    Partial,
    PartialProblem,
    PartialWriteError,
    apply_partials,
)


def _s(text: str) -> str:
    """A schema written as an indented triple-quoted string, without its first newline."""
    return textwrap.dedent(text).lstrip("\n")


# Canonical already (checked below), so each expected result is BASE with a visible change.
BASE = _s("""
    // Licence header
    entity user {}

    entity group {
        relation member @user
        relation admin @user
    }

    entity document {
        // who owns it
        relation owner @user // a person
        relation viewer @user @group#member
        relation auditor @user
        relation parent @folder
        attribute public boolean
        attribute tags string[]

        // rights
        permission edit = owner or parent.edit
        permission audit = auditor or owner
        action view = viewer or edit or public
    }

    entity folder {
        relation owner @user
        permission edit = owner
    }

    rule is_weekday(day string) {
        day != 'saturday' && day != 'sunday'
    }
""")

LAST = "    action view = viewer or edit or public\n"


def _replaced(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_base_is_canonical() -> None:
    assert format_schema(BASE) == BASE


SUCCESS = [
    pytest.param(
        {"document": Partial(write=("relation editor @user @group#member",))},
        _replaced((LAST, LAST + "    relation editor @user @group#member\n")),
        id="write-relation",
    ),
    pytest.param(
        {"document": Partial(write=("permission remove = owner and not_public",
                                    "attribute not_public boolean"))},
        _replaced((LAST, LAST + "    permission remove = owner and not_public\n"
                               "    attribute not_public boolean\n")),
        id="write-permission-and-the-attribute-it-uses",
    ),
    pytest.param(
        {"document": Partial(write=("action   share =\n  owner\n  or edit",))},
        _replaced((LAST, LAST + "    action share = owner or edit\n")),
        id="write-action-canonical",
    ),
    pytest.param(
        {"document": Partial(write=("attribute rating double[]",))},
        _replaced((LAST, LAST + "    attribute rating double[]\n")),
        id="write-attribute",
    ),
    pytest.param(
        {"user": Partial(write=("attribute active boolean", "relation manager @user"))},
        _replaced(("entity user {}\n",
                   "entity user {\n    attribute active boolean\n    relation manager @user\n}\n")),
        id="write-into-empty-entity",
    ),
    pytest.param(
        {"document": Partial(update=("relation viewer @user",))},
        _replaced(("relation viewer @user @group#member\n", "relation viewer @user\n")),
        id="update-relation-in-place",
    ),
    pytest.param(
        {"document": Partial(update=("permission edit = owner",))},
        _replaced(("permission edit = owner or parent.edit\n", "permission edit = owner\n")),
        id="update-permission-in-place",
    ),
    pytest.param(
        {"document": Partial(update=("action view = viewer",))},
        _replaced((LAST, "    action view = viewer\n")),
        id="update-action-in-place",
    ),
    pytest.param(
        {"document": Partial(update=("attribute tags integer[]",))},
        _replaced(("attribute tags string[]\n", "attribute tags integer[]\n")),
        id="update-attribute-in-place",
    ),
    pytest.param(
        {"document": Partial(update=("permission view = viewer or edit",))},
        _replaced((LAST, "    permission view = viewer or edit\n")),
        id="update-takes-the-statements-keyword",
    ),
    pytest.param(
        {"document": Partial(update=("permission auditor = owner",))},
        _replaced(("relation auditor @user\n", "permission auditor = owner\n")),
        id="update-may-change-the-kind",
    ),
    pytest.param(
        {"group": Partial(delete=("admin",))},
        _replaced(("    relation admin @user\n", "")),
        id="delete-relation",
    ),
    pytest.param(
        {"document": Partial(delete=("audit", "auditor"))},
        _replaced(("    relation auditor @user\n", ""),
                  ("    permission audit = auditor or owner\n", "")),
        id="delete-permission-and-its-relation",
    ),
    pytest.param(
        {"document": Partial(delete=("view",))},
        _replaced((LAST, "")),
        id="delete-action",
    ),
    pytest.param(
        {"document": Partial(delete=("tags",))},
        _replaced(("    attribute tags string[]\n", "")),
        id="delete-attribute",
    ),
    pytest.param(
        {
            "user": Partial(write=("attribute active boolean",)),
            "folder": Partial(
                write=("relation viewer @user",), update=("permission edit = viewer",)
            ),
            "group": Partial(delete=("admin",)),
        },
        _replaced(
            ("entity user {}\n", "entity user {\n    attribute active boolean\n}\n"),
            ("    permission edit = owner\n}\n",
             "    permission edit = viewer\n    relation viewer @user\n}\n"),
            ("    relation admin @user\n", ""),
        ),
        id="several-entities",
    ),
    pytest.param({"document": Partial()}, BASE, id="empty-partial-changes-nothing"),
    pytest.param({}, BASE, id="no-partials-changes-nothing"),
    # The order is write, update, delete within one entity.
    pytest.param(
        {"document": Partial(write=("relation temp @user",), delete=("temp",))},
        BASE,
        id="write-then-delete-leaves-no-trace",
    ),
    pytest.param(
        {"document": Partial(write=("relation temp @user",), update=("relation temp @folder",))},
        _replaced((LAST, LAST + "    relation temp @folder\n")),
        id="update-a-member-written-in-the-same-call",
    ),
    pytest.param(
        {"document": Partial(update=("attribute tags string",), delete=("tags",))},
        _replaced(("    attribute tags string[]\n", "")),
        id="update-then-delete",
    ),
]


@pytest.mark.parametrize(("partials", "expected"), SUCCESS)
def test_partials_give_the_expected_schema(partials: dict[str, Partial], expected: str) -> None:
    result = apply_partials(BASE, partials)
    assert result == expected
    assert format_schema(result) == result
    assert load(result) == load(expected)


def test_base_is_returned_canonical() -> None:
    messy = "entity user {}   entity doc { relation owner   @user permission view = owner }"
    result = apply_partials(messy, {"doc": Partial(write=("relation viewer @user",))})
    assert result == _s("""
        entity user {}

        entity doc {
            relation owner @user
            permission view = owner
            relation viewer @user
        }
    """)


def test_accepts_utf8_bytes() -> None:
    result = apply_partials(BASE.encode(), {"group": Partial(delete=("admin",))})
    assert result == _replaced(("    relation admin @user\n", ""))


# ---------------------------------------------------------------------------------------------
# Comments

COMMENTED = _s("""
    entity user {} // people

    entity doc { // documents
        relation owner @user
        // section

        // about a
        // more about a
        relation a @user // trailing a
        relation b @user
        /* block
           about c */
        relation c @user
        // closing remark
    } // end of doc
""")

COMMENTS = [
    pytest.param(
        Partial(delete=("a",)),
        "    // about a\n    // more about a\n    relation a @user // trailing a\n",
        "",
        id="delete-takes-the-comments-above-and-on-its-line",
    ),
    pytest.param(
        Partial(delete=("c",)),
        "    /* block\n       about c */\n    relation c @user\n",
        "",
        id="delete-takes-a-block-comment-above",
    ),
    pytest.param(
        Partial(delete=("b",)),
        "    relation b @user\n",
        "",
        id="delete-without-comments",
    ),
    pytest.param(
        Partial(delete=("owner",)),
        "    relation owner @user\n",
        "",
        id="delete-keeps-the-comment-below",
    ),
    pytest.param(
        Partial(update=("relation a @user @doc#owner",)),
        "    relation a @user // trailing a\n",
        "    relation a @user @doc#owner\n",
        id="update-keeps-the-comments-above-not-on-its-line",
    ),
    pytest.param(
        Partial(update=("relation a @user // new note",)),
        "    relation a @user // trailing a\n",
        "    relation a @user // new note\n",
        id="update-keeps-comments-of-the-statement",
    ),
    pytest.param(
        Partial(write=("// why d\nrelation d   @user // note\n",)),
        "    relation c @user\n",
        "    relation c @user\n    // why d\n    relation d @user // note\n",
        id="write-keeps-comments-of-the-statement-before-closing-comments",
    ),
]


@pytest.mark.parametrize(("partial", "old", "new"), COMMENTS)
def test_comments_follow_their_members(partial: Partial, old: str, new: str) -> None:
    assert format_schema(COMMENTED) == COMMENTED
    assert COMMENTED.count(old) == 1
    result = apply_partials(COMMENTED, {"doc": partial})
    assert result == COMMENTED.replace(old, new)
    assert format_schema(result) == result


def test_deleting_every_member_keeps_the_entity_and_its_other_comments() -> None:
    result = apply_partials(COMMENTED, {"doc": Partial(delete=("owner", "a", "b", "c"))})
    assert result == _s("""
        entity user {} // people

        entity doc { // documents
            // section

            // closing remark
        } // end of doc
    """)


def test_write_into_an_empty_entity_keeps_its_comment() -> None:
    result = apply_partials(COMMENTED, {"user": Partial(write=("relation boss @user",))})
    assert result.startswith("entity user { // people\n    relation boss @user\n}\n\n")


def test_rules_and_other_entities_are_kept_verbatim() -> None:
    base = _s("""
        entity user {}

        entity doc {
            relation owner @user
        }

        rule r(x string) {x == '''a
          b'''}
    """)
    result = apply_partials(base, {"doc": Partial(write=("relation viewer @user",))})
    assert result == base.replace(
        "    relation owner @user\n", "    relation owner @user\n    relation viewer @user\n"
    )
    assert "rule r(x string) {x == '''a\n  b'''}\n" in result


# ---------------------------------------------------------------------------------------------
# Problems with the request: all of them, each with its code and place.

Problem = tuple[str, str, str]

PROBLEMS = [
    pytest.param(
        {"docment": Partial(delete=("owner",))},
        [(ENTITY_NOT_FOUND, "partials.docment",
          "the schema has no entity `docment` (did you mean `document`?)")],
        id="unknown-entity",
    ),
    pytest.param(
        {"nothing_like_it": Partial()},
        [(ENTITY_NOT_FOUND, "partials.nothing_like_it",
          "the schema has no entity `nothing_like_it`")],
        id="unknown-entity-even-with-nothing-to-do",
    ),
    pytest.param(
        {"is_weekday": Partial(delete=("day",))},
        [(ENTITY_NOT_FOUND, "partials.is_weekday", "`is_weekday` is a rule, not an entity")],
        id="rule-is-not-an-entity",
    ),
    pytest.param(
        {"document": Partial(write=("relation owner @user @group#member",))},
        [(ALREADY_EXIST, "partials.document.write[0]",
          "entity `document` already has a member named `owner`")],
        id="write-existing-name",
    ),
    pytest.param(
        {"document": Partial(write=("permission tags = owner",))},
        [(ALREADY_EXIST, "partials.document.write[0]",
          "entity `document` already has a member named `tags`")],
        id="write-name-taken-by-another-kind",
    ),
    pytest.param(
        {"document": Partial(write=("relation x @user", "relation x @group#member"))},
        [(ALREADY_EXIST, "partials.document.write[1]",
          "entity `document` already has a member named `x`")],
        id="write-the-same-name-twice",
    ),
    pytest.param(
        {"document": Partial(write=("relation owner @user",), delete=("owner",))},
        [(ALREADY_EXIST, "partials.document.write[0]",
          "entity `document` already has a member named `owner`")],
        id="writes-come-before-deletes",
    ),
    pytest.param(
        {"document": Partial(update=("relation editor @user",))},
        [(REFERENCE_NOT_FOUND, "partials.document.update[0]",
          "entity `document` has no member named `editor` to update")],
        id="update-missing-member",
    ),
    pytest.param(
        {"document": Partial(delete=("owner", "editor"))},
        [(REFERENCE_NOT_FOUND, "partials.document.delete[1]",
          "entity `document` has no member named `editor` to delete")],
        id="delete-missing-member",
    ),
    pytest.param(
        {"document": Partial(delete=("tags", "tags"))},
        [(REFERENCE_NOT_FOUND, "partials.document.delete[1]",
          "entity `document` has no member named `tags` to delete")],
        id="delete-twice",
    ),
    pytest.param(
        {"document": Partial(write=("permission remove =",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:20: unexpected end of statement; expected a name or `(`")],
        id="incomplete-statement",
    ),
    pytest.param(
        {"document": Partial(update=("permission edit = owner\n    or or parent.edit",))},
        [(SCHEMA_PARSE, "partials.document.update[0]",
          "2:8: `or` is a reserved word and cannot be used as a name")],
        id="error-on-the-statements-second-line",
    ),
    pytest.param(
        {"document": Partial(write=("relation x @user }",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:18: unexpected `}`; expected `relation`, `permission`, `action`, `attribute`, "
          "`@` or `#`")],
        id="brace-in-statement",
    ),
    pytest.param(
        {"document": Partial(write=("relation x @user relation y @user",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:18: one statement expected, but a second one (`y`) starts here")],
        id="two-statements",
    ),
    pytest.param(
        {"document": Partial(write=("  // just a comment",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:1: empty statement; expected `relation`, `permission`, `action` or `attribute`")],
        id="empty-statement",
    ),
    pytest.param(
        {"document": Partial(write=("entity x {}",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:1: unexpected `entity`; expected `relation`, `permission`, `action` or "
          "`attribute`")],
        id="not-a-member",
    ),
    pytest.param(
        {"document": Partial(write=("relatoin x @user",))},
        [(SCHEMA_PARSE, "partials.document.write[0]",
          "1:1: unexpected `relatoin`; expected `relation`, `permission`, `action` or "
          "`attribute` (did you mean `relation`?)")],
        id="misspelt-keyword",
    ),
    pytest.param(
        {
            "docment": Partial(write=("relation x @user $",)),
            "document": Partial(
                write=("relation owner @user", "relation fine @user"),
                update=("permission nope = owner", "permission edit ="),
                delete=("zz",),
            ),
            "folder": Partial(delete=("owner", "owner")),
        },
        [
            (ENTITY_NOT_FOUND, "partials.docment",
             "the schema has no entity `docment` (did you mean `document`?)"),
            (SCHEMA_PARSE, "partials.docment.write[0]",
             "1:18: unexpected `$`; expected `relation`, `permission`, `action`, `attribute`, "
             "`@` or `#`"),
            (ALREADY_EXIST, "partials.document.write[0]",
             "entity `document` already has a member named `owner`"),
            (REFERENCE_NOT_FOUND, "partials.document.update[0]",
             "entity `document` has no member named `nope` to update"),
            (SCHEMA_PARSE, "partials.document.update[1]",
             "1:18: unexpected end of statement; expected a name or `(`"),
            (REFERENCE_NOT_FOUND, "partials.document.delete[0]",
             "entity `document` has no member named `zz` to delete"),
            (REFERENCE_NOT_FOUND, "partials.folder.delete[1]",
             "entity `folder` has no member named `owner` to delete"),
        ],
        id="every-problem-at-once-in-request-order",
    ),
]


@pytest.mark.parametrize(("partials", "expected"), PROBLEMS)
def test_request_problems_are_reported_together(
    partials: dict[str, Partial], expected: list[Problem]
) -> None:
    with pytest.raises(PartialWriteError) as caught:
        apply_partials(BASE, partials)
    assert [(p.code, p.location, p.message) for p in caught.value.problems] == expected
    assert caught.value.code == expected[0][0]


def test_error_message_names_each_problem() -> None:
    error = PartialWriteError([
        PartialProblem(REFERENCE_NOT_FOUND, "partials.d.delete[0]", "no `x`"),
        PartialProblem(ALREADY_EXIST, "partials.d.write[0]", "`y` taken"),
    ])
    assert str(error) == "partials.d.delete[0]: no `x`; partials.d.write[0]: `y` taken"
    assert error.code == REFERENCE_NOT_FOUND
    with pytest.raises(ValueError, match="at least one"):
        PartialWriteError([])


# ---------------------------------------------------------------------------------------------
# The result must compile: the compiler's errors, positioned in the new text.


def test_deleting_a_referenced_relation_is_a_compile_error_in_the_new_text() -> None:
    new_text = _replaced(
        ("    // who owns it\n    relation owner @user // a person\n", "")
    )
    with pytest.raises(SchemaError) as caught:
        apply_partials(BASE, {"document": Partial(delete=("owner",))})
    new_lines = new_text.split("\n")
    found = [(d.line, d.column, d.source_line) for d in caught.value.diagnostics]
    assert found == [
        (17, 23, "    permission edit = owner or parent.edit"),
        (18, 35, "    permission audit = auditor or owner"),
    ]
    for diagnostic in caught.value.diagnostics:
        assert new_lines[diagnostic.line - 1] == diagnostic.source_line
        assert diagnostic.source_line[diagnostic.column - 1 :].startswith("owner")
        assert "`owner`" in diagnostic.message


def test_an_update_that_does_not_type_check_is_a_compile_error() -> None:
    with pytest.raises(SchemaError, match="public"):
        apply_partials(BASE, {"document": Partial(update=("attribute public string",))})


def test_a_base_that_does_not_parse_is_a_schema_error_in_the_base() -> None:
    with pytest.raises(SchemaError) as caught:
        apply_partials("entity user {}\nentity doc {\n  relation $\n}\n", {})
    assert (caught.value.first.line, caught.value.first.column) == (3, 12)


# ---------------------------------------------------------------------------------------------
# parse_member, the parser's entry point for one statement


@pytest.mark.parametrize(
    ("statement", "kind", "name"),
    [
        ("relation owner @user @group#member", Relation, "owner"),
        ("  permission edit = owner or parent.edit // why\n", Permission, "edit"),
        ("/* first */ action view = viewer", Permission, "view"),
        ("attribute tags string[];", Attribute, "tags"),
    ],
    ids=["relation", "permission-with-comment", "action-after-comment", "attribute-semicolon"],
)
def test_parse_member_reads_one_statement(statement: str, kind: type, name: str) -> None:
    member = parse_member(statement)
    assert isinstance(member, kind)
    assert member.name == name


def test_parse_member_positions_are_the_statements_own() -> None:
    member = parse_member("\n  permission p =\n    a or b")
    assert isinstance(member, Permission)
    assert (member.pos.line, member.pos.column) == (2, 3)
    assert (member.name_pos.line, member.name_pos.column) == (2, 14)
    assert member.end_line == 3


def test_parse_member_keeps_the_depth_limit() -> None:
    deep = "permission p = " + " or ".join(["a"] * 200)
    with pytest.raises(SchemaError, match="nests operators"):
        parse_member(deep)


# ---------------------------------------------------------------------------------------------
# Property: the result compiles to what the equivalent hand-written schema compiles to.

_NAMES = ("r0", "r1", "r2", "r3", "n0", "n1", "n2")


def _statement(name: str, variant: int) -> str:
    """A member named ``name`` in one of several shapes (and layouts); all of them compile
    in an entity that has `owner`."""
    return [
        f"relation {name} @user",
        f"relation   {name}\n  @user @doc#owner // c",
        f"attribute {name} string[]",
        f"permission {name} = owner",
        f"action {name} =\n    owner not owner",
        f"/* doc */ attribute {name} boolean",
    ][variant]


@st.composite
def _edits(draw: st.DrawFn) -> tuple[list[tuple[str, str]], Partial]:
    base = [(name, _statement(name, draw(st.integers(0, 5)))) for name in _NAMES[:4]]
    fresh = draw(st.lists(st.sampled_from(_NAMES[4:]), unique=True))
    write = tuple(_statement(n, draw(st.integers(0, 5))) for n in fresh)
    present = [n for n, _ in base] + fresh
    updated = draw(st.lists(st.sampled_from(present), unique=True))
    update = tuple(_statement(n, draw(st.integers(0, 5))) for n in updated)
    delete = tuple(draw(st.lists(st.sampled_from(present), unique=True)))
    return base, Partial(write, update, delete)


def _entity(members: list[tuple[str, str]]) -> str:
    body = "".join(f"    {text}\n" for _, text in members)
    return f"entity user {{}}\n\nentity doc {{\n    relation owner @user\n{body}}}\n"


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(_edits())
def test_result_compiles_like_the_hand_written_schema(
    edits: tuple[list[tuple[str, str]], Partial],
) -> None:
    base, partial = edits
    # The model: an ordered list of (name, statement), edited as the docstring says.
    model = list(base)
    model += [(parse_member(s).name, s) for s in partial.write]
    for statement in partial.update:
        name = parse_member(statement).name
        model = [(n, statement if n == name else s) for n, s in model]
    model = [(n, s) for n, s in model if n not in partial.delete]

    result = apply_partials(_entity(base), {"doc": partial})

    expected = _entity(model)
    assert load(result) == load(expected)
    doc = parse(result).definitions[1]
    assert isinstance(doc, Entity)
    assert [m.name for m in doc.members] == ["owner"] + [n for n, _ in model]
    assert format_schema(result) == result
