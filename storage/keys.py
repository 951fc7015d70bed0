"""LevelDB key encoding: the only place keys are built or taken apart.

Layout (``|`` only separates the parts here; it is not a byte)::

    00 'M' name                          store metadata (format, store id, GC horizon)
    00 'T' c(tenant)                     tenant registry
    00 'V' rev8                          revision log: commit time and tenant of each write
    00 'L' c(namespace) c(part)...       claims: the tenant holding each (its id, UTF-8)
    01 c(tenant) 'F' c(et) c(eid) c(rel) c(st) c(sid) c(srel) [02]   forward tuple index
    01 c(tenant) 'R' c(st) c(sid) c(srel) c(et) c(rel) c(eid) [02]   reverse tuple index
    01 c(tenant) 'A' c(et) c(eid) c(name) [02]                       attributes
    01 c(tenant) 'D' rev8 ('F' | 'A') body                           history to trim at rev8
    01 c(tenant) 'C' rev8                                            change log of one write
    01 c(tenant) 'S' c(version)                                      schema versions
    01 c(tenant) 'X' c(keyspace) c(part)...                          records
    01 c(tenant) 'L' c(namespace) c(part)...                         the tenant's claims

Each tuple or attribute has at most two keys: its *live* key (the body, present while it lives;
the value starts with the 8-byte revision that created it) and its *history* key (the body and
one ``HISTORY`` byte; the value lists the (created, deleted) revisions of its earlier versions).
Both are exact keys, so a write's "does this already exist?" is one bloom-filtered ``get``, and
the history key sorts right after the live key, so a range scan meets both together.
``rev8`` is a revision as 8 big-endian bytes, whose byte order is numeric order.

``c(s)`` encodes one string component: its UTF-8 bytes (lone surrogates allowed) with every
``00`` byte escaped as ``00 FF``, then the terminator ``00 01``. So:

* it is injective: the terminator is the only ``00 01`` in an encoded component, so a sequence
  of components splits back exactly, whatever the strings hold (separators, NUL, any unicode);
* it preserves order: components compare like the strings' code points, and a shorter string
  sorts before any string it is a prefix of;
* a prefix of whole components never matches a key whose component merely starts with the same
  text (``doc`` never matches ``docs``), so each tenant, entity or relation owns a contiguous
  range that no other value's range overlaps.
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.base import Tuple

TERMINATOR = b"\x00\x01"
ESCAPED_NUL = _ESCAPED_NUL = b"\x00\xff"
HISTORY = b"\x02"
SEPARATOR = _SEPARATOR = TERMINATOR.decode()
MAX_REVISION = (1 << 64) - 1

META = b"\x00M"
FORMAT_KEY = META + b"format"
STORE_ID_KEY = META + b"store-id"
HORIZON_KEY = META + b"gc-horizon"
#: Present once every claim is written (at creation; after a backfill in older stores).
CLAIMS_COMPLETE_KEY = META + b"claims-complete"
TENANTS = b"\x00T"
REVISIONS = b"\x00V"
CLAIMS = b"\x00L"
TENANT = b"\x01"

FORWARD = b"F"
REVERSE = b"R"
ATTRIBUTES = b"A"
DEAD = b"D"
CHANGES = b"C"
SCHEMAS = b"S"
RECORDS = b"X"
TENANT_CLAIMS = b"L"
#: (entity type, relation, subject type, subject relation) of every tuple ever written.
KINDS = b"K"


def component(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    if b"\x00" in raw:
        raw = raw.replace(b"\x00", _ESCAPED_NUL)
    return raw + TERMINATOR


def components(parts: Iterable[str]) -> bytes:
    """``component`` of each part, concatenated (one join and one encode in the usual case)."""
    parts = tuple(parts)
    text = _SEPARATOR.join(parts)
    if text.count("\x00") != len(parts) - 1:  # a part holds NUL: escape part by part
        return b"".join([component(p) for p in parts])
    return (text + _SEPARATOR).encode("utf-8", "surrogatepass") if parts else b""


def split(body: bytes) -> list[str]:
    """Decode a run of whole components back to strings."""
    if _ESCAPED_NUL not in body:  # the usual case: decode once, split the text
        texts = body.decode("utf-8", "surrogatepass").split(_SEPARATOR)
        if texts.pop() != "":
            raise ValueError("key body does not end with a component terminator")
        return texts
    parts = body.split(TERMINATOR)
    if parts.pop() != b"":
        raise ValueError("key body does not end with a component terminator")
    return [p.replace(_ESCAPED_NUL, b"\x00").decode("utf-8", "surrogatepass") for p in parts]


def rev8(revision: int) -> bytes:
    return revision.to_bytes(8, "big")


def revision_of(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of only FF bytes has no end")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def tenant_prefix(tenant: str) -> bytes:
    return TENANT + component(tenant)


def tenant_registry_key(tenant: str) -> bytes:
    return TENANTS + component(tenant)


def forward_prefix(tp: bytes, *parts: str) -> bytes:
    """Prefix of forward keys: (entity_type, entity_id, relation, subject...) leading parts."""
    return tp + FORWARD + components(parts)


def reverse_prefix(tp: bytes, *parts: str) -> bytes:
    """Prefix of reverse keys: (subject_type, subject_id, subject_relation, entity_type,
    relation, entity_id) leading parts."""
    return tp + REVERSE + components(parts)


# The two tuple bodies are built once per tuple written: one join and one encode each, with
# the trailing terminator joined in (an empty last part), and the NUL check done on the text.


def forward_body(t: Tuple) -> bytes:
    et, eid, rel, st, sid, srel = t
    text = _SEPARATOR.join((et, eid, rel, st, sid, srel, ""))
    if text.count("\x00") != 6:
        return b"".join([component(p) for p in t])
    return text.encode("utf-8", "surrogatepass")


def reverse_body(t: Tuple) -> bytes:
    et, eid, rel, st, sid, srel = t
    text = _SEPARATOR.join((st, sid, srel, et, rel, eid, ""))
    if text.count("\x00") != 6:
        return b"".join([component(p) for p in (st, sid, srel, et, rel, eid)])
    return text.encode("utf-8", "surrogatepass")


def tuple_from_forward(body: bytes) -> Tuple:
    return Tuple(*split(body))


def tuple_from_reverse(body: bytes) -> Tuple:
    st, sid, srel, et, rel, eid = split(body)
    return Tuple(et, eid, rel, st, sid, srel)


def attribute_prefix(tp: bytes, *parts: str) -> bytes:
    """Prefix of attribute keys: (entity_type, entity_id, name) leading parts."""
    return tp + ATTRIBUTES + components(parts)


def dead_key(tp: bytes, deleted: int, kind: bytes, body: bytes) -> bytes:
    """Marks the history of ``kind + body`` (key after tp) as holding a version deleted at
    ``deleted``, for garbage collection to trim once that revision leaves the window."""
    return tp + DEAD + rev8(deleted) + kind + body


def change_key(tp: bytes, revision: int) -> bytes:
    return tp + CHANGES + rev8(revision)


def schema_key(tp: bytes, version: str) -> bytes:
    return tp + SCHEMAS + component(version)


def claim_key(namespace: str, parts: Iterable[str]) -> bytes:
    """The store-wide key of a claim; its value is the holding tenant's id."""
    return CLAIMS + component(namespace) + components(parts)


def tenant_claim_key(tp: bytes, namespace: str, parts: Iterable[str]) -> bytes:
    """The tenant's own mark of a claim, removed with the tenant's keys."""
    return tp + TENANT_CLAIMS + component(namespace) + components(parts)


def record_prefix(tp: bytes, keyspace: str, parts: Iterable[str] = ()) -> bytes:
    return tp + RECORDS + component(keyspace) + components(parts)
