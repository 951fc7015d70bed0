"""Pagination in the reference store: pages cut from sorted lists, positions as plain bytes.

A continuation token's position is the last item's sort key: a tuple's or attribute's key
parts as a JSON list of strings, a tenant id or schema version as its text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from storage import tokens
from storage.base import Page
from storage.errors import InvalidToken

T = TypeVar("T")


def cut_page(
    items: list[T], page_size: int, query: bytes, position: Callable[[T], bytes]
) -> Page[T]:
    """The first ``page_size`` of ``items`` (which holds one more when another page follows)."""
    if len(items) <= page_size:
        return Page(items, "")
    items = items[:page_size]
    return Page(items, tokens.encode_cursor(query, position(items[-1])))


def encode_strings(parts: Sequence[str]) -> bytes:
    # json escapes every non-ASCII character (lone surrogates too), so this is injective ASCII.
    return json.dumps(list(parts)).encode("ascii")


def decode_strings(position: bytes, count: int, what: str) -> list[str]:
    try:
        parts = json.loads(position.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidToken(f"malformed continuation token: bad {what} position") from exc
    if not (
        isinstance(parts, list) and len(parts) == count and all(isinstance(p, str) for p in parts)
    ):
        raise InvalidToken(f"malformed continuation token: bad {what} position")
    return parts


def decode_text(position: bytes, encoding: str) -> str:
    try:
        return position.decode(encoding, "surrogatepass" if encoding == "utf-8" else "strict")
    except UnicodeDecodeError as exc:
        raise InvalidToken("malformed continuation token: bad position") from exc
