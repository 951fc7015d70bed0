"""Tests needing the shared material (../shared) skip without it on a developer's machine, and
fail under CI, where a run without them would pass having tested less."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, require_shared

NEEDS_SHARED = """
from tests.conftest import CONFORMANCE, require_shared


def test_needs_the_conformance_files():
    require_shared(CONFORMANCE)
"""


def test_absent_shared_material_is_a_skip_outside_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="STONETOWN_SHARED"):
        require_shared(tmp_path / "absent")


def test_absent_shared_material_is_a_failure_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="STONETOWN_SHARED") as caught:
        require_shared(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(caught.value)


def test_present_shared_material_is_returned_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_shared(tmp_path) == tmp_path


def test_a_ci_run_without_the_shared_material_fails(tmp_path: Path) -> None:
    # A whole pytest run, as CI starts it: STONETOWN_SHARED is read when tests.conftest loads.
    (tmp_path / "test_needs_shared.py").write_text(NEEDS_SHARED)
    missing = tmp_path / "no-shared-here"
    env = {
        **os.environ,
        "CI": "true",
        "STONETOWN_SHARED": str(missing),
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout, done.stdout
    assert str(missing / "conformance" / "permify") in done.stdout
