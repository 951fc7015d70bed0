"""Permify's data API on PostgreSQL: writes with every attribute type at one token, the item
limit, paged reads, repeatable reads at a snap token, deletes by filter (tests of
``tests/api/test_data.py``, run unchanged; each starts a server on a fresh database, so the
parametrised ones run here with one case each)."""

from tests.api import test_data as suite
from tests.api.support import tuple_json
from tests.api.test_data import (  # noqa: F401  (tests, collected here)
    Api,
    test_a_cursor_handed_to_another_filter_is_a_400,
    test_a_write_at_the_item_limit_succeeds,
    test_data_delete_by_both_filters_at_one_token,
    test_data_delete_of_plain_subjects_keeps_usersets,
    test_one_write_holds_tuples_and_every_attribute_type_at_one_token,
    test_paging_at_a_snap_token_is_unaffected_by_writes_between_pages,
    test_reads_at_a_snap_token_repeat_after_later_writes_and_deletes,
)

# The suite's fixtures: pytest finds them by their names in this module.
api, attributed, data, full = suite.api, suite.attributed, suite.data, suite.full
small = suite.small


def test_a_write_over_the_item_limit_is_rejected_whole(small: Api) -> None:
    body = {"tuples": [tuple_json(f"doc:{i}#owner@user:a") for i in range(4)]}
    suite.test_a_write_over_the_item_limit_is_rejected_whole(small, "data/write", body)


def test_read_relationships_walks_pages_seeing_each_tuple_once(data: Api) -> None:
    suite.test_read_relationships_walks_pages_seeing_each_tuple_once(
        data, 2, {}, set(suite.DATA)
    )


def test_read_attributes_walks_pages_seeing_each_attribute_once(attributed: Api) -> None:
    suite.test_read_attributes_walks_pages_seeing_each_attribute_once(attributed, 2)
