"""Requests and answers of the engine: small immutable values, no wire format.

Tuples, subjects and attributes are the storage types (``storage.base``); this module adds what
only the engine needs: an entity reference, the per-request context, and results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.errors import InvalidRequest
from storage.base import Attribute, Subject, Tuple

#: Permify's default for check and lookups when a request gives no depth (the API and the
#: validation runner pass their own).
DEFAULT_DEPTH = 50
#: Requests may ask for any depth; evaluation recurses once per dispatch, so the budget used is
#: capped here (a path longer than this is an error, never a silent "denied"). The engine also
#: caps it to what Python's recursion limit can follow (`FRAMES_PER_DEPTH` frames a unit).
MAX_DEPTH = 1000
FRAMES_PER_DEPTH = 4
#: Frames kept free for the callers of the engine (a web server, a test runner).
RESERVED_FRAMES = 100
#: Permify's default page size for lookups.
DEFAULT_LOOKUP_PAGE_SIZE = 1000
MAX_BULK_CHECK_ITEMS = 100


class Entity(NamedTuple):
    """``type:id``."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Entity:
        """Parse ``type:id`` (exactly one ``:``, both parts non-empty)."""
        parts = text.split(":")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise InvalidRequest(f"entity {text!r} is not of the form type:id")
        return cls(parts[0], parts[1])


def parse_subject(text: str) -> Subject:
    """Parse ``type:id`` or ``type:id#relation`` (``#...`` means no relation)."""
    head, sep, relation = text.partition("#")
    if sep and (not relation or "#" in relation):
        raise InvalidRequest(f"subject {text!r} is not of the form type:id[#relation]")
    entity = Entity.parse(head)
    return Subject(entity.type, entity.id, "" if relation == "..." else relation)


def subject_text(subject: Subject) -> str:
    text = f"{subject.type}:{subject.id}"
    return f"{text}#{subject.relation}" if subject.relation else text


class SubjectReference(NamedTuple):
    """The kind of subject a lookup-subject asks for: ``type`` or ``type#relation``."""

    type: str
    relation: str = ""

    def __str__(self) -> str:
        return f"{self.type}#{self.relation}" if self.relation else self.type

    @classmethod
    def parse(cls, text: str) -> SubjectReference:
        head, sep, relation = text.partition("#")
        if not head or ":" in head or (sep and (not relation or "#" in relation)):
            raise InvalidRequest(f"subject reference {text!r} is not of the form type[#relation]")
        return cls(head, "" if relation == "..." else relation)


@dataclass(frozen=True, slots=True)
class Context:
    """What one request adds to the snapshot, visible to that request only.

    ``tuples`` and ``attributes`` are read as if stored (Permify's contextual tuples and
    attributes; not validated against the schema); ``data`` is ``context.data`` in rules.
    """

    tuples: tuple[Tuple, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.tuples and not self.attributes and not self.data


EMPTY_CONTEXT = Context()


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """How one request is evaluated, the same for every operation.

    ``snap_token``: the snapshot to read (consistency; "" is the latest revision).
    ``schema_version``: the schema version to evaluate with ("" is the newest).
    ``depth``: the depth budget (each nested relation, permission or tuple hop costs 1).
    ``context``: contextual tuples, attributes and data, visible to this request only.
    """

    snap_token: str = ""
    schema_version: str = ""
    depth: int = DEFAULT_DEPTH
    context: Context = EMPTY_CONTEXT


DEFAULT_OPTIONS = RequestOptions()


class CheckResult(NamedTuple):
    """``allowed`` and Permify's ``check_count`` (dispatches made; 0 when answered by cache).
    A named tuple: every check makes one, and a frozen dataclass costs several times more to
    make."""

    allowed: bool
    check_count: int = 0


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One item of a bulk check."""

    entity: Entity
    permission: str
    subject: Subject


@dataclass(frozen=True, slots=True)
class LookupPage:
    """Ids in ascending string order and the cursor of the next page ("" when complete)."""

    ids: tuple[str, ...]
    cursor: str = ""
