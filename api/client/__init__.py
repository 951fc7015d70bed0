"""Small synchronous clients of a Stonetown server; the CLI's client commands use them.

``permify`` is the Permify-compatible HTTP API (tenants, schemas, checks, data) through
``Client``; ``records`` is the relations layer's relationship records through ``RecordsClient``.
Both run on ``transport``'s ``Session`` (one connection pool, retries, JSON answers checked
once), and every failure of either arrives as one exception, ``ClientError`` (``errors``): an
error answer carries the server's status, reason, message and field violations; no answer at all
(refused, timed out, a bad URL) has ``status`` None. httpx's exceptions never leave the package.
"""

from api.client.errors import ClientError, Violation
from api.client.permify import (
    READ_PAGE_SIZE,
    Client,
    SchemaText,
    attribute_filter_json,
    tuple_filter_json,
)
from api.client.records import (
    RECORDS_MAX_PAGE_SIZE,
    RECORDS_PAGE_SIZE,
    Action,
    FieldSpec,
    RecordSchema,
    RecordsClient,
    Upserted,
)
from api.client.transport import (
    DEFAULT_URL,
    MAX_RETRIES,
    MAX_RETRY_DELAY,
    RETRY_BASE_DELAY,
    Retry,
)
from storage.base import DEFAULT_TENANT

__all__ = [
    "DEFAULT_TENANT",
    "DEFAULT_URL",
    "MAX_RETRIES",
    "MAX_RETRY_DELAY",
    "READ_PAGE_SIZE",
    "RECORDS_MAX_PAGE_SIZE",
    "RECORDS_PAGE_SIZE",
    "RETRY_BASE_DELAY",
    "Action",
    "Client",
    "ClientError",
    "FieldSpec",
    "RecordSchema",
    "RecordsClient",
    "Retry",
    "SchemaText",
    "Upserted",
    "Violation",
    "attribute_filter_json",
    "tuple_filter_json",
]
