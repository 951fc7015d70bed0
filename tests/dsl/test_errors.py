"""Invalid schemas and the exact diagnostics they produce; valid edge cases that must load.

Every case in `CASES` is loaded with `dsl.compiler.load` and must raise `SchemaError` whose
diagnostics are exactly the listed ``(line, column, message)`` triples, in order (positions are
1-based; the compiler reports every semantic problem; the parser reports the first syntax error
of each definition and resumes at the next one, and a schema with syntax errors is not
compiled). Each diagnostic's ``source_line`` must be the schema's own text at that line.
"""

from __future__ import annotations

import textwrap

import pytest

from dsl.compiler import MAX_DIAGNOSTICS, load
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.parser import MAX_EXPRESSION_DEPTH, MAX_SYNTAX_ERRORS
from dsl.schema import ComputedUserSet, Operation, Rewrite, TupleToUserSet


def _s(text: str) -> str:
    """A schema written as an indented triple-quoted string, without its first newline."""
    return textwrap.dedent(text).lstrip("\n")


def _permission(expr: str) -> str:
    """A schema whose one permission, `doc#view`, is ``expr`` (on line 4, at column 21)."""
    return (
        "entity user {}\nentity doc {\n  relation owner @user\n  permission view = "
        + expr
        + "\n}\n"
    )


Triple = tuple[int, int, str]

