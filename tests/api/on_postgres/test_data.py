"""Permify's data API on PostgreSQL: writes with every attribute type at one token, the item
limit, paged reads, repeatable reads at a snap token, deletes by filter (tests of
``tests/api/test_data.py``, run unchanged, on one server whose tenant t1 is made anew for each
test; the item limit's needs a server of its own, so it runs here with one case)."""

from collections.abc import Iterator

import httpx
import pytest

from tests.api import test_data as suite
from tests.api.conftest import Server
from tests.api.support import tuple_json
from tests.api.test_data import (  # noqa: F401  (tests, collected here)
    Api,
    test_a_cursor_handed_to_another_filter_is_a_400,
    test_a_write_at_the_item_limit_succeeds,
    test_a_write_with_one_invalid_item_fails_with_permifys_code_and_writes_nothing,
    test_data_delete_by_both_filters_at_one_token,
    test_data_delete_of_plain_subjects_keeps_usersets,
    test_one_write_holds_tuples_and_every_attribute_type_at_one_token,
    test_paging_at_a_snap_token_is_unaffected_by_writes_between_pages,
    test_read_attributes_walks_pages_seeing_each_attribute_once,
    test_read_relationships_walks_pages_seeing_each_tuple_once,
    test_reads_at_a_snap_token_repeat_after_later_writes_and_deletes,
)

# The suite's fixtures: pytest finds them by their names in this module.
api, attributed, data, full = suite.api, suite.attributed, suite.data, suite.full
small = suite.small


@pytest.fixture
def client(module_server: Server) -> Iterator[httpx.Client]:
    """The module's server, with tenant t1 deleted and created again for each test: a fresh
    tenant as the suite expects, without a database and a server per test."""
    with module_server.client() as http:
        assert http.delete("/v1/tenants/t1").status_code == 200
        created = http.post("/v1/tenants/create", json={"id": "t1", "name": "t1"})
        assert created.status_code == 200, created.text
        yield http


def test_a_write_over_the_item_limit_is_rejected_whole(small: Api) -> None:
    body = {"tuples": [tuple_json(f"doc:{i}#owner@user:a") for i in range(4)]}
    suite.test_a_write_over_the_item_limit_is_rejected_whole(small, "data/write", body)

