"""Garbage collection on PostgreSQL: per tenant, move the horizon, then delete what it hides.

The horizon of a tenant moves to the newest revision committed at least ``gc_window`` seconds
ago (commit times are in ``stonetown_revisions``), never past the tenant's head, nor past a
reader this process holds. Readers asking for a revision below it are refused with
SnapshotExpired. Then the versions deleted at or before the horizon go (one statement per
table, through the partial indexes on ``deleted``), and the revision rows below it.

Concurrency: no lock on the tenant row is needed. A write only ever sets ``deleted`` of a live
version to a revision above the head, which is above any horizon, so a collection and a write
never touch the same rows. The horizon is raised with ``GREATEST``, so collections running on
several replicas at once only repeat each other's work. Inside this process the horizon moves
under the store's pin lock, so a reader being opened cannot slip below it; readers held by
other processes are protected by the window alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.base import GCStats, Revision

if TYPE_CHECKING:
    from storage.postgres.store import PostgresStore


def collect_garbage(store: PostgresStore, now: float | None) -> GCStats:
    """One pass over every tenant; the stats report the highest horizon set."""
    store._check_open()
    db = store._db
    cutoff = (store._clock() if now is None else now) - store._gc_window
    removed = 0
    highest = 0
    for pk, head, horizon in db.rows(
        "SELECT pk, revision, horizon FROM stonetown_tenants WHERE live ORDER BY id"
    ):
        row = db.one(
            "SELECT max(revision) FROM stonetown_revisions WHERE tenant = %s"
            " AND revision >= %s AND committed_at <= %s",
            (pk, horizon, cutoff),
        )
        candidate = horizon if row is None or row[0] is None else int(row[0])
        with store._pin_lock:
            # A shared latest reader of an older revision pins nothing anyone asked for.
            for tenant, latest in list(store._latest.items()):
                if latest._pk == pk and latest._revision < head:
                    store._latest.pop(tenant, None)
            # Nor do the readers kept to share among requests naming one snap token.
            for key in [k for k in store._at_tokens if k[0] == pk]:
                del store._at_tokens[key]
            pinned = [r._revision for r in list(store._readers) if r._pk == pk]
            target = max(horizon, min([candidate, head, *pinned]))
            target = max(target, store._local_horizons.get(pk, 0))
            store._local_horizons[pk] = target
            if target > horizon:
                db.rows(
                    "UPDATE stonetown_tenants SET horizon = GREATEST(horizon, %s) WHERE pk = %s"
                    " RETURNING horizon",
                    (target, pk),
                )
        highest = max(highest, target)
        with db.transaction(timeout=False, pipeline=False) as conn:
            for table in ("stonetown_tuples", "stonetown_attributes"):
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE tenant = %s AND deleted <= %s",
                    (pk, target),
                )
                removed += max(cur.rowcount, 0)
            conn.execute(
                "DELETE FROM stonetown_revisions WHERE tenant = %s AND revision < %s",
                (pk, target),
            )
            conn.execute(
                "UPDATE stonetown_revisions SET changes = NULL WHERE tenant = %s AND revision = %s",
                (pk, target),
            )
    return GCStats(Revision(highest), removed)
