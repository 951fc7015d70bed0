"""The schema language's limits: each one exactly at its value is accepted, one past it is refused
with a positioned diagnostic, and inputs far past it are refused without recursion or long work.

The limits: `MAX_SCHEMA_BYTES` (text size), `MAX_EXPRESSION_DEPTH` (operator nesting),
`MAX_REFERENCE_DEPTH` (chains of computed references), `MAX_SUBJECT_TYPES` (types a relation
admits), and `MAX_SUGGESTION_WORK` (how much "did you mean" may cost).
"""

from __future__ import annotations

import sys
import time
from typing import NoReturn

import pytest

import dsl.parser
from dsl.compiler import (
    MAX_REFERENCE_DEPTH,
    MAX_SUBJECT_TYPES,
    MAX_SUGGESTION_WORK,
    load,
)
from dsl.errors import SchemaError
from dsl.format import format_schema
from dsl.parser import MAX_EXPRESSION_DEPTH, MAX_SCHEMA_BYTES, parse, parse_member
from dsl.partial import Partial, PartialWriteError, apply_partials
from dsl.schema import ComputedUserSet, Edge, EdgeKind

Triple = tuple[int, int, str]


def diagnostics(source: str) -> list[Triple]:
    with pytest.raises(SchemaError) as caught:
        load(source)
    return [(d.line, d.column, d.message) for d in caught.value.diagnostics]


def chain(references: int, end: str = "viewer", extra: str = "") -> str:
    """``doc#q0`` reaches ``end`` through exactly ``references`` computed references; the first
    permission is on line 4 at column 16."""
    lines = ["entity user {}", "entity doc {", "    relation viewer @user"]
    lines += [f"    permission q{i} = q{i + 1}" for i in range(references - 1)]
    lines += [f"    permission q{references - 1} = {end}", extra, "}"]
    return "\n".join(lines) + "\n"


def shown(prefix: str, references: int) -> str:
    """How a chain of ``prefix``0 ... ending at ``viewer`` is shown in a diagnostic."""
    names = [f"{prefix}{i}" for i in (0, 1, 2)] + ["…"]
    names += [f"{prefix}{references - 2}", f"{prefix}{references - 1}", "viewer"]
    return " -> ".join(names)


def chain_message(path: str, references: int) -> str:
    return (
        f"reference chain deeper than {MAX_REFERENCE_DEPTH}: {path} ({references} references; "
        "a check spends one unit of depth on each, more than any request may use); "
        "shorten the chain"
    )


# --- reference chains -----------------------------------------------------------------------------


def test_a_chain_of_references_at_the_limit_is_accepted() -> None:
    schema = load(chain(MAX_REFERENCE_DEPTH))
    last = schema.entities["doc"].permissions[f"q{MAX_REFERENCE_DEPTH - 1}"]
    assert last.child == ComputedUserSet("viewer")


def test_a_chain_one_reference_past_the_limit_is_refused_at_its_first_permission() -> None:
    n = MAX_REFERENCE_DEPTH + 1
    assert diagnostics(chain(n)) == [(4, 16, chain_message(shown("q", n), n))]


def test_the_reported_chain_of_six_hundred_permissions_is_refused() -> None:
    # The schema that once broke a tenant: accepted, then every operation failed.
    assert diagnostics(chain(601)) == [
        (4, 16, chain_message("q0 -> q1 -> q2 -> … -> q599 -> q600 -> viewer", 601))
    ]


@pytest.mark.parametrize(
    ("end", "extra", "shown_end"),
    [
        ("public", "    attribute public boolean", "public"),
        ("allowed(level)", "    attribute level integer", "allowed(…)"),
    ],
    ids=["attribute", "rule_call"],
)
def test_an_attribute_or_rule_at_the_end_of_a_chain_counts_as_a_reference(
    end: str, extra: str, shown_end: str
) -> None:
    rule = "rule allowed(level integer) { level > 2 }\n"
    assert load(chain(MAX_REFERENCE_DEPTH, end, extra) + rule)
    n = MAX_REFERENCE_DEPTH + 1
    path = f"q0 -> q1 -> q2 -> … -> q{n - 2} -> q{n - 1} -> {shown_end}"
    assert diagnostics(chain(n, end, extra) + rule) == [(4, 16, chain_message(path, n))]


