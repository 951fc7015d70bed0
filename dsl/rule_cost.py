"""Rule bodies measured before the CEL library sees them: size, nesting, cost, what they read.

The CEL library (``cel``, a Rust binding) is fast on the bodies people write, but a body is
untrusted input and the library has three hazards, measured on this project's machine
(``bench/cel_bench.py --limits``):

* it recurses once per chained operator or member access (``0 + 1 + 1 ...``, ``a.b.c...``):
  about 13,000 of them overflow an 8 MiB stack and kill the process (SIGSEGV);
* it holds the GIL while it compiles or runs and cannot be interrupted, so one slow call
  freezes every thread, the event loop included;
* ``map`` and ``filter`` copy their accumulator on every step (quadratic: 16,000 elements take
  8.6 s), comprehensions nest multiplicatively, and binding its inputs costs about 0.3 µs per
  value, whether or not the body reads them.

So every body is parsed here first, with ``cel.lark`` and Lark's LALR parser (a table-driven
loop: no recursion on Python's stack), then walked iteratively, and it must keep within:

* `MAX_RULE_BODY` characters and `MAX_RULE_LINES` lines (the bound on what any body, even one
  this grammar rejects, can make the library's parser do);
* `MAX_RULE_NESTING` levels of expression nesting;
* a *cost*: a polynomial in ``n``, the number of values the rule's inputs hold, bounding the
  steps the library takes (every operand evaluated, every comprehension step, every element a
  ``map`` or ``filter`` copies, every element compared or concatenated). A body whose cost on
  inputs of `NOMINAL_INPUT_VALUES` values exceeds `RULE_STEP_BUDGET` is refused when the schema
  is written, and every call is priced before it runs: `RuleCost.steps` with the real ``n``
  (plus `BINDING_STEPS` per input value) over the budget is an error, never a long call.

The walk also finds which ``context.data`` keys a body reads (`RuleCost.data_keys`), so a call
binds only those and a large request context costs nothing to rules that ignore it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

#: Longest body, in characters. Real rules are a few lines; 8 KiB keeps even a body this
#: grammar rejects (and the library parses anyway, for its own error message) three times
#: under the chained-operator depth that crashed the library on an 8 MiB stack.
MAX_RULE_BODY: Final = 8192
#: Most lines in one body.
MAX_RULE_LINES: Final = 256
#: Deepest nesting of a body's expression tree (each operator, access, call, index or literal
#: level counts one; ``&&`` and ``||`` chains count once, since the library keeps them flat).
#: cel-go's parser stops at 250; 100 is far beyond any real rule.
MAX_RULE_NESTING: Final = 100
#: Steps one rule call may take: at most about 35 ms of the library's time in the worst shape
#: measured (comparing strings, 0.35 µs a step; most shapes 0.07-0.15 µs), so a rule can never
#: hold the GIL long enough to make the event loop miss a 100 ms deadline.
RULE_STEP_BUDGET: Final = 100_000
#: Most comprehensions (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) nested in one
#: another; each level multiplies the cost by its range's size.
MAX_COMPREHENSIONS: Final = 4
#: The input size a body is priced at when its schema is written.
NOMINAL_INPUT_VALUES: Final = 16
#: What binding one input value into the library's activation costs, in steps (measured: 0.1
#: µs an integer, 1.3 µs a string: up to ten comprehension steps).
BINDING_STEPS: Final = 10

#: Characters of a string that count as one more value: comparing or copying them costs little,
#: but the library compiles a regex afresh on every ``matches`` call.
STRING_CHARS_PER_VALUE: Final = 16
#: Steps per value of a ``matches`` argument (measured: a 7,500-character pattern takes the
#: library 3.6 ms a call, about 60 steps per 16 characters).
REGEX_STEPS_PER_VALUE: Final = 64

#: Comprehension macros: ``range.macro(var, ...)``.
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
#: Above this a coefficient is as good as infinite; keeps the arithmetic on small integers.
_SATURATED: Final = 1 << 62


@functools.cache
def _parser() -> Lark:
    """The CEL grammar's parser, built on first use: 40 ms that importing the schema compiler
    need not pay for schemas without rules (the usual case)."""
    return Lark.open(
        "cel.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


#: A polynomial in ``n``: coefficients, lowest degree first.
Poly = tuple[int, ...]
_ZERO: Final[Poly] = ()
_ONE: Final[Poly] = (1,)
_N: Final[Poly] = (0, 1)


class RuleBodyError(Exception):
    """A body over a limit, or one this grammar cannot read; ``line`` and ``column`` are
    1-based within the body. ``syntax`` is True when the body is not CEL at all (the CEL
    library's own message is the better one to show for those)."""

    def __init__(self, line: int, column: int, message: str, *, syntax: bool = False) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message
        self.syntax = syntax


@dataclass(frozen=True, slots=True)
class RuleCost:
    """What one body may cost and what it reads."""

    #: Steps as a polynomial in ``n``, the number of values in the rule's inputs.
    polynomial: Poly
    #: The ``context.data`` keys the body reads by name; None when it reads ``context`` (or
    #: ``context.data``) as a whole, or by a computed key.
    data_keys: frozenset[str] | None
    #: How deep the expression tree nests.
    nesting: int

    def steps(self, n: int) -> int:
        """Steps a call with inputs of ``n`` values may take, binding them included."""
        return _at(self.polynomial, n) + BINDING_STEPS * n


def measure(body: str) -> RuleCost:
    """Parse ``body`` and price it. Raises `RuleBodyError` when it is over a limit (size,
    lines, nesting, cost at `NOMINAL_INPUT_VALUES`) or is not CEL this grammar can read."""
    if len(body) > MAX_RULE_BODY:
        raise RuleBodyError(1, 1, f"rule body is longer than {MAX_RULE_BODY} characters")
    lines = body.count("\n") + 1
    if lines > MAX_RULE_LINES:
        raise RuleBodyError(1, 1, f"rule body has more than {MAX_RULE_LINES} lines ({lines})")
    try:
        tree = _parser().parse(body)
    except UnexpectedInput as exc:
        raise RuleBodyError(
            exc.line if exc.line > 0 else 1,
            exc.column if exc.column > 0 else 1,
            f"rule body is not valid CEL near line {exc.line}, column {exc.column}",
            syntax=True,
        ) from exc
    cost = _Walk().run(tree)
    static = cost.steps(NOMINAL_INPUT_VALUES)
    if static > RULE_STEP_BUDGET:
        line, column = _position(tree)
        raise RuleBodyError(
            line,
            column,
            f"rule body is too expensive: up to {_human(static)} steps on inputs of "
            f"{NOMINAL_INPUT_VALUES} values, over the budget of {RULE_STEP_BUDGET:,} "
            "(nested comprehensions multiply; map and filter are quadratic)",
        )
    return cost


def input_values(value: object, limit: int) -> int:
    """How many values ``value`` holds (a scalar is 1, a string one more per
    `STRING_CHARS_PER_VALUE` characters, a list or map 1 plus its contents), up to ``limit``:
    the walk stops there, so pricing a huge input costs no more than the budget."""
    count = 0
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(item, dict):
            stack.extend(item.values())
            count += len(item)  # the keys
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str | bytes):
            count += len(item) // STRING_CHARS_PER_VALUE
    return count


