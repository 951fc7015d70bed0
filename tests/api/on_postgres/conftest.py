"""The API suite's servers, on PostgreSQL: a module's shared server (``module_server``) gets a
database of its own, and every server a test starts (``start_server``, so ``server`` and
``client`` too) gets the test's fresh database (``postgres_url``). The modules here import the
tests they run from the LevelDB suite, unchanged, so both backends answer the same questions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.config import Config
from tests.api.conftest import Server, _Thread
from tests.conftest import POSTGRES_TEMPLATE
from tests.postgres import PostgresServer


@pytest.fixture(scope="module")
def module_server(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    name = postgres_server.create_database(template=POSTGRES_TEMPLATE)
    config = Config(
        data_dir=str(tmp_path_factory.mktemp("unused")),
        port=0,
        access_log=False,
        database_url=postgres_server.url(name),
    )
    thread = _Thread(config)
    yield thread.start()
    thread.stop()
    postgres_server.drop_database(name)


@pytest.fixture
def start_server(
    start_server: Callable[..., Server], postgres_url: str
) -> Callable[..., Server]:
    def start(**fields: Any) -> Server:
        return start_server(**{"database_url": postgres_url, **fields})

    return start