CASES = [
    # ---------------------------------------------------------------------------------------
    # Syntax errors, one per schema (several: `SEVERAL` below).
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user $
            }
        """),
        [
            (
                3,
                24,
                "unexpected `$`; expected `relation`, `permission`, `action`, "
                "`attribute`, `@`, `#` or `}`",
            ),
        ],
        id="unexpected_char_dollar",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner = @user
            }
        """),
        [
            (
                3,
                18,
                "unexpected `=`; expected `relation`, `permission`, `action`, "
                "`attribute`, `@` or `}`",
            ),
        ],
        id="unexpected_token_equals_in_relation",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation entity @user
            }
        """),
        [
            (3, 12, "`entity` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_entity_as_relation_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity relation {}
        """),
        [
            (2, 8, "`relation` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_relation_as_entity_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation and @user
            }
        """),
        [
            (3, 12, "`and` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_and_as_relation_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute in boolean
            }
        """),
        [
            (3, 13, "`in` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_in_as_attribute_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = true
            }
        """),
        [
            (4, 21, "`true` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_true_as_operand",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation rule @user
            }
        """),
        [
            (3, 12, "`rule` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_rule_as_relation_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission permission = owner
            }
        """),
        [
            (4, 14, "`permission` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_permission_as_permission_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(false boolean) { true }
        """),
        [
            (2, 8, "`false` is a reserved word and cannot be used as a name"),
        ],
        id="reserved_false_as_rule_param",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = not owner
            }
        """),
        [
            (
                4,
                21,
                "`not` is binary exclusion (`a not b`: a but not b) and cannot start an expression",
            ),
        ],
        id="unary_not",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              relation banned @user
              permission view = owner and not banned
            }
        """),
        [
            (
                5,
                31,
                "`and not` is not an operator: `not` is binary exclusion, write "
                "`a not b` (a but not b)",
            ),
        ],
        id="old_and_not",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              relation banned @user
              permission view = owner or not banned
            }
        """),
        [
            (
                5,
                30,
                "`or not` is not an operator: `not` is binary exclusion, write "
                "`a not b` (a but not b)",
            ),
        ],
        id="old_or_not",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view owner
            }
        """),
        [
            (4, 19, "unexpected `owner`; expected `=`"),
        ],
        id="missing_equals",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view == owner
            }
        """),
        [
            (4, 20, "unexpected `=`; expected a name or `(`"),
        ],
        id="double_equals",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner user
            }
        """),
        [
            (
                3,
                18,
                "unexpected `user`; expected `relation`, `permission`, "
                "`action`, `attribute`, `@` or `}` (subject types start with "
                "`@`: `@user`)",
            ),
        ],
        id="missing_at",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relaton owner @user
            }
        """),
        [
            (
                3,
                3,
                "unexpected `relaton`; expected `relation`, `permission`, "
                "`action`, `attribute` or `}` (did you mean `relation`?)",
            ),
        ],
        id="typo_relaton",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              permision view = owner
            }
        """),
        [
            (
                3,
                3,
                "unexpected `permision`; expected `relation`, `permission`, "
                "`action`, `attribute` or `}` (did you mean `permission`?)",
            ),
        ],
        id="typo_permision",
    ),
    pytest.param(
        _s("""
            entity user {}
            enity doc {}
        """),
        [
            (2, 1, "unexpected `enity`; expected `entity` or `rule` (did you mean `entity`?)"),
        ],
        id="typo_enity",
    ),
    pytest.param(
        _s("""
            entity user {}
            /* never closed
            entity doc {}
        """),
        [
            (2, 1, "unterminated comment: `/*` is never closed by `*/`"),
        ],
        id="unterminated_block_comment",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) {
              x == 'a'
        """),
        [
            (
                2,
                18,
                "unterminated rule body: the `{` is never closed (braces must "
                "balance, strings must be closed on their line)",
            ),
        ],
        id="unterminated_rule_body",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) {
              x == 'a
            }
        """),
        [
            (
                2,
                18,
                "unterminated rule body: the `{` is never closed (braces must "
                "balance, strings must be closed on their line)",
            ),
        ],
        id="unterminated_string_in_rule_body",
    ),
    pytest.param(
        _s("""
            entity user {
              relation owner @user
        """),
        [
            (
                3,
                1,
                "unexpected end of file; expected `relation`, `permission`, "
                "`action`, `attribute`, `@`, `#` or `}`",
            ),
        ],
        id="unclosed_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = (owner or owner
            }
        """),
        [
            (5, 1, "unexpected `}`; expected `or`, `and`, `not` or `)`"),
        ],
        id="unclosed_parenthesis",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = ()
            }
        """),
        [
            (4, 22, "unexpected `)`; expected a name or `(`"),
        ],
        id="empty_parentheses",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view =
            }
        """),
        [
            (5, 1, "unexpected `}`; expected a name or `(`"),
        ],
        id="missing_expression",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner or
            }
        """),
        [
            (5, 1, "unexpected `}`; expected a name or `(`"),
        ],
        id="dangling_operator",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner.
            }
        """),
        [
            (5, 1, "unexpected `}`; expected a name"),
        ],
        id="dangling_dot",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user#
            }
        """),
        [
            (4, 1, "unexpected `}`; expected a name"),
        ],
        id="dangling_hash_in_subject",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute a boolean
              permission view = r(a,)
            }
        """),
        [
            (4, 25, "unexpected `)`; expected a name"),
        ],
        id="trailing_comma_in_call",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x) { true }
        """),
        [
            (2, 9, "unexpected `)`; expected a name"),
        ],
        id="rule_param_without_type",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) x == 'a'
        """),
        [
            (2, 18, "unexpected `x`; expected a rule body `{ ... }`"),
        ],
        id="rule_without_body",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity dóc {}
        """),
        [
            (2, 9, "unexpected character 'ó' (U+00F3); names use ASCII letters, digits and `_`"),
        ],
        id="non_ascii_name",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @us\x00er\n}\n",
        [
            (3, 21, "unexpected character '\\x00' (U+0000)"),
        ],
        id="nul_byte",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity 2doc {}
        """),
        [
            (2, 8, "names start with a letter or `_`, not `2`"),
        ],
        id="digit_starts_entity_name",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = 1owner
            }
        """),
        [
            (4, 21, "names start with a letter or `_`, not `1`"),
        ],
        id="digit_starts_operand",
    ),
    pytest.param(
        b"entity user {}\nentity d\xc3(c {}\n",
        [
            (2, 9, "schema is not valid UTF-8 (byte 0xc3)"),
        ],
        id="invalid_utf8_byte",
    ),
    pytest.param(
        b"entity user {}\n\xff",
        [
            (2, 1, "schema is not valid UTF-8 (byte 0xff)"),
        ],
        id="invalid_utf8_at_end",
    ),
    pytest.param(
        _s("""
            entity user {}
            hello
        """),
        [
            (2, 1, "unexpected `hello`; expected `entity` or `rule`"),
        ],
        id="top_level_junk",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {} x
        """),
        [
            (2, 15, "unexpected `x`; expected `entity` or `rule`"),
        ],
        id="top_level_junk_after_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            }
        """),
        [
            (2, 1, "unexpected `}`; expected `entity` or `rule`"),
        ],
        id="stray_closing_brace",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              relation editor @user
              permission view = owner editor
            }
        """),
        [
            (5, 27, "unexpected `editor`: join operands with `and`, `or` or `not`"),
        ],
        id="operands_not_joined",
    ),
    pytest.param(
        _permission(
            "(owner or " * (MAX_EXPRESSION_DEPTH + 1) + "owner" + ")" * (MAX_EXPRESSION_DEPTH + 1)
        ),
        [
            (
                4,
                14,
                "permission `view` nests operators more than "
                f"{MAX_EXPRESSION_DEPTH} deep; split it into named permissions",
            ),
        ],
        id="nesting_too_deep",
    ),
    pytest.param(
        _permission("owner" + " or owner" * (MAX_EXPRESSION_DEPTH + 1)),
        [
            (
                4,
                14,
                "permission `view` nests operators more than "
                f"{MAX_EXPRESSION_DEPTH} deep; split it into named permissions",
            ),
        ],
        id="chain_too_long",
    ),
    # ---------------------------------------------------------------------------------------
    # Semantic errors: the compiler reports all of them.
    pytest.param(
        _s("""
            entity user {}
            entity doc {}
            entity doc {}
        """),
        [
            (3, 8, "duplicate definition of `doc` (entity); `doc` is already defined at 2:8"),
        ],
        id="duplicate_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule user(x string) { x == 'a' }
        """),
        [
            (2, 6, "duplicate definition of `user` (rule); `user` is already defined at 1:8"),
        ],
        id="entity_rule_name_clash",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) { x == 'a' }
            rule r(x string) { x == 'b' }
        """),
        [
            (3, 6, "duplicate definition of `r` (rule); `r` is already defined at 2:6"),
        ],
        id="duplicate_rule",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              relation owner @user
            }
        """),
        [
            (
                4,
                12,
                "duplicate name `owner` in entity `doc`: already defined as a relation at 3:12",
            ),
        ],
        id="duplicate_relation",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner
              action view = owner
            }
        """),
        [
            (
                5,
                10,
                "duplicate name `view` in entity `doc`: already defined as a permission at 4:14",
            ),
        ],
        id="duplicate_permission_and_action",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute public boolean
              attribute public boolean
            }
        """),
        [
            (
                4,
                13,
                "duplicate name `public` in entity `doc`: already defined as an attribute at 3:13",
            ),
        ],
        id="duplicate_attribute",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission owner = owner
            }
        """),
        [
            (
                4,
                14,
                "duplicate name `owner` in entity `doc`: already defined as a relation at 3:12",
            ),
        ],
        id="permission_named_like_relation",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              attribute owner boolean
            }
        """),
        [
            (
                4,
                13,
                "duplicate name `owner` in entity `doc`: already defined as a relation at 3:12",
            ),
        ],
        id="attribute_named_like_relation",
    ),
    pytest.param(
        "entity user {}\nentity " + "d" * 65 + " {}\n",
        [
            (2, 8, "name `dddddddddddddddd…` is longer than 64 characters"),
        ],
        id="entity_name_too_long",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation " + "r" * 65 + " @user\n}\n",
        [
            (3, 12, "name `rrrrrrrrrrrrrrrr…` is longer than 64 characters"),
        ],
        id="relation_name_too_long",
    ),
    pytest.param(
        "",
        [
            (1, 1, "schema defines no entity (start with `entity user {}`)"),
        ],
        id="empty_schema",
    ),
    pytest.param(
        "// nothing here\n",
        [
            (1, 1, "schema defines no entity (start with `entity user {}`)"),
        ],
        id="comment_only_schema",
    ),
    pytest.param(
        "rule r(x string) { x == 'a' }\n",
        [
            (1, 1, "schema defines no entity (start with `entity user {}`)"),
        ],
        id="rule_only_schema",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner
            }
        """),
        [
            (
                3,
                12,
                "relation `owner` needs at least one subject type, e.g. `@user` or `@group#member`",
            ),
        ],
        id="relation_without_subject_types",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @usr
            }
        """),
        [
            (3, 19, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
        ],
        id="unknown_subject_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity group {
              relation member @user
            }
            entity doc {
              relation viewer @group#membr
            }
        """),
        [
            (6, 26, "entity `group` has no relation `membr` (did you mean `member`?)"),
        ],
        id="subject_relation_missing",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity group {
              relation member @user
              permission admin = member
            }
            entity doc {
              relation viewer @group#admin
            }
        """),
        [
            (7, 26, "`group#admin` is a permission; a subject relation must be a relation"),
        ],
        id="subject_relation_is_permission",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity group {
              attribute open boolean
            }
            entity doc {
              relation viewer @group#open
            }
        """),
        [
            (6, 26, "`group#open` is an attribute; a subject relation must be a relation"),
        ],
        id="subject_relation_is_attribute",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user @user
            }
        """),
        [
            (3, 25, "subject type `@user` is listed twice in relation `owner`"),
        ],
        id="duplicate_subject_type",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute price float
            }
        """),
        [
            (
                3,
                19,
                "unknown type `float` for attribute `price`; expected boolean, "
                "string, integer, double (each optionally with [])",
            ),
        ],
        id="attribute_type_float",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute price int
            }
        """),
        [
            (
                3,
                19,
                "unknown type `int` for attribute `price`; expected boolean, "
                "string, integer, double (each optionally with []) (did you "
                "mean `integer`?)",
            ),
        ],
        id="attribute_type_int",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute public Boolean
            }
        """),
        [
            (
                3,
                20,
                "unknown type `Boolean` for attribute `public`; expected "
                "boolean, string, integer, double (each optionally with []) "
                "(did you mean `boolean`?)",
            ),
        ],
        id="attribute_type_capitalised",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute tags text[]
            }
        """),
        [
            (
                3,
                18,
                "unknown type `text[]` for attribute `tags`; expected boolean, "
                "string, integer, double (each optionally with [])",
            ),
        ],
        id="attribute_type_unknown_array",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x float) { x > 1.0 }
        """),
        [
            (
                2,
                10,
                "unknown type `float` for parameter `x`; expected boolean, "
                "string, integer, double (each optionally with [])",
            ),
        ],
        id="rule_param_type_float",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute price integer
              permission view = price
            }
        """),
        [
            (
                4,
                21,
                "attribute `price` is `integer`; only `boolean` attributes can "
                "be permission operands (use a rule for other types)",
            ),
        ],
        id="non_boolean_attribute_operand",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute flags boolean[]
              permission view = flags
            }
        """),
        [
            (
                4,
                21,
                "attribute `flags` is `boolean[]`; only `boolean` attributes "
                "can be permission operands (use a rule for other types)",
            ),
        ],
        id="boolean_array_attribute_operand",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = ownr
            }
        """),
        [
            (
                4,
                21,
                "`ownr` is not a relation, permission or attribute of entity "
                "`doc` (did you mean `owner`?)",
            ),
        ],
        id="unknown_operand",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) { x == 'a' }
            entity doc {
              relation owner @user
              permission view = owner or r
            }
        """),
        [
            (5, 30, "`r` is a rule; call it with its arguments: `r(...)`"),
        ],
        id="rule_used_without_call",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = parent.view
            }
        """),
        [
            (4, 21, "`parent` is not a relation of entity `doc`"),
        ],
        id="walk_from_missing_relation",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission edit = owner
              permission view = edit.view
            }
        """),
        [
            (
                5,
                21,
                "`edit` is a permission of entity `doc`; the left side of "
                "`edit.view` must be a relation",
            ),
        ],
        id="walk_from_permission",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute public boolean
              permission view = public.view
            }
        """),
        [
            (
                4,
                21,
                "`public` is an attribute of entity `doc`; the left side of "
                "`public.view` must be a relation",
            ),
        ],
        id="walk_from_attribute",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity folder {
              relation viewer @user
              permission view = viewer
            }
            entity org {
              attribute view boolean
            }
            entity doc {
              relation parent @folder @org @user
              permission view = parent.view
            }
        """),
        [
            (
                11,
                28,
                "`org#view` is an attribute; the right side of `parent.view` "
                "must be a relation or permission",
            ),
            (
                11,
                28,
                "`view` is not a relation or permission of entity `user` (which "
                "`doc#parent` admits)",
            ),
        ],
        id="walk_target_missing_or_attribute",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity folder {
              relation parent @folder
              relation viewer @user
              permission view = parent.parent.viewer
            }
        """),
        [
            (
                5,
                35,
                "`parent.parent.viewer` walks more than one relation; write "
                "`relation.permission` and define a permission on the next "
                "entity to go further",
            ),
        ],
        id="walk_three_segments",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(public boolean) { public }
            entity doc {
              attribute public boolean
              permission view = chek(public)
            }
        """),
        [
            (5, 21, "unknown rule `chek` (did you mean `check`?)"),
        ],
        id="unknown_rule",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner(owner)
            }
        """),
        [
            (4, 21, "`owner` is a relation of `doc`, not a rule"),
        ],
        id="relation_called_as_rule",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              attribute public boolean
              permission view = public(public)
            }
        """),
        [
            (4, 21, "`public` is an attribute of `doc`, not a rule"),
        ],
        id="attribute_called_as_rule",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              attribute tags string[]
              permission view = check()
            }
        """),
        [
            (8, 21, "rule `check` is called without arguments; it takes (balance, tags)"),
        ],
        id="call_without_arguments",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              relation parent @doc
              attribute balance integer
              attribute tags string[]
              permission view = check(parent.balance, tags)
            }
        """),
        [
            (
                9,
                27,
                "rule arguments are attribute names of `doc`; `parent.balance` "
                "is a walk (not supported)",
            ),
        ],
        id="dotted_argument",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              relation balance @user
              attribute tags string[]
              permission view = check(balance, tags)
            }
        """),
        [
            (8, 27, "`balance` is not an attribute of entity `doc` (it is a relation)"),
        ],
        id="argument_is_relation",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              attribute tags string[]
              permission view = check(balanse, tags)
            }
        """),
        [
            (8, 27, "`balanse` is not an attribute of entity `doc` (did you mean `balance`?)"),
        ],
        id="argument_unknown",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              attribute tags string[]
              attribute owner string
              permission view = check(balance, tags, owner)
            }
        """),
        [
            (
                9,
                42,
                "rule `check` has no parameter `owner`: arguments bind to the "
                "parameter of the same name (balance, tags)",
            ),
        ],
        id="argument_not_a_parameter",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance string
              attribute tags string[]
              permission view = check(balance, tags)
            }
        """),
        [
            (
                8,
                27,
                "attribute `doc.balance` is `string` but parameter `balance` of "
                "rule `check` is `integer`",
            ),
        ],
        id="argument_type_mismatch",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              attribute tags string
              permission view = check(balance, tags)
            }
        """),
        [
            (
                8,
                36,
                "attribute `doc.tags` is `string` but parameter `tags` of rule "
                "`check` is `string[]`",
            ),
        ],
        id="argument_array_type_mismatch",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              attribute tags string[]
              permission view = check(balance, tags, balance)
            }
        """),
        [
            (8, 42, "argument `balance` is passed twice"),
        ],
        id="argument_passed_twice",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule check(balance integer, tags string[]) {
              balance > 10 && 'a' in tags
            }
            entity doc {
              attribute balance integer
              permission view = check(balance)
            }
        """),
        [
            (7, 21, "rule `check` is missing argument(s) for parameter(s) `tags`"),
        ],
        id="argument_missing",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string, x string) { x == 'a' }
        """),
        [
            (2, 18, "rule `r` has two parameters named `x`"),
        ],
        id="duplicate_rule_parameter",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(context string) { context == 'a' }
        """),
        [
            (2, 8, "`context` is reserved in rule expressions and cannot name a parameter"),
        ],
        id="rule_parameter_named_context",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(null string) { true }
        """),
        [
            (2, 8, "`null` is reserved in rule expressions and cannot name a parameter"),
        ],
        id="rule_parameter_named_null",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(x string) {
            }
        """),
        [
            (2, 18, "rule `r` has an empty body"),
        ],
        id="empty_rule_body",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner or view
            }
        """),
        [
            (
                4,
                30,
                "permission `view` of `doc` depends on itself with no relation "
                "in between (view -> view); it could never be evaluated",
            ),
        ],
        id="self_cycle",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view = owner or edit
              permission edit = view
            }
        """),
        [
            (
                4,
                30,
                "permission `view` of `doc` depends on itself with no relation "
                "in between (view -> edit -> view); it could never be evaluated",
            ),
        ],
        id="two_permission_cycle",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission a = b
              permission b = owner and c
              permission c = owner not a
            }
        """),
        [
            (
                4,
                18,
                "permission `a` of `doc` depends on itself with no relation in "
                "between (a -> b -> c -> a); it could never be evaluated",
            ),
        ],
        id="three_permission_cycle",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission a = b
              permission b = a
              permission c = d
              permission d = c or a
            }
        """),
        [
            (
                4,
                18,
                "permission `a` of `doc` depends on itself with no relation in "
                "between (a -> b -> a); it could never be evaluated",
            ),
            (
                6,
                18,
                "permission `c` of `doc` depends on itself with no relation in "
                "between (c -> d -> c); it could never be evaluated",
            ),
        ],
        id="two_separate_cycles",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @usr
              relation owner @user
              attribute price float
              permission view = ownr or price
            }
            rule r(context string) {}
            entity doc {}
        """),
        [
            (3, 19, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
            (
                4,
                12,
                "duplicate name `owner` in entity `doc`: already defined as a relation at 3:12",
            ),
            (
                5,
                19,
                "unknown type `float` for attribute `price`; expected boolean, "
                "string, integer, double (each optionally with [])",
            ),
            (
                6,
                21,
                "`ownr` is not a relation, permission or attribute of entity "
                "`doc` (did you mean `owner`?)",
            ),
            (8, 8, "`context` is reserved in rule expressions and cannot name a parameter"),
            (8, 24, "rule `r` has an empty body"),
            (9, 8, "duplicate definition of `doc` (entity); `doc` is already defined at 2:8"),
        ],
        id="several_errors_in_position_order",
    ),
    pytest.param(
        "entity user {}\r\nentity doc {\r\n  relation owner @usr\r\n}\r\n",
        [
            (3, 19, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
        ],
        id="crlf_semantic_error",
    ),
    pytest.param(
        "entity user {}\r\nentity doc {\r\n  relation owner @user $\r\n}\r\n",
        [
            (
                3,
                24,
                "unexpected `$`; expected `relation`, `permission`, `action`, "
                "`attribute`, `@`, `#` or `}`",
            ),
        ],
        id="crlf_syntax_error",
    ),
    pytest.param(
        "\ufeffentity user {}\nentity doc {\n  relation owner @usr\n}\n",
        [
            (3, 19, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
        ],
        id="bom_semantic_error",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n\trelation owner @usr\n}\n",
        [
            (3, 18, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
        ],
        id="tab_indented_error",
    ),
]


def _lines(source: str | bytes) -> list[str] | None:
    """The schema's lines as positions count them (``\\n`` ends a line), or None if not UTF-8."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return [line.removesuffix("\r") for line in source.removeprefix("\ufeff").split("\n")]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_invalid_schema_reports_exact_diagnostics(
    source: str | bytes, expected: list[Triple]
) -> None:
    with pytest.raises(SchemaError) as info:
        load(source)
    diagnostics = info.value.diagnostics
    assert [(d.line, d.column, d.message) for d in diagnostics] == expected
    lines = _lines(source)
    if lines is None:
        return  # Undecodable bytes have no text line to compare against.
    for diagnostic in diagnostics:
        assert diagnostic.source_line == lines[diagnostic.line - 1]


