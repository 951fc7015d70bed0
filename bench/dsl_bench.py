"""Parse + compile time of a generated schema: 500 entities x 10 relations/permissions.

Fixed, deterministic input (no randomness): each entity has 5 relations (direct, userset,
parent links) and 5 permissions (unions, intersections, exclusions, parent walks), like the
Google-Docs model repeated. Prints one JSON line; target: parse+compile p50 under 300 ms. The
minimum is printed too: on a shared machine it is the figure least disturbed by other work.

    .venv/bin/python bench/dsl_bench.py [--entities 500] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl.compiler import compile_schema
from dsl.parser import parse


def generate(entities: int) -> str:
    """``entities`` entities of 5 relations + 5 permissions, each linked to the previous one."""
    parts = ["entity user {}", "entity group {\n    relation member @user @group#member\n}"]
    for i in range(entities):
        parent = f"e{i - 1}" if i else "group"
        walk = "parent.share" if i else "parent.member"  # e0's parent is a group
        parts.append(
            f"entity e{i} {{\n"
            "    relation owner @user\n"
            "    relation editor @user @group#member\n"
            "    relation viewer @user @group#member\n"
            "    relation banned @user\n"
            f"    relation parent @{parent}\n"
            f"    permission edit = owner or editor{' or parent.edit' if i else ''}\n"
            f"    permission view = (viewer or edit{' or parent.view' if i else ''}) not banned\n"
            f"    permission share = edit and (owner or {walk})\n"
            "    permission delete = owner not banned\n"
            f"    permission comment = view{' or parent.comment' if i else ''}\n"
            "}"
        )
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    text = generate(args.entities)
    parse_ms: list[float] = []
    compile_ms: list[float] = []
    for _ in range(args.runs + 1):  # the first run warms caches and is dropped
        start = time.perf_counter()
        tree = parse(text)
        parsed = time.perf_counter()
        schema = compile_schema(tree, text)
        done = time.perf_counter()
        parse_ms.append((parsed - start) * 1000)
        compile_ms.append((done - parsed) * 1000)
    parse_ms, compile_ms = parse_ms[1:], compile_ms[1:]
    total = [p + c for p, c in zip(parse_ms, compile_ms, strict=True)]
    members = sum(len(e.relations) + len(e.permissions) for e in schema.entities.values())
    print(
        json.dumps(
            {
                "bench": "dsl",
                "entities": len(schema.entities),
                "members": members,
                "bytes": len(text.encode()),
                "runs": args.runs,
                "parse_ms_p50": round(statistics.median(parse_ms), 1),
                "compile_ms_p50": round(statistics.median(compile_ms), 1),
                "total_ms_p50": round(statistics.median(total), 1),
                "total_ms_min": round(min(total), 1),
                "total_ms_max": round(max(total), 1),
                "target_ms": 300,
            }
        )
    )


if __name__ == "__main__":
    main()
