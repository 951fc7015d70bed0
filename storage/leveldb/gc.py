"""Garbage collection: removing the versions no reader inside the retention window can see.

A collection first moves the horizon: the newest revision committed at least ``gc_window``
seconds ago, but never past the oldest revision a live reader holds, nor past the published
latest revision. Readers asking for a revision below the horizon are refused with
SnapshotExpired, so no reader ever sees a half-collected state. It then trims, tenant by tenant,
every history marked dead at or below the horizon, drops the change-log entries and the revision
log below it, and reports how many versions went.

Concurrency: the horizon moves under the store's pin lock (so a reader being opened cannot slip
below it); each chunk of trimming runs under the write lock, since a write may be appending to
the same histories; reads never wait. The store runs it every ``gc_interval`` seconds
(``storage.gc_loop``).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from storage import keys
from storage.base import GCStats, Revision
from storage.keys import HISTORY, rev8
from storage.leveldb.history import (
    attribute_versions,
    trim_attribute_history,
    trim_tuple_history,
)

if TYPE_CHECKING:
    from storage.leveldb.store import LevelDBStore


_GC_CHUNK = 1_000


def collect_garbage(store: LevelDBStore, now: float | None) -> GCStats:
    """One collection pass over every tenant of ``store``; ``now`` defaults to its clock."""
    store._check_open()
    db = store._db
    cutoff_ns = int(((store._clock() if now is None else now) - store._gc_window) * 1e9)
    candidate = store._horizon
    for key, value in db.iterator(
        start=keys.REVISIONS + rev8(store._horizon), stop=keys.prefix_end(keys.REVISIONS)
    ):
        if keys.revision_of(value[:8]) > cutoff_ns:
            break
        candidate = keys.revision_of(key[len(keys.REVISIONS) :])
    with store._pin_lock:
        # The shared latest readers of older revisions pin nothing anyone asked for.
        for tenant, latest in list(store._latest_readers.items()):
            if latest._revision != store._revision:
                del store._latest_readers[tenant]
        pinned = [pin.revision for pin in list(store._pins)]
        # Never past the published latest revision: a batch already in the revision log
        # may not be visible to readers yet.
        horizon = max(store._horizon, min([candidate, store._revision, *pinned]))
        if horizon > store._horizon:
            db.put(keys.HORIZON_KEY, rev8(horizon), sync=store._sync)
            store._horizon = horizon
    removed = 0
    stop = rev8(horizon + 1)
    for tp in list(store._tenants.values()):
        removed += _collect_tenant(store, tp, stop)
        store._delete_range(tp + keys.CHANGES, tp + keys.CHANGES + stop)
    store._delete_range(keys.REVISIONS, keys.REVISIONS + rev8(horizon))
    return GCStats(Revision(horizon), removed)


def _collect_tenant(store: LevelDBStore, tp: bytes, stop: bytes) -> int:
    """Trim every history the tenant's dead-version marks name below ``stop``; each chunk runs
    under the write lock, since a write may be appending to the same histories."""
    db = store._db
    dead = tp + keys.DEAD
    horizon = rev8(keys.revision_of(stop) - 1)
    removed = 0
    start = dead
    while True:
        with store._locked():
            chunk = list(
                itertools.islice(
                    db.iterator(start=start, stop=dead + stop, include_value=False),
                    _GC_CHUNK,
                )
            )
            if not chunk:
                return removed
            start = chunk[-1] + b"\x00"
            trimmed: set[bytes] = set()
            with db.write_batch(sync=store._sync) as batch:
                for key in chunk:
                    kind, body = key[len(dead) + 8 : len(dead) + 9], key[len(dead) + 9 :]
                    batch.delete(key)
                    hkey = tp + kind + body + HISTORY
                    if hkey in trimmed:
                        continue
                    history = db.get(hkey) or b""
                    if kind == keys.FORWARD:
                        kept = trim_tuple_history(history, horizon)
                        removed += (len(history) - len(kept)) // 16
                        rkey = (
                            tp
                            + keys.REVERSE
                            + keys.reverse_body(keys.tuple_from_forward(body))
                            + HISTORY
                        )
                        _put_or_delete(batch, rkey, kept)
                    else:
                        kept = trim_attribute_history(history, horizon)
                        removed += sum(1 for _ in attribute_versions(history)) - sum(
                            1 for _ in attribute_versions(kept)
                        )
                    _put_or_delete(batch, hkey, kept)
                    trimmed.add(hkey)


def _put_or_delete(batch: Any, key: bytes, value: bytes) -> None:
    if value:
        batch.put(key, value)
    else:
        batch.delete(key)
