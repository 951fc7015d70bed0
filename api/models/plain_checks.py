"""The usual check body, read without the models: what a Permify client sends for each check.

Validating a check body with its models (``CheckRequest``: five models, five patterns) and
turning it into the engine's question took about 7 µs a check, the biggest part of the server's
own time in a cached check over HTTP; reading the body with the ``json`` module and checking
it by hand took as long. ``plain_check`` instead matches the body's text against a regular
expression of the usual shape, about 2.7 µs all told (compact JSON with the members in this
order is tried first, with a simpler expression; then any layout)::

    {"metadata": {"snap_token": "", "schema_version": "", "depth": 20},
     "entity": {"type": "document", "id": "1"}, "permission": "view",
     "subject": {"type": "user", "id": "ann", "relation": ""}}

in this order of keys (JSON whitespace anywhere between tokens), with ``metadata`` (first, when
there), each of its keys (in any order, once) and the subject's ``relation`` optional, no other
key, every name and id matching its pattern, the snap token and schema version printable ASCII
without escapes, and the depth a plain integer from 3 to 2**31 - 1. Anything else (another
order, a camelCase or unknown key, ``context`` or ``arguments``, another JSON type, an escape,
a name that does not match, bytes that are not ASCII, a byte-order mark) gives None, and the
caller validates the body with the models, which say what is wrong. So a body this reads gives
exactly the check the models would have given.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from engine.types import DEFAULT_DEPTH, EMPTY_CONTEXT, Entity, RequestOptions
from storage.base import Subject
from storage.identifiers import NAME, SUBJECT_ID

_W = r"[ \t\n\r]*"  # JSON whitespace
#: A string's text: printable ASCII but the quote and the backslash (so no escapes).
_TEXT = r"[\x20\x21\x23-\x5b\x5d-\x7e]*"
_DEPTH = r"0|[1-9][0-9]{0,9}"


#: One of ``metadata``'s members, as the groups (key, text, digits): a string for the snap
#: token and the schema version, an integer for the depth (``_options`` checks which is which).
_MEMBER = rf'"(snap_token|schema_version|depth)"{_W}:{_W}(?:"({_TEXT})"|({_DEPTH}))'
#: One to three members, each in its own groups, and the whitespace after them. No two
#: whitespace runs may meet anywhere in the pattern: with nothing between them, a body of many
#: spaces that fails to match would be tried once per way of splitting them (quadratic time).
_MEMBERS = rf"(?:{_MEMBER}(?:{_W},{_W}{_MEMBER}(?:{_W},{_W}{_MEMBER})?)?{_W})?"


def _key(name: str) -> str:
    return rf'"{name}"{_W}:{_W}'


def _object(*members: str) -> str:
    return rf"\{{{_W}{f'{_W},{_W}'.join(members)}{_W}\}}"


_STRING_ID = rf'"({SUBJECT_ID})"'
_STRING_NAME = rf'"({NAME})"'
_BODY = re.compile(
    rf"{_W}\{{{_W}"
    rf"(?:{_key('metadata')}\{{{_W}{_MEMBERS}\}}{_W},{_W})?"
    + _key("entity")
    + _object(_key("type") + _STRING_NAME, _key("id") + _STRING_ID)
    + rf"{_W},{_W}{_key('permission')}{_STRING_NAME}{_W},{_W}{_key('subject')}"
    + rf"\{{{_W}{_key('type')}{_STRING_NAME}{_W},{_W}{_key('id')}{_STRING_ID}"
    + rf'(?:{_W},{_W}{_key("relation")}"(\.\.\.|{NAME})?")?{_W}\}}'
    + rf"{_W}\}}{_W}"
)
#: The usual body as Permify's clients and most JSON encoders write it: compact, with
#: ``metadata`` and its three members in the order above. Tried first: it matches in about
#: 0.6 µs where `_BODY`, which allows any layout, takes 1.5 µs. Its groups are the snap token,
#: the schema version, the depth's digits, then `_BODY`'s last six.
_COMPACT = re.compile(
    rf'\{{"metadata":\{{"snap_token":"({_TEXT})","schema_version":"({_TEXT})",'
    rf'"depth":({_DEPTH})\}},"entity":\{{"type":{_STRING_NAME},"id":{_STRING_ID}\}},'
    rf'"permission":{_STRING_NAME},"subject":\{{"type":{_STRING_NAME},"id":{_STRING_ID}'
    rf'(?:,"relation":"(\.\.\.|{NAME})?")?\}}\}}'
)
_MAX_DEPTH = 2**31 - 1  # the models' ``Depth`` bound
#: Longer bodies are left to the models: a usual check body is a few hundred bytes, and the
#: match runs on the event loop.
MAX_PLAIN_BYTES = 4096
_DEFAULT_OPTIONS = RequestOptions("", "", DEFAULT_DEPTH, EMPTY_CONTEXT)


class PlainCheck(NamedTuple):
    """One check, as the engine takes it."""

    entity: Entity
    permission: str
    subject: Subject
    options: RequestOptions


def plain_check(raw: bytes) -> PlainCheck | None:
    """``raw`` read as a check body of the usual shape (see the module), or None when it is
    not one."""
    if len(raw) > MAX_PLAIN_BYTES or not raw.isascii():
        return None
    text = raw.decode("ascii")
    compact = _COMPACT.fullmatch(text)
    options: RequestOptions | None
    if compact is not None:
        groups = compact.groups()
        depth = int(groups[2])
        if not 3 <= depth <= _MAX_DEPTH:
            return None
        options = RequestOptions(groups[0], groups[1], depth, EMPTY_CONTEXT)
        asked = groups[3:]
    else:
        found = _BODY.fullmatch(text)
        if found is None:
            return None
        groups = found.groups()
        options = _DEFAULT_OPTIONS if groups[0] is None else _options(groups[:9])
        if options is None:
            return None
        asked = groups[9:]
    entity_type, entity_id, permission, subject_type, subject_id, relation = asked
    return PlainCheck(
        Entity(entity_type, entity_id),
        permission,
        Subject(
            subject_type, subject_id, "" if relation is None or relation == "..." else relation
        ),
        options,
    )


def _options(members: tuple[str | None, ...]) -> RequestOptions | None:
    """The options of ``metadata``'s members (``_MEMBERS``' groups), or None when a key comes
    twice, has a value of the other type, or the depth is out of the models' bounds."""
    snap_token = schema_version = digits = None
    for at in (0, 3, 6):
        key = members[at]
        if key is None:
            break
        if key == "depth":
            if digits is not None:
                return None
            digits = members[at + 2]
            if digits is None:
                return None
        else:
            text = members[at + 1]
            if text is None:
                return None
            if key == "snap_token":
                if snap_token is not None:
                    return None
                snap_token = text
            else:
                if schema_version is not None:
                    return None
                schema_version = text
    depth = DEFAULT_DEPTH if digits is None else int(digits)
    if not 3 <= depth <= _MAX_DEPTH:
        return None
    return RequestOptions(snap_token or "", schema_version or "", depth, EMPTY_CONTEXT)