def test_case_table_is_large_and_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)


def test_error_renders_file_line_column_message() -> None:
    with pytest.raises(SchemaError) as info:
        load("entity user {}\nentity doc {\n  relation owner @usr\n}\n")
    message = "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"
    assert info.value.render("doc.perm") == f"doc.perm:3:19: {message}"
    assert str(info.value) == f"3:19: {message}"
    assert info.value.first.source_line == "  relation owner @usr"


# -------------------------------------------------------------------------------------------
# Valid edge cases.


def test_digits_in_names() -> None:
    schema = load(
        _s("""
        entity user2 {}
        entity doc_3 {
          relation member2 @user2
          relation r2d2 @user2
          permission view4 = member2 or r2d2
        }
    """)
    )
    assert set(schema.entities["doc_3"].relations) == {"member2", "r2d2"}
    assert "view4" in schema.entities["doc_3"].permissions


def test_names_that_start_with_reserved_words() -> None:
    schema = load(
        _s("""
        entity user {}
        entity entity_x {
          relation notes @user
          relation android @user
          relation order @user
          relation ruler @user
          relation true_ @user
          attribute inner boolean
          permission actions = notes or android and order not ruler or true_ or inner
        }
    """)
    )
    assert "actions" in schema.entities["entity_x"].permissions


