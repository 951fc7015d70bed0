"""The product store on LevelDB (plyvel), one module per job.

Every write is one LevelDB ``WriteBatch`` that also appends the revision log and the tenant's
change log, so a crash leaves each write wholly present or wholly absent. A live tuple or
attribute is one exact key holding the revision that created it; its earlier versions sit in a
history key beside it as (created, deleted) revision pairs (``storage/keys.py`` has the layout).
A reader at revision T keeps the version with ``created <= T < deleted``.

* ``store.py``: ``LevelDBStore``: opening, tenants, schemas, claims, the write lock, readers
  pinned to revisions, and the concurrency model;
* ``reader.py``: ``LevelDBReader``, the ``SnapshotReader`` (``subjects.py``: its `SubjectSet`);
* ``write.py``: the batch one write applies;
* ``resident.py``: each tenant's latest tuples kept in memory, so the reader's point reads need
  no seek (exact at every revision; bounded by ``resident_tuples``);
* ``history.py``: how versions and attribute values are encoded, read and trimmed;
* ``changelog.py``: the change log's encoding;
* ``gc.py``: garbage collection;
* ``plyvel_errors.py``: plyvel's exceptions translated into storage errors.
"""

from storage.leveldb.reader import LevelDBReader
from storage.leveldb.store import FORMAT, LevelDBStore

__all__ = ["FORMAT", "LevelDBReader", "LevelDBStore"]
