"""Versions in the reference store: each tuple or attribute as a list of ``(created, deleted)``.

A key's version list is never changed in place: a write or a collection installs a new list, so
a reader walking one (without a lock) only ever sees data nobody mutates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from storage.base import (
    Attribute,
    AttributeKey,
    ChangeSet,
    RecordKey,
    SchemaVersion,
    TenantInfo,
    Tuple,
    TupleKind,
)

V = TypeVar("V")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Version(Generic[V]):
    """One version of a tuple or attribute: alive from ``created`` until ``deleted``."""

    item: V
    created: int
    deleted: int | None = None

    def visible_at(self, revision: int) -> bool:
        return self.created <= revision and (self.deleted is None or self.deleted > revision)


@dataclass(slots=True)
class TenantData:
    """Everything the store holds for one tenant; the reader walks it without a lock."""

    info: TenantInfo
    tuples: dict[Tuple, list[Version[Tuple]]] = field(default_factory=dict)
    kinds: frozenset[TupleKind] = frozenset()
    attributes: dict[AttributeKey, list[Version[Attribute]]] = field(default_factory=dict)
    records: dict[tuple[str, RecordKey], bytes] = field(default_factory=dict)
    schemas: dict[str, SchemaVersion] = field(default_factory=dict)
    changes: list[ChangeSet] = field(default_factory=list)


def live(versions: Sequence[Version[V]]) -> Version[V] | None:
    """The version not yet deleted, if any (there is at most one)."""
    return next((v for v in versions if v.deleted is None), None)


def visible(versions: Sequence[Version[V]], revision: int) -> V | None:
    """The item of the version visible at ``revision``, if any."""
    return next((v.item for v in versions if v.visible_at(revision)), None)


def expire(versions: list[Version[V]], revision: int) -> list[Version[V]]:
    """A new list with the live version marked deleted at ``revision``."""
    return [replace(v, deleted=revision) if v.deleted is None else v for v in versions]


def prune(table: dict[T, list[Version[V]]], horizon: int) -> int:
    """Drop versions deleted at or before ``horizon``; return how many went."""
    removed = 0
    for key, versions in list(table.items()):
        kept = [v for v in versions if v.deleted is None or v.deleted > horizon]
        if len(kept) == len(versions):
            continue
        removed += len(versions) - len(kept)
        if kept:
            table[key] = kept
        else:
            del table[key]
    return removed
