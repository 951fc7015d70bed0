"""Where the relations layer keeps its rows: record keyspaces beside the tenant's tuples.

Every row change goes through `RowWriter`, which keeps the secondary indexes in step in the same
`Changes` (so in the same atomic batch as the tuples):

* ``rt``    (type id)                                  -> RelationType JSON
* ``rel``   (relation id)                              -> Relation JSON
* ``rel_t`` (entity type, entity id, role, subject type, subject id) -> relation id: by tuple,
  and an entity's outgoing rows by prefix
* ``rel_s`` (subject type, subject id, role, entity type, entity id) -> relation id: incoming
* ``rel_c`` (created, relation id)                     -> "": every row by creation time
* ``rel_y`` (type id, created, relation id)            -> "": one type's rows by creation time
* ``rel_p`` (entity type, entity id, role, position, relation id) -> "": a many-valued list in
  order
* ``cfg``   ("relations",)                             -> Settings JSON
* ``tok``   (sha256 hex)                               -> ApiToken JSON; ``tok_id`` (id) -> hash;
  and, store-wide, the claim ``tok`` (sha256 hex) of every token not revoked

Times and positions are zero-padded decimal strings so key order is numeric order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from engine.relations.model import ApiToken, Relation, RelationType, Settings
from storage.base import Changes, Record, SnapshotReader, Tuple

TYPES = "rt"
ROWS = "rel"
BY_TUPLE = "rel_t"
BY_SUBJECT = "rel_s"
BY_CREATED = "rel_c"
BY_TYPE = "rel_y"
BY_POSITION = "rel_p"
SETTINGS = "cfg"
TOKENS = "tok"
TOKEN_IDS = "tok_id"


def stamp(micros: int) -> str:
    return f"{micros:017d}"


def place(position: int) -> str:
    return f"{position:010d}"


def tuple_key(t: Tuple) -> tuple[str, ...]:
    return (t.entity_type, t.entity_id, t.relation, t.subject_type, t.subject_id)


def _index_keys(row: Relation) -> list[tuple[str, tuple[str, ...]]]:
    created = stamp(row.created_at)
    keys = [
        (BY_TUPLE, tuple_key(row.tuple)),
        (
            BY_SUBJECT,
            (row.subject_type, row.subject_id, row.relation, row.entity_type, row.entity_id),
        ),
        (BY_CREATED, (created, row.id)),
        (BY_TYPE, (row.type_id, created, row.id)),
    ]
    if row.position is not None:
        keys.append(
            (
                BY_POSITION,
                (row.entity_type, row.entity_id, row.relation, place(row.position), row.id),
            )
        )
    return keys


class RowWriter:
    """Row puts and deletes for one `Changes`, with their index entries.

    It remembers what it wrote, so reads inside the same transaction (``row``) see the pending
    state: a build function can delete, renumber and insert in any order.
    """

    def __init__(self, reader: SnapshotReader, changes: Changes, *, tuples: bool = True) -> None:
        self.reader = reader
        self.changes = changes
        self.tuples = tuples
        self._pending: dict[str, Relation | None] = {}
        self._old: dict[str, Relation | None] = {}

    def row(self, relation_id: str) -> Relation | None:
        if relation_id in self._pending:
            return self._pending[relation_id]
        return load(self.reader, relation_id)

    def _original(self, relation_id: str) -> Relation | None:
        if relation_id not in self._old:
            self._old[relation_id] = load(self.reader, relation_id)
        return self._old[relation_id]

    def put(self, row: Relation) -> None:
        self._original(row.id)
        self._pending[row.id] = row

    def delete(self, row: Relation) -> None:
        self._original(row.id)
        self._pending[row.id] = None

    def pending_rows(self) -> dict[str, Relation | None]:
        return dict(self._pending)

    def flush(self) -> None:
        """Turn the pending rows into record puts and deletes (call once, at the end)."""
        puts = self.changes.put_records
        deletes = self.changes.delete_records
        for relation_id, new in self._pending.items():
            old = self._old[relation_id]
            old_keys = set(_index_keys(old)) if old is not None else set()
            new_keys = set(_index_keys(new)) if new is not None else set()
            for space, key in sorted(old_keys - new_keys):
                deletes.append((space, key))
            if new is None:
                if old is not None:
                    deletes.append((ROWS, (relation_id,)))
                    if self.tuples:
                        self.changes.delete_tuples.append(old.tuple)
                continue
            if old is None and self.tuples:
                self.changes.write_tuples.append(new.tuple)
            puts.append(Record(ROWS, (relation_id,), new.encode()))
            for space, key in sorted(new_keys - old_keys):
                value = relation_id.encode() if space in (BY_TUPLE, BY_SUBJECT) else b""
                puts.append(Record(space, key, value))


def load(reader: SnapshotReader, relation_id: str) -> Relation | None:
    raw = reader.record(ROWS, (relation_id,))
    return None if raw is None else Relation.decode(raw)


def by_tuple(reader: SnapshotReader, t: Tuple) -> Relation | None:
    relation_id = reader.record(BY_TUPLE, tuple_key(t))
    return None if relation_id is None else load(reader, relation_id.decode())


def _rows(reader: SnapshotReader, ids: Iterator[str]) -> Iterator[Relation]:
    for relation_id in ids:
        row = load(reader, relation_id)
        if row is not None:
            yield row


def outgoing(
    reader: SnapshotReader, entity_type: str, entity_id: str, role: str = ""
) -> Iterator[Relation]:
    prefix = (entity_type, entity_id, role) if role else (entity_type, entity_id)
    return _rows(reader, (r.value.decode() for r in reader.records(BY_TUPLE, prefix)))


def incoming(
    reader: SnapshotReader, entity_type: str, entity_id: str, role: str = ""
) -> Iterator[Relation]:
    prefix = (entity_type, entity_id, role) if role else (entity_type, entity_id)
    return _rows(reader, (r.value.decode() for r in reader.records(BY_SUBJECT, prefix)))


def ordered_list(
    reader: SnapshotReader, entity_type: str, entity_id: str, role: str
) -> list[Relation]:
    """One many-valued list, in position order."""
    ids = (r.key[-1] for r in reader.records(BY_POSITION, (entity_type, entity_id, role)))
    return list(_rows(reader, ids))


def list_length(reader: SnapshotReader, entity_type: str, entity_id: str, role: str) -> int:
    """The last position of a list (positions are contiguous, so its length)."""
    for record in reader.records(
        BY_POSITION, (entity_type, entity_id, role), reverse=True, limit=1
    ):
        return int(record.key[3])
    return 0


def has_rows(reader: SnapshotReader) -> bool:
    return any(True for _ in reader.records(ROWS, limit=1))


# -- types, settings, tokens ------------------------------------------------------------------


def types(
    reader: SnapshotReader, decoded: dict[bytes, RelationType] | None = None
) -> list[RelationType]:
    """Every registered type; ``decoded`` memoises decoding by stored bytes (every write of
    a type changes its bytes, so a memo can never hand out a stale type)."""
    if decoded is None:
        return [RelationType.decode(r.value) for r in reader.records(TYPES)]
    found = []
    for record in reader.records(TYPES):
        rt = decoded.get(record.value)
        if rt is None:
            if len(decoded) > 4096:
                decoded.clear()
            rt = decoded[record.value] = RelationType.decode(record.value)
        found.append(rt)
    return found


def relation_type(reader: SnapshotReader, type_id: str) -> RelationType | None:
    raw = reader.record(TYPES, (type_id,))
    return None if raw is None else RelationType.decode(raw)


#: Under SETTINGS: a random value written anew by every write that changes a type, so a
#: reader tells whether the types changed since it last read them with one point read.
TYPES_GENERATION = ("types",)


def types_generation(reader: SnapshotReader) -> bytes | None:
    """The types' generation at ``reader``'s revision; None: no type was written since
    generations were kept (read the types)."""
    return reader.record(SETTINGS, TYPES_GENERATION)


def put_type(changes: Changes, rt: RelationType) -> None:
    put_types(changes, (rt,))


def put_types(changes: Changes, types: Iterable[RelationType]) -> None:
    """`put_type` of each of ``types``, with one new generation for them all (a restore puts
    thousands in one write)."""
    before = len(changes.put_records)
    changes.put_records.extend(Record(TYPES, (rt.id,), rt.encode()) for rt in types)
    if len(changes.put_records) > before:
        _new_generation(changes)


def delete_type(changes: Changes, type_id: str) -> None:
    changes.delete_records.append((TYPES, (type_id,)))
    _new_generation(changes)


def _new_generation(changes: Changes) -> None:
    """Give the types a new generation in ``changes`` (once per write)."""
    for record in changes.put_records:
        if record.keyspace == SETTINGS and record.key == TYPES_GENERATION:
            return
    changes.put_records.append(Record(SETTINGS, TYPES_GENERATION, os.urandom(16)))


def settings(reader: SnapshotReader) -> Settings:
    raw = reader.record(SETTINGS, ("relations",))
    return Settings() if raw is None else Settings.decode(raw)


def put_settings(changes: Changes, value: Settings) -> None:
    changes.put_records.append(Record(SETTINGS, ("relations",), value.encode()))


def token_by_hash(reader: SnapshotReader, digest: str) -> ApiToken | None:
    raw = reader.record(TOKENS, (digest,))
    return None if raw is None else ApiToken.decode(raw)


def token_by_id(reader: SnapshotReader, token_id: str) -> ApiToken | None:
    digest = reader.record(TOKEN_IDS, (token_id,))
    return None if digest is None else token_by_hash(reader, digest.decode())


def tokens(reader: SnapshotReader) -> list[ApiToken]:
    return [ApiToken.decode(r.value) for r in reader.records(TOKENS)]


def put_token(changes: Changes, token: ApiToken) -> None:
    """Write ``token``; while it is not revoked the tenant also claims its hash (namespace
    ``tok``), so that a secret finds its tenant with one read."""
    changes.put_records.append(Record(TOKENS, (token.hash,), token.encode()))
    changes.put_records.append(Record(TOKEN_IDS, (token.id,), token.hash.encode()))
    claims = changes.put_claims if token.revoked_at is None else changes.delete_claims
    claims.append((TOKENS, (token.hash,)))
