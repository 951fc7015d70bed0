"""Permify's string forms of tuples and attributes, and the patterns their parts must match.

``parse_tuple`` reads ``type:id#relation@subject_type:subject_id[#subject_relation]`` and
``parse_attribute`` reads ``type:id$attribute|value_type:value``: the forms validation files and
data bundles use. ``parse_scalar`` reads one attribute value as Go's strconv does (Permify parses
attribute strings with it). This module imports no storage backend and no YAML, so anything that
reads these forms can use it cheaply.
"""

from __future__ import annotations

import math
import re
from typing import cast

from dsl.schema import AttributeType
from engine.errors import InvalidRequest
from storage.base import Attribute, AttributeValue, Tuple
from storage.identifiers import NAME, SUBJECT_ID

#: Entity types, relations, attribute names: the schema language's names (letters, digits and
#: `_`, not starting with a digit, at most 64 characters).
NAME_PATTERN = re.compile(NAME)
#: Entity and subject ids: Permify's pattern (``@`` and ``:`` included; ``*`` only alone).
ID_PATTERN = re.compile(SUBJECT_ID)

_GO_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
_GO_FALSE = frozenset({"0", "f", "F", "false", "False", "FALSE"})
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.IGNORECASE
)
_INT32 = (-(2**31), 2**31 - 1)
_ATTRIBUTE_FORM = "entity_type:entity_id$attribute|value_type:value"


def parse_tuple(text: str) -> Tuple:
    """Parse ``type:id#relation@subject_type:subject_id[#subject_relation]`` (``#...`` = none).

    Raises InvalidRequest saying what the form is."""
    try:
        return Tuple.parse(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def parse_scalar(kind: AttributeType, raw: str) -> bool | int | float | str:
    """One value of scalar type ``kind`` as Go's strconv reads it; ValueError saying why not."""
    if kind is AttributeType.STRING:
        return raw
    if kind is AttributeType.BOOLEAN:
        if raw in _GO_TRUE or raw in _GO_FALSE:
            return raw in _GO_TRUE
        raise ValueError(f"{shown(raw)} is not a boolean (true or false)")
    if kind is AttributeType.INTEGER:
        if not _INTEGER.fullmatch(raw):
            raise ValueError(f"{shown(raw)} is not an integer")
        # More digits than any int32 has: out of range (and no huge int() conversion).
        if len(raw.lstrip("+-").lstrip("0")) > 10:
            raise ValueError(f"{shown(raw)} is out of range: integer is 32-bit")
        number = int(raw)
        if not _INT32[0] <= number <= _INT32[1]:
            raise ValueError(f"{raw} is out of range: integer is 32-bit ({_INT32[0]}..{_INT32[1]})")
        return number
    if kind is AttributeType.DOUBLE:
        if not _DOUBLE.fullmatch(raw):
            raise ValueError(f"{shown(raw)} is not a double")
        value = float(raw)
        if math.isinf(value) and "inf" not in raw.lower():
            raise ValueError(f"{shown(raw)} is out of range for a double")
        return value
    raise AssertionError(f"not a scalar attribute type: {kind}")


def shown(raw: str, limit: int = 40) -> str:
    """``raw`` quoted for a message, cut short when long (a value may be megabytes)."""
    return repr(raw) if len(raw) <= limit else f"{raw[:limit]!r}... ({len(raw)} characters)"


def parse_attribute(text: str) -> Attribute:
    """Parse Permify's ``type:id$attribute|value_type:value``.

    ``value_type`` is ``boolean``, ``string``, ``integer`` (32-bit) or ``double``, each optionally
    with ``[]``; array values are comma-separated, without quoting. Like Permify, the value may
    not contain ``:`` or ``|``. Raises InvalidRequest naming the string and what was wrong.
    """

    def bad(reason: str) -> InvalidRequest:
        return InvalidRequest(f"invalid attribute {text!r}: {reason}")

    parts = text.strip().split("|")
    if len(parts) != 2:
        raise bad(f"expected {_ATTRIBUTE_FORM} (exactly one `|`)")
    entity_part, value_part = parts
    entity_and_name = entity_part.split("$")
    if len(entity_and_name) != 2 or not entity_and_name[1]:
        raise bad(f"expected {_ATTRIBUTE_FORM} (exactly one `$`, then the attribute name)")
    entity = entity_and_name[0].split(":")
    if len(entity) != 2 or not entity[0] or not entity[1]:
        raise bad(f"expected {_ATTRIBUTE_FORM} (the entity is type:id)")
    typed = value_part.split(":")
    if len(typed) != 2:
        raise bad(f"expected {_ATTRIBUTE_FORM} (one `:` after `|`; the value may not contain `:`)")
    keyword, raw = typed
    kind = value_type(keyword)
    if kind is None:
        raise bad(
            f"unknown value type {keyword!r}: expected boolean, string, integer or double, "
            "optionally with []"
        )
    try:
        items = raw.split(",") if kind.is_array else [raw]
        values = [parse_scalar(kind.element, item) for item in items]
    except ValueError as exc:
        raise bad(str(exc)) from exc
    value = cast(AttributeValue, tuple(values) if kind.is_array else values[0])
    return Attribute(entity[0], entity[1], entity_and_name[1], kind, value)


def value_type(keyword: str) -> AttributeType | None:
    """The attribute type a string form names (``integer``, ``string[]``), or None."""
    return AttributeType.from_keyword(keyword.removesuffix("[]"), keyword.endswith("[]"))