def test_semicolons_separate_members() -> None:
    schema = load(
        "entity user {}; entity doc { relation owner @user; relation editor @user;"
        " permission edit = owner or editor; action view = edit; };"
    )
    assert set(schema.entities["doc"].permissions) == {"edit", "view"}


def test_operator_may_start_the_next_line() -> None:
    schema = load(
        _s("""
        entity user {}
        entity doc {
          relation owner @user
          relation editor @user
          relation banned @user
          permission edit = owner
            or editor
            not banned
          permission view = (
            owner
            and editor
          )
        }
    """)
    )
    edit = schema.entities["doc"].permissions["edit"].child
    assert isinstance(edit, Rewrite) and edit.operation is Operation.EXCLUSION
    assert edit.children[1] == ComputedUserSet("banned")


def test_action_is_a_synonym_of_permission() -> None:
    schema = load(
        _s("""
        entity user {}
        entity doc {
          relation owner @user
          action edit = owner
          permission view = edit
        }
    """)
    )
    doc = schema.entities["doc"]
    assert doc.permissions["edit"].child == ComputedUserSet("owner")
    assert doc.permissions["view"].child == ComputedUserSet("edit")


def test_comments_everywhere() -> None:
    schema = load(
        _s("""
        // leading comment
        /* block
           comment */ entity user {} // trailing
        entity /* here */ doc /* and here */ { // after brace
          // own line
          relation owner /* between */ @user /* more */ @doc#owner // end
          attribute /* a */ public /* b */ boolean // c
          permission view = // after =
            owner /* inline */ or // between operands
            public
          /* last */
        } /* after entity */
        rule r(x string) { x == '}' // } "
        }
        rule s(y string) { y == "{" // {
        }
        // final comment without newline""")
    )
    assert schema.entities["doc"].attributes["public"].name == "public"
    assert schema.rules["r"].expression == "x == '}' // } \""
    assert schema.rules["s"].expression == 'y == "{" // {'


