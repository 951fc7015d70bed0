"""Rule bodies: each one CEL that parses and, on its parameters' types, a boolean expression.

Syntax errors are reported at their line:col in the schema. The CEL library (``cel``) only
evaluates, it has no type checker, so a body is also run once on sample values of its
parameters' types (``context.data`` empty): a non-boolean result, an undeclared name or, in a
body that does not read ``context``, an operator applied to the wrong types is an error; what
depends on the request (a missing ``context.data`` key, ...) is left to check time. Before the
library sees a body, `dsl.rule_cost` measures it (size, nesting, cost).

Also here: how a body's text is normalised (`normalise_rule_body`, shared with the formatter) and
how a CEL value's type is named in messages (`cel_type_name`, shared with the engine).
"""

from __future__ import annotations

import datetime
import re
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from dsl import ast
from dsl.reporter import Reporter
from dsl.rule_cost import RuleBodyError, is_panic, measure
from dsl.schema import AttributeType, RuleDef

if TYPE_CHECKING:
    import cel

#: A parse error in the CEL library's message: ``ERROR: <input>:line:col: text`` (1-based).
_CEL_SYNTAX_ERROR: Final = re.compile(r"^ERROR: <input>:(\d+):(\d+): (.*)$", re.MULTILINE)
_CEL_UNDEFINED: Final = re.compile(r"Undefined variable or function: '([^']*)'")
#: The values a rule body is tried on, by parameter type (arrays are tried empty).
_SAMPLE_VALUES: Final[dict[AttributeType, object]] = {
    AttributeType.BOOLEAN: False,
    AttributeType.STRING: "",
    AttributeType.INTEGER: 0,
    AttributeType.DOUBLE: 0.0,
}


def compile_rule(
    rule: ast.Rule, declared: dict[str, AttributeType | None], report: Reporter
) -> RuleDef:
    """The compiled rule; its body is checked (`_check_body`) when its parameters' types are
    known. ``declared``: the rule's parameters and their types, None where in error."""
    expression = normalise_rule_body(rule.body)
    params = {n: t for n, t in declared.items() if t is not None}
    if not expression:
        report.error(rule.body_pos, f"rule `{rule.name}` has an empty body")
    else:
        _check_body(rule, params if len(params) == len(declared) else None, report)
    return RuleDef(rule.name, params, expression)


def _check_body(
    rule: ast.Rule, params: dict[str, AttributeType] | None, report: Reporter
) -> None:
    """Report a rule body that is not CEL, or (``params`` known) not a boolean expression."""
    # Imported only for a schema with rules: the package's import costs ~0.1 s (it pulls in
    # its command-line tool), and most schemas have none.
    import cel  # noqa: PLC0415

    # Measured first (size, nesting, cost), so nothing that could crash or stall the CEL
    # library reaches it. A body that is not CEL is still handed to the library, within
    # the size limit, for its own (better) syntax message.
    try:
        measure(rule.body)
        unreadable: RuleBodyError | None = None
    except RuleBodyError as exc:
        if not exc.syntax:
            report.error(_body_pos(rule, exc.line, exc.column), exc.message)
            return
        unreadable = exc
    # The verbatim body, not the normalised expression: the two differ only in whitespace,
    # and the verbatim one's line:col map straight into the schema.
    try:
        program = cel.compile(rule.body)
    except BaseException as exc:
        # The binding's PanicException (a Rust panic) derives from BaseException.
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        _cel_syntax(rule, exc, unreadable, report)
        return
    if unreadable is not None:
        # The library took a body this project's CEL grammar cannot read, so it cannot be
        # priced: refused rather than run unmeasured.
        report.error(
            _body_pos(rule, unreadable.line, unreadable.column),
            "rule body uses CEL syntax Stonetown cannot measure; rewrite it with the "
            "operators and macros of standard CEL",
        )
        return
    if params is None:
        return  # a parameter's type is in error already: nothing to try the body on
    _try_body(rule, program, params, report)