def is_panic(exc: BaseException) -> bool:
    """The CEL binding reports a Rust panic as ``PanicException``, a `BaseException` that is
    no `Exception`: it is the library's failure on this input, not a reason to stop."""
    return type(exc).__name__ == "PanicException"


def _human(steps: int) -> str:
    return "more than 10^18" if steps >= _SATURATED else f"{steps:,}"


def _position(tree: Tree[Token]) -> tuple[int, int]:
    meta = tree.meta
    if getattr(meta, "empty", True):
        return 1, 1
    return meta.line, meta.column


# --- polynomials --------------------------------------------------------------------------------


def _add(*terms: Poly) -> Poly:
    size = max((len(t) for t in terms), default=0)
    out = [0] * size
    for t in terms:
        for i, c in enumerate(t):
            out[i] = min(out[i] + c, _SATURATED)
    return tuple(out)


def _smaller(a: Poly, b: Poly) -> Poly:
    """Either bound is a bound on the smaller of two values: the one of lower degree (or the
    lesser on a nominal input) is the tighter."""
    if len(a) != len(b):
        return a if len(a) < len(b) else b
    return a if _at(a, NOMINAL_INPUT_VALUES) <= _at(b, NOMINAL_INPUT_VALUES) else b


def _at(p: Poly, n: int) -> int:
    total, power = 0, 1
    for coefficient in p:
        total += coefficient * power
        power *= n
    return total


