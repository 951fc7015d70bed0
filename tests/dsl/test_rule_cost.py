"""Rule bodies are measured before the CEL library sees them (`dsl.rule_cost`).

The grammar must read every body the library accepts (a body it could not read could not be
priced, and would be refused), the limits hold exactly at their values, the price grows as the
library's work does, and only the ``context.data`` keys a body names are bound.
"""

from __future__ import annotations

import contextlib

import cel
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dsl.rule_cost import (
    BINDING_STEPS,
    MAX_COMPREHENSIONS,
    MAX_RULE_BODY,
    MAX_RULE_LINES,
    MAX_RULE_NESTING,
    NOMINAL_INPUT_VALUES,
    RULE_STEP_BUDGET,
    RuleBodyError,
    input_values,
    measure,
)
from dsl.schema import AttributeType, RuleDef
from engine.errors import RuleError
from engine.rules import RuleSet

# -- what the library accepts, the grammar reads ------------------------------------------------

ACCEPTED = [
    "r'a\\b' == 'x'",
    "'''a\nb''' == 'x'",
    'b"abc" == b"abc"',
    "br'a' == b'a'",
    "R\"a\" == 'a'",
    "1u == 2u",
    "0x1F == 31",
    "1.5e3 > .5",
    "0.0e0 == 0.0",
    "1 in [1, 2,]",
    "{'a': 1, }['a'] == 1",
    "Foo{a: 1} == 1",
    "x.y.z{} == 1",
    "has(a.b)",
    "[1].exists_one(x, x > 0)",
    "[1].map(x, x > 0, x + 1) == [2]",
    "[1].filter(x, x > 0) == [1]",
    "dyn(1) == 1",
    ".a == 1",
    "a.b.c(1, 2) == 1",
    "!!true",
    "--1 == 1",
    "1 < 2 ? 3 : 4",
    "'\\u00e9' == 'é'",
    "'\\101' == 'A'",
    "max(1, 2) == 2",
    "'abc'.matches('a.*')",
    "1 == 1 && // a comment\n true",
    "{1: 2}.all(k, k == 1)",
    "duration('1s') > duration('0s')",
    "a.b[0].c == 1",
    "a.all == 1",
    "[].exists(x, true)",
    "'''''' == ''",
    "context.data.ip == 'x' && balance >= context.data.amount",
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_every_form_the_library_accepts_is_read(body: str) -> None:
    cel.compile(body)  # the library's own verdict
    measure(body)


# Expressions built from CEL's pieces, valid or not: whatever the library accepts, the grammar
# reads too; and the measure never fails with anything but RuleBodyError.
_ATOMS = st.sampled_from(
    ["x", "y", "1", "2.5", "'s'", "b'b'", "true", "null", "[1, 2]", "{'k': 1}", "context.data.k"]
)
_BINARY = st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", "in"])
_MACROS = st.sampled_from(["all", "exists", "exists_one", "filter", "map"])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, _BINARY, inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"!{e}"),
            st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
            st.tuples(inner, _MACROS, inner).map(lambda t: f"{t[0]}.{t[1]}(v, {t[2]})"),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            inner.map(lambda e: f"size({e})"),
            st.lists(inner, max_size=3).map(lambda es: "[" + ", ".join(es) + "]"),
            inner.map(lambda e: f"{e}.field"),
        ),
        max_leaves=12,
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_expressions())
@example("x.map(v, v, v)")
def test_the_grammar_reads_whatever_the_library_accepts(body: str) -> None:
    try:
        cel.compile(body)
    except Exception:
        accepted = False
    else:
        accepted = True
    try:
        measure(body)
    except RuleBodyError as exc:
        assert not (accepted and exc.syntax), f"the library accepts {body!r}: {exc.message}"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from("()[]{}.,:?!&|=<>+-*/%'\"\\ \nxr0b"), max_size=80))
def test_garbage_is_a_rule_body_error_never_a_crash(body: str) -> None:
    with contextlib.suppress(RuleBodyError):
        measure(body)


# -- the limits hold at their values -------------------------------------------------------------


def _chain(operators: int) -> str:
    """``0 + 1 + 1 ... > 0``: one nesting level per operator, plus the comparison."""
    return "0" + " + 1" * operators + " > 0"


def test_body_size_limit() -> None:
    at_limit = "true" + " " * (MAX_RULE_BODY - 4)
    measure(at_limit)
    with pytest.raises(RuleBodyError, match=f"longer than {MAX_RULE_BODY} characters"):
        measure(at_limit + " ")


def test_line_limit() -> None:
    measure("true" + "\n" * (MAX_RULE_LINES - 1))
    with pytest.raises(RuleBodyError, match=f"more than {MAX_RULE_LINES} lines"):
        measure("true" + "\n" * MAX_RULE_LINES)


def test_nesting_limit_at_its_value() -> None:
    # ``0 + 1 ...`` with n additions nests n + 1 levels under the comparison.
    assert measure(_chain(MAX_RULE_NESTING - 2)).nesting == MAX_RULE_NESTING
    with pytest.raises(RuleBodyError) as refused:
        measure(_chain(MAX_RULE_NESTING - 1))
    assert refused.value.message == (
        f"rule body nests {MAX_RULE_NESTING + 1} levels deep; at most {MAX_RULE_NESTING} are "
        "allowed"
    )
    assert (refused.value.line, refused.value.column) != (0, 0)


def test_logical_chains_do_not_nest() -> None:
    # The library keeps && and || chains flat (100,000 characters of them compile in 0.1 s).
    assert measure(" && ".join(["true"] * 1000)).nesting <= 3


