"""Permify's permission API on PostgreSQL: checks, snapshots, schema versions, bulk checks,
expand and the lookups with their pages and streams (tests of ``tests/api/test_permissions.py``,
run unchanged)."""

from tests.api.test_permissions import (  # noqa: F401  (fixtures and tests, collected here)
    chain,
    client,
    docs,
    library,
    test_bulk_check_honours_the_snap_token_for_every_item,
    test_check_answers_as_the_data_says,
    test_check_at_an_older_snap_token_answers_as_of_then,
    test_check_uses_the_request_context,
    test_check_uses_the_schema_version_asked_for,
    test_expand_returns_permifys_tree,
    test_lookup_entity_pages_give_each_id_exactly_once,
    test_lookup_entity_stream_resumes_from_a_continuous_token,
    test_lookup_subject_pages_give_each_id_exactly_once,
    test_permission_endpoints_name_a_bad_snap_token,
    test_subject_permission_lists_every_permission,
)
