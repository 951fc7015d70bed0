"""One write: the statements that apply a ``Changes`` at the tenant's next revision, inside the
transaction that took that revision.

The caller has already bumped the tenant row's revision (which locks the row until commit, so
writers of one tenant serialise and commit in revision order). Deletes are judged against the
state before the write (the live rows, since no other writer of the tenant can run) and applied
first: a deleted version gets ``deleted = revision``; a created one is a new row with
``created = revision``. Then records, claims, new tuple kinds and the revision's row with its
change log. Every statement is set-based (``unnest`` of parameter arrays), so a write of a
thousand tuples is a handful of statements, not a thousand; a big write's tuples go in with a
plain insert in a savepoint, and only when some were live already with one that skips those
(``_create_tuples``).
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg import errors as pg_errors

from storage import keys
from storage.base import (
    Attribute,
    AttributeKey,
    Changes,
    Tuple,
    TupleFilter,
    TupleKind,
)
from storage.postgres.codec import (
    attribute_key_columns,
    dec,
    decode_attribute,
    enc,
    encode_changes,
    encode_value,
    tuple_columns,
    tuple_of,
)
from storage.postgres.database import Connection
from storage.postgres.migrations import LIVE

_SIX = "%b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[]"
_TUPLE_MATCH = (
    "t.entity_type = d.et AND t.entity_id = d.eid AND t.relation = d.rel"
    " AND t.subject_type = d.st AND t.subject_id = d.sid AND t.subject_relation = d.srel"
)
_DELETE_TUPLES = (
    f"UPDATE stonetown_tuples AS t SET deleted = %s FROM unnest({_SIX})"
    " AS d(et, eid, rel, st, sid, srel)"
    f" WHERE t.tenant = %s AND t.deleted = {LIVE} AND {_TUPLE_MATCH}"
    " RETURNING t.entity_type, t.entity_id, t.relation, t.subject_type, t.subject_id,"
    " t.subject_relation"
)
#: A write of at least this many tuples tries ``_INSERT_TUPLES`` first (see ``_create_tuples``).
BULK_TUPLES = 100
#: Adds every tuple given; fails (a unique violation) when one is live already.
_INSERT_TUPLES = (
    "INSERT INTO stonetown_tuples (tenant, entity_type, entity_id, relation, subject_type,"
    " subject_id, subject_relation, created)"
    f" SELECT %s, et, eid, rel, st, sid, srel, %s FROM unnest({_SIX})"
    " AS d(et, eid, rel, st, sid, srel)"
)
#: Adds the tuples given that are not live already, and counts them: one row back.
_CREATE_TUPLES = (
    "WITH created AS (INSERT INTO stonetown_tuples (tenant, entity_type, entity_id, relation,"
    " subject_type, subject_id, subject_relation, created)"
    f" SELECT %s, et, eid, rel, st, sid, srel, %s FROM unnest({_SIX})"
    " AS d(et, eid, rel, st, sid, srel)"
    " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM created"
)
#: Which of the given tuples were live before this revision: one primary-key probe each
#: (LATERAL with a LIMIT, so that the planner probes the index whatever it believes of the
#: table's size).
_LIVE_BEFORE = (
    "SELECT d.et, d.eid, d.rel, d.st, d.sid, d.srel"
    f" FROM unnest({_SIX}) AS d(et, eid, rel, st, sid, srel)"
    " CROSS JOIN LATERAL (SELECT 1 FROM stonetown_tuples AS t"
    f" WHERE t.tenant = %s AND {_TUPLE_MATCH} AND t.deleted = {LIVE} AND t.created < %s"
    " LIMIT 1) AS found"
)
_LIVE_ATTRIBUTES = (
    "SELECT a.entity_type, a.entity_id, a.name, a.value FROM stonetown_attributes AS a"
    " JOIN unnest(%b::bytea[], %b::bytea[], %b::bytea[]) AS k(et, eid, name)"
    " ON a.entity_type = k.et AND a.entity_id = k.eid AND a.name = k.name"
    f" WHERE a.tenant = %s AND a.deleted = {LIVE}"
)
_DELETE_ATTRIBUTES = (
    "UPDATE stonetown_attributes AS a SET deleted = %s"
    " FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[]) AS k(et, eid, name)"
    f" WHERE a.tenant = %s AND a.deleted = {LIVE}"
    " AND a.entity_type = k.et AND a.entity_id = k.eid AND a.name = k.name"
)
_CREATE_ATTRIBUTES = (
    "INSERT INTO stonetown_attributes (tenant, entity_type, entity_id, name, created, value)"
    " SELECT %s, et, eid, name, %s, value"
    " FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[]) AS v(et, eid, name, value)"
)


def apply_changes(
    conn: Connection,
    *,
    pk: int,
    tenant: str,
    revision: int,
    committed_at: float,
    changes: Changes,
    known_kinds: frozenset[TupleKind],
) -> frozenset[TupleKind]:
    """Apply ``changes`` to tenant incarnation ``pk`` at ``revision``; return the tuple kinds
    this write added to ``known_kinds`` (what the tenant is known to have)."""
    writes = dict.fromkeys(changes.write_tuples)
    doomed = dict.fromkeys(t for t in changes.delete_tuples if t not in writes)
    for flt in changes.delete_tuple_filters:
        for t in _live_tuples(conn, pk, flt):
            if t not in writes:
                doomed[t] = None
    deleted_tuples: list[Tuple] = []
    if doomed:
        encoded = _encoded(doomed)
        rows = conn.execute(_DELETE_TUPLES, (revision, *_arrays(encoded), pk), binary=True)
        deleted_tuples = sorted(encoded[row] for row in rows)

    attr_writes = {a.key: a for a in changes.write_attributes}  # the last one wins
    attr_doomed = dict.fromkeys(k for k in changes.delete_attributes if k not in attr_writes)
    for aflt in changes.delete_attribute_filters:
        conditions, params = ["tenant = %s", f"deleted = {LIVE}"], [pk]
        if aflt.entity_type:
            conditions.append("entity_type = %s")
            params.append(enc(aflt.entity_type))  # type: ignore[arg-type]
        if aflt.entity_ids:
            conditions.append("entity_id = ANY(%b::bytea[])")
            params.append([enc(i) for i in aflt.entity_ids])  # type: ignore[arg-type]
        if aflt.names:
            conditions.append("name = ANY(%b::bytea[])")
            params.append([enc(n) for n in aflt.names])  # type: ignore[arg-type]
        for et, eid, name in conn.execute(
            "SELECT entity_type, entity_id, name FROM stonetown_attributes WHERE "
            + " AND ".join(conditions),
            params,
            binary=True,
        ):
            key = AttributeKey(dec(et), dec(eid), dec(name))
            if key not in attr_writes:
                attr_doomed[key] = None
    attributes = bool(attr_writes or attr_doomed)
    created_tuples: list[Tuple] = []
    new_kinds: frozenset[TupleKind] = frozenset()
    log: bytes | None = None  # the change log, once known
    if writes:
        ordered = sorted(writes)  # code-point order: the order of the UTF-8 columns too
        parts = list(zip(*ordered, strict=True))  # entity types, entity ids, relations, ...
        columns = [_column(part) for part in parts]
        kinds = zip(parts[0], parts[2], parts[3], parts[5], strict=True)
        new_kinds = frozenset(kinds) - known_kinds

        def expected() -> bytes | None:
            return None if attributes else encode_changes(deleted_tuples, [], ordered, [])

        created_tuples, log = _create_tuples(
            conn, pk=pk, revision=revision, ordered=ordered, columns=columns, expected=expected
        )

    deleted_attributes: list[Attribute] = []
    created_attributes: list[Attribute] = []
    if attributes:
        deleted_attributes, created_attributes = _apply_attributes(
            conn, pk=pk, revision=revision, writes=attr_writes, doomed=attr_doomed
        )
    if log is None:
        log = encode_changes(deleted_tuples, deleted_attributes, created_tuples, created_attributes)

    if changes.delete_records:
        unique = list(
            dict.fromkeys((enc(ks), keys.components(k)) for ks, k in changes.delete_records)
        )
        conn.execute(
            "DELETE FROM stonetown_records AS r USING unnest(%b::bytea[], %b::bytea[]) AS d(ks, k)"
            " WHERE r.tenant = %s AND r.keyspace = d.ks AND r.key = d.k",
            ([u[0] for u in unique], [u[1] for u in unique], pk),
        )
    if changes.put_records:
        latest = {(enc(r.keyspace), keys.components(r.key)): r.value for r in changes.put_records}
        conn.execute(
            "INSERT INTO stonetown_records (tenant, keyspace, key, value)"
            " SELECT %s, ks, k, v FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[]) AS p(ks, k, v)"
            " ON CONFLICT (tenant, keyspace, key) DO UPDATE SET value = EXCLUDED.value",
            (pk, [k[0] for k in latest], [k[1] for k in latest], list(latest.values())),
        )
    holder = enc(tenant)
    if changes.delete_claims:
        released = list(
            dict.fromkeys((enc(ns), keys.components(k)) for ns, k in changes.delete_claims)
        )
        conn.execute(
            "DELETE FROM stonetown_claims AS c USING unnest(%b::bytea[], %b::bytea[]) AS d(ns, k)"
            " WHERE c.namespace = d.ns AND c.key = d.k AND c.tenant = %s",
            ([u[0] for u in released], [u[1] for u in released], holder),
        )
    if changes.put_claims:
        claimed = list(dict.fromkeys((enc(ns), keys.components(k)) for ns, k in changes.put_claims))
        conn.execute(
            "INSERT INTO stonetown_claims (namespace, key, tenant)"
            " SELECT ns, k, %s FROM unnest(%b::bytea[], %b::bytea[]) AS p(ns, k)"
            " ON CONFLICT (namespace, key) DO UPDATE SET tenant = EXCLUDED.tenant",
            (holder, [c[0] for c in claimed], [c[1] for c in claimed]),
        )

    if new_kinds:
        kinds_in_order = sorted(new_kinds)
        conn.execute(
            "INSERT INTO stonetown_kinds (tenant, entity_type, relation, subject_type,"
            " subject_relation) SELECT %s, et, rel, st, srel"
            " FROM unnest(%b::bytea[], %b::bytea[], %b::bytea[], %b::bytea[])"
            " AS k(et, rel, st, srel) ON CONFLICT DO NOTHING",
            (pk, *([enc(k[i]) for k in kinds_in_order] for i in range(4))),
        )
    conn.execute(
        "INSERT INTO stonetown_revisions (tenant, revision, committed_at, changes)"
        " VALUES (%s, %s, %s, %s)",
        (pk, revision, committed_at, log),
    )
    return new_kinds


def _create_tuples(
    conn: Connection,
    *,
    pk: int,
    revision: int,
    ordered: list[Tuple],
    columns: list[list[bytes]],
    expected: Callable[[], bytes | None],
) -> tuple[list[Tuple], bytes | None]:
    """Add the tuples of ``ordered`` (``columns``: theirs) not live already; return those it
    added, and the change log ``expected`` gives when that is all of them (else None).
    ``expected`` runs while the database inserts.

    A write of ``BULK_TUPLES`` or more first tries a plain insert, in a savepoint: a tuple live
    already fails it (the primary key holds one live version of a tuple) and the savepoint
    undoes it. Without ``ON CONFLICT`` the database checks each key once rather than twice
    (a quarter less of its time on a big write), and a bulk load rarely writes a tuple twice.
    Else, or when it failed, the insert skips the tuples live already and counts those it
    added: one row back, not one per tuple; when the count falls short, ``_LIVE_BEFORE`` names
    the tuples that were live already."""
    params = (pk, revision, *columns)
    if len(ordered) >= BULK_TUPLES:
        try:
            with conn.transaction():
                conn.execute(_INSERT_TUPLES, params, binary=True)
                log = expected()
            return ordered, log
        except pg_errors.UniqueViolation:
            pass  # some were live already
        counted = conn.execute(_CREATE_TUPLES, params, binary=True)
        log = None
    else:
        counted = conn.execute(_CREATE_TUPLES, params, binary=True)
        log = expected()
    (count,) = counted.fetchone() or (0,)
    if count == len(ordered):
        return ordered, log
    rows = conn.execute(_LIVE_BEFORE, (*columns, pk, revision), binary=True)
    before = {tuple_of(row) for row in rows}
    return [t for t in ordered if t not in before], None


def _column(strings: tuple[str, ...]) -> list[bytes]:
    """One column of a write, encoded as ``codec.enc`` does: the strict codec's ``map`` is
    several times faster, and differs only where it fails, on lone surrogates."""
    try:
        return list(map(str.encode, strings))
    except UnicodeEncodeError:
        return list(map(enc, strings))


def _encoded(tuples: dict[Tuple, None]) -> dict[tuple[bytes, ...], Tuple]:
    """Each tuple by its six columns, in key order: what a returned row is looked up by (no
    decoding)."""
    return {row: t for row, t in sorted((tuple_columns(t), t) for t in tuples)}


def _arrays(encoded: dict[tuple[bytes, ...], Tuple]) -> list[list[bytes]]:
    """The six parameter arrays (one per tuple part)."""
    return [[row[i] for row in encoded] for i in range(6)]


def _live_tuples(conn: Connection, pk: int, flt: TupleFilter) -> list[Tuple]:
    conditions, params = ["tenant = %s", f"deleted = {LIVE}"], [pk]
    for column, value in (
        ("entity_type", flt.entity_type),
        ("relation", flt.relation),
        ("subject_type", flt.subject_type),
    ):
        if value:
            conditions.append(f"{column} = %s")
            params.append(enc(value))  # type: ignore[arg-type]
    if flt.entity_ids:
        conditions.append("entity_id = ANY(%b::bytea[])")
        params.append([enc(i) for i in flt.entity_ids])  # type: ignore[arg-type]
    if flt.subject_ids:
        conditions.append("subject_id = ANY(%b::bytea[])")
        params.append([enc(i) for i in flt.subject_ids])  # type: ignore[arg-type]
    if flt.subject_relation is not None:
        conditions.append("subject_relation = %s")
        params.append(enc(flt.subject_relation))  # type: ignore[arg-type]
    rows = conn.execute(
        "SELECT entity_type, entity_id, relation, subject_type, subject_id, subject_relation"
        " FROM stonetown_tuples WHERE " + " AND ".join(conditions),
        params,
        binary=True,
    ).fetchall()
    return [tuple_of(row) for row in rows]


def _apply_attributes(
    conn: Connection,
    *,
    pk: int,
    revision: int,
    writes: dict[AttributeKey, Attribute],
    doomed: dict[AttributeKey, None],
) -> tuple[list[Attribute], list[Attribute]]:
    """Retire the deleted and changed attributes' live versions, then add the new ones; the
    versions retired and those added, each in key order."""
    asked = sorted({*writes, *doomed})
    live: dict[AttributeKey, Attribute] = {}
    columns = [attribute_key_columns(k) for k in asked]
    for et, eid, name, value in conn.execute(
        _LIVE_ATTRIBUTES,
        ([c[0] for c in columns], [c[1] for c in columns], [c[2] for c in columns], pk),
        binary=True,
    ):
        attr = decode_attribute(dec(et), dec(eid), dec(name), value)
        live[attr.key] = attr
    retired = [k for k in doomed if k in live]
    created: list[Attribute] = []
    for key, attr in writes.items():
        old = live.get(key)
        if old is not None and old.same_value(attr):
            continue
        if old is not None:
            retired.append(key)
        created.append(attr)
    if retired:
        retired.sort()
        cols = [attribute_key_columns(k) for k in retired]
        conn.execute(
            _DELETE_ATTRIBUTES,
            (revision, [c[0] for c in cols], [c[1] for c in cols], [c[2] for c in cols], pk),
        )
    if created:
        created.sort(key=lambda a: a.key)
        cols = [attribute_key_columns(a.key) for a in created]
        conn.execute(
            _CREATE_ATTRIBUTES,
            (
                pk,
                revision,
                [c[0] for c in cols],
                [c[1] for c in cols],
                [c[2] for c in cols],
                [encode_value(a) for a in created],
            ),
        )
    return [live[k] for k in retired], created
