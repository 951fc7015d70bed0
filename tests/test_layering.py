"""Layers depend downward only: api -> engine -> storage, and dsl is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "dsl": {"dsl"},
    "storage": {"storage", "dsl"},
    "engine": {"engine", "storage", "dsl"},
    "api": {"api", "engine", "storage", "dsl"},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_layers_below(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    for path in files:
        upward = _imports(path) - ALLOWED[package]
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"
