"""Which CEL library evaluates rule bodies: compile time, per-call evaluation time, correctness.

Candidates (both from PyPI): ``common-expression-language`` (import ``cel``, a Rust binding)
and ``cel-python`` (import ``celpy``, pure Python; its interpreted and its transpiled runner).
Each is measured only if it is installed, with fixed inputs (no randomness):

* compile: one typical rule body (the banking rule), median over ``--compiles`` runs;
* evaluate: p50 over ``--calls`` calls of each body below, counting the per-call work a rule
  evaluation needs (binding parameters and ``context.data`` into the library's activation);
* correctness: int attribute vs double from JSON compared numerically (Permify's banking example
  relies on it), ``in`` over a string list, a missing ``context.data`` key (must be an error),
  a body yielding a non-bool (must be detectable), and a syntax error (must be an error).

Prints a table; ``--json`` prints one JSON line instead. Only the chosen library is a project
dependency: ``.venv/bin/pip install cel-python`` to compare again. Measured when choosing
(2 cores, CPython 3.11, cel 0.10.0, celpy 0.5.0; µs, p50 over 20k calls; ! = error, not result):

    library                 compile  banking  weekday  ip_in  score  bank_int
    cel                        19.5     4.8      5.3     7.4    3.6     4.4
    celpy (interpreted)       161.6   189.9!   287.9   104.5   90.6   197.4
    celpy (transpiled)        380.4    68.1!    56.3    36.6   22.9    64.4

celpy has no int/double comparison ("no such overload" on the banking body).

    .venv/bin/python bench/cel_bench.py [--calls 20000] [--compiles 200] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: (label, body, arguments, context.data, expected result)
BODIES: tuple[tuple[str, str, dict[str, Any], dict[str, Any], object], ...] = (
    (
        "banking",
        "balance >= context.data.amount && context.data.amount <= 5000",
        {"balance": 4000},
        {"amount": 3000.0},
        True,
    ),
    (
        "weekday",
        "is_public == true && (context.data.day_of_week != 'saturday' "
        "&& context.data.day_of_week != 'sunday')",
        {"is_public": True},
        {"day_of_week": "monday"},
        True,
    ),
    (
        "ip_in",
        "ip in ip_range",
        {"ip": "10.0.0.7", "ip_range": ("10.0.0.1", "10.0.0.7", "10.0.0.9")},
        {},
        True,
    ),
    ("score", "score > 3.5", {"score": 4.25}, {}, True),
    # The banking body again with an int from JSON: a like-for-like time for a library that
    # cannot compare int with double (its time on "banking" is then that of the error path).
    (
        "bank_int",
        "balance >= context.data.amount && context.data.amount <= 5000",
        {"balance": 4000},
        {"amount": 3000},
        True,
    ),
)

#: (label, body, arguments, context.data, expected: a value, or Exception when it must fail)
CHECKS: tuple[tuple[str, str, dict[str, Any], dict[str, Any], object], ...] = (
    ("int>=double true", BODIES[0][1], {"balance": 4000}, {"amount": 3000.0}, True),
    ("int>=double false", BODIES[0][1], {"balance": 4000}, {"amount": 4500.5}, False),
    ("int vs int from JSON", BODIES[0][1], {"balance": 4000}, {"amount": 3000}, True),
    ("string list in", "ip in ip_range", {"ip": "b", "ip_range": ("a", "b")}, {}, True),
    ("string list not in", "ip in ip_range", {"ip": "c", "ip_range": ("a", "b")}, {}, False),
    ("empty list", "ip in ip_range", {"ip": "c", "ip_range": ()}, {}, False),
    ("missing key -> error", "context.data.nope == 1", {}, {}, Exception),
    ("non-bool -> int", "balance + 1", {"balance": 1}, {}, 2),
    ("syntax error -> error", "balance >=", {"balance": 1}, {}, Exception),
)


@dataclass
class Candidate:
    """How one library compiles a body and evaluates it with Python values."""

    name: str
    compile: Callable[[str], Any]
    evaluate: Callable[[Any, Mapping[str, Any], Mapping[str, Any]], object]
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def rust_candidate() -> Candidate:
    import cel  # noqa: PLC0415  (measured only if installed)

    def evaluate(program: Any, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> object:
        return program.execute({**arguments, "context": {"data": data}})

    return Candidate("common-expression-language (cel)", cel.compile, evaluate)


def celpy_candidates() -> list[Candidate]:
    import celpy  # noqa: PLC0415
    from celpy.adapter import json_to_cel  # noqa: PLC0415
    from celpy.celparser import CELParser  # noqa: PLC0415
    from celpy.celtypes import BoolType  # noqa: PLC0415

    def make(runner: Any, label: str) -> Candidate:
        # celpy keeps one Lark parser per process (a class attribute), built for the first
        # runner's tree class: each runner gets its own, put in place while it compiles.
        CELParser.CEL_PARSER = None
        env = celpy.Environment(runner_class=runner)
        lark_parser = CELParser.CEL_PARSER

        def compile_(body: str) -> Any:
            CELParser.CEL_PARSER = lark_parser
            return env.program(env.compile(body))

        def evaluate(runner_: Any, arguments: Mapping[str, Any], data: Mapping[str, Any]) -> object:
            activation = {name: json_to_cel(value) for name, value in arguments.items()}
            activation["context"] = json_to_cel({"data": data})
            result = runner_.evaluate(activation)
            if isinstance(result, Exception):
                raise result
            return bool(result) if isinstance(result, BoolType) else result

        return Candidate(f"cel-python (celpy, {label})", compile_, evaluate)

    # The transpiled runner logs every evaluation error before raising it.
    logging.getLogger("celpy").setLevel(logging.CRITICAL)
    return [
        make(celpy.InterpretedRunner, "interpreted"),
        make(celpy.CompiledRunner, "transpiled"),
    ]


def measure(candidate: Candidate, calls: int, compiles: int) -> None:
    body = BODIES[0][1]
    samples: list[float] = []
    for _ in range(compiles):
        start = time.perf_counter_ns()
        candidate.compile(body)
        samples.append((time.perf_counter_ns() - start) / 1000)
    candidate.results["compile_us"] = statistics.median(samples)
    for label, body, arguments, data, expected in BODIES:
        program = candidate.compile(body)
        evaluate = candidate.evaluate
        try:
            ok = evaluate(program, arguments, data) == expected
        except Exception as exc:
            ok = False
            candidate.results[f"{label}_error"] = f"{type(exc).__name__}"
        timings: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(calls):
            start = clock()
            # A bare try costs nothing in 3.11; contextlib.suppress would add to every sample.
            try:  # noqa: SIM105
                evaluate(program, arguments, data)
            except Exception:
                pass
            timings.append(clock() - start)
        candidate.results[f"{label}_us"] = statistics.median(timings) / 1000
        candidate.results[f"{label}_ok"] = ok
    for label, body, arguments, data, expected in CHECKS:
        try:
            got: object = candidate.evaluate(candidate.compile(body), arguments, data)
            # A bool must come back as a bool, anything else as a non-bool of equal value.
            ok = (
                expected is not Exception
                and got == expected
                and isinstance(got, bool) == isinstance(expected, bool)
            )
            shown = repr(got)
        except Exception as exc:
            ok = expected is Exception
            shown = f"{type(exc).__name__}"
        candidate.results[f"check {label}"] = ("ok" if ok else "WRONG") + f" ({shown[:40]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--compiles", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    candidates: list[Candidate] = []
    if importlib.util.find_spec("cel") is not None:
        candidates.append(rust_candidate())
    if importlib.util.find_spec("celpy") is not None:
        candidates.extend(celpy_candidates())
    if not candidates:
        raise SystemExit("neither `cel` nor `celpy` is installed")
    for candidate in candidates:
        measure(candidate, args.calls, args.compiles)
    if args.json:
        print(json.dumps({c.name: c.results for c in candidates}))
        return
    width = max(len(c.name) for c in candidates)
    labels = [label for label, *_ in BODIES]
    print(f"{'library':<{width}}  {'compile':>9}  " + "  ".join(f"{lb:>10}" for lb in labels))
    print(f"{'':<{width}}  {'µs':>9}  " + "  ".join(f"{'eval µs':>10}" for _ in labels))
    for c in candidates:
        cells = [
            f"{c.results[f'{lb}_us']:>9.2f}{'' if c.results[f'{lb}_ok'] else '!'}" for lb in labels
        ]
        print(
            f"{c.name:<{width}}  {c.results['compile_us']:>9.1f}  "
            + "  ".join(f"{cell:>10}" for cell in cells)
        )
    print("(! = wrong result or error on that body; its time is then of the error path)")
    print()
    for c in candidates:
        print(c.name)
        for label, *_ in BODIES:
            if f"{label}_error" in c.results:
                print(f"  {label}: raised {c.results[f'{label}_error']}")
        for key, value in c.results.items():
            if key.startswith("check "):
                print(f"  {key[6:]:<22} {value}")


if __name__ == "__main__":
    main()