def test_crlf_line_endings() -> None:
    text = _s("""
        entity user {}
        entity doc {
          relation owner @user // comment
          relation parent @doc
          permission view = owner
            or parent.view
        }
        rule r(x string) {
          x == 'a'
        }
    """).replace("\n", "\r\n")
    schema = load(text)
    assert schema.entities["doc"].permissions["view"].child == Rewrite(
        Operation.UNION, (ComputedUserSet("owner"), TupleToUserSet("parent", "view"))
    )
    assert schema.rules["r"].expression.strip() == "x == 'a'"


def test_byte_order_mark_and_utf8_bytes() -> None:
    text = "\ufeffentity user {} // naïve comment ✓\n"
    assert set(load(text).entities) == {"user"}
    assert set(load(text.encode("utf-8")).entities) == {"user"}


def test_cel_map_literal_and_strings_with_braces_in_rule_body() -> None:
    schema = load(
        _s("""
        entity user {}
        rule r(x string) {
          {'a': 1, "}": 2}[x] == 1 || x in ['{', "\\"}"]
        }
    """)
    )
    assert schema.rules["r"].expression == """{'a': 1, "}": 2}[x] == 1 || x in ['{', "\\"}"]"""


def test_cycle_broken_by_a_relation_walk_is_not_an_error() -> None:
    schema = load(
        _s("""
        entity user {}
        entity folder {
          relation parent @folder
          relation owner @user
          permission view = owner or parent.view
          permission a = owner or parent.b
          permission b = a
        }
    """)
    )
    assert schema.entities["folder"].permissions["b"].child == ComputedUserSet("a")


