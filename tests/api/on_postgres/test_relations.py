"""The relations layer on PostgreSQL: a link, its mirror and their rows at one snapshot,
cardinality, list order and renumbering, rollback of a refused write, cursor paging of links
(tests of ``tests/api/test_entity_relations.py`` and ``tests/api/test_registry.py``, run
unchanged). Racing requests are raced through two replicas in ``tests/api/test_fleet.py``."""

from tests.api.test_entity_relations import (  # noqa: F401  (fixtures and tests, collected here)
    api,
    tenant,
    test_a_mirror_the_schema_refuses_rolls_back_the_whole_write,
    test_all_roles_land_at_one_token,
    test_connect_orders_like_strapi,
    test_create_writes_the_tuple_and_the_mirror_at_one_snapshot,
    test_delete_removes_both_tuples_at_the_returned_token,
    test_deleting_renumbers_the_list,
    test_one_to_one_refuses_a_second_link_on_either_side,
    test_raw_delete_of_a_managed_tuple_removes_the_pair_and_its_rows,
)
from tests.api.test_registry import (  # noqa: F401
    http,
    linked,
    paged,
    t,
    test_deleting_a_link_removes_it_and_its_mirror_at_once,
    test_tightening_cardinality_below_existing_links_is_409_and_changes_nothing,
    test_walking_after_cursors_yields_every_row_once,
)
