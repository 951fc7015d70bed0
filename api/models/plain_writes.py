"""The usual tuple write body, read without the models: what a bulk import sends.

Validating a data write body with its models (``DataWriteRequest``: three frozen models a
tuple, six patterns) was the biggest part of a server's time in a bulk import (5.3 µs a tuple
on the bench's batches, against 2.6 µs read here).
``plain_write`` reads the body with the ``json`` module and checks the models' rules by hand,
but only for a body of exactly the usual shape::

    {"metadata": {"schema_version": "..."},
     "tuples": [{"entity": {"type": "doc", "id": "1"}, "relation": "viewer",
                 "subject": {"type": "user", "id": "ann", "relation": "..."}}, ...],
     "attributes": []}

with ``metadata``, ``attributes`` and the subject's ``relation`` optional, no other key, and
every value a string matching its pattern. Anything else (a camelCase or unknown key, another
JSON type, an id that does not match, bytes that are not UTF-8 JSON, a byte-order mark) gives
None, and the caller validates the body with the models, which say what is wrong. So a body
this reads gives exactly the tuples and schema version the models would have given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from storage.base import Tuple
from storage.identifiers import NAME, SUBJECT_ID


def _column_of(element: str) -> re.Pattern[str]:
    """Values matching ``element``, joined by newlines."""
    return re.compile(rf"(?:{element})(?:\n(?:{element}))*")


#: Per column (entity type, entity id, relation, subject type, subject id, subject relation).
_COLUMN_PATTERNS = tuple(
    _column_of(p) for p in (NAME, SUBJECT_ID, NAME, NAME, SUBJECT_ID, rf"(?:\.\.\.|{NAME})?")
)

_BODY_KEYS = frozenset({"metadata", "tuples", "attributes"})
_TUPLE_KEYS = frozenset({"entity", "relation", "subject"})
_OBJECT_KEYS = frozenset({"type", "id"})
_USERSET_KEYS = frozenset({"type", "id", "relation"})
_VERSION_KEYS = (frozenset({"schema_version"}), frozenset({"schemaVersion"}))


@dataclass(frozen=True, slots=True)
class PlainWrite:
    """A tuple write body's schema version (``""``: the head) and tuples."""

    schema_version: str
    tuples: list[Tuple]


def plain_write(raw: bytes, *, tuples_required: bool) -> PlainWrite | None:
    """``raw`` read as a tuple write body of the usual shape (see the module), or None when it
    is not one. ``tuples_required``: an empty ``tuples`` list is not one either (the
    relationships write refuses it)."""
    try:
        # Decoded first: json.loads would accept a byte-order mark the models refuse.
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if type(body) is not dict or not body.keys() <= _BODY_KEYS:
        return None
    version = _schema_version(body.get("metadata", {}))
    attributes = body.get("attributes", [])
    items = body.get("tuples", [])
    if version is None or type(attributes) is not list or attributes or type(items) is not list:
        return None
    if tuples_required and not items:
        return None
    columns: tuple[list[object], ...] = ([], [], [], [], [], [])
    et, eid, rel, st, sid, srel = columns
    for item in items:
        if type(item) is not dict or item.keys() != _TUPLE_KEYS:
            return None
        entity, subject = item["entity"], item["subject"]
        if type(entity) is not dict or entity.keys() != _OBJECT_KEYS or type(subject) is not dict:
            return None
        keys = subject.keys()
        if keys == _OBJECT_KEYS:
            srel.append("")
        elif keys == _USERSET_KEYS:
            relation = subject["relation"]
            srel.append("" if relation == "..." else relation)
        else:
            return None
        et.append(entity["type"])
        eid.append(entity["id"])
        rel.append(item["relation"])
        st.append(subject["type"])
        sid.append(subject["id"])
    if items and not all(
        _matches(column, pattern) for column, pattern in zip(columns, _COLUMN_PATTERNS, strict=True)
    ):
        return None
    return PlainWrite(
        version,
        [Tuple(*parts) for parts in zip(*columns, strict=True)],
    )


def _matches(column: list[object], pattern: re.Pattern[str]) -> bool:
    """Whether every value of ``column`` is a string matching ``pattern``'s element, checked
    in one match of the column's strings joined by newlines (which no element may hold, so the
    count of newlines tells that each piece is one value)."""
    try:
        joined = "\n".join(column)  # type: ignore[arg-type]
    except TypeError:  # a value that is not a string
        return False
    return joined.count("\n") == len(column) - 1 and pattern.fullmatch(joined) is not None


def _schema_version(metadata: object) -> str | None:
    """``metadata``'s schema version, when it is ``{}`` or names it once, as a string."""
    if type(metadata) is not dict:
        return None
    if not metadata:
        return ""
    if metadata.keys() not in _VERSION_KEYS:
        return None
    (version,) = metadata.values()
    return version if type(version) is str else None
