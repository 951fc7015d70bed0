"""The relations layer's write hook: raw tuple deletes (the data API, bundles) of managed
tuples remove their metadata rows in the same atomic write.

A managed tuple is one a relation row stands for. When a raw write deletes it, the row goes too;
the partner row of a pair keeps its link but its ``pair_id`` becomes null, and the lists the
deleted rows were in are renumbered. Registered on the app's ``RawWriter`` when the app is
built (``engine.hooks``), so the core never imports this layer.
"""

from __future__ import annotations

from engine.relations import layout
from engine.relations.layout import RowWriter
from engine.relations.model import Relation
from storage.base import Changes, SnapshotReader, TupleFilter


class RawDeletes:
    """The `WriteHook` that keeps relation rows in step with raw tuple deletes."""

    def wants(self, changes: Changes) -> bool:
        """Only writes that delete tuples can touch a managed one."""
        return bool(changes.delete_tuples or changes.delete_tuple_filters)

    def extend(self, reader: SnapshotReader, changes: Changes) -> None:
        """Add the removal of the deleted managed tuples' rows to ``changes`` (called only for
        writes `wants` took)."""
        if not layout.has_rows(reader):
            return
        kept = set(changes.write_tuples)
        doomed: dict[str, Relation] = {}
        for t in changes.delete_tuples:
            if t not in kept and not t.subject_relation:
                row = layout.by_tuple(reader, t)
                if row is not None:
                    doomed[row.id] = row
        for flt in changes.delete_tuple_filters:
            for row in _rows_matching(reader, flt):
                if row.tuple not in kept:
                    doomed[row.id] = row
        if not doomed:
            return
        writer = RowWriter(reader, changes, tuples=False)
        lists: set[tuple[str, str, str]] = set()
        for row in doomed.values():
            writer.delete(row)
            if row.position is not None:
                lists.add((row.entity_type, row.entity_id, row.relation))
        for gone in doomed.values():
            if gone.pair_id and gone.pair_id not in doomed:
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


def _rows_matching(reader: SnapshotReader, flt: TupleFilter) -> list[Relation]:
    if flt.subject_relation:
        return []
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