def test_the_longest_branch_is_measured_and_shown() -> None:
    # q0 = q1 or short: the chain through q1 is the long one, wherever it sits in the expression.
    source = chain(MAX_REFERENCE_DEPTH + 1, extra="    permission short = viewer").replace(
        "permission q0 = q1\n", "permission q0 = short or (viewer and q1)\n"
    )
    n = MAX_REFERENCE_DEPTH + 1
    assert diagnostics(source) == [(4, 16, chain_message(shown("q", n), n))]


def test_each_chain_is_reported_once_where_it_starts() -> None:
    n = MAX_REFERENCE_DEPTH + 1
    second = "\n".join(f"    permission r{i} = r{i + 1}" for i in range(n - 1))
    source = chain(n, extra=f"{second}\n    permission r{n - 1} = viewer")
    first_line = 4
    second_line = first_line + n  # right after the q chain
    assert diagnostics(source) == [
        (first_line, 16, chain_message(shown("q", n), n)),
        (second_line, 16, chain_message(shown("r", n), n)),
    ]


def test_a_chain_is_reported_at_the_permission_it_starts_from() -> None:
    # Two permissions lead into the chain: only the one nothing leads to is reported.
    source = chain(MAX_REFERENCE_DEPTH + 1).replace(
        "    permission q0 = q1\n", "    permission q0 = q1\n    permission top = head\n"
        "    permission head = q0\n"
    )
    n = MAX_REFERENCE_DEPTH + 3
    path = f"top -> head -> q0 -> … -> q{n - 4} -> q{n - 3} -> viewer"
    assert diagnostics(source) == [(5, 16, chain_message(path, n))]


def test_walks_through_relations_are_not_part_of_a_chain() -> None:
    # Each arrow is followed only when tuples exist, within the request's depth; 300 entity types
    # chained by `parent.view` compile.
    lines = ["entity user {}", "entity e0 { relation viewer @user\n permission view = viewer }"]
    lines += [
        f"entity e{i} {{ relation parent @e{i - 1}\n permission view = parent.view }}"
        for i in range(1, 300)
    ]
    assert "e299" in load("\n".join(lines)).entities


def test_a_chain_through_a_cycle_reports_the_cycle_and_ends() -> None:
    source = chain(3).replace("permission q2 = viewer", "permission q2 = q0 or viewer")
    messages = [message for _, _, message in diagnostics(source)]
    assert len(messages) == 1
    assert "depends on itself" in messages[0]


# --- operator nesting -----------------------------------------------------------------------------


def permission(expr: str) -> str:
    """``doc#view = expr``, on line 4 at column 16."""
    head = "entity user {}\nentity doc {\n    relation a @user\n    permission view = "
    return head + expr + "\n}\n"


NESTING = (
    f"permission `view` nests operators more than {MAX_EXPRESSION_DEPTH} deep; "
    "split it into named permissions"
)


