"""Schema edits that race other writers: each is written conditionally on the head it read
(``Store.write_schema(parent=...)``), and redone on the new head when another writer (a
request in this process, or another replica) moved it first, so no edit is lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from storage.errors import SchemaHeadMoved

T = TypeVar("T")

#: Times an edit is redone before the caller gives up with a conflict.
SCHEMA_RACES = 20


def redone_while_moved(attempt: Callable[[str], T], head: str) -> T | None:
    """``attempt(head)``, redone with the head that moved it while it raises
    `SchemaHeadMoved`, at most `SCHEMA_RACES` times; None when the head kept moving."""
    for _ in range(SCHEMA_RACES):
        try:
            return attempt(head)
        except SchemaHeadMoved as moved:
            head = moved.head
    return None
