"""The modules compiled with mypyc (`storage.compiled`): they load compiled when the build
compiled them, all from source when asked or when a source changed since, and answer alike
either way, the deepest checks included, on the main thread and on a worker thread.

The deepest checks run in processes of their own (`tests.compiled_checks`), since they raise
Python's recursion limit and since a C stack overflow ends the process with SIGSEGV.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.types import FRAMES_PER_DEPTH, MAX_DEPTH, RESERVED_FRAMES
from storage.compiled import (
    BUILD,
    FRAME_BYTES,
    GROUP,
    MODULES,
    PURE_ENV,
    REBUILD,
    RECORD,
    UNFINISHED,
    SourceFinder,
    decide,
    loaded_compiled,
    record_of,
    source_path,
    stack_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def test_the_listed_modules_load_compiled_when_the_build_compiled_them() -> None:
    kinds = {m: loaded_compiled(importlib.import_module(m)) for m in MODULES}
    if os.environ.get(PURE_ENV) == "1":
        assert not any(kinds.values()), kinds
        return
    if os.environ.get("CI") and PURE_ENV not in BUILD.reason:  # unless built pure on purpose
        assert BUILD.built, f"CI has a C compiler, yet the build compiled nothing: {BUILD}"
    if BUILD.built:
        # A build that compiled must run compiled: a failed import or a stale source would
        # otherwise pass the whole suite on the sources.
        assert BUILD.compiled, f"compiled, but loading the sources: {BUILD.reason}; {REBUILD}"
        assert all(kinds.values()), kinds
        assert f"{GROUP}__mypyc" in sys.modules
    else:
        assert not any(kinds.values()), kinds


# --- the guard's decision, on a copy of the tree ----------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A copy of the listed sources with a fake extension beside each and a build record that
    says they were compiled from exactly these sources."""
    for module in MODULES:
        source = source_path(module, tmp_path)
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source_path(module), source)
        source.with_name(source.stem + SUFFIX).write_bytes(b"")
    (tmp_path / "storage" / RECORD).write_text(record_of(True, "", MODULES, tmp_path))
    yield tmp_path


def test_an_untouched_build_loads_compiled(tree: Path) -> None:
    build, warning = decide(tree, {})
    assert (build.built, build.compiled, warning) == (True, True, "")


def test_a_source_changed_since_the_build_loads_every_module_from_source(tree: Path) -> None:
    nodes = source_path("engine.nodes", tree)
    nodes.write_text(nodes.read_text() + "\n# edited\n")
    build, warning = decide(tree, {})
    assert (build.built, build.compiled) == (True, False)
    assert "engine/nodes.py changed since it was compiled" in warning
    assert "all or nothing" in warning and "make .venv/.installed-dev" in warning


def test_a_missing_extension_loads_every_module_from_source(tree: Path) -> None:
    source_path("storage.keys", tree).with_name("keys" + SUFFIX).unlink()
    build, warning = decide(tree, {})
    assert not build.compiled
    assert "storage.keys's compiled extension is missing" in warning


def test_pure_python_at_run_time_loads_the_sources_without_a_warning(tree: Path) -> None:
    build, warning = decide(tree, {PURE_ENV: "1"})
    assert (build.built, build.compiled, build.reason, warning) == (
        True, False, f"{PURE_ENV}=1", ""
    )


def test_a_pure_build_loads_the_sources(tree: Path) -> None:
    (tree / "storage" / RECORD).write_text(record_of(False, "no C compiler", MODULES, tree))
    for module in MODULES:  # as the pure build leaves the tree
        source_path(module, tree).with_name(module.rsplit(".")[-1] + SUFFIX).unlink()
    build, warning = decide(tree, {})
    assert (build.built, build.compiled, warning) == (False, False, "")
    assert "no C compiler" in build.reason


def test_extensions_a_failed_build_left_are_not_trusted(tree: Path) -> None:
    # A build that compiles records "unfinished" first, "compiled" once the extensions are
    # built: a failure leaves the earlier build's extensions beside newer sources.
    (tree / "storage" / RECORD).write_text(record_of(False, UNFINISHED, MODULES, tree))
    build, warning = decide(tree, {})
    assert (build.built, build.compiled) == (False, False)
    assert warning.startswith("stale compiled modules (engine.check, ")
    assert UNFINISHED in warning and "make .venv/.installed-dev" in warning


def test_extensions_without_a_build_record_are_not_trusted(tree: Path) -> None:
    (tree / "storage" / RECORD).unlink()
    build, warning = decide(tree, {})
    assert not build.compiled
    assert "no build record" in warning and "engine.check" in warning


