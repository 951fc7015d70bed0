"""Shared fixtures: the ``store`` every backend-neutral test runs on, and where the team's
shared material (../shared) lives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.base import Store
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STONETOWN_SHARED", REPO_ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance" / "permify"
REJECTED = SHARED / "conformance" / "permify-rejected"


def require_shared(path: Path) -> Path:
    """``path`` inside the shared material; when it is absent, skip with the reason, or fail
    when ``CI`` is set, since a CI run without it would pass without having run these tests."""
    if not path.exists():
        reason = (
            f"{path} is absent: the shared material is read from ../shared beside the repo, "
            "never copied; check it out there or point STONETOWN_SHARED at it"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def conformance_files() -> list[Path]:
    return sorted(CONFORMANCE.rglob("*.yaml")) if CONFORMANCE.exists() else []


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend, on real parts only: the reference memory store and LevelDB in tmp_path."""
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    else:
        backend = LevelDBStore(tmp_path / "data", gc_interval=None)
    yield backend
    backend.close()
