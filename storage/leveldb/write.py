"""One write: the LevelDB batch that applies a ``Changes`` at the next revision.

Everything a write does lands in one ``WriteBatch``: deleted tuples and attributes move from
their live keys into their histories (with a dead-version mark for garbage collection), created
ones get live keys, new tuple kinds are noted, records and claims are put or deleted, and the
change log and revision log get their entries. So a crash leaves the write wholly present or
wholly absent. Deletes are judged against the state before the write and applied first.

Concurrency: the caller holds the store's write lock; the new revision becomes visible to new
readers only once the batch is in LevelDB and the store's latest revision moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage import keys, tokens
from storage.base import Changes, Revision, SnapToken, TenantId, Tuple
from storage.keys import HISTORY, component, components, rev8
from storage.leveldb.changelog import encode_changes
from storage.leveldb.history import decode_attribute, encode_value, retired_attribute
from storage.leveldb.reader import LevelDBReader
from storage.leveldb.resident import Delta

if TYPE_CHECKING:
    from storage.leveldb.store import LevelDBStore


def apply_changes(store: LevelDBStore, tp: bytes, tenant: str, changes: Changes) -> SnapToken:
    """Write ``changes`` to tenant ``tp`` in one batch at the next revision, then publish that
    revision; the caller holds the write lock."""
    changes.check(store._max_write_items)
    db = store._db
    get = db.get
    revision = store._revision + 1
    rb = rev8(revision)
    batch = db.write_batch(sync=store._sync)
    put = batch.put
    with store._write_errors:
        writes = dict.fromkeys(changes.write_tuples)
        deletes = dict.fromkeys(t for t in changes.delete_tuples if t not in writes)
        if changes.delete_tuple_filters:
            before = LevelDBReader(store, tp, TenantId(tenant), Revision(store._revision))
            for flt in changes.delete_tuple_filters:
                for t in before.iter_tuples(flt):
                    if t not in writes:
                        deletes[t] = None
        fwd = tp + keys.FORWARD
        rev = tp + keys.REVERSE
        bodies = []
        gone: list[Tuple] = []
        for t in deletes:
            body = keys.forward_body(t)
            created = get(fwd + body)
            if created is None:
                continue
            gone.append(t)
            history = (get(fwd + body + HISTORY) or b"") + created + rb
            rbody = keys.reverse_body(t)
            batch.delete(fwd + body)
            batch.delete(rev + rbody)
            put(fwd + body + HISTORY, history)
            put(rev + rbody + HISTORY, history)
            put(keys.dead_key(tp, revision, keys.FORWARD, body), b"")
            bodies.append(body)
        deleted_tuples = sorted(bodies)
        attr_deleted: list[tuple[bytes, bytes]] = []
        attr_created: list[tuple[bytes, bytes]] = []

        attr_writes = {a.key: a for a in changes.write_attributes}
        attr_deletes = dict.fromkeys(k for k in changes.delete_attributes if k not in attr_writes)
        if changes.delete_attribute_filters:
            before = LevelDBReader(store, tp, TenantId(tenant), Revision(store._revision))
            for aflt in changes.delete_attribute_filters:
                for a in before.iter_attributes(aflt):
                    if a.key not in attr_writes:
                        attr_deletes[a.key] = None
        apfx = tp + keys.ATTRIBUTES
        for k in attr_deletes:
            body = components(k)
            current = get(apfx + body)
            if current is not None:
                _retire_attribute(db, batch, tp, body, current, revision=revision)
                batch.delete(apfx + body)
                attr_deleted.append((body, current))

        created_tuples: list[bytes] = []
        new: list[Tuple] = []
        forward_body, reverse_body = keys.forward_body, keys.reverse_body
        add = created_tuples.append
        # In key order: LevelDB's lookups and inserts are cheaper with locality.
        for body, t in sorted([(forward_body(t), t) for t in writes]):
            key = fwd + body
            if get(key) is None:
                put(key, rb)
                put(rev + reverse_body(t), rb)
                add(body)
                new.append(t)

        known = store._tenant_kinds(tenant, tp)
        new_kinds = {(t[0], t[2], t[3], t[5]) for t in writes} - known
        for kind in new_kinds:
            put(tp + keys.KINDS + components(kind), b"")

        for k, a in attr_writes.items():
            body = components(k)
            payload = encode_value(a)
            current = get(apfx + body)
            if current is not None:
                old = current[8:]
                if old == payload or decode_attribute(list(k), old).same_value(a):
                    continue
                _retire_attribute(db, batch, tp, body, current, revision=revision)
                attr_deleted.append((body, current))
            put(apfx + body, rb + payload)
            attr_created.append((body, rb + payload))

        for keyspace, parts in changes.delete_records:
            batch.delete(keys.record_prefix(tp, keyspace, parts))
        for record in changes.put_records:
            put(keys.record_prefix(tp, record.keyspace, record.key), record.value)
        if changes.delete_claims or changes.put_claims:
            _apply_claims(db, batch, tp, tenant, changes)

        log = encode_changes(deleted_tuples, attr_deleted, created_tuples, attr_created)
        if log:
            put(keys.change_key(tp, revision), log)
        now_ns = max(store._now_ns(), store._last_commit_ns)
        put(keys.REVISIONS + rb, rev8(now_ns) + component(tenant))
        batch.write()
    store._last_commit_ns = now_ns
    # The in-memory copy moves before the revision is published to readers.
    store._resident.apply(tenant, tp, Delta(revision, new, created_tuples, gone))
    store._revision = revision
    if new_kinds:
        store._kinds[tenant] = known | new_kinds
    return tokens.encode_snap(store._store_id, revision)


def _apply_claims(db: Any, batch: Any, tp: bytes, tenant: str, changes: Changes) -> None:
    """Release, then put, the writing tenant's claims."""
    held = tenant.encode("utf-8", "surrogatepass")
    for namespace, parts in changes.delete_claims:
        claim = keys.claim_key(namespace, parts)
        if db.get(claim) == held:  # another tenant's claim of the key stays
            batch.delete(claim)
        batch.delete(keys.tenant_claim_key(tp, namespace, parts))
    for namespace, parts in changes.put_claims:
        batch.put(keys.claim_key(namespace, parts), held)
        batch.put(keys.tenant_claim_key(tp, namespace, parts), b"")


def _retire_attribute(
    db: Any, batch: Any, tp: bytes, body: bytes, current: bytes, *, revision: int
) -> None:
    """Move the live version ``current`` of attribute ``body`` into its history."""
    key = tp + keys.ATTRIBUTES + body + HISTORY
    batch.put(key, (db.get(key) or b"") + retired_attribute(current, revision))
    batch.put(keys.dead_key(tp, revision, keys.ATTRIBUTES, body), b"")
