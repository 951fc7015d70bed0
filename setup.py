"""Builds Stonetown, compiling the check's hot modules with mypyc when it can.

The modules are `storage.compiled.MODULES` (the one list; read here from the file, since the
package is not importable while it is being built). They are compiled when a C compiler and
Python's headers are found and mypyc imports (`[build-system] requires` pins mypy, which
carries it), unless ``STONETOWN_PURE_PYTHON=1`` is set; otherwise the build is the plain
pure-Python package. Either way the build writes ``storage/compiled.json``, the record the
import guard (`storage.compiled`) checks the sources against.

mypyc runs when the extensions are built, not when this file is read: a pip build reads it
three times (requirements, metadata, build).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _guard_module() -> ModuleType:
    """`storage/compiled.py` loaded on its own (it imports only the standard library)."""
    path = ROOT / "storage" / "compiled.py"
    spec = importlib.util.spec_from_file_location("_stonetown_compiled", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


GUARD = _guard_module()


def why_pure() -> str:
    """Why this build compiles nothing, or "" when it compiles."""
    if os.environ.get(GUARD.PURE_ENV) == "1":
        return f"{GUARD.PURE_ENV}=1 at build time"
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "Python's C headers (Python.h) are not installed"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) on PATH"
    return ""


PURE = why_pure()


def source_files() -> list[str]:
    return [str(GUARD.source_path(m, ROOT).relative_to(ROOT)) for m in GUARD.MODULES]


def remove_stale_extensions() -> None:
    """Delete the extensions an earlier editable build left beside sources this build does not
    compile (a module taken off the list, or every one in a pure build): Python would import
    them ahead of the sources, and the import guard watches the listed modules only."""
    keep = set() if PURE else {*GUARD.MODULES, f"{GUARD.GROUP}__mypyc"}
    for package in ("dsl", "storage", "engine", "api"):
        for path in (ROOT / package).rglob("*"):
            name = path.name
            suffix = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
            if suffix is None or not path.is_file():
                continue
            parts = path.relative_to(ROOT).parent.parts
            if ".".join([*parts, name.removesuffix(suffix)]) not in keep:
                path.unlink()


def write_record(package_root: Path, compiled: bool, reason: str) -> None:
    path = package_root / "storage" / GUARD.RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GUARD.record_of(compiled, reason, GUARD.MODULES, ROOT), encoding="utf-8")


class BuildRecord(build_py):
    """Also writes the build record: into the checkout for an editable install, beside the
    built package otherwise. A build that compiles runs this first, and records "compiled"
    only once the extensions are built (`MypycBuild`): until then, and for good if compiling
    fails, the extensions an earlier build left are not trusted."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            remove_stale_extensions()
        target = ROOT if self.editable_mode else Path(self.build_lib)
        write_record(target, False, PURE or GUARD.UNFINISHED)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs.append(str(Path(self.build_lib) / "storage" / GUARD.RECORD))
        return outputs


class MypycBuild(build_ext):
    """Generates the C code with mypyc when the extensions are about to be built."""

    def finalize_options(self) -> None:
        from mypyc.build import mypycify  # noqa: PLC0415  (absent from a pure build)

        # mypy follows the compiled modules' imports into the rest of the package, whose errors
        # are `make lint`'s to report, and into dependencies the isolated build environment
        # lacks (typed as Any there). The C code stays in build/: an unchanged module is not
        # compiled again.
        extensions: list[Any] = mypycify(
            [*source_files(), "--follow-imports=silent", "--ignore-missing-imports"],
            group_name=GUARD.GROUP,
            target_dir=str(ROOT / "build" / "mypyc"),
        )
        self.distribution.ext_modules = extensions
        super().finalize_options()

    def run(self) -> None:
        super().run()
        write_record(ROOT if self.inplace else Path(self.build_lib), True, "")


options: dict[str, Any] = {"cmdclass": {"build_py": BuildRecord}}
if not PURE:
    # A placeholder that makes setuptools run build_ext (and tag the wheel for this platform);
    # MypycBuild replaces it with mypyc's extensions when build_ext runs.
    options["ext_modules"] = [Extension(f"{GUARD.GROUP}__mypyc", sources=[])]
    options["cmdclass"]["build_ext"] = MypycBuild
setup(**options)
