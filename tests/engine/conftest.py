"""Fixtures of the engine tests: the store factory the validation-file runner is given."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from api.validate import StoreFactory
from storage.leveldb import LevelDBStore


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    """Fresh LevelDB stores in tmp_path, one directory per call, as `stonetown validate` runs
    each file on a store of its own (the runner closes each one)."""
    numbers = itertools.count(1)
    return lambda: LevelDBStore(tmp_path / f"validate-{next(numbers)}", gc_interval=None)
