"""AuthZEN's searches asked of the engine, and their page tokens.

Subject search is lookup-subject, resource search lookup-entity, and action search
subject-permission: the relations and permissions of the resource's type that the subject has,
in the schema's order. The properties of the entity a search names by id become its contextual
attributes, as in an evaluation (those of the searched-for entity, which has no id, are
ignored); a declared one that does not fit its type fails the search (400).

Every page of a search reads the snapshot and schema version of its first page, so the whole
answer is the same on each, and a page is an offset into it; each page also says how many
results there are (``total``). A page token holds the offset, that snapshot and schema version,
and a fingerprint of the search and of its request without the token: the spec says a request
with a token must repeat the first request (entities, context and page limit), and one that does
not is refused.

Runs on a worker thread: everything here is synchronous.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from api.authzen.decisions import Pinned, context_of
from api.errors import bad_request
from api.models.authzen import ActionSearchRequest, ResourceSearchRequest, SubjectSearchRequest
from engine.engine import Engine
from engine.errors import UnknownEntityType
from engine.types import (
    DEFAULT_LOOKUP_PAGE_SIZE,
    MAX_BULK_CHECK_ITEMS,
    CheckItem,
    CheckResult,
    Entity,
    SubjectReference,
)
from storage.base import Subject

_TOKEN_FORM = 1  # the first element of every token, so a later form can be told apart
_BAD_TOKEN = "ERROR_CODE_INVALID_CONTINUOUS_TOKEN"
#: The engine's lookups are asked for every id at once: a search pages them itself, by offset,
#: which is stable because every page reads the first page's snapshot.
_ALL = sys.maxsize
#: Longer than any token issued (a fingerprint, a snap token, a schema version, an offset).
_MAX_TOKEN = 2048


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a search continues: its first page's snapshot and schema version, and the cursor."""

    snap_token: str
    schema_version: str
    cursor: str


@dataclass(frozen=True, slots=True)
class Found:
    """One page of a search: ids (or action names), the token of the next page ("" if none)
    and how many results the whole search has."""

    items: list[str]
    next_token: str
    total: int


def fingerprint(search: str, body: BaseModel) -> str:
    """What a request with a token must repeat: the search (``subject``, ``resource`` or
    ``action``) and the whole request but the token."""
    dumped = [search, body.model_dump(mode="json", exclude={"page": {"token"}})]
    text = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def issue_token(print_: str, pinned: Pinned, cursor: str) -> str:
    """The ``next_token`` of a page: "" after the last one."""
    if not cursor:
        return ""
    data = [_TOKEN_FORM, print_, pinned.snap_token, pinned.schema_version, cursor]
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(token: str, print_: str) -> Resume | None:
    """The search a ``page.token`` continues (None without one); 400 for a token this server
    did not issue, or one that came with another request than the first page's."""
    if not token:
        return None
    data = None
    if len(token) <= _MAX_TOKEN:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, RecursionError):
            data = None
    if (
        not isinstance(data, list)
        or len(data) != 5
        or data[0] != _TOKEN_FORM
        or not all(isinstance(part, str) for part in data[1:])
    ):
        raise bad_request("page.token", "not a page token this server issued", _BAD_TOKEN)
    if data[1] != print_:
        raise bad_request(
            "page.token",
            "this token continues another search: a request with a token must repeat the "
            "first page's subject, action, resource, context and page limit",
            _BAD_TOKEN,
        )
    return Resume(data[2], data[3], data[4])


def _pinned(engine: Engine, tenant: str, resume: Resume | None) -> Pinned:
    if resume is None:
        return Pinned.latest(engine, tenant)
    return Pinned.at(engine, tenant, resume.snap_token, resume.schema_version)


def _offset(resume: Resume | None) -> int:
    if resume is None:
        return 0
    if not resume.cursor.isdigit():
        raise bad_request("page.token", "not a page token this server issued", _BAD_TOKEN)
    return int(resume.cursor)


def _page(every: Sequence[str], offset: int, limit: int, pinned: Pinned, print_: str) -> Found:
    """The page at ``offset`` of the whole answer, which is the same on every page: the
    snapshot and schema version are the first page's."""
    end = offset + (limit or DEFAULT_LOOKUP_PAGE_SIZE)
    cursor = str(end) if end < len(every) else ""
    return Found(list(every[offset:end]), issue_token(print_, pinned, cursor), len(every))


def search_subjects(
    engine: Engine, tenant: str, body: SubjectSearchRequest, resume: Resume | None, print_: str
) -> Found:
    """Subjects of ``subject.type`` that can do the action on the resource (lookup-subject)."""
    offset = _offset(resume)
    pinned = _pinned(engine, tenant, resume)
    resource = Entity(body.resource.type, body.resource.id)
    context = context_of(pinned.schema, body.context, resource=(resource, body.resource.properties))
    every = engine.lookup_subject(
        tenant,
        resource,
        body.action.name,
        SubjectReference(body.subject.type),
        pinned.options(context),
        page_size=_ALL,
    ).ids
    return _page(every, offset, body.page.limit, pinned, print_)


def search_resources(
    engine: Engine, tenant: str, body: ResourceSearchRequest, resume: Resume | None, print_: str
) -> Found:
    """Resources of ``resource.type`` the subject can do the action on (lookup-entity)."""
    offset = _offset(resume)
    pinned = _pinned(engine, tenant, resume)
    subject = body.subject
    context = context_of(
        pinned.schema, body.context, subject=(Entity(subject.type, subject.id), subject.properties)
    )
    every = engine.lookup_entity(
        tenant,
        body.resource.type,
        body.action.name,
        Subject(subject.type, subject.id),
        pinned.options(context),
        page_size=_ALL,
    ).ids
    return _page(every, offset, body.page.limit, pinned, print_)


def search_actions(
    engine: Engine, tenant: str, body: ActionSearchRequest, resume: Resume | None, print_: str
) -> Found:
    """The relations and permissions of the resource the subject has, in the schema's order
    (subject-permission, but one that cannot be evaluated, say a rule missing its context
    data, is left out rather than failing the search, as it would be denied)."""
    offset = _offset(resume)
    pinned = _pinned(engine, tenant, resume)
    subject, resource = body.subject, body.resource
    entity = Entity(resource.type, resource.id)
    context = context_of(
        pinned.schema,
        body.context,
        (Entity(subject.type, subject.id), subject.properties),
        (entity, resource.properties),
    )
    definition = pinned.schema.entities.get(entity.type)
    if definition is None:
        raise UnknownEntityType.of(entity.type)
    candidates = [*definition.relations, *definition.permissions]
    who = Subject(subject.type, subject.id)
    names = []
    for start in range(0, len(candidates), MAX_BULK_CHECK_ITEMS):
        chunk = candidates[start : start + MAX_BULK_CHECK_ITEMS]
        items = [CheckItem(entity, name, who) for name in chunk]
        results = engine.bulk_check(tenant, items, pinned.options(context))
        names += [
            n
            for n, r in zip(chunk, results, strict=True)
            if isinstance(r, CheckResult) and r.allowed
        ]
    return _page(names, offset, body.page.limit, pinned, print_)