@pytest.mark.parametrize(
    "shape",
    [
        lambda n: "a" + " or a" * n,  # left-deep: (((a or a) or a) ...)
        lambda n: "(a or " * n + "a" + ")" * n,  # right-deep
        lambda n: "(a and (a or " * (n // 2) + "a" + "))" * (n // 2),  # alternating
    ],
    ids=["left_deep", "right_deep", "alternating"],
)
def test_operator_nesting_at_the_limit_is_accepted_and_one_past_it_is_refused(shape) -> None:
    assert load(permission(shape(MAX_EXPRESSION_DEPTH)))
    over = MAX_EXPRESSION_DEPTH + 2  # the alternating shape nests in pairs
    assert diagnostics(permission(shape(over))) == [(4, 16, NESTING)]


def test_parentheses_thousands_deep_parse_without_recursion() -> None:
    depth = 20 * sys.getrecursionlimit()
    schema = load(permission("(" * depth + "a" + ")" * depth))
    assert schema.entities["doc"].permissions["view"].child == ComputedUserSet("a")


def test_a_chain_of_a_hundred_thousand_operands_is_refused_quickly() -> None:
    started = time.perf_counter()
    assert diagnostics(permission("a" + " or a" * 100_000)) == [(4, 16, NESTING)]
    # A hang bound, not a speed limit: linear is about 1 s; quadratic, far over a minute.
    assert time.perf_counter() - started < 30


def test_a_statement_of_a_partial_write_has_the_same_nesting_limit() -> None:
    assert parse_member("permission view = " + "a" + " or a" * MAX_EXPRESSION_DEPTH)
    with pytest.raises(SchemaError) as caught:
        parse_member("\npermission view = " + "a" + " or a" * (MAX_EXPRESSION_DEPTH + 1))
    assert [(d.line, d.column, d.message) for d in caught.value.diagnostics] == [(2, 12, NESTING)]


# --- schema size ----------------------------------------------------------------------------------


def padded(size: int, tail: str = "") -> str:
    """A valid schema of exactly ``size`` UTF-8 bytes: a comment fills it up; ``tail`` ends it."""
    head = "entity user {}\n// "
    filler = size - len(head.encode()) - len(tail.encode())
    return head + "x" * filler + tail


def test_a_schema_of_exactly_the_size_limit_is_accepted() -> None:
    text = padded(MAX_SCHEMA_BYTES)
    assert len(text.encode()) == MAX_SCHEMA_BYTES
    assert "user" in load(text).entities


def test_one_byte_past_the_size_limit_is_refused_at_the_first_byte_past_it() -> None:
    text = padded(MAX_SCHEMA_BYTES + 1)
    message = (
        f"schema is {MAX_SCHEMA_BYTES + 1:,} bytes, more than the {MAX_SCHEMA_BYTES // 1024} "
        "KiB a schema may have; the limit is passed here"
    )
    # Line 2 holds "// " and the filler; the byte past the limit is its last character.
    column = MAX_SCHEMA_BYTES - len("entity user {}\n") + 1
    assert diagnostics(text) == [(2, column, message)]


def test_the_size_is_counted_in_utf8_bytes() -> None:
    # A two-byte character straddling the limit: the error is at that character.
    text = padded(MAX_SCHEMA_BYTES + 2, "é\n")  # é is bytes MAX - 1 and MAX (from 0)
    assert len(text.encode()) == MAX_SCHEMA_BYTES + 2
    (line, column, _), = diagnostics(text)
    assert (line, column) == (2, len(text.split("\n")[1]))


def test_bytes_far_over_the_limit_are_refused_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    huge = ("entity e {}\n" * (4 * 1024 * 1024 // 12)).encode()

    def parsed(*args: object) -> NoReturn:
        raise AssertionError("the parser ran on a schema over the size limit")

    monkeypatch.setattr(dsl.parser, "_parse_recovering", parsed)
    with pytest.raises(SchemaError, match="more than the 512 KiB"):
        parse(huge)


def test_a_statement_of_a_partial_write_has_the_same_size_limit() -> None:
    with pytest.raises(SchemaError, match="more than the 512 KiB"):
        parse_member("relation r @user // " + "x" * MAX_SCHEMA_BYTES)


def test_partial_statements_larger_than_a_schema_are_refused_before_parsing() -> None:
    statements = tuple(f"relation r{i} @user // {'x' * 1000}" for i in range(600))
    with pytest.raises(PartialWriteError) as caught:
        apply_partials("entity user {}\nentity doc {}\n", {"doc": Partial(write=statements)})
    (problem,) = caught.value.problems
    assert problem.location == "partials"
    assert f"more than the {MAX_SCHEMA_BYTES // 1024} KiB a schema may have" in problem.message


# --- subject types --------------------------------------------------------------------------------


def typed(count: int) -> str:
    """``doc#parent`` admits ``count`` entity types, each walked by ``doc#view``."""
    lines = [f"entity t{i} {{ relation view @t{i} }}" for i in range(count)]
    types = " ".join(f"@t{i}" for i in range(count))
    lines.append(f"entity doc {{\n    relation parent {types}\n    permission view = parent.view")
    lines.append("    permission edit = parent.view\n}")
    return "\n".join(lines) + "\n"


def test_a_relation_may_admit_subject_types_up_to_the_limit() -> None:
    schema = load(typed(MAX_SUBJECT_TYPES))
    assert len(schema.entities["doc"].relations["parent"].subject_types) == MAX_SUBJECT_TYPES


def test_a_relation_admitting_one_type_more_is_refused_at_that_type() -> None:
    source = typed(MAX_SUBJECT_TYPES + 1)
    line = MAX_SUBJECT_TYPES + 3  # after one line per type, and `entity doc {`
    column = source.split("\n")[line - 1].index(f"@t{MAX_SUBJECT_TYPES}") + 2
    message = (
        f"relation `parent` admits {MAX_SUBJECT_TYPES + 1} subject types, more than "
        f"{MAX_SUBJECT_TYPES}; group the subjects under fewer entity types"
    )
    assert diagnostics(source) == [(line, column, message)]


def test_walks_times_types_compile_in_linear_time() -> None:
    # The most walks that fit in the size limit, through a relation of the most types: once 16 s
    # for a fifth of this (every walk was indexed once per type at compile time).
    types = [f"entity t{i} {{ relation view @t{i} }}" for i in range(MAX_SUBJECT_TYPES)]
    walks = [f"    permission p{i} = parent.view" for i in range(14_000)]
    admits = " ".join(f"@t{i}" for i in range(MAX_SUBJECT_TYPES))
    source = "\n".join([*types, f"entity doc {{\n    relation parent {admits}", *walks, "}"])
    assert len(source.encode()) <= MAX_SCHEMA_BYTES
    started = time.perf_counter()
    assert len(load(source).entities["doc"].permissions) == 14_000
    # A hang bound, not a speed limit: about 1 s; the quadratic indexing took 16 s for a
    # fifth of this, so several minutes here.
    assert time.perf_counter() - started < 20


def test_the_reverse_index_is_built_when_first_read() -> None:
    # One edge per walk and type walked: a million for the schema above, so only on demand.
    schema = load(typed(MAX_SUBJECT_TYPES))
    edges = (
        Edge(EdgeKind.TUPLE_TO_USERSET, "doc", "view", "parent"),
        Edge(EdgeKind.TUPLE_TO_USERSET, "doc", "edit", "parent"),
    )
    assert all(schema.dependents[(f"t{i}", "view")] == edges for i in range(MAX_SUBJECT_TYPES))
    assert len(schema.dependents) == MAX_SUBJECT_TYPES


# --- suggestions ----------------------------------------------------------------------------------


def test_suggestions_stop_once_their_work_would_pass_the_limit() -> None:
    names = MAX_SUGGESTION_WORK * 3 // 5  # the first suggestion fits, the second would not
    entities = "\n".join(f"entity e{i} {{}}" for i in range(names))
    bad = "entity doc {\n    relation a @e1x\n    relation b @e2x\n}\n"
    found = diagnostics(entities + "\n" + bad)
    assert [message for _, _, message in found] == [
        "unknown entity `e1x` in subject type `@e1x` (did you mean `e1`?)",
        "unknown entity `e2x` in subject type `@e2x`",
    ]


# --- every walk holds at the limits ---------------------------------------------------------------


def test_schemas_at_the_limits_format_and_reload_to_the_same_schema() -> None:
    for source in (
        chain(MAX_REFERENCE_DEPTH),
        permission("(a and (a or " * (MAX_EXPRESSION_DEPTH // 2) + "a" + "))" * 64),
        typed(MAX_SUBJECT_TYPES),
    ):
        assert load(format_schema(source)) == load(source)


def test_a_partial_write_that_would_lengthen_a_chain_past_the_limit_is_refused() -> None:
    base = chain(MAX_REFERENCE_DEPTH)
    last = f"q{MAX_REFERENCE_DEPTH - 1}"
    longer = Partial(update=(f"permission {last} = extra",), write=("permission extra = viewer",))
    with pytest.raises(SchemaError, match=f"reference chain deeper than {MAX_REFERENCE_DEPTH}"):
        apply_partials(base, {"doc": longer})
    # The same edit with a link skipped elsewhere keeps the chain at the limit.
    skip = Partial(update=(f"permission {last} = extra", "permission q1 = q3"),
                   write=("permission extra = viewer",))
    assert "extra" in load(apply_partials(base, {"doc": skip})).entities["doc"].permissions
