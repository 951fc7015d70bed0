"""What the rule limits of `dsl.rule_cost` buy: the CEL library's time at the step budget, and
the chained-operator depth that crashes it.

For each worst-case shape (a scan, nested scans, ``map`` and ``filter``, which the library runs
in quadratic time, and binding a large context) the input is grown to just under
`RULE_STEP_BUDGET` as priced by `RuleCost.steps`, and the call is timed (median of 5): the
longest the library can hold the GIL in one call. Then, in subprocesses, a body of n chained
additions is compiled and run for growing n to find where the library overflows an 8 MiB stack
(what `MAX_RULE_BODY` and `MAX_RULE_NESTING` keep far away).

    .venv/bin/python bench/rule_limits_bench.py [--no-crash]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

import cel

from dsl.rule_cost import RULE_STEP_BUDGET, input_values, measure

#: (label, body, activation for an input of n values)
#: A regex that takes the library a while to compile (it compiles one on every call).
PATTERN = "(a|b)" * 200


def _ints(n: int) -> dict[str, Any]:
    return {"items": list(range(n))}


def _strings(n: int) -> dict[str, Any]:
    return {"items": [str(i) for i in range(n)]}


SHAPES: list[tuple[str, str, Any]] = [
    ("scan", "items.exists(x, x == -1)", _ints),
    ("nested scans", "items.all(a, items.all(b, a != b || true))", _ints),
    ("map", "size(items.map(x, x)) > 0", _ints),
    ("filter", "size(items.filter(x, true)) > 0", _ints),
    ("binding", "true", _ints),
    ("string compare", "items.exists(x, x == 'zz')", _strings),
    ("regex", "items.exists(x, x.matches('" + PATTERN + "'))", _strings),
    ("regex input", "'ab'.matches(p)", lambda n: {"p": "(a|b)" * n}),
]


def _largest_input(body: str, make: Any) -> int:
    """The largest n whose priced call stays within the budget (binary search)."""
    cost = measure(body)
    low, high = 1, RULE_STEP_BUDGET
    while low < high:
        mid = (low + high + 1) // 2
        values = input_values(make(mid), RULE_STEP_BUDGET + 1)
        if cost.steps(values) <= RULE_STEP_BUDGET:
            low = mid
        else:
            high = mid - 1
    return low


def budget_table() -> None:
    print(f"step budget {RULE_STEP_BUDGET:,} a call")
    print(f"{'shape':<16}{'n':>9}{'steps':>10}{'ms/call':>9}{'ns/step':>9}")
    for label, body, make in SHAPES:
        n = _largest_input(body, make)
        activation = make(n)
        steps = measure(body).steps(input_values(activation, RULE_STEP_BUDGET + 1))
        program = cel.compile(body)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            program.execute(activation)
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1e3
        print(f"{label:<16}{n:>9,}{steps:>10,}{ms:>9.1f}{ms * 1e6 / steps:>9.0f}")


_CRASH_PROBE = """
import sys, cel
n = int(sys.argv[1])
cel.compile("0\\n" + "+ 1\\n" * n + "> 0").execute({})
"""


def crash_depth() -> None:
    print("chained additions compiled and run by the library (8 MiB stack, main thread):")
    for n in (2_000, 4_000, 8_000, 12_000, 13_000, 14_000, 16_000):
        done = subprocess.run([sys.executable, "-c", _CRASH_PROBE, str(n)], check=False)
        verdict = "ok" if done.returncode == 0 else f"died (exit {done.returncode})"
        print(f"  {n:>6,} operators, {4 * n + 5:>6,} characters: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-crash", action="store_true", help="skip the parser crash probe")
    args = parser.parse_args()
    budget_table()
    if not args.no_crash:
        crash_depth()


if __name__ == "__main__":
    main()