def _cel_syntax(
    rule: ast.Rule, exc: BaseException, ours: RuleBodyError | None, report: Reporter
) -> None:
    """Report the CEL library's syntax errors, each at its line:col in the schema."""
    if isinstance(exc, ValueError):
        # "Failed to parse expression '<body>': " then one "ERROR: ..." line per error, each
        # followed by the offending line and a caret.
        details = str(exc).removeprefix(f"Failed to parse expression '{rule.body}': ")
        found = False
        for match in _CEL_SYNTAX_ERROR.finditer(details):
            found = True
            line, column = int(match[1]), int(match[2])
            report.error(_body_pos(rule, line, column), match[3])
        if found:
            return
    if ours is not None:
        report.error(_body_pos(rule, ours.line, ours.column), ours.message)
    else:
        report.error(_body_start(rule), f"rule body is not valid CEL: {exc}")


def _try_body(
    rule: ast.Rule, program: cel.Program, params: dict[str, AttributeType], report: Reporter
) -> None:
    """Run the body once on sample values: a type error or a non-boolean result is the
    schema's fault, since parameters have fixed types."""
    sample: dict[str, object] = {
        name: () if kind.is_array else _SAMPLE_VALUES[kind] for name, kind in params.items()
    }
    sample["context"] = {"data": {}}
    try:
        value = program.execute(sample)
    except TypeError as exc:
        # Parameters have fixed types, so without ``context`` (dynamic) or ``dyn()`` an
        # operator that fails on the sample fails on every input: cel-go rejects it too.
        if "context" not in program.variables() and "dyn" not in program.functions():
            report.error(_body_start(rule), _first_sentence(str(exc)))
        return
    except RuntimeError as exc:
        undefined = _CEL_UNDEFINED.match(str(exc))
        if undefined:
            name = undefined[1]
            report.error(
                _body_start(rule),
                f"undeclared reference to `{name}` in rule `{rule.name}`: a rule sees its "
                "parameters and `context.data`" + report.suggest(name, params),
            )
        return
    except Exception:
        # Anything else (a ``context.data`` key the sample lacks, a division by zero on
        # the sample values, ...) depends on the request: an error at check time.
        return
    if not isinstance(value, bool):
        report.error(
            _body_start(rule),
            f"rule expression must result in a boolean type not {cel_type_name(value)}",
        )


def _body_pos(rule: ast.Rule, line: int, column: int) -> ast.Pos:
    """The schema position of 1-based ``line``:``column`` of the verbatim rule body."""
    if line == 1:  # the body starts right after the `{` at body_pos
        return ast.Pos(rule.body_pos.line, rule.body_pos.column + column)
    return ast.Pos(rule.body_pos.line + line - 1, column)


def _body_start(rule: ast.Rule) -> ast.Pos:
    """The schema position of the body's first non-blank character."""
    body = rule.body
    index = len(body) - len(body.lstrip())
    line = body.count("\n", 0, index) + 1
    return _body_pos(rule, line, index - body.rfind("\n", 0, index))


def _first_sentence(message: str) -> str:
    """The CEL library's runtime messages go on with advice; the first sentence says it."""
    head, dot, _ = message.partition(". ")
    return head + dot.strip()


def cel_type_name(value: object) -> str:
    """A CEL value's type as cel-go prints it: ``int``, ``list(string)``, ``map(string, int)``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if value is None:
        return "null_type"
    if isinstance(value, list | tuple):
        return f"list({_common_type(value)})"
    if isinstance(value, dict):
        return f"map({_common_type(value)}, {_common_type(value.values())})"
    if isinstance(value, datetime.datetime):
        return "google.protobuf.Timestamp"
    if isinstance(value, datetime.timedelta):
        return "google.protobuf.Duration"
    return type(value).__name__


def _common_type(values: Iterable[object]) -> str:
    """The one type of ``values``, or ``dyn`` when they have none (or several)."""
    names = {cel_type_name(v) for v in values}
    return names.pop() if len(names) == 1 else "dyn"


def keeps_verbatim(body: str) -> bool:
    """A body with a triple-quoted string, which may span lines: never re-indented."""
    return "'''" in body or '"""' in body


def normalise_rule_body(body: str) -> str:
    """A rule's CEL text with indentation made canonical.

    Blank edge lines and trailing spaces go and the common indentation is removed, so the
    formatter may re-indent a body without changing the compiled schema. A body holding a
    triple-quoted string (which may span lines) is only stripped.
    """
    if keeps_verbatim(body):
        return body.strip()
    lines = [line.rstrip() for line in body.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return textwrap.dedent("\n".join(lines))
