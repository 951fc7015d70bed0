"""The change log: what one write created and deleted, as one LevelDB value per revision.

A value is a run of entries ``op kind len4 data``: ``op`` is create or delete, ``kind`` is
``keys.FORWARD`` (``data`` is the forward bodies of the tuples, concatenated) or
``keys.ATTRIBUTES`` (``data`` is ``len4 body payload`` of one attribute). Tuple deletes come
first, then attribute deletes, tuple creates and attribute creates, each in key order, so the
log lists a write's changes in the order a reader should apply them.
"""

from __future__ import annotations

from collections.abc import Iterator

from storage import keys
from storage.base import Change, Operation, Tuple
from storage.keys import split
from storage.leveldb.history import decode_attribute

_CREATE = b"\x01"
_DELETE = b"\x02"


def _attribute_data(body: bytes, value: bytes) -> bytes:
    """A change-log record of an attribute: its key body and the payload of ``value``."""
    return len(body).to_bytes(4, "big") + body + value[8:]


def encode_changes(
    deleted_tuples: list[bytes],
    deleted_attributes: list[tuple[bytes, bytes]],
    created_tuples: list[bytes],
    created_attributes: list[tuple[bytes, bytes]],
) -> bytes:
    """One write's change-log value: tuple deletes, attribute deletes, tuple creates and
    attribute creates, each in key order (the tuple creates are already sorted)."""
    log = []
    if deleted_tuples:
        log.append(_entry(_DELETE, keys.FORWARD, b"".join(deleted_tuples)))
    for body, value in sorted(deleted_attributes):
        log.append(_entry(_DELETE, keys.ATTRIBUTES, _attribute_data(body, value)))
    if created_tuples:
        log.append(_entry(_CREATE, keys.FORWARD, b"".join(created_tuples)))
    for body, value in sorted(created_attributes):
        log.append(_entry(_CREATE, keys.ATTRIBUTES, _attribute_data(body, value)))
    return b"".join(log)


def _entry(op: bytes, kind: bytes, data: bytes) -> bytes:
    return op + kind + len(data).to_bytes(4, "big") + data


def decode_changes(raw: bytes) -> Iterator[Change]:
    """The changes one change-log value lists, in its order."""
    pos = 0
    while pos < len(raw):
        op = Operation.CREATE if raw[pos : pos + 1] == _CREATE else Operation.DELETE
        kind = raw[pos + 1 : pos + 2]
        n = int.from_bytes(raw[pos + 2 : pos + 6], "big")
        data = raw[pos + 6 : pos + 6 + n]
        pos += 6 + n
        if kind == keys.FORWARD:
            parts = split(data)
            for i in range(0, len(parts), 6):
                yield Change(op, Tuple(*parts[i : i + 6]))
        else:
            m = int.from_bytes(data[:4], "big")
            yield Change(op, decode_attribute(split(data[4 : 4 + m]), data[4 + m :]))
