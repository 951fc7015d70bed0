"""The PostgreSQL store's tables: versioned steps, applied in order, recorded in a table.

``migrate(url)`` applies every step the database lacks; each step runs in its own transaction
together with the row that records it, so a step is wholly applied or not at all. Several
processes may migrate one database at once (every replica of a fleet on start, say): each step's
row is taken with ``INSERT … ON CONFLICT DO NOTHING RETURNING`` before its statements run, so
a second migrator blocks on that row until the first commits and then finds the step done. No
advisory lock is used, since CockroachDB has none.

Portability (PostgreSQL, CockroachDB, YugabyteDB): plain tables with composite primary keys,
B-tree indexes (two partial ones), ``BYTEA``/``BIGINT``/``TEXT``/``DOUBLE PRECISION`` columns,
``ON CONFLICT`` and ``RETURNING``. Not used: sequences, ``SERIAL``, ``xid8`` or
``pg_current_snapshot`` (CockroachDB has neither), advisory locks, ``LISTEN/NOTIFY``, triggers,
stored procedures, ``INCLUDE`` columns (CockroachDB spells them ``STORING``).

Every string (tenant and entity ids, types, relations, names, record keys, schema versions
and text) is stored as ``BYTEA`` holding its UTF-8 (lone surrogates passed through):
PostgreSQL's ``TEXT`` cannot hold NUL, which ids may contain, and byte order is code-point
order, the order every backend reads in, whatever collation the database was created with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors

from storage.errors import StorageError, StoreUnavailable

#: ``deleted`` of a live tuple or attribute version: after every revision.
LIVE = (1 << 63) - 1

_STEPS: list[tuple[str, ...]] = [
    # 1: the first layout.
    (
        """CREATE TABLE stonetown_meta (
            name TEXT PRIMARY KEY,
            value BYTEA NOT NULL
        )""",
        # One row per tenant id ever used: ``pk`` names the current incarnation (a deleted and
        # recreated tenant gets a new one), ``revision`` is the tenant's head revision, kept
        # across incarnations so that no token of an old incarnation names a new state. Every
        # write updates this row first: writers of one tenant serialise on it.
        """CREATE TABLE stonetown_tenants (
            id BYTEA PRIMARY KEY,
            pk BIGINT NOT NULL UNIQUE,
            live BOOLEAN NOT NULL,
            name BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            revision BIGINT NOT NULL,
            horizon BIGINT NOT NULL,
            committed_at DOUBLE PRECISION NOT NULL,
            schema_head BYTEA NOT NULL
        )""",
        f"""CREATE TABLE stonetown_tuples (
            tenant BIGINT NOT NULL,
            entity_type BYTEA NOT NULL,
            entity_id BYTEA NOT NULL,
            relation BYTEA NOT NULL,
            subject_type BYTEA NOT NULL,
            subject_id BYTEA NOT NULL,
            subject_relation BYTEA NOT NULL,
            deleted BIGINT NOT NULL DEFAULT {LIVE},
            created BIGINT NOT NULL,
            PRIMARY KEY (tenant, entity_type, entity_id, relation,
                         subject_type, subject_id, subject_relation, deleted)
        )""",
        # The tenant comes last here: a query naming the tenant and an entity must never look
        # like a fit for this index (the planner, not knowing a new tenant yet, would scan the
        # whole tenant's range of it instead of the primary key's entity range).
        """CREATE INDEX stonetown_tuples_by_subject ON stonetown_tuples (subject_type,
            subject_id, subject_relation, entity_type, relation, entity_id, tenant)""",
        f"""CREATE INDEX stonetown_tuples_dead ON stonetown_tuples (tenant, deleted)
            WHERE deleted < {LIVE}""",
        f"""CREATE TABLE stonetown_attributes (
            tenant BIGINT NOT NULL,
            entity_type BYTEA NOT NULL,
            entity_id BYTEA NOT NULL,
            name BYTEA NOT NULL,
            deleted BIGINT NOT NULL DEFAULT {LIVE},
            created BIGINT NOT NULL,
            value BYTEA NOT NULL,
            PRIMARY KEY (tenant, entity_type, entity_id, name, deleted)
        )""",
        f"""CREATE INDEX stonetown_attributes_dead ON stonetown_attributes (tenant, deleted)
            WHERE deleted < {LIVE}""",
        # One row per write: its commit time (for the GC window) and its change log (NULL when
        # the write changed nothing).
        """CREATE TABLE stonetown_revisions (
            tenant BIGINT NOT NULL,
            revision BIGINT NOT NULL,
            committed_at DOUBLE PRECISION NOT NULL,
            changes BYTEA,
            PRIMARY KEY (tenant, revision)
        )""",
        """CREATE TABLE stonetown_kinds (
            tenant BIGINT NOT NULL,
            entity_type BYTEA NOT NULL,
            relation BYTEA NOT NULL,
            subject_type BYTEA NOT NULL,
            subject_relation BYTEA NOT NULL,
            PRIMARY KEY (tenant, entity_type, relation, subject_type, subject_relation)
        )""",
        """CREATE TABLE stonetown_schemas (
            tenant BIGINT NOT NULL,
            version BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (tenant, version)
        )""",
        """CREATE TABLE stonetown_records (
            tenant BIGINT NOT NULL,
            keyspace BYTEA NOT NULL,
            key BYTEA NOT NULL,
            value BYTEA NOT NULL,
            PRIMARY KEY (tenant, keyspace, key)
        )""",
        """CREATE TABLE stonetown_claims (
            namespace BYTEA NOT NULL,
            key BYTEA NOT NULL,
            tenant BYTEA NOT NULL,
            PRIMARY KEY (namespace, key)
        )""",
        "CREATE INDEX stonetown_claims_by_tenant ON stonetown_claims (tenant)",
    ),
]

#: The version of the newest step: a store opens only a database at exactly this version.
LATEST_VERSION = len(_STEPS)

_LEDGER = """CREATE TABLE IF NOT EXISTS stonetown_migrations (
    version INTEGER PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
)"""


def _first_rows(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """What version 1 starts with: the store id tokens carry and the default tenant."""
    conn.execute(
        "INSERT INTO stonetown_meta (name, value) VALUES ('store-id', %s)", (os.urandom(8),)
    )
    now = time.time()
    conn.execute(
        "INSERT INTO stonetown_tenants"
        " (id, pk, live, name, created_at, revision, horizon, committed_at, schema_head)"
        " VALUES ('t1', %s, TRUE, '', %s, 0, 0, 0, '')",
        (new_tenant_pk(), now),
    )


def new_tenant_pk() -> int:
    """A random positive 63-bit id for a tenant incarnation (no sequence: see the module)."""
    return int.from_bytes(os.urandom(8), "big") >> 1


def _ensure_ledger(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    # Two processes racing through CREATE TABLE IF NOT EXISTS can still collide in
    # PostgreSQL's catalogue (a unique violation, or "type already exists", on the table's row
    # type): the loser retries, then finds the table.
    for attempt in range(5):
        try:
            with conn.transaction():
                conn.execute(_LEDGER)
            return
        except (pg_errors.UniqueViolation, pg_errors.DuplicateTable, pg_errors.DuplicateObject):
            if attempt == 4:
                raise
            time.sleep(0.05)


def migrate(url: str) -> list[int]:
    """Apply every step the database at ``url`` lacks; the versions applied (empty when it
    was up to date). Safe to run from several processes at once."""
    applied: list[int] = []
    with _connect(url) as conn, _translated():
        _ensure_ledger(conn)
        for version, statements in enumerate(_STEPS, start=1):
            with conn.transaction():
                taken = conn.execute(
                    "INSERT INTO stonetown_migrations (version, applied_at) VALUES (%s, %s)"
                    " ON CONFLICT (version) DO NOTHING RETURNING version",
                    (version, time.time()),
                ).fetchone()
                if taken is None:
                    continue  # applied already (or just now, by another migrator)
                for statement in statements:
                    conn.execute(statement)
                if version == 1:
                    _first_rows(conn)
            applied.append(version)
    return applied


def schema_version(url: str) -> int:
    """The newest step applied to the database at ``url`` (0: never migrated)."""
    with _connect(url) as conn, _translated():
        return _version(conn)


@contextmanager
def _translated() -> Iterator[None]:
    """psycopg's exceptions as storage errors (as ``database.py`` does for the store)."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"the database connection failed: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise StorageError(f"migration failed: {exc}".strip()) from exc


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the database: {exc}".strip()) from exc


def _version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    exists = conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'stonetown_migrations'"
        " AND table_schema = current_schema()"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT max(version) FROM stonetown_migrations").fetchone()
    return int(str(row[0])) if row and row[0] is not None else 0
