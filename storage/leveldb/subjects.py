"""The LevelDB reader's `SubjectSet`: one relation's subjects kept as their raw key bytes.

Membership tests compare key bytes with the token ``SnapshotReader.subject_token`` computed once
per request subject, so no subject is decoded unless it is iterated or is a userset.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from storage.base import Subject
from storage.keys import ESCAPED_NUL, SEPARATOR, TERMINATOR, split

# Builds a NamedTuple from a list without the Python-level __new__ (the read loops are hot).
_new_tuple = tuple.__new__
_PLAIN_END = TERMINATOR + TERMINATOR  # a subject body whose relation is empty
#: Sets up to this size are searched from the front; larger ones by bisection (bodies are in
#: key order, and a token is a body).
_LINEAR = 8

#: A userset subject as the in-memory copy keeps it: a plain (type, id, relation) tuple, which
#: the garbage collector stops tracking (a `Subject`, a tuple subclass, it would track).
UsersetParts = tuple[str, str, str]


def _decode_subject(body: bytes) -> Subject:
    if ESCAPED_NUL in body:
        return _new_tuple(Subject, split(body))
    parts = body.decode("utf-8", "surrogatepass").split(SEPARATOR)
    parts.pop()
    return _new_tuple(Subject, parts)


def userset_parts(bodies: Sequence[bytes]) -> tuple[UsersetParts, ...]:
    """The userset subjects among ``bodies`` (key bodies in key order), decoded, in order."""
    found: list[UsersetParts] = []
    for body in bodies:
        if not body.endswith(_PLAIN_END):
            s = _decode_subject(body)
            found.append((s[0], s[1], s[2]))
    return tuple(found)


class RawSubjects:
    """A `SubjectSet` kept as the subjects' key bytes (in key order): membership needs no
    decoding, and the bytes (unlike tuples) are no work for the garbage collector.

    ``usersets``: the userset subjects, when the caller has them decoded already (the in-memory
    copy keeps them); None: found here. ``keep``: see `SubjectSet.keep` (False for a set
    wrapped around the in-memory copy)."""

    __slots__ = ("bodies", "keep", "usersets")

    def __init__(
        self,
        bodies: Sequence[bytes],
        usersets: Sequence[UsersetParts] | None = None,
        *,
        keep: bool = True,
    ) -> None:
        #: The subjects' key bodies, in key order.
        self.bodies = bodies
        self.keep = keep
        self.usersets: Sequence[UsersetParts] = (
            userset_parts(bodies) if usersets is None else usersets
        )

    def has(self, token: object) -> bool:
        bodies = self.bodies
        if len(bodies) <= _LINEAR:
            return token in bodies
        if not isinstance(token, bytes):
            return False
        at = bisect_left(bodies, token)
        return at < len(bodies) and bodies[at] == token

    def objects(self) -> tuple[tuple[str, str], ...]:
        if self.usersets:  # group:1 and group:1#member are one object
            return tuple(dict.fromkeys([(s[0], s[1]) for s in self]))
        found: list[tuple[str, str]] = []
        for body in self.bodies:  # plain subjects: distinct (type, id) already
            if ESCAPED_NUL in body:
                parts = split(body)
            else:
                parts = body.decode("utf-8", "surrogatepass").split(SEPARATOR)
            found.append((parts[0], parts[1]))
        return tuple(found)

    def __len__(self) -> int:
        return len(self.bodies)

    def __iter__(self) -> Iterator[Subject]:
        return map(_decode_subject, self.bodies)
