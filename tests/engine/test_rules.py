"""Rule evaluation: parameters of every type, zero values, ``context.data``, and every failure.

Each case builds a one-rule `RuleSet` from a `RuleDef` (as the schema compiler produces it) and
evaluates it with attribute values shaped as `storage.base.Attribute.value` holds them (python
scalars; arrays as tuples) and request data shaped as JSON decodes it.
"""

from __future__ import annotations

from typing import Any

import pytest

from dsl.schema import AttributeType, RuleDef
from engine.errors import RuleError
from engine.rules import RuleSet

T = AttributeType
BANKING = "balance >= context.data.amount && context.data.amount <= 5000"


def _evaluate(
    params: dict[str, AttributeType],
    body: str,
    arguments: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> bool:
    rules = RuleSet.compile({"r": RuleDef("r", params, body)})
    return rules.evaluate("r", arguments, data or {})


# -- parameters of every type -------------------------------------------------------------------

TYPED = [
    pytest.param(T.BOOLEAN, "v", True, True, id="boolean_true"),
    pytest.param(T.BOOLEAN, "v", False, False, id="boolean_false"),
    pytest.param(T.BOOLEAN, "!v", False, True, id="boolean_negated"),
    pytest.param(T.INTEGER, "v > 10", 11, True, id="integer_above"),
    pytest.param(T.INTEGER, "v > 10", 10, False, id="integer_at_bound"),
    pytest.param(T.INTEGER, "type(v) == int && v % 3 == 1", 7, True, id="integer_is_cel_int"),
    pytest.param(T.DOUBLE, "v > 3.5", 4.25, True, id="double_above"),
    pytest.param(T.DOUBLE, "v > 3.5", 3.5, False, id="double_at_bound"),
    pytest.param(T.DOUBLE, "type(v) == double", 1.0, True, id="double_is_cel_double"),
    pytest.param(T.DOUBLE, "v > 3", 3.25, True, id="double_vs_int_literal"),
    pytest.param(T.STRING, "v == 'alice'", "alice", True, id="string_equal"),
    pytest.param(T.STRING, "v == 'alice'", "bob", False, id="string_differs"),
    pytest.param(T.STRING, "v.startsWith('al') && size(v) == 5", "alice", True, id="string_funcs"),
    pytest.param(T.BOOLEAN_ARRAY, "true in v", (False, True), True, id="boolean_array_in"),
    pytest.param(T.BOOLEAN_ARRAY, "true in v", (False, False), False, id="boolean_array_not_in"),
    pytest.param(
        T.STRING_ARRAY, "'10.0.0.7' in v", ("10.0.0.1", "10.0.0.7"), True, id="string_array_in"
    ),
    pytest.param(
        T.STRING_ARRAY, "'10.0.0.9' in v", ("10.0.0.1", "10.0.0.7"), False, id="string_array_not_in"
    ),
    pytest.param(T.STRING_ARRAY, "v == ['a', 'b']", ("a", "b"), True, id="string_array_equal"),
    pytest.param(T.INTEGER_ARRAY, "3 in v && size(v) == 2", (1, 3), True, id="integer_array_in"),
    pytest.param(T.INTEGER_ARRAY, "v.all(n, n > 0)", (1, -3), False, id="integer_array_all"),
    pytest.param(
        T.DOUBLE_ARRAY, "v.exists(s, s > 4.5)", (1.5, 4.75), True, id="double_array_exists"
    ),
    pytest.param(T.DOUBLE_ARRAY, "v.exists(s, s > 4.5)", (1.5, 4.5), False, id="double_array_none"),
]


@pytest.mark.parametrize(("kind", "body", "value", "expected"), TYPED)
def test_parameter_of_each_type_is_bound(
    kind: AttributeType, body: str, value: object, expected: bool
) -> None:
    assert _evaluate({"v": kind}, body, {"v": value}) is expected


def test_several_parameters_bind_by_name() -> None:
    params = {"ip": T.STRING, "ip_range": T.STRING_ARRAY, "level": T.INTEGER}
    body = "ip in ip_range && level >= 2"
    arguments = {"level": 2, "ip_range": ("1.1.1.1", "2.2.2.2"), "ip": "2.2.2.2"}
    assert _evaluate(params, body, arguments) is True
    assert _evaluate(params, body, {**arguments, "ip": "3.3.3.3"}) is False


# -- zero values for parameters without an argument --------------------------------------------

ZERO = [
    pytest.param(T.BOOLEAN, "v == false && type(v) == bool", id="boolean_false"),
    pytest.param(T.STRING, "v == '' && type(v) == string", id="string_empty"),
    pytest.param(T.INTEGER, "v == 0 && type(v) == int", id="integer_zero"),
    pytest.param(T.DOUBLE, "v == 0.0 && type(v) == double", id="double_zero"),
    pytest.param(T.BOOLEAN_ARRAY, "size(v) == 0 && type(v) == list", id="boolean_array_empty"),
    pytest.param(T.STRING_ARRAY, "size(v) == 0 && !('' in v)", id="string_array_empty"),
    pytest.param(T.INTEGER_ARRAY, "size(v) == 0 && !(0 in v)", id="integer_array_empty"),
    pytest.param(T.DOUBLE_ARRAY, "size(v) == 0 && v == []", id="double_array_empty"),
]


@pytest.mark.parametrize(("kind", "body"), ZERO)
def test_missing_argument_is_the_zero_value_of_its_type(kind: AttributeType, body: str) -> None:
    assert _evaluate({"v": kind}, body, {}) is True


def test_only_missing_arguments_take_the_zero_value() -> None:
    params = {"a": T.INTEGER, "b": T.INTEGER}
    assert _evaluate(params, "a == 5 && b == 0", {"a": 5}) is True
    assert _evaluate(params, "a == 0 && b == 5", {"b": 5}) is True


# -- context.data --------------------------------------------------------------------------------

CONTEXT = [
    pytest.param("context.data.day == 'monday'", {"day": "monday"}, True, id="string_key"),
    pytest.param("context.data.day == 'monday'", {"day": "sunday"}, False, id="string_differs"),
    pytest.param("context.data.user.age >= 18", {"user": {"age": 20}}, True, id="nested_keys"),
    pytest.param("context.data.a.b.c == true", {"a": {"b": {"c": True}}}, True, id="deep_nested"),
    pytest.param(
        "context.data.amount == 3000", {"amount": 3000.0}, True, id="json_double_equals_int_literal"
    ),
    pytest.param(
        "context.data.amount < 2.5", {"amount": 2}, True, id="json_int_below_double_literal"
    ),
    pytest.param(
        "context.data.amount > 2.5", {"amount": 2}, False, id="json_int_not_above_double_literal"
    ),
    pytest.param("'b' in context.data.tags", {"tags": ["a", "b"]}, True, id="list_value"),
    pytest.param("has(context.data.opt)", {}, False, id="has_absent_key"),
    pytest.param(
        "has(context.data.opt) && context.data.opt", {"opt": True}, True, id="has_present_key"
    ),
    pytest.param(
        "context.data.missing == 1 || true", {}, True, id="error_absorbed_by_or_like_cel_go"
    ),
]


@pytest.mark.parametrize(("body", "data", "expected"), CONTEXT)
def test_context_data_is_exposed(body: str, data: dict[str, Any], expected: bool) -> None:
    assert _evaluate({}, body, {}, data) is expected


# -- Permify's banking example: integer attribute against a JSON number --------------------------

BANKING_CASES = [
    pytest.param(4000, 3000.0, True, id="double_amount_within_balance"),
    pytest.param(4000, 3000, True, id="int_amount_within_balance"),
    pytest.param(4000, 4000.0, True, id="double_amount_equal_to_balance"),
    pytest.param(4000, 4000.5, False, id="double_amount_just_above_balance"),
    pytest.param(9000, 5000.0, True, id="double_amount_at_limit"),
    pytest.param(9000, 5000.5, False, id="double_amount_above_limit"),
    pytest.param(None, 1.0, False, id="no_balance_stored_is_zero"),
]


@pytest.mark.parametrize(("balance", "amount", "expected"), BANKING_CASES)
def test_banking_rule_compares_int_with_double(
    balance: int | None, amount: float, expected: bool
) -> None:
    arguments = {} if balance is None else {"balance": balance}
    result = _evaluate({"balance": T.INTEGER}, BANKING, arguments, {"amount": amount})
    assert result is expected


# -- failures ------------------------------------------------------------------------------------

RUNTIME_ERRORS = [
    pytest.param("context.data.amount > 1", {}, "no such key: 'amount'", id="missing_key"),
    pytest.param(
        "context.data.user.age > 1", {"user": {}}, "no such key: 'age'", id="missing_nested_key"
    ),
    pytest.param(
        "context.data.amount > 'a'", {"amount": 1}, "No such overload", id="type_mismatch"
    ),
    pytest.param(
        "context.data.n + 1 > 0", {"n": 9223372036854775807}, "overflow", id="integer_overflow"
    ),
    pytest.param("1 / context.data.n == 1", {"n": 0}, "division by zero", id="division_by_zero"),
    pytest.param("context.data.l[3] == 1", {"l": [1]}, "index", id="index_out_of_range"),
]


@pytest.mark.parametrize(("body", "data", "fragment"), RUNTIME_ERRORS)
def test_runtime_error_is_a_rule_error_naming_the_rule(
    body: str, data: dict[str, Any], fragment: str
) -> None:
    rules = RuleSet.compile({"check_it": RuleDef("check_it", {}, body)})
    with pytest.raises(RuleError) as caught:
        rules.evaluate("check_it", {}, data)
    message = str(caught.value)
    assert "rule `check_it`" in message
    assert fragment in message


NON_BOOL = [
    pytest.param("v + 1", "int", id="int"),
    pytest.param("'yes'", "string", id="string"),
    pytest.param("2.5", "double", id="double"),
    pytest.param("[true]", "list(bool)", id="list"),
    pytest.param("null", "null_type", id="null"),
    pytest.param("context.data", "map(string, int)", id="map"),
]


@pytest.mark.parametrize(("body", "type_name"), NON_BOOL)
def test_non_boolean_result_is_a_rule_error(body: str, type_name: str) -> None:
    rules = RuleSet.compile({"not_bool": RuleDef("not_bool", {"v": T.INTEGER}, body)})
    with pytest.raises(RuleError) as caught:
        rules.evaluate("not_bool", {"v": 1}, {"k": 1})
    message = str(caught.value)
    assert "rule `not_bool` must result in a boolean" in message
    assert f"gave {type_name} " in message


COMPILE_ERRORS = [
    pytest.param("v >", id="missing_operand"),
    pytest.param("v &&& true", id="bad_operator"),
    pytest.param("has(v)", id="bad_macro_argument"),
    pytest.param("if == 1", id="reserved_word"),
]


@pytest.mark.parametrize("body", COMPILE_ERRORS)
def test_compile_error_is_a_rule_error_with_the_cel_message(body: str) -> None:
    rules = RuleSet.compile(
        {
            "fine": RuleDef("fine", {"v": T.INTEGER}, "v > 1"),
            "broken": RuleDef("broken", {"v": T.INTEGER}, body),
        }
    )
    # Only the broken rule fails, when it is evaluated: the other rules of the schema work.
    assert rules.evaluate("fine", {"v": 2}, {}) is True
    with pytest.raises(RuleError) as caught:
        rules.evaluate("broken", {"v": 2}, {})
    message = str(caught.value)
    assert message.startswith("rule `broken` does not compile: ")
    assert "ERROR: <input>:1:" in message  # the library's own text, with its position


def test_unknown_rule_is_a_rule_error() -> None:
    rules = RuleSet.compile({"r": RuleDef("r", {}, "true")})
    with pytest.raises(RuleError, match="no rule named `other`"):
        rules.evaluate("other", {}, {})


def test_rule_set_knows_its_rules() -> None:
    rules = RuleSet.compile(
        {"a": RuleDef("a", {}, "true"), "b": RuleDef("b", {"x": T.STRING}, "x == ''")}
    )
    assert len(rules) == 2
    assert "a" in rules
    assert "c" not in rules
    assert len(RuleSet.compile({})) == 0


def test_one_compiled_rule_serves_many_evaluations() -> None:
    rules = RuleSet.compile({"r": RuleDef("r", {"n": T.INTEGER}, "n % 2 == 0")})
    results = [rules.evaluate("r", {"n": n}, {}) for n in range(6)]
    assert results == [True, False, True, False, True, False]
