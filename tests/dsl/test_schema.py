"""Parsing and compiling valid schemas: precedence, positions, the compiled model, its indexes."""

from __future__ import annotations

import pytest

from dsl import ast
from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.parser import parse
from dsl.schema import (
    AttributeType,
    ComputedAttribute,
    ComputedUserSet,
    Edge,
    EdgeKind,
    Operation,
    ReferenceKind,
    RelationRef,
    Rewrite,
    RuleCall,
    TupleToUserSet,
)

U, AND, X = Operation.UNION, Operation.INTERSECTION, Operation.EXCLUSION


def _perm(expr: str, extra: str = "") -> object:
    schema = load(
        "entity user {}\n"
        "entity doc {\n"
        "  relation a @user\n  relation b @user\n  relation c @user\n  relation d @user\n"
        f"  {extra}\n"
        f"  permission p = {expr}\n"
        "}\n"
    )
    return schema.entities["doc"].permissions["p"].child


def _r(op: Operation, left: object, right: object) -> Rewrite:
    return Rewrite(op, (left, right))  # type: ignore[arg-type]


A, B, C, D = (ComputedUserSet(n) for n in "abcd")


@pytest.mark.parametrize(
    ("expr", "tree"),
    [
        ("a", A),
        ("a or b", _r(U, A, B)),
        # one precedence level, left-associative (Permify)
        ("a or b and c", _r(AND, _r(U, A, B), C)),
        ("a and b or c", _r(U, _r(AND, A, B), C)),
        ("a not b not c", _r(X, _r(X, A, B), C)),
        ("a and b or c not d", _r(X, _r(U, _r(AND, A, B), C), D)),
        ("a or (b and c)", _r(U, A, _r(AND, B, C))),
        ("(a or b) or c", _r(U, _r(U, A, B), C)),
        ("((a))", A),
        ("a not (b or c)", _r(X, A, _r(U, B, C))),
        ("a or\n b", _r(U, A, B)),
        ("a\n  or b", _r(U, A, B)),
    ],
    ids=[
        "leaf",
        "or",
        "or-then-and",
        "and-then-or",
        "not-chain",
        "mixed",
        "parens-right",
        "parens-left",
        "double-parens",
        "not-group",
        "newline-after-op",
        "op-on-next-line",
    ],
)
def test_operators_share_one_left_associative_level(expr: str, tree: object) -> None:
    assert _perm(expr) == tree


def test_leaf_kinds_compile_to_permify_ir() -> None:
    schema = load(
        """
        entity user {}
        entity folder { relation viewer @user  permission view = viewer }
        entity doc {
            relation parent @folder
            attribute public boolean
            attribute level integer
            permission view = parent.view or public or allowed(level)
        }
        rule allowed(level integer) { level > context.data.min }
        """
    )
    child = schema.entities["doc"].permissions["view"].child
    assert child == _r(
        U,
        _r(U, TupleToUserSet("parent", "view"), ComputedAttribute("public")),
        RuleCall("allowed", ("level",)),
    )
    assert schema.rules["allowed"].parameters == {"level": AttributeType.INTEGER}
    assert schema.rules["allowed"].expression == "level > context.data.min"


def test_entity_tables_and_attribute_types() -> None:
    schema = load(
        "entity user {}\nentity t {\n relation r @user @t#r\n attribute tags string[]\n"
        " attribute n double\n action go = r\n}\n"
    )
    t = schema.entities["t"]
    assert t.references == {
        "r": ReferenceKind.RELATION,
        "tags": ReferenceKind.ATTRIBUTE,
        "n": ReferenceKind.ATTRIBUTE,
        "go": ReferenceKind.PERMISSION,
    }
    assert t.relations["r"].subject_types == (RelationRef("user"), RelationRef("t", "r"))
    assert t.relations["r"].allows("t", "r") and not t.relations["r"].allows("t")
    assert t.attributes["tags"].type is AttributeType.STRING_ARRAY
    assert t.attributes["n"].type is AttributeType.DOUBLE
    assert set(t.permissions) == {"go"}


def test_reverse_lookup_indexes() -> None:
    schema = load(
        """
        entity user {}
        entity group { relation member @user @group#member }
        entity folder {
            relation viewer @user @group#member
            relation parent @folder
            permission view = viewer or parent.view
        }
        """
    )
    assert schema.subject_entrances[RelationRef("user")] == (
        ("group", "member"),
        ("folder", "viewer"),
    )
    assert schema.subject_entrances[RelationRef("group", "member")] == (
        ("group", "member"),
        ("folder", "viewer"),
    )
    assert set(schema.dependents[("group", "member")]) == {
        Edge(EdgeKind.SUBJECT_RELATION, "group", "member"),
        Edge(EdgeKind.SUBJECT_RELATION, "folder", "viewer"),
    }
    assert schema.dependents[("folder", "viewer")] == (Edge(EdgeKind.COMPUTED, "folder", "view"),)
    assert schema.dependents[("folder", "view")] == (
        Edge(EdgeKind.TUPLE_TO_USERSET, "folder", "view", "parent"),
    )


def test_cycle_through_a_relation_walk_is_allowed() -> None:
    schema = load(
        "entity user {}\nentity f {\n relation parent @f\n relation owner @user\n"
        " permission view = owner or parent.view\n permission edit = view and parent.edit\n}\n"
    )
    assert set(schema.entities["f"].permissions) == {"view", "edit"}


def test_positions_are_one_based_line_and_column() -> None:
    tree = parse("entity user {}\n\nentity doc {\n    relation owner @user\n}\n")
    doc = tree.definitions[1]
    assert isinstance(doc, ast.Entity)
    assert (doc.pos, doc.name_pos) == (ast.Pos(3, 1), ast.Pos(3, 8))
    owner = doc.members[0]
    assert isinstance(owner, ast.Relation)
    assert owner.name_pos == ast.Pos(4, 14)
    assert owner.subject_types[0].pos == ast.Pos(4, 21)


def test_crlf_and_bom_and_semicolons_and_bytes() -> None:
    text = "\ufeffentity user {}\r\nentity doc { relation a @user; relation b @user; }\r\n"
    assert load(text) == load(text.encode("utf-8"))
    assert set(load(text).entities["doc"].relations) == {"a", "b"}


def test_digits_in_names_are_accepted() -> None:
    schema = load("entity user2 {}\nentity doc { relation member2 @user2 }\n")
    assert schema.entities["doc"].relations["member2"].subject_types == (RelationRef("user2"),)


def test_rule_body_is_verbatim_cel_with_braces_strings_and_comments() -> None:
    schema = load(
        'entity user {}\nrule r(x string) {\n    x == "}" // a } and a \' quote\n'
        "      && {'k': x}['k'] == x\n}\n"
    )
    assert schema.rules["r"].expression == (
        "x == \"}\" // a } and a ' quote\n  && {'k': x}['k'] == x"
    )


def test_schemas_equal_iff_meaning_equal() -> None:
    assert load("entity user {} entity d { relation a @user }") == load(
        "entity user {}\n\n// comment\nentity d {\n  relation a @user\n}\n"
    )
    assert load("entity user {} entity d { relation a @user }") != load(
        "entity user {} entity d { relation b @user }"
    )


def test_error_source_line_counts_only_newlines() -> None:
    text = "entity user {} // a\u2028b\x0cc\r\nentity doc { relation r @nope }\r\n"
    with pytest.raises(SchemaError) as caught:
        load(text)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (2, 26)
    assert diagnostic.source_line == "entity doc { relation r @nope }"
