"""What every backend's ``SnapshotReader`` holds alike: the tenant and revision it is pinned to,
and the snap token that names that revision.

Concurrency: immutable once made, so shared between threads freely. Its fields are plain slots,
which a backend's point reads use as their own: sharing them costs those reads no call.

A store keeps a weak reference to each reader it opened, so that garbage collection keeps the
revisions they read: the reader itself (the PostgreSQL and memory readers), or the `Pin` that
only the reader holds (the LevelDB reader, compiled with mypyc, whose classes can be neither
weakly referenced nor subclasses of this interpreted one).
"""

from __future__ import annotations

from storage import tokens
from storage.base import Revision, SnapToken, TenantId


class PinnedReader:
    """The base of a backend's reader: one tenant at one revision of the store ``store_id``."""

    # A store keeps its open readers in a WeakSet: the revisions it must keep are theirs.
    __slots__ = ("__weakref__", "_revision", "_store_id", "_tenant")

    def __init__(self, store_id: bytes, tenant: TenantId, revision: Revision) -> None:
        self._store_id = store_id
        self._tenant = tenant
        self._revision = revision

    @property
    def tenant(self) -> TenantId:
        return self._tenant

    @property
    def revision(self) -> Revision:
        return self._revision

    @property
    def token(self) -> SnapToken:
        return tokens.encode_snap(self._store_id, self._revision)

    @property
    def schema_head(self) -> str | None:
        """None: an embedded store answers ``Store.schema_head`` from memory."""
        return None

    #: Whether `subject_set` answers from memory (`SnapshotReader.reads_in_memory`).
    reads_in_memory = False


class Pin:
    """The revision a reader holds, for a store whose readers cannot be weakly referenced: the
    store keeps a weak reference to the pin and the reader the only strong one, so the pin lives
    exactly as long as its reader."""

    __slots__ = ("__weakref__", "revision")

    def __init__(self, revision: Revision) -> None:
        self.revision = revision
