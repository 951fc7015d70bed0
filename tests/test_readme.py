"""The README's examples do what it says."""

from __future__ import annotations

import re
from pathlib import Path

from dsl.compiler import load
from dsl.format import format_schema

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_schema_example_compiles_and_formats_to_the_same_schema() -> None:
    blocks = re.findall(r"```perm\n(.*?)```", README, re.DOTALL)
    assert blocks, "README has no ```perm example"
    for block in blocks:
        schema = load(block)
        assert load(format_schema(block)) == schema


def test_readme_names_exactly_the_two_setup_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make (\w+)", quick_start, re.MULTILINE)
    assert commands == ["serve", "test"]
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^serve:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert blocks, "README has no ```python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
