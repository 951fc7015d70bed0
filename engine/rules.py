"""Rules (Permify's ABAC conditions): each body compiled once per schema version, then evaluated.

A `RuleSet` holds the compiled rules of one schema version. Evaluating a rule binds each
parameter to the attribute value passed for it (its type's zero value when the entity has none
stored) and ``context`` to ``{"data": <request context data>}``, runs the CEL program and insists
on a boolean. Every failure, at compile or evaluation time, is a `RuleError` naming the rule.

CEL library: ``common-expression-language`` (import ``cel``, a Rust binding), not ``cel-python``:
bench/cel_bench.py measured 4-8 µs a call against 23-290 µs, and only it compares int with double.

Limits: every body is measured by `dsl.rule_cost` before the library compiles it, and every
call is priced before it runs, so no body or input can crash the process or hold the GIL for
long (the library cannot be interrupted once it runs).

Concurrency: a `RuleSet` is immutable once built and its compiled programs keep no state between
calls, so one instance serves every thread evaluating checks against its schema version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from dsl.compiler import cel_type_name
from dsl.rule_cost import (
    RULE_STEP_BUDGET,
    RuleBodyError,
    RuleCost,
    input_values,
    is_panic,
    measure,
)
from dsl.schema import AttributeType, RuleDef
from engine.errors import RuleError
from storage.base import AttributeValue

if TYPE_CHECKING:
    import cel

#: What a parameter is bound to when the entity has no such attribute stored (Permify's rule).
ZERO_VALUES: Final[Mapping[AttributeType, AttributeValue]] = {
    AttributeType.BOOLEAN: False,
    AttributeType.STRING: "",
    AttributeType.INTEGER: 0,
    AttributeType.DOUBLE: 0.0,
    AttributeType.BOOLEAN_ARRAY: (),
    AttributeType.STRING_ARRAY: (),
    AttributeType.INTEGER_ARRAY: (),
    AttributeType.DOUBLE_ARRAY: (),
}


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    program: cel.Program
    #: ``(parameter name, zero value)`` pairs, in declaration order.
    defaults: tuple[tuple[str, AttributeValue], ...]
    #: What a call may cost, and which ``context.data`` keys it reads.
    cost: RuleCost


class RuleSet:
    """The compiled rules of one schema version; build it with `RuleSet.compile`."""

    __slots__ = ("_broken", "_rules")

    def __init__(self, rules: Mapping[str, _CompiledRule], broken: Mapping[str, str]) -> None:
        self._rules = dict(rules)
        #: Rules that cannot be run, with why: evaluating one is a `RuleError`.
        self._broken = dict(broken)

    @classmethod
    def compile(cls, rules: Mapping[str, RuleDef]) -> RuleSet:
        """Measure and compile every rule body once.

        A body over the limits of `dsl.rule_cost` (a schema stored before they existed) or one
        the library refuses never reaches the library's compiler and does not fail the schema:
        only checks that evaluate that rule fail, each with a `RuleError` saying why.
        """
        if not rules:
            return cls({}, {})
        # Imported here: the package's import pulls in its command-line tool (~0.1 s), which
        # schemas without rules (the usual case) need not pay for.
        import cel  # noqa: PLC0415

        compiled: dict[str, _CompiledRule] = {}
        broken: dict[str, str] = {}
        for name, rule in rules.items():
            cost: RuleCost | None = None
            try:
                cost = measure(rule.expression)
            except RuleBodyError as exc:
                broken[name] = f"rule `{name}` cannot be run: {exc.message}"
                if not exc.syntax:
                    continue
            try:
                # Within the size limit even a body that is not CEL is safe to hand over, and
                # the library's message says best what is wrong with it.
                program = cel.compile(rule.expression)
            except BaseException as exc:
                if not isinstance(exc, Exception) and not is_panic(exc):
                    raise
                broken[name] = f"rule `{name}` does not compile: {exc}"
                continue
            if cost is None:
                continue  # the library reads it, but it cannot be priced: never run unmeasured
            defaults = tuple((param, ZERO_VALUES[kind]) for param, kind in rule.parameters.items())
            compiled[name] = _CompiledRule(program, defaults, cost)
        return cls(compiled, broken)

    def __contains__(self, rule: object) -> bool:
        return rule in self._rules or rule in self._broken

    def __len__(self) -> int:
        return len(self._rules) + len(self._broken)

    def evaluate(
        self,
        rule: str,
        arguments: Mapping[str, AttributeValue],
        data: Mapping[str, Any],
    ) -> bool:
        """Evaluate ``rule`` with ``arguments`` (parameter name -> attribute value; a missing one
        is its type's zero value) and ``data`` as ``context.data`` (JSON-like: numbers may be int
        or float, and compare numerically either way).

        The call is priced before it runs (`RuleCost.steps` on the number of values bound), and
        only the ``context.data`` keys the body reads are bound.

        Raises `RuleError` when the rule is unknown or cannot be run, the call would exceed
        `RULE_STEP_BUDGET`, evaluation fails (a ``context.data`` key the request lacks, a type
        mismatch, an overflow, ...) or the result is not a boolean.
        """
        compiled = self._rules.get(rule)
        if compiled is None:
            why = self._broken.get(rule)
            raise RuleError(why or f"no rule named `{rule}` in this schema version")
        activation: dict[str, Any] = {
            name: arguments.get(name, zero) for name, zero in compiled.defaults
        }
        cost = compiled.cost
        keys = cost.data_keys
        if keys is not None:
            data = {k: data[k] for k in keys if k in data}
        bound = {"data": data}
        values = input_values(bound, RULE_STEP_BUDGET) + input_values(activation, RULE_STEP_BUDGET)
        steps = cost.steps(values)
        if steps > RULE_STEP_BUDGET:
            raise RuleError(
                f"rule `{rule}` would take up to {steps:,} steps on its {values:,} input values, "
                f"over the budget of {RULE_STEP_BUDGET:,} a call: pass less context data, or "
                "simplify the rule"
            )
        activation["context"] = bound
        try:
            result = compiled.program.execute(activation)
        # The binding reports CEL errors as assorted builtin exceptions (KeyError, TypeError,
        # RuntimeError, OverflowError, ValueError, ...) with no common base of their own.
        except Exception as exc:
            raise RuleError(_failure(rule, exc)) from exc
        except BaseException as exc:
            if not is_panic(exc):
                raise
            raise RuleError(f"rule `{rule}` could not be evaluated: CEL failed: {exc}") from exc
        if result is True or result is False:
            return result
        raise RuleError(
            f"rule `{rule}` must result in a boolean, but its expression gave "
            f"{cel_type_name(result)} ({result!r})"
        )


def _failure(rule: str, exc: Exception) -> str:
    if isinstance(exc, KeyError):
        # str() of a KeyError is only the key: say what it means.
        key = exc.args[0] if exc.args else ""
        return (
            f"rule `{rule}` could not be evaluated: no such key: {key!r} (is it missing from "
            "the request's context.data?)"
        )
    return f"rule `{rule}` could not be evaluated: {exc}"
