"""Version histories: how a tuple's or attribute's versions are encoded in LevelDB values.

A live key's value starts with ``rev8(created)`` (an attribute's then holds its payload). The
history key beside it lists the earlier versions: a tuple's as 16-byte ``created8 deleted8``
pairs, an attribute's as ``created8 deleted8 len4 payload`` entries. A version is visible at
revision ``rb`` (as ``rev8``) when ``created <= rb < deleted``; byte order is numeric order, so
the comparisons run on the raw bytes. Garbage collection trims the versions deleted at or before
its horizon.

An attribute payload is one type byte (``AttributeType``) and the value as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from dsl.schema import AttributeType
from storage.base import Attribute
from storage.keys import rev8


def encode_value(attr: Attribute) -> bytes:
    """An attribute's payload: its type byte and its value as JSON."""
    return bytes([attr.type.value]) + json.dumps(attr.value, separators=(",", ":")).encode()


def decode_attribute(parts: list[str], payload: bytes) -> Attribute:
    """The attribute ``entity_type, entity_id, name`` (``parts``) holding ``payload``."""
    et, eid, name = parts
    return Attribute(et, eid, name, AttributeType(payload[0]), json.loads(payload[1:]))


def visible_pair(history: bytes, rb: bytes) -> bool:
    """Whether a tuple history (created8, deleted8 pairs) has a version visible at ``rb``."""
    for i in range(0, len(history), 16):  # noqa: SIM110 - a plain loop is cheaper than any()
        if history[i : i + 8] <= rb < history[i + 8 : i + 16]:
            return True
    return False


def visible_body(key: bytes, value: bytes, n: int, rb: bytes) -> bytes | None:
    """A forward or reverse tuple key's body after its first ``n`` bytes, without the history
    byte, when the tuple is visible at ``rb``; None otherwise. A live key (last byte 1) holds
    its creation revision; a history key, its (created8, deleted8) pairs."""
    if key[-1] == 1:
        return key[n:] if value <= rb else None
    return key[n:-1] if visible_pair(value, rb) else None


def attribute_versions(history: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(created8, deleted8, payload) of each entry of an attribute history."""
    pos = 0
    while pos < len(history):
        n = int.from_bytes(history[pos + 16 : pos + 20], "big")
        yield history[pos : pos + 8], history[pos + 8 : pos + 16], history[pos + 20 : pos + 20 + n]
        pos += 20 + n


def visible_payload(history: bytes, rb: bytes) -> bytes | None:
    """The payload of the attribute history's version visible at ``rb``, if any."""
    for created, deleted, payload in attribute_versions(history):
        if created <= rb < deleted:
            return payload
    return None


def retired_attribute(current: bytes, revision: int) -> bytes:
    """The history entry of the live attribute value ``current`` deleted at ``revision``."""
    payload = current[8:]
    return current[:8] + rev8(revision) + len(payload).to_bytes(4, "big") + payload


def trim_tuple_history(history: bytes, horizon: bytes) -> bytes:
    """A tuple history without the versions deleted at or before ``horizon``."""
    return b"".join(
        history[i : i + 16] for i in range(0, len(history), 16) if history[i + 8 : i + 16] > horizon
    )


def trim_attribute_history(history: bytes, horizon: bytes) -> bytes:
    """An attribute history without the versions deleted at or before ``horizon``."""
    return b"".join(
        created + deleted + len(payload).to_bytes(4, "big") + payload
        for created, deleted, payload in attribute_versions(history)
        if deleted > horizon
    )
