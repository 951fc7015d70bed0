"""How values become column values and back: strings as UTF-8 ``BYTEA``, attribute values and
the change log as compact JSON.

Strings pass through ``surrogatepass`` so that any Python string (lone surrogates included)
round-trips, and byte order stays code-point order. Record keys are tuples of strings, stored as
one ``BYTEA`` in ``storage.keys``' order-preserving component encoding, so a key prefix is a
byte range.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dsl.schema import AttributeType
from storage.base import Attribute, AttributeKey, Change, Operation, Tuple

#: How a string becomes a column's bytes and back (`enc`, `dec`; inlined where rows are decoded).
ENCODING = "utf-8"
ERRORS = "surrogatepass"


def enc(text: str) -> bytes:
    """A string as the bytes a column holds."""
    return text.encode(ENCODING, ERRORS)


def dec(raw: bytes) -> str:
    """A column's bytes as the string they hold."""
    return raw.decode(ENCODING, ERRORS)


def tuple_columns(t: Tuple) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    return (enc(t[0]), enc(t[1]), enc(t[2]), enc(t[3]), enc(t[4]), enc(t[5]))


def tuple_of(row: tuple[Any, ...]) -> Tuple:
    """The tuple of a row's first six columns (the forward order)."""
    return Tuple(dec(row[0]), dec(row[1]), dec(row[2]), dec(row[3]), dec(row[4]), dec(row[5]))


def encode_value(attr: Attribute) -> bytes:
    """An attribute's ``value`` column: its type number, a colon, its value as JSON."""
    body = json.dumps(attr.value, separators=(",", ":"))
    return f"{attr.type.value}:{body}".encode()


def decode_attribute(et: str, eid: str, name: str, raw: bytes) -> Attribute:
    kind, _, body = raw.partition(b":")
    return Attribute(et, eid, name, AttributeType(int(kind)), json.loads(body))


def encode_changes(
    deleted_tuples: Sequence[Tuple],
    deleted_attributes: Sequence[Attribute],
    created_tuples: Sequence[Tuple],
    created_attributes: Sequence[Attribute],
) -> bytes | None:
    """One write's change log as JSON (None when it changed nothing): deletes before creates,
    tuples before attributes, each group in the order given (key order); one entry per change,
    ``[op, tuple parts]`` or ``[op, entity type, id, name, type number, value]``."""
    if not (deleted_tuples or deleted_attributes or created_tuples or created_attributes):
        return None
    delete, create = Operation.DELETE.value, Operation.CREATE.value
    # A Tuple is a tuple of its parts, which JSON writes as an array.
    out: list[list[object]] = [[delete, t] for t in deleted_tuples]
    out.extend(_attribute_entry(delete, a) for a in deleted_attributes)
    out.extend([create, t] for t in created_tuples)
    out.extend(_attribute_entry(create, a) for a in created_attributes)
    # ensure_ascii escapes lone surrogates, which json.loads restores.
    return json.dumps(out, separators=(",", ":")).encode("ascii")


def _attribute_entry(operation: int, a: Attribute) -> list[object]:
    return [operation, a.entity_type, a.entity_id, a.name, a.type.value, a.value]


def decode_changes(raw: bytes) -> tuple[Change, ...]:
    found: list[Change] = []
    for entry in json.loads(raw):
        operation = Operation(entry[0])
        if len(entry) == 2:
            found.append(Change(operation, Tuple(*entry[1])))
        else:
            _, et, eid, name, kind, value = entry
            found.append(Change(operation, Attribute(et, eid, name, AttributeType(kind), value)))
    return tuple(found)


def attribute_key_columns(key: AttributeKey) -> tuple[bytes, bytes, bytes]:
    return (enc(key[0]), enc(key[1]), enc(key[2]))
