"""The README is a front door: short, the two set-up commands, a tour, a map of docs/ and of the
code. Its examples are run by tests/test_docs.py, with those of docs/ and bench/README.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_is_under_200_lines() -> None:
    assert len(README.splitlines()) < 200


def test_readme_names_exactly_the_two_setup_commands() -> None:
    commands = re.findall(r"^make (\w+)", section("Quick start"), re.MULTILINE)
    assert commands == ["serve", "test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^serve:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)


def test_quick_start_says_serve_blocks_and_how_long_the_tests_take() -> None:
    quick_start = section("Quick start")
    assert "in another terminal" in " ".join(quick_start.lower().split())
    assert re.search(r"`make test`[^.]*takes about", quick_start)


def test_readme_maps_every_document() -> None:
    documents = section("Documentation")
    for path in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{path.name})" in documents, f"README's map lacks docs/{path.name}"
    assert "(bench/README.md)" in documents


def test_code_map_says_where_checks_writes_and_errors_happen() -> None:
    code_map = section("Code map")
    for where, path in [
        ("A check is evaluated", "engine/check.py"),
        ("A write becomes durable", "storage/"),
        ("An error becomes an HTTP status", "api/errors.py"),
    ]:
        line = code_map.split(f"**{where}**", 1)[1].split("\n- ", 1)[0]
        assert f"`{path}" in line, f"the code map's {where!r} names no {path}"
