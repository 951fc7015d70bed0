"""The keys of the engine's caches: the only place they are built.

Two caches, both plain dicts shared by the requests at one (tenant, schema version, revision):

* **Results** (`result_key`): "is subject S in entity E#name?", proven True or False.
* **Reads** (`read_key`, `objects_prefix`, `whole_entity_marker`, `attribute_key`): what the
  snapshot reader answered, so a request never reads the same thing twice.

Keys are strings (or small tuples of strings), which cost the garbage collector nothing. Every
key is injective: no two questions share one, whatever the ids hold (ids may contain any of
``@ . : + - _``, and the parts are joined with control characters or prefixed by their lengths).
"""

from __future__ import annotations

from storage.base import Subject

SubjectKey = tuple[str, str]


def subject_key(s: Subject) -> SubjectKey:
    """The subject's part of a result key: the lengths of its type and relation, and its type,
    relation and id. A request computes it once for the subject most of its questions are
    about."""
    return f"{len(s[0])}.{len(s[2])}", f"{s[0]}{s[2]}{s[1]}"


def result_key(entity_type: str, eid: str, name: str, subject: SubjectKey) -> str:
    """The results-cache key of ``entity_type:eid#name`` for the subject whose `subject_key` is
    ``subject``: the lengths of all parts but the last, then the parts, so no two questions
    share a key."""
    sl, st = subject
    return f"{len(entity_type)}.{len(name)}.{len(eid)}.{sl}\x00{entity_type}{name}{eid}{st}"


def read_prefix(entity_type: str, relation: str) -> str:
    """`read_key` without the id: an evaluator of ``entity_type#relation`` builds it once."""
    return f"{entity_type}\x00{relation}\x00"


def read_key(entity_type: str, relation: str, eid: str) -> str:
    """The reads-cache key of the subjects stored in ``entity_type:eid#relation``. Schema names
    hold no control characters and the id comes last, so no two reads share a key."""
    return f"{entity_type}\x00{relation}\x00{eid}"


def objects_prefix(entity_type: str, relation: str) -> str:
    """The key, less the id, of the distinct (type, id) objects of a relation, cached beside
    its read (``\\x01`` after the type: never a read key). An evaluator of a tuple-to-userset
    builds it once and adds the id."""
    return f"{entity_type}\x01{relation}\x00"


def whole_entity_marker(entity_type: str, eid: str) -> str:
    """The key marking an entity with too many tuples to read in one scan (``\\x02``)."""
    return f"{entity_type}\x02{eid}"


def attribute_key(entity_type: str, eid: str, name: str) -> tuple[str, str, str]:
    """The reads-cache key of a stored attribute (a tuple: never equal to a string key)."""
    return (entity_type, eid, "$" + name)
