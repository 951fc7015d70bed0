"""Layers depend downward only: api -> engine -> storage, and dsl is a leaf. Inside the layers,
modules keep apart too: the core engine knows nothing of the relations layer built on it, the
engine and the routes know the Store interface and never a backend, and the Permify routes
never reach into the relations layer."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "dsl": {"dsl"},
    "storage": {"storage", "dsl"},
    "engine": {"engine", "storage", "dsl"},
    "api": {"api", "engine", "storage", "dsl"},
}
BACKENDS = ("storage.leveldb", "storage.memory")
PERMIFY_ROUTES = ("data", "permissions", "schemas", "tenants", "watch", "bundles", "meta")


def module_name(path: Path) -> str:
    """``engine/relations/model.py`` -> ``engine.relations.model``; a package's
    ``__init__.py`` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, as absolute dotted names: ``import a.b as c`` gives
    ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule); relative
    imports are resolved against the module's package."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                assert len(base) == len(package) - (node.level - 1), (
                    f"{path.relative_to(ROOT)}: a relative import climbs above the top package"
                )
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def reaches(imports: set[str], target: str) -> list[str]:
    """The imports that are ``target`` or inside it."""
    return sorted(i for i in imports if i == target or i.startswith(target + "."))


def modules(*folders: str) -> list[Path]:
    files = [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]
    assert files, f"{folders} hold no modules"
    return files


def inside(path: Path, *prefixes: str) -> bool:
    """Whether ``path`` is one of the modules ``prefixes`` name: ``api/transfer`` is
    ``api/transfer.py`` or anything in a package ``api/transfer/``."""
    rel = path.relative_to(ROOT).with_suffix("").as_posix()
    return any(rel == p or rel.startswith(p + "/") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    """Modules under ``folders`` (but not under ``exempt``) import nothing of ``forbidden``."""

    name: str
    folders: tuple[str, ...]
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()
    only: tuple[str, ...] = ()  # when given, just these modules of ``folders``

    def breaches(self) -> list[str]:
        found = []
        for path in modules(*self.folders):
            if inside(path, *self.exempt) or (self.only and not inside(path, *self.only)):
                continue
            imports = imported(path)
            for target in self.forbidden:
                hits = reaches(imports, target)
                if hits:
                    found.append(f"{path.relative_to(ROOT)} imports {', '.join(hits)}")
        return found


RULES = [
    Rule(
        "the core engine knows nothing of the relations layer",
        ("engine",),
        ("engine.relations",),
        exempt=("engine/relations",),
    ),
    Rule(
        "storage and dsl know nothing of the relations layer",
        ("storage", "dsl"),
        ("engine.relations",),
    ),
    Rule("the engine reads through the Store interface, never a backend", ("engine",), BACKENDS),
    Rule("routes use the Store interface, never a backend", ("api/routes",), BACKENDS),
    Rule(
        "the Permify routes and transfer know nothing of the relations layer",
        ("api",),
        ("engine.relations",),
        only=(*(f"api/routes/{route}" for route in PERMIFY_ROUTES), "api/transfer"),
    ),
    Rule(
        "the gRPC API uses the Store interface and knows nothing of the relations layer",
        ("api/grpc",),
        (*BACKENDS, "engine.relations"),
    ),
    Rule(
        # So building an app never opens a gRPC port, and other commands never load grpc.
        "only api/grpc and the serve command know gRPC",
        ("api",),
        ("grpc", "grpc_health", "grpc_reflection", "api.grpc"),
        exempt=("api/grpc", "api/cli/serve"),
    ),
]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_layers_below(package: str) -> None:
    for path in modules(package):
        tops = {name.split(".")[0] for name in imported(path)} & set(ALLOWED)
        upward = tops - ALLOWED[package]
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_modules_keep_apart_inside_the_layers(rule: Rule) -> None:
    assert rule.breaches() == [], rule.name


def test_the_rules_name_modules_that_exist() -> None:
    # A rule about a module that was renamed away would pass for ever.
    for prefix in (*(f"api/routes/{route}" for route in PERMIFY_ROUTES), "api/transfer"):
        assert any(inside(path, prefix) for path in modules("api")), f"{prefix} is gone"
    for backend in BACKENDS:
        assert any(module_name(path) == backend for path in modules("storage")), backend
    assert any(inside(path, "engine/relations") for path in modules("engine"))


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("engine/check.py", "import engine.relations.model as m", {"engine.relations.model"}),
        ("engine/check.py", "from engine import relations", {"engine", "engine.relations"}),
        (
            "engine/check.py",
            "from .relations import model",
            {"engine.relations", "engine.relations.model"},
        ),
        (
            "engine/sub/__init__.py",
            "from ..relations.model import now",
            {"engine.relations.model", "engine.relations.model.now"},
        ),
        ("engine/sub/x.py", "from .. import relations", {"engine", "engine.relations"}),
        (
            "api/routes/data.py",
            "from ...storage import leveldb as db",
            {"storage", "storage.leveldb"},
        ),
        (
            "engine/check.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from storage.memory import MemoryStore",
            {"typing", "typing.TYPE_CHECKING", "storage.memory", "storage.memory.MemoryStore"},
        ),
    ],
    ids=[
        "import-as",
        "from-package-import-module",
        "relative",
        "relative-from-init",
        "relative-parent",
        "relative-two-up-as",
        "type-checking",
    ],
)
def test_every_import_form_is_seen(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    source: str,
    expected: set[str],
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n")
    assert imported(path) == expected
