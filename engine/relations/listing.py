"""Lists of relation rows: filters, sorts and both paging styles over the row indexes.

A list whose order is creation time (either way) streams rows from an index and seeks straight
to a keyset cursor, so a page costs the same at any depth. Other orders collect the candidate
rows (one entity's, or those a filter selects) and sort them in memory.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from engine.relations import layout
from engine.relations.errors import Invalid
from engine.relations.model import Relation
from storage.base import SnapshotReader

DEFAULT_LIMIT = 20
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Paging and order, already checked: ``sort`` as (key, descending) pairs."""

    limit: int = DEFAULT_LIMIT
    offset: int | None = None
    after: str | None = None
    sort: tuple[tuple[str, bool], ...] = ()

    @property
    def created_order(self) -> bool | None:
        """None unless the primary sort is created_at; else whether it is descending."""
        if self.sort and self.sort[0][0] in ("created_at", "createdAt"):
            return self.sort[0][1]
        return None


class _Row(Protocol):
    @property
    def id(self) -> str: ...


RowT = TypeVar("RowT", bound=_Row)


@dataclass(frozen=True, slots=True)
class RowPage(Generic[RowT]):
    """One page of a list: its ``rows``, whether more follow, and the query that asked for it."""

    rows: list[RowT]
    has_more: bool
    query: ListQuery

    @property
    def pagination(self) -> dict[str, Any]:
        """The page's ``meta.pagination``: the keyset cursor (the last row's id) for lists by
        creation time, the next offset unless the page was asked by cursor."""
        query, has_more = self.query, self.has_more
        out: dict[str, Any] = {
            "limit": query.limit,
            "offset": query.offset or 0,
            "has_more": has_more,
        }
        if query.created_order is not None:
            last_id = self.rows[-1].id if self.rows else None
            out["next_after"] = last_id if has_more else None
        if query.after is None:
            out["next_offset"] = (query.offset or 0) + len(self.rows) if has_more else None
        return out


class ListPage(RowPage[Relation]):
    """One page of relation rows."""

    __slots__ = ()


Key = Callable[[Relation], Any]


def _created_ids(
    reader: SnapshotReader, type_ids: Sequence[str] | None, descending: bool, start: Relation | None
) -> Iterator[str]:
    if type_ids is None:
        after = (layout.stamp(start.created_at), start.id) if start else None
        for record in reader.records(layout.BY_CREATED, after=after, reverse=descending):
            yield record.key[1]
        return
    streams = []
    for type_id in type_ids:
        resume = (type_id, layout.stamp(start.created_at), start.id) if start else None
        records = reader.records(layout.BY_TYPE, (type_id,), after=resume, reverse=descending)
        streams.append((r.key[1], r.key[2]) for r in records)
    merged = heapq.merge(*streams, reverse=descending)
    for _, relation_id in merged:
        yield relation_id


def by_created(
    reader: SnapshotReader,
    type_ids: Sequence[str] | None,
    descending: bool,
    start: Relation | None = None,
) -> Iterator[Relation]:
    """Rows (optionally of some types) by (created_at, id), resuming past ``start``."""
    for relation_id in _created_ids(reader, type_ids, descending, start):
        row = layout.load(reader, relation_id)
        if row is not None:
            yield row


def sort_rows(
    rows: list[Relation], sort: Sequence[tuple[str, bool]], keys: dict[str, Key]
) -> list[Relation]:
    """Stable multi-key sort (least significant key first); ``id`` breaks ties; None sorts last."""
    ordered = sorted(rows, key=lambda r: r.id, reverse=bool(sort) and sort[0][1])
    for name, descending in reversed(sort):
        get = keys[name]
        ordered.sort(key=lambda r: _nulls_last(get(r), descending), reverse=descending)
    return ordered


def _nulls_last(value: Any, descending: bool) -> tuple[bool, Any]:
    missing = value is None
    return (not missing if descending else missing, 0 if missing else value)


def page(
    rows: Iterable[Relation],
    query: ListQuery,
    keep: Callable[[Relation], bool],
) -> ListPage:
    """One page of ``rows`` (already in order and already past any keyset cursor)."""
    visible: Iterator[Relation] = (r for r in rows if keep(r))
    if query.offset:
        visible = itertools.islice(visible, query.offset, None)
    taken = list(itertools.islice(visible, query.limit + 1))
    return ListPage(taken[: query.limit], len(taken) > query.limit, query)


def cursor_row(
    reader: SnapshotReader, query: ListQuery, keep: Callable[[Relation], bool]
) -> Relation | None:
    """The keyset cursor's row; 400 unless it is in the (filtered, visible) set."""
    if query.after is None:
        return None
    row = layout.load(reader, query.after)
    if row is None or not keep(row):
        raise Invalid.at(("after",), "invalid cursor: after must be the id of a row in this list")
    return row


def after_in_memory(
    rows: list[Relation], start: Relation | None, descending: bool
) -> list[Relation]:
    if start is None:
        return rows
    mark = (start.created_at, start.id)
    if descending:
        return [r for r in rows if (r.created_at, r.id) < mark]
    return [r for r in rows if (r.created_at, r.id) > mark]
