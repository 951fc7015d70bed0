"""The storage layer's exceptions: one tree, each saying what was wrong and what was expected.

Backends translate their driver's exceptions into these at the boundary (plyvel's in
``leveldb/plyvel_errors.py``), so callers above never see a driver type.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by a store."""


class TenantNotFound(StorageError):
    """The tenant does not exist (never created, or deleted)."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} does not exist")
        self.tenant = tenant


class TenantExists(StorageError):
    """Creating a tenant whose id is already taken."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} already exists")
        self.tenant = tenant


class InvalidTenantId(StorageError):
    """A tenant id outside ``^[a-zA-Z0-9_\\-@.:+]{1,128}$``."""


class SchemaNotFound(StorageError):
    """No schema has been written for the tenant, or the named version does not exist."""


class InvalidToken(StorageError):
    """A snap or continuation token that this store did not issue for this query."""


class SnapshotExpired(StorageError):
    """A snap token older than the garbage-collection window: the state it names is gone."""


class TooManyChanges(StorageError):
    """A write with more items than the store's configured maximum."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"a write may hold at most {limit} items; this one has {count}")
        self.count = count
        self.limit = limit


class InvalidFilter(StorageError):
    """A filter that cannot be served: e.g. an empty filter given to a delete."""


class Conflict(StorageError):
    """A transaction's precondition failed (raised by the caller's build function)."""


class SchemaHeadMoved(Conflict):
    """A schema write based on one head found another: ``head`` is the one it found."""

    def __init__(self, tenant: str, expected: str, head: str) -> None:
        super().__init__(
            f"tenant {tenant}: the schema head is {head or 'none'}, not {expected or 'none'}"
        )
        self.head = head


class StoreLocked(StorageError):
    """The data directory is already open (LevelDB's LOCK file is held)."""


class StoreClosed(StorageError):
    """The store was closed; no further reads or writes are possible."""


class DatabaseOutdated(StorageError):
    """The database's tables are older than this release: run the migrations first."""


class StoreUnavailable(StorageError):
    """The database cannot be reached, or did not answer in time; retrying later may work."""