def test_the_source_finder_loads_a_listed_module_from_its_py() -> None:
    finder = SourceFinder(MODULES, ROOT)
    spec = finder.find_spec("engine.nodes", None)
    assert spec is not None and spec.origin == str(ROOT / "engine" / "nodes.py")
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    assert finder.find_spec("api.app", None) is None  # not listed: not its business


# --- the same answers, compiled and from source -----------------------------------------------


#: This environment without STONETOWN_PURE_PYTHON (the suite may run with it set).
SHIPPED_ENV = {k: v for k, v in os.environ.items() if k != PURE_ENV}
#: Whether the modules load compiled there: what the build shipped.
SHIPPED = decide(ROOT, SHIPPED_ENV)[0].compiled


def run_checks(*, pure: bool, raised: bool) -> subprocess.Popen[str]:
    env = dict(SHIPPED_ENV)
    if pure:
        env[PURE_ENV] = "1"
    command = [sys.executable, "-m", "tests.compiled_checks", *(["raised"] if raised else [])]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def answers() -> dict[tuple[bool, bool], dict[str, object]]:
    """Each run's document, by (pure, raised); the four processes run at once."""
    runs = {(p, r): run_checks(pure=p, raised=r) for p in (False, True) for r in (False, True)}
    found: dict[tuple[bool, bool], dict[str, object]] = {}
    for key, process in runs.items():
        out, err = process.communicate(timeout=120)
        code = process.returncode
        crash = f" (killed by {signal.Signals(-code).name})" if code < 0 else ""
        assert code == 0, f"pure={key[0]} raised={key[1]}: exit {code}{crash}\n{err[-2000:]}"
        found[key] = json.loads(out)
    return found


@pytest.mark.parametrize("raised", [False, True], ids=["default-limit", "raised-limit"])
def test_pure_python_at_run_time_loads_every_module_from_source(
    answers: dict[tuple[bool, bool], dict[str, object]], raised: bool
) -> None:
    pure, shipped = answers[(True, raised)], answers[(False, raised)]
    assert pure["compiled"] is False
    assert pure["modules"] == dict.fromkeys(MODULES, False)
    assert shipped["compiled"] is SHIPPED
    assert shipped["modules"] == dict.fromkeys(MODULES, SHIPPED)


def test_the_deepest_checks_answer_alike_at_the_default_recursion_limit(
    answers: dict[tuple[bool, bool], dict[str, object]],
) -> None:
    # The shipped configuration: the caps agree, and so does every answer.
    pure, shipped = answers[(True, False)]["results"], answers[(False, False)]["results"]
    assert shipped == pure
    assert isinstance(shipped, dict)
    for name, result in shipped.items():
        assert result["worker"].items() <= result["main"].items(), name
        # The deepest check allowed is answered; one unit deeper is a depth error.
        assert result["main"]["a:cap-1"] == result["main"]["a:cap+0"] == "True", name
        assert result["main"]["a:cap+1"] == "DepthExceeded", name


def test_the_deepest_checks_answer_alike_with_a_raised_recursion_limit(
    answers: dict[tuple[bool, bool], dict[str, object]],
) -> None:
    # From source the cap is MAX_DEPTH (1000 hops); compiled, the C stack may hold fewer
    # nested calls than the raised limit allows, and the cap is lowered instead of crashing.
    pure, shipped = answers[(True, True)]["results"], answers[(False, True)]["results"]
    assert isinstance(pure, dict) and isinstance(shipped, dict)
    assert pure["groups"]["cap"] == pure["folders"]["cap"] == pure["wide_deep"]["cap"] == 1000
    for name, result in shipped.items():
        assert result["worker"].items() <= result["main"].items(), name
        expected = pure[name]
        if result["cap"] == expected["cap"]:
            assert result == expected, name
        else:
            assert SHIPPED and result["cap"] < expected["cap"], name
            relative = ("a:cap-1", "a:cap+0", "a:cap+1")
            assert [result["main"][k] for k in relative] == ["True", "True", "DepthExceeded"]
            assert [expected["main"][k] for k in relative] == ["True", "True", "DepthExceeded"]
    # The simple chains reach MAX_DEPTH compiled too, where the C stack holds 1000 hops of them
    # (an 8 MiB stack does; with an unlimited RLIMIT_STACK glibc gives threads 2 MiB).
    if stack_bytes() // FRAME_BYTES >= RESERVED_FRAMES + MAX_DEPTH * FRAMES_PER_DEPTH:
        assert shipped["groups"]["cap"] == shipped["folders"]["cap"] == MAX_DEPTH
