"""Watch on PostgreSQL: every write once, in order, resumable, with the data readable at each
line's token; a deleted tenant ends the stream (tests of ``tests/api/test_watch.py``, run
unchanged)."""

from tests.api.test_watch import (  # noqa: F401  (fixtures and tests, collected here)
    client,
    test_watch_ends_with_an_error_line_when_its_tenant_is_deleted,
    test_watch_resumes_after_a_token_it_sent,
    test_watch_sends_an_attribute_upsert_as_delete_then_create,
    test_watch_sends_each_later_write_as_one_line_in_order,
    test_watch_token_reads_the_data_as_of_that_write,
    writer,
)