def _mul(a: Poly, b: Poly) -> Poly:
    if not a or not b:
        return _ZERO
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] = min(out[i + j] + x * y, _SATURATED)
    return tuple(out)


# --- the walk -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    #: Steps to evaluate the expression.
    cost: Poly
    #: Bound on the number of values in its value (a scalar is 1; a list or map 1 plus its
    #: contents): what a comprehension over it steps through, what comparing it walks.
    size: Poly
    nesting: int


_SCALAR: Final = _Value(_ONE, _ONE, 1)
#: Container nodes: they add nothing of their own.
_CONTAINERS: Final = frozenset({"args", "fields", "entries", "entry"})


class _Walk:
    """A post-order walk of the parse tree on an explicit stack (bodies nest up to the size
    limit, deeper than Python's recursion limit allows)."""

    def __init__(self) -> None:
        self.context_uses = 0
        #: One entry per use of ``context`` that reads a named ``context.data`` key.
        self.keys: list[str] = []

    def run(self, root: Tree[Token]) -> RuleCost:
        results: list[_Value] = []
        # (node, comprehension variables in scope -> their size, comprehension depth, phase)
        stack: list[tuple[Tree[Token], dict[str, Poly], int, int]] = [(root, {}, 0, 0)]
        while stack:
            node, scope, depth, phase = stack.pop()
            if phase == 0:
                self._reads(node, scope)
                if _macro(node) is not None:
                    if depth >= MAX_COMPREHENSIONS:
                        line, column = _position(node)
                        raise RuleBodyError(
                            line,
                            column,
                            f"rule body nests comprehensions more than {MAX_COMPREHENSIONS} "
                            "deep",
                        )
                    # The range first: its size bounds the variable's (an element is a part).
                    stack.append((node, scope, depth, 1))
                    stack.append((_tree(node.children[0]), scope, depth, 0))
                    continue
                stack.append((node, scope, depth, 2))
                for child in reversed(_subtrees(node)):
                    stack.append((child, scope, depth, 0))
            elif phase == 1:
                # The bodies are priced twice: with the variable empty (what every step costs
                # whatever the element) and with it as large as the whole range (what the
                # steps add up to because of their elements: each element is a part of the
                # range, so those shares sum to no more). See `_comprehension`.
                variable, bodies = _macro(node) or ("", [])
                empty = {**scope, variable: _ZERO}
                whole = {**scope, variable: results[-1].size}
                stack.append((node, scope, depth, 2))
                for body in reversed(bodies):
                    stack.append((body, whole, depth + 1, 0))
                for body in reversed(bodies):
                    stack.append((body, empty, depth + 1, 0))
            else:
                results.append(self._combine(node, scope, results))
        (value,) = results
        if value.nesting > MAX_RULE_NESTING:
            line, column = _deepest(root)
            raise RuleBodyError(
                line,
                column,
                f"rule body nests {value.nesting} levels deep; at most {MAX_RULE_NESTING} "
                "are allowed",
            )
        precise = len(self.keys) == self.context_uses
        return RuleCost(value.cost, frozenset(self.keys) if precise else None, value.nesting)

    def _reads(self, node: Tree[Token], scope: dict[str, Poly]) -> None:
        """Count the uses of the request's ``context`` (a comprehension variable of that name
        hides it); `_select` and `_index` count those that name one ``context.data`` key."""
        if node.data == "ident" and str(node.children[-1]) == "context" and "context" not in scope:
            self.context_uses += 1

    def _combine(
        self, node: Tree[Token], scope: dict[str, Poly], results: list[_Value]
    ) -> _Value:
        kind = node.data
        subtrees = _subtrees(node)
        macro = _macro(node)
        count = 1 + 2 * len(macro[1]) if macro is not None else len(subtrees)
        parts = results[len(results) - count :] if count else []
        del results[len(results) - count :]
        cost = _add(*(p.cost for p in parts))
        size = _add(*(p.size for p in parts))
        nesting = max((p.nesting for p in parts), default=0)
        if kind in _CONTAINERS:
            return _Value(cost, size, nesting)
        nesting += 1
        if kind == "scalar":
            return _SCALAR
        if kind == "text":
            chars = len(str(node.children[0]))
            return _Value(_ONE, (1 + chars // STRING_CHARS_PER_VALUE,), 1)
        if kind == "ident":
            name = str(node.children[-1])
            return _Value(_ONE, scope.get(name, _N), 1)
        if kind == "select":
            self._select(node, scope)
            return _Value(_add(cost, _ONE), size, nesting)
        if kind == "index":
            self._index(node, scope)
            return _Value(_add(cost, _ONE), parts[0].size, nesting)
        if kind in ("logic", "unary", "arith"):
            nesting -= kind == "logic"  # the library keeps && and || chains flat
            return _Value(_add(cost, _ONE), _ONE, nesting)
        if kind == "compare":
            # Comparing stops at the smaller side.
            smaller = _smaller(parts[0].size, parts[1].size)
            return _Value(_add(cost, smaller, _ONE), _ONE, nesting)
        if kind == "contains":
            # Each element is compared, and each comparison stops at the element's size.
            return _Value(_add(cost, parts[1].size, parts[1].size, _ONE), _ONE, nesting)
        if kind == "plus":
            return _Value(_add(cost, size, _ONE), size, nesting)
        if kind == "ternary":
            return _Value(_add(cost, _ONE), _add(*(p.size for p in parts[1:])), nesting)
        if kind in ("list", "map"):
            return _Value(_add(cost, (_elements(node) + 1,)), _add(size, _ONE), nesting)
        if kind == "struct":
            return _Value(_add(cost, _ONE), _add(size, _ONE), nesting)
        if kind == "call":
            function = str(node.children[-2])
            if function == "has":
                return _Value(_add(cost, _ONE), _ONE, nesting)
            return _Value(_add(cost, _call(function, size)), _add(size, _ONE), nesting)
        if kind == "method":
            function = str(node.children[1])
            if macro is not None:
                return _comprehension(function, parts, nesting)
            return _Value(_add(cost, _call(function, size)), _add(size, _ONE), nesting)
        raise AssertionError(f"unhandled CEL node {kind}")  # the grammar has no other

    def _select(self, node: Tree[Token], scope: dict[str, Poly]) -> None:
        """``context.data.NAME``: the use of ``context`` marked all of it read; name the key."""
        inner = node.children[0]
        if (
            isinstance(inner, Tree)
            and inner.data == "select"
            and str(inner.children[1]) == "data"
            and _is_context(inner.children[0], scope)
        ):
            self._narrow(str(node.children[1]))

    def _index(self, node: Tree[Token], scope: dict[str, Poly]) -> None:
        """``context.data['NAME']`` with a plain string literal: the same key as a select."""
        inner, key = node.children[0], node.children[1]
        if (
            isinstance(inner, Tree)
            and inner.data == "select"
            and str(inner.children[1]) == "data"
            and _is_context(inner.children[0], scope)
            and isinstance(key, Tree)
            and key.data == "text"
        ):
            literal = str(key.children[0])
            if literal[:1] in "'\"" and literal[1:-1].isidentifier() and len(literal) > 2:
                self._narrow(literal[1:-1])

    def _narrow(self, key: str) -> None:
        self.keys.append(key)


def _is_context(node: Tree[Token] | Token | None, scope: dict[str, Poly]) -> bool:
    return (
        isinstance(node, Tree)
        and node.data == "ident"
        and str(node.children[-1]) == "context"
        and "context" not in scope
    )


def _call(function: str, arguments: Poly) -> Poly:
    """A function walks its arguments once; ``matches`` compiles its pattern on every call (the
    library keeps no compiled regex), at about 0.5 µs a character."""
    if function == "matches":
        return _add(_mul(arguments, (REGEX_STEPS_PER_VALUE,)), _ONE)
    return _add(arguments, _ONE)


def _comprehension(name: str, parts: list[_Value], nesting: int) -> _Value:
    """``range.all|exists|exists_one|filter|map(var, ...)``: each step runs the bodies;
    ``map`` and ``filter`` also copy their accumulator (the library clones it every step).

    ``parts`` are the range, the bodies priced with the variable empty, then the bodies priced
    with it as large as the range. A body's cost is a polynomial with non-negative coefficients
    in the variable's size ``a``, so over the steps it adds up to at most (steps x its cost at
    ``a = 0``) + (its cost at ``a`` = the range's size): the elements' sizes sum to no more
    than the range's. The same holds for the values ``map`` produces.
    """
    count = (len(parts) - 1) // 2
    span, empty, whole = parts[0], parts[1 : 1 + count], parts[1 + count :]
    each = _add(*(b.cost for b in empty), _ONE)
    cost = _add(span.cost, _mul(span.size, each), *(b.cost for b in whole))
    if name in ("all", "exists", "exists_one"):
        return _Value(cost, _ONE, nesting)
    copies = _mul(span.size, span.size)
    if name == "filter":
        return _Value(_add(cost, copies), span.size, nesting)
    # One result per element: each as large as the last body's value.
    produced = _add(_mul(span.size, empty[-1].size), whole[-1].size, _ONE)
    return _Value(_add(cost, copies), produced, nesting)


def _macro(node: Tree[Token]) -> tuple[str, list[Tree[Token]]] | None:
    """A comprehension call: its variable and its bodies (after the variable)."""
    if node.data != "method" or str(node.children[1]) not in _MACROS:
        return None
    args = node.children[2]
    if not isinstance(args, Tree):
        return None
    items = [c for c in args.children if isinstance(c, Tree)]
    expected = (2, 3) if str(node.children[1]) == "map" else (2,)
    if len(items) not in expected or items[0].data != "ident" or len(items[0].children) != 1:
        return None
    return str(items[0].children[0]), items[1:]


def _tree(node: Tree[Token] | Token | None) -> Tree[Token]:
    assert isinstance(node, Tree)
    return node


def _subtrees(node: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in node.children if isinstance(c, Tree)]


def _elements(node: Tree[Token]) -> int:
    (inner,) = node.children
    if not isinstance(inner, Tree):
        return 0
    return sum(1 for c in inner.children if isinstance(c, Tree))


def _deepest(root: Tree[Token]) -> tuple[int, int]:
    """Where the nesting goes past the limit: the first node at that depth."""
    stack: list[tuple[Tree[Token], int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_RULE_NESTING:
            return _position(node)
        stack.extend((c, depth + 1) for c in _subtrees(node))
    return _position(root)

