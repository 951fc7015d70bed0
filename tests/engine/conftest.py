"""Fixtures of the engine tests: the store factories the validation-file runner is given."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from api.validate import StoreFactory
from storage.leveldb import LevelDBStore
from storage.postgres import PostgresStore
from tests.postgres import empty_database


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    """Fresh LevelDB stores in tmp_path, one directory per call, as `stonetown validate` runs
    each file on a store of its own (the runner closes each one)."""
    numbers = itertools.count(1)
    return lambda: LevelDBStore(tmp_path / f"validate-{next(numbers)}", gc_interval=None)


@pytest.fixture
def postgres_store_factory(postgres_shared_url: str) -> StoreFactory:
    """Stores on the session's PostgreSQL database, emptied for each call (the runner uses one
    store at a time and closes it)."""

    def make() -> PostgresStore:
        empty_database(postgres_shared_url)
        return PostgresStore(postgres_shared_url, gc_interval=None)

    return make
