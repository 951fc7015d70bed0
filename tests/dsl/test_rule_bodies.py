"""Rule bodies are checked when the schema compiles: CEL syntax, a boolean result, known names.

Each invalid case is loaded with `dsl.compiler.load` and must raise `SchemaError` whose
diagnostics are exactly the listed ``(line, column, message)`` triples; a CEL syntax error is
placed where the CEL parser puts it, mapped into the schema (a body starts right after its
``{``), other body errors at the body's first character. Valid bodies must load unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dsl.compiler import load
from dsl.errors import SchemaError
from dsl.rule_cost import MAX_RULE_BODY

#: CEL's list of what may start an operand, in its syntax errors.
OPERAND = (
    "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, "
    "STRING, BYTES, IDENTIFIER}"
)


def _schema(*rules: str) -> str:
    """``entity user {}`` on line 1, then each rule on the following lines."""
    return "entity user {}\n" + "\n".join(textwrap.dedent(r).strip("\n") for r in rules) + "\n"


NON_BOOL = "rule expression must result in a boolean type not"
INVALID = [
    # -- non-boolean bodies ---------------------------------------------------------------------
    pytest.param(
        _schema("rule r(balance integer) { balance + 1 }"),
        [(2, 27, f"{NON_BOOL} int")],
        id="integer_arithmetic",
    ),
    pytest.param(
        _schema("rule r(x string) { 'yes' }"), [(2, 20, f"{NON_BOOL} string")], id="string_literal"
    ),
    pytest.param(_schema("rule r(x string) { 1.5 }"), [(2, 20, f"{NON_BOOL} double")], id="double"),
    pytest.param(
        _schema("rule r(x string) { null }"), [(2, 20, f"{NON_BOOL} null_type")], id="null"
    ),
    pytest.param(
        _schema("rule r(x string) { [1, 2] }"), [(2, 20, f"{NON_BOOL} list(int)")], id="int_list"
    ),
    pytest.param(
        _schema("rule r(tags string[]) { tags }"),
        [(2, 25, f"{NON_BOOL} list(dyn)")],
        id="array_parameter",
    ),
    pytest.param(
        _schema("rule r(x string) { {'a': 1} }"),
        [(2, 20, f"{NON_BOOL} map(string, int)")],
        id="map_literal",
    ),
    pytest.param(
        _schema("rule r(x string) { x }"), [(2, 20, f"{NON_BOOL} string")], id="string_parameter"
    ),
    pytest.param(
        _schema(
            """
            rule r(n integer) {

                n * 2
            }
            """
        ),
        [(4, 5, f"{NON_BOOL} int")],
        id="multi_line_body_positioned_at_its_first_character",
    ),
    # -- CEL syntax errors, at their own line:col ---------------------------------------------
    pytest.param(
        _schema("rule r(x integer) { x &&& true }"),
        [(2, 25, "Syntax error: token recognition error at: '& '")],
        id="bad_operator",
    ),
    pytest.param(
        _schema("rule r(x integer) {x ==}"),
        [(2, 24, f"Syntax error: mismatched input '<EOF>' expecting {OPERAND}")],
        id="missing_operand_at_end",
    ),
    pytest.param(
        _schema(
            """
            rule r(x integer) {
                x > 1 &&
                (x < 3 ||
                x ==)
            }
            """
        ),
        [(5, 9, f"Syntax error: mismatched input ')' expecting {OPERAND}")],
        id="error_on_a_later_line",
    ),
    pytest.param(
        _schema("rule r(x integer) { has(x) }"),
        [(2, 25, "invalid argument to has() macro")],
        id="bad_macro_argument",
    ),
    pytest.param(
        _schema("rule r(x integer) { x > 1 }", "rule s(y string) { y = 'a' }"),
        [
            (3, 22, "Syntax error: token recognition error at: '= '"),
            (3, 24, "Syntax error: extraneous input ''a'' expecting <EOF>"),
        ],
        id="second_rule_only",
    ),
    # -- names and operand types --------------------------------------------------------------
    pytest.param(
        _schema("rule r(amount integer) { amout > 1 }"),
        [
            (
                2,
                26,
                "undeclared reference to `amout` in rule `r`: a rule sees its parameters and "
                "`context.data` (did you mean `amount`?)",
            )
        ],
        id="undeclared_name",
    ),
    pytest.param(
        _schema("rule r(x integer) { isWeekday(x) }"),
        [
            (
                2,
                21,
                "undeclared reference to `isWeekday` in rule `r`: a rule sees its parameters "
                "and `context.data`",
            )
        ],
        id="undeclared_function",
    ),
    pytest.param(
        _schema("rule r(name string) { name + 1 == 'a1' }"),
        [(2, 23, "Unsupported operation: string + int.")],
        id="string_plus_int",
    ),
    pytest.param(
        _schema("rule r(n integer, s string) { n == 0 && s > 2 }"),
        [(2, 31, "No such overload: the operation is not defined for the given operand types.")],
        id="string_compared_with_int",
    ),
    # -- several rules report together with other schema errors -------------------------------
    pytest.param(
        _schema("rule a(x integer) { x }", "rule b(x integer) { x > }")
        + "entity doc { relation owner @usr }\n",
        [
            (2, 21, f"{NON_BOOL} int"),
            (3, 25, f"Syntax error: mismatched input '<EOF>' expecting {OPERAND}"),
            (4, 30, "unknown entity `usr` in subject type `@usr` (did you mean `user`?)"),
        ],
        id="every_error_collected",
    ),
    pytest.param(
        _schema("rule r(x integer) { " + "x" * (MAX_RULE_BODY + 1) + " }"),
        [(2, 20, f"rule body is longer than {MAX_RULE_BODY} characters")],
        id="overlong_body",
    ),
]


@pytest.mark.parametrize(("source", "expected"), INVALID)
def test_invalid_rule_body_is_reported_at_its_position(
    source: str, expected: list[tuple[int, int, str]]
) -> None:
    with pytest.raises(SchemaError) as caught:
        load(source)
    found = [(d.line, d.column, d.message) for d in caught.value.diagnostics]
    assert found == expected
    lines = source.split("\n")
    for diagnostic in caught.value.diagnostics:
        assert diagnostic.source_line == lines[diagnostic.line - 1]


VALID = [
    pytest.param(
        "rule check_balance(balance integer) {\n"
        "    (balance >= context.data.amount) && (context.data.amount <= 5000)\n}",
        id="banking",
    ),
    pytest.param(
        "rule is_weekday(is_public boolean) {\n    is_public == true && "
        "(context.data.day_of_week != 'saturday' && context.data.day_of_week != 'sunday')\n}",
        id="weekday",
    ),
    pytest.param("rule r(ip string, ip_range string[]) { ip in ip_range }", id="string_list_in"),
    pytest.param("rule r(score double) { score > 3.5 }", id="double"),
    pytest.param("rule r(n integer) { n > 1.5 }", id="int_vs_double_literal"),
    pytest.param("rule r(n integer) { 10 / n > 1 }", id="division_by_zero_only_on_the_sample"),
    pytest.param("rule r(xs integer[]) { xs[0] == 1 }", id="index_out_of_range_on_the_sample"),
    pytest.param("rule r(xs double[]) { xs.all(x, x > 0.5) }", id="comprehension"),
    pytest.param("rule r(x integer) { context.data.flag }", id="context_value_only"),
    pytest.param("rule r(x integer) { context.data.s + x > 0 }", id="context_operand"),
    pytest.param(
        "rule r(s string) { has(context.data.k) ? context.data.k == s : false }", id="conditional"
    ),
    pytest.param("rule r(s string) { s.matches('^a+$') }", id="string_function"),
    pytest.param("rule r(b boolean) { dyn(b) == 1 || b }", id="dyn"),
    # Operands of type dyn (``dyn()``, ``context``) are checked at run time only, as in cel-go:
    # failing on the sample values says nothing about the request's values.
    pytest.param("rule r(x integer) { dyn(x) + 1.5 > 2.0 }", id="dyn_operand_fails_on_sample"),
    pytest.param("rule r(x integer) { context.data < x }", id="context_operand_fails_on_sample"),
]


@pytest.mark.parametrize("rule", VALID)
def test_valid_rule_body_loads(rule: str) -> None:
    schema = load(_schema(rule))
    (definition,) = schema.rules.values()
    assert definition.expression


def test_schema_without_rules_does_not_load_the_cel_library() -> None:
    # Importing it costs ~0.1 s; a schema without rules (the usual case) must not pay for it.
    script = (
        "import sys\nfrom dsl.compiler import load\nload('entity user {}')\n"
        "assert 'cel' not in sys.modules, 'cel imported'\n"
        "load('entity user {}\\nrule r(x integer) { x > 1 }')\n"
        "assert 'cel' in sys.modules, 'cel not imported for a rule'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
