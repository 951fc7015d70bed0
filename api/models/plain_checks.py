"""The usual check body, read without the models: what a Permify client sends for each check.

Validating a check body with its models (``CheckRequest``: five models, five patterns) was the
biggest part of the server's own time in a cached check over HTTP. ``plain_check`` reads the
body with the ``json`` module and checks the models' rules by hand, but only for a body of
exactly the usual shape::

    {"metadata": {"snap_token": "", "schema_version": "", "depth": 20},
     "entity": {"type": "document", "id": "1"}, "permission": "view",
     "subject": {"type": "user", "id": "ann", "relation": ""}}

with ``metadata`` (and each of its keys) and the subject's ``relation`` optional, no other key,
every name and id a string matching its pattern, the snap token and schema version ASCII
strings and the depth an integer from 3 to 2**31 - 1. Anything else (a camelCase or unknown
key, ``context`` or ``arguments``, another JSON type, a name that does not match, bytes that
are not UTF-8 JSON, a byte-order mark) gives None, and the caller validates the body with the
models, which say what is wrong. So a body this reads gives exactly the check the models would
have given.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from engine.types import DEFAULT_DEPTH, EMPTY_CONTEXT, Entity, RequestOptions
from storage.base import Subject
from storage.identifiers import NAME, SUBJECT_ID

_name = re.compile(NAME).fullmatch
_id = re.compile(SUBJECT_ID).fullmatch
_relation = re.compile(rf"\.\.\.|{NAME}").fullmatch

_BODY_KEYS = frozenset({"metadata", "entity", "permission", "subject"})
_REQUIRED_KEYS = frozenset({"entity", "permission", "subject"})
_METADATA_KEYS = frozenset({"snap_token", "schema_version", "depth"})
_OBJECT_KEYS = frozenset({"type", "id"})
_USERSET_KEYS = frozenset({"type", "id", "relation"})
_MAX_DEPTH = 2**31 - 1  # the models' ``Depth`` bound


class PlainCheck(NamedTuple):
    """One check, as the engine takes it."""

    entity: Entity
    permission: str
    subject: Subject
    options: RequestOptions


def plain_check(raw: bytes) -> PlainCheck | None:
    """``raw`` read as a check body of the usual shape (see the module), or None when it is
    not one."""
    try:
        # Decoded first: json.loads would accept a byte-order mark the models refuse.
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if type(body) is not dict:
        return None
    keys = body.keys()
    if not (_REQUIRED_KEYS <= keys <= _BODY_KEYS):
        return None
    entity, permission, subject = body["entity"], body["permission"], body["subject"]
    if (
        type(entity) is not dict
        or entity.keys() != _OBJECT_KEYS
        or type(subject) is not dict
        or type(permission) is not str
        or not _name(permission)
    ):
        return None
    subject_keys = subject.keys()
    if subject_keys == _OBJECT_KEYS:
        relation = ""
    elif subject_keys == _USERSET_KEYS:
        relation = subject["relation"]
        if type(relation) is not str or (relation and not _relation(relation)):
            return None
        if relation == "...":
            relation = ""
    else:
        return None
    entity_type, entity_id = entity["type"], entity["id"]
    subject_type, subject_id = subject["type"], subject["id"]
    for name in (entity_type, subject_type):
        if type(name) is not str or not _name(name):
            return None
    for identifier in (entity_id, subject_id):
        if type(identifier) is not str or not _id(identifier):
            return None
    options = _options(body.get("metadata", {}))
    if options is None:
        return None
    return PlainCheck(
        Entity(entity_type, entity_id),
        permission,
        Subject(subject_type, subject_id, relation),
        options,
    )


def _options(metadata: object) -> RequestOptions | None:
    """``metadata``'s snap token, schema version and depth (each optional) as the options of a
    check without context, or None for any other metadata."""
    if type(metadata) is not dict or not metadata.keys() <= _METADATA_KEYS:
        return None
    snap_token = metadata.get("snap_token", "")
    schema_version = metadata.get("schema_version", "")
    depth = metadata.get("depth", DEFAULT_DEPTH)
    # ASCII only: json.loads takes a lone surrogate escape the models refuse.
    for text in (snap_token, schema_version):
        if type(text) is not str or not text.isascii():
            return None
    if type(depth) is not int or not 3 <= depth <= _MAX_DEPTH:
        return None
    return RequestOptions(snap_token, schema_version, depth, EMPTY_CONTEXT)