def _nested(levels: int) -> str:
    body = "true"
    for level in range(levels):
        body = f"[1].all(v{level}, {body})"
    return body


def test_comprehension_nesting_limit() -> None:
    measure(_nested(MAX_COMPREHENSIONS))
    with pytest.raises(RuleBodyError, match=f"more than {MAX_COMPREHENSIONS} deep"):
        measure(_nested(MAX_COMPREHENSIONS + 1))


def test_a_body_over_the_budget_on_the_nominal_input_is_refused() -> None:
    hundred = str(list(range(100)))
    with pytest.raises(RuleBodyError, match="rule body is too expensive"):
        measure(f"{hundred}.all(a, {hundred}.all(b, {hundred}.all(c, a + b > c)))")


# -- prices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "degree"),
    [
        pytest.param("x == y", 1, id="a_comparison_walks_its_operands"),
        pytest.param("x > 1", 0, id="a_comparison_stops_at_the_smaller_side"),
        pytest.param("tags.exists(t, t == 'a')", 1, id="a_scan_is_linear"),
        pytest.param("x in context.data.allowed", 1, id="membership_is_linear"),
        pytest.param("tags.all(a, tags.all(b, a != b))", 2, id="nested_scans_are_quadratic"),
        pytest.param("size(tags.map(t, t)) > 0", 2, id="map_copies_its_accumulator"),
        pytest.param("size(tags.filter(t, true)) > 0", 2, id="filter_copies_its_accumulator"),
        pytest.param("[1, 2, 3].all(v, v > 0)", 0, id="literal_ranges_are_constant"),
    ],
)
def test_prices_grow_as_the_library_work_does(body: str, degree: int) -> None:
    cost = measure(body)
    assert len(cost.polynomial) - 1 == degree
    assert cost.steps(1000) > cost.steps(10) > 0


def test_binding_inputs_is_priced() -> None:
    cost = measure("true")
    assert cost.steps(10_000) - cost.steps(0) == BINDING_STEPS * 10_000


@pytest.mark.parametrize(
    ("body", "keys"),
    [
        ("context.data.ip == 'x' && context.data['port'] == 1", {"ip", "port"}),
        ("x > 0", set()),
        ("size(context.data) > 0", None),
        ("context.data[x] == 1", None),
        ("context == {}", None),
        # A comprehension variable named context hides the request's.
        ("[{'data': {}}].all(context, context.data.any == 1)", set()),
    ],
)
def test_the_context_data_keys_a_body_reads(body: str, keys: set[str] | None) -> None:
    found = measure(body).data_keys
    assert found == (None if keys is None else frozenset(keys))


def test_input_values_counts_scalars_lists_and_maps_and_stops_at_its_limit() -> None:
    assert input_values(1, 100) == 1
    assert input_values([1, [2, 3]], 100) == 5
    assert input_values({"a": [1, 2]}, 100) == 5  # the map, its key, the list, two items
    assert input_values(list(range(10_000)), 50) == 51


# -- rule calls are priced before they run ------------------------------------------------------


def _rules(body: str) -> RuleSet:
    return RuleSet.compile({"r": RuleDef("r", {"tags": AttributeType.STRING_ARRAY}, body)})


def test_a_call_over_the_budget_is_a_rule_error_naming_it() -> None:
    rules = _rules("tags.all(a, tags.all(b, a != b || true))")
    assert rules.evaluate("r", {"tags": tuple("abc")}, {}) is True
    with pytest.raises(RuleError, match=f"over the budget of {RULE_STEP_BUDGET:,}"):
        rules.evaluate("r", {"tags": tuple(str(i) for i in range(2_000))}, {})


def test_context_data_a_body_does_not_name_is_not_bound() -> None:
    noise = list(range(RULE_STEP_BUDGET))
    named = _rules("context.data.wanted in tags")
    assert named.evaluate("r", {"tags": ("a",)}, {"wanted": "a", "noise": noise}) is True
    whole = _rules("size(context.data) > 0")
    with pytest.raises(RuleError, match="over the budget"):
        whole.evaluate("r", {}, {"wanted": "a", "noise": noise})


def test_a_stored_body_over_the_limits_fails_only_its_own_calls() -> None:
    rules = RuleSet.compile(
        {
            "fine": RuleDef("fine", {}, "true"),
            "deep": RuleDef("deep", {}, _chain(MAX_RULE_NESTING + 50)),
        }
    )
    assert rules.evaluate("fine", {}, {}) is True
    with pytest.raises(RuleError, match="rule `deep` cannot be run: rule body nests"):
        rules.evaluate("deep", {}, {})


def test_the_nominal_input_is_what_writes_are_priced_at() -> None:
    cost = measure("tags.all(a, tags.all(b, a != b))")
    assert cost.steps(NOMINAL_INPUT_VALUES) <= RULE_STEP_BUDGET


def test_regex_patterns_are_priced_by_their_length() -> None:
    # The library compiles the pattern on every call: 3.6 ms for 7,500 characters.
    pattern = "(a|b)" * 1500
    with pytest.raises(RuleBodyError, match="too expensive"):
        measure(f"tags.exists(t, t.matches('{pattern}'))")
    measure(f"'ab'.matches('{pattern}')")  # once per call is affordable
    rules = _rules("'ab'.matches(context.data.pattern)")
    assert rules.evaluate("r", {}, {"pattern": "^b"}) is False
    with pytest.raises(RuleError, match="over the budget"):
        rules.evaluate("r", {}, {"pattern": "(a|b)" * 100_000})