def test_limits_are_inclusive() -> None:
    name = "n" * 64
    deepest = "(owner or " * MAX_EXPRESSION_DEPTH + "owner" + ")" * MAX_EXPRESSION_DEPTH
    schema = load(_permission(deepest).replace("entity doc", f"entity {name}"))
    assert name in schema.entities
    # A tree at the limit survives every recursive walk: formatting, comparison, repr.
    chain = _permission("owner" + " or owner" * MAX_EXPRESSION_DEPTH)
    for source in (_permission(deepest), chain):
        assert load(format_schema(source)) == load(source)
        assert repr(load(source))
    parenthesised = "(" * 2000 + "owner" + ")" * 2000
    assert load(_permission(parenthesised)).entities["doc"].permissions["view"].child == (
        ComputedUserSet("owner")
    )


# -------------------------------------------------------------------------------------------
# Regressions: inputs that once gave misleading messages or took exponential/quadratic time.

_LIST = "`relation`, `permission`, `action`, `attribute`"
REGRESSIONS = [
    pytest.param(
        "entity user {}\nrule r(x string) {" + "//" * 40,
        [
            (
                2,
                18,
                "unterminated rule body: the `{` is never closed (braces must balance, "
                "strings must be closed on their line)",
            )
        ],
        id="unclosed_body_of_slashes_fails_fast",
    ),
    pytest.param(
        "entity user {}\n{\n  relation owner @user\n}\n",
        [(2, 1, "unexpected `{`; expected `entity` or `rule`")],
        id="stray_block_quotes_only_the_brace",
    ),
    pytest.param(
        "entity not {}\n",
        [(1, 8, "`not` is a reserved word and cannot be used as a name")],
        id="not_as_entity_name",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @user\n  permission p = owner.not\n}\n",
        [(4, 24, "`not` is a reserved word and cannot be used as a name")],
        id="not_as_walk_target",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @user\n"
        "  permission view = // see editor\n    not owner\n}\n",
        [
            (
                5,
                5,
                "`not` is binary exclusion (`a not b`: a but not b) and cannot start an expression",
            )
        ],
        id="unary_not_after_a_comment_ending_in_or",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @user\n"
        "  permission p = owner in owner\n}\n",
        [(4, 24, f"unexpected `in`; expected {_LIST}, `.`, `or`, `and`, `not`, `(`, `)` or `}}`")],
        id="reserved_word_after_operand_quoted_whole",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @user\n  permission view = owner\n"
        "  permision edit = owner\n}\n",
        [
            (
                5,
                3,
                f"unexpected `permision`; expected {_LIST}, `.`, `or`, `and`, `not`, `(`, `)` "
                "or `}` (did you mean `permission`?)",
            )
        ],
        id="keyword_typo_after_a_permission",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation owner @user\n  relaton editor @user\n}\n",
        [
            (
                4,
                3,
                f"unexpected `relaton`; expected {_LIST}, `@`, `#` or `}}` "
                "(did you mean `relation`?)",
            )
        ],
        id="keyword_typo_after_a_relation",
    ),
    pytest.param(
        b"entity user {}\n// \xc3\xa9\xc3\xa9\xff",
        [(2, 6, "schema is not valid UTF-8 (byte 0xff)")],
        id="utf8_error_column_counts_characters",
    ),
    pytest.param(
        "entity user {}\nentity doc {\n  relation o @user\n  permission p = o.o.o.o.o.o\n}\n",
        [
            (
                4,
                22,
                "`o.o.o.…` walks more than one relation; write `relation.permission` and "
                "define a permission on the next entity to go further",
            )
        ],
        id="long_walk_is_shortened_in_the_message",
    ),
]


