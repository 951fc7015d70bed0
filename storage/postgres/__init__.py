"""The PostgreSQL store (also meant for CockroachDB and YugabyteDB): many stateless server
processes over one database.

* ``migrations.py``: the tables, as versioned steps (``migrate``, ``schema_version``);
"""

from storage.postgres.migrations import LATEST_VERSION, migrate, schema_version

__all__ = ["LATEST_VERSION", "migrate", "schema_version"]
