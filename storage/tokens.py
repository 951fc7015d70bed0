"""Snap tokens and continuation tokens: opaque to clients, checked when they come back.

Both are unpadded URL-safe base64 of a version byte and a fixed layout:

* snap token: ``01 | store id (8) | revision (8)``. The store id is random per data directory, so
  a token from another store (or a wiped and recreated one) is refused instead of naming an
  unrelated state.
* continuation token: ``01 | query fingerprint (8) | position``. The fingerprint hashes the
  tenant and the query, so a cursor handed to a different query is refused rather than silently
  skipping or repeating items; the position is backend-defined.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

from storage.base import Revision, SnapToken
from storage.errors import InvalidToken

_VERSION = b"\x01"
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
STORE_ID_BYTES = 8
_FINGERPRINT_BYTES = 8
_MAX_TOKEN_CHARS = 1 << 20


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(token: str, what: str) -> bytes:
    if len(token) > _MAX_TOKEN_CHARS or not _ALPHABET.fullmatch(token):
        raise InvalidToken(f"malformed {what}: expected a token this store returned")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError as exc:
        raise InvalidToken(f"malformed {what}: expected a token this store returned") from exc
    if not raw.startswith(_VERSION):
        raise InvalidToken(f"malformed {what}: unknown token version")
    return raw[1:]


def encode_snap(store_id: bytes, revision: int) -> SnapToken:
    return SnapToken(_encode(_VERSION + store_id + revision.to_bytes(8, "big")))


def decode_snap(store_id: bytes, token: str, *, latest: int | None = None) -> Revision:
    """The revision a snap token names; InvalidToken if malformed, from another store, or newer
    than the store's ``latest`` revision (when given)."""
    raw = _decode(token, "snap token")
    if len(raw) != STORE_ID_BYTES + 8:
        raise InvalidToken("malformed snap token: wrong length")
    if raw[:STORE_ID_BYTES] != store_id:
        raise InvalidToken("snap token was issued by a different data store")
    revision = Revision(int.from_bytes(raw[STORE_ID_BYTES:], "big"))
    if latest is not None and revision > latest:
        raise InvalidToken(
            f"snap token names revision {revision}, newer than this store's latest {latest}"
        )
    return revision


def fingerprint(*parts: object) -> bytes:
    """A short hash identifying one query (its tenant, kind and filter)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=_FINGERPRINT_BYTES).digest()


def encode_cursor(query: bytes, position: bytes) -> str:
    return _encode(_VERSION + query + position)


def decode_cursor(query: bytes, token: str) -> bytes:
    """The position inside a continuation token; InvalidToken if it belongs to another query."""
    raw = _decode(token, "continuation token")
    if raw[:_FINGERPRINT_BYTES] != query:
        raise InvalidToken("continuation token does not belong to this query")
    return raw[_FINGERPRINT_BYTES:]


_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"
_VERSION_CHARS = 20  # 100 bits: 48 of milliseconds, then 52 random


def new_schema_version(previous: str, now_ms: int) -> str:
    """A 20-character schema version id (lowercase base32hex, like Permify's xid ids) that
    sorts after ``previous`` and, clocks permitting, in time order."""
    value = (now_ms << 52) | int.from_bytes(os.urandom(7), "big") >> 4
    if previous:
        value = max(value, int(previous, 32) + 1)
    if value >= 1 << (5 * _VERSION_CHARS):
        raise ValueError(f"no 20-character schema version sorts after {previous!r}")
    chars = []
    for _ in range(_VERSION_CHARS):
        value, digit = divmod(value, 32)
        chars.append(_BASE32HEX[digit])
    return "".join(reversed(chars))
