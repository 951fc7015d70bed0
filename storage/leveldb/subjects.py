"""The LevelDB reader's `SubjectSet`: one relation's subjects kept as their raw key bytes.

Membership tests compare key bytes with the token ``SnapshotReader.subject_token`` computed once
per request subject, so no subject is decoded unless it is iterated or is a userset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from storage.base import Subject
from storage.keys import ESCAPED_NUL, SEPARATOR, TERMINATOR, split

# Builds a NamedTuple from a list without the Python-level __new__ (the read loops are hot).
_new_tuple = tuple.__new__
_PLAIN_END = TERMINATOR + TERMINATOR  # a subject body whose relation is empty


def _decode_subject(body: bytes) -> Subject:
    if ESCAPED_NUL in body:
        return _new_tuple(Subject, split(body))
    parts = body.decode("utf-8", "surrogatepass").split(SEPARATOR)
    parts.pop()
    return _new_tuple(Subject, parts)


class RawSubjects:
    """A `SubjectSet` kept as the subjects' key bytes: membership needs no decoding, and the
    bytes (unlike tuples) are no work for the garbage collector."""

    __slots__ = ("_bodies", "_lookup", "usersets")

    def __init__(self, bodies: Sequence[bytes]) -> None:
        self._bodies = bodies
        self._lookup: Sequence[bytes] | frozenset[bytes] = (
            bodies if len(bodies) < 9 else frozenset(bodies)
        )
        usersets = [b for b in bodies if not b.endswith(_PLAIN_END)]
        self.usersets: Sequence[Subject] = (
            [_decode_subject(b) for b in usersets] if usersets else ()
        )

    def has(self, token: object) -> bool:
        return token in self._lookup

    def __len__(self) -> int:
        return len(self._bodies)

    def __iter__(self) -> Iterator[Subject]:
        return map(_decode_subject, self._bodies)
