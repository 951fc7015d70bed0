"""The relations layer's write hook for raw deletes (the data API, relationships/delete,
bundles, imports): a pair goes as a whole, with its metadata rows, in the same atomic write.

A managed tuple is one a relation row stands for. When a raw write deletes one side of a pair
(a tuple of a bidirectional relationship type, managed or not, or a managed tuple whose row has
a partner), the other side is deleted too, and so are both metadata rows; the lists the deleted
rows were in are renumbered. So no raw delete can leave a mirror behind that still grants what
the deleted side no longer does. Registered on the app's ``RawWriter`` when the app is built
(``engine.hooks``), so the core never imports this layer.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.hooks import Refused
from engine.relations import layout
from engine.relations.layout import RowWriter
from engine.relations.model import Relation
from engine.relations.pairs import Pairs, PairsCache
from storage.base import Changes, SnapshotReader, Tuple, TupleFilter

_PAGE = 1000


class RawDeletes:
    """The `WriteHook` that deletes the other side of every pair a raw write deletes one side
    of, and the metadata rows of every managed tuple it deletes."""

    def __init__(self, pairs: PairsCache) -> None:
        self._pairs = pairs

    def wants(self, changes: Changes) -> bool:
        """Only writes that delete tuples can touch a managed one."""
        return bool(changes.delete_tuples or changes.delete_tuple_filters)

    def extend(self, reader: SnapshotReader, changes: Changes) -> None:
        """Add the mirrors of deleted pair sides and the removal of the deleted managed tuples'
        rows to ``changes`` (called only for writes `wants` took)."""
        pairs = self._pairs.of(reader)
        managed = layout.has_rows(reader)
        if not pairs and not managed:
            return
        kept = set(changes.write_tuples)
        gone: set[Tuple] = set()
        for t in changes.delete_tuples:
            if t not in kept and not t.subject_relation and reader.has_tuple(t):
                gone.add(t)
        for flt in changes.delete_tuple_filters:
            gone.update(t for t in _matching(reader, flt, pairs, managed) if t not in kept)
        doomed: dict[str, Relation] = {}
        implied: list[Tuple] = []
        todo = list(gone)
        while todo:
            t = todo.pop()
            others: list[Tuple] = []
            mirror = pairs.mirror(t)
            if mirror is not None:
                others.append(mirror)
            row = layout.by_tuple(reader, t) if managed else None
            if row is not None:
                doomed[row.id] = row
                partner = layout.load(reader, row.pair_id) if row.pair_id else None
                if partner is not None:
                    others.append(partner.tuple)
            for other in others:
                if other in gone or not reader.has_tuple(other):
                    continue
                if other in kept:
                    raise Refused(
                        f"{t} and {other} are the two sides of one relation: this write deletes "
                        f"the first and writes the second; delete both or neither",
                    )
                gone.add(other)
                implied.append(other)
                todo.append(other)
        if implied:
            changes.delete_tuples.extend(implied)
            changes.unbounded = True  # the tuples the client's deletes imply, not more of its own
        if doomed:
            _drop_rows(reader, changes, doomed)


def _drop_rows(reader: SnapshotReader, changes: Changes, doomed: dict[str, Relation]) -> None:
    writer = RowWriter(reader, changes, tuples=False)
    lists: set[tuple[str, str, str]] = set()
    for row in doomed.values():
        writer.delete(row)
        if row.position is not None:
            lists.add((row.entity_type, row.entity_id, row.relation))
    for gone in doomed.values():
        if gone.pair_id and gone.pair_id not in doomed:
            # A partner whose tuple stays (written again by this very write): it keeps its link.
            partner = writer.row(gone.pair_id)
            if partner is not None:
                writer.put(partner.but(pair_id=None))
    for entity_type, entity_id, role in lists:
        survivors = [
            r
            for r in layout.ordered_list(reader, entity_type, entity_id, role)
            if r.id not in doomed
        ]
        for index, row in enumerate(survivors, start=1):
            current = writer.row(row.id)
            if current is not None and current.position != index:
                writer.put(current.but(position=index))
    writer.flush()


def _matching(
    reader: SnapshotReader, flt: TupleFilter, pairs: Pairs, managed: bool
) -> Iterator[Tuple]:
    """The plain tuples ``flt`` deletes that could be a side of a pair or managed: the managed
    ones from the layer's indexes, and those of a pair's relations from the tuples."""
    if flt.subject_relation:
        return
    if managed:
        for row in _rows_matching(reader, flt):
            yield row.tuple
    relations = pairs.relations
    if not relations or (flt.relation and flt.relation not in relations):
        return
    cursor = ""
    while True:
        page = reader.read_tuples(flt, page_size=_PAGE, cursor=cursor)
        for t in page.items:
            if pairs.mirror(t) is not None:
                yield t
        if not page.cursor:
            return
        cursor = page.cursor


def _rows_matching(reader: SnapshotReader, flt: TupleFilter) -> list[Relation]:
    if flt.entity_type:
        prefixes: list[tuple[str, ...]] = (
            [(flt.entity_type, eid) for eid in flt.entity_ids]
            if flt.entity_ids
            else [(flt.entity_type,)]
        )
        if flt.relation and flt.entity_ids:
            prefixes = [(*p, flt.relation) for p in prefixes]
        space = layout.BY_TUPLE
    elif flt.subject_type:
        prefixes = (
            [(flt.subject_type, sid) for sid in flt.subject_ids]
            if flt.subject_ids
            else [(flt.subject_type,)]
        )
        space = layout.BY_SUBJECT
    else:
        prefixes = [()]
        space = layout.BY_TUPLE
    found: list[Relation] = []
    for prefix in prefixes:
        for record in reader.records(space, prefix):
            row = layout.load(reader, record.value.decode())
            if row is not None and flt.matches(row.tuple):
                found.append(row)
    return found