@pytest.mark.parametrize(("source", "expected"), REGRESSIONS)
def test_regressions_report_exact_diagnostics(source: str | bytes, expected: list[Triple]) -> None:
    test_invalid_schema_reports_exact_diagnostics(source, expected)


def test_cel_map_literals_nest_two_levels_inside_a_rule_body() -> None:
    body = "{'a': {'b': x}}['a']['b'] == 'q'"
    rule = "entity user {}\nentity doc {\n  attribute x string\n  permission p = r(x)\n}\n"
    assert load(rule + f"rule r(x string) {{ {body} }}\n").rules["r"].expression == body
    with pytest.raises(SchemaError) as info:
        load(rule + "rule r(x string) { {'a': {'b': {'c': x}}}['a']['b']['c'] == 'q' }\n")
    assert info.value.first.message.startswith("unterminated rule body")


def test_errors_stop_being_collected_after_the_limit() -> None:
    members = " ".join(f"permission p{i} = missing{i}" for i in range(MAX_DIAGNOSTICS + 50))
    with pytest.raises(SchemaError) as info:
        load(f"entity user {{}}\nentity doc {{ {members} }}\n")
    diagnostics = info.value.diagnostics
    assert len(diagnostics) == MAX_DIAGNOSTICS + 1
    assert diagnostics[-1].message == (
        f"too many errors: only the first {MAX_DIAGNOSTICS} are reported"
    )


# -------------------------------------------------------------------------------------------
# Several syntax errors: the first of each definition is reported, and nothing it caused (the
# parser skips to the next top-level `entity NAME` or `rule NAME`).

