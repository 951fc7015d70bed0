"""The PostgreSQL store: many stateless server processes (replicas) over one database, written
to run on CockroachDB and YugabyteDB too.

* ``store.py``: ``PostgresStore``: tenants, schemas, claims, writes and transactions, readers
  pinned to revisions, and the revision and concurrency model;
* ``reader.py``: ``PostgresReader``, the ``SnapshotReader``;
* ``write.py``: the statements one write applies;
* ``gc.py``: garbage collection;
* ``migrations.py``: the tables, as versioned steps (``migrate``, ``schema_version``), and the
  SQL features left out so that other databases speaking PostgreSQL's protocol work;
* ``database.py``: the connection pool and psycopg's exceptions translated;
* ``watchdog.py``: the client-side deadline of each read and transaction (a database that
  stops answering gets its calls' connections shut down);
* ``codec.py``: values as columns.

Portability. Correctness rests on one row lock per tenant (``UPDATE … RETURNING`` and ``SELECT …
FOR UPDATE``) and on revision columns, never on the database's own snapshot ids. The SQL used:
composite primary keys, B-tree and partial indexes, ``ON CONFLICT DO NOTHING`` / ``DO UPDATE …
EXCLUDED``, ``RETURNING``, ``unnest`` of several arrays, ``UPDATE … FROM`` and ``DELETE …
USING``, ``= ANY(array)``, row-value comparisons for keyset pages, ``GREATEST`` and ``LEAST``
(of non-null values only: databases differ on a NULL argument), rows of ``VALUES`` joined to
``LATERAL`` subqueries with a ``LIMIT`` (reads of several entities at once), ``SET LOCAL
statement_timeout``, an ``INSERT … RETURNING`` inside ``WITH`` (a write's new tuples counted),
``SAVEPOINT`` and ``ROLLBACK TO SAVEPOINT`` (a big write's plain insert, undone when a tuple was
live already), and named prepared statements of the extended protocol, with binary parameters
and results (the engine's hot reads; psycopg prepares frequent statements too). Avoided,
because CockroachDB or YugabyteDB lack them or differ:
``xid8``/``pg_current_snapshot`` and ``txid_*`` (revisions come from the tenant row instead),
advisory locks (migrations take their version row with ``ON CONFLICT DO NOTHING``),
``LISTEN/NOTIFY`` (the change log is a table that watchers poll), sequences and ``SERIAL``
(tenant incarnations take random 63-bit ids), triggers, stored procedures, ``INCLUDE`` index
columns, ``COPY`` (batched multi-row inserts measured as fast here), and any ordering by a
collation (every string is ``BYTEA``). Checked: the storage conformance suite, the engine's
oracle and scenario tests and the API suites run on PostgreSQL 15. Not checked: CockroachDB and
YugabyteDB themselves (neither is packaged for this machine), so no run confirms the list above
there; the first thing to try is the entity reads' ``LATERAL`` subqueries. No recursive query
(``WITH RECURSIVE``) is used: a walk through parents and groups is a plain read per level. A
write that loses an optimistic conflict there (SQLSTATE 40001) is run again by the store.
"""

from storage.postgres.migrations import LATEST_VERSION, migrate, schema_version
from storage.postgres.reader import PostgresReader
from storage.postgres.store import PostgresStore

__all__ = ["LATEST_VERSION", "PostgresReader", "PostgresStore", "migrate", "schema_version"]
