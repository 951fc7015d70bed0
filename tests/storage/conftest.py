"""The ``store`` fixture: every conformance test runs on each backend, on real parts only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.base import Store
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore()
    else:
        backend = LevelDBStore(tmp_path / "data", gc_interval=None)
    yield backend
    backend.close()