_MEMBERS = "`relation`, `permission`, `action`, `attribute`"
SEVERAL = [
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user $
              permission view = owner
            }
            entity folder {
              relation parent @folder
              permission view = parent.view or
            }
            entity team {
              relation member @user
            }
        """),
        [
            (3, 24, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`"),
            (9, 1, "unexpected `}`; expected a name or `(`"),
        ],
        id="two_entities",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner = @user
            }
            rule is_public(flag boolean {
              flag
            }
            entity folder {
              relaton owner @user
            }
        """),
        [
            (3, 18, f"unexpected `=`; expected {_MEMBERS}, `@` or `}}`"),
            (5, 29, f"unexpected `{{`; expected {_MEMBERS}, `)`, `,`, `[` or `}}`"),
            (
                9,
                3,
                f"unexpected `relaton`; expected {_MEMBERS} or `}}` (did you mean `relation`?)",
            ),
        ],
        id="three_in_two_entities_and_a_rule",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user @
            }
            entity folder {
              relation owner @user
        """),
        [
            (4, 1, "unexpected `}`; expected a name"),
            (7, 1, f"unexpected end of file; expected {_MEMBERS}, `@`, `#` or `}}`"),
        ],
        id="error_at_the_very_end",
    ),
    pytest.param(
        _s("""
            enitty user {}
            entity doc {
              relation owner @user
            }
            entity folder {
              attribute public
            }
        """),
        [
            (1, 1, "unexpected `enitty`; expected `entity` or `rule` (did you mean `entity`?)"),
            (7, 1, "unexpected `}`; expected a name"),
        ],
        id="error_before_the_first_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user

            entity folder {
              relation owner @user #
            }
        """),
        [
            (5, 1, f"unexpected `entity`; expected {_MEMBERS}, `@`, `#` or `}}`"),
            (7, 1, "unexpected `}`; expected a name"),
        ],
        id="unclosed_entity_then_an_error_in_the_next",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @user
              permission view =
            entity folder {
              relation owner @user
              permission view = owner or or
            }
        """),
        [
            (5, 1, "unexpected `entity`; expected a name or `(`"),
            (7, 30, "`or` is a reserved word and cannot be used as a name"),
        ],
        id="permission_stopped_short_before_the_next_entity",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation entity @user
              relation rule @user
              permission view = owner
            }
            entity folder {
              relation owner @user $
            }
        """),
        [
            (3, 12, "`entity` is a reserved word and cannot be used as a name"),
            (8, 24, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`"),
        ],
        id="keywords_used_as_names_do_not_start_a_definition",
    ),
    pytest.param(
        _s("""
            entity user {}
            rule r(kind string, x) {
              kind == 'entity' || kind == "rule"
            }
            entity doc {
              relation owner @user $
            }
        """),
        [
            (2, 22, "unexpected `)`; expected a name"),
            (6, 24, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`"),
        ],
        id="keywords_in_a_rule_body_do_not_start_a_definition",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc { relation owner @user $ }
            /* entity folder {
              relation owner @user $
            }
        """),
        [
            (2, 35, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`"),
            (3, 1, "unterminated comment: `/*` is never closed by `*/`"),
        ],
        id="unclosed_comment_after_an_error_hides_the_rest",
    ),
    pytest.param(
        "entity user {} entity doc { relation owner @user $ } entity folder { relation x = y }\n",
        [
            (1, 50, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`"),
            (1, 81, f"unexpected `=`; expected {_MEMBERS}, `@` or `}}`"),
        ],
        id="one_line_schema",
    ),
    pytest.param(
        _s("""
            entity user {}
            entity doc {
              relation owner @usr
            }
            entity folder {
              relation owner @user $
            }
        """),
        [(6, 24, f"unexpected `$`; expected {_MEMBERS}, `@`, `#` or `}}`")],
        # Compiling what parsed would flag references into the dropped definition as unknown.
        id="syntax_errors_come_without_compile_errors",
    ),
]


@pytest.mark.parametrize(("source", "expected"), SEVERAL)
def test_each_definitions_syntax_error_is_reported(source: str, expected: list[Triple]) -> None:
    test_invalid_schema_reports_exact_diagnostics(source, expected)


#: Definitions with one syntax error each, which the parser reports the same wherever they are.
BROKEN_DEFINITIONS = [
    "entity a {\n  relation owner @user $\n}\n",
    "entity b {\n  relation entity @user\n  relation rule @user\n}\n",
    "rule c(x string {\n  x == 'entity'\n}\n",
    "entity d {\n  permission view = owner or\n}\n",
    "entity e extends a {\n  relation owner @user\n}\n",
    "entity f {\n  relation owner @user\n  attribute public\n}\n",
    "rule g(x string) {\n  x == { 'a': { 'b': { 'c': 1 } } }\n}\n",
]


def _syntax_errors(source: str) -> list[Triple]:
    with pytest.raises(SchemaError) as info:
        load(source)
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


@pytest.mark.parametrize("order", [1, -1], ids=["in_order", "reversed"])
def test_independent_syntax_errors_are_reported_as_they_are_alone(order: int) -> None:
    valid = "entity user {\n  relation friend @user\n}\n"
    expected: list[Triple] = []
    source = ""
    for definition in BROKEN_DEFINITIONS[::order]:
        source += valid
        offset = source.count("\n")
        (alone,) = _syntax_errors(definition)
        expected.append((alone[0] + offset, alone[1], alone[2]))
        source += definition
    assert _syntax_errors(source + valid) == expected


def test_syntax_errors_stop_being_collected_after_the_limit() -> None:
    broken = "entity doc { relation owner @user $ }\n"
    diagnostics = _syntax_errors(broken * (MAX_SYNTAX_ERRORS + 20))
    assert len(diagnostics) == MAX_SYNTAX_ERRORS + 1
    assert diagnostics[MAX_SYNTAX_ERRORS - 1][:2] == (MAX_SYNTAX_ERRORS, 35)
    assert diagnostics[-1] == (
        MAX_SYNTAX_ERRORS + 1,
        35,
        f"too many syntax errors: only the first {MAX_SYNTAX_ERRORS} are reported",
    )
