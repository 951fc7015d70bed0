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
* ``codec.py``: values as columns.
"""

from storage.postgres.migrations import LATEST_VERSION, migrate, schema_version
from storage.postgres.reader import PostgresReader
from storage.postgres.store import PostgresStore

__all__ = ["LATEST_VERSION", "PostgresReader", "PostgresStore", "migrate", "schema_version"]
