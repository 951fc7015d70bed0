"""The modules that ship compiled with mypyc, and the import guard that loads them all compiled
or all from their source.

`MODULES` is the one list: `setup.py` reads it at build time and, when a C compiler and mypyc
are there, compiles those modules into C extensions (one shared library,
``storage/compiled__mypyc``, with a small extension per module beside each ``.py``). It also
writes the build record, ``storage/compiled.json``: whether it compiled, and the sha256 of each
source it compiled.

In a checkout installed editable (``pip install -e .``), an extension module sits beside its
``.py`` and Python's import system prefers it, so an edited source would silently keep running
the old compiled code. This module is imported first by ``storage/__init__.py``, and so before
any module of ``storage`` or ``engine`` (``engine/__init__.py`` imports ``storage``). It decides
once per process (`BUILD`) whether the compiled modules may load: only if the build record says
they were compiled from exactly the sources now on disk, each extension is present, and
``STONETOWN_PURE_PYTHON`` is not ``1``. Otherwise it puts `SourceFinder` first on
``sys.meta_path``: the process's one import hook, which loads every listed module from its
``.py``. It is all or nothing because compiled modules call each other natively: a compiled
``engine.check`` with an interpreted ``engine.nodes`` is neither what shipped nor what the
sources say. A source changed since the build is named in one `StaleBuild` warning, with how to
rebuild.

Compiled code also runs differently in one way that matters: its calls nest on the C stack,
which Python's recursion limit does not watch (mypyc checks no limit), where Python 3.11's own
calls nest on the heap. Evaluation recurses once per unit of depth, and the engine caps the
depth a request gets from how many nested calls it may make (`Engine.depth_cap`): Python's
recursion limit, and, when compiled, `MAX_NESTED_CALLS` too, what the smallest stack a check
may run on holds (`stack_bytes`). At the default recursion limit the first is the lower; a
raised limit no longer lets a deep check overflow the C stack.

Concurrency: the decision is made while the import lock holds ``storage``'s import; afterwards
`BUILD` and the finder are immutable.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

#: The check's hot path, compiled with mypyc: the facade every request passes (``engine.engine``;
#: cached checks 300k -> 420k a second), evaluation, its keys and reads, and the LevelDB
#: reader with its in-memory copy and decoding. Modules that call each other often belong in
#: one build (mypyc calls between them natively); ``engine.program`` and ``engine.lookup``
#: compile too, with no gain measured. Each must compile (`setup.py`) and keep the suite
#: passing compiled; mypyc's classes cannot be weakly referenced (the LevelDB store tracks a
#: `storage.snapshot.Pin` per reader instead of the reader).
MODULES: tuple[str, ...] = (
    "engine.check",
    "engine.cycles",
    "engine.engine",
    "engine.keys",
    "engine.nodes",
    "engine.reads",
    "storage.keys",
    "storage.leveldb.history",
    "storage.leveldb.reader",
    "storage.leveldb.resident",
    "storage.leveldb.subjects",
)
#: mypyc's group: the shared library ``storage/compiled__mypyc`` holding the compiled code.
GROUP = "storage.compiled"
#: The build record `setup.py` writes beside this module (never committed).
RECORD = "compiled.json"
#: Set to ``1`` at build time, the build compiles nothing; at run time, the sources load.
PURE_ENV = "STONETOWN_PURE_PYTHON"
#: The build record's reason while a build that compiles has not finished (or has failed).
UNFINISHED = "the build did not finish"
#: How to rebuild, for the warning: the Makefile's targets reinstall when a source changes.
REBUILD = "rebuild with `make .venv/.installed-dev` (or `pip install -e .`)"

#: C stack one nested call of compiled evaluation may take: about 300 bytes measured (a closure
#: called through its wrapper; tests/test_compiled.py runs the deepest checks), doubled for the
#: callers' frames and margin.
FRAME_BYTES = 640
#: A new thread's stack when nothing sets one: glibc's default when RLIMIT_STACK is unlimited;
#: CPython's own on macOS; musl's (and any other C library's, to be safe).
GLIBC_UNLIMITED_THREAD_STACK = 2 * 1024 * 1024
MACOS_THREAD_STACK = 16 * 1024 * 1024
OTHER_THREAD_STACK = 128 * 1024

#: Where the packages are: this file is ``<root>/storage/compiled.py``.
ROOT = Path(__file__).resolve().parents[1]


class StaleBuild(UserWarning):
    """The compiled modules do not match their sources; the sources are loaded instead."""


@dataclass(frozen=True, slots=True)
class Build:
    """What this process loads. ``built``: the install compiled `MODULES`; ``compiled``: they
    load compiled here; ``reason``: why not, when they load from source ("" when compiled)."""

    built: bool
    compiled: bool
    reason: str


def source_path(module: str, root: Path = ROOT) -> Path:
    """The ``.py`` of a listed module."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(module: str, root: Path = ROOT) -> Path | None:
    """The compiled extension beside a listed module's ``.py``, if there is one."""
    base = root.joinpath(*module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.exists():
            return candidate
    return None


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_of(compiled: bool, reason: str, modules: Sequence[str], root: Path) -> str:
    """The build record's text (written by `setup.py`): the sources' digests when compiled."""
    sources = {m: digest(source_path(m, root)) for m in modules} if compiled else {}
    return json.dumps({"compiled": compiled, "reason": reason, "sources": sources}, indent=1)


def decide(root: Path = ROOT, environ: dict[str, str] | None = None) -> tuple[Build, str]:
    """Whether `MODULES` may load compiled from ``root``; and the warning to give, if any."""
    env = os.environ if environ is None else environ
    try:
        record = json.loads((root / "storage" / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        record = {"compiled": False, "reason": "no build record", "sources": {}}
    built = bool(record.get("compiled"))
    if env.get(PURE_ENV) == "1":
        return Build(built, False, f"{PURE_ENV}=1"), ""
    if not built:
        # A pure build removes the extensions beside the sources; any left are an earlier
        # build's, which a failed build (or none) did not replace.
        leftover = [m for m in MODULES if extension_path(m, root) is not None]
        reason = f"the build compiled nothing ({record.get('reason', '')})"
        warning = (
            f"stale compiled modules ({', '.join(leftover)}): {record.get('reason', '')}; "
            f"loading the sources; {REBUILD}"
            if leftover
            else ""
        )
        return Build(False, False, reason), warning
    sources: dict[str, str] = record.get("sources", {})
    for module in MODULES:
        source = source_path(module, root)
        if module not in sources:
            reason = f"{module} is not in the build"
        elif extension_path(module, root) is None:
            reason = f"{module}'s compiled extension is missing"
        elif digest(source) != sources[module]:
            reason = f"{source.relative_to(root)} changed since it was compiled"
        else:
            continue
        return Build(True, False, reason), (
            f"stale compiled modules: {reason}; loading every compiled module from its "
            f"source instead (all or nothing); {REBUILD}"
        )
    return Build(True, True, ""), ""


class SourceFinder:
    """Loads each listed module from its ``.py``, ahead of the compiled extension beside it: a
    meta path finder by its `find_spec` (importing ``importlib.abc`` would cost every process
    9 ms)."""

    def __init__(self, modules: Sequence[str], root: Path) -> None:
        self._paths = {m: source_path(m, root) for m in modules}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._paths.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def loaded_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension."""
    origin = getattr(module, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def stack_bytes() -> int:
    """The smallest stack a check may run on in this process: the main thread's (its
    RLIMIT_STACK) and a new worker thread's (`threading.stack_size`, else the platform's
    default, which glibc takes from RLIMIT_STACK)."""
    try:
        import resource  # noqa: PLC0415  (Unix only)

        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
        main = None if soft == resource.RLIM_INFINITY or soft <= 0 else soft
    except (ImportError, OSError, ValueError):
        main = None
    thread = threading.stack_size()
    if not thread:
        if sys.platform == "darwin":
            thread = MACOS_THREAD_STACK
        elif sys.platform.startswith("linux") and _glibc():
            thread = main or GLIBC_UNLIMITED_THREAD_STACK
        else:
            thread = OTHER_THREAD_STACK
    return thread if main is None else min(main, thread)


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _guard() -> Build:
    build, warning = decide()
    if not build.compiled:
        already = [m for m in MODULES if m in sys.modules]
        assert not already, f"{already} imported before the compiled-modules guard"
        sys.meta_path.insert(0, SourceFinder(MODULES, ROOT))
    if warning:
        warnings.warn(warning, StaleBuild, stacklevel=2)
    return build


#: This process's decision, made once, at the first import of ``storage`` (`setup.py` loads this
#: file under another name for `MODULES` alone, and must not be guarded).
BUILD = _guard() if __name__ == "storage.compiled" else Build(False, False, "not the package")
#: The most nested calls evaluation may make here besides what Python's recursion limit allows:
#: unbounded from source (Python's frames are on the heap), what the C stack holds compiled.
MAX_NESTED_CALLS = stack_bytes() // FRAME_BYTES if BUILD.compiled else sys.maxsize
