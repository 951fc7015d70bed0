"""Shared fixtures: the ``store`` every backend-neutral test runs on, a throwaway PostgreSQL
(``postgres_server``, ``postgres_url``), and where the team's shared material (../shared) lives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.base import Store
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore
from storage.postgres import migrate
from tests.postgres import PostgresServer, PostgresUnavailable, empty_database

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


# -- a throwaway PostgreSQL ------------------------------------------------------------------

POSTGRES_TEMPLATE = "stonetown_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster per test process (so per xdist worker), with a migrated template
    database; skipped, saying why, when PostgreSQL cannot start here, but failed when ``CI`` is
    set, since a CI run must never pass without these tests."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:  # no binaries, or root without a user to run as
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required when CI is set: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        server.start()
        server.execute(f'CREATE DATABASE "{POSTGRES_TEMPLATE}"')
        migrate(server.url(POSTGRES_TEMPLATE))
    except PostgresUnavailable as exc:
        server.destroy()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required when CI is set: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    except BaseException:
        server.destroy()
        raise
    yield server
    server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated database for one test (a copy of the template); dropped after it."""
    name = postgres_server.create_database(template=POSTGRES_TEMPLATE)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def postgres_shared_url(postgres_server: PostgresServer) -> str:
    """One migrated database for the whole session (per xdist worker): see
    ``postgres_empty_url``."""
    return postgres_server.url(postgres_server.create_database(template=POSTGRES_TEMPLATE))


@pytest.fixture
def postgres_empty_url(postgres_shared_url: str) -> str:
    """The session's database, emptied for this test (cheaper than ``postgres_url``'s new
    database); the test must close every store on it before it ends."""
    empty_database(postgres_shared_url)
    return postgres_shared_url
